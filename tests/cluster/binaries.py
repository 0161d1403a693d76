"""Locates the pinned control-plane binaries that build.sh put in the cache."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

CLUSTER_DIR = Path(__file__).resolve().parent
BUILD_SCRIPT = CLUSTER_DIR / "build.sh"


def cache_root() -> Path:
    """The cache directory shared with build.sh (BERTH_CACHE_DIR, else ~/.cache/berth)."""
    if explicit := os.environ.get("BERTH_CACHE_DIR"):
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "berth"


def pinned_versions() -> dict[str, str]:
    """The versions in versions.env, e.g. {"KUBERNETES_VERSION": "v1.37.2", ...};
    BERTH_KUBERNETES_VERSION, when set, chooses another Kubernetes version (as in build.sh)."""
    versions = {}
    for line in (CLUSTER_DIR / "versions.env").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            versions[key.strip()] = value.strip()
    if chosen := os.environ.get("BERTH_KUBERNETES_VERSION"):
        versions["KUBERNETES_VERSION"] = chosen
    return versions


def kstatus_source_hash() -> str:
    """The kstatus CLI is our own source: its cache key includes the source's hash."""
    return hashlib.sha256((CLUSTER_DIR / "kstatus" / "main.go").read_bytes()).hexdigest()[:8]


@dataclass(frozen=True)
class Binaries:
    """Absolute paths of every binary the control plane runs."""

    etcd: Path
    kube_apiserver: Path
    kube_controller_manager: Path
    kube_scheduler: Path
    kubectl: Path
    kwok: Path
    helm: Path
    kstatus: Path

    @classmethod
    def from_cache(cls) -> Binaries:
        """Paths in the cache; raises FileNotFoundError naming build.sh when one is missing."""
        v = pinned_versions()
        bin_dir = cache_root() / "bin"
        kube = bin_dir / f"kubernetes-{v['KUBERNETES_VERSION']}"
        binaries = cls(
            etcd=bin_dir / f"etcd-{v['ETCD_VERSION']}" / "etcd",
            kube_apiserver=kube / "kube-apiserver",
            kube_controller_manager=kube / "kube-controller-manager",
            kube_scheduler=kube / "kube-scheduler",
            kubectl=kube / "kubectl",
            kwok=bin_dir / f"kwok-{v['KWOK_VERSION']}" / "kwok",
            helm=bin_dir / f"helm-{v['HELM_VERSION']}" / "helm",
            kstatus=bin_dir
            / f"kstatus-{v['CLI_UTILS_VERSION']}-{kstatus_source_hash()}"
            / "kstatus",
        )
        missing = [str(p) for p in vars(binaries).values() if not Path(p).is_file()]
        if missing:
            raise FileNotFoundError(
                f"control-plane binaries missing: {', '.join(missing)}; run {BUILD_SCRIPT} first"
            )
        return binaries

    def path_entries(self) -> list[str]:
        """Directories to prepend to PATH so that `kubectl`, `helm` and friends resolve."""
        return sorted({str(Path(p).parent) for p in vars(self).values()})
