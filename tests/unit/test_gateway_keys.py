"""The gateway's key Secret format: entries of keys, and `<entry>.models` limits."""

from __future__ import annotations

import base64

from berth_gateway.auth import EVERY_MODEL, Grant, KeyRing, parse_keys


def data(**entries: str) -> dict[str, str]:
    return {name: base64.b64encode(text.encode()).decode() for name, text in entries.items()}


def test_entries_without_limits_hold_keys_that_call_every_model() -> None:
    keys = parse_keys(data(keys="a, b\nc\n\n", more="d"))
    assert keys == {k: EVERY_MODEL for k in (b"a", b"b", b"c", b"d")}


def test_a_models_entry_limits_the_keys_of_its_entry_only() -> None:
    keys = parse_keys({**data(team="t1,t2", admin="x"), **data(**{"team.models": "chat,\nqwen "})})
    assert keys[b"t1"] == keys[b"t2"] == Grant(frozenset({"chat", "qwen"}))
    assert keys[b"x"] == EVERY_MODEL
    assert keys[b"t1"].visible(["a", "chat", "qwen"]) == ["chat", "qwen"]


def test_a_key_in_two_entries_may_call_what_either_allows() -> None:
    limited = data(a="k", b="k", **{"a.models": "chat", "b.models": "qwen"})
    assert parse_keys(limited)[b"k"] == Grant(frozenset({"chat", "qwen"}))
    assert parse_keys(data(a="k", b="k", **{"a.models": "chat"}))[b"k"] == EVERY_MODEL


def test_a_models_entry_without_its_keys_limits_nothing_and_holds_no_key() -> None:
    assert parse_keys(data(**{"gone.models": "chat"})) == {}


def test_the_ring_answers_the_grant_of_the_presented_key() -> None:
    ring = KeyRing(required=True)
    ring.replace(parse_keys(data(team="t", admin="x", **{"team.models": "chat"})))
    assert ring.grant("Bearer t") == Grant(frozenset({"chat"}))
    assert ring.grant("bearer x") == EVERY_MODEL
    assert ring.grant("Bearer nope") is None
    assert ring.grant("Basic t") is None
    assert ring.grant(None) is None
    assert KeyRing(required=False).grant(None) == EVERY_MODEL
