"""Progress and clean-up read the partial files huggingface_hub >= 1 and hf_xet leave in blobs/.

The layout is built as the libraries write it (huggingface_hub 2.4 `_download_to_tmp_and_move`,
hf_xet's `FileReconstructor::reconstruct_to_file`): `<etag>.<8 hex>.incomplete`, one per
process, filled in order from byte 0, renamed to `<etag>` when whole; the download holds
`.locks/<repo dir>/<etag>.lock`.
"""

from __future__ import annotations

from pathlib import Path

from berth_runtime.download import partials
from berth_runtime.download.plan import DownloadPlan, PlannedFile
from berth_runtime.download.progress import measure
from filelock import FileLock

WEIGHTS = PlannedFile("model.safetensors", 1000, "a" * 64, "a" * 64)
CONFIG = PlannedFile("config.json", 20, "c" * 40, None)
PLAN = DownloadPlan("org/tiny", "main", "1" * 40, (WEIGHTS, CONFIG))


def blobs(cache: Path) -> Path:
    path = PLAN.repo_dir(cache) / "blobs"
    path.mkdir(parents=True, exist_ok=True)
    return path


def write(path: Path, size: int) -> Path:
    path.write_bytes(b"x" * size)
    return path


def test_a_per_process_partial_counts_as_progress(tmp_path):
    write(blobs(tmp_path) / f"{WEIGHTS.blob}.0a1b2c3d.incomplete", 300)
    write(blobs(tmp_path) / CONFIG.blob, 20)
    assert measure([PLAN], tmp_path) == (320, 1)


def test_two_writers_of_one_blob_count_once(tmp_path):
    write(blobs(tmp_path) / f"{WEIGHTS.blob}.0a1b2c3d.incomplete", 300)
    write(blobs(tmp_path) / f"{WEIGHTS.blob}.99999999.incomplete", 700)
    assert measure([PLAN], tmp_path) == (700, 0)


def test_the_old_partial_name_still_counts(tmp_path):
    write(blobs(tmp_path) / f"{WEIGHTS.blob}.incomplete", 400)
    assert measure([PLAN], tmp_path) == (400, 0)


def test_a_finished_blob_counts_whole_and_its_file(tmp_path):
    write(blobs(tmp_path) / WEIGHTS.blob, 1000)
    write(blobs(tmp_path) / CONFIG.blob, 20)
    assert measure([PLAN], tmp_path) == (1020, 2)


def test_prune_keeps_the_longest_abandoned_partial(tmp_path):
    short = write(blobs(tmp_path) / f"{WEIGHTS.blob}.0a1b2c3d.incomplete", 300)
    long = write(blobs(tmp_path) / f"{WEIGHTS.blob}.99999999.incomplete", 700)
    too_long = write(blobs(tmp_path) / f"{WEIGHTS.blob}.incomplete", 5000)
    partials.prune(PLAN, tmp_path)
    assert (short.exists(), long.exists(), too_long.exists()) == (False, True, False)


def test_prune_leaves_a_partial_someone_is_writing(tmp_path):
    first = write(blobs(tmp_path) / f"{WEIGHTS.blob}.0a1b2c3d.incomplete", 300)
    second = write(blobs(tmp_path) / f"{WEIGHTS.blob}.99999999.incomplete", 700)
    lock = partials.lock_path(PLAN, tmp_path, WEIGHTS.blob)
    lock.parent.mkdir(parents=True)
    with FileLock(lock):
        partials.prune(PLAN, tmp_path)
    assert first.exists() and second.exists()
