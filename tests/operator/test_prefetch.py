"""Image prefetch on the control plane: a DaemonSet per image in use and per placement, owned by
the resources that use it, following them as they change their image or go."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.cluster import ControlPlane
from tests.cluster.kubectl import Kubectl
from tests.operator.helpers import model_deployment
from tests.operator_process import OperatorProcess, cache_volume_manifest, install_crd

NAMESPACE = "prefetch"
CUSTOM = "registry.example/berth-pyannote:custom"

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def kubectl(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kubectl]:
    """A control plane of its own (two kwok GPU nodes, one CPU node) and an operator that
    prefetches, as the chart's imagePrefetch.enabled makes it."""
    with ControlPlane(workdir=tmp_path_factory.mktemp("prefetch")) as plane:
        install_crd(plane)
        plane.kubectl("create", "namespace", NAMESPACE)
        plane.apply(cache_volume_manifest("prefetch-cache", NAMESPACE, "berth-model-cache"))
        process = OperatorProcess(
            plane,
            tmp_path_factory.mktemp("prefetch-operator"),
            extra_env={"BERTH_IMAGE_PREFETCH": "true"},
        )
        process.start()
        try:
            yield Kubectl(plane, NAMESPACE)
        finally:
            process.stop()


def prefetched(kubectl: Kubectl) -> dict[str, tuple[list[str], int]]:
    """Each prefetch DaemonSet's image: its owners, and on how many nodes its pod is scheduled."""
    found = kubectl.get("daemonsets", None, "-l", "app.kubernetes.io/component=image-prefetch")
    return {
        ds["spec"]["template"]["spec"]["containers"][0]["image"]: (
            sorted(r["name"] for r in ds["metadata"].get("ownerReferences") or []),
            (ds.get("status") or {}).get("desiredNumberScheduled", 0),
        )
        for ds in found["items"]
    }


def wait_prefetched(kubectl: Kubectl, expected: dict[str, tuple[list[str], int]], what: str):
    def holds(_: Any) -> bool:
        return prefetched(kubectl) == expected

    holds.__name__ = what
    kubectl.wait_for("namespace", NAMESPACE, holds, timeout=60)


def test_daemonsets_follow_the_images_in_use(kubectl: Kubectl):
    default = "ghcr.io/berth-dev/berth-pyannote:0.1.0"
    gpu = {"gpus": 1}
    kubectl.apply(
        model_deployment("a", resources=gpu),
        model_deployment("b", repo="org/other", resources=gpu),
        model_deployment("c", image=CUSTOM, resources={"gpus": 0}),
    )
    # a and b share one DaemonSet on the two GPU nodes; c's image goes to the CPU node only
    wait_prefetched(
        kubectl, {default: (["a", "b"], 2), CUSTOM: (["c"], 1)}, "one DaemonSet per image"
    )

    # a moves to c's image and placement: it leaves the first DaemonSet and joins the other
    kubectl.apply(model_deployment("a", image=CUSTOM, resources={"gpus": 0}))
    wait_prefetched(kubectl, {default: (["b"], 2), CUSTOM: (["a", "c"], 1)}, "a moved")

    # the last user of an image gone, its DaemonSet goes
    kubectl("delete", "md", "b")
    wait_prefetched(kubectl, {CUSTOM: (["a", "c"], 1)}, "b's image no longer kept")
    kubectl("delete", "md", "a", "c")
    wait_prefetched(kubectl, {}, "nothing kept")
