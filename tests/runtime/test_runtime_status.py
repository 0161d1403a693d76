"""The model server reports into its own resource's status.runtime, with its own account,
and the operator turns that into Ready; an API outage never blocks serving."""

from __future__ import annotations

import json
import signal
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.cluster import ControlPlane
from tests.cluster.controlplane import free_port
from tests.cluster.kubectl import Kubectl
from tests.operator.helpers import (
    assert_status_owners,
    condition,
    model_deployment,
    phase_is,
    with_managed_fields,
)
from tests.runtime.processes import get, start_server


@pytest.mark.usefixtures("operator", "cache_volume")
def test_runtime_report_makes_the_resource_ready(
    cluster: ControlPlane, kubectl: Kubectl, cache: Path, tmp_path: Path
):
    expected = {"cudaRuntime": "12.8"}  # this process has no CUDA torch
    kubectl.apply(model_deployment("echo", repo="org/tiny", expectedDependencies=expected))
    kubectl.wait_for("md", "echo", phase_is("Starting"))
    pod = kubectl.get("pods", None, "-l", "berth.dev/modeldeployment=echo")["items"][0]["metadata"][
        "name"
    ]
    token = cluster.service_account_token(kubectl.namespace, "berth-echo", seconds=600)
    kubeconfig = cluster.write_kubeconfig(tmp_path / "runtime.kubeconfig", token, kubectl.namespace)
    port = free_port()
    gate = tmp_path / "gate"
    server = start_server(
        cache,
        port,
        KUBECONFIG=str(kubeconfig),
        POD_NAME=pod,
        POD_NAMESPACE=kubectl.namespace,
        BERTH_SETTINGS=json.dumps({"loadSeconds": 1, "loadGate": str(gate)}),
        BERTH_API_KEYS="sk-never-in-status",
    )
    try:
        kubectl.wait_for("md", "echo", condition_is_runtime("Loading"), timeout=20)
        # the engine's own load step, while it is at it
        kubectl.wait_for("md", "echo", runtime_progress("waiting for the test's gate"), timeout=20)
        gate.touch()
        md = kubectl.wait_for("md", "echo", phase_is("Ready", reason="ModelServing"), timeout=30)
        runtime = md["status"]["runtime"]
        assert runtime["pod"] == pod and runtime["details"]["load_seconds"] >= 1
        assert "progress" not in runtime  # a load that is over has no step
        assert runtime["dependencies"]["python"]["version"]
        # the operator compares what the server reports with what its image should run
        mismatches = kubectl.wait_for(
            "md", "echo", lambda m: m["status"].get("mismatches"), what="mismatches"
        )["status"]["mismatches"]
        assert any(m.startswith("CudaRuntimeMismatch") for m in mismatches), mismatches
        assert "mismatches" not in runtime
        assert condition(md, "RuntimeReady")["reason"] == "ModelLoaded"
        assert get(port, "/readyz") == 200
        assert "sk-never-in-status" not in kubectl("get", "md", "echo", "-o", "yaml").stdout
        assert_status_owners(with_managed_fields(kubectl, "echo"))
    finally:
        server.terminate()
        output, _ = server.communicate(timeout=30)
    assert server.returncode == 0, output  # graceful shutdown on SIGTERM


def runtime_progress(step: str):
    def check(md: dict) -> bool:
        return ((md.get("status") or {}).get("runtime") or {}).get("progress") == step

    check.__name__ = f"runtime progress {step!r}"
    return check


def condition_is_runtime(state: str):
    def check(md: dict) -> bool:
        return ((md.get("status") or {}).get("runtime") or {}).get("state") in (state, "Ready")

    check.__name__ = f"runtime state {state}"
    return check


def test_serving_goes_on_while_the_api_server_is_away(cache: Path, tmp_path: Path):
    unreachable = tmp_path / "unreachable.kubeconfig"
    unreachable.write_text(
        "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: 'https://127.0.0.1:9'}}]\n"
        "users: [{name: u, user: {token: t}}]\ncontexts: [{name: c, context: {cluster: c, user: u, namespace: ns}}]\n"
        "current-context: c\n"
    )
    port = free_port()
    server = start_server(
        cache,
        port,
        KUBECONFIG=str(unreachable),
        POD_NAMESPACE="ns",
        POD_NAME="p",
    )
    try:
        deadline = time.monotonic() + 20
        while get(port, "/readyz") != 200:
            assert time.monotonic() < deadline, "the server must not wait for the API"
            time.sleep(0.1)
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/v1/echo",
            data=b"{}",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            assert response.status == 200
    finally:
        server.terminate()
        output, _ = server.communicate(timeout=30)
    assert "could not write status.runtime" in output


def post(port: int, path: str, body: dict, timeout: float = 30) -> int:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def test_a_stopping_server_is_not_ready_and_finishes_what_it_took(cache: Path):
    """SIGTERM: /readyz fails at once, requests are still taken while the pod leaves its
    Service's endpoints, and one in flight is answered before the process ends; a client that
    goes away frees what its request held."""
    port = free_port()
    server = start_server(
        cache, port, BERTH_DRAIN_SECONDS="2", BERTH_SHUTDOWN_SECONDS="20", BERTH_MAX_REQUESTS="2"
    )
    try:
        deadline = time.monotonic() + 30
        while get(port, "/readyz") != 200:
            assert time.monotonic() < deadline and server.poll() is None, server.stdout
            time.sleep(0.1)
        # a client that gives up: its request's slot is free at once, not after 60 s
        with pytest.raises(OSError):
            post(port, "/v1/slow", {"seconds": 60}, timeout=0.5)
        assert post(port, "/v1/slow", {"seconds": 0}) == 200
        assert post(port, "/v1/slow", {"seconds": 0}) == 200

        slow: list[int] = []
        caller = threading.Thread(
            target=lambda: slow.append(post(port, "/v1/slow", {"seconds": 4}))
        )
        caller.start()
        time.sleep(0.5)
        server.send_signal(signal.SIGTERM)
        stopped = time.monotonic()
        while get(port, "/readyz") != 503:
            assert time.monotonic() - stopped < 1.5, "still ready after SIGTERM"
            time.sleep(0.05)
        assert post(port, "/v1/echo", {"x": 1}) == 200, "still serving while draining"
        caller.join(timeout=30)
        assert slow == [200]
        assert server.wait(timeout=30) == 0
        assert time.monotonic() - stopped >= 3.5
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
