"""Prefix affinity's pure parts: the prompt's start, the ring's spread, the load bound, and
which keys move when an endpoint leaves or joins."""

from __future__ import annotations

import math
from collections import Counter

from berth_gateway.affinity import affinity_key, bounded_pick, point, ring
from berth_gateway.balancer import Balancer
from berth_gateway.bodies import JSON_FIELDS, RequestBody
from berth_gateway.jsonscan import scan
from berth_gateway.table import Endpoint, Model

ENDPOINTS = frozenset(Endpoint(f"10.0.0.{i}", 8000) for i in range(10))
KEYS = [point(f"conversation {i}") for i in range(10_000)]


def idle(endpoint: Endpoint) -> int:
    return 0


def owners(endpoints: frozenset[Endpoint]) -> list[Endpoint | None]:
    placed = ring(endpoints)
    return [bounded_pick(placed, key, idle, endpoints, 1.25) for key in KEYS]


def body_of(text: str) -> RequestBody:
    data = bytearray(text.encode())
    return RequestBody(None, data, scan(data, JSON_FIELDS, 64))


def test_the_prefix_is_the_start_of_the_chat_or_the_prompt_as_sent() -> None:
    chat = body_of('{"model": "m", "messages": [{"role": "system", "content": "You are terse."}]}')
    assert chat.prompt_start(1000) == b'[{"role": "system", "content": "You are terse."}]'
    assert chat.prompt_start(10) == b'[{"role": '
    assert body_of('{"prompt": "Once upon a time", "model": "m"}').prompt_start(5) == b'"Once'
    assert body_of('{"prompt": [1, 2, 3]}').prompt_start(100) == b"[1, 2, 3]"
    assert body_of('{"input": "embed me"}').prompt_start(100) is None
    assert RequestBody("m", bytearray(b"{}")).prompt_start(100) is None


def test_keys_spread_evenly_over_the_ring() -> None:
    counts = Counter(owners(ENDPOINTS))
    mean = len(KEYS) / len(ENDPOINTS)
    assert set(counts) == ENDPOINTS
    assert all(0.7 * mean < c < 1.3 * mean for c in counts.values()), counts


def test_an_endpoint_that_leaves_moves_only_its_own_keys() -> None:
    before = owners(ENDPOINTS)
    gone = Endpoint("10.0.0.3", 8000)
    after = owners(ENDPOINTS - {gone})
    moved = [i for i, (b, a) in enumerate(zip(before, after, strict=True)) if b != a]
    assert moved and all(before[i] == gone for i in moved)
    assert len(moved) == before.count(gone)
    # and when it comes back, they come back: the ring depends on the set alone
    assert owners(ENDPOINTS) == before


def test_an_endpoint_that_joins_takes_about_its_share_from_the_others() -> None:
    before = owners(ENDPOINTS)
    new = Endpoint("10.0.0.99", 8000)
    after = owners(ENDPOINTS | {new})
    moved = [i for i, (b, a) in enumerate(zip(before, after, strict=True)) if b != a]
    assert all(after[i] == new for i in moved)
    assert 0.5 / 11 < len(moved) / len(KEYS) < 1.5 / 11


def test_one_hot_prefix_stays_under_the_load_bound() -> None:
    """Every request carries the same key and none finishes: each pick keeps every endpoint at
    or under ceil(c * requests / endpoints), and the key's own endpoint fills first."""
    balancer = Balancer(load_factor=1.25)
    endpoints = sorted(ENDPOINTS, key=lambda e: e.address)
    key = point("the one system prompt everybody sends")
    home = balancer.pick(endpoints, set(), key)
    leases = []
    for sent in range(1, 201):
        chosen = balancer.pick(endpoints, set(), key)
        assert chosen is not None
        lease = balancer.lease(chosen)
        lease.__enter__()
        leases.append(lease)
        bound = math.ceil(1.25 * sent / len(endpoints))
        assert max(balancer.in_flight(e) for e in endpoints) <= bound
    loads = {e: balancer.in_flight(e) for e in endpoints}
    assert loads[home] == max(loads.values()) == math.ceil(1.25 * 200 / 10)
    # the overflow fills the next endpoints clockwise, each up to the bound, not all of them
    assert sorted(loads.values(), reverse=True)[:8] == [25] * 8 and sum(loads.values()) == 200
    for lease in leases:
        lease.__exit__(None, None, None)
    assert balancer.pick(endpoints, set(), key) == home


def test_tried_and_ejected_endpoints_are_passed_over() -> None:
    balancer = Balancer(load_factor=1.25)
    endpoints = sorted(ENDPOINTS, key=lambda e: e.address)
    key = point("a prompt")
    home = balancer.pick(endpoints, set(), key)
    assert home is not None
    second = balancer.pick(endpoints, {home}, key)
    assert second not in (None, home)
    balancer.eject(home)
    assert balancer.pick(endpoints, set(), key) == second
    assert balancer.pick([home], {home}, key) is None


def test_the_same_prompt_under_two_adapters_is_two_keys_and_the_base_keeps_its_own() -> None:
    model = Model.from_body(
        {
            "metadata": {"name": "qwen", "namespace": "ns", "generation": 1},
            "spec": {
                "engine": "vllm",
                "model": {"repo": "Qwen/Qwen3-8B"},
                "gateway": {"balancing": "PrefixAffinity"},
                "vllm": {
                    "adapters": [{"name": "sql", "repo": "a/sql"}, {"name": "fr", "repo": "a/fr"}]
                },
            },
        }
    )
    assert model is not None and model.adapters == ("sql", "fr")
    text = '{"model": "%s", "messages": [{"role": "user", "content": "Same start"}]}'

    def key(name: str) -> int | None:
        data = bytearray((text % name).encode())
        return affinity_key(model, RequestBody(name, data, scan(data, JSON_FIELDS, 64)))

    prompt = point(b'[{"role": "user", "content": "Same start"}]')
    assert key("qwen") == prompt  # the base model's keys are the prompt's alone, as before
    assert len({key("qwen"), key("sql"), key("fr")}) == 3
