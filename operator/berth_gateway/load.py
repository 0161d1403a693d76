"""This gateway replica's load per model: requests in flight (held ones too) and when one last
started or ended; what it publishes for the autoscaler."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager

from berth_gateway.autoscaler import Key, ModelLoad


class Load:
    """Counts requests per model; `woken` is set when a model goes from idle to busy."""

    def __init__(self) -> None:
        self._in_flight: dict[Key, int] = {}
        self._last_active: dict[Key, float] = {}
        self.woken = asyncio.Event()

    @contextmanager
    def track(self, key: Key) -> Iterator[None]:
        """Counts one request for the model `key` while the block runs."""
        count = self._in_flight.get(key, 0)
        self._in_flight[key] = count + 1
        self._last_active[key] = time.time()
        if count == 0:
            self.woken.set()
        try:
            yield
        finally:
            self._in_flight[key] -= 1
            self._last_active[key] = time.time()

    def in_flight(self, key: Key) -> int:
        return self._in_flight.get(key, 0)

    def snapshot(self, horizon: float) -> dict[Key, ModelLoad]:
        """Every model busy now or active within `horizon` seconds; older entries are dropped."""
        oldest = time.time() - horizon
        for key in [k for k, t in self._last_active.items() if t < oldest]:
            if not self._in_flight.get(key):
                self._last_active.pop(key)
                self._in_flight.pop(key, None)
        return {
            key: ModelLoad(self._in_flight.get(key, 0), active)
            for key, active in self._last_active.items()
        }
