"""Day-2 changes made while clients call, on the real node: what each one does and how the soak
knows it is over. Shared by tests/incontainers/test_day2.py and benchmarks/rollout.py."""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable
from typing import Any

from berth_operator.api.metadata import (
    COMPONENT_LABEL,
    MODEL_DEPLOYMENT_LABEL,
    REVISION_ANNOTATION,
    SERVER_COMPONENT,
)

from tests.engines.forms import multipart
from tests.engines.speech import conversation, speak, wav_bytes
from tests.hub.server import HubRepo
from tests.incontainers.stack import RELEASE, ContainerStack
from tests.incontainers.tiny_models import tiny_model_manifest
from tests.incontainers.traffic import Target, Traffic

#: name -> tiny model repo; each served with two replicas
MODELS = {
    "day2-diarization": "berth-test/tiny-diarization",
    "day2-canary": "berth-test/tiny-canary",
}
ROUTES = {"day2-diarization": "/api/diarization/process", "day2-canary": "/v1/audio/transcriptions"}
LEADER_LEASE = f"{RELEASE}-leader"
#: the longest any one change may take to roll out on this node
ROLLOUT_SECONDS = 420


@functools.cache
def audio(long: bool = False) -> bytes:
    """A short utterance, or a conversation that keeps a request in flight for seconds."""
    if not long:
        return wav_bytes(speak("Hello there."))
    turns = [("en+m3", "This is the first speaker, talking for a while about the weather.")]
    turns += [("en+f3", "And this is the second one, who answers at some length as well.")]
    return wav_bytes(conversation(turns * 3))


def targets(gateway: str, per_second: float) -> list[Target]:
    """Both models through the gateway, every tenth request a long one."""
    found = []
    for name, route in ROUTES.items():
        short, long = (multipart({"model": name}, audio(long)) for long in (False, True))
        found.append(
            Target(name, gateway, (route, *short), per_second, long=(route, *long), long_every=10)
        )
    return found


def server_pods(stack: ContainerStack, name: str) -> list[dict[str, Any]]:
    return stack.kubectl.get("pods", None, "-l", f"{MODEL_DEPLOYMENT_LABEL}={name}")["items"]


def rolled_out(stack: ContainerStack, name: str, check: Callable[[dict], bool] | None) -> bool:
    """The model's Deployment has finished rolling: as many pods as the ModelDeployment wants,
    every one up to date, ready and passing `check`, none terminating."""
    found = stack.kubectl("get", "deployment", name, "-o", "json", check=False)
    if found.returncode != 0:
        return False
    deployment = json.loads(found.stdout)
    wanted = stack.kubectl.get("md", name)["spec"].get("replicas", 1)
    status = deployment.get("status") or {}
    if deployment["spec"]["replicas"] != wanted:
        return False
    if status.get("observedGeneration") != deployment["metadata"]["generation"]:
        return False
    if any(status.get(key, 0) != wanted for key in ("updatedReplicas", "readyReplicas")):
        return False
    pods = server_pods(stack, name)
    return len(pods) == wanted and all(
        not pod["metadata"].get("deletionTimestamp")
        and all(c.get("ready") for c in pod["status"].get("containerStatuses", []))
        and (check is None or check(pod))
        for pod in pods
    )


def wait_rolled_out(
    stack: ContainerStack, names: list[str], check: Callable[[dict], bool] | None = None
) -> None:
    deadline = time.monotonic() + ROLLOUT_SECONDS
    while not all(rolled_out(stack, name, check) for name in names):
        assert time.monotonic() < deadline, (
            f"{names} not rolled out after {ROLLOUT_SECONDS} s:\n"
            + stack.kubectl("get", "deployments,pods", "-o", "wide").stdout
        )
        time.sleep(1)


#: requests a model server holds at once in the soak (16 by default): on this node's two cores a
#: replacement pod that loads slows the serving ones for a minute, and the soak measures what a
#: change does to requests, not how many a starved CPU can hold before it refuses more
HELD_REQUESTS = "64"


def prepare(stack: ContainerStack) -> None:
    """Two operator and two gateway replicas, both models at two replicas, rolled out."""
    stack.clear_models()
    stack.upgrade(replicaCount=2, gateway={"replicaCount": 2})
    held = [{"name": "BERTH_MAX_REQUESTS", "value": HELD_REQUESTS}]
    stack.kubectl.apply(
        *(
            {**manifest, "spec": {**manifest["spec"], "replicas": 2, "env": held}}
            for manifest in (tiny_model_manifest(name, repo) for name, repo in MODELS.items())
        )
    )
    wait_rolled_out(stack, list(MODELS))


def restore(stack: ContainerStack, images: dict[str, str]) -> None:
    """No model, and the stack's `images` and its own values again."""
    stack.clear_models()
    stack.images = dict(images)
    stack.upgrade(replicaCount=1, gateway={"replicaCount": 1})


def new_revision(stack: ContainerStack, name: str, revision: str) -> None:
    """Publishes `revision` of the model's repo (one file more) on the hub; the model moves
    to it, and the change is over once every pod serves it."""
    repo = stack.hub.repos[MODELS[name]]
    files = {**repo.files, "NOTES.md": f"revision {revision}\n".encode()}
    published = stack.hub.add(
        HubRepo(repo.repo_id, files, lfs=repo.lfs, branches=dict(repo.branches))
    )
    published.branches[revision] = published.commit
    patch = {"spec": {"model": {"revision": revision}}}
    stack.kubectl("patch", "md", name, "--type=merge", "-p", json.dumps(patch))
    wait_rolled_out(
        stack,
        [name],
        lambda pod: pod["metadata"].get("annotations", {}).get(REVISION_ANNOTATION) == revision,
    )


def model_pods(stack: ContainerStack) -> dict[str, str]:
    """uid -> pod name of every model server pod."""
    return {
        pod["metadata"]["uid"]: pod["metadata"]["name"]
        for name in MODELS
        for pod in server_pods(stack, name)
    }


def scale(stack: ContainerStack, name: str, replicas: int) -> None:
    stack.kubectl("scale", "md", name, f"--replicas={replicas}")
    wait_rolled_out(stack, [name])


def upgrade_operator(stack: ContainerStack) -> None:
    """A new operator image (same content, new tag): no model server pod changes."""
    before = model_pods(stack)
    generations = {n: stack.kubectl.get("deployment", n)["metadata"]["generation"] for n in MODELS}
    stack.retag("operator", "day2-next")
    stack.upgrade()
    time.sleep(15)  # the new operator's first pass over every model (seconds after it starts)
    assert model_pods(stack) == before, "an operator upgrade restarted model pods"
    after = {n: stack.kubectl.get("deployment", n)["metadata"]["generation"] for n in MODELS}
    assert after == generations, "an operator upgrade rewrote model Deployments"


def upgrade_engines(stack: ContainerStack) -> None:
    """New default engine images in the chart: the models move onto them one at a time (a
    model moves while its Deployment asks for the new image and a pod of the old one is left)."""
    new = {stack.retag(engine, "day2-next") for engine in ("pyannote", "nemo-asr")}

    def on_new_image(pod: dict[str, Any]) -> bool:
        return pod["spec"]["containers"][0]["image"] in new

    stack.upgrade()
    deadline, most_moving = time.monotonic() + 2 * ROLLOUT_SECONDS, 0
    while not all(rolled_out(stack, name, on_new_image) for name in MODELS):
        assert time.monotonic() < deadline, stack.kubectl("get", "deployments,pods").stdout
        most_moving = max(most_moving, len(moving(stack, new)))
        time.sleep(1)
    assert most_moving == 1, f"{most_moving} models moved to the new images at once"


def moving(stack: ContainerStack, new: set[str]) -> set[str]:
    """The models whose Deployment asks for a `new` image while a pod of another still runs
    (a pod whose containers have ended, Succeeded or Failed, holds no GPU any more, even while
    its object lingers for the kubelet's cleanup). One read, Deployments before pods: a model
    seen moving had its old pods still running when the next one's Deployment changed, since
    the operator changes it only once they have ended."""
    items = json.loads(stack.kubectl("get", "deployments,pods", "-o", "json").stdout)["items"]
    templates = {
        item["metadata"]["name"]: item["spec"]["template"]["spec"]["containers"][0]["image"]
        for item in items
        if item["kind"] == "Deployment" and item["metadata"]["name"] in MODELS
    }
    old_pods = {
        labels.get(MODEL_DEPLOYMENT_LABEL)
        for item in items
        if item["kind"] == "Pod"
        and (labels := item["metadata"].get("labels") or {}).get(COMPONENT_LABEL)
        == SERVER_COMPONENT
        and item["spec"]["containers"][0]["image"] not in new
        and (item.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
    }
    return {name for name, image in templates.items() if image in new and name in old_pods}


def delete_a_pod(stack: ContainerStack, name: str) -> None:
    pod = server_pods(stack, name)[0]["metadata"]["name"]
    stack.kubectl("delete", "pod", pod, "--wait=false")
    wait_rolled_out(stack, [name], lambda found: found["metadata"]["name"] != pod)


def roll_gateway(stack: ContainerStack) -> None:
    """A rolling restart of the gateway, over once the old pods have drained and are gone."""
    stack.system("rollout", "restart", "deployment", "berth-gateway")
    stack.system("rollout", "status", "deployment", "berth-gateway", "--timeout=300s", timeout=310)
    deadline = time.monotonic() + ROLLOUT_SECONDS
    while True:
        pods = json.loads(
            stack.system(
                "get", "pods", "-l", "app.kubernetes.io/component=gateway", "-o", "json"
            ).stdout
        )["items"]
        if not any(pod["metadata"].get("deletionTimestamp") for pod in pods):
            return
        assert time.monotonic() < deadline, [p["metadata"]["name"] for p in pods]
        time.sleep(1)


def kill_the_operator(stack: ContainerStack, then_scale: str) -> None:
    """The elected operator's pod killed at once; a change made meanwhile is still carried out
    (by the other replica, elected once the Lease runs out)."""
    lease = json.loads(stack.system("get", "lease", LEADER_LEASE, "-o", "json").stdout)
    leader = lease["spec"]["holderIdentity"]  # the pod's name (the chart sets POD_NAME)
    stack.system("delete", "pod", leader, "--grace-period=0", "--force")
    scale(stack, then_scale, 1)


def run_events(stack: ContainerStack, traffic: Traffic, steady_seconds: float) -> None:
    """Steady traffic, then each change under it, one after another."""
    canary, diarization = "day2-canary", "day2-diarization"
    events: list[tuple[str, Callable[[], None]]] = [
        ("steady", lambda: time.sleep(steady_seconds)),
        ("revision, 2 replicas", lambda: [new_revision(stack, n, "v2") for n in MODELS]),
        ("operator upgrade", lambda: upgrade_operator(stack)),
        ("engine image upgrade", lambda: upgrade_engines(stack)),
        ("pod deleted", lambda: delete_a_pod(stack, canary)),
        ("gateway rolled", lambda: roll_gateway(stack)),
        ("scaled 2 -> 1", lambda: scale(stack, canary, 1)),
        ("revision, 1 replica", lambda: new_revision(stack, canary, "v3")),
        ("scaled 1 -> 2", lambda: scale(stack, canary, 2)),
        ("operator killed", lambda: kill_the_operator(stack, diarization)),
        ("steady after", lambda: time.sleep(steady_seconds)),
    ]
    for name, change in events:
        with traffic.event(name):
            change()
