"""Runs the operator as a separate process against a test control plane, and helpers around it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from tests.cluster import ControlPlane
from tests.cluster.controlplane import free_port
from tests.cluster.kubectl import Kubectl, condition_is
from tests.cluster.processes import die_with_parent

REPO = Path(__file__).resolve().parents[1]
CRD_FILE = REPO / "crds" / "modeldeployments.berth.dev.yaml"

#: where the test operator copies the models' own keys for the gateway (as the chart's does, in
#: its own namespace)
MODEL_KEYS_SECRET = "berth-model-keys"
MODEL_KEYS_NAMESPACE = "default"
#: the callers the test operator lets reach model servers, as the chart's gateway
GATEWAY_PEER = {
    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "berth-system"}},
    "podSelector": {"matchLabels": {"app.kubernetes.io/name": "berth-gateway"}},
}


def install_crd(cluster: ControlPlane) -> None:
    """The ModelDeployment CRD, installed from crds/ and Established."""
    cluster.kubectl("apply", "--server-side", "-f", str(CRD_FILE))
    # polled, not `kubectl wait`: a CRD read before the API server wrote its first status has
    # no conditions at all, which kubectl wait reports as an error instead of waiting
    Kubectl(cluster, "default").wait_for(
        "crd", "modeldeployments.berth.dev", condition_is("Established"), timeout=30
    )


def cache_volume_manifest(name: str, namespace: str, claim: str) -> dict[str, Any]:
    """A PV pre-bound to `namespace/claim`, as an admin would provide for the model cache."""
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": name},
        "spec": {
            "capacity": {"storage": "1Ti"},
            "accessModes": ["ReadWriteMany", "ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": "Retain",
            "hostPath": {"path": f"/tmp/berth-test-volumes/{name}"},
            "claimRef": {"namespace": namespace, "name": claim},
        },
    }


class OperatorProcess:
    """`python -m berth_operator` with the cluster's kubeconfig; metrics and health on free ports."""

    def __init__(
        self, cluster: ControlPlane, workdir: Path, extra_env: dict[str, str] | None = None
    ) -> None:
        self.cluster = cluster
        self.workdir = workdir
        self.extra_env = extra_env or {}
        self.popen: subprocess.Popen[bytes] | None = None
        self.metrics_port = 0
        self.health_port = 0
        self.dashboard_port = 0
        self.log = workdir / "operator.log"

    def settings_env(self) -> dict[str, str]:
        """The operator's BERTH_* settings: the chart's defaults where they matter here, then
        the test's own."""
        env = {
            "BERTH_RESYNC_SECONDS": "30",
            "BERTH_MODEL_KEYS_SECRET": MODEL_KEYS_SECRET,
            "BERTH_MODEL_KEYS_NAMESPACE": MODEL_KEYS_NAMESPACE,
            # as the chart does by default: a NetworkPolicy for each model's pods
            "BERTH_NETWORK_POLICIES": "true",
            "BERTH_MODEL_CALLERS": json.dumps([GATEWAY_PEER]),
        }
        if not self.cluster.serves_real_node:
            # a control plane on loopback publishes no endpoints for the `kubernetes` Service
            env["BERTH_API_SERVER_CIDRS"] = f"{self.cluster.address}/32"
        return {**env, **self.extra_env}

    def start(self, timeout: float = 30) -> None:
        self.metrics_port, self.health_port, self.dashboard_port = (
            free_port(),
            free_port(),
            free_port(),
        )
        env = {
            **self.cluster.env(),
            "KUBECONFIG": str(self.cluster.operator_kubeconfig),
            "PYTHONUNBUFFERED": "1",
            **self.settings_env(),
        }
        with self.log.open("ab") as out:
            self.popen = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "berth_operator",
                    "--bind=127.0.0.1",
                    f"--metrics-port={self.metrics_port}",
                    f"--health-port={self.health_port}",
                    f"--dashboard-port={self.dashboard_port}",
                ],
                cwd=REPO,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                preexec_fn=die_with_parent,  # no operator outlives its test or benchmark
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise RuntimeError(
                    f"operator exited with {self.popen.returncode}:\n{self.log_tail()}"
                )
            if self.healthy():
                return
            time.sleep(0.2)
        raise RuntimeError(f"operator not healthy after {timeout} s:\n{self.log_tail()}")

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.health_port}/healthz", timeout=2
            ) as r:
                return r.status == 200
        except OSError:
            return False

    def metrics(self) -> str:
        with urllib.request.urlopen(
            f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5
        ) as r:
            return r.read().decode()

    def metric(self, name: str) -> float:
        """Sum of a metric's samples (all label sets)."""
        total = 0.0
        for line in self.metrics().splitlines():
            if line.startswith(name) and not line.startswith("#"):
                head, _, value = line.rpartition(" ")
                if head.split("{")[0] == name:
                    total += float(value)
        return total

    def kill(self) -> None:
        """SIGKILL: no cleanup, as when a node dies."""
        assert self.popen is not None
        os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait(timeout=10)

    def stop(self) -> None:
        if self.popen is None or self.popen.poll() is not None:
            return
        os.killpg(self.popen.pid, signal.SIGTERM)
        try:
            self.popen.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.kill()

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
