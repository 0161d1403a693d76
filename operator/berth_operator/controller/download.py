"""The download Job: one per (repo, revision, patterns, token, re-download), shared by resources."""

from __future__ import annotations

import json
from typing import Any

from berth_operator.config import OperatorConfig
from berth_operator.controller.cache import cache_claim_name
from berth_operator.controller.naming import download_job_name, download_key, download_labels
from berth_operator.controller.rbac import account_and_binding, role_owner_reference, status_role
from berth_operator.controller.resource import ModelDeployment
from berth_operator.controller.security import (
    restricted_container_security,
    restricted_pod_security,
)

DOWNLOAD_CONTAINER = "download"
PERMANENT_FAILURE_EXIT_CODE = 2  # the downloader's exit code for errors a retry cannot fix
DOWNLOAD_RETRIES = 4


def md_download_key(md: ModelDeployment) -> str:
    """The download key of a resource: what it downloads, with which token, and re-download."""
    token = md.spec.model.token_secret_ref
    token_id = f"{token.name}/{token.key}" if token else None
    return download_key(md.spec.model, "|".join(filter(None, [md.redownload_token, token_id])))


def md_download_job_name(md: ModelDeployment) -> str:
    return download_job_name(md.spec.model, md_download_key(md))


def _env(md: ModelDeployment, config: OperatorConfig) -> list[dict[str, Any]]:
    model = md.spec.model
    env: list[dict[str, Any]] = [
        {"name": "BERTH_MODEL_REPO", "value": model.repo},
        {"name": "BERTH_MODEL_REVISION", "value": model.revision},
        {"name": "BERTH_ALLOW_PATTERNS", "value": json.dumps(model.allow_patterns or [])},
        {"name": "BERTH_IGNORE_PATTERNS", "value": json.dumps(model.ignore_patterns or [])},
        {"name": "BERTH_FORCE", "value": "1" if md.redownload_token else "0"},
        {"name": "MODEL_CACHE_DIR", "value": config.cache_mount_path},
        {"name": "HF_HUB_CACHE", "value": config.cache_mount_path},
        {"name": "HF_HUB_DISABLE_TELEMETRY", "value": "1"},
        {"name": "HOME", "value": "/tmp"},
        {"name": "BERTH_STALL_SECONDS", "value": str(config.download_stall_seconds)},
        {
            "name": "BERTH_JOB_NAME",
            "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['job-name']"}},
        },
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
    ]
    if config.hf_endpoint:
        env.append({"name": "HF_ENDPOINT", "value": config.hf_endpoint})
    if token := model.token_secret_ref:
        env.append(
            {
                "name": "HF_TOKEN",
                "valueFrom": {"secretKeyRef": {"name": token.name, "key": token.key}},
            }
        )
    return env


def render_download_job(
    md: ModelDeployment, sharers: list[ModelDeployment], config: OperatorConfig
) -> dict[str, Any]:
    """The Job for `md`'s download, owned by every resource in `sharers` (md included)."""
    name = md_download_job_name(md)
    labels = download_labels(md_download_key(md))
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": md.namespace,
            "labels": labels,
            "ownerReferences": download_owner_references(sharers),
        },
        "spec": {
            "backoffLimit": DOWNLOAD_RETRIES,
            "podFailurePolicy": {
                "rules": [
                    {
                        "action": "FailJob",
                        "onExitCodes": {
                            "containerName": DOWNLOAD_CONTAINER,
                            "operator": "In",
                            "values": [PERMANENT_FAILURE_EXIT_CODE],
                        },
                    }
                ]
            },
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "restartPolicy": "Never",
                    "serviceAccountName": name,
                    "enableServiceLinks": False,
                    "securityContext": restricted_pod_security(),
                    "containers": [
                        {
                            "name": DOWNLOAD_CONTAINER,
                            "image": config.downloader_image,
                            "command": ["python", "-m", "berth_runtime.download"],
                            "env": _env(md, config),
                            "resources": {
                                "requests": {"cpu": "500m", "memory": "512Mi"},
                                "limits": {"memory": "2Gi"},
                            },
                            "securityContext": restricted_container_security(),
                            "terminationMessagePolicy": "FallbackToLogsOnError",
                            "volumeMounts": [
                                {"name": "cache", "mountPath": config.cache_mount_path},
                                {"name": "tmp", "mountPath": "/tmp"},
                            ],
                        }
                    ],
                    "volumes": [
                        {
                            "name": "cache",
                            "persistentVolumeClaim": {"claimName": cache_claim_name(md, config)},
                        },
                        {"name": "tmp", "emptyDir": {}},
                    ],
                },
            },
        },
    }


def download_owner_references(sharers: list[ModelDeployment]) -> list[dict[str, Any]]:
    """Every sharing resource owns the Job: it lives while one of them does."""
    return [s.owner_reference(controller=False) for s in sorted(sharers, key=lambda s: s.name)]


def render_download_role(md: ModelDeployment, sharers: list[ModelDeployment]) -> dict[str, Any]:
    """What the download pod may do: read its Job, patch the sharers' status; nothing else.

    The sharers own the Role; the pod's ServiceAccount and RoleBinding are owned by the Role,
    so a new sharer changes one object, and all three go when the last sharer does.
    """
    name = md_download_job_name(md)
    return status_role(
        name=name,
        namespace=md.namespace,
        labels=download_labels(md_download_key(md)),
        owner_references=download_owner_references(sharers),
        status_of=[s.name for s in sharers],
        extra_rules=[
            {
                "apiGroups": ["batch"],
                "resources": ["jobs"],
                "resourceNames": [name],
                "verbs": ["get"],
            }
        ],
    )


def render_download_identity(md: ModelDeployment, role: dict[str, Any]) -> list[dict[str, Any]]:
    """The download pod's ServiceAccount and RoleBinding, owned by its applied Role."""
    return account_and_binding(
        name=md_download_job_name(md),
        namespace=md.namespace,
        labels=download_labels(md_download_key(md)),
        owner_references=[role_owner_reference(role)],
    )
