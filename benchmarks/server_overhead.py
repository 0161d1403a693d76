"""Benchmark: what the model server core adds to a request.

Three ways to run the same engine handler, in the same run:
- called directly (no HTTP);
- a bare aiohttp app with only that route (HTTP on loopback, nothing of Berth's);
- Berth's server (errors, API keys, readiness gate, content types, metrics).
Berth's overhead is the difference of the last two at the median. Target: p50 under 1 ms.

    python -m benchmarks.server_overhead [--requests 3000]
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import statistics
import tempfile
import threading
import time
from pathlib import Path

from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from berth_runtime.server.app import ModelServer, ServerConfig
from berth_runtime.server.state import RuntimeState

from tests.cluster.controlplane import free_port
from tests.runtime.dummy_engine import EchoEngine

BODY = b'{"text": "hello"}'


class Ready(EchoEngine):
    """The test engine, loaded without a cache."""

    def resolve(self, cache_dir: Path, repo: str, revision: str) -> Path:
        directory = Path(tempfile.mkdtemp())
        (directory / "config.json").write_text('{"model_type": "bench"}')
        return directory


def serve(app: web.Application) -> int:
    port, loop = free_port(), asyncio.new_event_loop()
    runner = web.AppRunner(app, access_log=None)

    async def start() -> None:
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()

    threading.Thread(target=loop.run_forever, daemon=True).start()
    asyncio.run_coroutine_threadsafe(start(), loop).result(10)
    return port


def latencies(port: int, count: int, headers: dict[str, str]) -> list[float]:
    connection = http.client.HTTPConnection("127.0.0.1", port)
    out = []
    for _ in range(count + 200):
        started = time.perf_counter()
        connection.request("POST", "/v1/echo", BODY, headers)
        response = connection.getresponse()
        response.read()
        assert response.status == 200, response.status
        out.append(time.perf_counter() - started)
    return out[200:]  # warm-up dropped


def direct(engine: EchoEngine, count: int) -> list[float]:
    loop = asyncio.new_event_loop()
    out = []
    for _ in range(count):
        request = make_mocked_request(
            "POST", "/v1/echo", headers={"Content-Type": "application/json"}, payload=None
        )
        request._read_bytes = BODY  # type: ignore[attr-defined]
        started = time.perf_counter()
        loop.run_until_complete(engine.echo(request))
        out.append(time.perf_counter() - started)
    return out


def p(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[q - 1] * 1000 if q < 100 else max(values) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=3000)
    args = parser.parse_args()
    headers = {"Content-Type": "application/json", "Authorization": "Bearer k1"}

    engine = Ready({})
    engine.load(engine.resolve(Path("."), "bench/model", "main"))
    bare = web.Application()
    bare.add_routes(engine.routes())
    bare_port = serve(bare)

    berth = ModelServer(
        Ready({}),
        ServerConfig(Path("."), "bench/model", "main", api_keys=(b"k0", b"k1")),
        RuntimeState(),
    )
    berth_port = serve(berth.app())
    while not berth.state.ready:
        time.sleep(0.01)

    results = {
        "engine called directly": direct(engine, args.requests),
        "bare aiohttp, same handler": latencies(bare_port, args.requests, headers),
        "Berth server": latencies(berth_port, args.requests, headers),
    }
    for name, values in results.items():
        print(f"{name:28s} p50 {p(values, 50):.3f} ms  p99 {p(values, 99):.3f} ms")
    overhead = p(results["Berth server"], 50) - p(results["bare aiohttp, same handler"], 50)
    print(
        f"Berth's overhead at p50: {overhead:.3f} ms over bare aiohttp (target < 1 ms); "
        f"{p(results['Berth server'], 50) - p(results['engine called directly'], 50):.3f} ms over the direct call"
    )


if __name__ == "__main__":
    main()
