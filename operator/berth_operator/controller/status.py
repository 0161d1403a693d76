"""Derives the operator's part of a ModelDeployment's status from what it observed."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from berth_operator.api.dependencies import compare
from berth_operator.api.modeldeployment import Condition, DownloadReport, DownloadStatus
from berth_operator.config import OperatorConfig
from berth_operator.controller.adapters import adapter_fields, base_model_verdict
from berth_operator.controller.conditions import (
    ADAPTERS_MATCH_BASE,
    CACHE_READY,
    DIARIZATION_READY,
    MODEL_NAME_CONFLICT,
    PODS_READY,
    READY,
    RUNTIME_READY,
    STALLED,
    Verdict,
    merge_conditions,
)
from berth_operator.controller.download import DOWNLOAD_RETRIES, download_report
from berth_operator.controller.engines import served_model_name
from berth_operator.controller.names import name_verdict
from berth_operator.controller.naming import selector_string, server_selector
from berth_operator.controller.observed import DownloadState, Observed, job_condition
from berth_operator.controller.pairing import diarization_verdict
from berth_operator.controller.podtruth import is_ready, worst_problem
from berth_operator.controller.resource import ModelDeployment
from berth_operator.controller.startup import (
    loading,
    newest_ready,
    parse_time,
    pull_in_progress,
    recorded_start,
    timeline,
)
from berth_operator.controller.workload import endpoint

#: the reason of Ready, PodsReady and RuntimeReady at 0 replicas
SCALED_TO_ZERO = "ScaledToZero"
#: the reason of Ready when a child's name is held by an object Berth does not control
NAME_CONFLICT = "NameConflict"
#: the reasons of PodsReady while a pod starts: its image is being pulled; the engine loads
PULLING_IMAGE, LOADING = "PullingImage", "Loading"
WAITING_REASONS = {
    "DownloadPending",
    "Downloading",
    "DownloadRetrying",
    "Unschedulable",
    "CacheClaimPending",
}
#: pods that wait for the cluster to change (a node that fits, a volume): no wait of a request
#: outlasts them, so the gateway answers a request held for a scale-up at once with them
PENDING_POD_REASONS = {"Unschedulable", "CacheClaimPending"}
DOWNLOADING_REASONS = {"Downloading", "DownloadRetrying"}
FAILING_POD_REASONS = {
    "CrashLoopBackOff",
    "OOMKilled",
    "ImagePullBackOff",
    "CreateContainerConfigError",
}


def cannot_start(conditions: Iterable[Condition]) -> Condition | None:
    """Why the model cannot come up until a person or the cluster changes something, or None:
    Stalled=True (the phase is Failed: its Ready condition says why), a pod waiting for a node
    or a volume, and at zero replicas a download that failed. The one list the gateway reads to
    answer a request held for a scale-up at once rather than after its hold timeout."""
    by_type = {c.type: c for c in conditions}
    ready, cache = by_type.get(READY), by_type.get(CACHE_READY)
    stalled = by_type.get(STALLED)
    if stalled is not None and stalled.status == "True":
        return ready or stalled
    if ready is not None and ready.status == "False" and ready.reason in PENDING_POD_REASONS:
        return ready
    scaled_to_zero = ready is not None and ready.reason == SCALED_TO_ZERO
    if (
        scaled_to_zero
        and cache is not None
        and cache.status == "False"
        and (cache.reason not in WAITING_REASONS or cache.reason in PENDING_POD_REASONS)
    ):
        return cache
    return None


def _human_bytes(n: int | None) -> str:
    value = float(n or 0)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.1f} {unit}" if unit != "B" else f"{int(value)} B"
        value /= 1024
    return f"{value:.1f} TiB"


def _typed_failures(download: DownloadState) -> list[Verdict]:
    """What each failed download pod said, newest first: the downloader's typed reason when it
    wrote one, else the last line of its message."""
    found: list[Verdict] = []
    for pod in sorted(
        download.pods, key=lambda p: p["metadata"].get("creationTimestamp", ""), reverse=True
    ):
        for status in pod.get("status", {}).get("containerStatuses") or []:
            terminated = (status.get("state") or {}).get("terminated") or {}
            text = (terminated.get("message") or "").strip()
            if not text or terminated.get("exitCode") == 0:
                continue
            try:
                report = json.loads(text.splitlines()[-1])
            except (ValueError, IndexError):
                report = {}
            if isinstance(report, dict) and report.get("reason"):
                found.append(
                    Verdict("False", str(report["reason"]), str(report.get("message", "")))
                )
            else:
                found.append(Verdict("False", "DownloadFailed", text.splitlines()[-1][:500]))
    return found


def download_failure(download: DownloadState) -> Verdict | None:
    """Why the download Job failed, preferring the downloader's own typed reason."""
    failed = job_condition(download.job, "Failed")
    if not failed or download.job is None:
        return None
    if failures := _typed_failures(download):
        return failures[0]
    reason = failed.get("reason") or "DownloadFailed"
    return Verdict(
        "False",
        reason,
        f"download Job {download.job['metadata']['name']} failed: {failed.get('message', reason)}",
    )


def download_retry(download: DownloadState) -> Verdict | None:
    """While the Job retries: how many attempts failed, and why the last one did."""
    failures = _typed_failures(download)
    if not failures:
        return None
    last = failures[0]
    return Verdict(
        "False",
        "DownloadRetrying",
        f"attempt {len(failures)} of {DOWNLOAD_RETRIES + 1} failed with {last.reason}: "
        f"{last.message}; the Job tries again after its back-off",
    )


def claim_pending(observed: Observed) -> Verdict | None:
    """The cache claim is not bound: no pod that mounts it can be scheduled, and why."""
    claim = observed.cache_claim
    if claim is None or (claim.get("status") or {}).get("phase") != "Pending":
        return None
    name = claim["metadata"]["name"]
    spec = claim.get("spec") or {}
    modes = ", ".join(spec.get("accessModes") or []) or "the requested"
    if storage_class := spec.get("storageClassName"):
        why = f"storage class {storage_class} has not provisioned a volume for it"
    else:
        why = "it names no storage class, the cluster has no default one, and no volume matches it"
    return Verdict(
        "False",
        "CacheClaimPending",
        f"cache claim {name} is Pending: {why} (kubectl describe pvc {name}). Set the chart's "
        f"cache.storageClass or spec.cache.storageClassName to a class that provisions {modes} "
        "volumes, or bind a PersistentVolume to the claim",
    )


def download_verdict(download: DownloadState, claim: Verdict | None) -> Verdict:
    """Is this download complete in the cache, and if not, how far along or why not?
    `claim`: the cache claim is not bound (why no download pod can start)."""
    what = download.identity.what
    if download.token_problem:
        return Verdict("False", download.token_problem.reason, download.token_problem.message)
    if download.job is None:
        return Verdict("False", "DownloadPending", f"creating the download Job for {what}")
    if job_condition(download.job, "Complete"):
        return Verdict("True", "Downloaded", f"{what} is in the cache")
    if failure := download_failure(download):
        return failure
    if claim:
        return claim
    if problem := worst_problem(
        [
            p
            for p in download.pods
            if p.get("status", {}).get("phase") not in ("Succeeded", "Failed")
        ]
    ):
        return Verdict("False", problem.reason, f"download: {problem.message}")
    if (retry := download_retry(download)) and not any(
        p.get("status", {}).get("phase") == "Running" for p in download.pods
    ):
        return retry
    progress = download_report(download.job)
    if progress and progress.bytes_total:
        rate = f", {_human_bytes(progress.bytes_per_second)}/s" if progress.bytes_per_second else ""
        return Verdict(
            "False",
            "Downloading",
            f"downloading {what}: {_human_bytes(progress.bytes_done)} of "
            f"{_human_bytes(progress.bytes_total)} ({progress.percent or 0}%){rate}",
        )
    return Verdict("False", "Downloading", f"downloading {what}")


def adapter_download_verdicts(observed: Observed) -> dict[str, Verdict]:
    """Each adapter's download: in the cache, under way, or failed (and why)."""
    claim = claim_pending(observed)
    return {
        name: download_verdict(download, claim)
        for name, download in observed.adapter_downloads.items()
    }


def pods_verdict(observed: Observed) -> Verdict:
    """PodsReady: are the wanted replicas ready, and if not, what is wrong with them?"""
    wanted = observed.md.spec.replicas
    if wanted == 0:
        return Verdict(
            "True", SCALED_TO_ZERO, "replicas is 0: the model is unloaded and its GPUs are free"
        )
    if observed.deployment is None:
        return Verdict(
            "False", "WaitingForCache", "the model server starts once the model is in the cache"
        )
    live = [p for p in observed.pods if not p["metadata"].get("deletionTimestamp")]
    ready = sum(1 for p in live if is_ready(p))
    if ready >= wanted:
        return Verdict("True", "AllReplicasReady", f"{ready}/{wanted} replicas ready")
    if pending := claim_pending(observed):
        return pending
    unready = [p for p in live if not is_ready(p)]
    if problem := worst_problem(unready):
        return Verdict("False", problem.reason, problem.message)
    for pod in unready:
        if pull := pull_in_progress(pod, observed.pod_events.get(pod["metadata"]["name"], [])):
            return Verdict(
                "False", PULLING_IMAGE, f"{ready}/{wanted} replicas ready; {pull.message()}"
            )
    runtime = observed.md.status.runtime
    # the engine's own load step, from the pod that reports it
    steps = {runtime.pod: runtime.progress} if runtime and runtime.state == LOADING else {}
    if message := next(
        (m for p in unready if (m := loading(p, steps.get(p["metadata"]["name"])))), None
    ):
        return Verdict("False", LOADING, f"{ready}/{wanted} replicas ready; {message}")
    return Verdict("False", "Starting", f"{ready}/{wanted} replicas ready; starting")


def startup_status(observed: Observed) -> dict[str, Any] | None:
    """status.startup: the newest ready pod's start, read from its events once; the one
    recorded stays while no other pod has become ready."""
    recorded = observed.md.status.startup
    kept = recorded.model_dump(by_alias=True, exclude_none=True) if recorded else None
    live = [p for p in observed.pods if not p["metadata"].get("deletionTimestamp")]
    newest = newest_ready(live)
    if newest is None or recorded_start(kept, newest):
        return kept
    origin = None if recorded else parse_time(observed.md.created)
    events = observed.pod_events.get(newest["metadata"]["name"], [])
    return timeline(newest, events, origin) or kept


def runtime_verdict(observed: Observed) -> Verdict:
    """RuntimeReady: did the model server itself report the model loaded, from a current pod?"""
    if observed.md.spec.replicas == 0:
        return Verdict("False", SCALED_TO_ZERO, "no model server runs at 0 replicas")
    runtime = observed.md.status.runtime
    current = {
        p["metadata"]["name"] for p in observed.pods if not p["metadata"].get("deletionTimestamp")
    }
    if runtime is None or runtime.state is None:
        return Verdict("False", "NotReported", "waiting for the model server to report")
    if runtime.pod and runtime.pod not in current:
        return Verdict(
            "False",
            "NotReported",
            f"waiting for a report from a current pod (last from {runtime.pod})",
        )
    if runtime.state == "Ready":
        return Verdict("True", "ModelLoaded", f"pod {runtime.pod} reports the model loaded")
    if runtime.state == "Failed":
        error = runtime.last_error
        reason = (error and error.reason) or "RuntimeFailed"
        return Verdict("False", reason, (error and error.message) or "the model server failed")
    source = f"pod {runtime.pod}" if runtime.pod else "the model server"
    return Verdict("False", runtime.state, f"{source} reports {runtime.state}")


def runtime_failed(observed: Observed, runtime: Verdict) -> bool:
    """A current pod's model server reported Failed."""
    report = observed.md.status.runtime
    return report is not None and report.state == "Failed" and runtime.reason != "NotReported"


def ready_verdict(observed: Observed, cache: Verdict, pods: Verdict, runtime: Verdict) -> Verdict:
    """Ready: pods ready AND the runtime reported the model loaded (or nothing wanted)."""
    if observed.name_conflicts:
        return Verdict(
            "False", NAME_CONFLICT, "; ".join(c.message for c in observed.name_conflicts)
        )
    if observed.md.spec.replicas == 0:
        return Verdict(
            "True", SCALED_TO_ZERO, "replicas is 0: nothing to serve; scale up to load the model"
        )
    if problem := observed.token_problem or next(iter(observed.secret_problems), None):
        return Verdict("False", problem.reason, problem.message)
    if observed.deployment is None:
        return Verdict("False", cache.reason, cache.message)
    # a server that reported its failure says more than a pod that is not ready because of it
    for verdict in (runtime, pods) if runtime_failed(observed, runtime) else (pods, runtime):
        if not verdict.ok:
            return Verdict("False", verdict.reason, verdict.message)
    return Verdict("True", "ModelServing", pods.message)


def phase(
    observed: Observed, cache: Verdict, pods: Verdict, runtime: Verdict, ready: Verdict
) -> str:
    """The one-word summary shown by kubectl get."""
    if observed.name_conflicts:
        return "Failed"
    if observed.md.spec.replicas == 0:
        return "Stopped"
    ready_pods = sum(1 for p in observed.pods if is_ready(p))
    if ready.ok:
        return "Ready"
    if observed.token_problem or observed.secret_problems:
        return "Failed"
    if observed.deployment is None:
        if cache.ok:
            return "Starting"  # the model server's Deployment is created in this very pass
        if cache.reason in WAITING_REASONS:
            return "Downloading" if cache.reason in DOWNLOADING_REASONS else "Pending"
        return "Failed"
    if runtime_failed(observed, runtime):
        return "Failed"
    if 0 < ready_pods < observed.md.spec.replicas:
        return "Degraded"
    if pods.reason in PENDING_POD_REASONS:
        return "Pending"
    if pods.reason in FAILING_POD_REASONS:
        return "Failed"
    return "Starting"


def download_fields(observed: Observed) -> dict[str, Any]:
    """status.download: the current Job, the requested revision, and that Job's latest report.

    Every key is written on every pass (null when unknown), so nothing of an earlier Job remains.
    A complete Job means every planned byte is in the cache and verified: 100 %, whatever the
    last report that reached the Job said.
    """
    job = observed.download.job
    report = download_report(job) or DownloadReport()
    if job is not None and job_condition(job, "Complete"):
        report = report.model_copy(
            update={
                "bytes_done": report.bytes_total,
                "files_done": report.files_total,
                "percent": 100,
                "progress": "100%",
                "bytes_per_second": None,
                "completed_at": report.completed_at or job.get("status", {}).get("completionTime"),
            }
        )
    status = DownloadStatus(
        job=observed.download.identity.job_name,
        revision=observed.md.spec.model.revision,
        **report.model_dump(),
    )
    return status.model_dump(by_alias=True)


def derive_status(observed: Observed, config: OperatorConfig, now: str) -> dict[str, Any]:
    """Every status key the operator owns (status.runtime and download progress are not its)."""
    md = observed.md
    cache = download_verdict(observed.download, claim_pending(observed))
    pods = pods_verdict(observed)
    runtime = runtime_verdict(observed)
    ready = ready_verdict(observed, cache, pods, runtime)
    summary = phase(observed, cache, pods, runtime, ready)
    stalled = (
        Verdict("True", ready.reason, ready.message)
        if summary == "Failed"
        else Verdict("False", "NoBlockingError", "")
    )
    verdicts = {
        READY: ready,
        CACHE_READY: cache,
        PODS_READY: pods,
        RUNTIME_READY: runtime,
        STALLED: stalled,
        MODEL_NAME_CONFLICT: name_verdict(md, observed.name_rivals),
    }
    if diarization := diarization_verdict(md, observed.diarization_partner):
        verdicts[DIARIZATION_READY] = diarization
    adapters = adapter_fields(md, observed.pods, adapter_download_verdicts(observed))
    if base := base_model_verdict(adapters["adapters"]):
        verdicts[ADAPTERS_MATCH_BASE] = base
    live = [p for p in observed.pods if not p["metadata"].get("deletionTimestamp")]
    ready_count = sum(1 for p in live if is_ready(p))
    return {
        "observedGeneration": md.generation,
        "phase": summary,
        "conditions": merge_conditions(md.status.conditions, verdicts, md.generation, now),
        "replicas": len(live),
        "readyReplicas": ready_count,
        "ready": f"{ready_count}/{md.spec.replicas}",
        "selector": selector_string(server_selector(md.name)),
        "endpoint": endpoint(md, config),
        "gatewayModel": served_model_name(md.spec, md.name),
        "download": download_fields(observed),
        "mismatches": dependency_mismatches(md, config),
        "pendingImage": config.images[md.spec.engine] if observed.kept_image else None,
        "startup": startup_status(observed),
        **adapters,
    }


def dependency_mismatches(md: ModelDeployment, config: OperatorConfig) -> list[str]:
    """The server's reported versions against its image's expected ones (none reported yet:
    none found)."""
    runtime = md.status.runtime
    if runtime is None or not runtime.dependencies:
        return []
    expected = {
        **config.expected_dependencies.get(md.spec.engine, {}),
        **(md.spec.expected_dependencies or {}),
    }
    return [str(m) for m in compare(runtime.dependencies, expected)]
