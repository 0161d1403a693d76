"""The operator SIGKILLed at random points while it reconciles 20 resources: nothing lost,
nothing duplicated, and the status it finally writes is the truth."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.hub.download import tiny_repo
from tests.incontainers.stack import CACHE_CLAIM, ContainerStack
from tests.operator.helpers import model_deployment
from tests.operator_process import OperatorProcess

pytestmark = pytest.mark.cluster
REPOS = [f"kills/model-{i}" for i in range(4)]
COUNT = 20
KILLS = 6


def manifest(index: int) -> dict[str, Any]:
    # on the fake GPU nodes: 16 GPUs for 20 replicas
    return model_deployment(
        f"md-{index:02d}", "pyannote", REPOS[index % len(REPOS)], resources={"gpus": 1}
    )


def settled(item: dict[str, Any]) -> bool:
    status = item.get("status") or {}
    return status.get("observedGeneration") == item["metadata"]["generation"] and status.get(
        "phase"
    ) not in (None, "Downloading")


def has_condition(pod: dict[str, Any], type_: str, reason: str | None = None) -> bool:
    return any(
        c["type"] == type_ and (c.get("reason") == reason if reason else c["status"] == "True")
        for c in (pod.get("status") or {}).get("conditions", [])
    )


def short_models(stack: ContainerStack) -> dict[str, str]:
    """The resources with a server pod the scheduler has refused, each with the phase that is
    the truth for it: Degraded when another of its pods is ready, else Pending."""
    pods = stack.kubectl.get("pods", None, "-l", "berth.dev/modeldeployment")["items"]
    refused = {
        p["metadata"]["labels"]["berth.dev/modeldeployment"]
        for p in pods
        if has_condition(p, "PodScheduled", "Unschedulable")
    }
    ready = {
        p["metadata"]["labels"]["berth.dev/modeldeployment"]
        for p in pods
        if has_condition(p, "Ready")
    }
    return {name: "Degraded" if name in ready else "Pending" for name in refused}


@pytest.fixture(scope="module")
def operator(stack: ContainerStack) -> Iterator[OperatorProcess]:
    """The operator as a process of this host, to be killed at will; the chart's is back, and
    this module's resources are gone, after the module."""
    with stack.operator_on_host() as process:
        yield process
    stack.clear_models()


def test_operator_killed_at_random_points_loses_nothing(
    stack: ContainerStack, operator: OperatorProcess
) -> None:
    for repo in REPOS:
        stack.hub.add(tiny_repo(repo, weights_mib=1))
    chance = random.Random(20261126)
    stack.kubectl.apply(*(manifest(i) for i in range(COUNT)))
    claim_uid = None
    for kill in range(KILLS):
        time.sleep(chance.uniform(0.2, 2.5))
        operator.kill()
        if kill == 2:  # edits while it is down: the next start must see them
            stack.kubectl("scale", "md", "md-03", "--replicas=0")
            stack.kubectl("patch", "md", "md-07", "--type=merge", "-p", '{"spec":{"replicas":2}}')
        operator.start()
        if claim_uid is None:
            claim = stack.kubectl("get", "pvc", CACHE_CLAIM, check=False)
            if claim.returncode == 0:
                claim_uid = stack.kubectl.get("pvc", CACHE_CLAIM)["metadata"]["uid"]

    # 20 replicas (21 with md-07's second, less md-03's) on 16 fake GPUs: the scheduler refuses
    # some, and once it has, those resources (and only those) say Pending, or Degraded when
    # another of their pods is ready. Until the scheduler has refused them, Starting is the
    # truth, so the wait lasts until both have happened.
    deadline = time.monotonic() + 180
    while True:
        items = stack.kubectl.get("md")["items"]
        short = short_models(stack)
        phases = {m["metadata"]["name"]: (m.get("status") or {}).get("phase") for m in items}
        said = {name: p for name, p in phases.items() if p in ("Pending", "Degraded")}
        if len(items) == COUNT and all(settled(m) for m in items) and short and said == short:
            break
        assert time.monotonic() < deadline, f"phases {phases}; short of GPUs: {short}"
        time.sleep(1)

    by_name = {m["metadata"]["name"]: m for m in items}
    deployments = {d["metadata"]["name"]: d for d in stack.kubectl.get("deployments")["items"]}
    services = {s["metadata"]["name"] for s in stack.kubectl.get("services")["items"]}
    jobs = stack.kubectl.get("jobs")["items"]
    # one download Job per repository, shared by its resources, each downloaded once
    assert len(jobs) == len(REPOS)
    for job in jobs:
        owners = {r["name"] for r in job["metadata"]["ownerReferences"]}
        repo = next(
            e["value"]
            for e in job["spec"]["template"]["spec"]["containers"][0]["env"]
            if e["name"] == "BERTH_MODEL_REPO"
        )
        assert owners == {f"md-{i:02d}" for i in range(COUNT) if REPOS[i % len(REPOS)] == repo}
    weights = [
        r
        for r in stack.hub.responses
        if r["path"].endswith("model.safetensors") and "/kills/" in r["path"]
    ]
    assert len(weights) == len(REPOS), "a model was downloaded twice"
    # every resource has its children, with the latest spec
    for name, item in by_name.items():
        assert name in services and name in deployments
        assert deployments[name]["spec"]["replicas"] == item["spec"].get("replicas", 1)
        conditions = {c["type"]: c for c in item["status"]["conditions"]}
        assert conditions["CacheReady"]["status"] == "True"
    assert by_name["md-03"]["status"]["phase"] == "Stopped"
    assert deployments["md-07"]["spec"]["replicas"] == 2
    phases = [m["status"]["phase"] for m in items]
    assert all(p in ("Starting", "Pending", "Stopped", "Degraded") for p in phases), phases
    # the cache claim was never recreated, and nothing of the cache was deleted
    assert stack.kubectl.get("pvc", CACHE_CLAIM)["metadata"]["uid"] == claim_uid
    assert len(list(stack.cache_dir.glob("models--kills--*"))) == len(REPOS)
