"""Fixtures for runtime tests: the local hub, and running the download Job's entry point."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.hub.server import HubRepo, LocalHub

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def hub() -> Iterator[LocalHub]:
    server = LocalHub().start()
    yield server
    server.stop()


@dataclass
class DownloadRun:
    returncode: int
    output: str
    termination: dict

    @property
    def reason(self) -> str | None:
        return self.termination.get("reason")


def download_env(hub: LocalHub, cache: Path, repo: str, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "HF_ENDPOINT": hub.endpoint,
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
        "HF_HUB_DISABLE_XET": "1",
        "MODEL_CACHE_DIR": str(cache),
        "BERTH_MODEL_REPO": repo,
        "BERTH_TERMINATION_LOG": str(cache.parent / "termination-log"),
        **extra,
    }


def start_download(hub: LocalHub, cache: Path, repo: str, **extra: str) -> subprocess.Popen[str]:
    (cache.parent / "termination-log").unlink(missing_ok=True)
    return subprocess.Popen(
        [sys.executable, "-m", "berth_runtime.download"],
        env=download_env(hub, cache, repo, **extra),
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def finish(process: subprocess.Popen[str], cache: Path, timeout: float = 120) -> DownloadRun:
    output, _ = process.communicate(timeout=timeout)
    log = cache.parent / "termination-log"
    termination = json.loads(log.read_text()) if log.exists() else {}
    return DownloadRun(process.returncode, output, termination)


@pytest.fixture
def run_download(hub: LocalHub, tmp_path: Path):
    """Runs `python -m berth_runtime.download` to the end against the local hub."""
    cache = tmp_path / "cache"

    def run(repo: str, timeout: float = 120, **extra: str) -> DownloadRun:
        return finish(start_download(hub, cache, repo, **extra), cache, timeout)

    run.cache = cache  # type: ignore[attr-defined]
    return run


MiB = 2**20


def tiny_repo(repo_id: str = "org/tiny", weights_mib: int = 2, **options: object) -> HubRepo:
    """A small model repository: two JSON files and an LFS weights file of random bytes."""
    return HubRepo(
        repo_id,
        files={
            "config.json": b'{"model_type": "tiny"}',
            "tokenizer.json": b'{"version": "1.0"}',
            "model.safetensors": os.urandom(weights_mib * MiB),
        },
        lfs={"model.safetensors"},
        **options,  # type: ignore[arg-type]
    )


@pytest.fixture
def cache(hub: LocalHub, tmp_path: Path) -> Path:
    """A real cache: the download Job fetched org/tiny into it."""
    hub.add(tiny_repo())
    directory = tmp_path / "cache"
    assert finish(start_download(hub, directory, "org/tiny"), directory).returncode == 0
    return directory
