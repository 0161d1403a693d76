"""Fixtures for runtime tests: the local hub, and running the download Job's entry point."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.hub.download import DownloadRun, finish, start_download, tiny_repo
from tests.hub.server import LocalHub


@pytest.fixture
def hub() -> Iterator[LocalHub]:
    server = LocalHub().start()
    yield server
    server.stop()


@pytest.fixture
def run_download(hub: LocalHub, tmp_path: Path):
    """Runs `python -m berth_runtime.download` to the end against the local hub."""
    cache = tmp_path / "cache"

    def run(repo: str, timeout: float = 120, **extra: str) -> DownloadRun:
        return finish(start_download(hub, cache, repo, **extra), cache, timeout)

    run.cache = cache  # type: ignore[attr-defined]
    return run


@pytest.fixture
def cache(hub: LocalHub, tmp_path: Path) -> Path:
    """A real cache: the download Job fetched org/tiny into it."""
    hub.add(tiny_repo())
    directory = tmp_path / "cache"
    assert finish(start_download(hub, directory, "org/tiny"), directory).returncode == 0
    return directory
