"""Builders and readers for ModelDeployment tests on the control plane."""

from __future__ import annotations

import json
from typing import Any

from berth_operator.api.metadata import DOWNLOAD_PROGRESS_ANNOTATION
from berth_operator.api.modeldeployment import MODEL_SERVER_STATUS_KEYS

from tests.cluster.kubectl import Kubectl


def model_deployment(
    name: str, engine: str = "pyannote", repo: str = "pyannote/speaker-diarization-3.1", **spec: Any
) -> dict[str, Any]:
    return {
        "apiVersion": "berth.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": name},
        "spec": {"engine": engine, "model": {"repo": repo}, **spec},
    }


def condition(md: dict[str, Any], type_: str) -> dict[str, Any]:
    return next(c for c in md.get("status", {}).get("conditions", []) if c["type"] == type_)


def phase_is(phase: str, reason: str | None = None):
    """A predicate on a ModelDeployment: status.phase (and the Ready reason) as given."""

    def check(md: dict[str, Any]) -> bool:
        status = md.get("status") or {}
        if (
            status.get("phase") != phase
            or status.get("observedGeneration") != md["metadata"]["generation"]
        ):
            return False
        return reason is None or condition(md, "Ready")["reason"] == reason

    check.__name__ = f"phase {phase}" + (f" with Ready reason {reason}" if reason else "")
    return check


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def server_container(kubectl: Kubectl, name: str) -> dict[str, Any]:
    return kubectl.get("deployment", name)["spec"]["template"]["spec"]["containers"][0]


def settings(kubectl: Kubectl, name: str) -> dict[str, Any]:
    return json.loads(env_of(server_container(kubectl, name))["BERTH_SETTINGS"])


def report_runtime(
    kubectl: Kubectl,
    cluster: Any,
    md_name: str,
    runtime: dict[str, Any],
    tmp_path: Any,
    as_server_of: str | None = None,
) -> Any:
    """Patches status.runtime as a model server does: with the token of its service account
    (the one of `as_server_of`, by default of `md_name` itself)."""
    return as_model_server(
        kubectl,
        cluster,
        md_name,
        tmp_path,
        "patch",
        "md",
        md_name,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": {"runtime": runtime}}),
        as_server_of=as_server_of,
    )


def as_model_server(
    kubectl: Kubectl,
    cluster: Any,
    md_name: str,
    tmp_path: Any,
    *args: str,
    as_server_of: str | None = None,
) -> Any:
    """kubectl ARGS with the token of a model server's service account (the one of
    `as_server_of`, by default of `md_name` itself); not checked."""
    account = f"berth-{as_server_of or md_name}"
    token = cluster.service_account_token(kubectl.namespace, account, seconds=600)
    config = cluster.write_kubeconfig(tmp_path / f"{account}.kubeconfig", token, kubectl.namespace)
    return cluster.kubectl(f"--kubeconfig={config}", *args, check=False)


def with_managed_fields(kubectl: Kubectl, name: str) -> dict[str, Any]:
    """The ModelDeployment with its managedFields (kubectl hides them by default)."""
    return json.loads(kubectl("get", "md", name, "--show-managed-fields", "-o", "json").stdout)


def status_writers(md: dict[str, Any]) -> dict[str, set[str]]:
    """Top-level status keys each field manager owns, as the API server recorded them."""
    owners: dict[str, set[str]] = {}
    for entry in md["metadata"].get("managedFields") or []:
        fields = (entry.get("fieldsV1") or {}).get("f:status") or {}
        keys = {k.removeprefix("f:") for k in fields if k.startswith("f:")}
        if keys:
            owners.setdefault(entry["manager"], set()).update(keys)
    return owners


def assert_status_owners(md: dict[str, Any]) -> None:
    """The rule of doc/architecture.md: the model server writes status.runtime (and, with LoRA
    adapters, status.adapterLoads), and only those; the operator writes every other key, and
    never those (it removes the entries of pods that are gone)."""
    writers = status_writers(md)
    assert set(writers) <= {"berth-operator", "berth-runtime"}, writers
    assert writers.get("berth-runtime", set()) <= MODEL_SERVER_STATUS_KEYS, writers
    assert not MODEL_SERVER_STATUS_KEYS & writers.get("berth-operator", set()), writers


#: kwok leaves this repository's download pod Running (tests/cluster/stages.yaml), so its Job
#: stays incomplete while a test reports progress as the downloader would
RUN_BY_THE_TEST = "berth-test/run-by-the-test"


def download_job_of(kubectl: Kubectl, name: str) -> str:
    """The name of the download Job a ModelDeployment's status names, once it names one."""
    md = kubectl.wait_for(
        "md",
        name,
        lambda m: ((m.get("status") or {}).get("download") or {}).get("job"),
        what="a Job",
    )
    return md["status"]["download"]["job"]


def report_progress(kubectl: Kubectl, job: str, report: dict[str, Any]) -> None:
    """What the downloader does: its progress, as an annotation on its own Job."""
    value = json.dumps(report)
    kubectl("annotate", "job", job, f"{DOWNLOAD_PROGRESS_ANNOTATION}={value}", "--overwrite")
