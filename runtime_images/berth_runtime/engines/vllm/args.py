"""The `vllm serve` command line and environment, built from a ModelDeployment's vllm settings."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

DEFAULT_MAX_MODEL_LEN = 8192
DEFAULT_GPU_MEMORY_UTILIZATION = 0.90

#: what the child always gets: offline (the download Job fetched the files), no phoning home
CHILD_ENV = {"HF_HUB_OFFLINE": "1", "VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1"}


def tensor_parallel_size(settings: Mapping[str, Any]) -> int:
    """tensorParallelSize, else the GPUs per replica, at least 1."""
    return max(1, int(settings.get("tensorParallelSize") or settings.get("gpus") or 1))


def serve_args(settings: Mapping[str, Any], model_dir: Path, host: str, port: int) -> list[str]:
    """`serve MODEL_DIR --flag value ...`, full flag names only (argparse takes abbreviations).

    The API key is never a flag: vLLM reads VLLM_API_KEY from its environment, and a flag would
    show in the process list and in vLLM's log of its arguments.
    """
    args = ["serve", str(model_dir), "--host", host, "--port", str(port)]
    if name := settings.get("servedModelName"):
        args += ["--served-model-name", str(name)]
    args += ["--tensor-parallel-size", str(tensor_parallel_size(settings))]
    args += ["--max-model-len", str(int(settings.get("maxModelLen") or DEFAULT_MAX_MODEL_LEN))]
    utilization = settings.get("gpuMemoryUtilization") or DEFAULT_GPU_MEMORY_UTILIZATION
    args += ["--gpu-memory-utilization", str(float(utilization))]
    if limits := settings.get("limitMmPerPrompt"):
        limit = {str(k): int(v) for k, v in sorted(limits.items())}
        args += ["--limit-mm-per-prompt", json.dumps(limit, separators=(",", ":"))]
    if settings.get("trustRemoteCode"):
        args.append("--trust-remote-code")
    args += [str(a) for a in settings.get("extraArgs") or ()]
    return args


def child_env(environ: Mapping[str, str]) -> dict[str, str]:
    """The child's environment: the pod's (VLLM_API_KEY included) with CHILD_ENV on top."""
    return {**environ, **CHILD_ENV}
