"""LoRA adapters: the API's rules on them, their downloads, and their status."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pydantic
import pytest
from berth_operator.api.modeldeployment import LoraAdapter, VllmSettings
from berth_operator.config import OperatorConfig
from berth_operator.controller.adapters import adapter_fields
from berth_operator.controller.desired import desired_children
from berth_operator.controller.download import (
    adapter_downloads,
    download_identity,
    render_download_job,
)
from berth_operator.controller.observed import SecretCheck
from berth_operator.controller.status import adapter_download_verdicts, derive_status
from berth_runtime.engines.vllm.adapters import (
    AdapterRefused,
    AdapterSync,
    base_mismatch,
    rank_refusal,
    refusal,
)

from tests.unit.factories import failed_download_pod, job, md, observed, pod

SQL = {"name": "sql", "repo": "acme/qwen3-sql-lora"}
FR = {"name": "chat-fr", "repo": "acme/qwen3-fr-lora", "revision": "v2"}


def vllm_md(name: str = "qwen", **vllm) -> object:
    return md(name, engine="vllm", repo="Qwen/Qwen3-8B", resources={"gpus": 1}, vllm=vllm)


def test_adapters_parse_with_their_defaults():
    parsed = vllm_md(adapters=[SQL, FR]).spec.vllm
    assert [(a.name, a.revision) for a in parsed.adapters] == [("sql", "main"), ("chat-fr", "v2")]
    assert parsed.lora is None and parsed.lora_enabled
    assert not VllmSettings().lora_enabled and VllmSettings(lora={}).lora_enabled


@pytest.mark.parametrize(
    ("vllm", "message"),
    [
        ({"adapters": [SQL, SQL]}, "name sql is given more than once"),
        ({"servedModelName": "sql", "adapters": [SQL]}, "name sql is vllm.servedModelName"),
        ({"lora": {"maxLoraRank": 24}}, "maxLoraRank 24 is not one vLLM accepts"),
        ({"lora": {"maxLoras": 8, "maxCpuLoras": 4}}, "maxCpuLoras (4) must be at least"),
        ({"adapters": [{**SQL, "repo": "sql"}]}, "adapters.0.repo"),
    ],
)
def test_invalid_adapters_are_refused_naming_the_field(vllm: dict, message: str):
    with pytest.raises(pydantic.ValidationError) as error:
        vllm_md(**vllm)
    assert message in str(error.value)


def test_an_adapter_may_not_take_the_resource_name_that_the_base_model_is_served_under():
    with pytest.raises(pydantic.ValidationError) as error:
        vllm_md("sql", adapters=[SQL])
    assert "vllm.adapters.0.name" in str(error.value)
    assert "must differ from the resource's name (sql)" in str(error.value)
    # with a served name of its own, the resource's name is free
    assert vllm_md("sql", servedModelName="qwen", adapters=[SQL]).spec.vllm.adapters


def loads(**by_pod: dict) -> dict:
    return {"adapterLoads": by_pod}


def test_status_follows_each_adapters_download_then_the_ready_pods_that_serve_it():
    adapters = [SQL, FR, {"name": "wide", "repo": "acme/wide"}]
    adapters += [{"name": "new", "repo": "a/n"}, {"name": "gated", "repo": "a/g"}]
    resource = md(
        "qwen",
        engine="vllm",
        repo="Qwen/Qwen3-8B",
        resources={"gpus": 1},
        vllm={"adapters": adapters},
        status=loads(
            p1={"loaded": ["sql", "chat-fr"], "notInCache": ["new"]},
            p2={
                "loaded": ["sql"],
                "failed": [{"name": "wide", "reason": "AdapterRankTooHigh", "message": "r 64"}],
            },
            p3={"loaded": []},  # not ready: not counted
            gone={"loaded": ["sql"]},
        ),
    )
    done = {"job": job("j", "Complete")}
    gated_pod = failed_download_pod("g", "GatedAccessDenied", "2026-11-26T11:00:00Z")
    downloads = {
        "sql": done,
        "chat-fr": done,
        "wide": done,
        "new": {"job": job("j", report={"bytesDone": 512, "bytesTotal": 2048, "percent": 25})},
        "gated": {"job": job("j", "Failed"), "pods": [gated_pod]},
    }
    pods = [pod("p1"), pod("p2"), pod("p3", ready=False)]
    view = observed(resource, adapters=downloads, job=job("base", "Complete"), pods=pods)
    status = derive_status(view, OperatorConfig(), "2026-11-26T12:00:00Z")
    by_name = {a["name"]: a for a in status["adapters"]}
    assert (by_name["sql"]["state"], by_name["sql"]["loaded"]) == ("Loaded", "2/2")
    assert (by_name["chat-fr"]["state"], by_name["chat-fr"]["loaded"]) == ("Loading", "1/2")
    assert by_name["chat-fr"]["revision"] == "v2"
    assert (by_name["wide"]["state"], by_name["wide"]["reason"]) == ("Failed", "AdapterRankTooHigh")
    new = by_name["new"]
    assert (new["state"], new["reason"]) == ("Downloading", "Downloading")
    assert new["message"] == "adapter new: downloading a/n@main: 512 B of 2.0 KiB (25%)"
    gated = by_name["gated"]
    assert (gated["state"], gated["reason"]) == ("Failed", "GatedAccessDenied")
    assert gated["message"].startswith("adapter gated: ")
    assert status["adaptersLoaded"] == "1/5"
    # what a pod that is gone reported is removed (a merge patch with null)
    assert status["adapterLoads"] == {"gone": None}
    # an adapter's download does not hold the model back
    assert status["phase"] != "Failed" and status["download"]["percent"] == 100


def test_an_adapter_download_that_is_done_waits_for_the_pods():
    resource = vllm_md(adapters=[SQL])
    view = observed(resource, adapters={"sql": {"job": job("j", "Complete")}}, pods=[pod("p1")])
    entry = adapter_fields(resource, view.pods, adapter_download_verdicts(view))["adapters"][0]
    assert (entry["state"], entry["loaded"]) == ("Loading", "0/1")
    assert entry["message"] == "acme/qwen3-sql-lora@main is in the cache; the pods are loading it"


def download_env(resource, download) -> dict:
    job = render_download_job(resource, download, [resource], OperatorConfig())
    container = job["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def test_each_adapter_downloads_with_its_own_job_and_token_shared_by_resources():
    token = {"name": "hf", "key": "token"}
    own = {"name": "own", "key": "t"}
    gated = {"name": "gated", "repo": "acme/gated-lora", "tokenSecretRef": own}
    resource = md(
        "qwen",
        engine="vllm",
        model={"repo": "Qwen/Qwen3-8B", "tokenSecretRef": token},
        resources={"gpus": 1},
        vllm={"adapters": [SQL, gated]},
    )
    sql, gated_download = adapter_downloads(resource)
    assert (sql.adapter, sql.what) == ("sql", "acme/qwen3-sql-lora@main")
    env = download_env(resource, sql)
    assert env["BERTH_MODEL_REPO"] == "acme/qwen3-sql-lora" and env["BERTH_ALLOW_PATTERNS"] == "[]"
    assert env["HF_TOKEN"] == {"secretKeyRef": token}  # the model's, by default
    assert download_env(resource, gated_download)["HF_TOKEN"] == {"secretKeyRef": own}
    # another resource that serves the same adapter with the same token shares its download
    other = md(
        "other",
        engine="vllm",
        model={"repo": "Qwen/Qwen3-4B", "tokenSecretRef": token},
        resources={"gpus": 1},
        vllm={"adapters": [{**SQL, "name": "sql-too"}]},
    )
    assert adapter_downloads(other)[0].job_name == sql.job_name
    assert sql.job_name != download_identity(resource).job_name


def test_the_adapters_downloads_are_children_once_each_and_not_without_their_token():
    twice = [SQL, {**SQL, "name": "sql-again"}, {"name": "fr", "repo": "acme/fr-lora"}]
    resource = vllm_md(adapters=twice)
    role = {"metadata": {"name": "applied", "uid": "r"}}
    problem = SecretCheck("SecretNotFound", "secret gone")
    parts = {"sql": {"role": role}, "sql-again": {"role": role}, "fr": {"token_problem": problem}}
    view = observed(resource, adapters=parts, role=role)
    jobs = [
        c["metadata"]["name"]
        for c in desired_children(view, OperatorConfig())
        if c["kind"] == "Job"
    ]
    assert jobs == [download_identity(resource).job_name, adapter_downloads(resource)[0].job_name]
    fr = adapter_fields(resource, [], adapter_download_verdicts(view))["adapters"][2]
    assert (fr["state"], fr["reason"], fr["message"]) == (
        "Failed",
        "SecretNotFound",
        "adapter fr: secret gone",
    )


def test_without_adapters_the_keys_are_cleared_and_nothing_is_pruned():
    fields = adapter_fields(vllm_md(), [pod("p1")], {})
    assert fields == {"adapters": None, "adaptersLoaded": None}


class Routes:
    """vLLM's adapter routes as the tests script them: what was called, refusals by name."""

    def __init__(self, refuse: dict[str, AdapterRefused] | None = None) -> None:
        self.calls: list[tuple[str, str]] = []
        self.refuse = refuse or {}

    async def load(self, name: str, path: Path) -> None:
        self.calls.append(("load", name))
        if name in self.refuse:
            raise self.refuse[name]

    async def unload(self, name: str) -> None:
        self.calls.append(("unload", name))


def test_the_sync_loads_what_is_new_unloads_what_went_and_reloads_what_changed():
    cached = {"acme/qwen3-sql-lora", "acme/qwen3-fr-lora", "acme/wide"}

    async def find(adapter: LoraAdapter) -> Path | None:
        return Path("/cache", adapter.repo) if adapter.repo in cached else None

    wide = refusal(400, "LoRA rank 64 is greater than max_lora_rank 16.")
    routes = Routes({"wide": wide})
    sync = AdapterSync(routes, find)  # type: ignore[arg-type]
    assert sync.startable({LoraAdapter.model_validate(SQL): Path("/cache/sql")}) == {
        "sql": Path("/cache/sql")
    }
    wanted = [LoraAdapter.model_validate(a) for a in (SQL, FR)]
    missing = LoraAdapter(name="new", repo="acme/new")
    too_wide = LoraAdapter(name="wide", repo="acme/wide")

    assert asyncio.run(sync.apply([*wanted, missing, too_wide]))
    assert routes.calls == [("load", "chat-fr"), ("load", "wide")]
    report = sync.loads()
    assert report.loaded == ["chat-fr", "sql"] and report.not_in_cache == ["new"]
    assert [(f.name, f.reason) for f in report.failed] == [("wide", "AdapterRankTooHigh")]
    assert "raise spec.vllm.lora.maxLoraRank" in report.failed[0].message

    routes.calls.clear()  # the same wish again: nothing to do, a refusal is not retried
    assert not asyncio.run(sync.apply([*wanted, missing, too_wide]))
    assert routes.calls == []

    moved = LoraAdapter(name="sql", repo="acme/qwen3-sql-lora", revision="v3")
    assert asyncio.run(sync.apply([moved]))
    assert routes.calls == [("unload", "sql"), ("unload", "chat-fr"), ("load", "sql")]
    assert sync.loads().loaded == ["sql"] and not sync.loads().failed


def test_an_adapter_over_the_rank_limit_is_refused_before_vllm_sees_it(tmp_path: Path):
    (tmp_path / "adapter_config.json").write_text('{"r": 8, "rank_pattern": {"q_proj": 64}}')
    assert rank_refusal("wide", tmp_path, 64) is None
    refused = rank_refusal("wide", tmp_path, 16)
    assert refused is not None and refused.reason == "AdapterRankTooHigh"
    assert "rank 64, over spec.vllm.lora.maxLoraRank (16)" in str(refused)

    async def find(adapter: LoraAdapter) -> Path | None:
        return tmp_path

    sync = AdapterSync(Routes(), find, max_rank=16)  # type: ignore[arg-type]
    wide = LoraAdapter(name="wide", repo="acme/wide")
    assert sync.startable({wide: tmp_path}) == {}  # vLLM would not start with it
    assert [f.reason for f in sync.loads().failed] == ["AdapterRankTooHigh"]


def test_an_adapter_trained_on_another_model_is_loaded_and_said(tmp_path: Path):
    def adapter_at(name: str, base: str) -> Path:
        (tmp_path / name).mkdir()
        config = {"r": 8, "base_model_name_or_path": base}
        (tmp_path / name / "adapter_config.json").write_text(json.dumps(config))
        return tmp_path / name

    paths = {
        "same": adapter_at("same", "Qwen/Qwen3-8B"),
        "local": adapter_at("local", "/checkpoints/Qwen3-8B/"),
        "other": adapter_at("other", "meta-llama/Llama-3.1-8B"),
    }
    assert base_mismatch("same", paths["same"], "Qwen/Qwen3-8B") is None
    assert base_mismatch("local", paths["local"], "Qwen/Qwen3-8B") is None

    async def find(adapter: LoraAdapter) -> Path | None:
        return paths[adapter.name]

    routes = Routes()
    sync = AdapterSync(routes, find, base_repo="Qwen/Qwen3-8B")  # type: ignore[arg-type]
    wanted = [LoraAdapter(name=n, repo=f"acme/{n}") for n in paths]
    assert asyncio.run(sync.apply(wanted))
    report = sync.loads()
    assert report.loaded == ["local", "other", "same"]  # vLLM takes it: served, and said
    assert [(m.name, m.reason) for m in report.mismatched] == [("other", "BaseModelMismatch")]
    assert "trained on meta-llama/Llama-3.1-8B, not on the served Qwen/Qwen3-8B" in (
        report.mismatched[0].message
    )

    # what status makes of it: a warning on the adapter and a condition, nothing failed
    resource = md(
        "qwen",
        engine="vllm",
        repo="Qwen/Qwen3-8B",
        resources={"gpus": 1},
        vllm={"adapters": [{"name": n, "repo": f"acme/{n}"} for n in paths]},
        status=loads(p1=report.model_dump(by_alias=True)),
    )
    done = {"job": job("j", "Complete")}
    view = observed(resource, adapters=dict.fromkeys(paths, done), pods=[pod("p1")])
    status = derive_status(view, OperatorConfig(), "2026-11-26T12:00:00Z")
    by_name = {a["name"]: a for a in status["adapters"]}
    assert (by_name["other"]["state"], by_name["other"]["reason"]) == (
        "Loaded",
        "BaseModelMismatch",
    )
    assert by_name["same"]["reason"] == "Loaded"
    match = next(c for c in status["conditions"] if c["type"] == "AdaptersMatchBase")
    assert (match["status"], match["reason"]) == ("False", "BaseModelMismatch")
    assert match["message"] == by_name["other"]["message"]

    # the adapter removed: unloaded, and the warning goes with it
    assert asyncio.run(sync.apply(wanted[:2]))
    assert routes.calls[-1] == ("unload", "other") and not sync.loads().mismatched
