"""vLLM's compile cache on the cache volume: one directory per key, read only by its key,
published whole by a rename, never replaced by a second publisher."""

from __future__ import annotations

import json
from pathlib import Path

from berth_runtime.engines.vllm.compile_cache import (
    KEY_FILE,
    CompileKey,
    cache_root,
    gpu_type,
    publish,
    restore,
)

KEY = CompileKey("0.11.2", "0123456789abcdef0123", 2, "NVIDIA H100 80GB HBM3")


def compiled(root: Path, text: str = "graph") -> Path:
    (root / "torch_compile_cache" / "abc" / "rank_0_0").mkdir(parents=True)
    (root / "torch_compile_cache" / "abc" / "rank_0_0" / "artifact").write_text(text)
    return root


def test_the_key_holds_version_revision_tensor_parallelism_and_gpu_type() -> None:
    assert KEY.directory == "vllm-0.11.2_0123456789ab_tp2_nvidia-h100-80gb-hbm3"
    others = [
        CompileKey("0.11.3", KEY.revision, 2, KEY.gpu),
        CompileKey(KEY.vllm, "fedcba9876543210", 2, KEY.gpu),
        CompileKey(KEY.vllm, KEY.revision, 4, KEY.gpu),
        CompileKey(KEY.vllm, KEY.revision, 2, "NVIDIA H200"),
    ]
    assert len({KEY.directory, *(other.directory for other in others)}) == 5
    assert gpu_type([{"name": "NVIDIA H200"}, {"name": "NVIDIA H200"}]) == "NVIDIA H200"
    assert gpu_type([]) == "cpu"


def test_vllm_cache_root_is_found_as_vllm_finds_it() -> None:
    assert cache_root({"VLLM_CACHE_ROOT": "/x/vllm", "HOME": "/tmp"}) == Path("/x/vllm")
    assert cache_root({"HOME": "/tmp"}) == Path("/tmp/.cache/vllm")
    assert cache_root({"HOME": "/tmp", "XDG_CACHE_HOME": "/c"}) == Path("/c/vllm")


def test_a_start_publishes_once_and_the_next_identical_start_restores_it(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    first = compiled(tmp_path / "first")
    assert restore(shared, KEY, tmp_path / "empty") == 0  # nothing published yet
    assert publish(first, shared, KEY, "pod-a") == len("graph")
    published = shared / KEY.directory
    assert json.loads((published / KEY_FILE).read_text())["tensor_parallel_size"] == 2
    # a second publisher of the same key leaves the first's, and leaves nothing half-written
    assert publish(compiled(tmp_path / "second", "other"), shared, KEY, "pod-b") == 0
    assert sorted(p.name for p in shared.iterdir()) == [KEY.directory]
    warm = tmp_path / "warm"
    assert restore(shared, KEY, warm) == len("graph")
    assert (warm / "torch_compile_cache" / "abc" / "rank_0_0" / "artifact").read_text() == "graph"
    assert not (warm / KEY_FILE).exists()
    # another key reads nothing of it
    other = CompileKey(KEY.vllm, KEY.revision, 4, KEY.gpu)
    assert restore(shared, other, tmp_path / "tp4") == 0
    assert not (tmp_path / "tp4").exists()


def test_an_empty_start_publishes_nothing_and_a_killed_publishers_leftover_goes(
    tmp_path: Path,
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    (tmp_path / "empty").mkdir()
    assert publish(tmp_path / "empty", shared, KEY, "pod-a") == 0
    leftover = shared / f".partial-{KEY.directory}-pod-a"
    (leftover / "junk").mkdir(parents=True)
    assert publish(compiled(tmp_path / "root"), shared, KEY, "pod-a") > 0
    assert sorted(p.name for p in shared.iterdir()) == [KEY.directory]
