"""Events on condition transitions: which changes post one, their type, and the rate limit."""

from __future__ import annotations

import asyncio

from berth_operator.config import OperatorConfig
from berth_operator.controller.events import (
    EventRecorder,
    Transition,
    render_event,
    transitions,
)
from berth_operator.controller.status import derive_status

from tests.unit.factories import job, md, observed, pod

CONFIG = OperatorConfig()


def status_of(resource, **parts):
    return derive_status(observed(resource, **parts), CONFIG, "2026-12-02T10:00:00Z")


def test_a_healthy_start_posts_its_milestones_not_its_steps():
    first = status_of(md())
    assert transitions(None, first["conditions"]) == [], "waiting for the download is no news"
    resource = md(status={"conditions": first["conditions"]})
    name = observed(resource).download.identity.job_name
    downloading = status_of(resource, job=job(name, report={"bytesDone": 1, "bytesTotal": 10}))
    assert transitions(resource.status.conditions, downloading["conditions"]) == []
    resource = md(status={"conditions": downloading["conditions"]})
    done = status_of(resource, job=job(name, "Complete"))
    changes = transitions(resource.status.conditions, done["conditions"])
    assert [(c.type, c.status, c.reason) for c in changes] == [("CacheReady", "True", "Downloaded")]
    assert not changes[0].warning
    resource = md(status={"conditions": done["conditions"]})
    parts = {"job": job(name, "Complete"), "deployment": {"metadata": {}}, "pods": [pod("p1")]}
    pods_ready = status_of(resource, **parts)
    assert transitions(resource.status.conditions, pods_ready["conditions"]) == []
    resource = md(status={"conditions": pods_ready["conditions"]})
    serving = md(status={**pods_ready, "runtime": {"state": "Ready", "pod": "p1"}})
    changes = transitions(resource.status.conditions, status_of(serving, **parts)["conditions"])
    assert [(c.type, c.status, c.reason) for c in changes] == [("Ready", "True", "ModelServing")]


def test_the_way_out_of_a_failure_is_posted():
    resource = md(status={"conditions": status_of(md())["conditions"]})
    name = observed(resource).download.identity.job_name
    failed = md(status={"conditions": status_of(resource, job=job(name, "Failed"))["conditions"]})
    again = status_of(failed, job=job(name, report={"bytesDone": 1, "bytesTotal": 10}))
    changes = {c.type: c for c in transitions(failed.status.conditions, again["conditions"])}
    assert changes["CacheReady"].reason == "Downloading" and not changes["CacheReady"].warning
    assert changes["Stalled"].status == "False"


def test_a_new_message_alone_is_no_transition():
    resource = md()
    name = observed(resource).download.identity.job_name
    before = status_of(resource, job=job(name, report={"bytesDone": 1, "bytesTotal": 10}))
    again = md(status={"conditions": before["conditions"]})
    after = status_of(again, job=job(name, report={"bytesDone": 5, "bytesTotal": 10}))
    assert before["conditions"] != after["conditions"], "the message moved on"
    assert transitions(again.status.conditions, after["conditions"]) == []


def test_a_failure_is_a_warning_and_names_its_reason():
    resource = md(status={"conditions": status_of(md())["conditions"]})
    name = observed(resource).download.identity.job_name
    failed = status_of(resource, job=job(name, "Failed"))
    changes = {c.type: c for c in transitions(resource.status.conditions, failed["conditions"])}
    assert changes["CacheReady"].reason == "BackoffLimitExceeded" and changes["CacheReady"].warning
    assert changes["Stalled"].status == "True" and changes["Stalled"].warning
    event = render_event(resource, changes["CacheReady"], "2026-12-02T10:00:00Z")
    assert event["type"] == "Warning" and event["reason"] == "BackoffLimitExceeded"
    assert (
        event["involvedObject"] | {"kind": "ModelDeployment", "name": "m", "uid": "uid-m"}
        == (event["involvedObject"])
    )
    assert event["message"].startswith("CacheReady is False: ")


def test_events_are_rate_limited_per_resource():
    posted = []

    async def create(event):
        posted.append(event)

    now = [0.0]
    recorder = EventRecorder(create, burst=3, refill_seconds=10, clock=lambda: now[0])
    changes = [Transition("CacheReady", "False", f"Failure{i}", "") for i in range(4)]

    assert asyncio.run(recorder.record(md(), changes, "t")) == 3, "the burst, then nothing"
    assert asyncio.run(recorder.record(md(name="other"), changes, "t")) == 3, "per resource"
    now[0] = 10.0
    assert asyncio.run(recorder.record(md(), changes, "t")) == 1, "one token per 10 s"
    assert len(posted) == 7
