"""An operator upgrade restarts no model that did not change: the settings that are not the
pod's (the versions expected of each image, the operator's own tuning, its Lease, where it
copies keys, its NetworkPolicies) never enter a pod template."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from berth_operator.config import OperatorConfig
from berth_operator.controller.resource import ModelDeployment
from berth_operator.controller.workload import ServedModel, render_deployment

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").glob("*.yaml"))
SERVED = ServedModel(revision="main", resolved_revision="abc123", model_bytes=4 * 2**30)

#: a later operator: other expectations of the same images, other tuning, elsewhere
UPGRADED = OperatorConfig.from_env(
    {
        "BERTH_EXPECTED_DEPENDENCIES": (
            '{"vllm": {"vllm": "9.9"}, "nemo-asr": {"torch": "9.9"}, "pyannote": {"torch": "9.9"}}'
        ),
        "BERTH_RESYNC_SECONDS": "60",
        "BERTH_IMAGE_ROLLOUTS": "3",
        "BERTH_WORKERS": "16",
        "BERTH_DOWNLOAD_STALL_SECONDS": "900",
        "BERTH_LEADER_LEASE": "berth-leader",
        "BERTH_LEASE_SECONDS": "30",
        "BERTH_MODEL_KEYS_SECRET": "keys",
        "BERTH_NETWORK_POLICIES": "true",
        "BERTH_MODEL_CALLERS": '[{"podSelector": {}}]',
    }
)


def resources(path: Path) -> list[ModelDeployment]:
    found = []
    for doc in yaml.safe_load_all(path.read_text()):
        if doc and doc.get("kind") == "ModelDeployment":
            doc["metadata"] = {**doc["metadata"], "namespace": "models", "uid": "u1"}
            found.append(ModelDeployment.from_body(doc))
    return found


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_an_operator_upgrade_leaves_every_pod_template_as_it_was(path: Path):
    for md in resources(path):
        before = render_deployment(md, OperatorConfig(), SERVED)["spec"]["template"]
        after = render_deployment(md, UPGRADED, SERVED)["spec"]["template"]
        assert after == before, md.name


def test_pairing_a_diarization_model_leaves_the_asr_pod_template_as_it_was():
    """The pairing is read by the gateway, never by the pod: adding it restarts nothing."""
    body = {
        "apiVersion": "berth.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": "canary", "namespace": "models", "uid": "u1"},
        "spec": {"engine": "nemo-asr", "model": {"repo": "nvidia/canary-1b-v2"}},
    }
    paired = {**body, "spec": {**body["spec"], "asr": {"diarizationModel": "diarization"}}}
    before, after = (
        render_deployment(ModelDeployment.from_body(b), OperatorConfig(), SERVED)["spec"]
        for b in (body, paired)
    )
    assert after["template"] == before["template"]
