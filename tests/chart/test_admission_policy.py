"""The chart's admission policy on the real API server: what a tenant may put in a
ModelDeployment, refused before anything is stored, with the field named."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from tests.chart.test_chart import render
from tests.cluster import ControlPlane
from tests.cluster.kubectl import Kubectl
from tests.gateway.parts import wait_until
from tests.operator.helpers import model_deployment

TENANT_LABEL = "berth.dev/tenant-limits-test"
#: the label as a --set key: its dots escaped
TENANT_LABEL_KEY = TENANT_LABEL.replace(".", "\\.")


@pytest.fixture
def policy(cluster: ControlPlane, crd: None, kubectl: Kubectl) -> Iterator[list[dict[str, Any]]]:
    """The chart's policy, bound to this test's namespace only (the control plane is shared)."""
    kubectl("label", "namespace", kubectl.namespace, f"{TENANT_LABEL}=yes")
    rendered = render(
        "admissionPolicy.enabled=true",
        "admissionPolicy.allowedImagePrefixes={registry.example/berth/}",
        "admissionPolicy.allowedSecretNames={hf-token}",
        "admissionPolicy.allowedCacheClaims={team-cache}",
        f"admissionPolicy.namespaceSelector.matchLabels.{TENANT_LABEL_KEY}=yes",
    )
    objects = [
        o
        for o in yaml.safe_load_all(rendered)
        if o and o["kind"].startswith("ValidatingAdmissionPolicy")
    ]
    assert [o["kind"] for o in objects] == [
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
    ]
    kubectl.apply(*objects)
    try:
        yield objects
    finally:
        for obj in objects:
            kubectl("delete", obj["kind"], obj["metadata"]["name"], "--ignore-not-found")


def refusal(kubectl: Kubectl, manifest: dict[str, Any]) -> str:
    """The API server's answer to a server-side dry run of `manifest` ("" when accepted)."""
    result = kubectl(
        "apply", "--dry-run=server", "-f", "-", input=yaml.safe_dump(manifest), check=False
    )
    return "" if result.returncode == 0 else result.stderr


def test_the_policy_refuses_what_a_tenant_may_not_choose(
    kubectl: Kubectl, policy: list[dict[str, Any]]
) -> None:
    foreign_image = model_deployment("foreign", image="attacker.example/miner:latest")
    # a new binding takes a moment to reach the API server's admission
    message = wait_until(lambda: refusal(kubectl, foreign_image), "the policy in effect")
    assert "spec.image: attacker.example/miner:latest is not from a registry" in message
    assert "registry.example/berth/" in message

    cases = {
        "spec.model.tokenSecretRef.name: Secret other-team": model_deployment(
            "token",
            model={
                "repo": "pyannote/speaker-diarization-3.1",
                "tokenSecretRef": {"name": "other-team", "key": "token"},
            },
        ),
        "spec.env[].valueFrom.secretKeyRef.name": model_deployment(
            "env",
            env=[
                {
                    "name": "STOLEN",
                    "valueFrom": {"secretKeyRef": {"name": "db-password", "key": "pw"}},
                }
            ],
        ),
        "spec.vllm.adapters[].tokenSecretRef.name": model_deployment(
            "adapter-token",
            engine="vllm",
            model={"repo": "Qwen/Qwen3-8B"},
            vllm={
                "adapters": [
                    {
                        "name": "sql",
                        "repo": "acme/sql-lora",
                        "tokenSecretRef": {"name": "other-team", "key": "token"},
                    }
                ]
            },
        ),
        "spec.cache.claimName: claim someone-elses-data": model_deployment(
            "claim", cache={"claimName": "someone-elses-data"}
        ),
        "spec.scheduling.priorityClassName: system-node-critical": model_deployment(
            "priority", scheduling={"priorityClassName": "system-node-critical"}
        ),
        "spec.scheduling.runtimeClassName: unconfined": model_deployment(
            "runtime", scheduling={"runtimeClassName": "unconfined"}
        ),
    }
    for words, manifest in cases.items():
        answer = refusal(kubectl, manifest)
        assert words in answer, (words, answer)

    allowed = model_deployment(
        "allowed",
        image="registry.example/berth/pyannote:1.0",
        model={
            "repo": "pyannote/speaker-diarization-3.1",
            "tokenSecretRef": {"name": "hf-token", "key": "token"},
        },
        cache={"claimName": "team-cache"},
    )
    assert refusal(kubectl, allowed) == ""
    assert refusal(kubectl, model_deployment("plain")) == ""
