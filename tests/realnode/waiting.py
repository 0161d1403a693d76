"""Waiting for a state on the node that no API object shows."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_until(done: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    """Polls `done()` until it is true; fails naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, f"no {what} after {timeout:.0f} s"
        time.sleep(0.2)
