"""A model server pod's start, as it happens and after: an image pull in progress (from the
kubelet's events), the engine loading (from the pod's status), and the timeline of the last
start kept in status.startup (scheduled, image pulled, container started, model loaded)."""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass
from typing import Any

PULLING, PULLED = "Pulling", "Pulled"
#: how long after its scheduling a pod with no pull in its events is looked at again
RECHECK_WINDOW = datetime.timedelta(seconds=60)
#: what ends a pull (a failed one surfaces as ErrImagePull/ImagePullBackOff in the pod's status)
PULL_ENDS = {PULLED, "Failed", "BackOff", "ErrImageNeverPull", "InspectFailed"}
QUOTED_IMAGE = re.compile(r'image "(?P<image>[^"]+)"')


def parse_time(stamp: str | None) -> datetime.datetime | None:
    if not stamp:
        return None
    return datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def format_time(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def event_time(event: dict[str, Any]) -> datetime.datetime | None:
    """When the event last happened (events.k8s.io's eventTime, or core's timestamps)."""
    for key in ("eventTime", "lastTimestamp", "firstTimestamp"):
        if moment := parse_time(event.get(key)):
            return moment
    return parse_time(event.get("metadata", {}).get("creationTimestamp"))


def _image_of(event: dict[str, Any]) -> str | None:
    found = QUOTED_IMAGE.search(event.get("message") or "")
    return found["image"] if found else None


def _condition_time(pod: dict[str, Any], type_: str) -> datetime.datetime | None:
    for condition in pod.get("status", {}).get("conditions") or []:
        if condition.get("type") == type_ and condition.get("status") == "True":
            return parse_time(condition.get("lastTransitionTime"))
    return None


def _pull_events(events: list[dict[str, Any]]) -> list[tuple[datetime.datetime, dict[str, Any]]]:
    timed = [
        (moment, event)
        for event in events
        if event.get("reason") in {PULLING} | PULL_ENDS and (moment := event_time(event))
    ]
    return sorted(timed, key=lambda pair: pair[0])


@dataclass(frozen=True)
class Pull:
    """An image the kubelet is pulling for a pod, on its node, since a moment."""

    pod: str
    node: str
    image: str
    since: datetime.datetime

    def message(self) -> str:
        return (
            f"pod {self.pod} on node {self.node} is pulling image {self.image} "
            f"(since {format_time(self.since)})"
        )


def pull_in_progress(pod: dict[str, Any], events: list[dict[str, Any]]) -> Pull | None:
    """The pod's pull that started and has not ended, going by its events; None when its
    containers run or no pull is under way."""
    statuses = pod.get("status", {}).get("containerStatuses") or []
    if statuses and all("running" in (s.get("state") or {}) for s in statuses):
        return None
    started: dict[str, datetime.datetime] = {}
    for moment, event in _pull_events(events):
        image = _image_of(event)
        if event.get("reason") == PULLING and image:
            started[image] = moment
        elif event.get("reason") in PULL_ENDS:
            started.pop(image, None) if image else started.clear()
    if not started:
        return None
    image, since = min(started.items(), key=lambda pair: pair[1])
    node = pod.get("spec", {}).get("nodeName") or "?"
    return Pull(pod["metadata"]["name"], node, image, since)


def loading(pod: dict[str, Any], progress: str | None = None) -> str | None:
    """The message for a pod whose containers all run while it is not ready yet: the engine
    is loading the model, at `progress` (its own words, from status.runtime) when it says."""
    statuses = pod.get("status", {}).get("containerStatuses") or []
    running = [(s.get("state") or {}).get("running") for s in statuses]
    if not statuses or not all(running):
        return None
    starts = [moment for r in running if r and (moment := parse_time(r.get("startedAt")))]
    node = pod.get("spec", {}).get("nodeName") or "?"
    when = f" at {format_time(max(starts))}" if starts else ""
    step = f": {progress}" if progress else ""
    return (
        f"pod {pod['metadata']['name']} on node {node} started{when}; the engine is loading "
        f"the model{step}"
    )


def image_pulled(events: list[dict[str, Any]], image: str) -> datetime.datetime | None:
    """When the kubelet last had `image` for the pod: pulled, or found already present."""
    for moment, event in reversed(_pull_events(events)):
        if event.get("reason") == PULLED and _image_of(event) == image:
            return moment
    return None


def timeline(
    pod: dict[str, Any], events: list[dict[str, Any]], origin: datetime.datetime | None
) -> dict[str, Any] | None:
    """status.startup for a ready pod: each step's moment and its seconds since the step
    before; the first step counts from `origin` (the resource's creation for its first start:
    the download and the workload's creation are then in it), else from the pod's creation.
    None until the pod is ready."""
    created = parse_time(pod["metadata"].get("creationTimestamp"))
    scheduled = _condition_time(pod, "PodScheduled")
    ready = _condition_time(pod, "Ready")
    containers = pod.get("spec", {}).get("containers") or []
    statuses = pod.get("status", {}).get("containerStatuses") or []
    server = containers[0]["name"] if containers else None
    running = next(
        ((s.get("state") or {}).get("running") for s in statuses if s.get("name") == server), None
    )
    started = parse_time((running or {}).get("startedAt"))
    if not (created and scheduled and ready and started):
        return None
    steps: list[tuple[str, datetime.datetime]] = []
    if origin is not None and origin < created:
        steps.append(("PodCreated", created))
    steps.append(("Scheduled", scheduled))
    if pulled := image_pulled(events, containers[0].get("image", "")):
        steps.append(("ImagePulled", max(pulled, scheduled)))
    steps += [("ContainerStarted", started), ("ModelLoaded", ready)]
    begin = origin if origin is not None and origin < created else created
    previous = begin
    rows = []
    for step, moment in steps:
        moment = max(moment, previous)  # clocks of a second's resolution: no negative step
        seconds = round((moment - previous).total_seconds(), 1)
        rows.append({"step": step, "at": format_time(moment), "seconds": seconds})
        previous = moment
    return {
        "pod": pod["metadata"]["name"],
        "node": pod.get("spec", {}).get("nodeName"),
        "since": format_time(begin),
        "steps": rows,
        "totalSeconds": round((ready - begin).total_seconds(), 1),
    }


def ready_since(pod: dict[str, Any]) -> datetime.datetime | None:
    """When the pod last became ready."""
    return _condition_time(pod, "Ready")


def pods_to_explain(pods: list[dict[str, Any]], recorded: dict[str, Any] | None) -> list[str]:
    """The pods whose events a pass reads: those scheduled and still creating containers (a
    pull may be under way), and the newest ready pod when status.startup is not its start yet
    and the pod has the moments a timeline needs (else its events would not make one)."""
    names = []
    for pod in pods:
        statuses = pod.get("status", {}).get("containerStatuses") or []
        creating = not statuses or not all("running" in (s.get("state") or {}) for s in statuses)
        if pod.get("spec", {}).get("nodeName") and creating:
            names.append(pod["metadata"]["name"])
    newest = newest_ready(pods)
    if (
        newest is not None
        and not recorded_start(recorded, newest)
        and timeline(newest, [], None) is not None
    ):
        names.append(newest["metadata"]["name"])
    return names


def newest_ready(pods: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The ready pod that became ready last."""
    timed = [(moment, pod) for pod in pods if (moment := ready_since(pod))]
    return max(timed, key=lambda pair: pair[0])[1] if timed else None


def recorded_start(recorded: dict[str, Any] | None, pod: dict[str, Any]) -> bool:
    """Whether status.startup already holds this pod's current start."""
    if not recorded or recorded.get("pod") != pod["metadata"]["name"]:
        return False
    steps = recorded.get("steps") or []
    moment = ready_since(pod)
    return bool(steps and moment and steps[-1].get("at") == format_time(moment))


def just_scheduled(pod: dict[str, Any], now: datetime.datetime) -> bool:
    """The pod was scheduled less than RECHECK_WINDOW ago."""
    scheduled = _condition_time(pod, "PodScheduled")
    return scheduled is not None and now - scheduled < RECHECK_WINDOW
