"""Deterministic names and common labels of everything the operator creates."""

from __future__ import annotations

import hashlib
import json
import re

from berth_operator.api.metadata import (
    COMPONENT_LABEL,
    DOWNLOAD_COMPONENT,
    DOWNLOAD_KEY_LABEL,
    ENGINE_LABEL,
    INSTANCE_LABEL,
    MANAGED_BY,
    MODEL_DEPLOYMENT_LABEL,
    NAME_LABEL,
    SERVER_COMPONENT,
)
from berth_operator.api.modeldeployment import ModelSource


def server_labels(name: str, engine: str) -> dict[str, str]:
    """Labels of a ModelDeployment's Deployment, pods, Service and RBAC objects."""
    return {
        **MANAGED_BY,
        NAME_LABEL: "berth-model-server",
        INSTANCE_LABEL: name,
        COMPONENT_LABEL: SERVER_COMPONENT,
        MODEL_DEPLOYMENT_LABEL: name,
        ENGINE_LABEL: engine,
    }


def server_selector(name: str) -> dict[str, str]:
    """The Deployment's pod selector (immutable, so kept minimal)."""
    return {MODEL_DEPLOYMENT_LABEL: name, COMPONENT_LABEL: SERVER_COMPONENT}


def selector_string(labels: dict[str, str]) -> str:
    """A label selector in its string form, as status.selector for the scale subresource."""
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def runtime_account_name(name: str) -> str:
    """ServiceAccount, Role and RoleBinding of a ModelDeployment's model server."""
    return f"berth-{name}"


def download_key(model: ModelSource, redownload_token: str | None) -> str:
    """Identifies one download: repo, revision, patterns and re-download token."""
    identity = json.dumps(
        [
            model.repo,
            model.revision,
            sorted(model.allow_patterns or []),
            sorted(model.ignore_patterns or []),
            redownload_token or "",
        ]
    )
    return hashlib.sha256(identity.encode()).hexdigest()[:12]


def download_job_name(model: ModelSource, key: str) -> str:
    """The download Job's name: readable repo slug plus the download key; at most 63 chars."""
    slug = re.sub(r"[^a-z0-9]+", "-", model.repo.lower()).strip("-")[:36].strip("-")
    return f"berth-dl-{slug}-{key}"


def download_labels(key: str) -> dict[str, str]:
    """Labels of a download Job, its pods and its identity."""
    return {
        **MANAGED_BY,
        NAME_LABEL: "berth-download",
        COMPONENT_LABEL: DOWNLOAD_COMPONENT,
        DOWNLOAD_KEY_LABEL: key,
    }
