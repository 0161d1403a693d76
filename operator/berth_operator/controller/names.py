"""Served model names (and LoRA adapters' names) across the watched namespaces: which resource
holds a name that several claim, and the ModelNameConflict verdict of the others.

The gateway routes a name to its oldest claimant: creation time, then namespace, then name.
Names are unique across every watched namespace, not per namespace, since clients send one
bare `model` to one gateway; the gateway and the operator watch the same namespaces (the
chart's `watchNamespaces`), so the operator's store holds every claimant the gateway sees.
"""

from __future__ import annotations

from collections.abc import Iterable

from berth_operator.controller.conditions import Verdict
from berth_operator.controller.engines import served_model_name
from berth_operator.controller.resource import ModelDeployment

Key = tuple[str, str]


def claim_order(created: str, namespace: str, name: str) -> tuple[str, str, str]:
    """Who keeps a contested name: the smallest of these (RFC 3339 times sort as text)."""
    return (created, namespace, name)


def _order(md: ModelDeployment) -> tuple[str, str, str]:
    return claim_order(md.created, md.namespace, md.name)


def claimed_names(md: ModelDeployment) -> tuple[str, ...]:
    """The names a resource claims: its served name, then its LoRA adapters' names."""
    adapters = md.spec.adapters
    return (served_model_name(md.spec, md.name), *(a.name for a in adapters))


def name_verdict(md: ModelDeployment, others: Iterable[ModelDeployment]) -> Verdict:
    """ModelNameConflict: True when an older resource among `others` claims one of md's names
    (its served name, or one of its adapters')."""
    served = served_model_name(md.spec, md.name)
    for name in claimed_names(md):
        holder = min(
            (
                other
                for other in others
                if (other.namespace, other.name) != (md.namespace, md.name)
                and name in claimed_names(other)
            ),
            key=_order,
            default=None,
        )
        if holder is None or _order(md) < _order(holder):
            continue
        if name != served:
            fix = "rename the adapter in spec.vllm.adapters"
        elif md.spec.engine == "vllm":
            fix = "set another spec.vllm.servedModelName"
        else:
            fix = "create the resource under another name"
        what = "model name" if name == served else "adapter name"
        return Verdict(
            "True",
            "ModelNameTaken",
            f"{what} '{name}' is held by the older ModelDeployment {holder.namespace}/"
            f"{holder.name} (created {holder.created or 'earlier'}): the gateway routes '{name}' "
            f"there, not here; {fix}, or delete the other resource",
        )
    return Verdict(
        "False", "ModelNameHeld", f"the gateway routes model '{served}' to this resource"
    )


class ServedNames:
    """The resources that claim each name (served names and adapters'), as the store last saw
    them."""

    def __init__(self) -> None:
        self._claims: dict[str, dict[Key, ModelDeployment]] = {}
        self._held: dict[Key, ModelDeployment] = {}

    def set(self, key: Key, md: ModelDeployment | None) -> set[Key]:
        """Records `md` (None: its spec does not parse) under `key`; returns the other resources
        whose contest changed (their names' claimants came, went or moved), to reconcile."""
        before = self._held.get(key)
        if md is not None and before is not None and _same_claim(md, before):
            self._held[key] = md
            for name in claimed_names(md):
                self._claims[name][key] = md
            return set()
        touched = self._drop(key)
        if md is not None:
            self._held[key] = md
            for name in claimed_names(md):
                self._claims.setdefault(name, {})[key] = md
                touched |= set(self._claims[name])
        touched.discard(key)
        return touched

    def remove(self, key: Key) -> set[Key]:
        """Forgets `key`; returns the other resources that claimed one of its names."""
        return self._drop(key) - {key}

    def rivals(self, md: ModelDeployment) -> list[ModelDeployment]:
        """The other resources that claim one of md's names."""
        found: dict[Key, ModelDeployment] = {}
        for name in claimed_names(md):
            for key, other in self._claims.get(name, {}).items():
                if key != (md.namespace, md.name):
                    found[key] = other
        return list(found.values())

    def _drop(self, key: Key) -> set[Key]:
        before = self._held.pop(key, None)
        if before is None:
            return set()
        touched: set[Key] = set()
        for name in claimed_names(before):
            claims = self._claims.get(name, {})
            claims.pop(key, None)
            touched |= set(claims)
            if not claims:
                self._claims.pop(name, None)
        return touched


def _same_claim(md: ModelDeployment, before: ModelDeployment) -> bool:
    return (claimed_names(md), md.created) == (claimed_names(before), before.created)
