"""LoRA adapters with the real operator and API server: adding one leaves the pod template as it
is, a model server's service account may read and watch its own resource and no other, and
status.adapters follows what the pods report (the entries of pods that are gone removed)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.cluster import ControlPlane
from tests.cluster.kubectl import Kubectl
from tests.operator.helpers import (
    as_model_server,
    model_deployment,
    phase_is,
    settings,
)

pytestmark = pytest.mark.usefixtures("operator", "cache_volume")

QWEN = "Qwen/Qwen3-VL-30B-A3B-Instruct"


def tuned(*names: str) -> dict[str, Any]:
    """With `lora` set, so that vLLM keeps LoRA enabled with no adapter at all."""
    adapters = [{"name": n, "repo": f"acme/{n}-lora"} for n in names]
    return model_deployment(
        "tuned", engine="vllm", repo=QWEN, vllm={"adapters": adapters, "lora": {}}
    )


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
    by_name = {a["name"]: a for a in md["status"]["adapters"]}
    assert (by_name["sql"]["state"], by_name["sql"]["loaded"]) == ("Loaded", "1/1")
    assert (by_name["fr"]["state"], by_name["fr"]["reason"]) == ("NotInCache", "AdapterNotInCache")
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
