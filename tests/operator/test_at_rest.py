"""At rest the operator writes nothing: resyncs and restarts find every child and status as they
are, counted by the operator's write metric and by the API server's audit log."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from berth_operator.controller.quantities import canonical_quantity

from tests.cluster import ControlPlane
from tests.cluster.audit import Write, operator_writes
from tests.cluster.kubectl import Kubectl
from tests.operator.helpers import condition, model_deployment
from tests.operator_process import OperatorProcess, cache_volume_manifest, install_crd
from tests.unit.test_quantities import CANONICAL

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
NAMESPACE = "at-rest"
RESYNC_SECONDS = 2
#: a quiet stretch must hold this many full resyncs without a write
QUIET_RESYNCS = 3

pytestmark = pytest.mark.timeout(420)


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """A control plane of its own: no other test's resources or operator in its audit log."""
    with ControlPlane(workdir=tmp_path_factory.mktemp("at-rest")) as plane:
        install_crd(plane)
        plane.kubectl("create", "namespace", NAMESPACE)
        plane.apply(cache_volume_manifest("at-rest-cache", NAMESPACE, "berth-model-cache"))
        yield plane


@pytest.fixture(scope="module")
def operator(plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory):
    process = OperatorProcess(
        plane,
        tmp_path_factory.mktemp("at-rest-operator"),
        # prefetch on: its shared DaemonSets are written once, like every other child
        extra_env={"BERTH_RESYNC_SECONDS": str(RESYNC_SECONDS), "BERTH_IMAGE_PREFETCH": "true"},
    )
    process.start()
    try:
        yield process
    finally:
        process.stop()


def every_spec_field() -> list[dict]:
    """The examples, and resources that set every optional field they leave out."""
    examples = [yaml.safe_load(path.read_text()) for path in sorted(EXAMPLES.glob("*.yaml"))]
    asr = model_deployment(
        "asr-every-field",
        "nemo-asr",
        "nvidia/canary-1b-v2",
        replicas=2,
        image="registry.example/berth-nemo-asr:custom",
        resources={"gpus": 1, "cpu": "0.5", "memory": "1.5Gi"},
        scheduling={
            "nodeSelector": {"kubernetes.io/os": "linux"},
            "tolerations": [{"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}],
            "affinity": {
                "nodeAffinity": {
                    "preferredDuringSchedulingIgnoredDuringExecution": [
                        {
                            "weight": 1,
                            "preference": {
                                "matchExpressions": [
                                    {
                                        "key": "kubernetes.io/os",
                                        "operator": "In",
                                        "values": ["linux"],
                                    }
                                ]
                            },
                        }
                    ]
                }
            },
        },
        asr={"sourceLang": "de", "targetLang": "en", "pnc": False, "timestamps": True},
        auth={"apiKeySecretRef": {"name": "api-keys", "key": "keys"}},
        env=[
            {"name": "LOG_LEVEL", "value": "debug"},
            {
                "name": "FROM_SECRET",
                "valueFrom": {"secretKeyRef": {"name": "api-keys", "key": "keys"}},
            },
        ],
        expectedDependencies={"torch": "2.8.0"},
    )
    vllm = model_deployment(
        "vllm-every-field",
        "vllm",
        "org/llm",
        autoscaling={"minReplicas": 1, "maxReplicas": 2, "targetInFlight": 4},
        gateway={"balancing": "PrefixAffinity", "prefixChars": 256},
        resources={"gpus": 1, "cpu": 2, "memory": "16G"},
        vllm={
            "maxModelLen": 4096,
            "trustRemoteCode": True,
            "extraArgs": ["--enable-prefix-caching"],
        },
    )
    diarization = model_deployment(
        "diarization-every-field",
        diarization={"minSpeakers": 1, "maxSpeakers": 3},
        resources={"gpus": 0, "memory": "4096Mi"},
    )
    return [*examples, asr, vllm, diarization]


def unsettled(kubectl: Kubectl, count: int) -> list[str]:
    """The resources without a status for their generation with all their (kwok) replicas
    ready, each with its phase and Ready message."""
    items = kubectl.get("md")["items"]
    if len(items) != count:
        return [f"{len(items)} of {count} resources exist"]
    return [
        f"{md['metadata']['name']}: {status.get('phase')} ({ready.get('message')})"
        for md in items
        if (status := md.get("status") or {}).get("observedGeneration")
        != md["metadata"]["generation"]
        or status.get("phase") != "Starting"
        or status.get("readyReplicas") != md["spec"].get("replicas", 1)
        for ready in [condition(md, "Ready") if status.get("conditions") else {}]
    ]


def summary(writes: list[Write]) -> str:
    tally = Counter(f"{w.verb} {w.resource} {w.name}" for w in writes)
    return ", ".join(f"{what} x{n}" for what, n in tally.most_common(10))


def wait_for_reconciles(operator: OperatorProcess, total: float) -> None:
    deadline = time.monotonic() + 60
    while operator.metric("berth_reconciles_total") < total:
        assert time.monotonic() < deadline, f"fewer than {total:.0f} reconciles in 60 s"
        time.sleep(0.2)


def writes_while(
    plane: ControlPlane, operator: OperatorProcess, reconciles: float
) -> tuple[list[Write], float]:
    """The operator's writes while it makes `reconciles` more reconcile passes: as the API
    server's audit log recorded them, and as the operator's own metric counted them."""
    offset = plane.audit_log.stat().st_size
    counted = operator.metric("berth_api_writes_total")
    wait_for_reconciles(operator, operator.metric("berth_reconciles_total") + reconciles)
    return (
        operator_writes(plane.audit_log, offset),
        operator.metric("berth_api_writes_total") - counted,
    )


def test_resyncs_and_restarts_write_nothing_once_settled(
    plane: ControlPlane, operator: OperatorProcess
):
    kubectl = Kubectl(plane, NAMESPACE)
    plane.kubectl(
        "create", "secret", "generic", "hf-token", "-n", NAMESPACE, "--from-literal=token=hf_x"
    )
    plane.kubectl(
        "create", "secret", "generic", "api-keys", "-n", NAMESPACE, "--from-literal=keys=k1"
    )
    resources = every_spec_field()
    kubectl.apply(*resources)
    deadline = time.monotonic() + 120
    while waiting := unsettled(kubectl, len(resources)):
        assert time.monotonic() < deadline, f"not settled after 120 s: {waiting}"
        time.sleep(1)

    prefetch = kubectl.get("daemonsets", None, "-l", "app.kubernetes.io/component=image-prefetch")
    assert prefetch["items"], "prefetch is on: the images in use have their DaemonSets"

    # Settling may still write (a Job completing, an Event); then resyncs must find nothing.
    deadline = time.monotonic() + 120
    # Quiet means both counts are zero: a write the audit log has not flushed yet still shows
    # in the metric, and the next stretch's audit log.
    while any(counts := writes_while(plane, operator, QUIET_RESYNCS * len(resources))):
        writes, counted = counts
        assert time.monotonic() < deadline, (
            f"the operator keeps writing at rest, every {RESYNC_SECONDS} s resync: "
            f"{counted:.0f} by its metric; {summary(writes)}"
        )

    # A restart (an upgrade, a new leader) lists everything afresh: nothing to write either.
    operator.stop()
    offset = plane.audit_log.stat().st_size
    operator.start()
    wait_for_reconciles(operator, 2 * len(resources))  # the first pass, then a resync
    writes = operator_writes(plane.audit_log, offset)
    assert not writes, f"a restarted operator rewrote what was unchanged: {summary(writes)}"
    assert operator.metric("berth_api_writes_total") == 0


def test_rendered_quantities_are_the_forms_the_api_server_stores(plane: ControlPlane):
    """The canonical forms of tests/unit/test_quantities.py, as kube-apiserver answers them."""
    volumes = [
        {"name": f"v{i}", "emptyDir": {"sizeLimit": given}}
        for i, (given, _) in enumerate(CANONICAL)
    ]
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "quantities"},
        "spec": {"containers": [{"name": "c", "image": "x"}], "volumes": volumes},
    }
    created = yaml.safe_load(
        plane.kubectl(
            "create",
            "-n",
            NAMESPACE,
            "--dry-run=server",
            "-o",
            "yaml",
            "-f",
            "-",
            input=yaml.safe_dump(pod),
        ).stdout
    )
    limits = {v["name"]: v["emptyDir"] for v in created["spec"]["volumes"] if "emptyDir" in v}
    stored = [limits[f"v{i}"].get("sizeLimit", "0") for i in range(len(CANONICAL))]
    assert stored == [canonical_quantity(given) for given, _ in CANONICAL]
    assert stored == [expected for _, expected in CANONICAL]
