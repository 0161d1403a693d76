"""LoRA adapters with the real operator and API server: adding one leaves the pod template as it
is, a model server's service account may read and watch its own resource and no other, each
adapter downloads with a Job of its own (shared by the resources that use it), and
status.adapters follows the downloads, then what the pods report (the entries of pods that are
gone removed)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.cluster import ControlPlane
from tests.cluster.kubectl import Kubectl
from tests.operator.helpers import (
    RUN_BY_THE_TEST,
    as_model_server,
    model_deployment,
    phase_is,
    report_progress,
    settings,
)

pytestmark = pytest.mark.usefixtures("operator", "cache_volume")

QWEN = "Qwen/Qwen3-VL-30B-A3B-Instruct"


def tuned(*names: str, name: str = "tuned", repos: dict[str, str] | None = None) -> dict[str, Any]:
    """With `lora` set, so that vLLM keeps LoRA enabled with no adapter at all; an adapter's
    repository is acme/<name>-lora unless `repos` names another."""
    repos = repos or {}
    adapters = [{"name": n, "repo": repos.get(n, f"acme/{n}-lora")} for n in names]
    return model_deployment(name, engine="vllm", repo=QWEN, vllm={"adapters": adapters, "lora": {}})


def adapters(md: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """status.adapters by name; empty until the operator has written a status."""
    return {a["name"]: a for a in (md.get("status") or {}).get("adapters") or []}


def adapter_states(md: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {name: (a["state"], a["reason"]) for name, a in adapters(md).items()}


def jobs_by_repo(kubectl: Kubectl) -> dict[str, dict[str, Any]]:
    """The download Jobs, by the repository each one downloads."""
    found = {}
    for job in kubectl.get("jobs")["items"]:
        container = job["spec"]["template"]["spec"]["containers"][0]
        env = {e["name"]: e.get("value") for e in container["env"]}
        found[env["BERTH_MODEL_REPO"]] = job
    return found


def owners(job: dict[str, Any]) -> list[str]:
    return sorted(r["name"] for r in job["metadata"]["ownerReferences"])


def test_each_adapter_downloads_once_for_every_resource_that_uses_it(kubectl: Kubectl):
    repos = {"gated": "berth-test/gated", "slow": RUN_BY_THE_TEST}
    kubectl.apply(tuned("sql", "gated", "slow", repos=repos))
    kubectl.apply(tuned("sql", name="tuned-too"))
    md = kubectl.wait_for(
        "md",
        "tuned",
        lambda m: (
            adapter_states(m).get("gated", ("",))[0] == "Failed"
            and adapter_states(m).get("sql", ("",))[0] == "Loading"
        ),
        what="sql in the cache, gated refused",
    )
    by_name = adapters(md)
    assert by_name["gated"]["reason"] == "AuthRequired"
    assert by_name["gated"]["message"].startswith("adapter gated: ")
    assert by_name["slow"]["state"] == "Downloading"
    assert md["status"]["phase"] == "Starting", "an adapter's download holds no model back"

    jobs = jobs_by_repo(kubectl)
    assert set(jobs) == {QWEN, "acme/sql-lora", "berth-test/gated", RUN_BY_THE_TEST}
    assert owners(jobs["acme/sql-lora"]) == ["tuned", "tuned-too"]  # one download, two users
    assert owners(jobs[QWEN]) == ["tuned", "tuned-too"]
    # the adapter's download reports its progress like the model's
    report_progress(
        kubectl,
        jobs[RUN_BY_THE_TEST]["metadata"]["name"],
        {"bytesDone": 1024, "bytesTotal": 4096, "percent": 25},
    )
    md = kubectl.wait_for(
        "md",
        "tuned",
        lambda m: "(25%)" in (adapters(m).get("slow", {}).get("message") or ""),
        what="the adapter's progress",
    )

    # an adapter removed: its Job goes when no resource needs it, and stays for the others
    kubectl.apply(tuned(repos=repos))
    kubectl.wait_for(
        "job",
        jobs["acme/sql-lora"]["metadata"]["name"],
        lambda j: owners(j) == ["tuned-too"],
        what="only tuned-too as the owner",
    )
    for repo in ("berth-test/gated", RUN_BY_THE_TEST):  # needed by no resource: deleted
        kubectl("wait", "--for=delete", f"job/{jobs[repo]['metadata']['name']}", "--timeout=30s")


def template(kubectl: Kubectl) -> dict[str, Any]:
    return kubectl.get("deployment", "tuned")["spec"]["template"]


def test_adapters_change_no_pod_and_their_status_follows_the_pods(
    cluster: ControlPlane, kubectl: Kubectl, tmp_path
):
    kubectl.apply(tuned("sql"), model_deployment("other", engine="vllm", repo=QWEN))
    kubectl.wait_for("md", "tuned", phase_is("Starting"))
    before = template(kubectl)
    assert "adapters" not in json.dumps(before)
    assert settings(kubectl, "tuned")["lora"] == {"maxLoras": 4, "maxLoraRank": 16}

    kubectl.apply(tuned("sql", "fr"))
    md = kubectl.wait_for(
        "md", "tuned", lambda m: len((m.get("status") or {}).get("adapters") or []) == 2
    )
    assert template(kubectl) == before  # the pods follow the adapters themselves
    assert kubectl.get("deployment", "tuned")["metadata"]["generation"] == 1

    # the model server may read and watch its own resource, and no other
    watch = "/apis/berth.dev/v1alpha1/namespaces/{ns}/modeldeployments?fieldSelector=metadata.name%3D{name}&watch=true&timeoutSeconds=1"
    own = as_model_server(
        kubectl,
        cluster,
        "tuned",
        tmp_path,
        "get",
        "--raw",
        watch.format(ns=kubectl.namespace, name="tuned"),
    )
    assert own.returncode == 0 and '"name":"sql"' in own.stdout, own.stderr
    other = as_model_server(
        kubectl,
        cluster,
        "tuned",
        tmp_path,
        "get",
        "--raw",
        watch.format(ns=kubectl.namespace, name="other"),
    )
    assert other.returncode != 0 and "forbidden" in other.stderr.lower()
    assert as_model_server(kubectl, cluster, "tuned", tmp_path, "get", "md", "other").returncode

    # what the pod reports, as its supervisor does, and what status makes of it
    pod = kubectl.get("pods", None, "-l", "berth.dev/modeldeployment=tuned")["items"][0]
    name = pod["metadata"]["name"]
    loads = {
        name: {"loaded": ["sql"], "notInCache": ["fr"]},
        "tuned-gone": {"loaded": ["sql", "fr"]},
    }
    patch = json.dumps({"status": {"adapterLoads": loads}})
    reported = as_model_server(
        kubectl,
        cluster,
        "tuned",
        tmp_path,
        "patch",
        "md",
        "tuned",
        "--subresource=status",
        "--type=merge",
        "-p",
        patch,
    )
    assert reported.returncode == 0, reported.stderr
    md = kubectl.wait_for(
        "md",
        "tuned",
        lambda m: "tuned-gone" not in ((m.get("status") or {}).get("adapterLoads") or {}),
        what="the report of a pod that is gone removed",
    )
    by_name = adapters(md)
    assert (by_name["sql"]["state"], by_name["sql"]["loaded"]) == ("Loaded", "1/1")
    assert (by_name["fr"]["state"], by_name["fr"]["reason"]) == ("Loading", "Loading")
    assert md["status"]["adaptersLoaded"] == "1/2"
    assert md["status"]["adapterLoads"][name]["loaded"] == ["sql"]
    wide = kubectl("get", "md", "tuned", "-o", "wide").stdout
    assert wide.splitlines()[0].split()[-1] == "ADAPTERS" and wide.split()[-1] == "1/2", wide

    # the last adapter gone: the adapter keys go too, the pods stay as they are
    kubectl.apply(tuned())
    md = kubectl.wait_for(
        "md", "tuned", lambda m: "adapters" not in (m.get("status") or {}), what="no adapters"
    )
    assert "adaptersLoaded" not in md["status"]
    assert template(kubectl) == before
