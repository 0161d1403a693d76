"""SIGTERM ends Berth's processes promptly even as a container's PID 1, which the kernel
spares every signal it has no handler for: a pod deleted while its model imports, loads or
downloads goes in seconds, not at the end of its grace period."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

from tests.cluster.controlplane import free_port
from tests.hub.download import MiB, finish, start_download, throttled_repo
from tests.hub.server import LocalHub
from tests.realnode.waiting import wait_until
from tests.runtime.processes import AS_PID_1, get, start_server

#: far below the minute an import or a load takes here, and the 130 s grace of a server pod
PROMPTLY = 15.0
TERMINATED = 128 + signal.SIGTERM


def pid_1(wrapper: subprocess.Popen[str]) -> int:
    """The host's PID of the process that is PID 1 in `wrapper`'s namespace."""
    children = Path(f"/proc/{wrapper.pid}/task/{wrapper.pid}/children")
    wait_until(lambda: children.read_text().strip(), "unshare's child", timeout=10)
    return int(children.read_text().split()[0])


def stop(process: subprocess.Popen[str]) -> tuple[int, str]:
    """SIGTERM to PID 1, as the kubelet sends it; the exit code and the output, which must
    come within PROMPTLY seconds."""
    os.kill(pid_1(process), signal.SIGTERM)
    output, _ = process.communicate(timeout=PROMPTLY)
    return process.returncode, output


def test_a_server_stopped_while_importing_its_engine_ends_at_once(cache: Path) -> None:
    port = free_port()
    server = start_server(
        cache, port, "tests.runtime.slow_import_engine:SlowImportEngine", wrapper=AS_PID_1
    )
    try:
        assert server.stdout is not None
        assert "importing" in server.stdout.readline()
        returncode, output = stop(server)
    finally:
        server.kill()
    assert returncode == TERMINATED, output


def test_a_server_stopped_while_loading_ends_without_waiting_for_the_load(cache: Path) -> None:
    port = free_port()
    server = start_server(
        cache, port, wrapper=AS_PID_1, BERTH_SETTINGS=json.dumps({"loadSeconds": 60})
    )
    try:
        wait_until(lambda: get(port, "/healthz") == 200, "the server listening", timeout=30)
        assert get(port, "/readyz") == 503  # loading: in no Service's endpoints
        returncode, output = stop(server)
    finally:
        server.kill()
    assert returncode == 0, output  # a clean stop: no drain, no wait for the load thread
    assert "closing in 0 s" in output


def test_a_download_stopped_midway_ends_at_once_and_the_next_one_resumes(
    hub: LocalHub, tmp_path: Path
) -> None:
    repo = hub.add(throttled_repo("org/stopped", [8], 1 * MiB))
    cache = tmp_path / "cache"
    download = start_download(hub, cache, repo.repo_id, wrapper=AS_PID_1)
    try:
        wait_until(lambda: hub.bytes_sent >= 2 * MiB, "2 MiB downloaded", timeout=60)
        returncode, output = stop(download)
    finally:
        download.kill()
    assert returncode == TERMINATED, output  # a failure the Job retries, never a success
    sent_before = hub.bytes_sent
    resumed = finish(start_download(hub, cache, repo.repo_id), cache, timeout=60)
    assert resumed.returncode == 0, resumed.output
    assert hub.bytes_sent - sent_before < 8 * MiB  # the partial file was resumed
