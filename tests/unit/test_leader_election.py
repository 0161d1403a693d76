"""The leader election's decisions, each on a Lease as the API server would hold it: who takes
it, when another may take it over (by this process's own clock), and what a lost race does."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import pytest
from berth_operator import leases
from berth_operator.leases import LeaderElection
from lightkube.core.exceptions import ApiError
from lightkube.models.coordination_v1 import LeaseSpec
from lightkube.models.meta_v1 import ObjectMeta, Status
from lightkube.resources.coordination_v1 import Lease

DURATION = 10


class LeaseStore:
    """One namespace's Leases with the API server's optimistic concurrency: a replace that
    carries an older resourceVersion is refused with 409."""

    def __init__(self) -> None:
        self.leases: dict[str, Lease] = {}
        self.version = 0

    def _stored(self, lease: Lease) -> Lease:
        self.version += 1
        lease = copy.deepcopy(lease)
        lease.metadata.resourceVersion = str(self.version)
        self.leases[lease.metadata.name] = lease
        return copy.deepcopy(lease)

    @staticmethod
    def _error(code: int) -> ApiError:
        return ApiError(status=Status(code=code, message=f"HTTP {code}"))

    async def get(self, kind: type, name: str, namespace: str) -> Lease:
        if name not in self.leases:
            raise self._error(404)
        return copy.deepcopy(self.leases[name])

    async def create(self, lease: Lease, field_manager: str) -> Lease:
        if lease.metadata.name in self.leases:
            raise self._error(409)
        return self._stored(lease)

    async def replace(self, lease: Lease, field_manager: str) -> Lease:
        stored = self.leases[lease.metadata.name]
        if lease.metadata.resourceVersion != stored.metadata.resourceVersion:
            raise self._error(409)
        return self._stored(lease)

    def holder(self, name: str = "leader") -> str | None:
        spec = self.leases[name].spec
        return spec.holderIdentity if spec else None


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(leases.time, "monotonic", clock)
    return clock


def replica(store: LeaseStore, identity: str) -> LeaderElection:
    client: Any = store
    return LeaderElection(
        client, "berth", "leader", identity, DURATION, "berth-operator", "reconciles"
    )


def attempt(*replicas: LeaderElection) -> None:
    for election in replicas:
        asyncio.run(election.attempt())


def test_the_first_replica_creates_the_lease_and_leads(clock: Clock) -> None:
    store = LeaseStore()
    a, b = replica(store, "a"), replica(store, "b")
    attempt(a, b)
    assert store.holder() == "a" and store.leases["leader"].spec.leaseTransitions == 0
    assert a.leading() and not b.leading()


def test_the_leader_renews_and_keeps_leading(clock: Clock) -> None:
    store = LeaseStore()
    a, b = replica(store, "a"), replica(store, "b")
    attempt(a, b)
    for _ in range(6):  # a minute, renewed three times per duration
        clock.now += DURATION / 3
        attempt(a, b)
        assert a.leading() and not b.leading()
    assert store.leases["leader"].spec.leaseTransitions == 0


def test_a_leader_that_stops_renewing_loses_its_lease_after_its_duration(clock: Clock) -> None:
    store = LeaseStore()
    a, b = replica(store, "a"), replica(store, "b")
    attempt(a, b)
    clock.now += DURATION - 1  # b has seen the same Lease for less than its duration
    attempt(b)
    assert store.holder() == "a" and not b.leading()
    clock.now += 1  # the Lease has not changed for its whole duration, as b saw it
    assert not a.leading(), "a's own term ends no later than another may take over"
    attempt(b)
    assert store.holder() == "b" and b.leading()
    assert store.leases["leader"].spec.leaseTransitions == 1
    clock.now += 1  # a, back (paused, not dead), finds b's Lease and steps aside
    attempt(a)
    assert not a.leading() and store.holder() == "b"


def test_a_leader_no_longer_leads_once_its_own_term_ran_out(clock: Clock) -> None:
    """Its renewals failing (the API server unreachable), a leader stops reconciling when its
    term ends, before anyone else may take the Lease."""
    store = LeaseStore()
    a = replica(store, "a")
    attempt(a)
    clock.now += DURATION - 0.1
    assert a.leading()
    clock.now += 0.1
    assert not a.leading()


def test_freshness_is_judged_by_this_process_not_by_the_holders_clock(clock: Clock) -> None:
    """A renewTime far in the past (a holder whose clock is behind) is not a stale Lease: only
    a Lease that stopped changing is."""
    store = LeaseStore()
    a, b = replica(store, "a"), replica(store, "b")
    attempt(a)
    lease = store.leases["leader"]
    lease.spec.renewTime = lease.spec.renewTime.replace(year=2000)
    attempt(b)
    assert store.holder() == "a" and not b.leading()


def test_of_two_replicas_taking_a_stale_lease_at_once_one_wins(clock: Clock) -> None:
    """b and c both find the Lease stale; c writes between b's read and b's write, so the
    API server refuses b's write and b stays a follower."""
    store = LeaseStore()
    a, b, c = replica(store, "a"), replica(store, "b"), replica(store, "c")
    attempt(a, b, c)
    clock.now += DURATION  # a stopped renewing
    get, raced = store.get, []

    async def read_then_c_writes(kind: type, name: str, namespace: str) -> Lease:
        found = await get(kind, name, namespace)
        if not raced:
            raced.append(True)
            await c.attempt()
        return found

    store.get = read_then_c_writes  # type: ignore[method-assign]
    attempt(b)
    assert store.holder() == "c" and c.leading() and not b.leading()
    assert store.leases["leader"].spec.leaseTransitions == 1


def test_release_hands_the_lease_over_at_once(clock: Clock) -> None:
    store = LeaseStore()
    a, b = replica(store, "a"), replica(store, "b")
    attempt(a, b)
    asyncio.run(a.release())
    assert not a.leading() and store.holder() is None
    attempt(b)  # no holder: b takes it without waiting for the duration
    assert b.leading() and store.holder() == "b"


def test_a_lease_created_meanwhile_by_another_is_left_to_it(clock: Clock) -> None:
    store = LeaseStore()
    asyncio.run(
        store.create(
            Lease(
                metadata=ObjectMeta(name="leader", namespace="berth"),
                spec=LeaseSpec(holderIdentity="z", leaseDurationSeconds=DURATION),
            ),
            field_manager="other",
        )
    )
    a = replica(store, "a")
    attempt(a)
    assert not a.leading() and store.holder() == "z"


def test_a_stopping_leader_hands_the_lease_over_only_after_its_reconciles_in_flight() -> None:
    """A reconcile still running when the leader stops (its pod replaced by an upgrade) must
    not write after a standby took over with other settings: it ends first, then the Lease is
    released."""
    from types import SimpleNamespace

    from berth_operator.config import OperatorConfig
    from berth_operator.operator import Operator

    order: list[str] = []

    class Election:
        def leading(self) -> bool:
            return True

        async def release(self) -> None:
            order.append("lease released")

    async def scenario() -> None:
        operator = Operator(OperatorConfig(), kube=SimpleNamespace(create=None))  # type: ignore[arg-type]
        started = asyncio.Event()

        async def reconcile(namespace: str, name: str) -> None:
            started.set()
            try:
                await asyncio.sleep(3600)  # an API call the reconcile waits on
            finally:
                order.append("reconcile ended")

        operator.reconciler.reconcile = reconcile  # type: ignore[method-assign]
        operator.start()
        operator.election = Election()  # type: ignore[assignment]
        operator.queue.add(("models", "canary"))
        await asyncio.wait_for(started.wait(), 10)
        await operator.stop()

    asyncio.run(scenario())
    assert order == ["reconcile ended", "lease released"]
