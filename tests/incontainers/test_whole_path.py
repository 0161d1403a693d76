"""The whole path in containers: Berth's images on a real kubelet, installed by Helm; the tiny
models downloaded by the download Job's image and served by their engines' images."""

from __future__ import annotations

import io
import json
import subprocess
import urllib.request
from typing import Any

import openai
from berth_operator.controller.security import RUN_AS_USER
from openai.types.audio import TranscriptionDiarized

from tests.cluster.kubectl import Kubectl, condition_is, table_rows
from tests.engines.forms import multipart
from tests.engines.speech import (
    check_known_speakers,
    conversation,
    wav_bytes,
)
from tests.incontainers.stack import SYSTEM_NAMESPACE, ContainerStack
from tests.incontainers.timeline import apply_to_ready, seconds_between
from tests.incontainers.tiny_models import tiny_model_manifest
from tests.realnode.pods import box_container, real_node_pod
from tests.realnode.traces import PodTraces
from tests.realnode.waiting import wait_until

SPEECH = wav_bytes(
    conversation(
        [
            ("en+m3", "Good morning, this is the first speaker talking."),
            ("en+f3", "And this is the second voice answering the first one."),
        ]
    )
)


def test_the_operator_and_gateway_run_from_their_images(stack: ContainerStack) -> None:
    assert stack.plane is not None
    pods = json.loads(
        stack.plane.kubectl("-n", SYSTEM_NAMESPACE, "get", "pods", "-o", "json").stdout
    )["items"]
    images = {c["image"] for p in pods for c in p["spec"]["containers"]}
    assert images == {stack.images["operator"]}, images
    assert {p["spec"]["nodeName"] for p in pods} == {stack.node.name}
    assert all(c["ready"] for p in pods for c in p["status"]["containerStatuses"])


def test_tiny_models_from_apply_to_an_answer(stack: ContainerStack, kubectl: Kubectl) -> None:
    canary = tiny_model_manifest("canary", "berth-test/tiny-canary")
    canary["spec"]["asr"] = {"diarizationModel": "diarization"}  # transcripts with speakers
    kubectl.apply(tiny_model_manifest("diarization", "berth-test/tiny-diarization"), canary)
    for name, engine, library in (
        ("diarization", "pyannote", "pyannote.audio"),
        ("canary", "nemo-asr", "nemo_toolkit"),
    ):
        # the engines' images are on the node already (test_slow_pull.py pulls one); the
        # resource says when the engine loads (watched from the apply for the first model only:
        # the second loads meanwhile)
        seen = PodsReadyReasons()
        md = kubectl.wait_for("md", name, seen.until_ready, timeout=600, interval=1)
        assert name != "diarization" or any(
            f"on node {stack.node.name}" in message for message in seen.messages("Loading")
        ), seen.reasons
        row = table_rows(kubectl, "md")[name]
        assert (row["PHASE"], row["READY"], row["CACHE"]) == ("Ready", "1/1", "100%"), row
        runtime = md["status"]["runtime"]
        assert runtime["dependencies"][library]["version"]
        assert runtime["details"]["device"] == "cpu"
        (pod,) = kubectl.get("pods", None, "-l", f"berth.dev/modeldeployment={name}")["items"]
        assert pod["spec"]["containers"][0]["image"] == stack.images[engine]
        assert pod["spec"]["nodeName"] == stack.node.name
        split = apply_to_ready(kubectl, name)
        print(f"{name}: " + ", ".join(f"{k} {v:.1f} s" for k, v in split.items()))
        check_startup_timeline(md, split, stack.node.name)

    # through its own Service, then through the gateway's, which routes by the model field
    gateway = stack.gateway_address()
    for url, fields in (
        (stack.service_address("diarization"), {}),
        (gateway, {"model": "diarization"}),
    ):
        body, headers = multipart(fields, SPEECH)
        request = urllib.request.Request(
            url + "/api/diarization/process", data=body, headers=headers
        )
        with urllib.request.urlopen(request, timeout=120) as reply:
            assert json.loads(reply.read())["segments"]
    client = openai.OpenAI(base_url=gateway + "/v1", api_key="unused")
    transcript = client.audio.transcriptions.create(
        model="canary", file=("talk.wav", io.BytesIO(SPEECH), "audio/wav")
    )
    assert isinstance(transcript.text, str)
    # who said what, in one call: pyannote's turns, then Canary's words assigned to them
    kubectl.wait_for("md", "canary", condition_is("DiarizationReady"), timeout=60, interval=1)
    diarized = client.audio.transcriptions.create(
        model="canary",
        file=("talk.wav", io.BytesIO(SPEECH), "audio/wav"),
        response_format="diarized_json",
    )
    assert isinstance(diarized, TranscriptionDiarized) and diarized.segments, diarized
    assert {s.speaker for s in diarized.segments} <= {"A", "B", "C"}, diarized
    # names for speakers from reference clips, matched by pyannote's embedding model
    check_known_speakers(client, "canary")
    models = json.loads(urllib.request.urlopen(gateway + "/v1/models", timeout=30).read())
    listed = {m["id"]: (m["ready"], m["endpoints"]) for m in models["data"]}
    assert listed == {"diarization": (True, 1), "canary": (True, 1)}, listed


class PodsReadyReasons:
    """A wait's predicate that notes every PodsReady reason and message on its way to Ready."""

    def __init__(self) -> None:
        self.reasons: list[tuple[str, str]] = []

    def until_ready(self, md: dict[str, Any]) -> bool:
        conditions = {c["type"]: c for c in md.get("status", {}).get("conditions") or []}
        if pods := conditions.get("PodsReady"):
            seen = (pods["reason"], pods["message"])
            if not self.reasons or self.reasons[-1] != seen:
                self.reasons.append(seen)
        return conditions.get("Ready", {}).get("status") == "True"

    def messages(self, reason: str) -> list[str]:
        return [message for found, message in self.reasons if found == reason]


def check_startup_timeline(md: dict[str, Any], split: dict[str, float], node: str) -> None:
    """status.startup of a first start: from the apply (download included) to the pod ready,
    its steps adding up; against the API's own timestamps: the pull no shorter than the
    kubelet's Pulling to Pulled, the whole within a second of the resource's apply to Ready."""
    startup = md["status"]["startup"]
    assert startup["node"] == node and startup["since"] == md["metadata"]["creationTimestamp"]
    steps = {step["step"]: step["seconds"] for step in startup["steps"]}
    assert list(steps) == [
        "PodCreated",
        "Scheduled",
        "ImagePulled",
        "ContainerStarted",
        "ModelLoaded",
    ]
    assert abs(sum(steps.values()) - startup["totalSeconds"]) < 0.2, startup
    assert steps["ImagePulled"] >= split["pull"] - 1, (startup, split)
    ready = next(c for c in md["status"]["conditions"] if c["type"] == "Ready")
    applied_to_ready = seconds_between(
        md["metadata"]["creationTimestamp"], ready["lastTransitionTime"]
    )
    assert abs(startup["totalSeconds"] - applied_to_ready) <= 1, (startup, applied_to_ready)


def _exec(kubectl: Kubectl, pod: str, *command: str) -> tuple[int, str]:
    result = kubectl("exec", pod, "--", *command, check=False)
    return result.returncode, result.stdout + result.stderr


def test_the_cache_is_written_by_the_download_and_read_only_for_servers(
    stack: ContainerStack, kubectl: Kubectl
) -> None:
    kubectl.wait_for("md", "diarization", condition_is("Ready"), timeout=600, interval=2)
    repo_dir = stack.cache_dir / "models--berth-test--tiny-diarization"
    owners = {(p.stat().st_uid, p.stat().st_gid) for p in repo_dir.rglob("*") if p.is_file()}
    assert owners == {(RUN_AS_USER, RUN_AS_USER)}, owners
    (pod,) = kubectl.get("pods", None, "-l", "berth.dev/modeldeployment=diarization")["items"]
    mount = next(m for m in pod["spec"]["containers"][0]["volumeMounts"] if m["name"] == "cache")[
        "mountPath"
    ]
    code, output = _exec(kubectl, pod["metadata"]["name"], "touch", f"{mount}/written")
    assert code != 0 and "Read-only file system" in output, output
    code, output = _exec(kubectl, pod["metadata"]["name"], "touch", "/written")
    assert code != 0 and "Read-only file system" in output, output
    code, output = _exec(kubectl, pod["metadata"]["name"], "id", "-u")
    assert (code, output.strip()) == (0, str(RUN_AS_USER))


def test_a_pod_of_another_namespace_reaches_the_gateway_but_not_a_model_server(
    stack: ContainerStack, kubectl: Kubectl
) -> None:
    """The NetworkPolicies the operator made, enforced on the node: around the gateway (its
    keys, its limits) there is no way to a model server."""
    md = kubectl.wait_for("md", "diarization", condition_is("Ready"), timeout=600, interval=2)
    assert md["status"]["runtime"]["dependencies"], "the server reported through its policy"
    (pod,) = kubectl.get("pods", None, "-l", "berth.dev/modeldeployment=diarization")["items"]
    firewall = f"-d {pod['status']['podIP']}/32"
    wait_until(lambda: firewall in _filter_rules(), "the enforcer's rules for the model's pod")
    assert stack.plane is not None
    stack.plane.kubectl("create", "namespace", "outsider")
    outsider = Kubectl(stack.plane, "outsider")
    probe = {"httpGet": {"path": "/", "port": 8080}, "periodSeconds": 1}
    outsider.apply(
        real_node_pod("stranger", [box_container("box", "serve", "8080", readinessProbe=probe)])
    )
    outsider.wait_for("pod", "stranger", condition_is("Ready"), timeout=60)

    def get(url: str) -> tuple[int, str]:
        result = outsider("exec", "stranger", "--", "/testbox", "get", url, check=False)
        return result.returncode, result.stdout + result.stderr

    code, output = get(stack.gateway_address() + "/v1/models")
    assert code == 0 and '"diarization"' in output, output
    code, output = get(stack.service_address("diarization") + "/healthz")
    assert code != 0 and "alive" not in output, output
    stack.plane.kubectl("delete", "namespace", "outsider", "--wait=false")


def _filter_rules() -> str:
    return subprocess.run(
        ["iptables-save", "-t", "filter"], capture_output=True, text=True, timeout=30
    ).stdout


def test_deleting_a_model_leaves_nothing_on_the_node(
    stack: ContainerStack, kubectl: Kubectl
) -> None:
    kubectl.wait_for("md", "diarization", condition_is("Ready"), timeout=600, interval=2)
    (pod,) = kubectl.get("pods", None, "-l", "berth.dev/modeldeployment=diarization")["items"]
    uid = pod["metadata"]["uid"]
    traces = PodTraces.of(stack.node, uid)
    assert traces.mounted(uid)
    kubectl("delete", "md", "diarization", "--wait=true", timeout=120)
    wait_until(
        lambda: (
            not kubectl.get("pods", None, "-l", "berth.dev/modeldeployment=diarization")["items"]
        ),
        "pods gone",
        timeout=120,
    )
    wait_until(lambda: not traces.left(stack.node), "state without task, mount or netns")
    stack.node.wait_for_sandbox_removed(traces.sandbox)
    assert traces.records_left(stack.node) == []
    assert any(stack.cache_dir.glob("models--berth-test--tiny-diarization/blobs/*")), (
        "deleting a resource keeps the cached weights"
    )
