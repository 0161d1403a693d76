"""The whole path on one machine: a control plane with fake GPU nodes and a local node that runs
pods for real, a local hub serving tiny models, and the operator."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from berth_operator.config import OperatorConfig

from tests.cluster import ControlPlane
from tests.cluster.kubectl import Kubectl
from tests.cluster.nodes import FakeNode
from tests.engines.runner import tiny_model_dir
from tests.hub.download import repo_from_directory
from tests.hub.server import LocalHub
from tests.nodeagent import NodeAgent, local_images
from tests.operator_process import REPO, OperatorProcess, cache_volume_manifest

# The tiny models the stack publishes: repo -> (engine, builder script in tests/engines)
TINY_MODELS = {
    "berth-test/tiny-diarization": ("pyannote", "tiny_pyannote.py"),
    "berth-test/tiny-canary": ("nemo-asr", "tiny_canary.py"),
}


def tiny_model_manifest(name: str, repo: str, **spec: Any) -> dict[str, Any]:
    """A ModelDeployment of a tiny model on the CPU (gpus 0): it lands on the local node."""
    engine = TINY_MODELS[repo][0]
    return {
        "apiVersion": "berth.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": name},
        "spec": {"engine": engine, "model": {"repo": repo}, "resources": {"gpus": 0}, **spec},
    }


def publish_tiny_models(hub: LocalHub) -> None:
    """Builds (once, cached) and publishes every tiny model on `hub`."""
    for repo, (engine, builder) in TINY_MODELS.items():
        hub.add(repo_from_directory(repo, tiny_model_dir(engine, builder)))


class LocalStack:
    """Start it, use `plane`, `kubectl`, `hub`, `agent`, `operator`; stop it."""

    def __init__(
        self, workdir: Path, namespace: str = "default", operator_env: dict[str, str] | None = None
    ) -> None:
        self.workdir, self.namespace = workdir, namespace
        self.operator_env = operator_env or {}
        self.config = OperatorConfig()
        self.plane = ControlPlane(
            workdir=workdir / "cluster",
            # no CPU-only fake node: pods without GPUs land on the local node and really run
            nodes=[FakeNode("gpu-node-0", gpus=8), FakeNode("gpu-node-1", gpus=8)],
        )
        self.hub = LocalHub()
        self.kubectl = Kubectl(self.plane, namespace)
        self.agent: NodeAgent | None = None
        self.operator: OperatorProcess | None = None

    def start(self) -> LocalStack:
        self.plane.start()
        try:
            self.plane.kubectl("apply", "--server-side", "-f", str(REPO / "crds"))
            self.plane.kubectl(
                "wait", "--for=condition=Established", "crd/modeldeployments.berth.dev"
            )
            self.hub.start()
            images = local_images(self.config.images, self.config.downloader_image)
            self.agent = NodeAgent(self.plane, images, self.workdir / "node").start()
            self.operator = OperatorProcess(
                self.plane,
                self.workdir,
                extra_env={"HF_ENDPOINT": self.hub.endpoint, **self.operator_env},
            )
            self.operator.start()
            self.plane.apply(
                cache_volume_manifest(
                    f"cache-{self.namespace}", self.namespace, self.config.cache_claim_name
                )
            )
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self.operator:
            self.operator.stop()
        if self.agent:
            self.agent.stop()
        self.hub.stop()
        self.plane.stop()

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def publish_tiny_models(self) -> None:
        publish_tiny_models(self.hub)

    def claim_directory(self) -> Path:
        """Where the local node keeps the cache claim's files."""
        return self.workdir / "node" / "claims" / f"{self.namespace}-{self.config.cache_claim_name}"

    def service_url(self, name: str) -> str:
        """The Service's address as kube-proxy would route it: a ready pod its selector picks,
        on the target port. (EndpointSlices refuse the loopback pod IPs of the local node, so
        the selector is followed here as the endpoint controller would.)"""
        service = self.kubectl.get("service", name)["spec"]
        selector = ",".join(f"{k}={v}" for k, v in service["selector"].items())
        target = service["ports"][0]["targetPort"]
        for pod in self.kubectl.get("pods", None, "-l", selector)["items"]:
            conditions = pod.get("status", {}).get("conditions", [])
            if not any(c["type"] == "Ready" and c["status"] == "True" for c in conditions):
                continue
            port = target
            if isinstance(target, str):
                ports = [p for c in pod["spec"]["containers"] for p in c.get("ports", [])]
                port = next(p["containerPort"] for p in ports if p.get("name") == target)
            return f"http://{pod['status']['podIP']}:{port}"
        raise LookupError(f"service {name} has no ready pod")
