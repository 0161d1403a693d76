"""The gateway's test parts: the gateway process, stand-in upstreams, and the API objects that
route to them (a ModelDeployment and EndpointSlices naming the upstreams' addresses)."""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from berth_operator.api.metadata import (
    API_VERSION,
    COMPONENT_LABEL,
    KIND,
    MANAGED_BY,
    SERVER_COMPONENT,
)
from berth_operator.controller.workload import PORT_NAME

from tests.cluster import ControlPlane
from tests.cluster.controlplane import free_port
from tests.cluster.processes import ManagedProcess

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent


def local_address() -> str | None:
    """An address of this machine that is not loopback: the API server refuses loopback
    addresses in EndpointSlices (as Kubernetes does for every cluster), and the gateway dials
    the addresses it finds there. None when the machine has no such address."""
    candidates = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe, contextlib.suppress(OSError):
        probe.connect(("192.0.2.1", 9))  # no packet is sent: this only picks a source
        candidates.append(probe.getsockname()[0])
    with contextlib.suppress(OSError):
        candidates += socket.gethostbyname_ex(socket.gethostname())[2]
    return next((a for a in candidates if not a.startswith(("127.", "169.254."))), None)


def http(
    method: str,
    url: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 60,
) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, data=body, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def wait_until(predicate: Any, what: str, timeout: float = 30) -> Any:
    """Polls `predicate()` until it returns something true; returns it."""
    deadline = time.monotonic() + timeout
    while True:
        if value := predicate():
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} after {timeout} s")
        time.sleep(0.1)


class GatewayProcess:
    """`python -m berth_gateway` against the test's control plane, on free loopback ports."""

    def __init__(
        self,
        cluster: ControlPlane,
        workdir: Path,
        *args: str,
        kubeconfig: Path | None = None,
        python_args: tuple[str, ...] = (),
    ) -> None:
        """`python_args` go before `-m berth_gateway` (a profiler, for example)."""
        self.port, self.metrics_port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = ManagedProcess.start(
            "gateway",
            [
                sys.executable,
                *python_args,
                "-m",
                "berth_gateway",
                "--bind=127.0.0.1",
                f"--port={self.port}",
                f"--metrics-port={self.metrics_port}",
                *args,
            ],
            workdir / f"gateway-{self.port}.log",
            env={
                **cluster.env(),
                "PYTHONUNBUFFERED": "1",
                **({"KUBECONFIG": str(kubeconfig)} if kubeconfig else {}),
            },
            tied_to_parent=True,
        )
        wait_until(self.ready, "ready gateway")

    def ready(self) -> bool:
        assert self.process.alive(), f"the gateway exited:\n{self.process.log_tail()}"
        try:
            return http("GET", self.url + "/readyz")[0] == 200
        except OSError:
            return False

    def models(self, key: str | None = None) -> dict[str, dict[str, Any]]:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        status, _, body = http("GET", self.url + "/v1/models", headers=headers)
        assert status == 200, body
        return {m["id"]: m for m in json.loads(body)["data"]}

    def wait_for_endpoints(self, model: str, count: int, key: str | None = None) -> None:
        wait_until(
            lambda: self.models(key).get(model, {}).get("endpoints") == count,
            f"{count} endpoints of {model} in the gateway",
        )

    def metrics(self) -> str:
        return http("GET", f"http://127.0.0.1:{self.metrics_port}/metrics")[2].decode()

    def stop(self) -> None:
        self.process.stop()


class StandIn:
    """tests/gateway/upstream.py on `address`: a vLLM-compatible stand-in."""

    def __init__(self, address: str, workdir: Path, name: str, api_key: str | None = None):
        self.address, self.port, self.name = address, free_port(), name
        self.url = f"http://{address}:{self.port}"
        log = workdir / f"upstream-{name}-{self.port}.log"
        self.process = ManagedProcess.start(
            name,
            [sys.executable, str(HERE / "upstream.py"), address, str(self.port), name]
            + ([api_key] if api_key else []),
            log,
            env={"PATH": "/usr/bin:/bin", "PYTHONUNBUFFERED": "1"},
            tied_to_parent=True,
        )
        wait_until(lambda: "ready" in log.read_text(), f"ready stand-in {name}")

    def stats(self) -> dict[str, Any]:
        return json.loads(http("GET", self.url + "/stats")[2])

    def release(self) -> None:
        http("POST", self.url + "/release")

    def kill(self) -> None:
        self.process._signal_group(signal.SIGKILL)
        assert self.process.popen is not None
        self.process.popen.wait(timeout=10)

    def stop(self) -> None:
        self.process.stop()


def model_deployment(name: str, engine: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": name},
        "spec": {"engine": engine, "model": {"repo": f"berth-test/{name}"}, **spec},
    }


def endpoint_slice(
    service: str, address: str, port: int, ready: bool = True, suffix: str = ""
) -> dict[str, Any]:
    """An EndpointSlice of the model's Service with one endpoint, labelled as the EndpointSlice
    controller labels the slices of Berth's Services (it copies the Service's labels)."""
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": f"{service}-{port}{suffix}",
            "labels": {
                **MANAGED_BY,
                COMPONENT_LABEL: SERVER_COMPONENT,
                "kubernetes.io/service-name": service,
                "endpointslice.kubernetes.io/managed-by": "berth-tests",
            },
        },
        "addressType": "IPv4",
        "ports": [{"name": PORT_NAME, "port": port, "protocol": "TCP"}],
        "endpoints": [{"addresses": [address], "conditions": {"ready": ready}}],
    }
