"""Fixtures of the gateway's tests: a local address for upstreams, gateways and stand-ins."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cluster import ControlPlane
from tests.gateway.parts import GatewayProcess, StandIn, local_address


@pytest.fixture(scope="session")
def address() -> str:
    found = local_address()
    if found is None:
        pytest.skip("this machine has no address but loopback, which EndpointSlices refuse")
    return found


@pytest.fixture
def start_gateway(
    cluster: ControlPlane, crd: None, namespace: str, tmp_path: Path
) -> Iterator[Any]:
    """Starts gateways that watch the test's namespace; stops them after the test."""
    started: list[GatewayProcess] = []

    def start(*args: str) -> GatewayProcess:
        gateway = GatewayProcess(
            cluster, tmp_path, f"--namespace={namespace}", f"--lease-namespace={namespace}", *args
        )
        started.append(gateway)
        return gateway

    yield start
    for gateway in started:
        gateway.stop()


@pytest.fixture
def stand_ins(address: str, tmp_path: Path) -> Iterator[Any]:
    """Starts vLLM-compatible stand-ins on the local address; stops them after the test."""
    started: list[StandIn] = []

    def start(name: str, api_key: str | None = None) -> StandIn:
        stand_in = StandIn(address, tmp_path, name, api_key)
        started.append(stand_in)
        return stand_in

    yield start
    for stand_in in started:
        stand_in.stop()
