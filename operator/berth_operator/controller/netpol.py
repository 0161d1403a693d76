"""NetworkPolicies of a ModelDeployment's pods: a model server takes connections only from the
callers the operator is configured with (the gateway, a metrics scraper) and opens none but to
the API server (its status report); a download pod takes none and reaches DNS, the hub and the
API server only."""

from __future__ import annotations

import ipaddress
from typing import Any
from urllib.parse import urlsplit

from berth_operator.api.metadata import COMPONENT_LABEL, DOWNLOAD_COMPONENT, DOWNLOAD_KEY_LABEL
from berth_operator.config import OperatorConfig
from berth_operator.controller.naming import (
    download_labels,
    runtime_account_name,
    server_labels,
    server_selector,
)
from berth_operator.controller.resource import ModelDeployment
from berth_operator.controller.workload import PORT_NAME
from berth_operator.kube import Kube

API_VERSION = "networking.k8s.io/v1"
KIND = "NetworkPolicy"
DNS = [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]
API_SERVER_SLICE = ("discovery.k8s.io/v1", "EndpointSlice")


def server_policy_name(name: str) -> str:
    return runtime_account_name(name)


def download_policy_name(name: str) -> str:
    return f"{runtime_account_name(name)}-download"


def _policy(
    md: ModelDeployment,
    name: str,
    labels: dict[str, str],
    pods: dict[str, Any],
    ingress: list[dict[str, Any]],
    egress: list[dict[str, Any]],
) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {
            "name": name,
            "namespace": md.namespace,
            "labels": labels,
            "ownerReferences": [md.owner_reference()],
        },
        "spec": {
            "podSelector": pods,
            "policyTypes": ["Ingress", "Egress"],
            "ingress": ingress,
            "egress": egress,
        },
    }


def render_server_policy(
    md: ModelDeployment, config: OperatorConfig, api_server: list[dict[str, Any]]
) -> dict[str, Any]:
    """The model server's pods: the configured callers on the serving port; out, the API
    server only. No caller configured: nothing reaches them through the pod network."""
    callers = list(config.model_callers)
    ingress = [{"from": callers, "ports": [{"port": PORT_NAME, "protocol": "TCP"}]}]
    return _policy(
        md,
        server_policy_name(md.name),
        server_labels(md.name, md.spec.engine),
        {"matchLabels": server_selector(md.name)},
        ingress if callers else [],
        api_server,
    )


def hub_ports(config: OperatorConfig) -> list[dict[str, Any]]:
    """HTTPS, and the port of the hub endpoint when it names another one."""
    ports = {443}
    if config.hf_endpoint:
        parts = urlsplit(config.hf_endpoint)
        ports.add(parts.port or (80 if parts.scheme == "http" else 443))
    return [{"port": port, "protocol": "TCP"} for port in sorted(ports)]


def render_download_policy(
    md: ModelDeployment,
    keys: list[str],
    config: OperatorConfig,
    api_server: list[dict[str, Any]],
) -> dict[str, Any]:
    """The pods of the resource's downloads (`keys`: the model's first, then its adapters'):
    nothing in; out, DNS and the hub's ports (anywhere: the hub's addresses are not known in
    advance) and the API server (the Job's progress)."""
    pods: dict[str, Any] = {"matchLabels": {COMPONENT_LABEL: DOWNLOAD_COMPONENT}}
    if len(keys) == 1:
        pods["matchLabels"][DOWNLOAD_KEY_LABEL] = keys[0]
    else:
        pods["matchExpressions"] = [
            {"key": DOWNLOAD_KEY_LABEL, "operator": "In", "values": sorted(keys)}
        ]
    egress = [{"ports": DNS}, {"ports": hub_ports(config)}, *api_server]
    labels = download_labels(keys[0])
    return _policy(md, download_policy_name(md.name), labels, pods, [], egress)


def api_server_rule(addresses: list[str], ports: list[int]) -> list[dict[str, Any]]:
    """One egress rule to these addresses on these ports; none when either is empty."""
    if not addresses or not ports:
        return []
    blocks = sorted({str(ipaddress.ip_network(a, strict=False)) for a in addresses})
    return [
        {
            "to": [{"ipBlock": {"cidr": block}} for block in blocks],
            "ports": [{"port": port, "protocol": "TCP"} for port in sorted(set(ports))],
        }
    ]


def configured_api_server(config: OperatorConfig) -> list[dict[str, Any]]:
    """The egress rule to the API server's configured addresses (ports 443 and 6443)."""
    return api_server_rule(list(config.api_server_cidrs), [443, 6443])


async def discover_api_server(kube: Kube, config: OperatorConfig) -> list[dict[str, Any]]:
    """How pods reach the API server: the configured addresses, else the endpoints of the
    `kubernetes` Service (policies are evaluated after a Service's address is translated to
    an endpoint's, by kube-router, Calico and Cilium alike)."""
    if config.api_server_cidrs:
        return configured_api_server(config)
    found = await kube.get(API_SERVER_SLICE, "default", "kubernetes") or {}
    addresses = [a for e in found.get("endpoints") or [] for a in e.get("addresses") or []]
    ports = [p["port"] for p in found.get("ports") or [] if p.get("port")]
    return api_server_rule(addresses, ports)
