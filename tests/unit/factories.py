"""Small builders of API objects for unit tests of the controller's pure functions."""

from __future__ import annotations

import json
from typing import Any

from berth_operator.api.metadata import DOWNLOAD_PROGRESS_ANNOTATION
from berth_operator.controller.download import download_identity
from berth_operator.controller.observed import Observed
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


def pod(name: str, ready: bool = True, **status: Any) -> dict[str, Any]:
    conditions = [{"type": "Ready", "status": "True" if ready else "False"}]
    if scheduled := status.pop("scheduled", None):
        conditions.append(scheduled)
    return {"metadata": {"name": name}, "status": {"conditions": conditions, **status}}


def observed(resource: ModelDeployment, **parts: Any) -> Observed:
    return Observed(md=resource, download=download_identity(resource), sharers=[resource], **parts)
