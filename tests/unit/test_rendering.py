"""Children rendered from the spec: names, GPU requests, env, probes, security."""

import pytest
from berth_operator.config import OperatorConfig
from berth_operator.controller.download import (
    download_identity,
    render_download_identity,
    render_download_job,
    render_download_role,
)
from berth_operator.controller.engines import ENGINES
from berth_operator.controller.workload import ServedModel, render_deployment, render_service

from tests.unit.factories import md

CONFIG = OperatorConfig()


def job_name_of(resource):
    return download_identity(resource).job_name


SERVED = ServedModel(revision="main", resolved_revision="abc123", model_bytes=62 * 2**30)


def env(container):
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def test_vllm_gpus_become_requests_tensor_parallelism_and_shared_memory():
    resource = md(engine="vllm", repo="Qwen/Qwen3-VL-30B-A3B-Instruct", resources={"gpus": 4})
    pod = render_deployment(resource, CONFIG, SERVED)["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["resources"]["limits"] == {"nvidia.com/gpu": "4"}
    assert '"tensorParallelSize": 4' in env(container)["BERTH_SETTINGS"]
    assert '"servedModelName": "m"' in env(container)["BERTH_SETTINGS"]
    assert {"name": "dshm", "emptyDir": {"medium": "Memory"}} in pod["volumes"]
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod[
        "tolerations"
    ]
    assert env(container)["BERTH_MODEL_REVISION"] == "abc123"


def test_cpu_deployment_has_no_gpu_request_nor_gpu_toleration():
    resource = md(engine="nemo-asr", resources={"gpus": 0, "cpu": "4", "memory": "16Gi"})
    pod = render_deployment(resource, CONFIG, SERVED)["spec"]["template"]["spec"]
    assert pod["containers"][0]["resources"] == {
        "limits": {"cpu": "4", "memory": "16Gi"},
        "requests": {"cpu": "4", "memory": "16Gi", "ephemeral-storage": "66Gi"},
    }
    assert pod["tolerations"] == []


@pytest.mark.parametrize("engine", ["vllm", "nemo-asr", "pyannote"])
def test_a_pod_without_cpu_or_memory_requests_its_engine_default_and_is_not_best_effort(engine):
    config = OperatorConfig.from_env({"BERTH_DEFAULT_REQUESTS": '{"pyannote": {"cpu": "0.5"}}'})
    resources = render_deployment(md(engine=engine), config, SERVED)["spec"]["template"]["spec"][
        "containers"
    ][0]["resources"]
    expected = {"pyannote": {"cpu": "500m"}}.get(engine, config.default_requests[engine])
    assert {
        k: resources["requests"][k] for k in ("cpu", "memory") if k in resources["requests"]
    } == (expected)
    assert "cpu" not in resources["limits"] and "memory" not in resources["limits"]
    assert resources["requests"].get("cpu") or resources["requests"].get("memory")


def test_mig_resource_name_is_requested_as_given():
    resource = md(resources={"gpus": 1, "gpuResourceName": "nvidia.com/mig-1g.10gb"})
    container = render_deployment(resource, CONFIG, SERVED)["spec"]["template"]["spec"][
        "containers"
    ][0]
    assert container["resources"]["limits"] == {"nvidia.com/mig-1g.10gb": "1"}


def test_api_key_reaches_pods_only_as_env_from_the_secret():
    resource = md(engine="vllm", auth={"apiKeySecretRef": {"name": "keys", "key": "k"}})
    container = render_deployment(resource, CONFIG, SERVED)["spec"]["template"]["spec"][
        "containers"
    ][0]
    ref = {"secretKeyRef": {"name": "keys", "key": "k"}}
    assert env(container)["VLLM_API_KEY"] == ref and env(container)["BERTH_API_KEYS"] == ref
    assert "args" not in container and "command" not in container


def test_runtime_pods_are_offline_restricted_and_mount_the_cache_read_only():
    deployment = render_deployment(md(), CONFIG, SERVED)
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert env(container)["HF_HUB_OFFLINE"] == "1" and "HF_TOKEN" not in env(container)
    assert (
        pod["securityContext"]["runAsNonRoot"]
        and pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    )
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert {"name": "cache", "mountPath": "/models", "readOnly": True} in container["volumeMounts"]
    assert deployment["metadata"]["ownerReferences"][0]["uid"] == "uid-m"
    claim = next(v for v in pod["volumes"] if v["name"] == "cache")["persistentVolumeClaim"]
    assert claim["readOnly"] is True


@pytest.mark.parametrize("engine", ["vllm", "nemo-asr", "pyannote"])
def test_with_the_compile_cache_vllm_pods_write_its_directory_and_nothing_else(engine):
    config = OperatorConfig.from_env({"BERTH_VLLM_COMPILE_CACHE": "true"})
    pod = render_deployment(md(engine=engine), config, SERVED)["spec"]["template"]["spec"]
    default = render_deployment(md(engine=engine), CONFIG, SERVED)["spec"]["template"]["spec"]
    container = pod["containers"][0]
    claim = next(v for v in pod["volumes"] if v["name"] == "cache")["persistentVolumeClaim"]
    if engine != "vllm":
        assert pod == default  # only vLLM compiles
        return
    # the claim is attached writable; the weights are still mounted read-only
    assert claim["readOnly"] is False
    assert {"name": "cache", "mountPath": "/models", "readOnly": True} in container["volumeMounts"]
    writable = [m for m in container["volumeMounts"] if m["name"] == "cache" and "subPath" in m]
    assert writable == [
        {
            "name": "cache",
            "mountPath": "/var/cache/berth-compile",
            "subPath": "berth-compile-cache",
        }
    ]
    assert env(container)["BERTH_COMPILE_CACHE_DIR"] == "/var/cache/berth-compile"
    assert "BERTH_COMPILE_CACHE_DIR" not in env(default["containers"][0])


@pytest.mark.parametrize(
    ("engine", "model_bytes", "size"),
    [
        ("nemo-asr", 6_400_000_000, "10200Mi"),  # canary-1b-v2's .nemo unpacked, plus 4 GiB
        ("nemo-asr", None, "12Gi"),  # an unknown size counts as 8 GiB
        ("vllm", 62 * 2**30, "4Gi"),  # caches only: vLLM reads the weights in place
        ("pyannote", 2**30, "1Gi"),
    ],
)
def test_every_engine_has_a_sized_tmp_and_requests_it(engine, model_bytes, size):
    served = ServedModel(revision="main", resolved_revision="abc", model_bytes=model_bytes)
    pod = render_deployment(md(engine=engine), CONFIG, served)["spec"]["template"]["spec"]
    assert {"name": "tmp", "emptyDir": {"sizeLimit": size}} in pod["volumes"]
    container = pod["containers"][0]
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
    assert container["resources"]["requests"]["ephemeral-storage"] == size


def test_canary_startup_budget_covers_one_extraction():
    assert ENGINES["nemo-asr"].startup_budget_seconds(6_400_000_000) == 150 + 120


def test_startup_budget_grows_with_model_size():
    small = ENGINES["vllm"].startup_budget_seconds(1 * 2**30)
    large = ENGINES["vllm"].startup_budget_seconds(62 * 2**30)
    assert large > small >= ENGINES["vllm"].base_startup_seconds
    probes = ENGINES["vllm"].probes("http", 62 * 2**30)
    assert (
        probes["startupProbe"]["failureThreshold"] * probes["startupProbe"]["periodSeconds"]
        >= large
    )


def test_download_job_name_is_deterministic_and_tracks_what_is_downloaded():
    base = job_name_of(md())
    assert base == job_name_of(md(name="other"))  # shared by resources of one model
    assert len(base) <= 63
    assert base != job_name_of(md(model={"repo": "org/model", "revision": "v2"}))
    assert base != job_name_of(md(model={"repo": "org/model", "allowPatterns": ["*.json"]}))
    assert base != job_name_of(md(annotations={"berth.dev/redownload": "1"}))
    assert base != job_name_of(
        md(model={"repo": "org/model", "tokenSecretRef": {"name": "t", "key": "k"}})
    )


def test_download_job_carries_the_token_and_every_sharer_owns_it():
    first = md(
        name="a", model={"repo": "org/gated", "tokenSecretRef": {"name": "hf", "key": "token"}}
    )
    second = md(
        name="b", model={"repo": "org/gated", "tokenSecretRef": {"name": "hf", "key": "token"}}
    )
    download = download_identity(first)
    job = render_download_job(first, download, [second, first], CONFIG)
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert env(container)["HF_TOKEN"] == {"secretKeyRef": {"name": "hf", "key": "token"}}
    assert [r["name"] for r in job["metadata"]["ownerReferences"]] == ["a", "b"]
    assert not any(r["controller"] for r in job["metadata"]["ownerReferences"])
    assert job["spec"]["podFailurePolicy"]["rules"][0]["onExitCodes"]["values"] == [2]
    role = render_download_role(first, download, [second, first])
    # the download pod reads and annotates its own Job, and nothing else
    assert role["rules"] == [
        {
            "apiGroups": ["batch"],
            "resources": ["jobs"],
            "resourceNames": [download.job_name],
            "verbs": ["get", "patch"],
        }
    ]
    assert [r["name"] for r in role["metadata"]["ownerReferences"]] == ["a", "b"]
    applied = {**role, "metadata": {**role["metadata"], "uid": "role-uid"}}
    account, binding = render_download_identity(first, download, applied)
    assert account["metadata"]["ownerReferences"][0]["uid"] == "role-uid"
    assert binding["roleRef"]["name"] == role["metadata"]["name"] == account["metadata"]["name"]


def test_service_selects_the_server_pods():
    service = render_service(md(), CONFIG)
    assert service["spec"]["selector"] == {
        "berth.dev/modeldeployment": "m",
        "app.kubernetes.io/component": "model-server",
    }
    assert service["spec"]["ports"][0]["port"] == 8000
