"""The aiohttp application: health, readiness, status, metrics, and the engine's routes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from berth_runtime.inspector import inspect_dependencies
from berth_runtime.server.auth import api_key_middleware
from berth_runtime.server.engine import Engine
from berth_runtime.server.errors import (
    ApiError,
    ModelNotReady,
    PayloadTooLarge,
    ServerBusy,
    UnsupportedMediaType,
    errors_to_json,
)
from berth_runtime.server.reporter import RuntimeReporter, announce
from berth_runtime.server.state import RuntimeState

logger = logging.getLogger(__name__)
ENGINE_ROUTE_KEY = web.AppKey("engine_paths", frozenset)


async def in_daemon_thread(work: Callable[[], None], name: str) -> None:
    """Runs blocking `work` in a daemon thread: unlike the loop's executor, the process does
    not wait for it to end when it stops (a model still loading is abandoned, not waited for).
    """
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()

    def settle(error: BaseException | None) -> None:
        if done.done():  # cancelled: the server is stopping
            return
        if error is None:
            done.set_result(None)
        else:
            done.set_exception(error)

    def run() -> None:
        error: BaseException | None = None
        try:
            work()
        except BaseException as raised:
            error = raised
        with contextlib.suppress(RuntimeError):  # a closed loop: the process is ending
            loop.call_soon_threadsafe(settle, error)

    threading.Thread(target=run, name=name, daemon=True).start()
    await done


def accepts(*content_types: str) -> Any:
    """Marks an engine handler with the content types it takes; others get 415."""

    def mark(handler: Any) -> Any:
        handler.berth_accepts = frozenset(content_types)
        return handler

    return mark


@dataclass
class ServerConfig:
    cache_dir: Path
    repo: str
    revision: str
    api_keys: tuple[bytes, ...] = ()
    max_body_bytes: int = 100 * 2**20
    retry_after_seconds: int = 10
    #: engine requests held at once, from the first byte of the body to the answer (reading,
    #: decoding, queued, running); more get 503 ServerBusy before their body is read
    max_requests: int = 16
    #: audio decodes at once (each holds the whole recording as float32 samples)
    max_decodes: int = 2


class ModelServer:
    """Owns the engine, its state and the app; loading starts in a thread when the app starts."""

    def __init__(
        self,
        engine: Engine,
        config: ServerConfig,
        state: RuntimeState,
        reporter: RuntimeReporter | None = None,
    ) -> None:
        self.engine, self.config, self.state, self.reporter = engine, config, state, reporter
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "berth_requests",
            "Requests by route and status.",
            ["route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "berth_request_duration_seconds",
            "Request time by route.",
            ["route"],
            registry=self.registry,
        )
        self.ready_gauge = Gauge(
            "berth_model_ready", "1 once the model is loaded.", registry=self.registry
        )
        self.gpu_memory = Gauge(
            "berth_gpu_memory_used_bytes", "GPU memory used.", ["gpu"], registry=self.registry
        )
        self.gpu_util = Gauge(
            "berth_gpu_utilization_ratio", "GPU utilisation.", ["gpu"], registry=self.registry
        )
        self.gpu_temp = Gauge(
            "berth_gpu_temperature_celsius", "GPU temperature.", ["gpu"], registry=self.registry
        )
        self.held = Gauge(
            "berth_requests_held",
            "Engine requests being read, decoded, queued or run.",
            registry=self.registry,
        )
        self.busy = Counter(
            "berth_requests_refused_busy",
            "Engine requests answered 503 ServerBusy (max_requests held).",
            registry=self.registry,
        )
        self._holding = 0
        #: stopping: not ready any more, still answering until the listener closes
        self.draining = False
        self.engine.decode_slots = asyncio.Semaphore(config.max_decodes)
        self._load_task: asyncio.Future[None] | None = None

    # ---- lifecycle ------------------------------------------------------------------------

    def _load_blocking(self) -> None:
        started = time.monotonic()
        model_dir = self.engine.resolve(
            self.config.cache_dir, self.config.repo, self.config.revision
        )
        self.engine.load(model_dir)
        self.state.load_seconds = round(time.monotonic() - started, 3)

    async def _load(self, app: web.Application) -> None:
        loop = asyncio.get_running_loop()
        self.engine.on_step = lambda what: loop.call_soon_threadsafe(
            announce, self.state, self.reporter, what
        )
        self.refresh_dependencies()
        if self.reporter:
            await self.reporter.report(self.state, force=True)
        try:
            await in_daemon_thread(self._load_blocking, name="load")
        except Exception as error:
            reason = getattr(error, "reason", None) or type(error).__name__
            self.state.fail(reason, "".join(traceback.format_exception_only(error)).strip())
            logger.exception("loading %s failed", self.config.repo)
        else:
            self.state.details = {**self.engine.details(), "load_seconds": self.state.load_seconds}
            self.state.state = "Ready"
            logger.info("%s loaded in %.1f s", self.config.repo, self.state.load_seconds or 0)
        self.ready_gauge.set(1 if self.state.ready else 0)
        if self.reporter:
            await self.reporter.report(self.state, force=True)
            self.reporter.start(self.state, self.refresh_dependencies)

    def refresh_dependencies(self) -> None:
        self.state.dependencies = inspect_dependencies(self.engine.libraries)
        for gpu in self.state.dependencies.get("gpus", []):
            label = str(gpu["index"])
            self.gpu_memory.labels(label).set(gpu["memoryUsedMiB"] * 2**20)
            self.gpu_util.labels(label).set(gpu["utilizationPercent"] / 100)
            self.gpu_temp.labels(label).set(gpu["temperatureC"])

    async def _start(self, app: web.Application) -> None:
        self._load_task = asyncio.ensure_future(self._load(app))

    async def _stop(self, app: web.Application) -> None:
        if self._load_task and not self._load_task.done():
            self._load_task.cancel()
        if self.reporter:
            await self.reporter.stop()
        await self.engine.close()

    # ---- routes -----------------------------------------------------------------------------

    async def healthz(self, request: web.Request) -> web.Response:
        if self.state.broken:  # the kubelet restarts the container
            return web.json_response({"status": "broken", "state": self.state.state}, status=503)
        return web.json_response({"status": "alive", "state": self.state.state})

    async def readyz(self, request: web.Request) -> web.Response:
        if self.draining:
            raise ModelNotReady("stopping: this pod takes no new requests", 1)
        if not self.state.ready:
            raise ModelNotReady(
                f"model {self.config.repo} is {self.state.state}", self.config.retry_after_seconds
            )
        return web.json_response({"status": "ready"})

    async def status(self, request: web.Request) -> web.Response:
        return web.json_response(self.state.as_api())

    async def metrics(self, request: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(self.registry), content_type="text/plain", charset="utf-8"
        )

    @web.middleware
    async def gate(self, request: web.Request, handler: Any) -> web.StreamResponse:
        """Engine routes: 503 until loaded, 413 and 415 before the body is read; counted."""
        route = (
            request.match_info.route.resource.canonical
            if request.match_info.route.resource
            else request.path
        )
        if request.path in request.app[ENGINE_ROUTE_KEY]:
            if not self.state.ready:
                raise ModelNotReady(
                    f"model {self.config.repo} is {self.state.state}; retry later",
                    self.config.retry_after_seconds,
                )
            if request.content_length and request.content_length > self.config.max_body_bytes:
                raise PayloadTooLarge(
                    f"request body of {request.content_length} bytes is over the limit of {self.config.max_body_bytes}"
                )
            allowed = getattr(handler, "berth_accepts", None)
            if allowed and request.method == "POST" and request.content_type not in allowed:
                raise UnsupportedMediaType(
                    f"content type {request.content_type or 'none'} is not one of: {', '.join(sorted(allowed))}"
                )
            return await self._held(request, handler, route)
        return await self._timed(request, handler, route)

    async def _held(self, request: web.Request, handler: Any, route: str) -> web.StreamResponse:
        """At most max_requests at once; one more is refused before its body is read."""
        if self._holding >= self.config.max_requests:
            self.busy.inc()
            raise ServerBusy(
                f"this replica is busy: {self._holding} requests held (the most it takes); "
                "retry later, or add replicas",
                self.config.retry_after_seconds,
            )
        self._holding += 1
        self.held.set(self._holding)
        try:
            return await self._timed(request, handler, route)
        finally:
            self._holding -= 1
            self.held.set(self._holding)

    async def _timed(self, request: web.Request, handler: Any, route: str) -> web.StreamResponse:
        started = time.perf_counter()
        try:
            response = await handler(request)
        except Exception as error:
            if not isinstance(error, ApiError) and self.engine.is_fatal(error):
                await self._break_down(error)
            raise
        self.latency.labels(route).observe(time.perf_counter() - started)
        self.requests.labels(route, str(response.status)).inc()
        return response

    async def _break_down(self, error: BaseException) -> None:
        """Not ready, not live (the kubelet restarts the container), and the reason in
        status.runtime.lastError at once."""
        message = "".join(traceback.format_exception_only(error)).strip()
        logger.error("the engine failed beyond recovery; restart needed: %s", message)
        self.state.break_down("EngineFailed", message)
        self.ready_gauge.set(0)
        if self.reporter:
            await self.reporter.report(self.state, force=True)

    def app(self) -> web.Application:
        engine_routes = self.engine.routes()
        protected = frozenset(r.path for r in engine_routes if isinstance(r, web.RouteDef))
        app = web.Application(
            client_max_size=self.config.max_body_bytes,
            middlewares=[
                errors_to_json,
                api_key_middleware(self.config.api_keys, protected),
                self.gate,
            ],
        )
        app[ENGINE_ROUTE_KEY] = protected
        app.add_routes(
            [
                web.get("/healthz", self.healthz),
                web.get("/readyz", self.readyz),
                web.get("/api/status", self.status),
                web.get("/metrics", self.metrics),
                *engine_routes,
            ]
        )
        app.on_startup.append(self._start)
        app.on_cleanup.append(self._stop)
        return app
