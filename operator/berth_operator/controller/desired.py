"""The children a ModelDeployment should have, computed from its spec and what is observed."""

from __future__ import annotations

from typing import Any

from berth_operator.api.metadata import (
    MODEL_BYTES_ANNOTATION,
    RESOLVED_REVISION_ANNOTATION,
    REVISION_ANNOTATION,
)
from berth_operator.config import OperatorConfig
from berth_operator.controller.download import (
    download_report,
    render_download_identity,
    render_download_job,
    render_download_role,
)
from berth_operator.controller.naming import runtime_account_name, server_labels
from berth_operator.controller.netpol import render_download_policy, render_server_policy
from berth_operator.controller.observed import DownloadState, Observed, job_condition
from berth_operator.controller.podtruth import unschedulable
from berth_operator.controller.rbac import account_and_binding, status_role
from berth_operator.controller.resource import ModelDeployment
from berth_operator.controller.workload import (
    ServedModel,
    render_deployment,
    render_disruption_budget,
    render_service,
)


def served_model(observed: Observed) -> ServedModel | None:
    """The download to serve: the requested one once complete; until then whatever already runs."""
    md = observed.md
    job = observed.download.job
    if job_condition(job, "Complete"):
        report = download_report(job)
        return ServedModel(
            revision=md.spec.model.revision,
            resolved_revision=report.resolved_revision if report else None,
            model_bytes=report.bytes_total if report else None,
        )
    if observed.deployment:
        annotations = observed.deployment["metadata"].get("annotations") or {}
        if revision := annotations.get(REVISION_ANNOTATION):
            size = annotations.get(MODEL_BYTES_ANNOTATION)
            return ServedModel(
                revision=revision,
                resolved_revision=annotations.get(RESOLVED_REVISION_ANNOTATION) or None,
                model_bytes=int(size) if size and size.isdigit() else None,
            )
    return None


def _annotate(deployment: dict[str, Any], served: ServedModel) -> dict[str, Any]:
    """Records what the Deployment serves, so a later pass can keep serving it."""
    deployment["metadata"]["annotations"] = {
        REVISION_ANNOTATION: served.revision,
        RESOLVED_REVISION_ANNOTATION: served.resolved_revision or "",
        MODEL_BYTES_ANNOTATION: str(served.model_bytes or ""),
    }
    return deployment


def desired_children(observed: Observed, config: OperatorConfig) -> list[dict[str, Any]]:
    """Every child to apply this pass, in order: identities first, the Deployment last."""
    md = observed.md
    children: list[dict[str, Any]] = []
    downloads = distinct_downloads(observed)
    if config.network_policies:
        children.append(render_server_policy(md, config, observed.api_server))
        keys = [d.identity.key for d in downloads]
        children.append(render_download_policy(md, keys, config, observed.api_server))
    for download in downloads:
        children += download_children(md, download, config)
    account = runtime_account_name(md.name)
    labels = server_labels(md.name, md.spec.engine)
    owner = [md.owner_reference()]
    children.append(status_role(account, md.namespace, labels, owner, status_of=md.name))
    children += account_and_binding(account, md.namespace, labels, owner)
    children.append(render_service(md, config))
    children.append(render_disruption_budget(md))
    served = served_model(observed)
    if served is not None and not observed.secret_problems:
        deployment = render_deployment(
            md, config, served, surge_blocked(observed), observed.kept_image
        )
        children.append(_annotate(deployment, served))
    return children


def distinct_downloads(observed: Observed) -> list[DownloadState]:
    """The model's download and the adapters', each Job once (two adapters, or an adapter and
    the model, may fetch the same repository)."""
    by_job = {d.identity.job_name: d for d in reversed(observed.downloads)}
    return list(reversed(by_job.values()))


def download_children(
    md: ModelDeployment, download: DownloadState, config: OperatorConfig
) -> list[dict[str, Any]]:
    """A download's Role, then its pod's identity and its Job once the Role exists (they need
    its uid); nothing while its token Secret does not resolve."""
    if download.token_problem is not None:
        return []
    identity = download.identity
    children = [render_download_role(md, identity, download.sharers)]
    if download.role is not None:
        children += render_download_identity(md, identity, download.role)
        children.append(render_download_job(md, identity, download.sharers, config))
    return children


def surge_blocked(observed: Observed) -> bool:
    """A rollout is under way and goes on in place: a pod it started cannot be placed (no GPU
    free for a surge), or it already went on in place; a finished rollout surges again."""
    deployment = observed.deployment
    if not deployment:
        return False
    status = deployment.get("status") or {}
    rolling = (status.get("updatedReplicas") or 0) < deployment["spec"].get("replicas", 1) or (
        status.get("observedGeneration") != deployment["metadata"].get("generation")
    )
    if not rolling:
        return False
    current = (deployment["spec"].get("strategy") or {}).get("rollingUpdate") or {}
    return current.get("maxSurge") == 0 or any(unschedulable(p) for p in observed.pods)
