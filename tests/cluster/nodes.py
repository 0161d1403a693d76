"""Fake nodes for kwok: GPU nodes that look like NVIDIA GPU feature discovery labelled them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

KWOK_ANNOTATION = "kwok.x-k8s.io/node"
GPU_TAINT = {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}
# The real node (tests/cluster/realnode.py) carries this label and taint: only pods that select
# and tolerate it land there, and kwok's fake nodes keep everything else.
REAL_NODE_LABEL = "berth.dev/real-node"
REAL_NODE_TAINT = {"key": REAL_NODE_LABEL, "value": "true", "effect": "NoSchedule"}


@dataclass(frozen=True)
class FakeNode:
    """One node kwok pretends to run; `gpus` > 0 adds GPU capacity, GFD labels and the GPU taint."""

    name: str
    gpus: int = 0
    gpu_resource_name: str = "nvidia.com/gpu"
    gpu_product: str = "NVIDIA-H200"
    gpu_memory_mib: int = 143771
    cpu: str = "64"
    memory: str = "512Gi"
    pods: str = "110"
    #: a GPU node's local disk: the engines request ephemeral storage for /tmp
    ephemeral_storage: str = "3500Gi"
    labels: dict[str, str] = field(default_factory=dict)
    taints: tuple[dict[str, str], ...] | None = None

    def manifest(self) -> dict[str, Any]:
        """The Node object to create; kwok manages it because of its annotation."""
        capacity = {
            "cpu": self.cpu,
            "memory": self.memory,
            "pods": self.pods,
            "ephemeral-storage": self.ephemeral_storage,
        }
        labels = {
            "kubernetes.io/hostname": self.name,
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64",
            "type": "kwok",
        }
        taints: list[dict[str, str]] = []
        if self.gpus:
            capacity[self.gpu_resource_name] = str(self.gpus)
            labels |= {
                "nvidia.com/gpu.present": "true",
                "nvidia.com/gpu.product": self.gpu_product,
                "nvidia.com/gpu.memory": str(self.gpu_memory_mib),
                "nvidia.com/gpu.count": str(self.gpus),
            }
            taints.append(GPU_TAINT)
        labels |= self.labels
        if self.taints is not None:
            taints = list(self.taints)
        return {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": self.name,
                "labels": labels,
                "annotations": {KWOK_ANNOTATION: "fake"},
            },
            "spec": {"taints": taints},
            "status": {"capacity": capacity, "allocatable": capacity},
        }


def default_nodes() -> list[FakeNode]:
    """Two 8-GPU nodes and one CPU-only node."""
    return [
        FakeNode("gpu-node-0", gpus=8),
        FakeNode("gpu-node-1", gpus=8),
        FakeNode("cpu-node-0"),
    ]
