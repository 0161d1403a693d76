"""Fixtures for engine tests; the helpers themselves live in runner.py."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

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
