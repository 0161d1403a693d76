"""The dashboard's HTTP side: static page, JSON API and server-sent events; read-only."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from berth_operator.dashboard.cards import card
from berth_operator.dashboard.gpus import gpu_panel
from berth_operator.dashboard.traffic import Panel, TrafficScraper

logger = logging.getLogger(__name__)
STATIC = Path(__file__).resolve().parent / "static"

ListObjects = Callable[[str], list[dict[str, Any]]]

#: pages streamed to at once; one more gets 503 with Retry-After
MAX_PAGES = 64
#: messages waiting for one page; a page this far behind is dropped (its browser reconnects
#: and starts from a fresh snapshot)
PAGE_BACKLOG = 256
#: seconds one write to a page may take before the page is dropped
WRITE_SECONDS = 10.0


class Page:
    """One open event stream: its messages, and whether it fell behind."""

    def __init__(self) -> None:
        self.messages: asyncio.Queue[str] = asyncio.Queue(PAGE_BACKLOG)
        self.dropped = False

    def offer(self, message: str) -> None:
        if self.dropped:
            return
        try:
            self.messages.put_nowait(message)
        except asyncio.QueueFull:
            self.dropped = True


def _nothing(kind: str) -> list[dict[str, Any]]:
    return []


class Dashboard:
    """Serves cards of the resources in `list_resources()`, the GPU panel of the Nodes and
    Pods in `list_objects(kind)`, and each model's requests (by its gateway name) from the
    gateway's metrics; `changed()`, `refresh_gpus()` and `set_traffic()` push updates."""

    def __init__(
        self,
        list_resources: Callable[[], list[dict[str, Any]]],
        token: str | None = None,
        list_objects: ListObjects = _nothing,
        traffic: Callable[[Callable[[Panel], None]], TrafficScraper] | None = None,
    ) -> None:
        """`traffic`, given where to publish, makes the scraper of the gateway's metrics."""
        self.list_resources = list_resources
        self.list_objects = list_objects
        self.token = token
        self._listeners: set[Page] = set()
        self._runner: web.AppRunner | None = None
        self._gpus_sent: dict[str, Any] | None = None
        self._traffic: Panel = {}
        self._scraper = traffic(self.set_traffic) if traffic else None
        self._scraping: asyncio.Task[None] | None = None

    # ---- events from the operator ----------------------------------------------------------

    def changed(self, md: dict[str, Any] | None, key: str) -> None:
        """A resource changed (or went away, `md` None): tell every open page."""
        if md is not None:
            self._send("update", card(md))
        else:
            self._send("delete", {"key": key})
        self.refresh_gpus()  # a resource may name another GPU resource, or be gone

    def refresh_gpus(self) -> None:
        """Nodes or Berth's pods changed: send the GPU panel to every open page if it changed."""
        if not self._listeners:
            self._gpus_sent = None  # a page that connects gets the panel in its snapshot
            return
        self._publish_gpus(self.gpus())

    def _publish_gpus(self, panel: dict[str, Any]) -> None:
        """Sends `panel` unless the open pages have it already."""
        if panel != self._gpus_sent:
            self._gpus_sent = panel
            self._send("gpus", panel)

    def set_traffic(self, panel: Panel) -> None:
        """New request figures: sent to every open page when they changed."""
        if panel != self._traffic:
            self._traffic = panel
            self._send("traffic", panel)

    def _send(self, event: str, data: dict[str, Any]) -> None:
        message = f"event: {event}\ndata: {json.dumps(data)}\n\n"
        for page in list(self._listeners):
            page.offer(message)

    # ---- HTTP -----------------------------------------------------------------------------------

    def cards(self) -> list[dict[str, Any]]:
        return sorted((card(md) for md in self.list_resources()), key=lambda c: c["key"])

    def gpus(self) -> dict[str, Any]:
        """The GPU panel as sent on the wire."""
        panel = gpu_panel(
            self.list_objects("Node"), self.list_objects("Pod"), self.list_resources()
        )
        return panel.model_dump(mode="json", by_alias=True)

    @web.middleware
    async def authorize(self, request: web.Request, handler: Any) -> web.StreamResponse:
        """With a token set: the API needs `Authorization: Bearer` or `?token=` (EventSource
        cannot send headers); the static page itself holds no data and stays open."""
        if self.token and request.path.startswith("/api/"):
            presented = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
            presented = presented or request.query.get("token", "")
            if not hmac.compare_digest(presented.encode(), self.token.encode()):
                return web.json_response(
                    {"error": {"type": "Unauthorized", "message": "a dashboard token is needed"}},
                    status=401,
                    headers={"WWW-Authenticate": 'Bearer realm="berth-dashboard"'},
                )
        return await handler(request)

    async def index(self, request: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC / "index.html")

    async def api_cards(self, request: web.Request) -> web.Response:
        return web.json_response({"items": self.cards()})

    async def api_gpus(self, request: web.Request) -> web.Response:
        return web.json_response(self.gpus())

    async def api_traffic(self, request: web.Request) -> web.Response:
        return web.json_response(self._traffic)

    async def api_events(self, request: web.Request) -> web.StreamResponse:
        if len(self._listeners) >= MAX_PAGES:
            return web.json_response(
                {"error": {"type": "TooManyPages", "message": f"{MAX_PAGES} pages are open"}},
                status=503,
                headers={"Retry-After": "30"},
            )
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",
            }
        )
        await response.prepare(request)
        page = Page()
        gpus = self.gpus()
        self._publish_gpus(gpus)  # before this page listens: it gets the panel in its snapshot
        self._listeners.add(page)
        try:
            snapshot = {"items": self.cards(), "gpus": gpus, "traffic": self._traffic}
            message = f"event: snapshot\ndata: {json.dumps(snapshot)}\n\n"
            while not page.dropped:
                await asyncio.wait_for(response.write(message.encode()), WRITE_SECONDS)
                try:
                    message = await asyncio.wait_for(page.messages.get(), timeout=15)
                except TimeoutError:
                    message = ": keep-alive\n\n"
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        except TimeoutError:
            logger.info("dropped a dashboard page that stopped reading")
        finally:
            self._listeners.discard(page)
        return response

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self.authorize])
        app.add_routes(
            [
                web.get("/", self.index),
                web.get("/api/modeldeployments", self.api_cards),
                web.get("/api/gpus", self.api_gpus),
                web.get("/api/traffic", self.api_traffic),
                web.get("/api/events", self.api_events),
                web.static("/static", STATIC),
            ]
        )
        return app

    async def start(self, host: str, port: int) -> None:
        self._runner = web.AppRunner(self.app(), access_log=None, shutdown_timeout=1)
        await self._runner.setup()
        await web.TCPSite(self._runner, host, port).start()
        if self._scraper is not None:
            self._scraping = asyncio.create_task(self._scraper.run())
        logger.info("dashboard on http://%s:%d/", host, port)

    async def stop(self) -> None:
        if self._scraping is not None:
            self._scraping.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._scraping
        if self._runner:
            await self._runner.cleanup()
