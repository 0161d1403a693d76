"""A work queue of resource keys: deduplicated, one worker per key at a time, retries with backoff."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Hashable

logger = logging.getLogger(__name__)


class WorkQueue:
    """Keys wait once however often they are added; a key being processed is not processed twice."""

    def __init__(self, max_backoff: float = 60.0) -> None:
        self._queue: asyncio.Queue[Hashable] = asyncio.Queue()
        self._dirty: set[Hashable] = set()
        self._processing: set[Hashable] = set()
        self._failures: dict[Hashable, int] = {}
        self._timers: dict[Hashable, asyncio.TimerHandle] = {}
        self.max_backoff = max_backoff

    def add(self, key: Hashable) -> None:
        if key in self._dirty:
            return
        self._dirty.add(key)
        if key not in self._processing:
            self._queue.put_nowait(key)

    def add_after(self, key: Hashable, delay: float) -> None:
        """Adds `key` after `delay` seconds (an earlier pending add_after for it is replaced)."""
        if timer := self._timers.pop(key, None):
            timer.cancel()
        loop = asyncio.get_running_loop()
        self._timers[key] = loop.call_later(delay, self._fire, key)

    def _fire(self, key: Hashable) -> None:
        self._timers.pop(key, None)
        self.add(key)

    def __len__(self) -> int:
        return len(self._dirty)

    @property
    def idle(self) -> bool:
        return not self._dirty and not self._processing

    async def run_worker(self, handle: Callable[[Hashable], Awaitable[None]]) -> None:
        """Processes keys forever; a failing key is retried with exponential backoff."""
        while True:
            key = await self._queue.get()
            self._dirty.discard(key)
            self._processing.add(key)
            try:
                await handle(key)
            except asyncio.CancelledError:
                raise
            except Exception:
                attempts = self._failures.get(key, 0) + 1
                self._failures[key] = attempts
                delay = min(self.max_backoff, 0.5 * 2 ** (attempts - 1))
                logger.exception(
                    "reconciling %s failed (attempt %d); retrying in %.1f s", key, attempts, delay
                )
                self.add_after(key, delay)
            else:
                self._failures.pop(key, None)
            finally:
                self._processing.discard(key)
                if key in self._dirty:
                    self._queue.put_nowait(key)
