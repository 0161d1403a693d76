"""NetworkPolicies of a model's pods: who may call the server, where each pod may connect."""

from __future__ import annotations

from berth_operator.config import OperatorConfig
from berth_operator.controller.download import (
    adapter_downloads,
    download_identity,
    render_download_job,
)
from berth_operator.controller.netpol import (
    api_server_rule,
    hub_ports,
    render_download_policy,
    render_server_policy,
)
from berth_operator.controller.workload import ServedModel, render_deployment

from tests.unit.factories import md

GATEWAY = {
    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "berth-system"}},
    "podSelector": {"matchLabels": {"app.kubernetes.io/name": "berth-gateway"}},
}
API = api_server_rule(["10.96.0.1", "192.168.1.10"], [443, 6443])


def selects(selector: dict, labels: dict) -> bool:
    """A label selector's verdict on `labels` (matchLabels, and matchExpressions with In)."""
    expressions = selector.get("matchExpressions") or []
    assert all(e["operator"] == "In" for e in expressions)
    return all(labels.get(k) == v for k, v in selector["matchLabels"].items()) and all(
        labels.get(e["key"]) in e["values"] for e in expressions
    )


def test_the_server_takes_its_callers_on_its_port_and_reaches_only_the_api_server():
    resource = md(engine="vllm")
    config = OperatorConfig(network_policies=True, model_callers=(GATEWAY,))
    policy = render_server_policy(resource, config, API)
    spec = policy["spec"]
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    assert spec["ingress"] == [{"from": [GATEWAY], "ports": [{"port": "http", "protocol": "TCP"}]}]
    assert spec["egress"] == API
    assert API[0]["to"] == [
        {"ipBlock": {"cidr": "10.96.0.1/32"}},
        {"ipBlock": {"cidr": "192.168.1.10/32"}},
    ]
    pod = render_deployment(resource, config, ServedModel("main", None, None))["spec"]["template"]
    assert selects(spec["podSelector"], pod["metadata"]["labels"])
    assert [p["name"] for p in pod["spec"]["containers"][0]["ports"]] == ["http"]
    assert policy["metadata"]["ownerReferences"][0]["uid"] == resource.uid


def test_no_caller_configured_means_no_way_in():
    spec = render_server_policy(md(), OperatorConfig(network_policies=True), API)["spec"]
    assert spec["ingress"] == [] and "Ingress" in spec["policyTypes"]


def test_the_download_takes_nothing_and_reaches_dns_the_hub_and_the_api_server():
    resource = md(engine="pyannote")
    config = OperatorConfig(network_policies=True, hf_endpoint="http://hf-mirror.internal:8080")
    download = download_identity(resource)
    spec = render_download_policy(resource, [download.key], config, API)["spec"]
    assert spec["ingress"] == []
    ports = [rule["ports"] for rule in spec["egress"]]
    assert ports[0] == [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]
    assert ports[1] == [{"port": 443, "protocol": "TCP"}, {"port": 8080, "protocol": "TCP"}]
    assert spec["egress"][2:] == API
    job = render_download_job(resource, download, [resource], config)
    assert selects(spec["podSelector"], job["spec"]["template"]["metadata"]["labels"])
    assert hub_ports(OperatorConfig()) == [{"port": 443, "protocol": "TCP"}]


def test_the_download_policy_covers_the_adapters_downloads_and_no_other():
    adapters = [{"name": "sql", "repo": "acme/sql-lora"}, {"name": "fr", "repo": "acme/fr-lora"}]
    resource = md(engine="vllm", resources={"gpus": 1}, vllm={"adapters": adapters})
    config = OperatorConfig(network_policies=True)
    downloads = [download_identity(resource), *adapter_downloads(resource)]
    spec = render_download_policy(resource, [d.key for d in downloads], config, API)["spec"]
    for download in downloads:
        job = render_download_job(resource, download, [resource], config)
        assert selects(spec["podSelector"], job["spec"]["template"]["metadata"]["labels"])
    other = download_identity(md(name="other", repo="acme/other"))
    assert not selects(spec["podSelector"], other.labels)


def test_policies_are_read_from_the_environment():
    config = OperatorConfig.from_env(
        {
            "BERTH_NETWORK_POLICIES": "true",
            "BERTH_MODEL_CALLERS": '[{"podSelector": {}}]',
            "BERTH_API_SERVER_CIDRS": "10.0.0.0/24,10.0.1.5/32",
        }
    )
    assert config.network_policies and config.model_callers == ({"podSelector": {}},)
    assert config.api_server_cidrs == ("10.0.0.0/24", "10.0.1.5/32")
    assert api_server_rule([], [443]) == [] and api_server_rule(["10.0.0.1"], []) == []
