"""Every permission of every service account the chart makes, listed and reviewed as a
snapshot; what touches Secrets checked rule by rule, then asked of the real API server."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from tests.chart.test_chart import CHART, KUBE_VERSION, RENDERINGS, SNAPSHOTS
from tests.cluster import ControlPlane
from tests.cluster.helm import helm
from tests.cluster.kubectl import Kubectl

RELEASE_NAMESPACE = "berth-system"
OPERATOR = "berth"
GATEWAY = "berth-gateway"


def rendered(*sets: str, release: str = "berth", namespace: str = RELEASE_NAMESPACE) -> list[dict]:
    args = ["template", release, str(CHART), "--namespace", namespace]
    args += ["--kube-version", KUBE_VERSION]
    for value in sets:
        args += ["--set", value]
    return [o for o in yaml.safe_load_all(helm(None, *args).stdout) if o]


def rules_by_account(objects: list[dict]) -> dict[str, list[tuple[str, ...]]]:
    """account -> (scope, apiGroup, resource, verbs, resourceNames), one row per resource; the
    scope is the Role's namespace, or * for a ClusterRole."""
    roles = {(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]): o for o in objects}
    table: dict[str, list[tuple[str, ...]]] = {}
    for binding in objects:
        if binding["kind"] not in ("RoleBinding", "ClusterRoleBinding"):
            continue
        ref = binding["roleRef"]
        namespace = binding["metadata"].get("namespace") if ref["kind"] == "Role" else None
        role = roles[(ref["kind"], namespace, ref["name"])]
        for subject in binding["subjects"]:
            rows = table.setdefault(subject["name"], [])
            for rule in role["rules"]:
                for group in rule["apiGroups"]:
                    for resource in rule["resources"]:
                        rows.append(
                            (
                                namespace or "*",
                                group or "core",
                                resource,
                                ",".join(rule["verbs"]),
                                ",".join(rule.get("resourceNames", [])) or "-",
                            )
                        )
    return {account: sorted(set(rows)) for account, rows in sorted(table.items())}


@pytest.mark.parametrize("name", ["defaults", "namespaced-with-replicas"])
def test_every_rule_of_every_account_matches_its_snapshot(name: str):
    table = rules_by_account(rendered(*RENDERINGS[name]))
    text = "".join(
        f"{account}\n" + "".join("  " + "  ".join(row) + "\n" for row in rows)
        for account, rows in table.items()
    )
    snapshot = SNAPSHOTS / f"rbac-{name}.txt"
    if os.environ.get("BERTH_UPDATE_SNAPSHOTS") == "1":
        snapshot.write_text(text)
    assert snapshot.read_text() == text, (
        f"a permission changed; review it, then BERTH_UPDATE_SNAPSHOTS=1 pytest {__file__}"
    )


@pytest.mark.parametrize("name", ["defaults", "namespaced-with-replicas"])
def test_no_account_lists_secrets_and_the_gateway_reads_only_its_own(name: str):
    table = rules_by_account(rendered(*RENDERINGS[name], "gateway.keysSecret=client-keys"))
    rows = [(account, *row) for account, found in table.items() for row in found]
    assert not [r for r in rows if "*" in r[2:]], "no wildcard group, resource or verb"
    secrets = [r for r in rows if r[3] == "secrets"]
    for account, scope, _, _, verbs, names in secrets:
        assert names != "-" or verbs == "get", (account, scope, verbs)
    gateway = {
        (scope, verbs, names) for account, scope, *_, verbs, names in secrets if account == GATEWAY
    }
    assert gateway == {(RELEASE_NAMESPACE, "get,list,watch", "berth-model-keys,client-keys")}
    operator = {
        (scope, verbs, names) for account, scope, *_, verbs, names in secrets if account == OPERATOR
    }
    assert (RELEASE_NAMESPACE, "get,patch", "berth-model-keys") in operator
    reads = {scope for scope, verbs, names in operator if names == "-"}
    assert reads == ({"team-a", "team-b"} if name != "defaults" else {"*"})


@pytest.fixture
def installed_rbac(cluster: ControlPlane, kubectl: Kubectl) -> Iterator[Any]:
    """Installs the chart's accounts and RBAC (nothing else) into the real API server, under a
    release name of its own; yields a function that installs it with some values."""
    installed: list[dict] = []

    def install(*sets: str) -> str:
        release = f"rbac-{uuid.uuid4().hex[:6]}"
        kinds = ("ServiceAccount", "Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding")
        objects = [
            o
            for o in rendered(*sets, release=release, namespace=kubectl.namespace)
            if o["kind"] in kinds
        ]
        for namespace in {o["metadata"].get("namespace", kubectl.namespace) for o in objects}:
            Kubectl(kubectl.plane, namespace).apply(
                *[o for o in objects if o["metadata"].get("namespace", namespace) == namespace]
            )
        installed.extend(objects)
        return release

    yield install
    for obj in installed:  # what the test namespace's deletion does not take with it
        namespace = obj["metadata"].get("namespace")
        if namespace != kubectl.namespace:
            where = ["-n", namespace] if namespace else []
            kubectl.plane.kubectl(
                "delete", obj["kind"], obj["metadata"]["name"], *where, "--ignore-not-found"
            )


def can(kubectl: Kubectl, account: str, verb: str, what: str, namespace: str) -> bool:
    """`kubectl auth can-i`, as the account, answered by the API server's authorizer."""
    result = kubectl(
        "auth",
        "can-i",
        verb,
        what,
        "-n",
        namespace,
        f"--as=system:serviceaccount:{kubectl.namespace}:{account}",
        check=False,
    )
    return result.stdout.strip() == "yes"


def test_the_api_server_denies_the_gateway_every_secret_but_its_own(
    kubectl: Kubectl, installed_rbac: Any
):
    release = installed_rbac("gateway.keysSecret=client-keys")
    gateway, operator, ns = f"{release}-berth-gateway", f"{release}-berth", kubectl.namespace
    model_keys = f"secret/{release}-berth-model-keys"
    assert can(kubectl, gateway, "get", model_keys, ns)
    assert can(kubectl, gateway, "watch", "secret/client-keys", ns)
    for verb, what, where in (
        ("get", "secret/x", "kube-system"),
        ("get", "secret/x", ns),
        ("list", "secrets", ns),
        ("patch", model_keys, ns),
    ):
        assert not can(kubectl, gateway, verb, what, where), (verb, what, where)
    # the operator: get (never list) where models are, and the copy by name
    assert can(kubectl, operator, "patch", model_keys, ns)
    assert not can(kubectl, operator, "patch", "secret/client-keys", ns)
    assert not can(kubectl, operator, "list", "secrets", "kube-system")
    assert can(kubectl, operator, "get", "secret/x", "kube-system")  # all namespaces: documented


def test_watched_namespaces_keep_the_operator_out_of_the_others(
    kubectl: Kubectl, installed_rbac: Any
):
    kubectl("create", "namespace", f"{kubectl.namespace}-team", check=False)
    team = f"{kubectl.namespace}-team"
    try:
        release = installed_rbac(f"watchNamespaces={{{team}}}")
        operator = f"{release}-berth"
        assert can(kubectl, operator, "get", "secret/x", team)
        assert not can(kubectl, operator, "get", "secret/x", "kube-system")
        assert not can(kubectl, f"{release}-berth-gateway", "get", "secret/x", team)
    finally:
        kubectl("delete", "namespace", team, "--wait=false", check=False)
