"""Benchmark: many concurrent open streams through one gateway process. N streamed chats (SSE, a
chunk every --pace seconds) are opened at once, first straight to the stand-in upstream
(tests/gateway/upstream.py), then through the gateway; printed for each: the time until every
stream had its first chunk, the resident memory with all of them open (peak, sampled), the CPU
seconds spent while they ran, and that every chunk arrived. The direct run is the baseline: the
upstream's own cost for the same streams.

    python -m benchmarks.gateway_streams [--streams 1000] [--tokens 20] [--pace 1.0]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections import Counter
from dataclasses import dataclass

import aiohttp

from benchmarks.gateway_bench import cpu_seconds, routed_gateway
from tests.cluster.processes import ManagedProcess


@dataclass
class Run:
    opened_s: float
    total_s: float
    peak_rss: dict[str, int]
    cpu_s: dict[str, float]
    chunks: int


async def streams(
    url: str, count: int, tokens: int, pace: float, watched: dict[str, ManagedProcess]
) -> Run:
    """Opens `count` streams at once and reads them to the end, sampling the watched processes'
    memory every 0.1 s."""
    body = {"model": "chat", "messages": [], "stream": True, "max_tokens": tokens}
    headers = {"X-Test-Chunk-Seconds": str(pace)}
    first = 0
    all_open = asyncio.Event()
    peak = dict.fromkeys(watched, 0)
    cpu_before = {n: cpu_seconds(p.pid) for n, p in watched.items()}

    async def one(session: aiohttp.ClientSession) -> int:
        nonlocal first
        events = 0
        async with session.post(url, json=body, headers=headers) as response:
            assert response.status == 200, await response.text()
            async for line in response.content:
                if line.startswith(b"data: "):
                    events += 1
                    if events == 1:
                        first += 1
                        if first == count:
                            all_open.set()
        return events

    async def sample() -> None:
        while True:
            for name, process in watched.items():
                peak[name] = max(peak[name], process.rss_bytes())
            await asyncio.sleep(0.1)

    timeout = aiohttp.ClientTimeout(total=None, sock_read=60)
    started = time.perf_counter()
    sampler = asyncio.create_task(sample())
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0), timeout=timeout
    ) as session:
        tasks = [asyncio.create_task(one(session)) for _ in range(count)]
        await all_open.wait()
        opened = time.perf_counter() - started
        events = await asyncio.gather(*tasks)
    total = time.perf_counter() - started
    sampler.cancel()
    cpu = {n: cpu_seconds(p.pid) - cpu_before[n] for n, p in watched.items()}
    assert all(e == tokens + 1 for e in events), Counter(events)
    return Run(opened, total, peak, cpu, sum(events))


def mib(value: float) -> str:
    return f"{value / 2**20:7.1f} MiB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--tokens", type=int, default=20)
    parser.add_argument("--pace", type=float, default=1.0, help="seconds between chunks")
    args = parser.parse_args()
    with routed_gateway({"chat": {}}) as bench:
        upstream, gateway = bench.upstreams[0].process, bench.gateway.process
        idle = {"gateway": gateway.rss_bytes(), "upstream": upstream.rss_bytes()}
        direct = asyncio.run(
            streams(
                bench.upstreams[0].url + "/v1/chat/completions",
                args.streams,
                args.tokens,
                args.pace,
                {"upstream": upstream},
            )
        )
        through = asyncio.run(
            streams(
                bench.gateway.url + "/v1/chat/completions",
                args.streams,
                args.tokens,
                args.pace,
                {"gateway": gateway, "upstream": upstream},
            )
        )
    n = args.streams
    print(
        f"{n} concurrent streams, {args.tokens} chunks each, one every {args.pace:g} s "
        f"({n / args.pace:,.0f} chunks/s in all):"
    )
    for name, run in (("direct", direct), ("gateway", through)):
        print(
            f"  {name:8} all open after {run.opened_s:5.2f} s, done after {run.total_s:5.2f} s, "
            f"{run.chunks:,} events"
        )
    print(
        f"  gateway process: RSS idle {mib(idle['gateway'])}, with {n} open {mib(through.peak_rss['gateway'])} "
        f"({(through.peak_rss['gateway'] - idle['gateway']) / n / 1024:.1f} KiB a stream); "
        f"CPU {through.cpu_s['gateway']:.2f} s "
        f"({through.cpu_s['gateway'] / through.chunks * 1e6:.0f} us a chunk, "
        f"{through.cpu_s['gateway'] / through.total_s:.0%} of one core)"
    )
    print(
        f"  baseline, the upstream serving the same streams directly: RSS idle "
        f"{mib(idle['upstream'])}, with {n} open {mib(direct.peak_rss['upstream'])}; "
        f"CPU {direct.cpu_s['upstream']:.2f} s ({through.cpu_s['upstream']:.2f} s behind the gateway)"
    )


if __name__ == "__main__":
    main()
