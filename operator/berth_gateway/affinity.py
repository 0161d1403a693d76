"""Prefix affinity: consistent hashing with bounded loads (Mirrokni, Thorup, Zadimoghaddam 2018)
on the start of the prompt, so that requests whose prompts start alike reach the same replica
and hit its prefix cache, while no replica takes more than `factor` times the average load."""

from __future__ import annotations

import bisect
import hashlib
import math
from collections.abc import Callable, Collection, Iterator, Mapping
from functools import lru_cache
from typing import Any

from berth_gateway.table import Endpoint, Model

#: points of each endpoint on the ring: more points spread keys more evenly
POINTS_PER_ENDPOINT = 160

Ring = tuple[tuple[int, ...], tuple[Endpoint, ...]]


def point(text: str) -> int:
    """A position on the ring: 64 bits of BLAKE2b, the same in every gateway process."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


@lru_cache(maxsize=256)
def ring(endpoints: frozenset[Endpoint]) -> Ring:
    """The ring of a set of endpoints: its points, sorted, and the endpoint of each."""
    placed = sorted(
        (point(f"{e.address}:{e.port}#{i}"), e)
        for e in endpoints
        for i in range(POINTS_PER_ENDPOINT)
    )
    return tuple(p for p, _ in placed), tuple(e for _, e in placed)


def _parts(document: Mapping[str, Any]) -> Iterator[str]:
    """The prompt's text in order: chat messages (role, then text parts), or `prompt`."""
    messages = document.get("messages")
    if isinstance(messages, list):
        for message in messages:
            if not isinstance(message, dict):
                continue
            yield f"{message.get('role')}\n"
            content = message.get("content")
            if isinstance(content, str):
                yield content
            elif isinstance(content, list):
                for part in content:
                    if isinstance(part, dict):
                        text = part.get("text")
                        yield text if isinstance(text, str) else f"<{part.get('type')}>"
            yield "\n"
        return
    prompt = document.get("prompt")
    if isinstance(prompt, list) and prompt and not isinstance(prompt[0], int):
        prompt = prompt[0]  # a batch: its first prompt
    if isinstance(prompt, str):
        yield prompt
    elif isinstance(prompt, list):  # token ids
        yield ",".join(str(t) for t in prompt)


def prompt_prefix(document: Mapping[str, Any] | None, chars: int) -> str | None:
    """The first `chars` characters of the request's prompt; None when it has none."""
    if document is None:
        return None
    text = ""
    for part in _parts(document):
        text += part
        if len(text) >= chars:
            break
    return text[:chars] or None


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


def affinity_key(model: Model, document: Mapping[str, Any] | None) -> int | None:
    """Where a request of `model` lands on the ring; None (least requests) unless the model
    balances by prefix and the request has a prompt."""
    if model.balancing != "PrefixAffinity":
        return None
    prefix = prompt_prefix(document, model.prefix_chars)
    return None if prefix is None else point(prefix)
