"""Benchmark: vLLM's start with an empty and with a warm compile cache (its CPU build, the tests'
tiny dense model, compiled: no --enforce-eager), through the supervisor, in the same run.

The first start finds nothing under its key (the baseline), compiles and publishes its cache;
the second starts on an empty cache root, as a new pod does, and restores it first.

    python -m benchmarks.vllm_compile_cache
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from tests.engines.runner import published_and_downloaded, tiny_model_dir
from tests.engines.vllm_server import BUILDER, ENVIRONMENT, VllmServer, compile_cache_env

REPO = "berth-bench/tiny-qwen3"
SETTINGS = {"servedModelName": "tiny", "maxModelLen": 512}


def start(cache: Path, shared: Path, root: Path) -> tuple[float, str]:
    """Seconds from the supervisor's start to /health, and what it restored."""
    server = VllmServer(cache, REPO, SETTINGS, **compile_cache_env(shared, root))
    try:
        seconds = server.wait_healthy()
        report = server.compile_cache_report()
    finally:
        server.stop()
    return seconds, f"restored {report['restored']}, published {report['published']}"


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        files = tiny_model_dir(ENVIRONMENT, BUILDER) / "dense"
        cache = published_and_downloaded(REPO, files, work)
        shared = work / "berth-compile-cache"
        shared.mkdir()
        empty, how = start(cache, shared, work / "pod-a")
        print(f"empty compile cache: start to /health {empty:.1f} s ({how})", flush=True)
        warm, how = start(cache, shared, work / "pod-b")
        print(f"warm compile cache:  start to /health {warm:.1f} s ({how})")
        print(f"warm / empty: {warm / empty:.2f}; saved {empty - warm:.1f} s")


if __name__ == "__main__":
    main()
