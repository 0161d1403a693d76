"""What the dashboard shows of one ModelDeployment: a card, computed from the object alone."""

from __future__ import annotations

from typing import Any

from berth_operator.api.metadata import MODEL_DEPLOYMENT_LABEL, REDOWNLOAD_ANNOTATION


def _ready_condition(status: dict[str, Any]) -> dict[str, Any]:
    return next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), {})


def _eta_seconds(download: dict[str, Any]) -> int | None:
    rate, done, total = (
        download.get("bytesPerSecond"),
        download.get("bytesDone"),
        download.get("bytesTotal"),
    )
    if not rate or done is None or not total or done >= total:
        return None
    return int((total - done) / rate)


def card(md: dict[str, Any]) -> dict[str, Any]:
    """The card of one resource; secrets never appear (the object holds none)."""
    meta, spec, status = md["metadata"], md.get("spec") or {}, md.get("status") or {}
    name, namespace = meta["name"], meta["namespace"]
    ready = _ready_condition(status)
    download = status.get("download") or {}
    runtime = status.get("runtime") or {}
    target = f"md/{name} -n {namespace}"
    wanted = spec.get("replicas", 1)
    return {
        "key": f"{namespace}/{name}",
        "namespace": namespace,
        "name": name,
        "engine": spec.get("engine"),
        "model": (spec.get("model") or {}).get("repo"),
        "revision": (spec.get("model") or {}).get("revision", "main"),
        "gpus": (spec.get("resources") or {}).get("gpus", 1),
        "phase": status.get("phase") or "Pending",
        "ready": {
            "status": ready.get("status"),
            "reason": ready.get("reason"),
            "message": ready.get("message"),
        },
        "download": {
            "bytesDone": download.get("bytesDone"),
            "bytesTotal": download.get("bytesTotal"),
            "percent": download.get("percent"),
            "bytesPerSecond": download.get("bytesPerSecond"),
            "etaSeconds": _eta_seconds(download),
            "job": download.get("job"),
        },
        "replicas": {"ready": status.get("readyReplicas", 0), "wanted": wanted},
        "runtime": {
            "state": runtime.get("state"),
            "pod": runtime.get("pod"),
            "gpus": runtime.get("gpus") or [],
            "dependencies": runtime.get("dependencies") or {},
            "mismatches": status.get("mismatches") or [],
            "lastError": runtime.get("lastError"),
        },
        "endpoint": status.get("endpoint"),
        "gatewayModel": status.get("gatewayModel"),
        "commands": {
            "scale to 0": f"kubectl scale {target} --replicas=0",
            "scale to 1": f"kubectl scale {target} --replicas=1",
            "re-download": f"kubectl annotate {target} {REDOWNLOAD_ANNOTATION}=$(date +%s) --overwrite",
            "describe": f"kubectl describe {target}",
            "logs": f"kubectl logs -n {namespace} -l {MODEL_DEPLOYMENT_LABEL}={name} --tail=100",
        },
    }
