"""Two operator replicas: one reconciles, elected on a Lease; killed, the other takes over
within the Lease's duration (the chart's default) and reconciles what came meanwhile."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster import ControlPlane
from tests.cluster.kubectl import Kubectl
from tests.operator.helpers import model_deployment, phase_is
from tests.operator_process import OperatorProcess, cache_volume_manifest, install_crd

LEASE = "berth-leader"
LEASE_SECONDS = 10  # the chart's default


@pytest.fixture(scope="module")
def own_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """A control plane of its own: the session's has a standalone operator reconciling."""
    with ControlPlane(workdir=tmp_path_factory.mktemp("election-cluster")) as plane:
        install_crd(plane)
        yield plane


def replica(plane: ControlPlane, workdir: Path, name: str) -> OperatorProcess:
    (workdir / name).mkdir()
    process = OperatorProcess(
        plane,
        workdir / name,
        extra_env={
            "BERTH_LEADER_LEASE": LEASE,
            "BERTH_LEASE_SECONDS": str(LEASE_SECONDS),
            "POD_NAMESPACE": "default",
            "POD_NAME": name,
        },
    )
    process.start()
    return process


def holder(plane: ControlPlane) -> str:
    result = plane.kubectl(
        "get", "lease", LEASE, "-n", "default", "-o", "jsonpath={.spec.holderIdentity}", check=False
    )
    return result.stdout if result.returncode == 0 else ""


def test_one_replica_reconciles_and_the_other_takes_over_when_it_dies(
    own_cluster: ControlPlane, tmp_path: Path
) -> None:
    plane = own_cluster
    plane.kubectl("create", "namespace", "models")
    plane.apply(cache_volume_manifest("election-cache", "models", "berth-model-cache"))
    models = Kubectl(plane, "models")
    first = replica(plane, tmp_path, "operator-a")
    second = replica(plane, tmp_path, "operator-b")
    try:
        deadline = time.monotonic() + 30
        while holder(plane) not in ("operator-a", "operator-b"):
            assert time.monotonic() < deadline, "no replica took the Lease"
            time.sleep(0.2)
        leader, standby = (first, second) if holder(plane) == "operator-a" else (second, first)
        models.apply(model_deployment("before"))
        models.wait_for("md", "before", phase_is("Starting"), timeout=60)
        assert standby.metric("berth_api_writes_total") == 0, "the standby wrote"

        leader.kill()  # no release: the standby waits out the Lease
        killed = time.monotonic()
        models.apply(model_deployment("meanwhile"))
        models.wait_for("md", "meanwhile", phase_is("Starting"), timeout=LEASE_SECONDS + 30)
        took = time.monotonic() - killed
        assert holder(plane) == standby.log.parent.name
        assert took < 15, f"the standby took over after {took:.1f} s"
        print(f"handover after a SIGKILL: {took:.1f} s (Lease {LEASE_SECONDS} s)")
    finally:
        first.stop()
        second.stop()
