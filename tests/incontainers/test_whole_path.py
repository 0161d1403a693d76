"""The whole path in containers: Berth's images on a real kubelet, installed by Helm; the tiny
models downloaded by the download Job's image and served by their engines' images."""

from __future__ import annotations

import io
import json
import os
import signal
import urllib.request
from datetime import datetime
from typing import Any

import openai
import pytest
from berth_operator.controller.security import RUN_AS_USER

from tests.cluster.kubectl import Kubectl, condition_is, table_rows
from tests.e2e.stack import tiny_model_manifest
from tests.engines.forms import multipart
from tests.engines.speech import conversation, wav_bytes
from tests.hub.download import MiB, bytes_on_disk, throttled_repo
from tests.incontainers.stack import RELEASE, SYSTEM_NAMESPACE, ContainerStack
from tests.realnode.traces import PodTraces
from tests.realnode.waiting import wait_until

# the stack's start and the first pull of the engine's image (8 GB) take minutes
pytestmark = pytest.mark.timeout(900)

SPEECH = wav_bytes(
    conversation(
        [
            ("en+m3", "Good morning, this is the first speaker talking."),
            ("en+f3", "And this is the second voice answering the first one."),
        ]
    )
)


def _time(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def cluster_address(kubectl: Kubectl, service: str, namespace: str | None = None) -> str:
    """http://CLUSTER-IP:PORT of a Service, as kube-proxy routes it from this host."""
    args = ("-n", namespace) if namespace else ()
    spec = json.loads(kubectl(*args, "get", "service", service, "-o", "json").stdout)["spec"]
    return f"http://{spec['clusterIP']}:{spec['ports'][0]['port']}"


def timeline(kubectl: Kubectl, name: str) -> dict[str, float]:
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
    kubectl.apply(
        tiny_model_manifest("diarization", "berth-test/tiny-diarization"),
        tiny_model_manifest("canary", "berth-test/tiny-canary"),
    )
    for name, engine, library in (
        ("diarization", "pyannote", "pyannote.audio"),
        ("canary", "nemo-asr", "nemo_toolkit"),
    ):
        # the first pull of an engine's image (8 GB) takes minutes
        md = kubectl.wait_for("md", name, condition_is("Ready"), timeout=600, interval=2)
        row = table_rows(kubectl, "md")[name]
        assert (row["PHASE"], row["READY"], row["CACHE"]) == ("Ready", "1/1", "100%"), row
        runtime = md["status"]["runtime"]
        assert runtime["dependencies"][library]["version"]
        assert runtime["details"]["device"] == "cpu"
        (pod,) = kubectl.get("pods", None, "-l", f"berth.dev/modeldeployment={name}")["items"]
        assert pod["spec"]["containers"][0]["image"] == stack.images[engine]
        assert pod["spec"]["nodeName"] == stack.node.name
        split = timeline(kubectl, name)
        print(f"{name}: " + ", ".join(f"{k} {v:.1f} s" for k, v in split.items()))

    # through its own Service, then through the gateway's, which routes by the model field
    gateway = cluster_address(kubectl, f"{RELEASE}-gateway", SYSTEM_NAMESPACE)
    for url, fields in (
        (cluster_address(kubectl, "diarization"), {}),
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
    models = json.loads(urllib.request.urlopen(gateway + "/v1/models", timeout=30).read())
    listed = {m["id"]: (m["ready"], m["endpoints"]) for m in models["data"]}
    assert listed == {"diarization": (True, 1), "canary": (True, 1)}, listed


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


def _running_download_container(kubectl: Kubectl, md: str) -> dict[str, Any]:
    job = kubectl.get("md", md)["status"]["download"]["job"]
    for pod in kubectl.get("pods", None, "-l", f"job-name={job}")["items"]:
        for status in pod["status"].get("containerStatuses") or []:
            if "running" in status["state"]:
                return {"pod": pod["metadata"]["name"], **status}
    raise LookupError("no running download container")


def test_a_download_killed_at_half_resumes_in_the_next_pod(
    stack: ContainerStack, kubectl: Kubectl
) -> None:
    largest = 12 * MiB
    repo = stack.hub.add(throttled_repo("faults/kill-half", [2, 4, 6, 12], 1.5 * MiB))
    total = sum(len(c) for c in repo.files.values())
    kubectl.apply(
        {
            "apiVersion": "berth.dev/v1alpha1",
            "kind": "ModelDeployment",
            "metadata": {"name": "kill-half"},
            "spec": {"engine": "pyannote", "model": {"repo": repo.repo_id}, "replicas": 0},
        }
    )
    repo_dir = stack.cache_dir / "models--faults--kill-half"
    wait_until(
        lambda: repo_dir.exists() and bytes_on_disk(repo_dir) >= total // 2,
        "download at 50 %",
        timeout=120,
    )
    container = _running_download_container(kubectl, "kill-half")
    inspected = stack.node.crictl("inspect", container["containerID"].split("://")[1])
    os.kill(json.loads(inspected.stdout)["info"]["pid"], signal.SIGKILL)
    on_disk, responses_before = bytes_on_disk(repo_dir), len(stack.hub.responses)
    done_at_kill = {p for p in repo.files if (repo_dir / "blobs" / repo.etag(p)).exists()}

    md = kubectl.wait_for("md", "kill-half", condition_is("CacheReady"), timeout=180)
    after = stack.hub.responses[responses_before:]
    refetched = sum(r["sent"] for r in after) - (total - on_disk)
    assert refetched < largest, f"{refetched} bytes fetched twice"
    assert done_at_kill, "the kill came before any file was complete"
    assert not {r["path"].rsplit("/", 1)[1] for r in after} & done_at_kill
    assert md["status"]["download"]["bytesDone"] == total
    killed = kubectl.get("pod", container["pod"])["status"]["containerStatuses"][0]["state"]
    assert killed["terminated"]["exitCode"] == 137


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
