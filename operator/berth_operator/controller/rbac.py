"""ServiceAccount, Role and RoleBinding that let pods patch only the status they report to."""

from __future__ import annotations

from typing import Any

from berth_operator.api.modeldeployment import GROUP, PLURAL


def service_account_objects(
    name: str,
    namespace: str,
    labels: dict[str, str],
    owner_references: list[dict[str, Any]],
    status_of: list[str],
    extra_rules: list[dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """A ServiceAccount `name` allowed to get and patch the status of `status_of` (and
    `extra_rules`), nothing else."""
    metadata = {
        "name": name,
        "namespace": namespace,
        "labels": labels,
        "ownerReferences": owner_references,
    }
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": metadata},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": metadata,
            "rules": [
                {
                    "apiGroups": [GROUP],
                    "resources": [f"{PLURAL}/status"],
                    "resourceNames": sorted(status_of),
                    "verbs": ["get", "patch"],
                },
                *(extra_rules or []),
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": metadata,
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}],
        },
    ]
