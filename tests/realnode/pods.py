"""Pods for the real node: the test image, placed on the real node, under the restricted level."""

from __future__ import annotations

from typing import Any

from tests.cluster.nodes import REAL_NODE_LABEL, REAL_NODE_TAINT
from tests.cluster.realnode import TESTBOX_IMAGE

RESTRICTED_LABEL = "pod-security.kubernetes.io/enforce"


def box_container(name: str, *args: str, **extra: Any) -> dict[str, Any]:
    """A container running `testbox ARGS...` as a non-root user on a read-only root filesystem,
    reporting its last log lines when it fails."""
    return {
        "name": name,
        "image": TESTBOX_IMAGE,
        "imagePullPolicy": "Never",
        "args": list(args),
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "runAsUser": 65532,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        **extra,
    }


def real_node_pod(name: str, containers: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    """A pod that selects and tolerates the real node."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "nodeSelector": {REAL_NODE_LABEL: "true"},
            "tolerations": [{**REAL_NODE_TAINT, "operator": "Equal"}],
            "terminationGracePeriodSeconds": 2,
            "containers": containers,
            **spec,
        },
    }
