"""What one gateway process takes on: how much of a body it reads, and at once: requests in flight (in all, and per model),
requests held for a model coming up, and bytes of request bodies held in memory. Past a limit a
request is answered at once, with Retry-After, instead of queueing until the pod runs out of
memory."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from prometheus_client import Counter as Counter_

from berth_gateway.errors import GatewayError, Overloaded, TooManyRequests

Key = tuple[str, str]


@dataclass(frozen=True)
class BodyLimits:
    """How much of a body the gateway reads, and how long it waits for it."""

    json_bytes: int
    other_bytes: int
    idle_seconds: float
    max_depth: int

    def for_type(self, content_type: str) -> int:
        return self.json_bytes if content_type == "application/json" else self.other_bytes


@dataclass(frozen=True)
class Caps:
    in_flight: int
    in_flight_per_model: int
    held: int
    buffered_bytes: int
    retry_after: int


class Admission:
    """Counts what is taken, and refuses what would go past a cap."""

    def __init__(self, caps: Caps, refused: Counter_ | None = None) -> None:
        self.caps = caps
        self._refused = refused
        self.in_flight = 0
        self.per_model: Counter[Key] = Counter()
        self.held = 0
        self.buffered = 0

    @contextmanager
    def request(self) -> Iterator[None]:
        """One request, from its first byte to its last: 503 past the gateway's cap."""
        if self.in_flight >= self.caps.in_flight:
            raise self.refuse(
                "requests",
                Overloaded(
                    f"the gateway has {self.in_flight} requests in flight, its limit "
                    "(gateway.maxRequestsInFlight): retry shortly, or add gateway replicas",
                    self.caps.retry_after,
                ),
            )
        self.in_flight += 1
        try:
            yield
        finally:
            self.in_flight -= 1

    @contextmanager
    def model(self, key: Key, served_name: str) -> Iterator[None]:
        """One request to a model: 429 past the per-model cap."""
        if self.per_model[key] >= self.caps.in_flight_per_model:
            raise self.refuse(
                "model",
                TooManyRequests(
                    f"model {served_name} has {self.per_model[key]} requests in flight through this "
                    "gateway, its limit (gateway.maxRequestsInFlightPerModel): retry shortly",
                    self.caps.retry_after,
                ),
            )
        self.per_model[key] += 1
        try:
            yield
        finally:
            self.per_model[key] -= 1
            if not self.per_model[key]:
                del self.per_model[key]

    @contextmanager
    def hold(self, served_name: str) -> Iterator[None]:
        """One request waiting for a model to come up: 503 past the cap."""
        if self.held >= self.caps.held:
            raise self.refuse(
                "held",
                Overloaded(
                    f"model {served_name} is coming up and the gateway already holds {self.held} "
                    "requests waiting (gateway.maxHeldRequests): retry shortly",
                    self.caps.retry_after,
                ),
            )
        self.held += 1
        try:
            yield
        finally:
            self.held -= 1

    def refuse(self, limit: str, error: GatewayError) -> GatewayError:
        """Counts a refusal at `limit`; returns the error to raise."""
        if self._refused is not None:
            self._refused.labels(limit).inc()
        return error


class Reservation:
    """Bytes of one request's body held in memory; given back when the request ends."""

    def __init__(self, admission: Admission) -> None:
        self.admission, self.size = admission, 0

    def grow(self, total: int) -> None:
        """Makes the reservation at least `total` bytes; 503 when that is over the budget."""
        size = total - self.size
        if size <= 0:
            return
        budget = self.admission.caps.buffered_bytes
        if self.admission.buffered + size > budget:
            raise self.admission.refuse(
                "bodyBytes",
                Overloaded(
                    f"the gateway holds {self.admission.buffered} bytes of request bodies and "
                    f"this one needs {size} more, over its budget of {budget} "
                    "(gateway.bodyBufferBytes): retry shortly",
                    self.admission.caps.retry_after,
                ),
            )
        self.admission.buffered += size
        self.size = total

    def release(self) -> None:
        self.admission.buffered -= self.size
        self.size = 0
