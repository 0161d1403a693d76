"""The `vllm serve` command line and environment, built from the rendered vllm settings."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from berth_operator.api.podenv import VllmEngineSettings

#: what the child always gets: offline (the download Job fetched the files), no phoning home
CHILD_ENV = {"HF_HUB_OFFLINE": "1", "VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1"}
#: opens vLLM's /v1/load_lora_adapter and /v1/unload_lora_adapter
RUNTIME_LORA_VARIABLE = "VLLM_ALLOW_RUNTIME_LORA_UPDATING"


def serve_args(
    settings: VllmEngineSettings,
    model_dir: Path,
    host: str,
    port: int,
    adapters: Mapping[str, Path] | None = None,
) -> list[str]:
    """`serve MODEL_DIR --flag value ...`, full flag names only (argparse takes abbreviations);
    `adapters` (name -> local directory) are the LoRA adapters to serve from the start.

    Every flag emitted here is in MANAGED_VLLM_FLAGS, so spec.vllm.extraArgs cannot set it again.
    The API key is never a flag: vLLM reads VLLM_API_KEY from its environment, and a flag would
    show in the process list and in vLLM's log of its arguments.
    """
    args = ["serve", str(model_dir), "--host", host, "--port", str(port)]
    args += ["--served-model-name", settings.served_model_name]
    args += ["--tensor-parallel-size", str(settings.tensor_parallel_size)]
    args += ["--max-model-len", str(settings.max_model_len)]
    args += ["--gpu-memory-utilization", str(settings.gpu_memory_utilization)]
    if limits := settings.limit_mm_per_prompt:
        limit = dict(sorted(limits.items()))
        args += ["--limit-mm-per-prompt", json.dumps(limit, separators=(",", ":"))]
    if settings.trust_remote_code:
        args.append("--trust-remote-code")
    if lora := settings.lora:
        args += ["--enable-lora", "--max-loras", str(lora.max_loras)]
        args += ["--max-lora-rank", str(lora.max_lora_rank)]
        if lora.max_cpu_loras is not None:
            args += ["--max-cpu-loras", str(lora.max_cpu_loras)]
        if adapters:
            modules = [{"name": name, "path": str(path)} for name, path in sorted(adapters.items())]
            args += ["--lora-modules", *(json.dumps(m, separators=(",", ":")) for m in modules)]
    args += settings.extra_args or []
    return args


def child_env(environ: Mapping[str, str], settings: VllmEngineSettings) -> dict[str, str]:
    """The child's environment: the pod's (VLLM_API_KEY included) with CHILD_ENV on top; with
    LoRA, vLLM's adapter load and unload routes, which the supervisor alone calls (the gateway
    forwards only the inference routes)."""
    lora = {RUNTIME_LORA_VARIABLE: "True"} if settings.lora else {}
    return {**environ, **CHILD_ENV, **lora}
