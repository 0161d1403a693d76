"""Day 2 under live traffic on the real node: while clients call both tiny speech models through
the gateway, a new revision, an operator upgrade, an engine image upgrade, a deleted pod, a
gateway rollout, scaling down and up, a revision at one replica and a killed operator fail no
request."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.incontainers.day2 import ROLLOUT_SECONDS, prepare, restore, run_events, targets
from tests.incontainers.stack import ContainerStack
from tests.incontainers.traffic import Figures, Traffic

#: requests a second to each model: what this 2-core node serves without refusing any while
#: replacement pods load on the same two cores (at 2, a loading Canary pod slows the others
#: until their 16 held requests fill and they answer ServerBusy)
PER_SECOND = 1.0
STEADY_SECONDS = 8
#: the whole soak's bound (it takes about 10 minutes)
SOAK_SECONDS = 1800


@pytest.fixture
def day2(stack: ContainerStack) -> Iterator[ContainerStack]:
    images = dict(stack.images)
    prepare(stack)
    yield stack
    restore(stack, images)


@pytest.mark.timeout(SOAK_SECONDS + 2 * ROLLOUT_SECONDS)
def test_changes_under_traffic_fail_no_request(day2: ContainerStack) -> None:
    traffic = Traffic(targets(day2.gateway_address(), PER_SECOND), SOAK_SECONDS)
    try:
        with traffic.running():
            run_events(day2, traffic, STEADY_SECONDS)
    finally:
        print("\n" + traffic.table())
    figures = traffic.figures()
    failures = {key: f.failures[:3] for key, f in figures.items() if f.failures}
    assert not failures, failures
    # traffic flowed throughout: each steady window saw requests at about the rate (a request
    # due at a window's edge may start in the next one, so one or two fewer are normal)
    for window in ("steady", "steady after"):
        for target in traffic.targets:
            sent = figures.get((window, target.name), Figures()).requests
            assert sent >= PER_SECOND * STEADY_SECONDS / 2, (window, target.name, sent)
