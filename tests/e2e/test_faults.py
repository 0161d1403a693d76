"""Faults on the real path (downloads and servers run on the local node): nothing is lost, and
status tells the truth."""

from __future__ import annotations

import datetime
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.stack import LocalStack
from tests.hub.download import MiB, bytes_on_disk, throttled_repo, tiny_repo
from tests.hub.server import Faults

pytestmark = pytest.mark.cluster
OPERATOR_ENV = {"BERTH_DOWNLOAD_STALL_SECONDS": "20"}


@pytest.fixture(autouse=True)
def remove_models(stack: LocalStack) -> Iterator[None]:
    """Each test's resources go after it, and with them their model servers."""
    yield
    stack.kubectl("delete", "md", "--all", "--wait=false")


def model(name: str, repo: str, engine: str = "pyannote", **model_spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "berth.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": name},
        "spec": {
            "engine": engine,
            "model": {"repo": repo, **model_spec},
            "resources": {"gpus": 0},
        },
    }


def condition(md: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(c for c in md["status"].get("conditions", []) if c["type"] == kind)


def cache_ready(md: dict[str, Any]) -> bool:
    conditions = (md.get("status") or {}).get("conditions", [])
    return any(c["type"] == "CacheReady" and c["status"] == "True" for c in conditions)


def download_reason(md: dict[str, Any]) -> str | None:
    """The reason of a failed download (CacheReady's), None while none failed."""
    status = md.get("status") or {}
    if status.get("phase") != "Failed":
        return None
    return next(c["reason"] for c in status["conditions"] if c["type"] == "CacheReady")


def download_pod(stack: LocalStack, md_name: str) -> str:
    job = stack.kubectl.get("md", md_name)["status"]["download"]["job"]
    pods = stack.kubectl.get("pods", None, "-l", f"job-name={job}")["items"]
    running = [p for p in pods if p["status"].get("phase") in ("Pending", "Running")]
    return running[0]["metadata"]["name"]


def test_download_pod_killed_at_half_resumes_without_refetching(stack: LocalStack) -> None:
    # Files end at different times, so the kill finds some complete and one in flight: only
    # that one may be fetched again, and less than all of it (partial files are resumed).
    largest = 12 * MiB
    repo = stack.hub.add(throttled_repo("faults/kill-half", [2, 4, 6, 12], 1.5 * MiB))
    total = sum(len(c) for c in repo.files.values())
    stack.kubectl.apply(model("kill-half", repo.repo_id))
    repo_dir = stack.claim_directory() / "models--faults--kill-half"
    deadline = time.monotonic() + 60
    while not repo_dir.exists() or bytes_on_disk(repo_dir) < total // 2:
        assert time.monotonic() < deadline, "the download did not reach 50 %"
        time.sleep(0.05)
    pod = download_pod(stack, "kill-half")
    process = stack.agent.runner_for(stack.namespace, pod).containers[0].popen
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    on_disk, responses_before = bytes_on_disk(repo_dir), len(stack.hub.responses)
    done_at_kill = {p for p in repo.files if (repo_dir / "blobs" / repo.etag(p)).exists()}

    md = stack.kubectl.wait_for("md", "kill-half", cache_ready, timeout=120)
    after = stack.hub.responses[responses_before:]
    refetched = sum(r["sent"] for r in after) - (total - on_disk)
    assert refetched < largest, f"{refetched} bytes fetched twice"
    assert done_at_kill, "the kill came before any file was complete"
    refetched_files = {r["path"].rsplit("/", 1)[1] for r in after}
    assert not refetched_files & done_at_kill, "finished files were fetched again"
    download = md["status"]["download"]
    assert download["bytesDone"] == download["bytesTotal"] == total
    assert download["percent"] == 100
    killed = stack.kubectl.get("pod", pod)["status"]["containerStatuses"][0]["state"]
    assert killed["terminated"]["exitCode"] == 137


def test_api_server_restart_mid_download(stack: LocalStack) -> None:
    repo = stack.hub.add(throttled_repo("faults/apiserver", [4, 8, 12], 1.5 * MiB))
    total = sum(len(c) for c in repo.files.values())
    sent_before = stack.hub.bytes_sent
    stack.kubectl.apply(model("apiserver-restart", repo.repo_id))
    deadline = time.monotonic() + 60
    while stack.hub.bytes_sent - sent_before < total // 4:
        assert time.monotonic() < deadline, "the download did not start"
        time.sleep(0.05)
    outage = stack.plane.restart_apiserver(down_seconds=3)

    md = stack.kubectl.wait_for("md", "apiserver-restart", cache_ready, timeout=120)
    download = md["status"]["download"]
    assert download["bytesDone"] == download["bytesTotal"] == total
    assert stack.hub.bytes_sent - sent_before == total  # nothing fetched twice
    assert outage >= 3


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("unauthorized", "AuthRequired"),
        ("forbidden", "GatedAccessDenied"),
        ("missing", "RepoNotFound"),
    ],
)
def test_hub_refusals_fail_the_download_with_their_reason(
    stack: LocalStack, case: str, reason: str
) -> None:
    repo_id = f"faults/{case}"
    extra: dict[str, Any] = {}
    if case == "unauthorized":
        stack.hub.add(tiny_repo(repo_id, gated=True, tokens={"hf_right"}))
    elif case in ("forbidden", "missing"):
        # with a token the hub tells a gated repo (403) from a missing one (404); without, 401
        if case == "forbidden":
            stack.hub.add(tiny_repo(repo_id, gated=True, tokens={"hf_right"}))
        secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "wrong-token"}}
        stack.kubectl.apply({**secret, "stringData": {"token": "hf_wrong"}})
        extra = {"tokenSecretRef": {"name": "wrong-token", "key": "token"}}
    name = f"hub-{case}"
    stack.kubectl.apply(model(name, repo_id, **extra))
    md = stack.kubectl.wait_for(
        "md", name, lambda m: download_reason(m) is not None, timeout=150, what="a reason"
    )
    assert download_reason(md) == reason, json.dumps(md["status"], indent=1)
    assert md["status"]["phase"] == "Failed"
    cache = condition(md, "CacheReady")
    assert cache["status"] == "False" and cache["reason"] == reason
    assert len(cache["message"]) > 20  # a sentence with the fix, not a code
    # nothing else was touched: no model server was created
    assert stack.kubectl("get", "deploy", name, check=False).returncode != 0


def retrying(md: dict[str, Any]) -> bool:
    conditions = (md.get("status") or {}).get("conditions", [])
    return any(c["type"] == "CacheReady" and c["reason"] == "DownloadRetrying" for c in conditions)


@pytest.mark.parametrize(
    ("case", "faults", "reason"),
    [
        ("server-error", Faults(status=500), "NetworkError"),
        # the hub sends headers, then nothing: huggingface_hub's retries resume from where
        # they were and get nothing either; the stall watchdog (20 s for this stack's
        # operator, BERTH_DOWNLOAD_STALL_SECONDS) fails the attempt
        ("stall", Faults(stall_after=0), "Stalled"),
    ],
)
def test_hub_errors_a_retry_may_fix_show_while_the_job_retries(
    stack: LocalStack, case: str, faults: Faults, reason: str
) -> None:
    repo = stack.hub.add(tiny_repo(f"faults/{case}", weights_mib=4))
    repo.faults = faults
    name = f"hub-{case}"
    stack.kubectl.apply(model(name, repo.repo_id))
    md = stack.kubectl.wait_for("md", name, retrying, timeout=90, what="DownloadRetrying")
    cache = condition(md, "CacheReady")
    assert f"attempt 1 of 5 failed with {reason}" in cache["message"]
    assert md["status"]["phase"] == "Downloading"
    # the hub recovers: the Job's next attempt completes the download
    repo.faults = None
    md = stack.kubectl.wait_for("md", name, cache_ready, timeout=120)
    assert md["status"]["download"]["percent"] == 100


def test_cache_volume_too_small_for_the_model(stack: LocalStack) -> None:
    repo = tiny_repo("faults/huge")
    repo.claimed_sizes["model.safetensors"] = 1 << 60  # an exabyte: no volume holds it
    stack.hub.add(repo)
    stack.kubectl.apply(model("too-big-for-cache", repo.repo_id))
    md = stack.kubectl.wait_for(
        "md", "too-big-for-cache", lambda m: download_reason(m) is not None, timeout=90
    )
    assert download_reason(md) == "InsufficientStorage"
    assert not list(stack.claim_directory().glob("models--faults--huge/blobs/*"))


def runtime(md: dict[str, Any]) -> dict[str, Any]:
    return (md.get("status") or {}).get("runtime") or {}


def server_pod(stack: LocalStack, md_name: str) -> dict[str, Any]:
    """The live model-server pod of a resource ({} while there is none)."""
    pods = stack.kubectl.get("pods", None, "-l", f"berth.dev/modeldeployment={md_name}")["items"]
    live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
    return live[0] if live else {"metadata": {"name": ""}, "status": {}}


def seconds_between(earlier: str, later: str) -> float:
    """Seconds between two API timestamps (RFC 3339, UTC, second resolution)."""
    start, end = (
        datetime.datetime.fromisoformat(s.replace("Z", "+00:00")) for s in (earlier, later)
    )
    return (end - start).total_seconds()


def test_runtime_failing_to_load_reports_within_30_s(stack: LocalStack) -> None:
    stack.hub.add(tiny_repo("faults/not-a-pipeline"))
    stack.kubectl.apply(model("load-fails", "faults/not-a-pipeline"))
    stack.kubectl.wait_for("md", "load-fails", cache_ready, timeout=60)
    deadline = time.monotonic() + 60
    while not server_pod(stack, "load-fails")["status"].get("startTime"):
        assert time.monotonic() < deadline, "the server pod did not start"
        time.sleep(0.25)
    pod = server_pod(stack, "load-fails")
    md = stack.kubectl.wait_for(
        "md", "load-fails", lambda m: bool(runtime(m).get("lastError")), timeout=60
    )
    error = runtime(md)["lastError"]
    # the runtime's own report: when it was written, not when this test read it
    elapsed = seconds_between(pod["status"]["startTime"], error["time"])
    assert elapsed <= 30, f"lastError {elapsed:.0f} s after the pod started"
    assert runtime(md)["state"] == "Failed"
    assert error["pod"] == pod["metadata"]["name"]
    assert error["reason"] and error["message"]
    # phase and conditions are the operator's, written on its pass after the report
    md = stack.kubectl.wait_for("md", "load-fails", lambda m: m["status"]["phase"] == "Failed")
    assert condition(md, "Ready")["status"] == "False"
    assert condition(md, "Ready")["reason"] == error["reason"]


def test_runtime_token_cannot_patch_another_model_deployment(stack: LocalStack) -> None:
    stack.hub.add(tiny_repo("faults/token"))
    stack.kubectl.apply(model("token-owner", "faults/token"), model("token-victim", "faults/token"))
    stack.kubectl.wait_for("md", "token-owner", cache_ready, timeout=60)
    deadline = time.monotonic() + 60
    while (
        runner := stack.agent.runner_for(
            stack.namespace, server_pod(stack, "token-owner")["metadata"]["name"]
        )
    ) is None or not (runner.workdir / "kubeconfig").exists():
        assert time.monotonic() < deadline, "the server pod did not start"
        time.sleep(0.5)
    kubeconfig = runner.workdir / "kubeconfig"

    def patch(name: str) -> subprocess.CompletedProcess[str]:
        return stack.plane.kubectl(
            "--kubeconfig",
            str(kubeconfig),
            "-n",
            stack.namespace,
            "patch",
            "md",
            name,
            "--subresource=status",
            "--type=merge",
            "-p",
            json.dumps({"status": {"runtime": {"state": "Ready"}}}),
            check=False,
        )

    refused = patch("token-victim")
    assert refused.returncode != 0
    assert "Forbidden" in refused.stderr and "token-victim" in refused.stderr
    assert patch("token-owner").returncode == 0  # the same token works on its own resource
