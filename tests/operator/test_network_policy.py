"""The NetworkPolicies Berth makes for a model's pods, as the real API server stores them: they
select exactly the model's server pods and its download pods, and let out only what each needs."""

from __future__ import annotations

import pytest
from berth_operator.api.metadata import COMPONENT_LABEL, MODEL_DEPLOYMENT_LABEL, SERVER_COMPONENT

from tests.cluster import ControlPlane
from tests.cluster.kubectl import Kubectl
from tests.operator.helpers import download_job_of, model_deployment
from tests.operator_process import GATEWAY_PEER

pytestmark = pytest.mark.usefixtures("operator", "cache_volume")


def selected(kubectl: Kubectl, policy: dict) -> list[str]:
    """Names of the pods the policy's podSelector selects, asked of the API server."""
    labels = policy["spec"]["podSelector"]["matchLabels"]
    selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
    return sorted(p["metadata"]["name"] for p in kubectl.get("pods", None, "-l", selector)["items"])


def test_each_model_gets_policies_for_its_server_and_its_download(
    cluster: ControlPlane, kubectl: Kubectl
):
    kubectl.apply(model_deployment("chat", engine="pyannote", replicas=2))
    server = kubectl.wait_for("networkpolicy", "berth-chat", lambda p: True)
    download = kubectl.get("networkpolicy", "berth-chat-download")
    md = kubectl.get("md", "chat")
    for policy in (server, download):
        assert policy["metadata"]["ownerReferences"][0]["uid"] == md["metadata"]["uid"]
        assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]

    # only the gateway's pods, on the serving port; out, only the API server
    assert server["spec"]["ingress"] == [
        {"from": [GATEWAY_PEER], "ports": [{"port": "http", "protocol": "TCP"}]}
    ]
    (api,) = server["spec"]["egress"]
    assert api["to"] == [{"ipBlock": {"cidr": f"{cluster.address}/32"}}]
    assert [p["port"] for p in api["ports"]] == [443, 6443]

    # the download: nothing in; out, DNS, the hub, the API server
    assert "ingress" not in download["spec"] or download["spec"]["ingress"] == []
    assert [r.get("to") for r in download["spec"]["egress"]] == [None, None, api["to"]]

    # the selectors pick exactly the model's pods (kwok runs them here)
    kubectl.wait_for("deployment", "chat", lambda d: (d.get("status") or {}).get("replicas") == 2)
    servers = kubectl.get("pods", None, "-l", f"{MODEL_DEPLOYMENT_LABEL}=chat")["items"]
    names = sorted(
        p["metadata"]["name"]
        for p in servers
        if p["metadata"]["labels"].get(COMPONENT_LABEL) == SERVER_COMPONENT
    )
    assert len(names) == 2 and selected(kubectl, server) == names
    job = download_job_of(kubectl, "chat")
    downloads = kubectl.get("pods", None, "-l", f"job-name={job}")["items"]
    assert downloads and selected(kubectl, download) == sorted(
        p["metadata"]["name"] for p in downloads
    )
