"""The dashboard's GPU panel: per GPU node, GPUs allocatable and held by Berth's model servers."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

from berth_operator.api.metadata import (
    COMPONENT_LABEL,
    GPU_PRODUCT_LABEL,
    MODEL_DEPLOYMENT_LABEL,
    SERVER_COMPONENT,
)

GPU_RESOURCE = "nvidia.com/gpu"
MIG_RESOURCE_PREFIX = "nvidia.com/mig-"
ENDED_PHASES = frozenset({"Succeeded", "Failed"})

Counts = dict[str, int]


class PanelModel(BaseModel):
    """camelCase on the wire, like the rest of the API; read-only."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)


class ModelOnNode(PanelModel):
    """A ModelDeployment with running pods on a node, and the GPUs those pods hold there."""

    key: str
    namespace: str
    name: str
    pods: int
    requested: Counts


class GpuNode(PanelModel):
    """One GPU node: its GPU resources, what Berth's pods hold of them, and which models."""

    name: str
    product: str | None
    allocatable: Counts
    requested: Counts
    models: list[ModelOnNode]


class GpuPanel(PanelModel):
    """Every GPU node, sorted by name."""

    nodes: list[GpuNode]


def gpu_resource_names(model_deployments: Iterable[dict[str, Any]]) -> frozenset[str]:
    """Extended resources that count as GPUs beyond nvidia.com/gpu and MIG profiles: those the
    resources name in spec.resources.gpuResourceName."""
    named = {
        ((md.get("spec") or {}).get("resources") or {}).get("gpuResourceName")
        for md in model_deployments
    }
    return frozenset(name for name in named if name) | {GPU_RESOURCE}


def is_gpu_resource(resource: str, named: frozenset[str]) -> bool:
    return resource in named or resource.startswith(MIG_RESOURCE_PREFIX)


def count(quantity: Any) -> int:
    """An extended resource's quantity; the API only admits whole numbers for these."""
    try:
        return int(str(quantity))
    except ValueError:
        return 0


def _add(total: Counts, more: Counts) -> None:
    for resource, quantity in more.items():
        total[resource] = total.get(resource, 0) + quantity


def gpu_limits(pod: dict[str, Any], named: frozenset[str]) -> Counts:
    """GPUs a pod holds: the sum of its containers' limits of GPU resources."""
    held: Counts = {}
    for container in (pod.get("spec") or {}).get("containers") or []:
        limits = (container.get("resources") or {}).get("limits") or {}
        _add(held, {r: count(q) for r, q in limits.items() if is_gpu_resource(r, named)})
    return held


def placed_server_pods(pods: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Berth's model-server pods that are scheduled and have not terminated."""
    return [
        pod
        for pod in pods
        if (labels := pod["metadata"].get("labels") or {}).get(COMPONENT_LABEL) == SERVER_COMPONENT
        and labels.get(MODEL_DEPLOYMENT_LABEL)
        and (pod.get("spec") or {}).get("nodeName")
        and (pod.get("status") or {}).get("phase") not in ENDED_PHASES
    ]


def _models_on_nodes(
    pods: list[dict[str, Any]], named: frozenset[str]
) -> dict[str, list[ModelOnNode]]:
    """node name -> the ModelDeployments with pods there, sorted by key."""
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for pod in pods:
        meta = pod["metadata"]
        owner = meta["labels"][MODEL_DEPLOYMENT_LABEL]
        groups[(pod["spec"]["nodeName"], meta["namespace"], owner)].append(pod)
    on_nodes: dict[str, list[ModelOnNode]] = defaultdict(list)
    for (node, namespace, name), group in sorted(groups.items()):
        held: Counts = {}
        for pod in group:
            _add(held, gpu_limits(pod, named))
        model = ModelOnNode(
            key=f"{namespace}/{name}",
            namespace=namespace,
            name=name,
            pods=len(group),
            requested=held,
        )
        on_nodes[node].append(model)
    return on_nodes


def gpu_panel(
    nodes: Iterable[dict[str, Any]],
    pods: Iterable[dict[str, Any]],
    model_deployments: Iterable[dict[str, Any]],
) -> GpuPanel:
    """The panel: nodes with a GPU resource in their allocatable, or holding a Berth pod's GPUs.
    Requested is what Berth's placed pods hold (limits), not what other workloads use."""
    named = gpu_resource_names(model_deployments)
    models = _models_on_nodes(placed_server_pods(pods), named)
    panel = []
    for node in sorted(nodes, key=lambda n: n["metadata"]["name"]):
        name = node["metadata"]["name"]
        allocatable = {
            resource: count(quantity)
            for resource, quantity in ((node.get("status") or {}).get("allocatable") or {}).items()
            if is_gpu_resource(resource, named)
        }
        on_node = models.get(name, [])
        requested = dict.fromkeys(allocatable, 0)
        for model in on_node:
            _add(requested, model.requested)
        if not allocatable and not any(requested.values()):
            continue
        panel.append(
            GpuNode(
                name=name,
                product=(node["metadata"].get("labels") or {}).get(GPU_PRODUCT_LABEL),
                allocatable=allocatable,
                requested=requested,
                models=on_node,
            )
        )
    return GpuPanel(nodes=panel)
