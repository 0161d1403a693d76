"""vLLM's load steps, read from its own log lines: what status.runtime.progress says while the
child starts (weights, checkpoint shards, compilation, CUDA graphs, the API server)."""

from __future__ import annotations

import re

# (what the line says, the step in Berth's words); the first match wins
STEPS: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        re.compile(
            r"Loading (?:\w+ )?checkpoint shards:\s*(?P<percent>\d+)% Completed \| "
            r"(?P<done>\d+)/(?P<total>\d+)"
        ),
        "loading checkpoint shards {done}/{total}",
    ),
    (re.compile(r"Starting to load model"), "loading the weights"),
    (re.compile(r"Model loading took|Loading weights took"), "weights loaded; profiling memory"),
    (
        re.compile(r"Directly load (?:the compiled graph|AOT compilation)"),
        "loading the compiled graph from the cache",
    ),
    (
        re.compile(r"Compiling model again due to a load failure"),
        "the cached compiled graph did not load: compiling again",
    ),
    (re.compile(r"Dynamo bytecode transform time"), "compiling (torch.compile)"),
    (
        re.compile(r"Compiling a graph for .* takes|saved AOT compiled function"),
        "compiled (torch.compile)",
    ),
    (re.compile(r"Warming up model"), "warming up the model"),
    (re.compile(r"Capturing CUDA graphs"), "capturing CUDA graphs"),
    (re.compile(r"Available KV cache memory|GPU KV cache size"), "allocating the KV cache"),
    (
        re.compile(r"init engine \(profile, create kv cache, warmup model\) took"),
        "starting the API server",
    ),
)


def load_step(line: str) -> str | None:
    """The load step a line of vLLM's output announces, or None."""
    for pattern, step in STEPS:
        if found := pattern.search(line):
            return step.format(**found.groupdict())
    return None
