"""The status of LoRA adapters: per adapter of spec.vllm.adapters, its download, then how many
ready pods serve it (from what each pod reports in status.adapterLoads), or why not."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from berth_operator.api.modeldeployment import BASE_MODEL_MISMATCH, AdapterLoads, LoraAdapter
from berth_operator.controller.conditions import Verdict
from berth_operator.controller.podtruth import is_ready
from berth_operator.controller.resource import ModelDeployment

#: the reasons of a download that goes on (any other reason of one not done is a failure)
DOWNLOAD_UNDER_WAY = {"DownloadPending", "Downloading", "DownloadRetrying"}


def adapter_entry(
    adapter: LoraAdapter,
    download: Verdict,
    ready: list[str],
    reports: Mapping[str, AdapterLoads],
) -> dict[str, Any]:
    """status.adapters[] of one adapter, from its download and the reports of the ready pods."""
    entry: dict[str, Any] = {
        "name": adapter.name,
        "repo": adapter.repo,
        "revision": adapter.revision,
        "loaded": None,
        "state": None,
        "reason": None,
        "message": None,
    }
    seen = [reports[p] for p in ready if p in reports]
    serving = sum(1 for r in seen if adapter.name in (r.loaded or []))
    entry["loaded"] = f"{serving}/{len(ready)}"
    failure = next((f for r in seen for f in r.failed or [] if f.name == adapter.name), None)
    if not download.ok:
        under_way = download.reason in DOWNLOAD_UNDER_WAY
        entry.update(
            state="Downloading" if under_way else "Failed",
            reason=download.reason,
            message=f"adapter {adapter.name}: {download.message}",
        )
    elif failure is not None:
        entry.update(state="Failed", reason=failure.reason, message=failure.message)
    elif ready and serving == len(ready):
        entry.update(state="Loaded", reason="Loaded", message=f"served by {serving} ready pods")
    else:
        waiting = "no pod is ready yet" if not ready else "the pods are loading it"
        message = f"{adapter.repo}@{adapter.revision} is in the cache; {waiting}"
        entry.update(state="Loading", reason="Loading", message=message)
    mismatch = next((m for r in seen for m in r.mismatched or [] if m.name == adapter.name), None)
    if mismatch is not None and entry["state"] != "Failed":
        entry.update(reason=mismatch.reason, message=mismatch.message)
    return entry


def base_model_verdict(entries: list[dict[str, Any]] | None) -> Verdict | None:
    """AdaptersMatchBase: False while a pod serves an adapter trained on another model (a
    warning: the adapter is served all the same); None without adapters."""
    if not entries:
        return None
    mismatched = [e for e in entries if e["reason"] == BASE_MODEL_MISMATCH]
    if mismatched:
        return Verdict("False", BASE_MODEL_MISMATCH, "; ".join(e["message"] for e in mismatched))
    return Verdict(
        "True", "AdaptersMatchBase", "no adapter loaded was trained on another base model"
    )


def adapter_fields(
    md: ModelDeployment, pods: list[dict[str, Any]], downloads: Mapping[str, Verdict]
) -> dict[str, Any]:
    """status.adapters and status.adaptersLoaded (None without adapters); and, when pods that
    reported are gone, status.adapterLoads entries set to null (a merge patch removes them)."""
    live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
    names = {p["metadata"]["name"] for p in live}
    ready = sorted(p["metadata"]["name"] for p in live if is_ready(p))
    reports = md.status.adapter_loads or {}
    fields: dict[str, Any] = {"adapters": None, "adaptersLoaded": None}
    if gone := {pod: None for pod in reports if pod not in names}:
        fields["adapterLoads"] = gone
    wanted = md.spec.adapters
    if wanted:
        entries = [adapter_entry(a, downloads[a.name], ready, reports) for a in wanted]
        fields["adapters"] = entries
        loaded = sum(1 for e in entries if e["state"] == "Loaded")
        fields["adaptersLoaded"] = f"{loaded}/{len(entries)}"
    return fields
