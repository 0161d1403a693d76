"""Berth as a cluster runs it: its images, from the local registry, on a real node; the operator
and the gateway installed by Helm; download Jobs and model servers in containers."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from berth_operator.api.metadata import MANAGED_BY, MANAGED_BY_LABEL
from berth_operator.controller.security import RUN_AS_USER

from images import base, build, catalog, registry
from tests.cluster import ControlPlane
from tests.cluster.helm import helm
from tests.cluster.kubectl import Kubectl
from tests.cluster.nodes import FakeNode
from tests.cluster.realnode import LOCAL_REGISTRY, TESTBOX_IMAGE, RealNode
from tests.hub.server import LocalHub
from tests.operator_process import REPO, OperatorProcess, cache_volume_manifest

# The images the tests run; vLLM's needs a GPU (its engine tests run its CPU build).
IMAGES = ("operator", "downloader", "pyannote", "nemo-asr")
RELEASE, SYSTEM_NAMESPACE = "berth", "berth-system"
CACHE_CLAIM = "berth-model-cache"  # the chart's cache.claimName


class ImagesMissing(RuntimeError):
    """An image of this tree is not in the local registry."""


def registry_images(names: tuple[str, ...] = IMAGES) -> dict[str, str]:
    """name -> reference in the local registry by content key, for the images this tree builds;
    raises with the command that builds them when one is missing (or built from other files)."""
    base_name = base.image_name()
    found = {
        name: f"{catalog.repository(name, f'{LOCAL_REGISTRY}/berth-dev')}:"
        f"{build.key_of(name, base_name)}"
        for name in names
    }
    missing = [name for name, ref in found.items() if registry.manifest_digest(ref) is None]
    if missing:
        raise ImagesMissing(
            f"{', '.join(missing)}: no image of this tree in the local registry; "
            f"run make images IMAGES='{' '.join(names)}' (as root)"
        )
    return found


class ContainerStack:
    """Start it, use `plane`, `kubectl`, `hub`, `node`; stop it. The real node is untainted: it
    is the cluster's CPU node, and the kwok GPU nodes keep what asks for GPUs."""

    def __init__(
        self, workdir: Path, namespace: str = "models", values: dict[str, Any] | None = None
    ) -> None:
        self.images = registry_images()
        self.workdir, self.namespace = workdir, namespace
        self.values = values or {}
        self.node = RealNode(workdir=workdir / "node", taints=[], network_policies=True)
        self.plane: ControlPlane | None = None
        self.hub = LocalHub(host=self.node.address)
        self.cache_dir = workdir / "cache"

    @property
    def kubectl(self) -> Kubectl:
        assert self.plane is not None
        return Kubectl(self.plane, self.namespace)

    def start(self) -> ContainerStack:
        address = self.node.claim_host()
        try:
            self.plane = ControlPlane(
                workdir=self.workdir / "cluster",
                address=address,
                nodes=[FakeNode("gpu-node-0", gpus=8), FakeNode("gpu-node-1", gpus=8)],
            )
            self.plane.start()
            self.node.join(self.plane)
            self.node.import_image(self.node.binaries.testbox_image, TESTBOX_IMAGE.split(":")[0])
            self.hub.start()
            self._models_namespace()
            self._install()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        self.hub.stop()
        self.node.stop()
        if self.plane:
            self.plane.stop()

    def __enter__(self) -> ContainerStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _models_namespace(self) -> None:
        """The namespace of the tests' models: restricted Pod Security enforced, and a cache
        volume on the node that the images' user owns, as an admin provides one."""
        assert self.plane is not None
        self.plane.kubectl("create", "namespace", self.namespace)
        self.plane.kubectl(
            "label", "namespace", self.namespace, "pod-security.kubernetes.io/enforce=restricted"
        )
        self.cache_dir.mkdir(parents=True)
        os.chown(self.cache_dir, RUN_AS_USER, RUN_AS_USER)
        volume = cache_volume_manifest(f"cache-{self.namespace}", self.namespace, CACHE_CLAIM)
        volume["spec"]["hostPath"]["path"] = str(self.cache_dir)
        self.plane.apply(volume)

    def helm_values(self) -> dict[str, Any]:
        """The chart's values for this cluster: images from the local registry, the local hub."""
        repository, _, tag = self.images["operator"].rpartition(":")
        return {
            "image": {"repository": repository, "tag": tag},
            "engines": {
                "images": {
                    "pyannote": self.images["pyannote"],
                    "nemo-asr": self.images["nemo-asr"],
                },
                "downloaderImage": self.images["downloader"],
                # a node of two cores: the model pods must fit beside each other
                "defaultRequests": {
                    engine: {"cpu": "100m", "memory": "512Mi"}
                    for engine in ("vllm", "nemo-asr", "pyannote")
                },
            },
            "hfEndpoint": self.hub.endpoint,
            "resyncSeconds": 30,
            "gateway": {"replicaCount": 1},
            **self.values,
        }

    def _install(self) -> None:
        """helm install, waiting for the operator's and the gateway's pods to be ready."""
        self._helm("install", "--create-namespace")

    def upgrade(self, **values: Any) -> None:
        """helm upgrade with `values` over the stack's own (kept for later upgrades), waiting
        for the operator's and the gateway's pods to be ready."""
        self.values = {**self.values, **values}
        self._helm("upgrade")

    def _helm(self, command: str, *args: str) -> None:
        assert self.plane is not None
        values = self.workdir / "values.yaml"
        values.write_text(json.dumps(self.helm_values()))
        helm(
            self.plane,
            command,
            RELEASE,
            str(REPO / "charts" / "berth"),
            "--namespace",
            SYSTEM_NAMESPACE,
            *args,
            "--values",
            str(values),
            "--wait",
            "--timeout",
            "5m",
            timeout=330,
        )

    def system(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """kubectl in Berth's own namespace."""
        assert self.plane is not None
        return self.plane.kubectl("-n", SYSTEM_NAMESPACE, *args, timeout=timeout)

    def service_address(self, service: str, namespace: str | None = None) -> str:
        """http://CLUSTER-IP:PORT of a Service (the models' namespace by default), as kube-proxy
        routes it from this host."""
        assert self.plane is not None
        found = self.plane.kubectl(
            "-n", namespace or self.namespace, "get", "service", service, "-o", "json"
        )
        spec = json.loads(found.stdout)["spec"]
        return f"http://{spec['clusterIP']}:{spec['ports'][0]['port']}"

    def gateway_address(self) -> str:
        """The gateway's Service, the one address of every model."""
        return self.service_address(f"{RELEASE}-gateway", SYSTEM_NAMESPACE)

    def pull_engine_images(self) -> None:
        """Puts the download Job's and the engines' images on the node beforehand, as a
        cluster's image pre-puller does, so that a test's timings are not an 8 GB pull."""
        self.node.pull(*(ref for name, ref in self.images.items() if name != "operator"))

    def clear_models(self, timeout: float = 120) -> None:
        """Deletes every ModelDeployment of the namespace and waits until what Berth made for
        them (Deployments, Services, download Jobs, pods) is gone too; the cache stays."""
        self.kubectl("delete", "md", "--all", "--wait=true", timeout=timeout)
        made_by_berth = f"{MANAGED_BY_LABEL}={MANAGED_BY[MANAGED_BY_LABEL]}"

        def left() -> str:
            found = self.kubectl(
                "get", "deployments,services,jobs,pods", "-l", made_by_berth, "-o", "wide"
            )
            return found.stdout.strip()

        deadline = time.monotonic() + timeout
        while remaining := left():
            assert time.monotonic() < deadline, (
                f"objects of deleted models still there after {timeout:.0f} s:\n{remaining}"
            )
            time.sleep(0.5)

    @contextmanager
    def operator_on_host(self) -> Iterator[OperatorProcess]:
        """The chart's operator scaled to zero, and the same configuration run as a process of
        this host, for tests that kill it at will (the kubelet paces a pod's restarts with its
        back-off); the chart's operator is back when the block ends."""
        name = RELEASE  # the chart's operator Deployment
        deployment = json.loads(self.system("get", "deployment", name, "-o", "json").stdout)
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        env = {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}
        env["POD_NAMESPACE"] = SYSTEM_NAMESPACE  # the chart's Lease, which its pod released
        self.system("scale", "deployment", name, "--replicas=0")
        self.system(
            "wait",
            "--for=delete",
            "pod",
            "-l",
            "app.kubernetes.io/name=berth-operator",
            "--timeout=60s",
            timeout=70,
        )
        assert self.plane is not None
        workdir = self.workdir / "operator-on-host"
        workdir.mkdir(exist_ok=True)
        process = OperatorProcess(self.plane, workdir, extra_env=env)
        try:
            process.start()
            yield process
        finally:
            process.stop()
            self.system("scale", "deployment", name, "--replicas=1")
            self.system("rollout", "status", "deployment", name, "--timeout=120s", timeout=130)

    def retag(self, name: str, new_tag: str) -> str:
        """Tags image `name` anew in the local registry (the same content, as a release that
        changed nothing in it would) and uses that reference from the next upgrade on."""
        self.images[name] = registry.tag(self.images[name], new_tag)
        return self.images[name]
