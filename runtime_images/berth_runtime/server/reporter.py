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
        self._task: asyncio.Task[None] | None = None
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
            self._last_state = state.state
        return ok

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
        if self._task:
            self._task.cancel()


def reporter_for(env: ServerEnv) -> RuntimeReporter | None:
    """Reports into the resource's status.runtime when running in a pod (a namespace is known)."""
    if not env.namespace:
        return None
    return RuntimeReporter(env.model_deployment, StatusPatcher(env.namespace, env.report_seconds))
