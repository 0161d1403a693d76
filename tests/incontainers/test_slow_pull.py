"""A model server's image pull on the real node, made slow (a paced way to the local registry):
the resource says what the node is pulling, where and since when, while it happens."""

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


def pods_ready(md: dict[str, Any]) -> dict[str, Any]:
    conditions = (md.get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c["type"] == "PodsReady"), {})


def test_pulling_image_names_the_image_and_the_node_while_the_pull_runs(
    stack: ContainerStack, slow_registry: ThrottledProxy
) -> None:
    tag = uuid.uuid4().hex[:12]  # fresh bytes: no node holds this image
    pushed = push_random_image(LOCAL_REGISTRY, "berth-test/slow-pull", tag, LAYER_BYTES)
    image = pushed.replace(LOCAL_REGISTRY, slow_registry.host, 1)
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
