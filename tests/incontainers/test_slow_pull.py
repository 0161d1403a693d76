"""A model server's image pull on the real node, made slow (a paced way to the local registry):
the resource says what the node is pulling, where and since when, while it happens; and with
image prefetch on, the pull happens before the model's pod exists, so its start pays none."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.cluster.realnode import LOCAL_REGISTRY
from tests.incontainers.slow_registry import ThrottledProxy, push_random_image
from tests.incontainers.stack import ContainerStack
from tests.incontainers.tiny_models import tiny_model_manifest
from tests.realnode.waiting import wait_until

pytestmark = pytest.mark.cluster

MiB = 2**20
LAYER_BYTES = 24 * MiB
PULL_RATE = 2 * MiB  # about 12 s of pulling


@pytest.fixture
def slow_registry(stack: ContainerStack) -> Iterator[ThrottledProxy]:
    host, port = LOCAL_REGISTRY.split(":")
    with ThrottledProxy((host, int(port)), PULL_RATE) as proxy:
        stack.node.trust_plain_http_registry(proxy.host)
        yield proxy
    stack.clear_models()


@pytest.fixture
def prefetching(stack: ContainerStack) -> Iterator[None]:
    """The chart's imagePrefetch turned on for the test, then off again."""
    stack.upgrade(imagePrefetch={"enabled": True})
    yield
    stack.upgrade(imagePrefetch={"enabled": False})


def fresh_slow_image(name: str, proxy: ThrottledProxy) -> str:
    """An image of fresh random bytes (no node holds it), pulled at PULL_RATE through `proxy`."""
    tag = uuid.uuid4().hex[:12]
    pushed = push_random_image(LOCAL_REGISTRY, f"berth-test/{name}", tag, LAYER_BYTES)
    return pushed.replace(LOCAL_REGISTRY, proxy.host, 1)


def pod_names(stack: ContainerStack, selector: str) -> list[str]:
    return [p["metadata"]["name"] for p in stack.kubectl.get("pods", None, "-l", selector)["items"]]


def kubelet_says(stack: ContainerStack, pod: str, reason: str) -> list[str]:
    """The messages of the pod's events with `reason` (the kubelet's Pulling, Pulled...)."""
    events = stack.kubectl.get("events", None, "--field-selector", f"involvedObject.name={pod}")
    return [e.get("message", "") for e in events["items"] if e.get("reason") == reason]


def pods_ready(md: dict[str, Any]) -> dict[str, Any]:
    conditions = (md.get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c["type"] == "PodsReady"), {})


def test_pulling_image_names_the_image_and_the_node_while_the_pull_runs(
    stack: ContainerStack, slow_registry: ThrottledProxy
) -> None:
    image = fresh_slow_image("slow-pull", slow_registry)
    manifest = tiny_model_manifest("slow-pull", "berth-test/tiny-diarization")
    manifest["spec"]["image"] = image
    stack.kubectl.apply(manifest)

    pulling = stack.kubectl.wait_for(
        "md",
        "slow-pull",
        lambda md: pods_ready(md).get("reason") == "PullingImage",
        timeout=300,
        interval=0.5,
        what="PodsReady=PullingImage",
    )
    message = pods_ready(pulling)["message"]
    assert f"on node {stack.node.name} is pulling image {image} (since " in message, message
    ready = next(c for c in pulling["status"]["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == "PullingImage"  # what kubectl get md shows as its Reason
    assert pulling["status"]["phase"] == "Starting"
    seen_at = time.monotonic()

    # once the pull ends, the reason moves on (this image cannot run: its own reason then)
    wait_until(
        lambda: pods_ready(stack.kubectl.get("md", "slow-pull")).get("reason") != "PullingImage",
        timeout=120,
        what="the pull ended",
    )
    assert time.monotonic() - seen_at < LAYER_BYTES / PULL_RATE + 30


def test_a_prefetched_image_is_on_the_node_before_the_model_scales_from_zero(
    stack: ContainerStack, slow_registry: ThrottledProxy, prefetching: None
) -> None:
    image = fresh_slow_image("prefetched", slow_registry)
    manifest = tiny_model_manifest("primed", "berth-test/tiny-diarization")
    manifest["spec"].update(image=image, replicas=0)
    stack.kubectl.apply(manifest)

    # no pod of the model's yet: its image comes to the node through the prefetch DaemonSet
    prefetch = "app.kubernetes.io/component=image-prefetch"
    wait_until(lambda: bool(pod_names(stack, prefetch)), "prefetch pod", timeout=60)
    [holder] = pod_names(stack, prefetch)
    wait_until(
        lambda: any(image in m for m in kubelet_says(stack, holder, "Pulled")),
        "image pulled by the prefetch pod",
        timeout=LAYER_BYTES / PULL_RATE + 90,
    )
    server = "berth.dev/modeldeployment=primed,app.kubernetes.io/component=model-server"
    assert not pod_names(stack, server)

    # scaled from zero, the model's pod finds the image on the node: no pull at all
    stack.kubectl("scale", "md", "primed", "--replicas=1")
    wait_until(lambda: bool(pod_names(stack, server)), "model server pod", timeout=60)
    [pod] = pod_names(stack, server)
    wait_until(lambda: bool(kubelet_says(stack, pod, "Pulled")), "the kubelet's word", timeout=60)
    assert "already present on machine" in kubelet_says(stack, pod, "Pulled")[0]
    assert not kubelet_says(stack, pod, "Pulling")
