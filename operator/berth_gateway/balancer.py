"""Least outstanding requests across a model's endpoints, or prefix affinity with bounded loads;
endpoints that refused a connection sit out a few seconds."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from berth_gateway.affinity import bounded_pick, ring
from berth_gateway.table import Endpoint


class Balancer:
    """Counts requests in flight per endpoint (in this process) and picks the least loaded."""

    def __init__(self, eject_seconds: float = 5.0, load_factor: float = 1.25) -> None:
        self.eject_seconds = eject_seconds
        self.load_factor = load_factor
        self._in_flight: dict[Endpoint, int] = {}
        self._ejected: dict[Endpoint, float] = {}

    def in_flight(self, endpoint: Endpoint) -> int:
        return self._in_flight.get(endpoint, 0)

    def pick(
        self, endpoints: Sequence[Endpoint], tried: set[Endpoint], key: int | None = None
    ) -> Endpoint | None:
        """With a prefix `key`: its endpoint on the ring unless that one is over the load bound
        (affinity.bounded_pick). Without: the endpoint with the fewest requests in flight, ties
        broken at random. Ejected endpoints only when no other is left."""
        fresh = [e for e in endpoints if e not in tried]
        if not fresh:
            return None
        now = time.monotonic()
        healthy = [e for e in fresh if self._ejected.get(e, 0.0) <= now] or fresh
        if key is not None:
            placed = ring(frozenset(endpoints))
            return bounded_pick(placed, key, self.in_flight, frozenset(healthy), self.load_factor)
        least = min(self.in_flight(e) for e in healthy)
        return random.choice([e for e in healthy if self.in_flight(e) == least])

    @contextmanager
    def lease(self, endpoint: Endpoint) -> Iterator[None]:
        """Counts one request on `endpoint` while the block runs."""
        self._in_flight[endpoint] = self.in_flight(endpoint) + 1
        try:
            yield
        finally:
            left = self._in_flight[endpoint] - 1
            if left:
                self._in_flight[endpoint] = left
            else:
                del self._in_flight[endpoint]

    def eject(self, endpoint: Endpoint) -> None:
        """The endpoint refused a connection: pass it over until its slice is updated."""
        self._ejected[endpoint] = time.monotonic() + self.eject_seconds
