"""Benchmark: what prefix affinity buys. The same workload of chats (a few system prompts, some
far more popular than others, each with its own question) goes through one gateway to four
stand-in replicas (tests/gateway/upstream.py), once to a model balanced by LeastRequests and once
to one balanced by PrefixAffinity; each answer names the replica that served it.

Printed per policy:
- sticky: of the requests whose prompt start was seen before, the fraction that landed on the
  replica that served it last time (where vLLM's prefix cache holds it, if nothing evicted it);
- cached: the same with each replica's cache modelled as the --cache most recently served
  prompt starts (an LRU of a few prefixes: a prefix cache is a fixed share of GPU memory);
- copies: on how many replicas each prompt start ended up cached, on average (memory spent);
- spread: requests of the busiest replica over the average (the load bound at work).

No vLLM runs here: what a hit saves is the prefill of the shared start (vLLM's own figure:
time to first token drops by the share of the prompt that is cached).

    python -m benchmarks.gateway_affinity [--requests 2000] [--prefixes 32] [--concurrency 16]
        [--cache 8] [--load-factor 1.25]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
from collections import Counter, OrderedDict
from dataclasses import dataclass, field

import aiohttp

from benchmarks.gateway_bench import routed_gateway

REPLICAS = 4
FILLER = "Answer in the customer's language, cite the order number, never promise refunds. " * 8


def workload(requests: int, prefixes: int, seed: int) -> list[int]:
    """Which system prompt each request carries: Zipf-like popularity (the k-th is 1/k as
    frequent as the first), so that a few prompts are hot."""
    rng = random.Random(seed)
    weights = [1 / (k + 1) for k in range(prefixes)]
    return rng.choices(range(prefixes), weights, k=requests)


@dataclass
class Tally:
    cache_size: int
    last: dict[int, str] = field(default_factory=dict)
    caches: dict[str, OrderedDict[int, None]] = field(default_factory=dict)
    everywhere: dict[int, set[str]] = field(default_factory=dict)
    per_replica: Counter[str] = field(default_factory=Counter)
    repeats: int = 0
    sticky: int = 0
    cached: int = 0

    def served(self, prefix: int, replica: str) -> None:
        cache = self.caches.setdefault(replica, OrderedDict())
        if prefix in self.last:
            self.repeats += 1
            self.sticky += self.last[prefix] == replica
            self.cached += prefix in cache
        self.last[prefix] = replica
        cache[prefix] = None
        cache.move_to_end(prefix)
        while len(cache) > self.cache_size:
            cache.popitem(last=False)
        self.everywhere.setdefault(prefix, set()).add(replica)
        self.per_replica[replica] += 1


async def run(url: str, model: str, plan: list[int], concurrency: int, tally: Tally) -> float:
    """Sends the plan in order from `concurrency` clients; seconds taken."""
    queue: asyncio.Queue[tuple[int, int]] = asyncio.Queue()
    for index, prefix in enumerate(plan):
        queue.put_nowait((index, prefix))
    headers = {"X-Test-Delay": "0.02"}  # each answer takes 20 ms: requests overlap

    async def client(session: aiohttp.ClientSession) -> None:
        while not queue.empty():
            index, prefix = queue.get_nowait()
            messages = [
                {"role": "system", "content": f"Shop {prefix}. {FILLER}"},
                {"role": "user", "content": f"Where is my order {index}?"},
            ]
            body = {"model": model, "messages": messages, "max_tokens": 1}
            async with session.post(url, json=body, headers=headers) as response:
                assert response.status == 200, await response.text()
                tally.served(prefix, (await response.json())["system_fingerprint"])

    started = time.perf_counter()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        await asyncio.gather(*(client(session) for _ in range(concurrency)))
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--prefixes", type=int, default=32)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--cache", type=int, default=8, help="prompt starts each replica holds")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--load-factor", type=float, default=1.25, help="the gateway's --affinity-load-factor"
    )
    args = parser.parse_args()
    plan = workload(args.requests, args.prefixes, args.seed)
    models = {
        "least": {"gateway": {"balancing": "LeastRequests"}},
        "affinity": {"gateway": {"balancing": "PrefixAffinity"}},
    }
    gateway_args = (f"--affinity-load-factor={args.load_factor}",)
    with routed_gateway(models, upstreams=REPLICAS, gateway_args=gateway_args) as bench:
        url = bench.gateway.url + "/v1/chat/completions"
        print(
            f"{args.requests} chats, {args.prefixes} system prompts (Zipf), {args.concurrency} "
            f"clients, {REPLICAS} replicas, each replica's cache: {args.cache} prompt starts, "
            f"load factor {args.load_factor:g}"
        )
        for model in models:
            tally = Tally(args.cache)
            seconds = asyncio.run(run(url, model, plan, args.concurrency, tally))
            copies = sum(len(r) for r in tally.everywhere.values()) / len(tally.everywhere)
            mean = args.requests / REPLICAS
            print(
                f"  {models[model]['gateway']['balancing']:15} sticky {tally.sticky / tally.repeats:6.1%}"
                f"   cached {tally.cached / tally.repeats:6.1%}   copies {copies:4.2f}"
                f"   spread {max(tally.per_replica.values()) / mean:4.2f}"
                f"   ({args.requests / seconds:,.0f} requests/s)"
            )


if __name__ == "__main__":
    main()
