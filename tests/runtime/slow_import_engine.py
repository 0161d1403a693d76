"""An engine whose import takes a minute, as torch's and NeMo's do on a busy node."""

from __future__ import annotations

import time

print("importing the engine's libraries", flush=True)
time.sleep(60)

from tests.runtime.dummy_engine import EchoEngine as SlowImportEngine  # noqa: E402

__all__ = ["SlowImportEngine"]
