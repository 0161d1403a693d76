"""The operator and the runtime agree on the pod's environment: what one renders, the other reads."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from berth_operator.api.podenv import ENGINE_SETTINGS, DownloadEnv, ServerEnv
from berth_operator.config import OperatorConfig
from berth_operator.controller.download import download_identity, render_download_job
from berth_operator.controller.workload import ServedModel, render_deployment

from tests.unit.factories import md

CONFIG = OperatorConfig(download_stall_seconds=123)
SERVED = ServedModel(revision="v2", resolved_revision="abc123", model_bytes=None)
RUNTIME = Path(__file__).resolve().parents[2] / "runtime_images" / "berth_runtime"
#: what the kubelet puts in for field references
POD = {"POD_NAME": "m-0", "POD_NAMESPACE": "ns", "BERTH_JOB_NAME": "the-job"}


def environment(container: dict[str, Any]) -> dict[str, str]:
    """The container's environment as the kubelet would set it (Secrets left out)."""
    env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    refs = [e for e in container["env"] if "fieldRef" in e.get("valueFrom", {})]
    return env | {e["name"]: POD[e["name"]] for e in refs}


def contract_names(*contracts: type) -> set[str]:
    return {f.alias for c in contracts for f in c.model_fields.values()}


SPECS = [
    {"engine": "pyannote", "diarization": {"numSpeakers": 2}, "resources": {"gpus": 0}},
    {"engine": "nemo-asr", "asr": {"sourceLang": "de", "targetLang": "en", "pnc": False}},
    {"engine": "vllm", "resources": {"gpus": 2}},
    {
        "engine": "vllm",
        "vllm": {"servedModelName": "qwen", "maxModelLen": 4096, "limitMmPerPrompt": {"image": 2}},
        "expectedDependencies": {"torch": "9.9"},
    },
]


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s["engine"])
def test_the_server_reads_what_the_operator_renders(spec: dict[str, Any]):
    resource = md(name="m", repo="org/model", **spec)
    container = render_deployment(resource, CONFIG, SERVED)["spec"]["template"]["spec"][
        "containers"
    ][0]
    env = ServerEnv.from_env(environment(container))
    assert (env.engine, env.repo, env.revision) == (spec["engine"], "org/model", "abc123")
    assert (env.model_deployment, env.port, env.cache_dir) == ("m", 8000, Path("/models"))
    assert (env.pod_name, env.namespace) == ("m-0", "ns")
    settings = ENGINE_SETTINGS[spec["engine"]].model_validate(env.settings)
    wanted = spec.get("vllm", {}).get("servedModelName", "m")
    assert settings.served_model_name == wanted
    assert settings.gpus == resource.spec.resources.gpus
    section = spec.get(
        {"vllm": "vllm", "nemo-asr": "asr", "pyannote": "diarization"}[spec["engine"]]
    )
    read_back = settings.model_dump(by_alias=True)
    assert all(read_back[key] == value for key, value in (section or {}).items())


def test_the_download_job_reads_what_the_operator_renders():
    resource = md(
        repo="org/model",
        model={"repo": "org/model", "revision": "v3", "allowPatterns": ["*.json"]},
        annotations={"berth.dev/redownload": "now"},
    )
    job = render_download_job(resource, download_identity(resource), [resource], CONFIG)
    env = DownloadEnv.from_env(environment(job["spec"]["template"]["spec"]["containers"][0]))
    assert (env.repo, env.revision, env.cache_dir) == ("org/model", "v3", Path("/models"))
    assert (env.allow_patterns, env.ignore_patterns, env.force) == (["*.json"], [], True)
    assert env.stall_seconds == 123 and env.job_name == "the-job" and env.namespace == "ns"


def test_every_berth_variable_rendered_is_one_the_runtime_reads():
    rendered: set[str] = set()
    for spec in SPECS:
        resource = md(**spec, auth={"apiKeySecretRef": {"name": "k", "key": "k"}})
        pod = render_deployment(resource, CONFIG, SERVED)["spec"]["template"]["spec"]
        job = render_download_job(resource, download_identity(resource), [resource], CONFIG)
        for container in (pod["containers"][0], job["spec"]["template"]["spec"]["containers"][0]):
            rendered |= {e["name"] for e in container["env"] if e["name"].startswith("BERTH_")}
    assert rendered <= contract_names(ServerEnv, DownloadEnv)
    assert ServerEnv.rendered_names() | DownloadEnv.rendered_names() <= rendered | {
        "MODEL_CACHE_DIR"
    }


def test_a_missing_variable_is_named():
    with pytest.raises(SystemExit, match="BERTH_PORT"):
        ServerEnv.from_env(
            {
                "BERTH_ENGINE": "pyannote",
                "BERTH_MODEL_REPO": "org/m",
                "BERTH_MODEL_REVISION": "main",
                "MODEL_CACHE_DIR": "/models",
                "BERTH_SETTINGS": "{}",
                "BERTH_MODELDEPLOYMENT": "m",
            }
        )


def test_the_runtime_reads_its_environment_only_through_the_contract():
    readers = []
    for path in RUNTIME.rglob("*.py"):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#")[0]
            if re.search(r"os\.environ|os\.getenv|\"BERTH_|'BERTH_", code) and (
                "PYANNOTE_METRICS_ENABLED" not in code and "child_environ" not in code
            ):
                readers.append(f"{path.relative_to(RUNTIME)}:{number}: {line.strip()}")
    assert not readers, "read settings through berth_operator.api.podenv:\n" + "\n".join(readers)
