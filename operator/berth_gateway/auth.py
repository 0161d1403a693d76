"""Client keys from a Secret (several at once, replaced when the Secret changes), each with the
models it may call; compared in constant time, never logged.

The Secret's format: each entry `<name>` holds keys separated by commas or new lines; an entry
`<name>.models` (models separated by commas or new lines) limits the keys of entry `<name>` to
those models. Keys of an entry without such a limit may call every model."""

from __future__ import annotations

import base64
import hmac
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

logger = logging.getLogger(__name__)

#: suffix of the Secret entry that limits the keys of the entry it names
MODELS_SUFFIX = ".models"


@dataclass(frozen=True)
class Grant:
    """What one key may call: `models` None is every model."""

    models: frozenset[str] | None = None

    def permits(self, model: str) -> bool:
        return self.models is None or model in self.models

    def visible(self, names: Iterable[str]) -> list[str]:
        """The names among `names` this key may call, in their order."""
        return [n for n in names if self.permits(n)]

    def merged(self, other: Grant) -> Grant:
        """A key listed in two entries may call what either allows."""
        if self.models is None or other.models is None:
            return EVERY_MODEL
        return Grant(self.models | other.models)


EVERY_MODEL = Grant()


def _split(text: str) -> list[str]:
    return [item.strip() for item in text.replace(",", "\n").splitlines() if item.strip()]


def parse_keys(data: Mapping[str, str] | None) -> dict[bytes, Grant]:
    """Every key in a Secret's `data` (base64) with what it may call. One entry can hold the old
    and the new key during a rotation; its `.models` entry limits both alike."""
    texts = {name: base64.b64decode(value).decode() for name, value in (data or {}).items()}
    limits = {
        name.removesuffix(MODELS_SUFFIX): frozenset(_split(text))
        for name, text in texts.items()
        if name.endswith(MODELS_SUFFIX)
    }
    for entry in sorted(set(limits) - set(texts)):
        logger.warning(
            "the key Secret's entry %s%s names no entry %s: it limits nothing",
            entry,
            MODELS_SUFFIX,
            entry,
        )
    keys: dict[bytes, Grant] = {}
    for name, text in texts.items():
        if name.endswith(MODELS_SUFFIX):
            continue
        grant = Grant(limits.get(name))
        for key in _split(text):
            found = keys.get(key.encode())
            keys[key.encode()] = grant if found is None else found.merged(grant)
    return keys


class KeyRing:
    """The keys clients may present. `required` without a Secret read yet refuses everyone."""

    def __init__(self, required: bool) -> None:
        self.required = required
        self._keys: tuple[tuple[bytes, Grant], ...] = ()

    def replace(self, keys: Mapping[bytes, Grant]) -> None:
        self._keys = tuple(keys.items())

    def grant(self, authorization: str | None) -> Grant | None:
        """What the presented key may call; None when it is no key of the ring. Compares with
        every key, always, so the time says nothing about which matched."""
        if not self.required:
            return EVERY_MODEL
        scheme, _, token = (authorization or "").partition(" ")
        # bytes that are not UTF-8 arrive as surrogates: they match no key (401, not 500)
        presented = token.strip().encode(errors="surrogateescape")
        matched: Grant | None = None
        for key, grant in self._keys:
            if hmac.compare_digest(presented, key):
                matched = grant
        return matched if scheme.lower() == "bearer" else None
