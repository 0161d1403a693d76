"""The model server core with a test engine: lifecycle, errors, limits, API keys, metrics."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web
from berth_operator.api.metadata import UNPROCESSED_HEADER
from berth_runtime.server.app import ModelServer, ServerConfig
from berth_runtime.server.state import RuntimeState

from tests.cluster.controlplane import free_port
from tests.runtime.dummy_engine import EchoEngine


class Running:
    def __init__(self, server: ModelServer) -> None:
        self.server, self.port = server, free_port()
        self.loop = asyncio.new_event_loop()
        self.runner = web.AppRunner(server.app())
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)

    async def _start(self) -> None:
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)

    def call(
        self,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        method: str | None = None,
    ):
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}", data=body, headers=headers or {}, method=method
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers), error.read()

    def wait_ready(self, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while self.call("/readyz")[0] != 200:
            assert time.monotonic() < deadline, self.call("/api/status")
            time.sleep(0.05)


def serve(cache: Path, settings: dict | None = None, **config) -> Running:
    engine = EchoEngine(settings or {})
    server = ModelServer(
        engine,
        ServerConfig(cache_dir=cache, repo="org/tiny", revision="main", **config),
        RuntimeState(pod="pod-0"),
    )
    return Running(server)


@pytest.fixture
def running(cache: Path) -> Iterator[Running]:
    server = serve(cache, {"loadSeconds": 0.5})
    yield server
    server.stop()


JSON = {"Content-Type": "application/json"}


def test_not_ready_until_loaded_then_serving(running: Running):
    status, headers, body = running.call("/v1/echo", b"{}", JSON)
    assert status == 503 and headers["Retry-After"] == "10"
    assert json.loads(body)["error"]["type"] == "ModelNotReady"
    assert running.call("/healthz")[0] == 200
    assert running.call("/readyz")[0] == 503
    running.wait_ready()
    status, _, body = running.call("/v1/echo", b'{"x": 1}', JSON)
    assert (status, json.loads(body)) == (200, {"echo": {"x": 1}, "model_type": "tiny"})
    report = json.loads(running.call("/api/status")[2])
    assert report["state"] == "Ready" and report["details"]["sample_rate"] == 16000
    assert report["details"]["load_seconds"] >= 0.5
    assert (
        report["dependencies"]["python"]["version"] and report["dependencies"]["aiohttp"]["version"]
    )
    assert report["dependencies"]["gpus"] == [], "no GPU here: reported as absent"


def test_errors_map_to_json_answers(running: Running):
    running.wait_ready()
    status, _, body = running.call("/v1/bad", b"{}", JSON)
    assert status == 400 and "use one of en, fr" in json.loads(body)["error"]["message"]
    status, _, body = running.call("/v1/boom", b"{}", JSON)
    assert status == 500 and json.loads(body)["error"]["message"] == "ValueError: engine bug"
    status, _, body = running.call("/v1/nothing", b"{}", JSON)
    assert status == 404 and json.loads(body)["error"]["type"] == "NotFound"
    status, _, body = running.call(
        "/v1/echo", b"x=1", {"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert status == 415 and "application/json" in json.loads(body)["error"]["message"]


def test_oversized_bodies_get_413(cache: Path):
    server = serve(cache, max_body_bytes=1024)
    try:
        server.wait_ready()
        status, _, body = server.call("/v1/echo", b'{"x": "' + b"a" * 4096 + b'"}', JSON)
        assert status == 413 and json.loads(body)["error"]["type"] == "PayloadTooLarge"
    finally:
        server.stop()


def test_api_keys_guard_inference_only(cache: Path):
    server = serve(cache, api_keys=(b"old-key", b"new-key"))
    try:
        server.wait_ready()
        status, headers, _ = server.call("/v1/echo", b"{}", JSON)
        assert status == 401 and headers["WWW-Authenticate"].startswith("Bearer")
        assert server.call("/v1/echo", b"{}", {**JSON, "Authorization": "Bearer wrong"})[0] == 401
        for key in ("old-key", "new-key"):
            assert (
                server.call("/v1/echo", b"{}", {**JSON, "Authorization": f"Bearer {key}"})[0] == 200
            )
        for path in ("/healthz", "/readyz", "/metrics"):
            assert server.call(path)[0] == 200
        assert b"key" not in server.call("/api/status")[2]
    finally:
        server.stop()


def test_load_failure_is_reported(cache: Path):
    server = serve(cache, {"failWith": "CUDA out of memory. Tried to allocate 2.00 GiB"})
    try:
        deadline = time.monotonic() + 10
        while json.loads(server.call("/api/status")[2])["state"] != "Failed":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        report = json.loads(server.call("/api/status")[2])
        assert report["last_error"]["reason"] == "RuntimeError"
        assert "CUDA out of memory" in report["last_error"]["message"]
        assert report["last_error"]["pod"] == "pod-0"
        assert server.call("/readyz")[0] == 503
    finally:
        server.stop()


def test_metrics_count_requests(running: Running):
    running.wait_ready()
    running.call("/v1/echo", b"{}", JSON)
    text = running.call("/metrics")[2].decode()
    assert 'berth_requests_total{route="/v1/echo",status="200"} 1.0' in text
    assert "berth_model_ready 1.0" in text


def test_a_full_replica_refuses_before_reading_the_body(cache: Path):
    """max_requests held (a client sends half a body and waits): the next one is 503
    ServerBusy with Retry-After at once, its body unread; the held one then completes."""
    server = serve(cache, max_requests=1)
    try:
        server.wait_ready()
        body = b'{"x": "' + b"a" * 1000 + b'"}'
        head = (
            f"POST /v1/echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        ).encode()
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as held:
            held.sendall(head + body[:100])
            deadline = time.monotonic() + 10
            while "berth_requests_held 1.0" not in server.call("/metrics")[2].decode():
                assert time.monotonic() < deadline, "the half-sent request is never held"
                time.sleep(0.02)
            status, headers, answer = server.call("/v1/echo", body, JSON)
            assert status == 503 and headers["Retry-After"] == "10"
            assert headers[UNPROCESSED_HEADER] == "ServerBusy"  # the gateway may try another
            error = json.loads(answer)["error"]
            assert error["type"] == "ServerBusy" and "add replicas" in error["message"]
            held.sendall(body[100:])
            reply = b""
            while chunk := held.recv(65536):
                reply += chunk
        assert reply.startswith(b"HTTP/1.1 200"), reply[:200]
        assert server.call("/v1/echo", body, JSON)[0] == 200, "the slot is free again"
        assert "berth_requests_refused_busy_total 1.0" in server.call("/metrics")[2].decode()
    finally:
        server.stop()


def test_a_fatal_engine_error_makes_the_pod_not_ready_and_not_live(running: Running):
    """A CUDA fault while serving: the request gets 500, and then readiness and liveness fail
    (the kubelet restarts the container) with the reason in the status; an engine's ordinary
    failure (an engine bug) changes neither."""
    running.wait_ready()
    assert running.call("/v1/boom", b"{}", JSON)[0] == 500
    assert running.call("/readyz")[0] == 200 and running.call("/healthz")[0] == 200
    status, _, body = running.call("/v1/device-fault", b"{}", JSON)
    assert status == 500 and "illegal memory access" in json.loads(body)["error"]["message"]
    assert running.call("/readyz")[0] == 503
    assert running.call("/healthz")[0] == 503
    report = json.loads(running.call("/api/status")[2])
    assert report["state"] == "Failed" and report["last_error"]["reason"] == "EngineFailed"
    assert "berth_model_ready 0.0" in running.call("/metrics")[2].decode()
