"""Engines as their images run them: each engine's own environment (its image's lock), tiny
models built in it, and the runtime server started from it."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.controlplane import free_port
from tests.hub.download import REPO, download_into, repo_from_directory
from tests.hub.server import LocalHub
from tests.pod_env import server_env

HERE = Path(__file__).resolve().parent
#: what the images hold of this repository: the runtime and the API package it reads
RUNTIME_PYTHONPATH = os.pathsep.join(str(REPO / d) for d in ("runtime_images", "operator"))
CACHE = Path(os.environ.get("BERTH_CACHE_DIR") or Path.home() / ".cache" / "berth")
#: the modules of tests/engines a builder imports: what it builds depends on them too
BUILDER_IMPORTS = {"tiny_pyannote.py": ("speech.py",)}


@functools.cache
def engine_python(engine: str) -> Path:
    """The python of the engine's environment, built from runtime_images/<engine>/requirements.lock
    (`vllm/cpu`: vLLM's CPU build, the vllm engine's test environment)."""
    out = subprocess.run(
        ["bash", str(REPO / "runtime_images" / "engine_env.sh"), engine],
        check=True,
        capture_output=True,
        text=True,
    )
    return Path(out.stdout.strip().splitlines()[-1])


def engine_env(**extra: str) -> dict[str, str]:
    """The environment of a process in an engine's image: offline, quiet, the runtime importable."""
    return {
        "PATH": os.environ["PATH"],
        "HOME": os.environ.get("HOME", "/tmp"),
        "PYTHONPATH": RUNTIME_PYTHONPATH,
        "HF_HUB_OFFLINE": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "PYANNOTE_METRICS_ENABLED": "0",
        "VLLM_NO_USAGE_STATS": "1",
        "DO_NOT_TRACK": "1",
        "OMP_NUM_THREADS": "2",
        **extra,
    }


def run_in_engine(engine: str, script: str, *args: str, timeout: float = 600) -> str:
    """Runs tests/engines/<script> with the engine's python; returns its stdout."""
    result = subprocess.run(
        [str(engine_python(engine)), str(HERE / script), *args],
        env=engine_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, f"{script} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def tiny_model_dir(engine: str, builder: str) -> Path:
    """The files of a tiny model built by tests/engines/<builder> in the engine's environment.

    Builders are deterministic, so the result is kept outside the tree, keyed by the builder's
    source and the engine's lock file.
    """
    lock = REPO / "runtime_images" / engine / "requirements.lock"
    sources = [HERE / builder, *(HERE / name for name in BUILDER_IMPORTS.get(builder, ())), lock]
    digest = hashlib.sha256(b"".join(path.read_bytes() for path in sources)).hexdigest()[:12]
    target = CACHE / "tiny-models" / f"{Path(builder).stem}-{digest}"
    if not (target / ".done").exists():
        shutil.rmtree(target, ignore_errors=True)
        run_in_engine(engine, builder, str(target / "model"))
        (target / ".done").touch()
    return target / "model"


def cached_tiny_model(
    engine: str,
    builder: str,
    repo_id: str,
    tmp_path_factory: pytest.TempPathFactory,
    part: str = "",
) -> Path:
    """Builds a tiny model with `builder` in the engine's environment, publishes it (or the
    builder's `part` subdirectory) on a local hub and fetches it with the real download Job;
    returns the cache directory."""
    work = tmp_path_factory.mktemp(engine.replace("/", "-"))
    return published_and_downloaded(repo_id, tiny_model_dir(engine, builder) / part, work)


def published_and_downloaded(repo_id: str, files: Path, work: Path) -> Path:
    """`files` as repo_id on a local hub, fetched by the real download Job into work/cache."""
    hub = LocalHub().start()
    try:
        hub.add(repo_from_directory(repo_id, files))
        download_into(hub, work / "cache", repo_id)
    finally:
        hub.stop()
    return work / "cache"


class EngineServer:
    """`python -m berth_runtime.server` for one engine, as its container runs it, in the engine's
    environment (or `python_env`, e.g. vllm/cpu), started through `wrapper` if given."""

    def __init__(
        self,
        engine: str,
        cache: Path,
        repo: str,
        settings: dict[str, Any] | None = None,
        python_env: str | None = None,
        host: str = "127.0.0.1",
        wrapper: tuple[str, ...] = (),
        **env: str,
    ) -> None:
        self.port = free_port()
        self.url = f"http://{host}:{self.port}"
        self.cache = cache
        self.log = cache.parent / f"{engine}-server-{self.port}.log"
        # as the operator renders a spec that leaves resources.gpus at its default of 1
        rendered = {"gpus": 1, "servedModelName": repo.split("/")[-1], **(settings or {})}
        environment = engine_env(
            **server_env(engine, repo, cache, self.port, rendered, BERTH_HOST=host, **env)
        )
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [*wrapper, str(engine_python(python_env or engine)), "-m", "berth_runtime.server"],
                env=environment,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def call(
        self, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        request = urllib.request.Request(self.url + path, data=body, headers=headers or {})
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                return response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers), error.read()

    def json(self, path: str, body: bytes | None = None, **headers: str) -> tuple[int, Any]:
        status, _, payload = self.call(path, body, headers)
        return status, json.loads(payload)

    def wait_ready(self, timeout: float = 240) -> dict[str, Any]:
        """Waits for /readyz; returns /api/status. Fails with the server's log otherwise."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"the server exited:\n{self.output()}"
            try:
                if self.call("/readyz")[0] == 200:
                    return self.json("/api/status")[1]
                status = self.json("/api/status")[1]
                assert status["state"] != "Failed", f"{status}\n{self.output()}"
            except (ConnectionError, urllib.error.URLError):
                pass
            time.sleep(0.5)
        raise AssertionError(f"not ready after {timeout} s:\n{self.output()}")

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-6000:]

    def load_steps(self) -> list[str]:
        """The load steps the runtime logged, as status.runtime.progress showed them."""
        text = self.log.read_text(errors="replace")
        return re.findall(r"^\S+ \S+ INFO berth_runtime\.[\w.]+: loading: (.*)$", text, re.M)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
