"""A ModelDeployment as the controller sees it: metadata plus the typed spec and status."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pydantic

from berth_operator.api.metadata import API_VERSION, KIND, REDOWNLOAD_ANNOTATION
from berth_operator.api.modeldeployment import ModelDeploymentSpec, ModelDeploymentStatus


@dataclass(frozen=True)
class ModelDeployment:
    """The parts of a ModelDeployment object that reconciling needs."""

    name: str
    namespace: str
    uid: str
    generation: int
    spec: ModelDeploymentSpec
    status: ModelDeploymentStatus
    annotations: Mapping[str, str] = field(default_factory=dict)
    deleting: bool = False
    #: metadata.creationTimestamp (RFC 3339; "" before the API server set it)
    created: str = ""

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> ModelDeployment:
        """Parses an API object; raises pydantic.ValidationError when the spec is not valid."""
        meta = body["metadata"]
        spec = ModelDeploymentSpec.model_validate(body.get("spec") or {})
        _check_adapter_names(spec, meta["name"])
        return cls(
            name=meta["name"],
            namespace=meta["namespace"],
            uid=meta["uid"],
            generation=int(meta.get("generation", 1)),
            spec=spec,
            status=ModelDeploymentStatus.model_validate(body.get("status") or {}),
            annotations=dict(meta.get("annotations") or {}),
            deleting=bool(meta.get("deletionTimestamp")),
            created=meta.get("creationTimestamp") or "",
        )

    @property
    def redownload_token(self) -> str | None:
        """The value of berth.dev/redownload: a new value asks for a clean re-download."""
        return self.annotations.get(REDOWNLOAD_ANNOTATION) or None

    def owner_reference(self, *, controller: bool = True) -> dict[str, Any]:
        """An ownerReference to this resource, for its children."""
        return {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "name": self.name,
            "uid": self.uid,
            "controller": controller,
            "blockOwnerDeletion": False,
        }


def _check_adapter_names(spec: ModelDeploymentSpec, name: str) -> None:
    """An adapter may not take the base model's default name, the resource's (the CRD's rule
    on the whole object says so at admission; this holds for objects stored before it)."""
    if spec.vllm is None or spec.vllm.served_model_name:
        return
    for index, adapter in enumerate(spec.vllm.adapters or []):
        if adapter.name == name:
            message = (
                f"an adapter's name must differ from the resource's name ({name}), which is "
                "the base model's name in the API while vllm.servedModelName is unset"
            )
            raise pydantic.ValidationError.from_exception_data(
                "ModelDeploymentSpec",
                [
                    {
                        "type": "value_error",
                        "loc": ("vllm", "adapters", index, "name"),
                        "input": adapter.name,
                        "ctx": {"error": ValueError(message)},
                    }
                ],
            )
