"""Client keys from a Secret (several at once, replaced when the Secret changes), compared in
constant time, never logged."""

from __future__ import annotations

import base64
import hmac
from collections.abc import Mapping


def parse_keys(data: Mapping[str, str] | None) -> tuple[bytes, ...]:
    """Every key in a Secret's `data` (base64): each value holds keys separated by commas or
    new lines, so one Secret can hold the old and the new key during a rotation."""
    keys: list[bytes] = []
    for value in (data or {}).values():
        text = base64.b64decode(value).decode()
        keys.extend(k.strip().encode() for k in text.replace(",", "\n").splitlines() if k.strip())
    return tuple(dict.fromkeys(keys))


class KeyRing:
    """The keys clients may present. `required` without a Secret read yet refuses everyone."""

    def __init__(self, required: bool) -> None:
        self.required = required
        self._keys: tuple[bytes, ...] = ()

    def replace(self, keys: tuple[bytes, ...]) -> None:
        self._keys = keys

    def allows(self, authorization: str | None) -> bool:
        """Compares with every key, always, so the time says nothing about which matched."""
        if not self.required:
            return True
        scheme, _, token = (authorization or "").partition(" ")
        presented = token.strip().encode()
        matched = False
        for key in self._keys:
            matched |= hmac.compare_digest(presented, key)
        return matched and scheme.lower() == "bearer"
