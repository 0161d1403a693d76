"""Served model names across the watched namespaces: which resource holds a name that several
claim, and the ModelNameConflict verdict of the others.

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


def name_verdict(md: ModelDeployment, others: Iterable[ModelDeployment]) -> Verdict:
    """ModelNameConflict: True when an older resource among `others` claims md's served name."""
    served = served_model_name(md.spec, md.name)
    holder = min(
        (
            other
            for other in others
            if (other.namespace, other.name) != (md.namespace, md.name)
            and served_model_name(other.spec, other.name) == served
        ),
        key=_order,
        default=None,
    )
    if holder is None or _order(md) < _order(holder):
        return Verdict(
            "False", "ModelNameHeld", f"the gateway routes model '{served}' to this resource"
        )
    fix = (
        "set another spec.vllm.servedModelName"
        if md.spec.engine == "vllm"
        else "create the resource under another name"
    )
    return Verdict(
        "True",
        "ModelNameTaken",
        f"model name '{served}' is held by the older ModelDeployment {holder.namespace}/"
        f"{holder.name} (created {holder.created or 'earlier'}): the gateway routes '{served}' "
        f"there, not here; {fix}, or delete the other resource",
    )


class ServedNames:
    """The resources that claim each served name, as the store last saw them."""

    def __init__(self) -> None:
        self._claims: dict[str, dict[Key, ModelDeployment]] = {}
        self._held: dict[Key, ModelDeployment] = {}

    def set(self, key: Key, md: ModelDeployment | None) -> set[Key]:
        """Records `md` (None: its spec does not parse) under `key`; returns the other resources
        whose contest changed (their name's claimants came, went or moved), to reconcile."""
        before = self._held.get(key)
        if md is not None and before is not None and _same_claim(md, before):
            self._held[key] = md
            self._claims[served_model_name(md.spec, md.name)][key] = md
            return set()
        touched = self._drop(key)
        if md is not None:
            name = served_model_name(md.spec, md.name)
            self._held[key] = md
            self._claims.setdefault(name, {})[key] = md
            touched |= set(self._claims[name])
        touched.discard(key)
        return touched

    def remove(self, key: Key) -> set[Key]:
        """Forgets `key`; returns the other resources that claimed its name."""
        return self._drop(key) - {key}

    def rivals(self, md: ModelDeployment) -> list[ModelDeployment]:
        """The other resources that claim md's served name."""
        claims = self._claims.get(served_model_name(md.spec, md.name), {})
        return [other for key, other in claims.items() if key != (md.namespace, md.name)]

    def _drop(self, key: Key) -> set[Key]:
        before = self._held.pop(key, None)
        if before is None:
            return set()
        name = served_model_name(before.spec, before.name)
        claims = self._claims[name]
        claims.pop(key, None)
        if not claims:
            del self._claims[name]
        return set(claims)


def _same_claim(md: ModelDeployment, before: ModelDeployment) -> bool:
    return (served_model_name(md.spec, md.name), md.created) == (
        served_model_name(before.spec, before.name),
        before.created,
    )
