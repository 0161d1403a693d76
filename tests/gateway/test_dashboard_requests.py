"""The dashboard's request figures: each model's requests in flight and per second, summed over
two gateway processes, read from their metrics ports through the EndpointSlices of the gateway's
Service, as the operator's dashboard does in a cluster."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from berth_operator.__main__ import gateway_traffic
from berth_operator.dashboard.server import Dashboard
from berth_operator.kube import Kube
from lightkube import AsyncClient, KubeConfig

from tests.cluster import ControlPlane
from tests.cluster.kubectl import Kubectl
from tests.dashboard_thread import serve_in_thread
from tests.gateway.parts import endpoint_slice, http, model_deployment, wait_until

GATEWAY_SERVICE = "berth-gateway"


def metrics_slice(address: str, port: int) -> dict[str, Any]:
    """An EndpointSlice of the gateway's Service with one gateway pod on its metrics port."""
    body = endpoint_slice(GATEWAY_SERVICE, address, port)
    body["metadata"]["labels"] = {"kubernetes.io/service-name": GATEWAY_SERVICE}
    body["ports"] = [{"name": "metrics", "port": port, "protocol": "TCP"}]
    return body


@pytest.fixture
def dashboard_url(cluster: ControlPlane, namespace: str) -> Iterator[str]:
    """The dashboard, in a thread of its own, reading the gateway Service of the namespace."""

    async def make() -> tuple[Dashboard, Any]:
        client = AsyncClient(config=KubeConfig.from_file(cluster.kubeconfig))
        traffic = gateway_traffic(Kube(client), f"{namespace}/{GATEWAY_SERVICE}")
        return Dashboard(lambda: [], traffic=traffic), client.close

    with serve_in_thread(make) as served:
        yield served.url


def test_requests_in_flight_and_per_second_over_two_gateways(
    kubectl: Kubectl, start_gateway: Any, stand_ins: Any, dashboard_url: str
) -> None:
    upstream = stand_ins("a")
    kubectl.apply(
        model_deployment("chat", "vllm"), endpoint_slice("chat", upstream.address, upstream.port)
    )
    # on every address: the dashboard reaches the metrics at the address of the EndpointSlice
    gateways = [start_gateway("--bind=0.0.0.0") for _ in range(2)]
    for gateway in gateways:
        gateway.wait_for_endpoints("chat", 1)
    kubectl.apply(*(metrics_slice(upstream.address, g.metrics_port) for g in gateways))

    def figures() -> dict[str, Any]:
        return json.loads(http("GET", dashboard_url + "/api/traffic")[2]).get("chat", {})

    body = json.dumps({"model": "chat", "messages": [{"role": "user", "content": "hi"}]})
    held = {"Content-Type": "application/json", "X-Test-Hold": "1"}
    with ThreadPoolExecutor(5) as pool:
        futures = [
            pool.submit(
                http, "POST", gateways[i % 2].url + "/v1/chat/completions", body.encode(), held
            )
            for i in range(5)
        ]
        wait_until(lambda: upstream.stats()["in_flight"] == 5, "five requests held upstream")
        wait_until(lambda: figures().get("inFlight") == 5, "five in flight on the dashboard")
        upstream.release()
        assert [f.result()[0] for f in futures] == [200] * 5
    wait_until(
        lambda: (seen := figures()).get("inFlight") == 0 and seen.get("perSecond", 0) > 0,
        "the answered requests counted per second, none left in flight",
    )
