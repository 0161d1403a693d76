"""The download Jobs: one per (repo, revision, patterns, token, re-download), shared by resources.

A resource downloads its model, and each LoRA adapter of spec.vllm.adapters, with a Job of its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pydantic

from berth_operator.api.metadata import DOWNLOAD_PROGRESS_ANNOTATION
from berth_operator.api.modeldeployment import DownloadReport, LoraAdapter, ModelSource
from berth_operator.api.podenv import HF_TOKEN_VARIABLE, DownloadEnv
from berth_operator.config import OperatorConfig, library_env
from berth_operator.controller.cache import cache_claim_name
from berth_operator.controller.naming import download_job_name, download_key, download_labels
from berth_operator.controller.rbac import account_and_binding, role, role_owner_reference
from berth_operator.controller.resource import ModelDeployment
from berth_operator.controller.security import (
    SIGNALS_REACH_THE_ENTRY_POINT,
    restricted_container_security,
    restricted_pod_security,
)

DOWNLOAD_CONTAINER = "download"
PERMANENT_FAILURE_EXIT_CODE = 2  # the downloader's exit code for errors a retry cannot fix
DOWNLOAD_RETRIES = 4


@dataclass(frozen=True)
class DownloadIdentity:
    """One download a resource needs: what it fetches, its key, and the name and labels of its
    Job and identity."""

    key: str
    job_name: str
    source: ModelSource
    #: a clean download of everything, files already in the cache included
    force: bool = False
    #: the adapter of spec.vllm.adapters this download is for; None: the model itself
    adapter: str | None = None

    @property
    def labels(self) -> dict[str, str]:
        return download_labels(self.key)

    @property
    def what(self) -> str:
        return f"{self.source.repo}@{self.source.revision}"


def _identity(
    source: ModelSource, redownload_token: str | None, adapter: str | None = None
) -> DownloadIdentity:
    token = source.token_secret_ref
    token_id = f"{token.name}/{token.key}" if token else None
    key = download_key(source, "|".join(filter(None, [redownload_token, token_id])))
    return DownloadIdentity(
        key, download_job_name(source, key), source, bool(redownload_token), adapter
    )


def download_identity(md: ModelDeployment) -> DownloadIdentity:
    """What the resource downloads for its model, with which token, and its re-download token."""
    return _identity(md.spec.model, md.redownload_token)


def adapter_source(md: ModelDeployment, adapter: LoraAdapter) -> ModelSource:
    """An adapter's repository as a download source: all its files, with its own token or else
    the model's."""
    token = adapter.token_secret_ref or md.spec.model.token_secret_ref
    return ModelSource(repo=adapter.repo, revision=adapter.revision, token_secret_ref=token)


def adapter_downloads(md: ModelDeployment) -> list[DownloadIdentity]:
    """The download of each adapter of spec.vllm.adapters, in their order. An adapter is
    downloaded once, whatever the re-download token: a new revision is a new download."""
    return [_identity(adapter_source(md, a), None, a.name) for a in md.spec.adapters]


def _env(download: DownloadIdentity, config: OperatorConfig) -> list[dict[str, Any]]:
    model = download.source
    settings = DownloadEnv(
        repo=model.repo,
        revision=model.revision,
        cache_dir=config.cache_mount_path,
        allow_patterns=model.allow_patterns or [],
        ignore_patterns=model.ignore_patterns or [],
        force=download.force,
        stall_seconds=config.download_stall_seconds,
    )
    env = [*settings.rendered(), *DownloadEnv.field_references(), *library_env(config)]
    if config.hf_endpoint:
        env.append({"name": "HF_ENDPOINT", "value": config.hf_endpoint})
    if token := model.token_secret_ref:
        secret = {"secretKeyRef": {"name": token.name, "key": token.key}}
        env.append({"name": HF_TOKEN_VARIABLE, "valueFrom": secret})
    return env


def render_download_job(
    md: ModelDeployment,
    download: DownloadIdentity,
    sharers: list[ModelDeployment],
    config: OperatorConfig,
) -> dict[str, Any]:
    """The Job for `md`'s download, owned by every resource in `sharers` (md included)."""
    name, labels = download.job_name, download.labels
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
                    **SIGNALS_REACH_THE_ENTRY_POINT,
                    "containers": [
                        {
                            "name": DOWNLOAD_CONTAINER,
                            "image": config.downloader_image,
                            "command": ["python", "-m", "berth_runtime.download"],
                            "env": _env(download, config),
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


def render_download_role(
    md: ModelDeployment, download: DownloadIdentity, sharers: list[ModelDeployment]
) -> dict[str, Any]:
    """What the download pod may do: read its own Job and annotate it with progress; nothing else.

    The sharers own the Role; the pod's ServiceAccount and RoleBinding are owned by the Role,
    so a new sharer changes one object, and all three go when the last sharer does.
    """
    return role(
        name=download.job_name,
        namespace=md.namespace,
        labels=download.labels,
        owner_references=download_owner_references(sharers),
        rules=[
            {
                "apiGroups": ["batch"],
                "resources": ["jobs"],
                "resourceNames": [download.job_name],
                "verbs": ["get", "patch"],
            }
        ],
    )


def render_download_identity(
    md: ModelDeployment, download: DownloadIdentity, role: dict[str, Any]
) -> list[dict[str, Any]]:
    """The download pod's ServiceAccount and RoleBinding, owned by its applied Role."""
    return account_and_binding(
        name=download.job_name,
        namespace=md.namespace,
        labels=download.labels,
        owner_references=[role_owner_reference(role)],
    )


def download_report(job: dict[str, Any] | None) -> DownloadReport | None:
    """The downloader's latest report, read from the Job it was written on: so it is always the
    current download's, never an earlier Job's. None before the first report."""
    raw = ((job or {}).get("metadata", {}).get("annotations") or {}).get(
        DOWNLOAD_PROGRESS_ANNOTATION
    )
    if not raw:
        return None
    try:
        return DownloadReport.model_validate_json(raw)
    except pydantic.ValidationError:
        return None
