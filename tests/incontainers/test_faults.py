"""Faults on the real path (download Jobs and model servers in their images on the real node):
nothing is lost, and status tells the truth."""

from __future__ import annotations

import datetime
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.kubectl import condition_is
from tests.hub.download import MiB, bytes_on_disk, throttled_repo, tiny_repo
from tests.hub.server import Faults
from tests.incontainers.stack import ContainerStack
from tests.operator.helpers import model_deployment
from tests.realnode.waiting import wait_until

pytestmark = pytest.mark.cluster


@pytest.fixture(autouse=True)
def remove_models(stack: ContainerStack) -> Iterator[None]:
    """Each test's resources go after it, and with them their model servers."""
    yield
    stack.clear_models()


def model(name: str, repo: str, engine: str = "pyannote", **model_spec: Any) -> dict[str, Any]:
    """A resource on the CPU (the real node); `model_spec` goes into spec.model."""
    manifest = model_deployment(name, engine, repo, resources={"gpus": 0})
    manifest["spec"]["model"].update(model_spec)
    return manifest


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


def running_download_container(stack: ContainerStack, md: str) -> dict[str, Any]:
    job = stack.kubectl.get("md", md)["status"]["download"]["job"]
    for pod in stack.kubectl.get("pods", None, "-l", f"job-name={job}")["items"]:
        for status in pod["status"].get("containerStatuses") or []:
            if "running" in status["state"]:
                return {"pod": pod["metadata"]["name"], **status}
    raise LookupError("no running download container")


def test_a_download_killed_at_half_resumes_in_the_next_pod(stack: ContainerStack) -> None:
    # Files end at different times, so the kill finds some complete and one in flight: only
    # that one may be fetched again, and less than all of it (partial files are resumed).
    largest = 12 * MiB
    repo = stack.hub.add(throttled_repo("faults/kill-half", [2, 4, 6, 12], 1.5 * MiB))
    total = sum(len(c) for c in repo.files.values())
    manifest = model("kill-half", repo.repo_id)
    manifest["spec"]["replicas"] = 0  # the download alone
    stack.kubectl.apply(manifest)
    repo_dir = stack.cache_dir / "models--faults--kill-half"
    wait_until(
        lambda: repo_dir.exists() and bytes_on_disk(repo_dir) >= total // 2,
        "download at 50 %",
        timeout=120,
    )
    container = running_download_container(stack, "kill-half")
    os.kill(host_pid(stack, container["containerID"]), signal.SIGKILL)
    on_disk, responses_before = bytes_on_disk(repo_dir), len(stack.hub.responses)
    done_at_kill = {p for p in repo.files if (repo_dir / "blobs" / repo.etag(p)).exists()}

    md = stack.kubectl.wait_for("md", "kill-half", condition_is("CacheReady"), timeout=180)
    after = stack.hub.responses[responses_before:]
    refetched = sum(r["sent"] for r in after) - (total - on_disk)
    assert refetched < largest, f"{refetched} bytes fetched twice"
    assert done_at_kill, "the kill came before any file was complete"
    assert not {r["path"].rsplit("/", 1)[1] for r in after} & done_at_kill
    assert md["status"]["download"]["bytesDone"] == total
    killed = stack.kubectl.get("pod", container["pod"])["status"]["containerStatuses"][0]["state"]
    assert killed["terminated"]["exitCode"] == 137


def test_api_server_restart_mid_download(stack: ContainerStack) -> None:
    repo = stack.hub.add(throttled_repo("faults/apiserver", [4, 8, 12], 1.5 * MiB))
    total = sum(len(c) for c in repo.files.values())
    sent_before = stack.hub.bytes_sent
    stack.kubectl.apply(model("apiserver-restart", repo.repo_id))
    deadline = time.monotonic() + 60
    while stack.hub.bytes_sent - sent_before < total // 4:
        assert time.monotonic() < deadline, "the download did not start"
        time.sleep(0.05)
    assert stack.plane is not None
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
    stack: ContainerStack, case: str, reason: str
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
    # the kubelet may first fail the pod on its own ("failed to sync secret cache", retried):
    # the download's reason is the one it settles on
    md = stack.kubectl.wait_for(
        "md", name, lambda m: download_reason(m) == reason, timeout=150, what=reason
    )
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
        # they were and get nothing either; the stall watchdog (the chart's
        # downloadStallSeconds, STALL_SECONDS in this package's conftest) fails the attempt
        ("stall", Faults(stall_after=0), "Stalled"),
    ],
)
def test_hub_errors_a_retry_may_fix_show_while_the_job_retries(
    stack: ContainerStack, case: str, faults: Faults, reason: str
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


def test_cache_volume_too_small_for_the_model(stack: ContainerStack) -> None:
    repo = tiny_repo("faults/huge")
    repo.claimed_sizes["model.safetensors"] = 1 << 60  # an exabyte: no volume holds it
    stack.hub.add(repo)
    stack.kubectl.apply(model("too-big-for-cache", repo.repo_id))
    md = stack.kubectl.wait_for(
        "md", "too-big-for-cache", lambda m: download_reason(m) is not None, timeout=90
    )
    assert download_reason(md) == "InsufficientStorage"
    assert not list(stack.cache_dir.glob("models--faults--huge/blobs/*"))


def runtime(md: dict[str, Any]) -> dict[str, Any]:
    return (md.get("status") or {}).get("runtime") or {}


def server_pod(stack: ContainerStack, md_name: str) -> dict[str, Any]:
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


def test_runtime_failing_to_load_reports_within_30_s(stack: ContainerStack) -> None:
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


def service_account_token(stack: ContainerStack, pod: dict[str, Any]) -> str | None:
    """The token the kubelet mounted into a pod, read from the node (the container may be
    restarting; the pod's volume is there as long as the pod is)."""
    if "uid" not in pod["metadata"]:
        return None
    volumes = stack.node.workdir / "kubelet" / "pods" / pod["metadata"]["uid"] / "volumes"
    tokens = list(volumes.glob("kubernetes.io~projected/*/token"))
    return tokens[0].read_text() if tokens else None


def host_pid(stack: ContainerStack, container_id: str) -> int:
    inspected = stack.node.crictl("inspect", container_id.split("://")[1])
    return json.loads(inspected.stdout)["info"]["pid"]


def pid_in_its_namespace(pid: int) -> int:
    """What the process is called inside its pod (the last NSpid of /proc/PID/status)."""
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("NSpid:")).split()[-1])


def test_a_model_deleted_as_its_server_starts_goes_at_once(stack: ContainerStack) -> None:
    # Deleted while its server imports torch: the kernel would spare the server SIGTERM if it
    # were its PID namespace's init, and the pod would stay Terminating for its 130 s grace.
    repo = stack.hub.add(tiny_repo("faults/deleted-at-start"))
    name = "deleted-at-start"
    stack.kubectl.apply(model(name, repo.repo_id))

    def started() -> str:
        for status in server_pod(stack, name)["status"].get("containerStatuses") or []:
            if "running" in status["state"]:
                return status["containerID"]
        return ""

    wait_until(started, "the model server's container running", timeout=120)
    assert pid_in_its_namespace(host_pid(stack, started())) != 1  # the pod's pause is
    stack.kubectl("delete", "md", name, "--wait=false")
    wait_until(
        lambda: (
            not stack.kubectl.get("pods", None, "-l", f"berth.dev/modeldeployment={name}")["items"]
        ),
        "the model's pods gone",
        timeout=60,  # the pod's grace period is 130 s
    )


def test_runtime_token_cannot_patch_another_model_deployment(
    stack: ContainerStack, tmp_path: Path
) -> None:
    stack.hub.add(tiny_repo("faults/token"))
    stack.kubectl.apply(model("token-owner", "faults/token"), model("token-victim", "faults/token"))
    stack.kubectl.wait_for("md", "token-owner", cache_ready, timeout=60)
    deadline = time.monotonic() + 60
    while (token := service_account_token(stack, server_pod(stack, "token-owner"))) is None:
        assert time.monotonic() < deadline, "the server pod did not start"
        time.sleep(0.5)
    assert stack.plane is not None
    kubeconfig = stack.plane.write_kubeconfig(tmp_path / "kubeconfig", token, stack.namespace)

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
