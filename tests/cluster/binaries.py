"""Locates the pinned control-plane and real-node binaries that build.sh put in the cache."""

from __future__ import annotations

import hashlib
import os
import shutil
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


def source_hash(path: Path) -> str:
    """The cache key of something built from our own source (as build.sh computes it)."""
    return hashlib.sha256(path.read_bytes()).hexdigest()[:8]


def kstatus_source_hash() -> str:
    """The kstatus CLI is our own source: its cache key includes the source's hash."""
    return source_hash(CLUSTER_DIR / "kstatus" / "main.go")


def _missing(paths: dict[str, Path]) -> list[str]:
    return [str(p) for p in paths.values() if not Path(p).is_file()]


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
        if missing := _missing(vars(binaries)):
            raise FileNotFoundError(
                f"control-plane binaries missing: {', '.join(missing)}; run {BUILD_SCRIPT} first"
            )
        return binaries

    def path_entries(self) -> list[str]:
        """Directories to prepend to PATH so that `kubectl`, `helm` and friends resolve."""
        return sorted({str(Path(p).parent) for p in vars(self).values()})


# Debian packages of the real node's system binaries (installed by `make setup`).
SYSTEM_PACKAGES = {
    "containerd": "containerd",
    "ctr": "containerd",
    "runc": "runc",
    "iptables": "iptables",
    "conntrack": "conntrack",
    "umoci": "umoci",
    "ipset": "ipset",
}
CNI_BIN_DIR = Path("/usr/lib/cni")


@dataclass(frozen=True)
class NodeBinaries:
    """Absolute paths of what a real node runs: our builds from the cache, Debian's from PATH."""

    kubelet: Path
    kube_proxy: Path
    crictl: Path
    kube_router: Path
    pause_image: Path
    testbox_image: Path
    containerd: Path
    ctr: Path

    @classmethod
    def from_cache(cls) -> NodeBinaries:
        """Paths; raises FileNotFoundError naming build.sh or the missing Debian packages."""
        v = pinned_versions()
        bin_dir, image_dir = cache_root() / "bin", cache_root() / "images"
        missing_packages = sorted(
            {pkg for cmd, pkg in SYSTEM_PACKAGES.items() if shutil.which(cmd) is None}
            | (set() if (CNI_BIN_DIR / "bridge").is_file() else {"containernetworking-plugins"})
        )
        if missing_packages:
            raise FileNotFoundError(
                f"the real node needs Debian packages: apt-get install {' '.join(missing_packages)} "
                "(or run `make setup` as root)"
            )
        node = bin_dir / f"kubernetes-node-{v['KUBELET_VERSION']}"
        testbox = Path(__file__).resolve().parents[1] / "realnode" / "testbox" / "main.go"
        binaries = cls(
            kubelet=node / "kubelet",
            kube_proxy=node / "kube-proxy",
            crictl=bin_dir / f"crictl-{v['CRI_TOOLS_VERSION']}" / "crictl",
            kube_router=bin_dir / f"kube-router-{v['KUBE_ROUTER_VERSION']}" / "kube-router",
            pause_image=image_dir
            / f"pause-{v['PAUSE_TAG']}-{source_hash(CLUSTER_DIR / 'pause' / 'main.go')}"
            / "image-oci.tar",
            testbox_image=image_dir / f"testbox-{source_hash(testbox)}" / "image-oci.tar",
            containerd=Path(shutil.which("containerd") or "containerd"),
            ctr=Path(shutil.which("ctr") or "ctr"),
        )
        if missing := _missing(vars(binaries)):
            raise FileNotFoundError(
                f"real-node binaries missing: {', '.join(missing)}; run {BUILD_SCRIPT} first"
            )
        return binaries
