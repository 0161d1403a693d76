"""The autoscaler's decisions, as pure functions of the load every gateway replica reports:
up at once to what the requests in flight need, down only after the scale-down delay."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from berth_operator.api.modeldeployment import Autoscaling

Key = tuple[str, str]


@dataclass(frozen=True)
class ModelLoad:
    """One model's load as one gateway replica (or all, merged) saw it."""

    #: requests being answered or held for a scale-up
    in_flight: int
    #: when a request last started or ended (seconds since the epoch); 0: never
    last_active: float


def merge(reports: Iterable[Mapping[Key, ModelLoad]]) -> dict[Key, ModelLoad]:
    """The load of every replica together: requests in flight add up; the latest activity wins."""
    total: dict[Key, ModelLoad] = {}
    for report in reports:
        for key, load in report.items():
            seen = total.get(key, ModelLoad(0, 0.0))
            total[key] = ModelLoad(
                seen.in_flight + load.in_flight, max(seen.last_active, load.last_active)
            )
    return total


def replicas_for(in_flight: int, policy: Autoscaling) -> int:
    """The replicas `in_flight` requests need at the policy's target, within min..max."""
    return policy.bounded(math.ceil(in_flight / policy.target_in_flight))


class History:
    """What the load needed at each look over the last scale-down delay, and since when the
    replicas are what they are, as far as this replica looked (a newly elected one has not seen
    the delay's worth yet; a scale-up by another replica starts the delay again)."""

    def __init__(self, since: float) -> None:
        self.since = since
        self.replicas: int | None = None
        self._needs: deque[tuple[float, int]] = deque()

    def observe(self, now: float, replicas: int) -> None:
        if self.replicas is not None and replicas != self.replicas:
            self.since = now
        self.replicas = replicas

    def add(self, now: float, need: int, delay: float) -> None:
        self._needs.append((now, need))
        while self._needs and self._needs[0][0] < now - delay:
            self._needs.popleft()

    def peak(self) -> int:
        """The most replicas needed within the delay."""
        return max((need for _, need in self._needs), default=0)

    def covers(self, now: float, delay: float) -> bool:
        return now - self.since >= delay


def decide(policy: Autoscaling, current: int, load: ModelLoad, history: History, now: float) -> int:
    """The replicas to set now: `current` when nothing is to change.

    Up at once when the requests in flight need more. Down, to the most needed within the
    scale-down delay, only once this replica has watched the replicas unchanged that long (the
    replica that scaled a model from zero may not have published its request yet); to zero only
    when no request started or ended within the delay either (a short one may fall between two
    looks)."""
    delay = policy.scale_down_delay_seconds
    need = replicas_for(load.in_flight, policy)
    history.observe(now, current)
    history.add(now, need, delay)
    if need > current:
        return need
    if current > policy.max_replicas or current < policy.min_replicas:
        return policy.bounded(current)
    if not history.covers(now, delay):
        return current
    floor = 1 if now - load.last_active < delay else 0
    return min(current, policy.bounded(max(history.peak(), floor)))
