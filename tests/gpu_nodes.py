"""Kwok GPU nodes of one test's own: only that test's ModelDeployments may land there."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

from tests.cluster import ControlPlane
from tests.cluster.nodes import GPU_TAINT, FakeNode

NODE_LABEL = "berth.dev/test-node"


@contextmanager
def own_gpu_nodes(cluster: ControlPlane, namespace: str, *nodes: FakeNode) -> Iterator[list[str]]:
    """Creates `nodes`, renamed `<namespace>-<name>`, labelled and tainted for `namespace` only;
    yields their names and deletes them afterwards."""
    taint = {"key": NODE_LABEL, "value": namespace, "effect": "NoSchedule"}
    own = [
        replace(
            node,
            name=f"{namespace}-{node.name}",
            labels={**node.labels, NODE_LABEL: namespace},
            taints=(GPU_TAINT, taint),
        )
        for node in nodes
    ]
    cluster.add_nodes(own)
    try:
        yield [node.name for node in own]
    finally:
        for node in own:
            cluster.kubectl("delete", "node", node.name, "--wait=false", check=False)


def on_own_nodes(namespace: str) -> dict[str, Any]:
    """spec.scheduling of a ModelDeployment that must run on its test's own nodes."""
    return {
        "nodeSelector": {NODE_LABEL: namespace},
        "tolerations": [
            {"key": NODE_LABEL, "operator": "Equal", "value": namespace, "effect": "NoSchedule"}
        ],
    }
