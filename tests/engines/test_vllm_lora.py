"""LoRA adapters on vLLM's real server (its CPU build): the supervisor starts vLLM with the
adapters of its ModelDeployment that are in the cache, then follows spec.vllm.adapters, loading
and unloading adapters in the running vLLM without restarting it; each pod reports what it
serves in status.adapterLoads. The adapters are random ones of the tiny dense Qwen3, written by
peft (tests/engines/tiny_qwen3.py) and fetched by the real download Job; the official OpenAI
client calls them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from openai import OpenAI

from tests.cluster.kubectl import Kubectl
from tests.engines.lora import BASE_REPO, NAME, POD, Hub, adapter, answer, resource, start_server
from tests.engines.vllm_server import API_KEY, VllmServer

pytestmark = pytest.mark.timeout(900)


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    found = Hub(tmp_path_factory.mktemp("vllm-lora"))
    for repo in (BASE_REPO, *(adapter(n)["repo"] for n in ("sql", "fr", "wide"))):
        found.download(repo)  # "poem" comes into the cache while vLLM runs
    yield found
    found.stop()


@pytest.fixture(scope="module")
def served(module_kubectl: Kubectl, hub: Hub) -> Iterator[VllmServer]:
    """vLLM started for a resource that asks for sql, wide (over the rank limit) and poem (not in
    the cache yet)."""
    module_kubectl.apply(resource("sql", "wide", "poem"))
    server = start_server(module_kubectl, hub.cache)
    server.wait_healthy()
    yield server
    server.stop()


def vllm_pid(server: VllmServer) -> int:
    """The pid of the supervisor's vLLM child."""
    children = Path(f"/proc/{server.process.pid}/task/{server.process.pid}/children")
    pids = [int(p) for p in children.read_text().split()]
    assert len(pids) == 1, pids
    return pids[0]


def started_at(pid: int) -> str:
    """The process's start time in clock ticks since boot (field 22 of /proc/PID/stat)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rpartition(")")[2].split()[19]


def loads(kubectl: Kubectl, check: Any, what: str, timeout: float = 120) -> dict[str, Any]:
    """status.adapterLoads.<pod> once `check` holds of it."""

    def reported(md: dict[str, Any]) -> bool:
        entry = ((md.get("status") or {}).get("adapterLoads") or {}).get(POD)
        return entry is not None and check(entry)

    reported.__name__ = what
    md = kubectl.wait_for("md", NAME, reported, timeout=timeout)
    return md["status"]["adapterLoads"][POD]


def test_adapters_are_served_and_changed_without_restarting_vllm(
    served: VllmServer, module_kubectl: Kubectl, hub: Hub
):
    client = OpenAI(base_url=served.url + "/v1", api_key=API_KEY, max_retries=0, timeout=120)
    command = served.command()
    assert "--enable-lora" in command and '"name":"sql"' in command
    assert '"name":"wide"' not in command  # vLLM would refuse to start with it
    first = loads(module_kubectl, lambda e: e.get("loaded") == ["sql"], "sql loaded")
    assert first["notInCache"] == ["poem"]
    assert [(f["name"], f["reason"]) for f in first["failed"]] == [("wide", "AdapterRankTooHigh")]

    listed = {m.id: m for m in client.models.list().data}
    assert set(listed) == {"tiny", "sql"}
    assert getattr(listed["sql"], "parent", None) == "tiny"
    base = answer(client, "tiny")
    assert answer(client, "sql") != base  # the adapter is really applied
    pid = vllm_pid(served)
    start = started_at(pid)

    # an adapter added to the spec is served by the running vLLM
    module_kubectl.apply(resource("sql", "wide", "poem", "fr"))
    loads(module_kubectl, lambda e: "fr" in (e.get("loaded") or []), "fr loaded")
    assert answer(client, "fr") not in (base, answer(client, "sql"))
    # one that comes into the cache is loaded on the next look
    hub.download(adapter("poem")["repo"])
    loads(module_kubectl, lambda e: "poem" in (e.get("loaded") or []), "poem loaded", 60)
    assert answer(client, "poem") != base

    # one removed from the spec is no longer served: 404 with OpenAI's error JSON
    module_kubectl.apply(resource("poem", "fr"))
    loads(module_kubectl, lambda e: e.get("loaded") == ["fr", "poem"], "sql unloaded")
    with pytest.raises(openai.NotFoundError) as error:
        answer(client, "sql")
    assert error.value.status_code == 404 and "sql" in str(error.value)
    assert answer(client, "tiny") == base

    assert vllm_pid(served) == pid and started_at(pid) == start  # never restarted
    assert served.process.poll() is None
