"""Fixtures for engine tests; the helpers themselves live in runner.py."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import pytest

from tests.cluster import ControlPlane
from tests.cluster.kubectl import Kubectl
from tests.engines.runner import (
    EngineServer,
    cached_tiny_model,
    engine_env,
    engine_python,
    run_in_engine,
    tiny_model_dir,
)

__all__ = [
    "EngineServer",
    "cached_tiny_model",
    "engine_env",
    "engine_python",
    "run_in_engine",
    "tiny_model_dir",
]


@pytest.fixture(scope="module")
def serve() -> Iterator[Any]:
    """Starts engine servers for a module's tests and stops them after."""
    servers: list[EngineServer] = []

    def start(*args: Any, **kwargs: Any) -> EngineServer:
        server = EngineServer(*args, **kwargs)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture(scope="module")
def module_kubectl(cluster: ControlPlane, crd: None) -> Iterator[Kubectl]:
    """kubectl in a namespace that lives as long as the test module (and its engine server)."""
    name = f"engines-{secrets.token_hex(3)}"
    cluster.kubectl("create", "namespace", name)
    yield Kubectl(cluster, name)
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)
