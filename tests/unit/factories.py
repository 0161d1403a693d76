"""Small builders of API objects for unit tests of the controller's pure functions."""

from __future__ import annotations

import json
from typing import Any

from berth_operator.api.metadata import DOWNLOAD_PROGRESS_ANNOTATION
from berth_operator.controller.download import adapter_downloads, download_identity
from berth_operator.controller.observed import DownloadState, Observed
from berth_operator.controller.resource import ModelDeployment


def md(
    name: str = "m",
    engine: str = "pyannote",
    repo: str = "org/model",
    status: dict | None = None,
    annotations: dict | None = None,
    **spec: Any,
) -> ModelDeployment:
    return ModelDeployment.from_body(
        {
            "metadata": {
                "name": name,
                "namespace": "ns",
                "uid": f"uid-{name}",
                "generation": 3,
                "annotations": annotations or {},
            },
            "spec": {"engine": engine, "model": {"repo": repo}, **spec},
            "status": status or {},
        }
    )


def job(
    name: str,
    condition: str | None = None,
    completion: str = "2026-11-26T10:00:00Z",
    report: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A download Job; `report` is the downloader's progress annotation on it."""
    conditions = (
        [
            {
                "type": condition,
                "status": "True",
                "reason": "BackoffLimitExceeded",
                "message": "Job has reached the specified backoff limit",
            }
        ]
        if condition
        else []
    )
    status: dict[str, Any] = {"conditions": conditions}
    if condition == "Complete":
        status["completionTime"] = completion
    annotations = {DOWNLOAD_PROGRESS_ANNOTATION: json.dumps(report)} if report else {}
    return {"metadata": {"name": name, "annotations": annotations}, "status": status}


def failed_download_pod(name: str, reason: str, created: str) -> dict:
    """A download pod that failed with the downloader's typed `reason`."""
    report = f'{{"reason": "{reason}", "message": "the hub answered 500"}}'
    terminated = {"exitCode": 1, "message": report}
    return {
        "metadata": {"name": name, "creationTimestamp": created},
        "status": {"phase": "Failed", "containerStatuses": [{"state": {"terminated": terminated}}]},
    }


def pod(name: str, ready: bool = True, **status: Any) -> dict[str, Any]:
    conditions = [{"type": "Ready", "status": "True" if ready else "False"}]
    if scheduled := status.pop("scheduled", None):
        conditions.append(scheduled)
    return {"metadata": {"name": name}, "status": {"conditions": conditions, **status}}


#: the parts of Observed that describe the model's download, by their names in DownloadState
DOWNLOAD_PARTS = {
    "job": "job",
    "role": "role",
    "download_pods": "pods",
    "token_problem": "token_problem",
}


def observed(
    resource: ModelDeployment,
    adapters: dict[str, dict[str, Any]] | None = None,
    **parts: Any,
) -> Observed:
    """What a reconcile observes; `job`, `role`, `download_pods` and `token_problem` describe
    the model's download, `adapters` the same parts of each adapter's download (`pods` for its
    pods), by adapter name."""
    download = {DOWNLOAD_PARTS[k]: parts.pop(k) for k in DOWNLOAD_PARTS.keys() & parts.keys()}
    adapter_parts = adapters or {}
    adapter_states = {
        d.adapter: DownloadState(d, [resource], **adapter_parts.get(d.adapter, {}))
        for d in adapter_downloads(resource)
        if d.adapter
    }
    return Observed(
        md=resource,
        download=DownloadState(download_identity(resource), [resource], **download),
        adapter_downloads=adapter_states,
        **parts,
    )
