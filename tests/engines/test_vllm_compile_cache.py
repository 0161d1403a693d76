"""vLLM's compile cache on the cache volume, with vLLM's real server (its CPU build, which
compiles the model with torch.compile and Inductor when not told --enforce-eager): the first
start publishes what it compiled under its key; the next identical start, on an empty cache
root as a new pod has, restores it and loads the compiled graph instead of compiling."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from berth_runtime.engines.vllm.compile_cache import KEY_FILE
from openai import OpenAI

from tests.engines.conftest import cached_tiny_model
from tests.engines.vllm_server import (
    API_KEY,
    BUILDER,
    ENVIRONMENT,
    VllmServer,
    compile_cache_env,
)

REPO = "berth-tests/tiny-qwen3-compiled"
#: compiled: no --enforce-eager
SETTINGS = {"gpus": 1, "servedModelName": "tiny", "maxModelLen": 512}
COMPILED, LOADED = "compiled (torch.compile)", "loading the compiled graph from the cache"
RECOMPILED = "the cached compiled graph did not load: compiling again"


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return cached_tiny_model(ENVIRONMENT, BUILDER, REPO, tmp_path_factory, part="dense")


@pytest.fixture
def shared(tmp_path: Path) -> Path:
    directory = tmp_path / "berth-compile-cache"
    directory.mkdir()
    return directory


def test_the_next_identical_start_loads_the_compiled_graph(
    cache: Path, shared: Path, tmp_path: Path
) -> None:
    cold = VllmServer(cache, REPO, SETTINGS, **compile_cache_env(shared, tmp_path / "pod-a"))
    try:
        cold_seconds = cold.wait_healthy()
        report = cold.compile_cache_report()
    finally:
        cold.stop()
    steps = cold.load_steps()
    assert COMPILED in steps and LOADED not in steps, steps
    [published] = [p for p in shared.iterdir()]  # one key, no partial copy left
    assert re.fullmatch(r"vllm-[\w.+]+_[0-9a-f]{12}_tp1_cpu", published.name), published.name
    assert report["restored"] == "none published", report
    assert re.fullmatch(r"\d+ bytes", report["published"]), report
    assert (published / KEY_FILE).exists() and (published / "torch_compile_cache").is_dir()

    warm = VllmServer(cache, REPO, SETTINGS, **compile_cache_env(shared, tmp_path / "pod-b"))
    try:
        warm_seconds = warm.wait_healthy()
        report = warm.compile_cache_report()
        assert report["published"] == "no: already published", report
        assert re.fullmatch(r"\d+ bytes", report["restored"]), report
        client = OpenAI(base_url=warm.url + "/v1", api_key=API_KEY, max_retries=0, timeout=120)
        answer = client.chat.completions.create(
            model="tiny", messages=[{"role": "user", "content": "Hello"}], max_tokens=4
        )
        assert answer.usage.completion_tokens > 0
    finally:
        warm.stop()
    steps = warm.load_steps()
    assert steps[0] == f"restoring the compile cache {published.name}", steps
    # vLLM found the compiled graph where the restore put it, under its own hash: it loads it,
    # or (this CPU build, vLLM 0.32 on torch 2.13) fails to and compiles again, from Inductor's
    # restored cache
    restored = re.escape(str(tmp_path / "pod-b" / "torch_compile_cache"))
    tried = re.search(
        rf"(Directly load AOT compilation from path|Compiling model again due to a load "
        rf"failure from) {restored}/",
        warm.log.read_text(),
    )
    assert tried, warm.output()
    if tried[1].startswith("Directly"):
        assert LOADED in steps and COMPILED not in steps, steps
    else:
        assert RECOMPILED in steps, steps
    print(
        f"\nstart to /health: empty compile cache {cold_seconds:.1f} s, warm {warm_seconds:.1f} s"
    )
