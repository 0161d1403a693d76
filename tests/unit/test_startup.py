"""A server pod's start in status: PullingImage and Loading while it happens (from the kubelet's
events and the pod's status), and status.startup's timeline after (controller/startup.py)."""

from __future__ import annotations

from typing import Any

from berth_operator.config import OperatorConfig
from berth_operator.controller.startup import (
    just_scheduled,
    pods_to_explain,
    pull_in_progress,
    recorded_start,
    timeline,
)
from berth_operator.controller.startup import (
    parse_time as at,
)
from berth_operator.controller.status import derive_status

from tests.unit.factories import job, md, observed

IMAGE = "registry.example/berth-pyannote:1.2"
NODE = "gpu-node-7"
CONFIG = OperatorConfig()
NOW = "2026-12-06T10:10:00Z"


def event(reason: str, when: str, message: str = "") -> dict[str, Any]:
    message = message or {
        "Pulling": f'Pulling image "{IMAGE}"',
        "Pulled": f'Successfully pulled image "{IMAGE}" in 2m8.1s (2m8.1s including waiting)',
    }.get(reason, reason)
    return {"reason": reason, "message": message, "lastTimestamp": when}


def server_pod(
    name: str = "server-1",
    created: str = "2026-12-06T10:00:10Z",
    scheduled: str | None = "2026-12-06T10:00:11Z",
    started: str | None = None,
    ready: str | None = None,
) -> dict[str, Any]:
    conditions = []
    if scheduled:
        conditions.append(
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": scheduled}
        )
    conditions.append(
        {
            "type": "Ready",
            "status": "True" if ready else "False",
            "lastTransitionTime": ready or created,
        }
    )
    state = (
        {"running": {"startedAt": started}}
        if started
        else {"waiting": {"reason": "ContainerCreating"}}
    )
    return {
        "metadata": {"name": name, "creationTimestamp": created},
        "spec": {"nodeName": NODE, "containers": [{"name": "server", "image": IMAGE}]},
        "status": {
            "conditions": conditions,
            "containerStatuses": [{"name": "server", "state": state}],
        },
    }


def test_a_pull_without_its_end_is_in_progress_and_named() -> None:
    pod = server_pod()
    pull = pull_in_progress(
        pod, [event("Scheduled", "2026-12-06T10:00:11Z"), event("Pulling", "2026-12-06T10:00:12Z")]
    )
    assert pull is not None
    assert pull.message() == (
        f"pod server-1 on node {NODE} is pulling image {IMAGE} (since 2026-12-06T10:00:12Z)"
    )
    ended = [event("Pulling", "2026-12-06T10:00:12Z"), event("Pulled", "2026-12-06T10:02:20Z")]
    assert pull_in_progress(pod, ended) is None
    failed = [
        event("Pulling", "2026-12-06T10:00:12Z"),
        event("Failed", "2026-12-06T10:00:40Z", "Failed to pull image"),
    ]
    assert pull_in_progress(pod, failed) is None  # ErrImagePull in the pod's status says why
    assert pull_in_progress(pod, []) is None


def test_a_running_pod_is_pulling_nothing() -> None:
    pod = server_pod(started="2026-12-06T10:02:21Z")
    assert pull_in_progress(pod, [event("Pulling", "2026-12-06T10:00:12Z")]) is None


def test_pods_ready_says_pulling_then_loading() -> None:
    resource = md(status={"runtime": {"state": "Loading", "pod": "server-1"}})
    parts = {"job": job("j", "Complete"), "deployment": {"metadata": {}}}
    pulling = observed(
        resource,
        pods=[server_pod()],
        pod_events={"server-1": [event("Pulling", "2026-12-06T10:00:12Z")]},
        **parts,
    )
    status = derive_status(pulling, CONFIG, NOW)
    pods_ready = next(c for c in status["conditions"] if c["type"] == "PodsReady")
    assert pods_ready["reason"] == "PullingImage"
    assert pods_ready["message"] == (
        f"0/1 replicas ready; pod server-1 on node {NODE} is pulling image {IMAGE} "
        "(since 2026-12-06T10:00:12Z)"
    )
    assert status["phase"] == "Starting"
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == "PullingImage"  # kubectl get md's Reason column

    loading = observed(resource, pods=[server_pod(started="2026-12-06T10:02:21Z")], **parts)
    pods_ready = next(
        c for c in derive_status(loading, CONFIG, NOW)["conditions"] if c["type"] == "PodsReady"
    )
    assert pods_ready["reason"] == "Loading"
    assert pods_ready["message"].endswith(
        "started at 2026-12-06T10:02:21Z; the engine is loading the model"
    )


def test_loading_quotes_the_engines_own_step_from_the_pod_that_reports_it() -> None:
    parts = {"job": job("j", "Complete"), "deployment": {"metadata": {}}}
    pod = server_pod(started="2026-12-06T10:02:21Z")

    def message(runtime: dict[str, Any]) -> str:
        found = observed(md(status={"runtime": runtime}), pods=[pod], **parts)
        status = derive_status(found, CONFIG, NOW)
        return next(c for c in status["conditions"] if c["type"] == "PodsReady")["message"]

    step = "loading checkpoint shards 3/13"
    assert message({"state": "Loading", "pod": "server-1", "progress": step}).endswith(
        f"the engine is loading the model: {step}"
    )
    # another pod's step, or one left from a load that ended, is not this pod's
    assert message({"state": "Loading", "pod": "server-0", "progress": step}).endswith("model")
    assert message({"state": "Failed", "pod": "server-1", "progress": step}).endswith("model")


def started_and_ready() -> dict[str, Any]:
    return server_pod(started="2026-12-06T10:02:21Z", ready="2026-12-06T10:02:33Z")


PULL_EVENTS = [event("Pulling", "2026-12-06T10:00:12Z"), event("Pulled", "2026-12-06T10:02:20Z")]


def test_the_timeline_adds_up_from_the_pods_creation() -> None:
    found = timeline(started_and_ready(), PULL_EVENTS, origin=None)
    assert found == {
        "pod": "server-1",
        "node": NODE,
        "since": "2026-12-06T10:00:10Z",
        "steps": [
            {"step": "Scheduled", "at": "2026-12-06T10:00:11Z", "seconds": 1.0},
            {"step": "ImagePulled", "at": "2026-12-06T10:02:20Z", "seconds": 129.0},
            {"step": "ContainerStarted", "at": "2026-12-06T10:02:21Z", "seconds": 1.0},
            {"step": "ModelLoaded", "at": "2026-12-06T10:02:33Z", "seconds": 12.0},
        ],
        "totalSeconds": 143.0,
    }
    assert sum(step["seconds"] for step in found["steps"]) == found["totalSeconds"]


def test_the_first_start_counts_from_the_apply_and_a_present_image_takes_no_time() -> None:
    present = [
        event(
            "Pulled",
            "2026-12-06T10:00:11Z",
            f'Container image "{IMAGE}" already present on machine',
        )
    ]
    found = timeline(started_and_ready(), present, origin=at("2026-12-06T09:59:00Z"))
    assert found is not None
    assert [(s["step"], s["seconds"]) for s in found["steps"]] == [
        ("PodCreated", 70.0),  # the download and the workload's creation
        ("Scheduled", 1.0),
        ("ImagePulled", 0.0),
        ("ContainerStarted", 130.0),
        ("ModelLoaded", 12.0),
    ]
    assert found["totalSeconds"] == 213.0


def test_no_timeline_before_the_pod_is_ready_and_none_without_events_for_the_pull() -> None:
    assert timeline(server_pod(started="2026-12-06T10:02:21Z"), PULL_EVENTS, None) is None
    found = timeline(started_and_ready(), [], None)
    assert found is not None
    assert [s["step"] for s in found["steps"]] == ["Scheduled", "ContainerStarted", "ModelLoaded"]


def test_status_records_the_newest_ready_pods_start_once() -> None:
    resource = md(status={"runtime": {"state": "Ready", "pod": "server-1"}})
    parts = {"job": job("j", "Complete"), "deployment": {"metadata": {}}}
    pod = started_and_ready()
    assert pods_to_explain([pod], None) == ["server-1"]  # its events are read once
    status = derive_status(
        observed(resource, pods=[pod], pod_events={"server-1": PULL_EVENTS}, **parts), CONFIG, NOW
    )
    startup = status["startup"]
    assert startup["pod"] == "server-1" and startup["steps"][1]["step"] == "ImagePulled"
    assert recorded_start(startup, pod)
    assert pods_to_explain([pod], startup) == []  # at rest: nothing read, the same status
    again = md(status={"runtime": {"state": "Ready", "pod": "server-1"}, "startup": startup})
    assert derive_status(observed(again, pods=[pod], **parts), CONFIG, NOW)["startup"] == startup


def test_pods_whose_start_is_explained() -> None:
    creating = server_pod("server-2")
    unscheduled = server_pod("server-3", scheduled=None)
    unscheduled["spec"].pop("nodeName")
    assert pods_to_explain([creating, unscheduled], None) == ["server-2"]
    # a ready pod without the moments a timeline needs: its events would not make one
    untimed = started_and_ready()
    untimed["status"]["containerStatuses"][0]["state"]["running"].pop("startedAt")
    assert pods_to_explain([untimed], None) == []


def test_rechecks_stop_a_minute_after_the_scheduling() -> None:
    pod = server_pod(scheduled="2026-12-06T10:00:11Z")
    assert just_scheduled(pod, at("2026-12-06T10:00:40Z"))
    assert not just_scheduled(pod, at("2026-12-06T10:01:12Z"))
    assert not just_scheduled(server_pod(scheduled=None), at("2026-12-06T10:00:40Z"))
