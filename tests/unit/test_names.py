"""Served model names across the watched namespaces: the older claimant keeps a name, the newer
gets ModelNameConflict naming it; the index says whom a change concerns."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

from berth_operator.config import OperatorConfig
from berth_operator.controller.events import transitions
from berth_operator.controller.names import ServedNames, name_verdict
from berth_operator.controller.status import derive_status
from berth_operator.operator import Operator

from tests.unit.factories import md, observed

EARLY, LATE = "2026-12-01T10:00:00Z", "2026-12-01T11:00:00Z"


def claimant(name: str, namespace: str = "ns", created: str = EARLY, **spec):
    return dataclasses.replace(md(name, **spec), namespace=namespace, created=created)


def qwen(name: str, **kw):
    return claimant(name, engine="vllm", vllm={"servedModelName": "qwen"}, **kw)


def test_the_newer_claimant_gets_the_condition_naming_the_older():
    older, newer = qwen("a", created=EARLY), qwen("b", created=LATE)
    verdict = name_verdict(newer, [older])
    assert (verdict.status, verdict.reason) == ("True", "ModelNameTaken")
    assert "ns/a" in verdict.message and "'qwen'" in verdict.message
    assert "spec.vllm.servedModelName" in verdict.message, "the fix for a vLLM resource"
    assert name_verdict(older, [newer]).reason == "ModelNameHeld"


def test_names_are_contested_across_namespaces_and_ties_go_by_namespace_then_name():
    # non-vLLM engines serve the resource's name: the same name in two namespaces collides
    first, second = claimant("canary", "team-a"), claimant("canary", "team-b")
    assert name_verdict(second, [first]).status == "True"
    assert "team-a/canary" in name_verdict(second, [first]).message
    assert name_verdict(first, [second]).status == "False"
    assert name_verdict(qwen("y"), [qwen("x")]).status == "True"


def test_other_names_and_the_resource_itself_are_no_conflict():
    alone = claimant("canary", created=LATE)
    assert name_verdict(alone, [alone, claimant("other"), qwen("canary2")]).status == "False"


def test_derive_status_writes_the_condition_and_leaves_ready_alone():
    newer = qwen("b", created=LATE)
    with_rival = derive_status(observed(newer, name_rivals=[qwen("a")]), OperatorConfig(), LATE)
    alone = derive_status(observed(newer), OperatorConfig(), LATE)
    conditions = {c["type"]: c for c in with_rival["conditions"]}
    assert conditions["ModelNameConflict"]["status"] == "True"
    assert {c["type"]: c["reason"] for c in alone["conditions"]}["ModelNameConflict"] == (
        "ModelNameHeld"
    )
    assert [c for c in with_rival["conditions"] if c["type"] != "ModelNameConflict"] == [
        c for c in alone["conditions"] if c["type"] != "ModelNameConflict"
    ], "Ready and the other conditions do not depend on the name"
    assert with_rival["phase"] == alone["phase"]


def test_the_condition_is_quiet_when_false_and_a_warning_when_true():
    newer = qwen("b", created=LATE)
    alone = derive_status(observed(newer), OperatorConfig(), LATE)["conditions"]
    assert "ModelNameConflict" not in {c.type for c in transitions(None, alone)}
    before = md(status={"conditions": alone})
    taken = derive_status(observed(newer, name_rivals=[qwen("a")]), OperatorConfig(), LATE)
    change = next(
        c
        for c in transitions(before.status.conditions, taken["conditions"])
        if c.type == "ModelNameConflict"
    )
    assert change.warning and change.reason == "ModelNameTaken"


def test_the_index_says_whom_a_change_concerns():
    names = ServedNames()
    a, b = qwen("a"), qwen("b", created=LATE)
    assert names.set(("ns", "a"), a) == set()
    assert names.set(("ns", "b"), b) == {("ns", "a")}
    assert names.rivals(b) == [a]
    # a status update keeps the claim: nobody else to reconcile
    assert names.set(("ns", "a"), dataclasses.replace(a, generation=9)) == set()
    # a renames its served name: the claimants of the old name are concerned
    renamed = claimant("a", engine="vllm", vllm={"servedModelName": "other"})
    assert names.set(("ns", "a"), renamed) == {("ns", "b")}
    assert names.rivals(b) == []
    names.set(("ns", "a"), a)
    # the older goes away (deleted, or its spec no longer parses): the newer is reconciled
    assert names.remove(("ns", "a")) == {("ns", "b")}
    assert names.rivals(b) == []
    names.set(("ns", "a"), a)
    assert names.set(("ns", "a"), None) == {("ns", "b")}


class Keys:
    """Stands in for the work queue: records the keys the operator queues."""

    def __init__(self) -> None:
        self.added: list[tuple[str, str]] = []

    def add(self, key: tuple[str, str]) -> None:
        self.added.append(key)


def body(name: str, namespace: str, created: str, version: str) -> dict:
    return {
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": f"uid-{namespace}-{name}",
            "creationTimestamp": created,
            "resourceVersion": version,
        },
        "spec": {"engine": "pyannote", "model": {"repo": "org/model"}},
    }


def test_the_operator_reconciles_the_rivals_of_a_resource_that_comes_or_goes():
    operator = Operator(OperatorConfig(), kube=SimpleNamespace(create=None))
    operator.queue = Keys()
    older, newer = body("canary", "a", EARLY, "1"), body("canary", "b", LATE, "2")
    operator.on_model_deployment("ADDED", older)
    operator.on_model_deployment("ADDED", newer)
    assert operator.queue.added == [("a", "canary"), ("b", "canary"), ("a", "canary")]
    operator.queue.added.clear()
    operator.on_model_deployment("MODIFIED", {**newer, "status": {"phase": "Pending"}})
    assert operator.queue.added == [("b", "canary")], "a status change concerns no one else"
    operator.queue.added.clear()
    operator.on_model_deployment("DELETED", older)
    assert operator.queue.added == [("a", "canary"), ("b", "canary")]


def test_an_adapter_name_is_claimed_like_a_served_name():
    tuned = claimant(
        "tuned", engine="vllm", vllm={"adapters": [{"name": "qwen", "repo": "acme/lora"}]}
    )
    newer = qwen("b", created=LATE)
    verdict = name_verdict(newer, [tuned])
    assert verdict.status == "True" and "model name 'qwen'" in verdict.message
    later_adapter = dataclasses.replace(tuned, created=LATE)
    verdict = name_verdict(later_adapter, [qwen("a")])
    assert verdict.status == "True" and "adapter name 'qwen'" in verdict.message
    assert "rename the adapter in spec.vllm.adapters" in verdict.message
    names = ServedNames()
    names.set(("ns", "tuned"), tuned)
    assert names.set(("ns", "b"), newer) == {("ns", "tuned")}
    assert [r.name for r in names.rivals(tuned)] == ["b"]
    assert names.remove(("ns", "b")) == {("ns", "tuned")} and names.rivals(tuned) == []
