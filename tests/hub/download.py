"""Runs the download Job's entry point (`python -m berth_runtime.download`) against a local hub."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.hub.server import Faults, HubRepo, LocalHub
from tests.pod_env import download_env

REPO = Path(__file__).resolve().parents[2]
MiB = 2**20


@dataclass
class DownloadRun:
    returncode: int
    output: str
    termination: dict

    @property
    def reason(self) -> str | None:
        return self.termination.get("reason")


def hub_download_env(hub: LocalHub, cache: Path, repo: str, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "HF_ENDPOINT": hub.endpoint,
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
        "HF_HUB_DISABLE_XET": "1",
        **download_env(repo, cache, **extra),
    }


def start_download(
    hub: LocalHub, cache: Path, repo: str, wrapper: Sequence[str] = (), **extra: str
) -> subprocess.Popen[str]:
    """`python -m berth_runtime.download` (under `wrapper`) fetching `repo` into `cache`."""
    (cache.parent / "termination-log").unlink(missing_ok=True)
    return subprocess.Popen(
        [*wrapper, sys.executable, "-m", "berth_runtime.download"],
        env=hub_download_env(hub, cache, repo, **extra),
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


def repo_from_directory(repo_id: str, directory: Path, lfs_over: int = 10_000) -> HubRepo:
    """A hub repository holding a directory's files; files over `lfs_over` bytes are LFS."""
    files = {
        str(p.relative_to(directory)): p.read_bytes() for p in directory.rglob("*") if p.is_file()
    }
    return HubRepo(repo_id, files=files, lfs={k for k, v in files.items() if len(v) > lfs_over})


def download_into(hub: LocalHub, cache: Path, repo: str, timeout: float = 300) -> None:
    """Fetches repo into cache with the real download Job; fails with its output otherwise."""
    result = finish(start_download(hub, cache, repo), cache, timeout)
    assert result.returncode == 0, result.output


def throttled_repo(repo_id: str, sizes_mib: list[int], bytes_per_second: float) -> HubRepo:
    """A repo of LFS files of the given sizes, each response served at `bytes_per_second`."""
    contents = {
        f"model-{i:05d}.safetensors": os.urandom(mib * MiB) for i, mib in enumerate(sizes_mib)
    }
    repo = HubRepo(repo_id, files={"config.json": b"{}", **contents}, lfs=set(contents))
    repo.faults = Faults(bytes_per_second=bytes_per_second)
    return repo


def bytes_on_disk(directory: Path) -> int:
    """Bytes of blobs and partial blobs (snapshots hold links to the blobs)."""
    return sum(p.stat().st_size for p in directory.rglob("*") if p.is_file() and not p.is_symlink())
