"""SIGTERM before a process has its own handler.

In a container the entry point is PID 1, and the kernel drops a signal whose action is the
default for PID 1: a model server importing torch, or a download in flight, would ignore the
kubelet's SIGTERM and keep the pod Terminating for its whole grace period. Until a process
installs a handler of its own, SIGTERM ends it at once, as it would any other process.
"""

from __future__ import annotations

import os
import signal
import sys
from types import FrameType


def _end_now(signum: int, frame: FrameType | None) -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(128 + signum)  # what a shell and the kubelet report for a death by this signal


def end_on_sigterm() -> None:
    """SIGTERM ends the process (exit code 143) until another handler replaces this one."""
    signal.signal(signal.SIGTERM, _end_now)
