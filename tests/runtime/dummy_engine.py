"""An engine for tests of the server core: echoes JSON, loads from a real cache snapshot."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

from aiohttp import web
from berth_runtime.server.app import accepts
from berth_runtime.server.engine import Engine
from berth_runtime.server.errors import BadRequest


class EchoEngine(Engine):
    libraries = ("aiohttp",)

    def load(self, model_dir: Path) -> None:
        if gate := self.settings.get("loadGate"):  # the test says when the load goes on
            self.step("waiting for the test's gate")
            deadline = time.monotonic() + 60
            while not Path(gate).exists():
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{gate} did not appear in 60 s")
                time.sleep(0.1)
        self.step("reading config.json")
        time.sleep(float(self.settings.get("loadSeconds", 0)))
        if self.settings.get("failWith"):
            raise RuntimeError(self.settings["failWith"])
        self.config = json.loads((model_dir / "config.json").read_text())

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/v1/echo", self.echo),
            web.post("/v1/bad", self.bad),
            web.post("/v1/boom", self.boom),
            web.post("/v1/slow", self.slow),
            web.post("/v1/device-fault", self.device_fault),
        ]

    @accepts("application/json")
    async def echo(self, request: web.Request) -> web.Response:
        return web.json_response(
            {"echo": await request.json(), "model_type": self.config["model_type"]}
        )

    @accepts("application/json")
    async def slow(self, request: web.Request) -> web.Response:
        """Answers after `seconds`."""
        seconds = float((await request.json())["seconds"])
        await asyncio.sleep(seconds)
        return web.json_response({"slept": seconds})

    async def device_fault(self, request: web.Request) -> web.Response:
        """What torch raises once the GPU is in an unknown state."""
        raise RuntimeError(
            "CUDA error: an illegal memory access was encountered\nCUDA kernel errors might be "
            "asynchronously reported at some other API call"
        )

    async def bad(self, request: web.Request) -> web.Response:
        raise BadRequest("language 'xx' is not supported: use one of en, fr")

    async def boom(self, request: web.Request) -> web.Response:
        raise ValueError("engine bug")

    def details(self) -> dict[str, Any]:
        return {"device": "cpu", "sample_rate": 16000}
