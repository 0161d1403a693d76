"""A Dashboard served from an event loop in a thread of its own, for tests that drive it from
the test's thread (plain HTTP clients, a browser)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field

from berth_operator.dashboard.server import Dashboard

from tests.cluster.controlplane import free_port

Close = Callable[[], Awaitable[None]] | None


@dataclass
class ServedDashboard:
    url: str
    dashboard: Dashboard
    loop: asyncio.AbstractEventLoop
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    def call(self, action: Callable[[], None]) -> None:
        """Runs `action` in the dashboard's loop (its state belongs to that thread)."""
        self.loop.call_soon_threadsafe(action)


@contextlib.contextmanager
def serve_in_thread(
    make: Callable[[], Awaitable[tuple[Dashboard, Close]]],
) -> Iterator[ServedDashboard]:
    """`make()`, run in the new loop, gives the Dashboard and what to close after it stops."""
    port = free_port()
    started = threading.Event()
    served: list[ServedDashboard] = []

    async def serve() -> None:
        dashboard, close = await make()
        await dashboard.start("127.0.0.1", port)
        here = ServedDashboard(f"http://127.0.0.1:{port}", dashboard, asyncio.get_running_loop())
        served.append(here)
        started.set()
        await here.stop.wait()
        await dashboard.stop()
        if close:
            await close()

    thread = threading.Thread(target=asyncio.run, args=(serve(),), daemon=True)
    thread.start()
    assert started.wait(30), "the dashboard did not start"
    try:
        yield served[0]
    finally:
        served[0].call(served[0].stop.set)
        thread.join(30)
