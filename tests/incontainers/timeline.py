"""Where the time from apply to Ready goes, for a model on the real node, from the API's own
timestamps."""

from __future__ import annotations

from datetime import datetime

from tests.cluster.kubectl import Kubectl


def _time(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def seconds_between(earlier: str, later: str) -> float:
    return (_time(later) - _time(earlier)).total_seconds()


def apply_to_ready(kubectl: Kubectl, name: str) -> dict[str, float]:
    """Seconds from apply to Ready of one model, split: the download Job (pull included), the
    server image's pull, the container's start, the model's load (to the runtime's report)."""
    md = kubectl.get("md", name)
    job = kubectl.get("job", md["status"]["download"]["job"])["status"]
    (pod,) = kubectl.get("pods", None, "-l", f"berth.dev/modeldeployment={name}")["items"]
    selector = f"involvedObject.name={pod['metadata']['name']}"
    events = {
        e["reason"]: _time(e.get("lastTimestamp") or e["eventTime"])
        for e in kubectl.get("events", None, "--field-selector", selector)["items"]
    }
    started = _time(pod["status"]["containerStatuses"][0]["state"]["running"]["startedAt"])
    ready = _time(md["status"]["runtime"]["updatedAt"])
    created = _time(md["metadata"]["creationTimestamp"])
    return {
        "download": (_time(job["completionTime"]) - _time(job["startTime"])).total_seconds(),
        "pull": (events["Pulled"] - events.get("Pulling", events["Pulled"])).total_seconds(),
        "start": (started - events["Pulled"]).total_seconds(),
        "load": (ready - started).total_seconds(),
        "total": (ready - created).total_seconds(),
    }
