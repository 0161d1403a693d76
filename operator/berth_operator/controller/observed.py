"""What the controller read from the cluster for one ModelDeployment, in one place."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from berth_operator.api.metadata import COMPONENT_LABEL, MODEL_DEPLOYMENT_LABEL, SERVER_COMPONENT
from berth_operator.controller.download import DownloadIdentity
from berth_operator.controller.ownership import NameConflict
from berth_operator.controller.resource import ModelDeployment
from berth_operator.store import Store


@dataclass(frozen=True)
class SecretCheck:
    """A Secret reference that does not resolve, with the field that holds it."""

    reason: str  # SecretNotFound or SecretKeyNotFound
    message: str


@dataclass(frozen=True)
class DownloadState:
    """One download as observed: what it fetches, the resources that share it, its Job, the
    Job's Role and pods, and a problem with its token Secret."""

    identity: DownloadIdentity
    sharers: list[ModelDeployment]
    job: dict[str, Any] | None = None
    role: dict[str, Any] | None = None
    pods: list[dict[str, Any]] = field(default_factory=list)
    token_problem: SecretCheck | None = None


@dataclass(frozen=True)
class Observed:
    """The cluster state a reconcile works from; plain API objects, as read."""

    md: ModelDeployment
    #: the model's download
    download: DownloadState
    #: the download of each adapter of spec.vllm.adapters, by adapter name
    adapter_downloads: dict[str, DownloadState] = field(default_factory=dict)
    deployment: dict[str, Any] | None = None
    pods: list[dict[str, Any]] = field(default_factory=list)
    stale_jobs: list[dict[str, Any]] = field(default_factory=list)
    secret_problems: list[SecretCheck] = field(default_factory=list)
    #: the cache claim, read only when a pod cannot be scheduled (it may be why)
    cache_claim: dict[str, Any] | None = None
    #: the other resources in the watched namespaces that claim the same served model name
    name_rivals: list[ModelDeployment] = field(default_factory=list)
    #: the diarization model an ASR model pairs with (None: none named, or it does not exist)
    diarization_partner: ModelDeployment | None = None
    #: children whose names are held by objects Berth does not control (nothing was written)
    name_conflicts: list[NameConflict] = field(default_factory=list)
    #: how pods reach the API server: the egress rule of their NetworkPolicies
    api_server: list[dict[str, Any]] = field(default_factory=list)
    #: the image the server keeps while other models move to a new default one (pacing.py)
    kept_image: str | None = None
    #: server pod name -> its events, read only for pods whose start is explained (startup.py)
    pod_events: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    @property
    def token_problem(self) -> SecretCheck | None:
        """The model's token Secret does not resolve."""
        return self.download.token_problem

    @property
    def downloads(self) -> list[DownloadState]:
        """The model's download, then each adapter's."""
        return [self.download, *self.adapter_downloads.values()]


def job_condition(job: dict[str, Any] | None, type_: str) -> dict[str, Any] | None:
    """A Job condition of `type_` that is True, if any."""
    if not job:
        return None
    for condition in job.get("status", {}).get("conditions") or []:
        if condition.get("type") == type_ and condition.get("status") == "True":
            return condition
    return None


def server_pods(store: Store, namespace: str, model: str) -> list[dict[str, Any]]:
    """The model server pods of the ModelDeployment `model` in the store."""
    return [
        pod
        for pod in store.by_label("Pod", namespace, MODEL_DEPLOYMENT_LABEL, model)
        if (pod["metadata"].get("labels") or {}).get(COMPONENT_LABEL) == SERVER_COMPONENT
    ]
