"""Kubernetes Events on a ModelDeployment, one per notable condition transition
(`kubectl describe md`).

A transition is a change of a condition's status or reason; a new message alone (download
percentages) is not one. It is notable when it is a failure, a milestone (the model
downloaded, the model serving: CacheReady or Ready turning True), or the way out of a failure;
the steps of a healthy start (DownloadPending, Downloading, Starting, pods ready...) are in
status only: at a thousand resources they were most of the operator's writes. Events are
rate-limited per resource, like client-go's spam filter, and never in the way: they are posted
without holding the reconcile, and a failed write is logged.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from berth_operator.api.metadata import API_VERSION, KIND
from berth_operator.api.modeldeployment import Condition
from berth_operator.controller.conditions import ABNORMAL_TRUE, CACHE_READY, READY

logger = logging.getLogger(__name__)

COMPONENT = "berth-operator"
#: conditions whose turning True is news: the weights are in the cache; the model serves
MILESTONES = frozenset({CACHE_READY, READY})
#: reasons of a False condition that mean "on its way", not "something is wrong"
PROGRESS_REASONS = frozenset(
    {
        "DownloadPending",
        "Downloading",
        "Downloaded",  # Ready, between the download and the model server's Deployment
        "WaitingForCache",
        "Starting",
        "NotReported",
        "Loading",
        "ScaledToZero",
        "NoBlockingError",
    }
)


class Target(Protocol):
    """What an event is about: a ModelDeployment, parsed or not."""

    name: str
    namespace: str
    uid: str


@dataclass(frozen=True)
class EventTarget:
    """A ModelDeployment named by its metadata alone (when its spec does not parse)."""

    name: str
    namespace: str
    uid: str


@dataclass(frozen=True)
class Transition:
    """A condition that changed status or reason in this pass."""

    type: str
    status: str
    reason: str
    message: str

    @property
    def warning(self) -> bool:
        if self.type in ABNORMAL_TRUE:
            return self.status == "True"
        return self.status != "True" and self.reason not in PROGRESS_REASONS


def _was_warning(condition: Condition | None) -> bool:
    if condition is None:
        return False
    return Transition(condition.type, condition.status, condition.reason, "").warning


def transitions(before: list[Condition] | None, after: list[dict[str, Any]]) -> list[Transition]:
    """The notable conditions of `after` whose status or reason differs from `before`: a
    failure, a milestone, or the way out of a failure."""
    old = {c.type: c for c in before or []}
    found = []
    for condition in after:
        previous = old.get(condition["type"])
        if previous and (previous.status, previous.reason) == (
            condition["status"],
            condition["reason"],
        ):
            continue
        change = Transition(
            condition["type"], condition["status"], condition["reason"], condition["message"]
        )
        milestone = change.status == "True" and change.type in MILESTONES
        if change.warning or milestone or _was_warning(previous):
            found.append(change)
    return found


def render_event(md: Target, transition: Transition, now: str) -> dict[str, Any]:
    """A core/v1 Event about `md`, as `kubectl describe` and event exporters read them."""
    summary = f"{transition.type} is {transition.status}"
    message = f"{summary}: {transition.message}" if transition.message else summary
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": f"{md.name}.{time.time_ns():x}", "namespace": md.namespace},
        "involvedObject": {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "name": md.name,
            "namespace": md.namespace,
            "uid": md.uid,
        },
        "reason": transition.reason,
        "message": message[:1024],
        "type": "Warning" if transition.warning else "Normal",
        "source": {"component": COMPONENT},
        "reportingComponent": COMPONENT,
        "reportingInstance": os.environ.get("HOSTNAME", COMPONENT),
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    }


@dataclass
class TokenBucket:
    """`burst` events at once, then one per `refill_seconds`."""

    burst: int
    refill_seconds: float
    clock: Callable[[], float] = time.monotonic
    tokens: float = field(init=False)
    updated: float = field(init=False)

    def __post_init__(self) -> None:
        self.tokens, self.updated = float(self.burst), self.clock()

    def take(self) -> bool:
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.updated) / self.refill_seconds)
        self.updated = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


@dataclass
class EventRecorder:
    """Posts transition events, at most `burst` at once and one per `refill_seconds` per resource."""

    create: Callable[[dict[str, Any]], Any]
    burst: int = 10
    refill_seconds: float = 30.0
    clock: Callable[[], float] = time.monotonic
    _buckets: dict[tuple[str, str], TokenBucket] = field(default_factory=dict)
    _posting: set[asyncio.Task[int]] = field(default_factory=set)

    async def record(self, md: Target, changes: list[Transition], now: str) -> int:
        """Posts an event per change the rate limit allows; returns how many were posted."""
        bucket = self._buckets.setdefault(
            (md.namespace, md.name), TokenBucket(self.burst, self.refill_seconds, self.clock)
        )
        posted = 0
        for change in changes:
            if not bucket.take():
                logger.info(
                    "event %s on %s/%s dropped: rate limit", change.reason, md.namespace, md.name
                )
                continue
            try:
                await self.create(render_event(md, change, now))
                posted += 1
            except Exception as error:  # events are a courtesy: status already holds the truth
                logger.warning("could not post event on %s/%s: %s", md.namespace, md.name, error)
        return posted

    def post_soon(self, md: Target, changes: list[Transition], now: str) -> None:
        """Records the changes in the background: a reconcile does not wait for its Events."""
        task = asyncio.get_running_loop().create_task(self.record(md, changes, now))
        self._posting.add(task)
        task.add_done_callback(self._posting.discard)

    def forget(self, namespace: str, name: str) -> None:
        self._buckets.pop((namespace, name), None)
