"""Failures of real containers, as the operator's pod-truth function reads them: a crash loop
with the container's last words, and an OOM kill from a real memory limit."""

from __future__ import annotations

from typing import Any

from berth_operator.controller.podtruth import pod_problem

from tests.cluster.kubectl import Kubectl
from tests.cluster.realnode import RealNode
from tests.realnode.pods import box_container, real_node_pod


def _status(pod: dict[str, Any]) -> dict[str, Any]:
    statuses = pod.get("status", {}).get("containerStatuses") or [{}]
    return statuses[0]


def crash_looping(pod: dict[str, Any]) -> bool:
    status = _status(pod)
    waiting = (status.get("state") or {}).get("waiting") or {}
    return waiting.get("reason") == "CrashLoopBackOff" and bool(status.get("lastState"))


def oom_killed(pod: dict[str, Any]) -> bool:
    status = _status(pod)
    terminated = [(status.get(key) or {}).get("terminated") or {} for key in ("state", "lastState")]
    return any(t.get("reason") == "OOMKilled" for t in terminated)


def test_a_crash_shows_as_crash_loop_with_the_last_words(
    real_node: RealNode, kubectl: Kubectl
) -> None:
    last_words = "cannot open /models/tiny/config.json: no such file"
    kubectl.apply(real_node_pod("crasher", [box_container("server", "crash", last_words)]))
    pod = kubectl.wait_for("pod", "crasher", crash_looping, timeout=90)

    terminated = _status(pod)["lastState"]["terminated"]
    assert terminated["exitCode"] == 3
    assert terminated["message"].strip() == last_words
    problem = pod_problem(pod)
    assert problem is not None
    assert problem.reason == "CrashLoopBackOff"
    assert last_words in problem.message


def test_a_container_over_its_memory_limit_is_oom_killed(
    real_node: RealNode, kubectl: Kubectl
) -> None:
    limits = {"memory": "32Mi", "cpu": "500m"}
    container = box_container(
        "server", "eat", "256", resources={"limits": limits, "requests": limits}
    )
    kubectl.apply(real_node_pod("glutton", [container]))
    pod = kubectl.wait_for("pod", "glutton", oom_killed, timeout=90)

    problem = pod_problem(pod)
    assert problem is not None
    assert problem.reason == "OOMKilled"
    assert pod["status"]["qosClass"] == "Guaranteed"
