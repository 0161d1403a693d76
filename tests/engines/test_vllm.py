"""The vllm engine: its arguments pass the pinned vLLM's own parser, and the supervisor runs a
`vllm serve` stand-in on the service port, reporting Loading, Ready and Failed into the
ModelDeployment's status through a real API server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from berth_operator.api.modeldeployment import ModelDeploymentSpec
from berth_operator.api.podenv import VllmEngineSettings
from berth_operator.controller.engines import engine_settings
from berth_runtime.engines.vllm.args import serve_args
from openai import OpenAI

from tests.cluster import ControlPlane
from tests.cluster.controlplane import free_port
from tests.cluster.kubectl import Kubectl
from tests.engines.conftest import engine_env, engine_python
from tests.hub.download import REPO, download_into, repo_from_directory
from tests.hub.server import LocalHub
from tests.operator.helpers import model_deployment
from tests.pod_env import server_env

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


def rendered_vllm_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """BERTH_SETTINGS as the operator renders it for these GPUs and vllm settings."""
    vllm = {k: v for k, v in settings.items() if k not in ("gpus", "tensorParallelSize")}
    spec = ModelDeploymentSpec.model_validate(
        {
            "engine": "vllm",
            "model": {"repo": REPO_ID},
            "resources": {"gpus": settings.get("gpus", 1)},
            "vllm": vllm,
        }
    )
    return engine_settings(spec, "qwen")


def rendered_args(settings: dict[str, Any], model: Path) -> list[str]:
    """The `vllm serve` arguments the supervisor builds from those rendered settings."""
    rendered = VllmEngineSettings.model_validate(rendered_vllm_settings(settings))
    return serve_args(rendered, model, "127.0.0.1", 8000)


def parse_with_vllm(argvs: list[list[str]], engine_config: bool = False) -> list[dict[str, Any]]:
    """One vllm-env process parses them all (importing vLLM costs ~15 s)."""
    result = subprocess.run(
        [str(engine_python("vllm")), str(HERE / "vllm_parse_args.py")],
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


# ---- (b) the supervisor, with a stand-in for `vllm serve` --------------------------------------


@pytest.fixture(scope="module")
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache holding a Qwen3-VL-shaped snapshot, fetched by the real download Job."""
    work = tmp_path_factory.mktemp("vllm-cache")
    files = work / "model"
    files.mkdir()
    (files / "config.json").write_text(json.dumps(QWEN3_VL_CONFIG))
    (files / "generation_config.json").write_text('{"do_sample": true, "temperature": 0.7}')
    (files / "model-00001-of-00001.safetensors").write_bytes(os.urandom(64 * 1024))
    hub = LocalHub().start()
    try:
        hub.add(repo_from_directory(REPO_ID, files))
        download_into(hub, work / "cache", REPO_ID)
    finally:
        hub.stop()
    return work / "cache"


class Supervisor:
    """`python -m berth_runtime.server` with BERTH_ENGINE=vllm, in this (vLLM-free) venv."""

    def __init__(self, cache: Path, tmp: Path, settings: dict[str, Any], **env: str) -> None:
        self.port = free_port()
        self.termination_log = tmp / f"termination-{self.port}"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "berth_runtime.server"],
            env={
                **os.environ,
                **server_env("vllm", REPO_ID, cache, self.port, rendered_vllm_settings(settings)),
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

    def stop(self) -> str:
        if self.process.poll() is None:
            self.process.terminate()
        return self.finish(30)


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


def runtime_state(*states: str):
    def check(md: dict[str, Any]) -> bool:
        return ((md.get("status") or {}).get("runtime") or {}).get("state") in states

    check.__name__ = f"status.runtime.state in {states}"
    return check


def test_supervisor_reports_loading_then_ready_and_vllm_serves_the_port(
    supervise: Any, kubectl: Kubectl, resource: dict[str, str]
):
    settings = {"gpus": 1, "tensorParallelSize": 1, "servedModelName": "qwen", "maxModelLen": 8192}
    supervisor = supervise(
        settings, VLLM_STANDIN_START_SECONDS="8", VLLM_API_KEY="sk-never-logged", **resource
    )
    try:
        md = kubectl.wait_for("md", "qwen", runtime_state("Loading", "Ready"), timeout=30)
        assert md["status"]["runtime"]["state"] == "Loading", md["status"]["runtime"]
        assert md["status"]["runtime"]["pod"] == "qwen-0"
        md = kubectl.wait_for("md", "qwen", runtime_state("Ready"), timeout=60)
        runtime = md["status"]["runtime"]
        details = runtime["details"]
        assert details["tensor_parallel_size"] == 1 and details["max_model_len"] == 8192
        assert details["served_model_name"] == "qwen" and details["load_seconds"] >= 8
        assert {"python", "vllm", "transformers"} <= set(runtime["dependencies"])
        assert runtime.get("lastError") is None

        client = OpenAI(
            base_url=f"http://127.0.0.1:{supervisor.port}/v1", api_key="sk-never-logged"
        )
        assert [m.id for m in client.models.list()] == ["qwen"]
        refused = OpenAI(base_url=f"http://127.0.0.1:{supervisor.port}/v1", api_key="sk-wrong")
        with pytest.raises(Exception, match="401"):
            refused.models.list()
    finally:
        output = supervisor.stop()
    assert supervisor.process.returncode == 0, output  # SIGTERM: vLLM stops, the pod exits cleanly
    assert "Shutting down" in output  # the stand-in got the SIGTERM and its output came through
    assert "--max-model-len 8192 --gpu-memory-utilization 0.9" in output
    assert "sk-never-logged" not in output
    assert "sk-never-logged" not in kubectl("get", "md", "qwen", "-o", "yaml").stdout


def test_supervisor_reports_why_vllm_died_and_exits_non_zero(
    supervise: Any, kubectl: Kubectl, resource: dict[str, str]
):
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
    supervisor = supervise({"gpus": 1}, MODEL_CACHE_DIR=str(tmp_path / "empty"))
    output = supervisor.finish(60)
    assert supervisor.process.returncode == 1, output
    termination = json.loads(supervisor.termination_log.read_text())
    assert termination["reason"] == "ModelFilesMissing"
    assert REPO_ID in termination["message"]
    assert "vllm_standin" not in output  # vLLM was never started
