"""The autoscaler's decisions, the load it reads from the Leases, and the one list of reasons a
model cannot start for."""

from __future__ import annotations

import pytest
from berth_gateway.autoscaler import History, ModelLoad, decide, merge, replicas_for
from berth_gateway.leases import _encode, decode
from berth_operator.api.modeldeployment import Autoscaling, Condition, ModelDeploymentSpec
from berth_operator.controller.status import cannot_start
from pydantic import ValidationError

POLICY = Autoscaling(
    min_replicas=0, max_replicas=4, target_in_flight=2, scale_down_delay_seconds=60
)
T0 = 1_000_000.0


def looked_since(start: float) -> History:
    return History(since=start)


def test_replicas_follow_the_load_within_the_bounds():
    assert [replicas_for(n, POLICY) for n in (0, 1, 2, 3, 8, 100)] == [0, 1, 1, 2, 4, 4]
    floor = POLICY.model_copy(update={"min_replicas": 1})
    assert replicas_for(0, floor) == 1


def test_merge_adds_requests_and_keeps_the_latest_activity():
    a, b = ("ns", "a"), ("ns", "b")
    merged = merge([{a: ModelLoad(2, T0)}, {a: ModelLoad(1, T0 + 5), b: ModelLoad(0, T0 - 9)}])
    assert merged == {a: ModelLoad(3, T0 + 5), b: ModelLoad(0, T0 - 9)}


def test_up_at_once_even_before_the_delay_was_watched():
    history = looked_since(T0)
    assert decide(POLICY, 0, ModelLoad(1, T0), history, T0) == 1
    assert decide(POLICY, 1, ModelLoad(5, T0), history, T0 + 1) == 3


def test_down_only_after_the_delay_and_to_the_peak_within_it():
    history = looked_since(T0)
    assert decide(POLICY, 3, ModelLoad(6, T0), history, T0) == 3
    # the load drops: a newly elected replica has not watched a whole delay yet
    assert decide(POLICY, 3, ModelLoad(1, T0 + 10), history, T0 + 10) == 3
    # within the delay of the peak: kept
    assert decide(POLICY, 3, ModelLoad(1, T0 + 59), history, T0 + 59) == 3
    # the peak left the window: down to what the load needs, not to zero while requests run
    assert decide(POLICY, 3, ModelLoad(1, T0 + 61), history, T0 + 61) == 1


def test_zero_only_when_no_request_started_or_ended_within_the_delay():
    history = looked_since(T0)
    # every look saw nothing in flight, but a short request ended between two looks
    for t in range(0, 70, 10):
        assert decide(POLICY, 1, ModelLoad(0, T0 + 30), history, T0 + t) == 1
    assert decide(POLICY, 1, ModelLoad(0, T0 + 30), history, T0 + 91) == 0
    assert decide(POLICY, 0, ModelLoad(0, T0 + 30), history, T0 + 92) == 0


def test_a_scale_up_by_another_replica_starts_the_delay_again():
    history = looked_since(T0)
    assert decide(POLICY, 0, ModelLoad(0, 0.0), history, T0 + 100) == 0
    # another replica scaled it from zero for a request it has not published yet
    assert decide(POLICY, 1, ModelLoad(0, 0.0), history, T0 + 101) == 1
    assert decide(POLICY, 1, ModelLoad(0, 0.0), history, T0 + 160) == 1
    assert decide(POLICY, 1, ModelLoad(0, 0.0), history, T0 + 161) == 0


def test_replicas_outside_the_bounds_are_brought_back_at_once():
    floor = POLICY.model_copy(update={"min_replicas": 2})
    assert decide(floor, 0, ModelLoad(0, 0.0), looked_since(T0), T0) == 2
    assert decide(POLICY, 9, ModelLoad(0, 0.0), looked_since(T0), T0) == 4


def test_the_load_annotation_round_trips_and_bad_entries_are_skipped():
    load = {("team-a", "chat"): ModelLoad(3, T0 + 0.25), ("b", "x"): ModelLoad(0, T0)}
    assert decode(_encode(load)) == load
    assert decode('{"a/b": [1, 2.0], "nokey": [1, 2], "c/d": ["x", 1], "e/f": 3}') == {
        ("a", "b"): ModelLoad(1, 2.0)
    }
    assert decode("not json") == {} and decode(None) == {}


def condition(type_: str, status: str, reason: str, message: str = "") -> Condition:
    return Condition(type=type_, status=status, reason=reason, message=message)


@pytest.mark.parametrize(
    ("conditions", "blocked_by"),
    [
        # a Failed phase: Stalled=True, its Ready condition says why
        (
            [
                condition("Ready", "False", "CrashLoopBackOff", "pod x keeps crashing"),
                condition("Stalled", "True", "CrashLoopBackOff"),
            ],
            "CrashLoopBackOff",
        ),
        ([condition("Ready", "False", "Unschedulable", "no node")], "Unschedulable"),
        ([condition("Ready", "False", "CacheClaimPending")], "CacheClaimPending"),
        # at zero replicas, a download that failed
        (
            [
                condition("Ready", "True", "ScaledToZero"),
                condition("CacheReady", "False", "AuthRequired", "gated"),
            ],
            "AuthRequired",
        ),
        # still coming: not blocked
        ([condition("Ready", "False", "Starting")], None),
        (
            [
                condition("Ready", "True", "ScaledToZero"),
                condition("CacheReady", "False", "Downloading"),
            ],
            None,
        ),
        (
            [
                condition("Ready", "True", "ScaledToZero"),
                condition("CacheReady", "True", "Downloaded"),
            ],
            None,
        ),
        ([], None),
    ],
)
def test_cannot_start(conditions: list[Condition], blocked_by: str | None):
    found = cannot_start(conditions)
    assert (found.reason if found else None) == blocked_by


def test_contradictory_autoscaling_is_refused_naming_the_field():
    base = {"engine": "pyannote", "model": {"repo": "a/b"}}
    with pytest.raises(ValidationError, match=r"autoscaling\.minReplicas \(2\)"):
        ModelDeploymentSpec.model_validate(
            {**base, "autoscaling": {"minReplicas": 2, "maxReplicas": 1}}
        )
    with pytest.raises(
        ValidationError, match=r"replicas \(3\) must not exceed autoscaling\.maxReplicas"
    ):
        ModelDeploymentSpec.model_validate(
            {**base, "replicas": 3, "autoscaling": {"maxReplicas": 2}}
        )
