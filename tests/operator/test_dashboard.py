"""The dashboard's JSON API and live events, served by the operator on the control plane."""

from __future__ import annotations

import asyncio
import json
import threading
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient, TestServer
from berth_operator.controller.naming import server_labels
from berth_operator.dashboard.server import Dashboard

from tests.cluster.kubectl import Kubectl
from tests.operator.helpers import model_deployment, phase_is
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
            and data.get("key") == f"{kubectl.namespace}/canary"
            and data["download"]["bytesDone"] == 123
        )

    reader = threading.Thread(
        target=read_events, args=(operator.dashboard_port, found, moved, done), daemon=True
    )
    reader.start()
    patch = {
        "status": {
            "download": {"bytesDone": 123, "bytesTotal": 1000, "percent": 12, "bytesPerSecond": 100}
        }
    }
    kubectl(
        "patch", "md", "canary", "--subresource=status", "--type=merge", "-p", json.dumps(patch)
    )
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


def test_gpu_route_and_events_send_the_panel_when_it_changes():
    node = {"metadata": {"name": "gpu-0"}, "status": {"allocatable": {"nvidia.com/gpu": "8"}}}
    objects: dict[str, list[dict]] = {"Node": [node], "Pod": []}
    dashboard = Dashboard(lambda: [], list_objects=lambda kind: objects[kind])

    async def scenario() -> tuple[dict, tuple[str, dict], tuple[str, dict]]:
        async with TestClient(TestServer(dashboard.app())) as client:
            route = await (await client.get("/api/gpus")).json()
            stream = await client.get("/api/events")
            snapshot = await next_event(stream)
            dashboard.refresh_gpus()  # nothing changed: nothing is sent
            objects["Pod"].append(server_pod("ns", "m", "gpu-0", 2))
            dashboard.refresh_gpus()
            update = await next_event(stream)
            stream.close()
            return route, snapshot, update

    route, (first, snapshot), (second, update) = asyncio.run(scenario())
    idle = {
        "name": "gpu-0",
        "product": None,
        "allocatable": {"nvidia.com/gpu": 8},
        "requested": {"nvidia.com/gpu": 0},
        "models": [],
    }
    assert route == {"nodes": [idle]}
    assert (first, snapshot) == ("snapshot", {"items": [], "gpus": route})
    assert second == "gpus"
    assert update["nodes"][0]["requested"] == {"nvidia.com/gpu": 2}
    assert [m["key"] for m in update["nodes"][0]["models"]] == ["ns/m"]
