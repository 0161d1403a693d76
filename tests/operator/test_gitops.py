"""GitOps: re-applying changes nothing, the operator owns only status, kubectl wait and kstatus work."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.cluster import ControlPlane
from tests.cluster.binaries import Binaries
from tests.cluster.kubectl import Kubectl
from tests.operator.helpers import model_deployment, phase_is, report_runtime

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

pytestmark = pytest.mark.usefixtures("operator", "cache_volume")


def kstatus(kubectl: Kubectl, *names: str) -> dict[str, dict]:
    """What Flux's health check (kstatus) says of each resource."""
    objects = kubectl("get", "md", *names, "-o", "json").stdout
    result = subprocess.run(
        [str(Binaries.from_cache().kstatus)],
        input=objects,
        capture_output=True,
        text=True,
        check=True,
    )
    return {r["name"]: r for r in json.loads(result.stdout)}


def test_applying_the_examples_twice_changes_nothing(kubectl: Kubectl):
    kubectl("create", "secret", "generic", "hf-token", "--from-literal=token=hf_x")
    kubectl("apply", "-f", str(EXAMPLES))
    for name in ("qwen3-vl", "canary", "diarization"):
        kubectl.wait_for("md", name, phase_is("Starting"))
    diff = kubectl("diff", "-f", str(EXAMPLES), check=False)
    assert diff.returncode == 0, f"kubectl diff is not empty:\n{diff.stdout}{diff.stderr}"
    again = kubectl("apply", "-f", str(EXAMPLES)).stdout
    assert again.count("unchanged") == 3, again
    for name in ("qwen3-vl", "canary", "diarization"):
        fields = json.loads(
            kubectl("get", "md", name, "-o", "json", "--show-managed-fields").stdout
        )
        ours = [m for m in fields["metadata"]["managedFields"] if m["manager"] == "berth-operator"]
        assert ours and all(m.get("subresource") == "status" for m in ours), ours


def test_kubectl_wait_and_kstatus_follow_readiness(
    cluster: ControlPlane, kubectl: Kubectl, tmp_path
):
    kubectl.apply(model_deployment("served"), model_deployment("gated", repo="berth-test/gated"))
    kubectl.wait_for("md", "served", phase_is("Starting"))
    assert kstatus(kubectl, "served")["served"]["status"] == "InProgress"

    pod = kubectl.get("pods", None, "-l", "berth.dev/modeldeployment=served")["items"][0][
        "metadata"
    ]["name"]
    report_runtime(kubectl, cluster, "served", {"state": "Ready", "pod": pod}, tmp_path)
    waited = kubectl("wait", "--for=condition=Ready", "md/served", "--timeout=30s", check=False)
    assert waited.returncode == 0, waited.stderr
    assert kstatus(kubectl, "served")["served"]["status"] == "Current"

    kubectl.wait_for("md", "gated", phase_is("Failed", reason="AuthRequired"))
    stalled = kstatus(kubectl, "gated")["gated"]
    assert stalled["status"] == "Failed", stalled
    assert "token" in stalled["message"]

    kubectl("scale", "md", "served", "--replicas=0")
    kubectl.wait_for("md", "served", phase_is("Stopped"))
    assert kstatus(kubectl, "served")["served"]["status"] == "Current"
