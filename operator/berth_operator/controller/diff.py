"""Whether an applied object already holds everything the operator wants in it."""

from __future__ import annotations

from typing import Any


def contains(observed: Any, desired: Any) -> bool:
    """True when every field of `desired` has the same value in `observed`.

    Fields the server added (defaults, status, metadata) are ignored; lists must match
    element by element. An empty list or map matches a missing field, as the API server drops
    empty ones (`tolerations: []`). This keeps the operator from writing when nothing changed.
    """
    if desired in ([], {}) and observed is None:
        return True
    if isinstance(desired, dict):
        return isinstance(observed, dict) and all(
            contains(observed.get(key), value) for key, value in desired.items()
        )
    if isinstance(desired, list):
        return (
            isinstance(observed, list)
            and len(observed) == len(desired)
            and all(contains(o, d) for o, d in zip(observed, desired, strict=True))
        )
    if isinstance(desired, bool) or isinstance(observed, bool):
        return desired is observed
    if isinstance(desired, int | float) and isinstance(observed, int | float):
        return desired == observed
    return desired == observed or (desired in ("", None) and observed in ("", None))
