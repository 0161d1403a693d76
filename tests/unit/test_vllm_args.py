"""The vllm engine's pure parts: the `vllm serve` command line and reading why vLLM exited."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from berth_operator.api.modeldeployment import MANAGED_VLLM_FLAGS, ModelDeploymentSpec
from berth_operator.api.podenv import VllmEngineSettings
from berth_operator.controller.engines import engine_settings
from berth_runtime.engines.vllm.args import child_env, serve_args
from berth_runtime.engines.vllm.failures import classify, failure_message

MODEL = Path("/models/models--Qwen--Qwen3-VL-30B-A3B-Instruct/snapshots/abc")


def flags(args: list[str]) -> dict[str, str | None]:
    """--flag value pairs (value None for a bare flag)."""
    found: dict[str, str | None] = {}
    for i, arg in enumerate(args):
        if arg.startswith("--"):
            nxt = args[i + 1] if i + 1 < len(args) else None
            found[arg] = None if nxt is None or nxt.startswith("--") else nxt
    return found


def rendered(gpus: int = 1, **vllm) -> VllmEngineSettings:
    """The settings a vllm pod gets for this spec, read back as the runtime reads them."""
    spec = ModelDeploymentSpec.model_validate(
        {
            "engine": "vllm",
            "model": {"repo": "Qwen/Qwen3-VL-30B-A3B-Instruct"},
            "resources": {"gpus": gpus},
            **({"vllm": vllm} if vllm else {}),
        }
    )
    return VllmEngineSettings.model_validate(engine_settings(spec, "qwen"))


def test_defaults_follow_the_seed():
    args = serve_args(rendered(), MODEL, "0.0.0.0", 8000)
    assert args[:2] == ["serve", str(MODEL)]
    assert flags(args) == {
        "--host": "0.0.0.0",
        "--port": "8000",
        "--served-model-name": "qwen",
        "--tensor-parallel-size": "1",
        "--max-model-len": "8192",
        "--gpu-memory-utilization": "0.9",
    }


EVERY_SETTING = {
    "servedModelName": "qwen-vl",
    "maxModelLen": 32768,
    "gpuMemoryUtilization": 0.85,
    "limitMmPerPrompt": {"video": 0, "image": 4},
    "trustRemoteCode": True,
    "extraArgs": ["--enable-prefix-caching", "--max-num-seqs", "64"],
    "lora": {"maxLoras": 2, "maxLoraRank": 32, "maxCpuLoras": 8},
}
ADAPTERS = {"sql": Path("/models/sql"), "chat-fr": Path("/models/fr")}


def test_every_setting_becomes_a_full_flag_name():
    args = serve_args(rendered(gpus=4, **EVERY_SETTING), MODEL, "127.0.0.1", 9000, ADAPTERS)
    found = flags(args)
    assert found["--served-model-name"] == "qwen-vl"
    assert found["--tensor-parallel-size"] == "4"
    assert found["--max-model-len"] == "32768"
    assert found["--gpu-memory-utilization"] == "0.85"
    assert json.loads(found["--limit-mm-per-prompt"] or "") == {"image": 4, "video": 0}
    assert "--trust-remote-code" in found and found["--trust-remote-code"] is None
    assert "--enable-lora" in found and found["--enable-lora"] is None
    assert (found["--max-loras"], found["--max-lora-rank"], found["--max-cpu-loras"]) == (
        "2",
        "32",
        "8",
    )
    modules = args[args.index("--lora-modules") + 1 : args.index("--lora-modules") + 3]
    assert [json.loads(m) for m in modules] == [
        {"name": "chat-fr", "path": "/models/fr"},
        {"name": "sql", "path": "/models/sql"},
    ]
    assert args[-3:] == ["--enable-prefix-caching", "--max-num-seqs", "64"]
    managed = [a for a in args[:-3] if a.startswith("--")]
    assert len(managed) == len(set(managed)) == 13


def test_berth_emits_only_flags_that_extra_args_may_not_set():
    emitted = {
        a
        for a in serve_args(rendered(gpus=2, **EVERY_SETTING), MODEL, "h", 1, ADAPTERS)[:-3]
        if a.startswith("--")
    }
    assert emitted <= set(MANAGED_VLLM_FLAGS)
    # managed but never emitted: the model is positional, the key an env var, the cache fixed
    assert set(MANAGED_VLLM_FLAGS) - emitted == {"--model", "--api-key", "--download-dir"}


def test_flags_stay_off_when_unset():
    found = flags(
        serve_args(rendered(gpus=2, trustRemoteCode=False, limitMmPerPrompt={}), MODEL, "h", 1)
    )
    assert found["--tensor-parallel-size"] == "2"
    assert "--trust-remote-code" not in found and "--limit-mm-per-prompt" not in found
    assert not any("lora" in flag for flag in found)


def test_an_adapter_enables_lora_with_default_limits_but_stays_out_of_the_pod():
    adapter = {"name": "sql", "repo": "org/sql-lora"}
    settings = rendered(adapters=[adapter])
    assert settings.adapters is None  # the pods follow the adapters from the resource
    found = flags(serve_args(settings, MODEL, "h", 1))
    assert (found["--max-loras"], found["--max-lora-rank"]) == ("4", "16")
    assert "--lora-modules" not in found and "--max-cpu-loras" not in found
    two = rendered(adapters=[adapter, {"name": "fr", "repo": "org/fr-lora"}])
    assert two == settings  # another adapter: the same pod template


def test_lora_opens_the_runtime_adapter_routes_to_the_supervisor_only():
    assert child_env({}, rendered(lora={}))["VLLM_ALLOW_RUNTIME_LORA_UPDATING"] == "True"
    assert "VLLM_ALLOW_RUNTIME_LORA_UPDATING" not in child_env({}, rendered())


def test_the_api_key_stays_in_the_environment():
    environ = {"VLLM_API_KEY": "sk-secret", "PATH": "/bin", "HF_HUB_OFFLINE": "0"}
    args = serve_args(rendered(), MODEL, "h", 1)
    assert not any("sk-secret" in a or "api-key" in a for a in args)
    env = child_env(environ, rendered())
    assert env["VLLM_API_KEY"] == "sk-secret"  # vLLM reads it itself
    assert env["HF_HUB_OFFLINE"] == "1" and env["VLLM_NO_USAGE_STATS"] == "1"
    assert env["DO_NOT_TRACK"] == "1" and env["PATH"] == "/bin"


OOM = [
    "INFO 11-26 10:01:50 [gpu_model_runner.py:2602] Starting to load model /models/...",
    "ERROR 11-26 10:02:11 [core.py:708] Traceback (most recent call last):",
    "ERROR 11-26 10:02:11 [core.py:708] torch.OutOfMemoryError: CUDA out of memory. Tried to "
    "allocate 768.00 MiB. GPU 0 has a total capacity of 79.19 GiB of which 412.44 MiB is free.",
    "RuntimeError: Engine core initialization failed. See root cause above.",
]
KV = [
    "ERROR [core.py:708] ValueError: To serve at least one request with the models's max seq len "
    "(262144), (24.00 GiB KV cache is needed, which is larger than the available KV cache memory "
    "(5.12 GiB). Based on the available memory, the estimated maximum model length is 55000.",
]
NO_KV = [
    "ValueError: No available memory for the cache blocks. Try increasing `gpu_memory_utilization`"
]
TOO_LONG = [
    "ValueError: User-specified max_model_len (300000) is greater than the derived max_model_len "
    "(max_position_embeddings=262144 or model_max_length=None in model's config.json)."
]
MISSING = [
    "huggingface_hub.errors.LocalEntryNotFoundError: Cannot find an appropriate cached snapshot "
    "folder for the specified revision on the local disk and outgoing traffic has been disabled."
]
BAD_FLAG = [
    "usage: vllm serve [model_tag] [options]",
    "vllm serve: error: unrecognized arguments: --nope",
]


@pytest.mark.parametrize(
    ("code", "lines", "reason"),
    [
        (1, OOM, "CudaOutOfMemory"),
        (1, KV, "InsufficientKvCache"),
        (1, NO_KV, "InsufficientKvCache"),
        (1, TOO_LONG, "MaxModelLenTooLarge"),
        (1, MISSING, "ModelFilesMissing"),
        (1, ["RuntimeError: No CUDA GPUs are available"], "NoGpuAvailable"),
        (2, BAD_FLAG, "InvalidArguments"),
        (3, ["INFO something else went wrong"], "EngineExited"),
        (-9, [], "EngineKilled"),
    ],
)
def test_the_log_tail_names_the_cause(code: int, lines: list[str], reason: str):
    assert classify(code, lines).reason == reason


def test_other_exits_carry_their_code():
    assert "code 3" in classify(3, ["boom"]).summary
    assert "SIGKILL" in classify(-9, []).summary


def test_the_message_is_bounded_and_keeps_the_last_lines():
    lines = [f"\x1b[1;31mline {i} " + "x" * 80 + "\x1b[0m" for i in range(200)] + OOM
    failure = classify(1, lines)
    message = failure_message(failure, 1, lines, limit=2000)
    assert len(message) <= 2000
    assert message.startswith("vLLM ran out of GPU memory") and "(exit code 1)" in message
    assert message.rstrip().endswith("See root cause above.")
    assert "CUDA out of memory" in message and "\x1b[" not in message
    assert "line 0 " not in message  # the oldest lines give way
