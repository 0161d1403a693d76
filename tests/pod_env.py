"""The environment the operator renders for pods, built for runtime processes the tests start."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from berth_operator.api.podenv import DownloadEnv, ServerEnv


def server_env(
    engine: str,
    repo: str,
    cache: Path,
    port: int,
    settings: dict[str, Any] | None = None,
    name: str = "tiny",
    **overrides: str,
) -> dict[str, str]:
    """A model server's variables, as the operator renders them, plus `overrides`."""
    env = ServerEnv(
        engine=engine,
        repo=repo,
        revision="main",
        cache_dir=cache,
        settings=settings or {},
        model_deployment=name,
        port=port,
        host="127.0.0.1",
    )
    return {**env.values(), "HF_HUB_CACHE": str(cache), **overrides}


def download_env(repo: str, cache: Path, **overrides: str) -> dict[str, str]:
    """The download Job's variables, as the operator renders them, plus `overrides`."""
    env = DownloadEnv(
        repo=repo,
        revision="main",
        cache_dir=cache,
        allow_patterns=[],
        ignore_patterns=[],
        force=False,
        stall_seconds=300,
        termination_log=cache.parent / "termination-log",
    )
    return {**env.values(), **overrides}
