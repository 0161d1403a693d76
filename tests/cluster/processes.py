"""Starting and stopping the control plane's processes, each in its own process group."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """Runs in the child before exec: the kernel sends SIGKILL when the parent dies."""
    os.setsid()
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


@dataclass
class ManagedProcess:
    """A started component: its name, pid (also its process group) and log file."""

    name: str
    pid: int
    log: Path
    popen: subprocess.Popen[bytes] | None = None

    @classmethod
    def start(
        cls, name: str, argv: list[str], log: Path, *, env: dict[str, str], tied_to_parent: bool
    ) -> ManagedProcess:
        """Starts argv with output to `log`; `tied_to_parent` kills it when this process dies."""
        with log.open("ab") as out:
            popen = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                preexec_fn=die_with_parent if tied_to_parent else None,
                start_new_session=not tied_to_parent,
            )
        return cls(name=name, pid=popen.pid, log=log, popen=popen)

    def alive(self) -> bool:
        """True while the process runs (and is not a zombie)."""
        if self.popen is not None:
            return self.popen.poll() is None
        try:
            state = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, IndexError):
            return False
        return state != "Z"

    def log_tail(self, lines: int = 20) -> str:
        """The last lines of its output, for error messages."""
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"

    def rss_bytes(self) -> int:
        """Resident memory of the process, 0 when it is gone."""
        try:
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        except FileNotFoundError:
            pass
        return 0

    def stop(self, grace_seconds: float = 5.0) -> None:
        """SIGTERM to its process group, SIGKILL after the grace period; reaps it."""
        self._signal_group(signal.SIGTERM)
        deadline = time.monotonic() + grace_seconds
        while self.alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        if self.alive():
            self._signal_group(signal.SIGKILL)
        if self.popen is not None:
            self.popen.wait(timeout=10)
        else:
            while self.alive() and time.monotonic() < deadline + 10:
                time.sleep(0.05)

    def _signal_group(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, sig)
