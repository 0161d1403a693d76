"""LoRA adapters: the API's rules on them, their downloads, and their status."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pydantic
import pytest
from berth_operator.api.modeldeployment import LoraAdapter, VllmSettings
from berth_operator.controller.adapters import adapter_fields
from berth_runtime.engines.vllm.adapters import (
    AdapterRefused,
    AdapterSync,
    rank_refusal,
    refusal,
)

from tests.unit.factories import md, pod

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


def test_status_counts_the_ready_pods_that_serve_each_adapter():
    resource = vllm_md(
        adapters=[SQL, FR, {"name": "wide", "repo": "acme/wide"}, {"name": "new", "repo": "a/n"}]
    )
    resource = md(
        "qwen",
        engine="vllm",
        repo="Qwen/Qwen3-8B",
        resources={"gpus": 1},
        vllm=resource.spec.vllm.model_dump(by_alias=True, exclude_none=True),
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
    fields = adapter_fields(resource, [pod("p1"), pod("p2"), pod("p3", ready=False)])
    by_name = {a["name"]: a for a in fields["adapters"]}
    assert (by_name["sql"]["state"], by_name["sql"]["loaded"]) == ("Loaded", "2/2")
    assert (by_name["chat-fr"]["state"], by_name["chat-fr"]["loaded"]) == ("Loading", "1/2")
    assert by_name["chat-fr"]["revision"] == "v2"
    assert (by_name["wide"]["state"], by_name["wide"]["reason"]) == ("Failed", "AdapterRankTooHigh")
    assert by_name["new"]["state"] == "NotInCache"
    assert "acme/qwen3-sql-lora" not in by_name["new"]["message"]
    assert fields["adaptersLoaded"] == "1/4"
    # what a pod that is gone reported is removed (a merge patch with null)
    assert fields["adapterLoads"] == {"gone": None}


def test_without_adapters_the_keys_are_cleared_and_nothing_is_pruned():
    fields = adapter_fields(vllm_md(), [pod("p1")])
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
