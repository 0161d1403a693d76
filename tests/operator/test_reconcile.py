"""The operator on a real control plane: children, pod truth, sharing, status, restarts."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import yaml

from tests.cluster import ControlPlane
from tests.cluster.kubectl import Kubectl, condition_is
from tests.cluster.nodes import FakeNode
from tests.gpu_nodes import on_own_nodes, own_gpu_nodes
from tests.operator.helpers import (
    condition,
    env_of,
    model_deployment,
    phase_is,
    report_runtime,
    server_container,
    settings,
)
from tests.operator_process import OperatorProcess

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

pytestmark = pytest.mark.usefixtures("operator", "cache_volume")


def load_example(name: str) -> dict:
    return yaml.safe_load((EXAMPLES / name).read_text())


def test_seed_examples_produce_their_children(kubectl: Kubectl, namespace: str):
    # Pods must pass the restricted Pod Security Standard: enforce it on the namespace.
    kubectl("label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted")
    kubectl("create", "secret", "generic", "hf-token", "--from-literal=token=hf_secret_value")
    for example in ("qwen3-vl-vllm.yaml", "canary-nemo-asr.yaml", "pyannote-diarization.yaml"):
        kubectl.apply(load_example(example))
    for name in ("qwen3-vl", "canary", "diarization"):
        md = kubectl.wait_for("md", name, phase_is("Starting"))
        assert condition(md, "CacheReady")["status"] == "True"
        assert md["status"]["endpoint"] == f"http://{name}.{namespace}.svc.cluster.local:8000"
        # Starting comes as soon as the pod exists; kwok marks it Running a moment later
        kubectl(
            "wait",
            "pod",
            "-l",
            f"berth.dev/modeldeployment={name}",
            "--for=jsonpath={.status.phase}=Running",
            "--timeout=30s",
        )
        pods = kubectl.get("pods", None, "-l", f"berth.dev/modeldeployment={name}")["items"]
        assert [p["status"]["phase"] for p in pods] == ["Running"]
        for kind in ("service", "serviceaccount", "role", "rolebinding"):
            assert kubectl.get(kind, name if kind == "service" else f"berth-{name}")

    qwen = server_container(kubectl, "qwen3-vl")
    assert qwen["resources"]["limits"] == {"nvidia.com/gpu": "2"}
    assert settings(kubectl, "qwen3-vl")["tensorParallelSize"] == 2
    assert settings(kubectl, "qwen3-vl")["maxModelLen"] == 8192
    assert settings(kubectl, "qwen3-vl")["limitMmPerPrompt"] == {"image": 4, "video": 0}
    assert {"name": "dshm", "mountPath": "/dev/shm"} in qwen["volumeMounts"]
    assert env_of(qwen)["HF_HUB_OFFLINE"] == "1" and "HF_TOKEN" not in env_of(qwen)
    assert qwen["startupProbe"]["httpGet"]["path"] == "/health"

    canary = server_container(kubectl, "canary")
    assert "dshm" not in json.dumps(canary["volumeMounts"])
    assert settings(kubectl, "canary") | {"sourceLang": "en", "targetLang": "en"} == settings(
        kubectl, "canary"
    )
    assert canary["readinessProbe"]["httpGet"]["path"] == "/readyz"

    diarization_job = kubectl.get("md", "diarization")["status"]["download"]["job"]
    job_env = env_of(
        kubectl.get("job", diarization_job)["spec"]["template"]["spec"]["containers"][0]
    )
    assert job_env["HF_TOKEN"] == {"secretKeyRef": {"name": "hf-token", "key": "token"}}
    assert env_of(server_container(kubectl, "diarization"))["PYANNOTE_METRICS_ENABLED"] == "0"
    everything = kubectl("get", "md", "-o", "yaml").stdout + kubectl("get", "events").stdout
    assert "hf_secret_value" not in everything
    claim = kubectl.get("pvc", "berth-model-cache")
    assert "ownerReferences" not in claim["metadata"]


def test_ready_needs_the_runtime_report(cluster: ControlPlane, kubectl: Kubectl, tmp_path):
    kubectl.apply(model_deployment("asr", engine="nemo-asr", repo="nvidia/canary-1b-v2"))
    kubectl.apply(model_deployment("other"))
    md = kubectl.wait_for("md", "asr", phase_is("Starting"))
    assert condition(md, "Ready")["status"] == "False"
    assert condition(md, "RuntimeReady")["reason"] == "NotReported"
    pod = kubectl.get("pods", None, "-l", "berth.dev/modeldeployment=asr")["items"][0]["metadata"][
        "name"
    ]

    loading = report_runtime(kubectl, cluster, "asr", {"state": "Loading", "pod": pod}, tmp_path)
    assert loading.returncode == 0, loading.stderr
    kubectl.wait_for("md", "asr", condition_is("RuntimeReady", "False", reason="Loading"))

    report_runtime(kubectl, cluster, "asr", {"state": "Ready", "pod": pod}, tmp_path)
    md = kubectl.wait_for("md", "asr", phase_is("Ready", reason="ModelServing"))
    assert md["status"]["ready"] == "1/1"
    assert md["status"]["runtime"] == {"state": "Ready", "pod": pod}, (
        "the operator must keep the runtime's report"
    )

    forbidden = report_runtime(
        kubectl, cluster, "other", {"state": "Ready"}, tmp_path, as_server_of="asr"
    )
    assert forbidden.returncode != 0 and "forbidden" in forbidden.stderr.lower()

    failed = {
        "state": "Failed",
        "pod": pod,
        "lastError": {"reason": "CudaOutOfMemory", "message": "CUDA out of memory"},
    }
    report_runtime(kubectl, cluster, "asr", failed, tmp_path)
    md = kubectl.wait_for("md", "asr", phase_is("Failed", reason="CudaOutOfMemory"))
    assert condition(md, "Ready")["message"] == "CUDA out of memory"


def test_oversized_gpu_request_shows_unschedulable(kubectl: Kubectl):
    kubectl.apply(
        model_deployment(
            "huge", engine="vllm", repo="Qwen/Qwen3-VL-30B-A3B-Instruct", resources={"gpus": 16}
        )
    )
    md = kubectl.wait_for("md", "huge", phase_is("Pending", reason="Unschedulable"))
    message = condition(md, "Ready")["message"]
    assert "Insufficient nvidia.com/gpu" in message, message
    assert condition(md, "PodsReady")["reason"] == "Unschedulable"


def test_a_cache_claim_that_stays_pending_is_named_with_the_fix(kubectl: Kubectl):
    kubectl.apply(model_deployment("unbound", cache={"claimName": "no-volume-for-me"}))
    md = kubectl.wait_for("md", "unbound", phase_is("Pending", reason="CacheClaimPending"))
    message = condition(md, "CacheReady")["message"]
    assert "cache claim no-volume-for-me is Pending" in message, message
    assert "storageClass" in message and "PersistentVolume" in message, message


def events_of(kubectl: Kubectl, name: str) -> list[dict]:
    selector = f"involvedObject.name={name},involvedObject.kind=ModelDeployment"
    return kubectl.get("events", None, "--field-selector", selector)["items"]


def wait_for_event(kubectl: Kubectl, name: str, reason: str) -> list[dict]:
    """The events of `name` once one with `reason` is among them."""
    deadline = time.monotonic() + 30
    while True:
        events = events_of(kubectl, name)
        if any(e["reason"] == reason for e in events):
            return events
        assert time.monotonic() < deadline, events
        time.sleep(0.5)


def test_condition_transitions_are_events(cluster: ControlPlane, kubectl: Kubectl):
    # a node of its own: the shared GPU nodes may still be full of other tests' terminating
    # pods, and an Unschedulable pod is rightly a warning
    with own_gpu_nodes(cluster, kubectl.namespace, FakeNode("gpu", gpus=1)):
        kubectl.apply(model_deployment("told", scheduling=on_own_nodes(kubectl.namespace)))
        kubectl.wait_for("md", "told", phase_is("Starting"))
        events = wait_for_event(kubectl, "told", "Downloaded")
    downloaded = next(e for e in events if e["message"].startswith("CacheReady is True: "))
    assert downloaded["reason"] == "Downloaded" and downloaded["type"] == "Normal"
    warnings = [(e["reason"], e["message"]) for e in events if e["type"] == "Warning"]
    assert not warnings, f"a healthy start warns of nothing: {warnings}"
    assert downloaded["source"]["component"] == "berth-operator"
    described = kubectl("describe", "md", "told").stdout
    assert "Downloaded" in described.split("Events:")[-1], described


@pytest.mark.parametrize(
    ("image", "reason", "words"),
    [
        ("berth-test/crash:1", "CrashLoopBackOff", "CUDA out of memory"),
        ("berth-test/oom:1", "OOMKilled", "spec.resources.memory"),
        ("berth-test/missing:1", "ImagePullBackOff", "berth-test/missing:1"),
    ],
)
def test_pod_failures_reach_status(kubectl: Kubectl, image: str, reason: str, words: str):
    kubectl.apply(model_deployment("broken", image=image))
    md = kubectl.wait_for("md", "broken", phase_is("Failed", reason=reason))
    assert words in condition(md, "Ready")["message"]


def test_failing_download_shows_its_reason(kubectl: Kubectl):
    kubectl.apply(model_deployment("gated", repo="berth-test/gated"))
    md = kubectl.wait_for("md", "gated", phase_is("Failed", reason="AuthRequired"))
    assert "tokenSecretRef" in condition(md, "CacheReady")["message"]
    assert md["status"]["download"]["job"]
    assert not kubectl.get("deployments")["items"], "no model server without weights"


def test_missing_secret_is_a_condition_with_the_fix(kubectl: Kubectl):
    kubectl.apply(
        model_deployment(
            "needs-token",
            repo="org/private",
            model={"repo": "org/private", "tokenSecretRef": {"name": "hf", "key": "token"}},
        )
    )
    md = kubectl.wait_for("md", "needs-token", phase_is("Failed", reason="SecretNotFound"))
    assert "secret hf not found" in condition(md, "Ready")["message"]
    assert "spec.model.tokenSecretRef" in condition(md, "Ready")["message"]
    kubectl("create", "secret", "generic", "hf", "--from-literal=wrong=x")
    kubectl("annotate", "md", "needs-token", "touch=1")  # Secrets are not watched: nudge it
    md = kubectl.wait_for(
        "md", "needs-token", condition_is("CacheReady", "False", reason="SecretKeyNotFound")
    )
    assert (
        "secret hf has no key 'token' (spec.model.tokenSecretRef.key)"
        in condition(md, "CacheReady")["message"]
    )
    kubectl("delete", "secret", "hf")
    kubectl("create", "secret", "generic", "hf", "--from-literal=token=hf_x")
    kubectl("annotate", "md", "needs-token", "touch=2", "--overwrite")
    kubectl.wait_for("md", "needs-token", phase_is("Starting"))


def test_resources_for_one_model_share_one_download_job(kubectl: Kubectl):
    kubectl.apply(model_deployment("first"), model_deployment("second"))
    first = kubectl.wait_for("md", "first", phase_is("Starting"))
    second = kubectl.wait_for("md", "second", phase_is("Starting"))
    assert first["status"]["download"]["job"] == second["status"]["download"]["job"]
    jobs = kubectl.get("jobs")["items"]
    assert len(jobs) == 1
    owners = sorted(ref["name"] for ref in jobs[0]["metadata"]["ownerReferences"])
    assert owners == ["first", "second"]
    kubectl("delete", "md", "first")
    kubectl.wait_for(
        "job",
        jobs[0]["metadata"]["name"],
        lambda j: [r["name"] for r in j["metadata"]["ownerReferences"]] == ["second"],
        what="only 'second' as owner",
    )


def test_deleting_a_resource_keeps_the_cache_claim(kubectl: Kubectl):
    kubectl.apply(model_deployment("short-lived"))
    kubectl.wait_for("md", "short-lived", phase_is("Starting"))
    claim_uid = kubectl.get("pvc", "berth-model-cache")["metadata"]["uid"]
    kubectl("delete", "md", "short-lived")
    for kind in (
        "deployment/short-lived",
        "service/short-lived",
        "serviceaccount/berth-short-lived",
    ):
        gone = kubectl("wait", "--for=delete", kind, "--timeout=30s", check=False)
        assert gone.returncode == 0, gone.stderr
    assert not kubectl.get("jobs")["items"]
    assert kubectl.get("pvc", "berth-model-cache")["metadata"]["uid"] == claim_uid


def test_scale_to_zero_stops_and_scale_up_reuses_the_cache(kubectl: Kubectl):
    kubectl.apply(model_deployment("scaled"))
    kubectl.wait_for("md", "scaled", phase_is("Starting"))
    job = kubectl.get("md", "scaled")["status"]["download"]["job"]
    kubectl("scale", "md", "scaled", "--replicas=0")
    md = kubectl.wait_for("md", "scaled", phase_is("Stopped", reason="ScaledToZero"))
    assert condition(md, "Ready")["status"] == "True"
    kubectl.wait_for(
        "deployment", "scaled", lambda d: d["spec"]["replicas"] == 0, what="0 replicas"
    )
    kubectl(
        "wait", "--for=delete", "pod", "-l", "berth.dev/modeldeployment=scaled", "--timeout=30s"
    )
    kubectl("scale", "md", "scaled", "--replicas=2")
    md = kubectl.wait_for(
        "md",
        "scaled",
        lambda m: m.get("status", {}).get("readyReplicas") == 2,
        what="2 ready replicas",
    )
    assert md["status"]["download"]["job"] == job
    assert len(kubectl.get("jobs")["items"]) == 1


def test_revision_change_downloads_before_switching(kubectl: Kubectl):
    kubectl.apply(model_deployment("rolling"))
    kubectl.wait_for("md", "rolling", phase_is("Starting"))
    kubectl(
        "patch",
        "md",
        "rolling",
        "--type=merge",
        "-p",
        '{"spec":{"model":{"revision":"berth-test-missing"}}}',
    )
    md = kubectl.wait_for(
        "md", "rolling", condition_is("CacheReady", "False", reason="RevisionNotFound")
    )
    deployment = kubectl.get("deployment", "rolling")
    assert deployment["metadata"]["annotations"]["berth.dev/revision"] == "main", (
        "keeps serving main"
    )
    assert md["status"]["phase"] == "Starting"
    kubectl("patch", "md", "rolling", "--type=merge", "-p", '{"spec":{"model":{"revision":"v2"}}}')
    kubectl.wait_for(
        "deployment",
        "rolling",
        lambda d: d["spec"]["template"]["metadata"]["annotations"]["berth.dev/revision"] == "v2",
        what="the v2 revision in the pod template",
    )
    assert len(kubectl.get("jobs")["items"]) == 1, "jobs no resource needs are removed"


def test_spec_change_rolls_the_deployment(kubectl: Kubectl):
    kubectl.apply(model_deployment("tuned", engine="vllm", repo="Qwen/Qwen3-VL-30B-A3B-Instruct"))
    kubectl.wait_for("md", "tuned", phase_is("Starting"))
    before = kubectl.get("deployment", "tuned")["metadata"]["generation"]
    kubectl("patch", "md", "tuned", "--type=merge", "-p", '{"spec":{"vllm":{"maxModelLen":4096}}}')
    kubectl.wait_for(
        "deployment",
        "tuned",
        lambda d: d["metadata"]["generation"] > before,
        what="a new generation",
    )
    assert settings(kubectl, "tuned")["maxModelLen"] == 4096
    md = kubectl.wait_for("md", "tuned", phase_is("Starting"))
    assert md["status"]["observedGeneration"] == 2


def test_redownload_annotation_runs_a_clean_download(kubectl: Kubectl):
    kubectl.apply(model_deployment("fresh"))
    kubectl.wait_for("md", "fresh", phase_is("Starting"))
    old_job = kubectl.get("md", "fresh")["status"]["download"]["job"]
    kubectl("annotate", "md", "fresh", "berth.dev/redownload=2026-11-26")
    md = kubectl.wait_for(
        "md",
        "fresh",
        lambda m: m["status"]["download"]["job"] != old_job,
        what="a new download job",
    )
    new_job = kubectl.get("job", md["status"]["download"]["job"])
    assert env_of(new_job["spec"]["template"]["spec"]["containers"][0])["BERTH_FORCE"] == "1"
    kubectl("wait", "--for=delete", f"job/{old_job}", "--timeout=30s")


def test_nothing_is_written_when_nothing_changed(kubectl: Kubectl, operator: OperatorProcess):
    kubectl.apply(model_deployment("quiet"))
    kubectl.wait_for("md", "quiet", phase_is("Starting"))
    md = kubectl.wait_for("md", "quiet", lambda m: m["status"]["ready"] == "1/1", what="1/1 ready")
    transitions = {c["type"]: c["lastTransitionTime"] for c in md["status"]["conditions"]}
    children = (
        "deployment/quiet",
        "service/quiet",
        "serviceaccount/berth-quiet",
        "role/berth-quiet",
    )

    def versions() -> dict[str, str]:
        return {
            kind: kubectl.get(*kind.split("/"))["metadata"]["resourceVersion"] for kind in children
        }

    kubectl("label", "deployment", "quiet", "extra=label")  # an event on a child
    annotated = json.loads(
        kubectl("annotate", "md", "quiet", "note=unrelated", "-o", "json").stdout
    )
    before = versions()
    events_before = len(events_of(kubectl, "quiet"))
    reconciles = operator.metric("berth_reconciles_total")
    kubectl.wait_for(
        "md",
        "quiet",
        lambda _: operator.metric("berth_reconciles_total") >= reconciles + 1,
        what="another reconcile",
    )
    time.sleep(2)  # room for a write, were one to come
    md = kubectl.get("md", "quiet")
    assert md["metadata"]["resourceVersion"] == annotated["metadata"]["resourceVersion"], (
        "status was rewritten"
    )
    assert versions() == before, "a child was rewritten"
    assert len(events_of(kubectl, "quiet")) == events_before, "no event when nothing changed"
    assert {c["type"]: c["lastTransitionTime"] for c in md["status"]["conditions"]} == transitions
    # kopf keeps no bookkeeping on the resource: no finalizers, annotations or status of its own.
    assert "finalizers" not in md["metadata"]
    assert set(md["metadata"]["annotations"]) == {
        "kubectl.kubernetes.io/last-applied-configuration",
        "note",
    }
    assert "kopf" not in md["status"]
    fields = json.loads(kubectl("get", "md", "quiet", "-o", "json", "--show-managed-fields").stdout)
    assert not [m for m in fields["metadata"]["managedFields"] if "kopf" in m["manager"]]


def test_operator_killed_mid_reconcile_converges(kubectl: Kubectl, operator: OperatorProcess):
    kubectl.apply(*(model_deployment(f"m{i}") for i in range(8)))
    operator.kill()
    operator.start()
    for i in range(8):
        kubectl.wait_for("md", f"m{i}", phase_is("Starting"), timeout=60)
    assert len(kubectl.get("jobs")["items"]) == 1
    assert len(kubectl.get("deployments")["items"]) == 8
    assert (
        len(kubectl.get("pods", None, "-l", "app.kubernetes.io/component=model-server")["items"])
        == 8
    )
