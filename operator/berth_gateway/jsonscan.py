"""Reads a JSON request's top-level fields without building the document: the gateway needs the
`model` and the start of the prompt, and a body of 19 MiB of numbers must not become 150 MiB of
Python objects. Memory is the body's bytes and the few values read; time is linear in them.

The scan follows strings (with their escapes) and brackets only, so a long run of numbers is
skipped by the regular expression engine without a Python step per item. It checks nesting
depth and the balance of brackets, not the whole grammar: the model server validates the body.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

#: a JSON string (escapes included), or a bracket
_TOKEN = re.compile(rb'"(?:[^"\\]|\\.)*"|[{}\[\]]', re.S)
_SPACE = b" \t\r\n"
_OPEN = frozenset(b"{[")
_CLOSE = {ord("}"): ord("{"), ord("]"): ord("[")}


class JsonShapeError(ValueError):
    """The body is not a JSON object the gateway can route."""


@dataclass
class TopLevel:
    """Where each wanted top-level field's value lies in the body."""

    spans: dict[str, tuple[int, int]] = field(default_factory=dict)

    def string(self, body: bytes | bytearray, name: str) -> str | None:
        """The field's value when it is a string; None when absent; JsonShapeError otherwise."""
        span = self.spans.get(name)
        if span is None:
            return None
        raw = bytes(body[span[0] : span[1]])
        if not raw.startswith(b'"'):
            raise JsonShapeError(f"'{name}' must be a string")
        return json.loads(raw)

    def raw(self, body: bytes | bytearray, name: str, limit: int) -> bytes | None:
        """The first `limit` bytes of the field's value as sent; None when absent."""
        span = self.spans.get(name)
        if span is None:
            return None
        return bytes(body[span[0] : min(span[1], span[0] + limit)])


def _skip_space(body: bytes | bytearray, at: int) -> int:
    while at < len(body) and body[at] in _SPACE:
        at += 1
    return at


def scan(body: bytes | bytearray, wanted: frozenset[str], max_depth: int) -> TopLevel:
    """The spans of the `wanted` fields of the body's top-level object."""
    start = _skip_space(body, 0)
    if start >= len(body) or body[start] != ord("{"):
        raise JsonShapeError("the body must be a JSON object with a 'model' field")
    found = TopLevel()
    stack: list[int] = []
    pending: str | None = None  # a wanted key whose value starts at value_start
    value_start = 0
    for match in _TOKEN.finditer(body, start):
        token, at = match.group(), match.start()
        if pending is not None and len(stack) == 1 and at != value_start:
            # the value was a number, true, false or null: it ended before this token
            found.spans[pending] = (value_start, _scalar_end(body, value_start))
            pending = None
        first = token[0]
        if first == ord('"'):
            if len(stack) == 1:
                if pending is not None:  # the wanted value is this string
                    found.spans[pending] = (at, match.end())
                    pending = None
                    continue
                after = _skip_space(body, match.end())
                if after < len(body) and body[after] == ord(":"):
                    key = _key(token)
                    if key in wanted and key not in found.spans:
                        pending, value_start = key, _skip_space(body, after + 1)
            continue
        if first in _OPEN:
            if len(stack) >= max_depth:
                raise JsonShapeError(f"the body nests deeper than {max_depth} levels")
            stack.append(first)
            continue
        if not stack or stack.pop() != _CLOSE[first]:
            raise JsonShapeError("the body's brackets do not match")
        if len(stack) == 1 and pending is not None:  # the wanted object or array just closed
            found.spans[pending] = (value_start, match.end())
            pending = None
        if not stack:
            if bytes(body[match.end() :]).strip():
                raise JsonShapeError("the body has data after its JSON object")
            return found
    raise JsonShapeError("the body ends inside its JSON object")


def _scalar_end(body: bytes | bytearray, at: int) -> int:
    end = at
    while end < len(body) and body[end] not in b",}] \t\r\n":
        end += 1
    return end


def _key(token: bytes) -> str | None:
    try:
        return json.loads(token)
    except ValueError:
        return None
