"""Whether an existing object is Berth's to write: Berth never changes an object it does not
control, whatever its name (a tenant may name a ModelDeployment after someone's Service)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from berth_operator.api.metadata import (
    DOWNLOAD_KEY_LABEL,
    MANAGED_BY,
    MANAGED_BY_LABEL,
    MODEL_DEPLOYMENT_LABEL,
)


@dataclass(frozen=True)
class NameConflict:
    """An object Berth needs to write exists and belongs to someone else."""

    kind: str
    name: str
    holder: str  # who holds it, in words

    @property
    def message(self) -> str:
        return (
            f"{self.kind} {self.name} already exists and {self.holder}: Berth leaves it "
            f"untouched and creates nothing for this ModelDeployment; rename the "
            f"ModelDeployment, or delete or rename the {self.kind}"
        )


def controller_of(obj: dict[str, Any]) -> dict[str, Any] | None:
    refs = obj["metadata"].get("ownerReferences") or []
    return next((ref for ref in refs if ref.get("controller")), None)


def _group(api_version: str) -> str:
    return api_version.rpartition("/")[0]


def _identifying(labels: dict[str, str]) -> dict[str, str]:
    """The labels that tie an object to one ModelDeployment or one download."""
    return {k: v for k, v in labels.items() if k in (MODEL_DEPLOYMENT_LABEL, DOWNLOAD_KEY_LABEL)}


def holder(existing: dict[str, Any], manifest: dict[str, Any]) -> str | None:
    """None when Berth controls `existing` as the object `manifest` describes; otherwise who
    holds it, in words.

    An object with a controller is Berth's when its controller is the manifest's: the same uid,
    or the same kind and name (a ModelDeployment deleted and created again under its name, whose
    old children the garbage collector has not removed yet: only that name could own them).
    An object without one is Berth's when it carries Berth's labels for the same resource or
    download: the download Role (its sharers own it together), or children orphaned by a
    delete with `--cascade=orphan`, adopted as Deployments adopt orphaned ReplicaSets.
    """
    wanted = controller_of(manifest)
    current = controller_of(existing)
    if current is not None:
        if wanted is not None and (
            current.get("uid") == wanted["uid"]
            or (
                current.get("kind") == wanted["kind"]
                and current.get("name") == wanted["name"]
                and _group(current.get("apiVersion", "")) == _group(wanted["apiVersion"])
            )
        ):
            return None
        return f"is controlled by {current.get('kind')} {current.get('name')}"
    labels = existing["metadata"].get("labels") or {}
    ours = _identifying(manifest["metadata"].get("labels") or {})
    if labels.get(MANAGED_BY_LABEL) == MANAGED_BY[MANAGED_BY_LABEL] and (
        _identifying(labels) == ours
    ):
        return None
    return "Berth did not create it"
