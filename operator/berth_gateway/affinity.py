"""Prefix affinity: consistent hashing with bounded loads (Mirrokni, Thorup, Zadimoghaddam 2018)
on the start of the prompt, so that requests whose prompts start alike reach the same replica
and hit its prefix cache, while no replica takes more than `factor` times the average load."""

from __future__ import annotations

import bisect
import hashlib
import math
from collections.abc import Callable, Collection
from functools import lru_cache

from berth_gateway.bodies import RequestBody
from berth_gateway.table import Endpoint, Model

#: points of each endpoint on the ring: more points spread keys more evenly
POINTS_PER_ENDPOINT = 160

Ring = tuple[tuple[int, ...], tuple[Endpoint, ...]]


def point(data: str | bytes) -> int:
    """A position on the ring: 64 bits of BLAKE2b, the same in every gateway process."""
    raw = data.encode() if isinstance(data, str) else data
    return int.from_bytes(hashlib.blake2b(raw, digest_size=8).digest(), "big")


@lru_cache(maxsize=256)
def ring(endpoints: frozenset[Endpoint]) -> Ring:
    """The ring of a set of endpoints: its points, sorted, and the endpoint of each."""
    placed = sorted(
        (point(f"{e.address}:{e.port}#{i}"), e)
        for e in endpoints
        for i in range(POINTS_PER_ENDPOINT)
    )
    return tuple(p for p, _ in placed), tuple(e for _, e in placed)


def bounded_pick(
    placed: Ring,
    key: int,
    load: Callable[[Endpoint], int],
    candidates: Collection[Endpoint],
    factor: float,
) -> Endpoint | None:
    """The first candidate clockwise from `key` whose load is under the bound
    ceil(factor * (total load + 1) / candidates): the new request counts in the total. Endpoints
    on the ring that are not candidates (tried, ejected) are passed over."""
    if not candidates:
        return None
    total = sum(load(e) for e in candidates)
    bound = math.ceil(factor * (total + 1) / len(candidates))
    points, owners = placed
    start = bisect.bisect_left(points, key)
    seen: set[Endpoint] = set()
    for index in range(len(owners)):
        endpoint = owners[(start + index) % len(owners)]
        if endpoint in seen or endpoint not in candidates:
            continue
        if load(endpoint) < bound:
            return endpoint
        seen.add(endpoint)
        if len(seen) == len(candidates):
            break
    # unreachable with factor >= 1 (the loads cannot all be at the bound); kept total
    return min(candidates, key=load)


def affinity_key(model: Model, body: RequestBody) -> int | None:
    """Where a request of `model` lands on the ring; None (least requests) unless the model
    balances by prefix and the request has a prompt. The key is the start of the prompt as the
    client sent it (the JSON of `messages`, or of `prompt`): read in place, never parsed; with
    the adapter's name before it when the request names one of the model's adapters."""
    if model.balancing != "PrefixAffinity":
        return None
    prefix = body.prompt_start(model.prefix_chars)
    if not prefix:
        return None
    if body.model and body.model != model.served_name:
        # an adapter: the same prompt under another adapter is another cache
        return point(body.model.encode() + b"\0" + prefix)
    return point(prefix)
