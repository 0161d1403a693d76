"""The dashboard's JSON API and live events, served by the operator on the control plane."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient, TestServer
from berth_operator.controller.naming import server_labels
from berth_operator.dashboard import server as dashboard_server
from berth_operator.dashboard.server import Dashboard

from tests.cluster import ControlPlane
from tests.cluster.kubectl import Kubectl
from tests.cluster.nodes import FakeNode
from tests.gpu_nodes import on_own_nodes, own_gpu_nodes
from tests.operator.helpers import (
    RUN_BY_THE_TEST,
    download_job_of,
    model_deployment,
    phase_is,
    report_progress,
)
from tests.operator_process import OperatorProcess

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def get_json(port: int, path: str) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
        return json.loads(response.read())


def read_events(port: int, found: list[dict], wanted: callable, done: threading.Event) -> None:
    """Reads the event stream until an event satisfies `wanted`."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/events", timeout=30) as stream:
        event = None
        for raw in stream:
            line = raw.decode().rstrip("\n")
            if line.startswith("event: "):
                event = line.removeprefix("event: ")
            elif line.startswith("data: "):
                found.append({"event": event, "data": json.loads(line.removeprefix("data: "))})
                if wanted(found[-1]):
                    done.set()
                    return


def gpu_node(port: int, name: str) -> dict | None:
    """The GPU panel's entry for node `name`, or None when the panel does not list it."""
    nodes = get_json(port, "/api/gpus")["nodes"]
    return next((node for node in nodes if node["name"] == name), None)


def wait_for_gpu_node(
    port: int, name: str, wanted: Callable[[dict | None], bool], timeout: float = 30
) -> dict | None:
    """Polls the GPU panel until node `name`'s entry satisfies `wanted`."""
    deadline = time.monotonic() + timeout
    while not wanted(seen := gpu_node(port, name)):
        assert time.monotonic() < deadline, f"GPU panel entry of {name}, last seen: {seen}"
        time.sleep(0.25)
    return seen


def holding(*keys: str) -> Callable[[dict | None], bool]:
    """A predicate on a panel entry: exactly these ModelDeployments have pods on the node."""
    return lambda node: node is not None and [m["key"] for m in node["models"]] == list(keys)


@pytest.mark.usefixtures("cache_volume")
def test_cards_and_live_updates(operator: OperatorProcess, kubectl: Kubectl):
    kubectl("create", "secret", "generic", "hf-token", "--from-literal=token=hf_dashboard_secret")
    kubectl("apply", "-f", str(EXAMPLES))
    kubectl.wait_for("md", "canary", phase_is("Starting"))
    items = {
        c["key"]: c for c in get_json(operator.dashboard_port, "/api/modeldeployments")["items"]
    }
    canary = items[f"{kubectl.namespace}/canary"]
    assert {f"{kubectl.namespace}/{n}" for n in ("qwen3-vl", "canary", "diarization")} <= set(items)
    assert canary["engine"] == "nemo-asr" and canary["endpoint"].startswith("http://canary.")
    assert (
        canary["commands"]["scale to 0"]
        == f"kubectl scale md/canary -n {kubectl.namespace} --replicas=0"
    )
    assert "hf_dashboard_secret" not in json.dumps(items)

    found: list[dict] = []
    done = threading.Event()

    def moved(message: dict) -> bool:
        data = message["data"]
        return (
            message["event"] == "update"
            and data.get("key") == f"{kubectl.namespace}/fetching"
            and data["download"]["bytesDone"] == 123
        )

    reader = threading.Thread(
        target=read_events, args=(operator.dashboard_port, found, moved, done), daemon=True
    )
    reader.start()
    # the downloader's report on its Job reaches the card through the operator's status
    kubectl.apply(model_deployment("fetching", repo=RUN_BY_THE_TEST))
    report = {"bytesDone": 123, "bytesTotal": 1000, "percent": 12, "bytesPerSecond": 100}
    report_progress(kubectl, download_job_of(kubectl, "fetching"), report)
    assert done.wait(20), found[-3:]
    assert found[0]["event"] == "snapshot"
    update = found[-1]["data"]
    assert update["download"]["etaSeconds"] == 8


def test_token_guards_the_api_not_the_page():
    md = model_deployment("m")
    md["metadata"] |= {"namespace": "ns"}

    async def scenario() -> list[int]:
        async with TestClient(TestServer(Dashboard(lambda: [md], token="s3cret").app())) as client:
            statuses = []
            for path, headers in (
                ("/api/modeldeployments", {}),
                ("/api/modeldeployments", {"Authorization": "Bearer wrong"}),
                ("/api/modeldeployments", {"Authorization": "Bearer s3cret"}),
                ("/api/modeldeployments?token=s3cret", {}),
                ("/", {}),
                ("/static/app.js", {}),
            ):
                statuses.append((await client.get(path, headers=headers)).status)
            return statuses

    assert asyncio.run(scenario()) == [401, 401, 200, 200, 200, 200]


@pytest.mark.usefixtures("cache_volume")
def test_gpu_panel_from_nodes_and_pods(
    operator: OperatorProcess, cluster: ControlPlane, kubectl: Kubectl
):
    ns, port = kubectl.namespace, operator.dashboard_port
    nodes = (
        FakeNode("gpu", gpus=4, gpu_product="NVIDIA-L40S"),
        FakeNode("mig", gpus=7, gpu_resource_name="nvidia.com/mig-1g.10gb"),
    )
    with own_gpu_nodes(cluster, ns, *nodes) as (gpu, mig):
        place = {"scheduling": on_own_nodes(ns)}
        kubectl.apply(
            model_deployment("first", resources={"gpus": 1}, **place),
            model_deployment("second", resources={"gpus": 2}, **place),
            model_deployment(
                "sliced",
                resources={"gpus": 1, "gpuResourceName": "nvidia.com/mig-1g.10gb"},
                **place,
            ),
        )
        on_gpu = wait_for_gpu_node(port, gpu, holding(f"{ns}/first", f"{ns}/second"))
        assert on_gpu == {
            "name": gpu,
            "product": "NVIDIA-L40S",
            "allocatable": {"nvidia.com/gpu": 4},
            "requested": {"nvidia.com/gpu": 3},
            "models": [
                {
                    "key": f"{ns}/{name}",
                    "namespace": ns,
                    "name": name,
                    "pods": 1,
                    "requested": {"nvidia.com/gpu": gpus},
                }
                for name, gpus in (("first", 1), ("second", 2))
            ],
        }
        on_mig = wait_for_gpu_node(port, mig, holding(f"{ns}/sliced"))
        assert on_mig["allocatable"] == {"nvidia.com/mig-1g.10gb": 7}
        assert on_mig["requested"] == {"nvidia.com/mig-1g.10gb": 1}
        assert on_mig["product"] == "NVIDIA-H200"

        # the panel follows the pods live: scaling to zero frees the GPUs on the page's stream
        found: list[dict] = []
        done = threading.Event()

        def freed(message: dict) -> bool:
            node = next((n for n in message["data"].get("nodes", []) if n["name"] == gpu), None)
            return message["event"] == "gpus" and node is not None and holding(f"{ns}/first")(node)

        reader = threading.Thread(target=read_events, args=(port, found, freed, done), daemon=True)
        reader.start()
        kubectl("scale", "md", "second", "--replicas=0")
        assert done.wait(30), found[-3:]
        assert found[0]["event"] == "snapshot" and "gpus" in found[0]["data"]
        node = next(n for n in found[-1]["data"]["nodes"] if n["name"] == gpu)
        assert node["requested"] == {"nvidia.com/gpu": 1}

        cluster.kubectl("delete", "node", mig)
        wait_for_gpu_node(port, mig, lambda node: node is None)


def server_pod(namespace: str, md: str, node: str, gpus: int) -> dict[str, Any]:
    return {
        "metadata": {
            "name": f"{md}-0",
            "namespace": namespace,
            "labels": server_labels(md, "vllm"),
        },
        "spec": {
            "nodeName": node,
            "containers": [{"resources": {"limits": {"nvidia.com/gpu": str(gpus)}}}],
        },
        "status": {"phase": "Running"},
    }


async def next_event(stream: ClientResponse) -> tuple[str, dict]:
    """The next named event of a server-sent event stream, skipping keep-alive comments."""
    event = None
    while True:
        line = (await stream.content.readline()).decode().rstrip("\n")
        if line.startswith("event: "):
            event = line.removeprefix("event: ")
        elif line.startswith("data: ") and event:
            return event, json.loads(line.removeprefix("data: "))


def test_routes_and_events_send_gpus_and_requests_when_they_change():
    node = {"metadata": {"name": "gpu-0"}, "status": {"allocatable": {"nvidia.com/gpu": "8"}}}
    objects: dict[str, list[dict]] = {"Node": [node], "Pod": []}
    dashboard = Dashboard(lambda: [], list_objects=lambda kind: objects[kind])

    async def scenario() -> tuple[dict, tuple[str, dict], tuple[str, dict], list, dict]:
        async with TestClient(TestServer(dashboard.app())) as client:
            route = await (await client.get("/api/gpus")).json()
            stream = await client.get("/api/events")
            snapshot = await next_event(stream)
            dashboard.refresh_gpus()  # nothing changed: nothing is sent
            objects["Pod"].append(server_pod("ns", "m", "gpu-0", 2))
            dashboard.refresh_gpus()
            update = await next_event(stream)
            figures = {"m": {"inFlight": 2, "perSecond": 0.5}}
            dashboard.set_traffic(figures)
            dashboard.set_traffic(figures)  # the same figures: nothing is sent
            dashboard.set_traffic({})
            traffic = [await next_event(stream), await next_event(stream)]
            served = await (await client.get("/api/traffic")).json()
            stream.close()
            return route, snapshot, update, traffic, served

    route, (first, snapshot), (second, update), traffic, served = asyncio.run(scenario())
    idle = {
        "name": "gpu-0",
        "product": None,
        "allocatable": {"nvidia.com/gpu": 8},
        "requested": {"nvidia.com/gpu": 0},
        "models": [],
    }
    assert route == {"nodes": [idle]}
    assert (first, snapshot) == ("snapshot", {"items": [], "gpus": route, "traffic": {}})
    assert second == "gpus"
    assert update["nodes"][0]["requested"] == {"nvidia.com/gpu": 2}
    assert [m["key"] for m in update["nodes"][0]["models"]] == ["ns/m"]
    assert traffic == [("traffic", {"m": {"inFlight": 2, "perSecond": 0.5}}), ("traffic", {})]
    assert served == {}


def test_pages_streamed_to_are_capped_and_a_page_that_falls_behind_is_dropped(
    monkeypatch: pytest.MonkeyPatch,
):
    monkeypatch.setattr(dashboard_server, "MAX_PAGES", 2)
    monkeypatch.setattr(dashboard_server, "PAGE_BACKLOG", 4)
    dashboard = Dashboard(lambda: [])

    async def scenario() -> tuple[int, str | None, list[bytes], tuple[str, dict]]:
        async with TestClient(TestServer(dashboard.app())) as client:
            pages = [await client.get("/api/events") for _ in range(2)]
            for page in pages:
                await next_event(page)
            refused = await client.get("/api/events")
            # ten updates while no page has had a turn to read: both fall 4 messages behind
            for value in range(10):
                dashboard.set_traffic({"m": {"inFlight": value, "perSecond": 0}})
            rests = [await asyncio.wait_for(page.content.read(), 10) for page in pages]
            fresh = await client.get("/api/events")
            snapshot = await next_event(fresh)
            fresh.close()
            return refused.status, refused.headers.get("Retry-After"), rests, snapshot

    status, retry_after, rests, (event, snapshot) = asyncio.run(scenario())
    assert (status, retry_after) == (503, "30")
    # each page that fell behind is ended (after the snapshot's closing blank line), not fed
    assert [rest.strip() for rest in rests] == [b"", b""]
    assert event == "snapshot" and snapshot["traffic"] == {"m": {"inFlight": 9, "perSecond": 0}}
