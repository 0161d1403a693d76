"""One download: plan, free-space check, fetch with progress, verify, mark complete."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from berth_operator.api.podenv import DownloadEnv

from berth_runtime.clock import utcnow
from berth_runtime.download import partials
from berth_runtime.download.dependencies import PIPELINE_CONFIG, Dependency, read_dependencies
from berth_runtime.download.errors import DownloadError, classify
from berth_runtime.download.plan import DownloadPlan, PlannedFile, make_plan
from berth_runtime.download.progress import DownloadProgress, ProgressMonitor, measure

logger = logging.getLogger(__name__)
DOWNLOAD_PIECE_BYTES = 2**20


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(4 * 2**20):
            digest.update(block)
    return digest.hexdigest()


def verify(plan: DownloadPlan, cache_dir: Path, workers: int = 4) -> None:
    """Sizes of every file, and the hub's sha256 of LFS files, several files at once (hashlib
    releases the GIL); a mismatch removes the blob."""
    with ThreadPoolExecutor(workers) as pool:
        for future in [pool.submit(_verify_file, plan, cache_dir, f) for f in plan.files]:
            future.result()


def _verify_file(plan: DownloadPlan, cache_dir: Path, f: PlannedFile) -> None:
    blob = plan.repo_dir(cache_dir) / "blobs" / f.blob
    size = blob.stat().st_size if blob.exists() else -1
    if size != f.size:
        raise DownloadError(
            "IntegrityCheckFailed",
            f"{plan.repo}/{f.path}: {size} bytes on disk, the hub says {f.size}",
            permanent=False,
        )
    if f.sha256 and sha256_of(blob) != f.sha256:
        blob.unlink()
        raise DownloadError(
            "IntegrityCheckFailed",
            f"{plan.repo}/{f.path}: sha256 differs from the hub's; the blob was removed, a retry "
            "downloads it again",
            permanent=False,
        )


def write_marker(plan: DownloadPlan, cache_dir: Path) -> Path:
    """Atomically records that this commit and these patterns are complete."""
    marker = plan.marker(cache_dir)
    marker.parent.mkdir(parents=True, exist_ok=True)
    tmp = marker.with_suffix(f".tmp-{os.getpid()}")
    tmp.write_text(
        json.dumps(
            {
                "repo": plan.repo,
                "commit": plan.commit,
                "completedAt": utcnow(),
                "files": {f.path: f.size for f in plan.files},
            }
        )
    )
    os.replace(tmp, marker)
    return marker


def check_free_space(plans: Sequence[DownloadPlan], cache_dir: Path) -> None:
    missing = sum(p.bytes_total for p in plans) - measure(plans, cache_dir)[0]
    free = shutil.disk_usage(cache_dir).free
    if missing > free:
        main = plans[0]
        raise DownloadError(
            "InsufficientStorage",
            f"{main.repo}@{main.revision} needs {missing / 2**30:.1f} GiB more, the cache volume "
            f"has {free / 2**30:.1f} GiB free: grow the cache claim or free space",
        )


def plan_or_raise(request: DownloadEnv, dependency: Dependency | None = None) -> DownloadPlan:
    """The plan of the spec's repository, or of a repository its pipeline config names."""
    repo = dependency.repo if dependency else request.repo
    revision = dependency.revision if dependency else request.revision
    try:
        if dependency:
            return make_plan(repo, revision, request.token, dependency.allow_patterns, [])
        return make_plan(
            repo, revision, request.token, request.allow_patterns, request.ignore_patterns
        )
    except Exception as error:
        raise classify(
            error,
            repo,
            revision,
            request.token is not None,
            needed_by=request.repo if dependency else None,
        ) from error


def dependency_plans(request: DownloadEnv, main: DownloadPlan) -> list[DownloadPlan]:
    """Plans of the repositories the model's pipeline config names (none for other models)."""
    from huggingface_hub import hf_hub_download

    if PIPELINE_CONFIG not in {f.path for f in main.files}:
        return []
    try:
        config = hf_hub_download(
            main.repo,
            PIPELINE_CONFIG,
            revision=main.commit,
            cache_dir=request.cache_dir,
            token=request.token,
        )
    except Exception as error:
        raise classify(error, main.repo, main.revision, request.token is not None) from error
    plans = [plan_or_raise(request, d) for d in read_dependencies(Path(config))]
    for plan in plans:
        logger.info("%s's %s names %s@%s", main.repo, PIPELINE_CONFIG, plan.repo, plan.revision)
    return plans


def fetch(request: DownloadEnv, plan: DownloadPlan, needed_by: str | None) -> None:
    """One repository: resume what a killed attempt left, download, verify, ref, mark."""
    from huggingface_hub import snapshot_download

    started = time.monotonic()
    try:
        partials.resume(plan, request.cache_dir, request.token)
        snapshot_download(
            plan.repo,
            revision=plan.commit,
            cache_dir=request.cache_dir,
            allow_patterns=list(plan.allow_patterns) or None,
            ignore_patterns=list(plan.ignore_patterns) or None,
            token=request.token,
            max_workers=request.workers,
        )
    except Exception as error:
        raise classify(
            error, plan.repo, plan.revision, request.token is not None, needed_by
        ) from error
    fetched = time.monotonic()
    logger.info(
        "%s: download phase %.2f s for %d bytes", plan.repo, fetched - started, plan.bytes_total
    )
    verify(plan, request.cache_dir)
    logger.info("%s: verify phase %.2f s", plan.repo, time.monotonic() - fetched)
    if plan.revision != plan.commit:
        ref = plan.repo_dir(request.cache_dir) / "refs" / plan.revision
        ref.parent.mkdir(parents=True, exist_ok=True)
        ref.write_text(plan.commit)
    write_marker(plan, request.cache_dir)


def remove(plan: DownloadPlan, cache_dir: Path) -> None:
    """A clean re-download starts without the repository."""
    if plan.repo_dir(cache_dir).exists():
        logger.info("force: removing %s", plan.repo_dir(cache_dir))
        shutil.rmtree(plan.repo_dir(cache_dir))


def run_download(
    request: DownloadEnv,
    report: Callable[[DownloadProgress, bool], None],
    on_stall: Callable[[float], None],
) -> DownloadProgress:
    """Downloads the model and the repositories its pipeline config names, verifies and marks
    each; returns the final progress or raises DownloadError."""
    from huggingface_hub import constants

    # huggingface_hub reads and writes 10 MiB pieces; each is a fresh allocation the kernel
    # faults in page by page. 1 MiB pieces are reused from the heap and stay in cache: on
    # loopback the download phase went from 65-87 % to 106 % of curl (download_throughput.py).
    constants.DOWNLOAD_CHUNK_SIZE = DOWNLOAD_PIECE_BYTES
    # Xet files stay regular files in their repository's blobs/: the cache-wide shared store
    # (<cache>/blobs/<xx>/<xet hash>, symlinked from each repository) would outlive `force`,
    # which removes the repository, and a bad copy there would be linked back on the retry.
    constants.HF_HUB_DISABLE_SHARED_BLOBS = True

    request.cache_dir.mkdir(parents=True, exist_ok=True)
    main = plan_or_raise(request)
    if request.force:
        remove(main, request.cache_dir)
    dependencies = dependency_plans(request, main)
    if request.force:
        for plan in dependencies:
            remove(plan, request.cache_dir)
    plans = [main, *dependencies]
    for plan in plans:
        partials.prune(plan, request.cache_dir)
    check_free_space(plans, request.cache_dir)
    monitor = ProgressMonitor(
        plans, request.cache_dir, lambda p: report(p, False), on_stall, request.stall_seconds
    )
    pending = [p for p in plans if not p.marker(request.cache_dir).exists()]
    if pending:
        monitor.start()
        try:
            for plan in pending:
                fetch(request, plan, needed_by=None if plan is main else main.repo)
        finally:
            monitor.stop()
    final = monitor.sample()
    final.completed_at = utcnow()
    report(final, True)
    return final
