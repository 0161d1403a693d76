"""Progress read from the cache itself: bytes of the planned blobs on disk, rate, stalls."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from berth_operator.api.modeldeployment import DownloadReport

from berth_runtime.clock import utcnow
from berth_runtime.download.partials import partial_bytes
from berth_runtime.download.plan import DownloadPlan


@dataclass
class DownloadProgress:
    """One sample of the download's progress."""

    resolved_revision: str
    bytes_done: int
    bytes_total: int
    files_done: int
    files_total: int
    bytes_per_second: int
    started_at: str
    completed_at: str | None = None
    dependencies: list[str] = field(default_factory=list)  # other repositories, org/name@commit

    @property
    def percent(self) -> int:
        if not self.bytes_total:
            return 100 if self.files_done == self.files_total else 0
        return min(100, int(100 * self.bytes_done / self.bytes_total))

    def as_report(self) -> DownloadReport:
        """The report the operator copies into status.download."""
        return DownloadReport(
            resolved_revision=self.resolved_revision,
            bytes_done=self.bytes_done,
            bytes_total=self.bytes_total,
            files_done=self.files_done,
            files_total=self.files_total,
            percent=self.percent,
            progress=f"{self.percent}%",
            bytes_per_second=self.bytes_per_second,
            started_at=self.started_at,
            completed_at=self.completed_at,
            dependencies=self.dependencies or None,
            updated_at=utcnow(),
        )


def measure(plans: Sequence[DownloadPlan], cache_dir: Path) -> tuple[int, int]:
    """(bytes, files) of the plans present in the cache, partial downloads included."""
    done_bytes = done_files = 0
    for plan in plans:
        blobs = plan.repo_dir(cache_dir) / "blobs"
        for f in plan.files:
            complete = blobs / f.blob
            if complete.exists() and complete.stat().st_size == f.size:
                done_bytes += f.size
                done_files += 1
                continue
            done_bytes += partial_bytes(blobs, f.blob, f.size)
    return done_bytes, done_files


class ProgressMonitor:
    """Samples progress every `interval` s, hands it to `report`, and calls `on_stall` when no
    byte arrived for `stall_seconds`."""

    def __init__(
        self,
        plans: Sequence[DownloadPlan],
        cache_dir: Path,
        report: Callable[[DownloadProgress], None],
        on_stall: Callable[[float], None],
        stall_seconds: float,
        interval: float = 1.0,
    ) -> None:
        self.plans, self.cache_dir, self.report, self.on_stall = plans, cache_dir, report, on_stall
        self.stall_seconds, self.interval = stall_seconds, interval
        self.started_at = utcnow()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="progress", daemon=True)
        self._window: list[tuple[float, int]] = []

    def sample(self) -> DownloadProgress:
        done, files = measure(self.plans, self.cache_dir)
        now = time.monotonic()
        self._window = [(t, b) for t, b in self._window if now - t <= 10] + [(now, done)]
        (t0, b0) = self._window[0]
        rate = int((done - b0) / (now - t0)) if now > t0 else 0
        main, *dependencies = self.plans
        return DownloadProgress(
            main.commit,
            done,
            sum(p.bytes_total for p in self.plans),
            files,
            sum(len(p.files) for p in self.plans),
            rate,
            self.started_at,
            dependencies=[f"{p.repo}@{p.commit}" for p in dependencies],
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        last_bytes, last_change = -1, time.monotonic()
        while not self._stop.wait(self.interval):
            progress = self.sample()
            self.report(progress)
            now = time.monotonic()
            if progress.bytes_done != last_bytes:
                last_bytes, last_change = progress.bytes_done, now
            elif (
                progress.files_done < progress.files_total
                and now - last_change >= self.stall_seconds
            ):
                self.on_stall(now - last_change)
                return
