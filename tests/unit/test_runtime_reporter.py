"""status.runtime.progress: each load step an engine announces is written, at most one write per
interval however fast the steps come, the step current at the write; none once loaded."""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any

from berth_runtime.report import StatusPatcher
from berth_runtime.server.reporter import RuntimeReporter
from berth_runtime.server.state import RuntimeState

INTERVAL = 0.3


class RecordedPatcher(StatusPatcher):
    """The API server's side of the writes: what each merge patch said, and when."""

    def __init__(self) -> None:
        super().__init__("models", min_interval=INTERVAL, client=object())
        self.writes: list[tuple[float, dict[str, Any]]] = []

    def _merge_patch(self, resource: Any, name: str, patch: dict[str, Any], what: str) -> bool:
        self._last = time.monotonic()
        self.writes.append((self._last, patch["status"]["runtime"]))
        return True


def test_load_steps_are_written_at_most_once_per_interval_the_latest_winning() -> None:
    patcher = RecordedPatcher()
    reporter = RuntimeReporter("md", patcher)
    state = RuntimeState(pod="md-0")

    async def load() -> None:
        await reporter.report(state, force=True)  # Loading, as the server starts
        for step in ("importing", "unpacking", "restoring"):  # faster than the interval
            state.progress = step
            reporter.progress(state)
        await asyncio.sleep(INTERVAL * 3)
        state.progress = "moving to cpu"
        reporter.progress(state)
        await asyncio.sleep(INTERVAL * 3)
        state.state = "Ready"
        await reporter.report(state)
        state.progress = "late"  # a step after the load is over is never written
        reporter.progress(state)
        await asyncio.sleep(INTERVAL * 2)
        await reporter.stop()

    asyncio.run(load())
    progress = [runtime["progress"] for _, runtime in patcher.writes]
    assert progress == [None, "restoring", "moving to cpu", None], progress
    moments = [moment for moment, _ in patcher.writes[:-1]]  # Ready is written at once
    assert all(b - a >= INTERVAL * 0.99 for a, b in itertools.pairwise(moments))
    assert patcher.writes[-1][1]["state"] == "Ready"
