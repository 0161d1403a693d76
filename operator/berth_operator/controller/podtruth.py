"""What is really wrong with a pod: scheduling, image pulls, crash loops, OOM kills, config."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

IMAGE_PULL_REASONS = {"ImagePullBackOff", "ErrImagePull", "InvalidImageName", "ErrImageNeverPull"}
CONFIG_REASONS = {"CreateContainerConfigError", "CreateContainerError", "RunContainerError"}

# The worse a problem, the higher it ranks when several pods disagree.
SEVERITY = {
    "OOMKilled": 6,
    "CrashLoopBackOff": 5,
    "ImagePullBackOff": 4,
    "CreateContainerConfigError": 4,
    "Unschedulable": 3,
}


@dataclass(frozen=True)
class PodProblem:
    """A reason (CamelCase) and a message a person can act on."""

    reason: str
    message: str
    pod: str

    @property
    def severity(self) -> int:
        return SEVERITY.get(self.reason, 1)


def _condition(pod: dict[str, Any], type_: str) -> dict[str, Any] | None:
    return next(
        (c for c in pod.get("status", {}).get("conditions") or [] if c.get("type") == type_), None
    )


def unschedulable(pod: dict[str, Any]) -> bool:
    """The scheduler tried and found no node for the pod."""
    scheduled = _condition(pod, "PodScheduled")
    return bool(
        scheduled
        and scheduled.get("status") == "False"
        and scheduled.get("reason") == "Unschedulable"
    )


def is_ready(pod: dict[str, Any]) -> bool:
    cond = _condition(pod, "Ready")
    return bool(cond and cond.get("status") == "True") and not pod["metadata"].get(
        "deletionTimestamp"
    )


def _termination_summary(terminated: dict[str, Any]) -> str:
    parts = [f"exit code {terminated.get('exitCode')}"]
    if message := (terminated.get("message") or "").strip():
        parts.append(message.splitlines()[-1][:300])
    return "; ".join(parts)


def pod_problem(pod: dict[str, Any]) -> PodProblem | None:
    """The most telling problem of one pod, or None when nothing is wrong (yet)."""
    name = pod["metadata"]["name"]
    if unschedulable(pod):
        scheduled = _condition(pod, "PodScheduled") or {}
        return PodProblem(
            "Unschedulable", f"pod {name} cannot be scheduled: {scheduled.get('message', '')}", name
        )
    for status in pod.get("status", {}).get("containerStatuses") or []:
        waiting = (status.get("state") or {}).get("waiting") or {}
        last = (status.get("lastState") or {}).get("terminated") or {}
        reason = waiting.get("reason", "")
        if reason in IMAGE_PULL_REASONS:
            return PodProblem(
                "ImagePullBackOff",
                f"pod {name} cannot pull image {status.get('image')}: {waiting.get('message', reason)}",
                name,
            )
        if reason in CONFIG_REASONS:
            return PodProblem(
                "CreateContainerConfigError", f"pod {name}: {waiting.get('message', reason)}", name
            )
        if (
            last.get("reason") == "OOMKilled"
            or ((status.get("state") or {}).get("terminated") or {}).get("reason") == "OOMKilled"
        ):
            return PodProblem(
                "OOMKilled",
                f"pod {name} ran out of memory (OOMKilled, {status.get('restartCount', 0)} restarts): "
                "raise spec.resources.memory or lower the load",
                name,
            )
        if reason == "CrashLoopBackOff":
            summary = _termination_summary(last) if last else waiting.get("message", "")
            return PodProblem(
                "CrashLoopBackOff",
                f"pod {name} keeps crashing ({status.get('restartCount', 0)} restarts, last: {summary})",
                name,
            )
    return None


def worst_problem(pods: list[dict[str, Any]]) -> PodProblem | None:
    """The most severe problem among pods; ties go to the first pod by name."""
    problems = [
        p
        for p in (pod_problem(pod) for pod in sorted(pods, key=lambda p: p["metadata"]["name"]))
        if p
    ]
    return max(problems, key=lambda p: p.severity) if problems else None
