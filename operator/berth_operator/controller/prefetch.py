"""Image prefetch: a DaemonSet per engine image in use, which keeps that image on every node that
could run the model's pods, so a first start or a scale from zero on such a node pays no pull.

One DaemonSet per namespace, image and placement: the resources that use the same image on the
same nodes own it together (like a shared download Job), and it goes with the last of them.
Its pod sleeps in the engine's image with no GPU and almost no CPU or memory: a running
container is what keeps the kubelet's image garbage collector off the image.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from berth_operator.api.metadata import (
    API_VERSION,
    COMPONENT_LABEL,
    KIND,
    MANAGED_BY,
    PREFETCH_COMPONENT,
    PREFETCH_KEY_LABEL,
)
from berth_operator.config import OperatorConfig
from berth_operator.controller.resource import ModelDeployment
from berth_operator.controller.security import (
    restricted_container_security,
    restricted_pod_security,
)
from berth_operator.controller.workload import deployment_image, tolerations

PREFETCH_CONTAINER = "image"
#: what the prefetch container asks for: it only sleeps
PREFETCH_RESOURCES = {
    "requests": {"cpu": "1m", "memory": "8Mi"},
    "limits": {"cpu": "10m", "memory": "16Mi"},
}


@dataclass(frozen=True)
class PrefetchTarget:
    """An image, and the nodes (as a pod's scheduling fields) it should be kept on."""

    image: str
    placement: tuple[tuple[str, str], ...]  # (field, its JSON), sorted: hashable, comparable

    @property
    def key(self) -> str:
        text = json.dumps([self.image, self.placement])
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    @property
    def name(self) -> str:
        return f"berth-prefetch-{self.key}"

    @property
    def scheduling(self) -> dict[str, Any]:
        return {field: json.loads(value) for field, value in self.placement}


def _placement(md: ModelDeployment, config: OperatorConfig) -> tuple[tuple[str, str], ...]:
    """The model pods' node selection: their node selector (plus the GPU nodes' label for a GPU
    model, as the pods' GPU request would select them), node affinity and tolerations."""
    sched = md.spec.scheduling
    node_selector = dict((sched and sched.node_selector) or {})
    if md.spec.resources.gpus:
        node_selector = {**config.prefetch_gpu_node_selector, **node_selector}
    node_affinity = ((sched and sched.affinity) or {}).get("nodeAffinity")
    fields: dict[str, Any] = {
        "nodeSelector": node_selector,
        "affinity": {"nodeAffinity": node_affinity} if node_affinity else None,
        "tolerations": tolerations(md),
    }
    return tuple(sorted((k, json.dumps(v, sort_keys=True)) for k, v in fields.items() if v))


def prefetch_targets(
    md: ModelDeployment, config: OperatorConfig, kept_image: str | None
) -> list[PrefetchTarget]:
    """What `md` keeps on its nodes: the image its pods run, and, while an engine image upgrade
    has not reached it yet, the image it will move to; nothing when prefetch is off."""
    if not config.image_prefetch:
        return []
    images = [deployment_image(md, config, kept_image)]
    if kept_image:
        images.append(config.images[md.spec.engine])
    placement = _placement(md, config)
    return [PrefetchTarget(image, placement) for image in dict.fromkeys(images)]


def prefetch_owners(found: dict[str, Any] | None, md: ModelDeployment) -> list[dict[str, Any]]:
    """The resources that own the DaemonSet: those already named on it, and `md`."""
    refs = [
        ref
        for ref in ((found or {}).get("metadata", {}).get("ownerReferences") or [])
        if ref.get("kind") == KIND and ref.get("apiVersion") == API_VERSION and ref["uid"] != md.uid
    ]
    refs.append(md.owner_reference(controller=False))
    return sorted(refs, key=lambda ref: (ref["name"], ref["uid"]))


def render_prefetch(
    target: PrefetchTarget, namespace: str, owners: list[dict[str, Any]]
) -> dict[str, Any]:
    """The DaemonSet that keeps `target.image` on its nodes."""
    labels = {**MANAGED_BY, COMPONENT_LABEL: PREFETCH_COMPONENT, PREFETCH_KEY_LABEL: target.key}
    container = {
        "name": PREFETCH_CONTAINER,
        "image": target.image,
        "command": ["sleep", "infinity"],
        # on a node whose default runtime is NVIDIA's, a container that sets no devices would
        # see every GPU (CUDA images set NVIDIA_VISIBLE_DEVICES=all): this one sees none
        "env": [{"name": "NVIDIA_VISIBLE_DEVICES", "value": "void"}],
        "resources": PREFETCH_RESOURCES,
        "securityContext": restricted_container_security(),
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {
            "name": target.name,
            "namespace": namespace,
            "labels": labels,
            "annotations": {PREFETCH_KEY_LABEL: target.image},
            "ownerReferences": owners,
        },
        "spec": {
            "selector": {"matchLabels": {PREFETCH_KEY_LABEL: target.key}},
            "updateStrategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": "100%"},
            },
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "securityContext": restricted_pod_security(),
                    "terminationGracePeriodSeconds": 1,
                    "containers": [container],
                    **target.scheduling,
                },
            },
        },
    }
