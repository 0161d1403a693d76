"""What the gateway's benchmarks share: a local control plane with the CRD, stand-in upstreams
(tests/gateway/upstream.py) on a non-loopback address, ModelDeployments routed to all of them by
EndpointSlices, and a gateway process watching them; and the CPU time of a process."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.cluster import ControlPlane
from tests.cluster.kubectl import Kubectl
from tests.gateway.parts import (
    GatewayProcess,
    StandIn,
    endpoint_slice,
    local_address,
    model_deployment,
)
from tests.operator_process import install_crd

NAMESPACE = "bench"


@dataclass
class Bench:
    work: Path
    address: str
    upstreams: list[StandIn]
    gateway: GatewayProcess


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process so far (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def routed_gateway(
    models: dict[str, dict[str, Any]],
    upstreams: int = 1,
    gateway_args: tuple[str, ...] = (),
    python_args: tuple[str, ...] = (),
) -> Iterator[Bench]:
    """`upstreams` stand-ins; each model (name: extra spec of a vllm ModelDeployment) routed to
    all of them; a gateway ready with every endpoint of every model."""
    address = local_address()
    if address is None:
        raise SystemExit("this machine has no address but loopback, which EndpointSlices refuse")
    with tempfile.TemporaryDirectory() as tmp, ControlPlane(workdir=Path(tmp) / "cluster") as plane:
        work = Path(tmp)
        install_crd(plane)
        plane.kubectl("create", "namespace", NAMESPACE)
        started: list[StandIn] = []
        gateway = None
        try:
            for index in range(upstreams):
                started.append(StandIn(address, work, chr(ord("a") + index)))
            Kubectl(plane, NAMESPACE).apply(
                *(model_deployment(name, "vllm", **spec) for name, spec in models.items()),
                *(
                    endpoint_slice(name, address, upstream.port)
                    for name in models
                    for upstream in started
                ),
            )
            gateway = GatewayProcess(
                plane,
                work,
                f"--namespace={NAMESPACE}",
                "--log-level=WARNING",
                *gateway_args,
                python_args=python_args,
            )
            for name in models:
                gateway.wait_for_endpoints(name, upstreams)
            yield Bench(work, address, started, gateway)
        finally:
            if gateway:
                gateway.stop()
            for upstream in started:
                upstream.stop()
