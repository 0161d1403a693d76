"""The status of LoRA adapters: per adapter of spec.vllm.adapters, how many ready pods serve it
(from what each pod reports in status.adapterLoads), or why not."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from berth_operator.api.modeldeployment import AdapterLoads, LoraAdapter
from berth_operator.controller.podtruth import is_ready
from berth_operator.controller.resource import ModelDeployment


def adapter_entry(
    adapter: LoraAdapter, ready: list[str], reports: Mapping[str, AdapterLoads]
) -> dict[str, Any]:
    """status.adapters[] of one adapter, from the reports of the ready pods."""
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
    if failure is not None:
        entry.update(state="Failed", reason=failure.reason, message=failure.message)
    elif ready and serving == len(ready):
        entry.update(state="Loaded", reason="Loaded", message=f"served by {serving} ready pods")
    elif any(adapter.name in (r.not_in_cache or []) for r in seen):
        entry.update(
            state="NotInCache",
            reason="AdapterNotInCache",
            message=f"{adapter.repo}@{adapter.revision} is not in the model cache: the pods "
            "load it as soon as its files are there",
        )
    else:
        waiting = "no pod is ready yet" if not ready else "the pods are loading it"
        entry.update(state="Loading", reason="Loading", message=waiting)
    return entry


def adapter_fields(md: ModelDeployment, pods: list[dict[str, Any]]) -> dict[str, Any]:
    """status.adapters and status.adaptersLoaded (None without adapters); and, when pods that
    reported are gone, status.adapterLoads entries set to null (a merge patch removes them)."""
    live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
    names = {p["metadata"]["name"] for p in live}
    ready = sorted(p["metadata"]["name"] for p in live if is_ready(p))
    reports = md.status.adapter_loads or {}
    fields: dict[str, Any] = {"adapters": None, "adaptersLoaded": None}
    if gone := {pod: None for pod in reports if pod not in names}:
        fields["adapterLoads"] = gone
    wanted = (md.spec.vllm.adapters if md.spec.vllm else None) or []
    if wanted:
        entries = [adapter_entry(a, ready, reports) for a in wanted]
        fields["adapters"] = entries
        loaded = sum(1 for e in entries if e["state"] == "Loaded")
        fields["adaptersLoaded"] = f"{loaded}/{len(entries)}"
    return fields
