"""The shared model cache: a PVC created when missing and never deleted by the operator."""

from __future__ import annotations

from typing import Any

from berth_operator.api.metadata import (
    CACHE_COMPONENT,
    COMPONENT_LABEL,
    KEEP_ANNOTATION,
    MANAGED_BY,
)
from berth_operator.config import OperatorConfig
from berth_operator.controller.resource import ModelDeployment


def cache_claim_name(md: ModelDeployment, config: OperatorConfig) -> str:
    """The PVC that holds this resource's weights."""
    return (md.spec.cache and md.spec.cache.claim_name) or config.cache_claim_name


def render_cache_claim(md: ModelDeployment, config: OperatorConfig) -> dict[str, Any]:
    """The PVC to create when missing; it has no owner, so no deletion ever takes it along."""
    cache = md.spec.cache
    storage_class = (cache and cache.storage_class_name) or config.cache_storage_class
    spec: dict[str, Any] = {
        "accessModes": list((cache and cache.access_modes) or config.cache_access_modes),
        "resources": {"requests": {"storage": str((cache and cache.size) or config.cache_size)}},
    }
    if storage_class:
        spec["storageClassName"] = storage_class
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {
            "name": cache_claim_name(md, config),
            "namespace": md.namespace,
            "labels": {**MANAGED_BY, COMPONENT_LABEL: CACHE_COMPONENT},
            "annotations": {KEEP_ANNOTATION: "Berth never deletes this claim"},
        },
        "spec": spec,
    }
