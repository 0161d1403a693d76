"""ServiceAccount, Role and RoleBinding that let pods patch only the status they report to."""

from __future__ import annotations

from typing import Any

from berth_operator.api.metadata import GROUP, PLURAL


def role(
    name: str,
    namespace: str,
    labels: dict[str, str],
    owner_references: list[dict[str, Any]],
    rules: list[dict[str, Any]],
) -> dict[str, Any]:
    """A Role with exactly `rules`."""
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": _metadata(name, namespace, labels, owner_references),
        "rules": rules,
    }


def status_role(
    name: str,
    namespace: str,
    labels: dict[str, str],
    owner_references: list[dict[str, Any]],
    status_of: str,
) -> dict[str, Any]:
    """A Role that may get and patch the status of the ModelDeployment `status_of`, and read
    that one resource (a vLLM server follows its LoRA adapters); nothing else."""
    status = {
        "apiGroups": [GROUP],
        "resources": [f"{PLURAL}/status"],
        "resourceNames": [status_of],
        "verbs": ["get", "patch"],
    }
    read = {
        "apiGroups": [GROUP],
        "resources": [PLURAL],
        "resourceNames": [status_of],
        "verbs": ["get", "list", "watch"],
    }
    return role(name, namespace, labels, owner_references, [status, read])


def account_and_binding(
    name: str, namespace: str, labels: dict[str, str], owner_references: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """A ServiceAccount `name` bound to the Role of the same name."""
    metadata = _metadata(name, namespace, labels, owner_references)
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": metadata},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": metadata,
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}],
        },
    ]


def role_owner_reference(role: dict[str, Any]) -> dict[str, Any]:
    """An ownerReference to an applied Role, so its account and binding go when it goes."""
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "name": role["metadata"]["name"],
        "uid": role["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": False,
    }


def _metadata(
    name: str, namespace: str, labels: dict[str, str], owner_references: list[dict[str, Any]]
) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": namespace,
        "labels": labels,
        "ownerReferences": owner_references,
    }
