"""helm, built by tests/cluster/build.sh, against a control plane or none (template, lint)."""

from __future__ import annotations

import os
import subprocess

from tests.cluster.binaries import Binaries
from tests.cluster.controlplane import ControlPlane


def helm(
    cluster_or_none: ControlPlane | None, *args: str, check: bool = True, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    """Runs helm; with a cluster, against its kubeconfig. Fails with helm's stderr."""
    binary = Binaries.from_cache().helm
    env = cluster_or_none.env() if cluster_or_none else {**os.environ, "KUBECONFIG": "/dev/null"}
    result = subprocess.run(
        [str(binary), *args], capture_output=True, text=True, env=env, timeout=timeout
    )
    if check and result.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed:\n{result.stderr}")
    return result
