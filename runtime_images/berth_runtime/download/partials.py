"""Partial blobs: what an unfinished download leaves in blobs/, and how the next attempt resumes it.

huggingface_hub 1.x and later (classic HTTP and hf_xet alike) write each blob into a temporary
file of its own, `blobs/<etag>.<8 hex>.incomplete`, truncated when opened, and rename it to
`blobs/<etag>` once whole; the library removes it on an error it sees, never reuses it, and a
killed process leaves it behind. Both writers fill it in order from byte 0, so what a killed
attempt left is a prefix of the file. huggingface_hub 0.x wrote `blobs/<etag>.incomplete` and
resumed it; both names are read here.

While a download runs, the library holds `.locks/<repo dir>/<etag>.lock`. A partial whose lock
is free belongs to nobody: the Job keeps the longest one, completes it with a Range request,
and removes the others, so a killed attempt neither costs its bytes again nor leaks disk.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from berth_runtime.download.plan import DownloadPlan, PlannedFile

logger = logging.getLogger(__name__)


def partials(blobs: Path, blob: str) -> list[Path]:
    """The partial files of one blob: huggingface_hub 0.x's name and 1.x+'s per-process names."""
    return [p for p in blobs.glob(f"{blob}.*incomplete") if p.is_file()]


def partial_bytes(blobs: Path, blob: str, size: int) -> int:
    """Bytes of the most advanced partial of a blob (concurrent writers each have their own)."""
    sizes = []
    for path in partials(blobs, blob):
        try:
            sizes.append(path.stat().st_size)
        except FileNotFoundError:  # renamed into place or removed meanwhile
            continue
    return min(max(sizes, default=0), size)


def lock_path(plan: DownloadPlan, cache_dir: Path, blob: str) -> Path:
    """The lock huggingface_hub holds while it downloads this blob."""
    return cache_dir / ".locks" / plan.repo_dir(cache_dir).name / f"{blob}.lock"


@contextmanager
def unless_downloading(plan: DownloadPlan, cache_dir: Path, blob: str) -> Iterator[bool]:
    """Holds the blob's download lock if nobody else does; yields whether it was taken."""
    from filelock import FileLock, Timeout

    path = lock_path(plan, cache_dir, blob)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(path, mode=0o664)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        yield False
        return
    try:
        yield True
    finally:
        lock.release()


def _keep_longest(blobs: Path, f: PlannedFile) -> Path | None:
    """Removes all but the longest partial of `f` that is not too long; returns it."""
    found = sorted(partials(blobs, f.blob), key=lambda p: p.stat().st_size, reverse=True)
    keep = next((p for p in found if p.stat().st_size <= f.size), None)
    for path in found:
        if path != keep:
            path.unlink(missing_ok=True)
    return keep


def prune(plan: DownloadPlan, cache_dir: Path) -> None:
    """Removes the partials nobody writes except the longest of each blob, before space is
    counted: they would never be reused by the library and would hold disk."""
    blobs = plan.repo_dir(cache_dir) / "blobs"
    for f in plan.files:
        if not partials(blobs, f.blob):
            continue
        with unless_downloading(plan, cache_dir, f.blob) as free:
            if free:
                _keep_longest(blobs, f)


def resume(plan: DownloadPlan, cache_dir: Path, token: str | None) -> None:
    """Completes each abandoned partial of the plan with a Range request, then puts it in place
    as the library would; a blob someone is downloading right now is left to them."""
    from huggingface_hub import hf_hub_url
    from huggingface_hub.file_download import http_get
    from huggingface_hub.utils import build_hf_headers

    blobs = plan.repo_dir(cache_dir) / "blobs"
    for f in plan.files:
        if (blobs / f.blob).exists() or not partials(blobs, f.blob):
            continue
        with unless_downloading(plan, cache_dir, f.blob) as free:
            if not free or (keep := _keep_longest(blobs, f)) is None:
                continue
            done = keep.stat().st_size
            logger.info("%s: resuming at byte %d of %d", f.path, done, f.size)
            with keep.open("ab") as out:
                http_get(
                    hf_hub_url(plan.repo, f.path, revision=plan.commit),
                    out,
                    resume_size=done,
                    headers=build_hf_headers(token=token),
                    expected_size=f.size,
                    displayed_filename=f.path,
                )
            os.replace(keep, blobs / f.blob)
