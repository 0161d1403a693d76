"""Groups concurrent requests with the same key into batches run one at a time in a worker thread."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

Key = TypeVar("Key", bound=Hashable)
Item = TypeVar("Item")
Result = TypeVar("Result")


class BatchStats:
    """Counts of the batches run, kept in `view`, a dict updated in place: whoever holds it (the
    status page) sees the numbers live."""

    def __init__(self, max_batch_size: int, wait_ms: float) -> None:
        self.sizes: Counter[int] = Counter()
        self.view: dict[str, Any] = {
            "maxBatchSize": max_batch_size,
            "waitMs": wait_ms,
            "batches": 0,
            "requests": 0,
            "largestBatch": 0,
            "sizes": {},
        }

    def record(self, size: int) -> None:
        self.sizes[size] += 1
        self.view["batches"] += 1
        self.view["requests"] += size
        self.view["largestBatch"] = max(self.view["largestBatch"], size)
        self.view["sizes"] = {str(n): count for n, count in sorted(self.sizes.items())}


@dataclass
class _Pending(Generic[Item, Result]):
    item: Item
    future: asyncio.Future[Result]


class Batcher(Generic[Key, Item, Result]):
    """`submit(key, item)` waits for `run(key, items)`, which sees up to `max_size` items of one key.

    One worker thread runs the batches in turn (the model is not shared between threads); requests
    that arrive while a batch runs, or within `wait_seconds` of the first, join the next one.
    """

    def __init__(
        self,
        run: Callable[[Key, list[Item]], list[Result]],
        max_size: int = 8,
        wait_seconds: float = 0.02,
    ) -> None:
        self.run, self.max_size, self.wait_seconds = run, max(1, max_size), wait_seconds
        self.stats = BatchStats(self.max_size, round(wait_seconds * 1000, 1))
        self._pending: dict[Key, list[_Pending[Item, Result]]] = {}
        self._arrived: asyncio.Event | None = None
        self._worker: asyncio.Task[None] | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="batch")

    async def submit(self, key: Key, item: Item) -> Result:
        loop = asyncio.get_running_loop()
        if self._worker is None or self._worker.done():
            self._arrived = asyncio.Event()
            self._worker = loop.create_task(self._work())
        future: asyncio.Future[Result] = loop.create_future()
        self._pending.setdefault(key, []).append(_Pending(item, future))
        assert self._arrived is not None
        self._arrived.set()
        return await future

    def _full(self) -> bool:
        return any(len(queue) >= self.max_size for queue in self._pending.values())

    async def _work(self) -> None:
        assert self._arrived is not None
        loop = asyncio.get_running_loop()
        while True:
            await self._arrived.wait()
            deadline = loop.time() + self.wait_seconds
            while not self._full() and loop.time() < deadline:
                await asyncio.sleep(min(0.005, max(0.0, deadline - loop.time())))
            self._arrived.clear()
            while self._pending:
                # the key whose oldest request has waited longest goes first
                key = next(iter(self._pending))
                queue = self._pending[key]
                batch, rest = queue[: self.max_size], queue[self.max_size :]
                if rest:
                    del self._pending[key]
                    self._pending[key] = rest  # to the back: other keys get their turn
                else:
                    del self._pending[key]
                await self._run_batch(loop, key, batch)

    async def _run_batch(
        self, loop: asyncio.AbstractEventLoop, key: Key, batch: list[_Pending[Item, Result]]
    ) -> None:
        live = [p for p in batch if not p.future.done()]  # a client may have gone away
        if not live:
            return
        self.stats.record(len(live))
        try:
            results = await loop.run_in_executor(
                self._executor, self.run, key, [p.item for p in live]
            )
            if len(results) != len(live):
                raise RuntimeError(f"a batch of {len(live)} gave {len(results)} results")
        except Exception as error:
            for pending in live:
                if not pending.future.done():
                    pending.future.set_exception(error)
            return
        for pending, result in zip(live, results, strict=True):
            if not pending.future.done():
                pending.future.set_result(result)

    async def close(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
        self._executor.shutdown(wait=False, cancel_futures=True)
