"""Reports the model server's state into its own ModelDeployment's status.runtime.

Writes happen in a worker thread, at most every few seconds except on a state change; an API
outage delays reports, it never blocks or fails serving.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from berth_operator.api.podenv import ServerEnv

from berth_runtime.report import StatusPatcher
from berth_runtime.server.state import RuntimeState

logger = logging.getLogger(__name__)


class RuntimeReporter:
    def __init__(self, name: str, patcher: StatusPatcher, refresh_seconds: float = 30.0) -> None:
        self.name = name
        self.patcher = patcher
        self.refresh_seconds = refresh_seconds
        self._last_state: str | None = None
        self._last_progress: str | None = None
        self._task: asyncio.Task[None] | None = None
        self._progress_write: asyncio.Future[None] | None = None
        self._lock = asyncio.Lock()

    async def report(self, state: RuntimeState, force: bool = False) -> bool:
        """One write; forced on a state change; skipped while rate-limited."""
        changed = state.state != self._last_state
        if not (force or changed or self.patcher.due()):
            return False
        async with self._lock:
            payload: dict[str, Any] = state.as_status()
            ok = await asyncio.get_running_loop().run_in_executor(
                None, lambda: self.patcher.patch(self.name, "runtime", payload, force=True)
            )
        if ok:
            self._last_state, self._last_progress = state.state, payload["progress"]
        return ok

    def progress(self, state: RuntimeState) -> None:
        """A new load step (in the event loop): written at once when the last write is old
        enough, else once it is, the step current by then. At most one write per interval,
        however fast the steps come."""
        if self._progress_write is None or self._progress_write.done():
            self._progress_write = asyncio.ensure_future(self._write_progress(state))

    async def _write_progress(self, state: RuntimeState) -> None:
        # steps that come during a write are written after it; a failed write is retried
        while state.loading_progress not in (None, self._last_progress):
            await asyncio.sleep(self.patcher.seconds_until_due())
            if state.loading_progress not in (None, self._last_progress):
                await self.report(state, force=True)

    def start(self, state: RuntimeState, refresh: Any = None) -> None:
        """Re-reports every `refresh_seconds` (telemetry moves), and retries failed reports."""

        async def loop() -> None:
            while True:
                await asyncio.sleep(
                    self.refresh_seconds if self._last_state == state.state else 2.0
                )
                if refresh is not None:
                    refresh()
                await self.report(state, force=self._last_state != state.state)

        self._task = asyncio.get_running_loop().create_task(loop())

    async def stop(self) -> None:
        for task in (self._task, self._progress_write):
            if task:
                task.cancel()


def announce(state: RuntimeState, reporter: RuntimeReporter | None, step: str) -> None:
    """A load step of the engine (in the event loop): logged, and status.runtime.progress."""
    state.progress = step
    logger.info("loading: %s", step)
    if reporter:
        reporter.progress(state)


def reporter_for(env: ServerEnv) -> RuntimeReporter | None:
    """Reports into the resource's status.runtime when running in a pod (a namespace is known)."""
    if not env.namespace:
        return None
    return RuntimeReporter(env.model_deployment, StatusPatcher(env.namespace, env.report_seconds))
