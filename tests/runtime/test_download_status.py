"""The download Job reports live progress on its own Job, with its own service account
(RBAC-limited); the operator copies it into the status of every resource sharing the Job."""

from __future__ import annotations

import time

import pytest

from tests.cluster import ControlPlane
from tests.cluster.kubectl import Kubectl
from tests.hub.download import MiB, finish, start_download, tiny_repo
from tests.hub.server import LocalHub
from tests.operator.helpers import (
    RUN_BY_THE_TEST,
    assert_status_owners,
    model_deployment,
    status_writers,
    with_managed_fields,
)

pytestmark = pytest.mark.usefixtures("operator", "cache_volume")
REPO_ID = RUN_BY_THE_TEST  # the test runs the real downloader itself


def test_progress_reaches_every_sharer(
    cluster: ControlPlane, kubectl: Kubectl, hub: LocalHub, tmp_path
):
    repo = hub.add(tiny_repo(REPO_ID, weights_mib=40))
    hub.faults.bytes_per_second = 10 * MiB
    kubectl.apply(model_deployment("first", repo=REPO_ID), model_deployment("second", repo=REPO_ID))
    md = kubectl.wait_for(
        "md",
        "first",
        lambda m: (m.get("status") or {}).get("download", {}).get("job"),
        what="a download job",
    )
    job = md["status"]["download"]["job"]
    kubectl.wait_for(
        "job",
        job,
        lambda j: len(j["metadata"]["ownerReferences"]) == 2,
        what="both sharers owning the Job",
    )

    token = cluster.service_account_token(kubectl.namespace, job, seconds=600)
    kubeconfig = cluster.write_kubeconfig(
        tmp_path / "download.kubeconfig", token, kubectl.namespace
    )
    cache = tmp_path / "cache"
    process = start_download(
        hub,
        cache,
        REPO_ID,
        KUBECONFIG=str(kubeconfig),
        POD_NAMESPACE=kubectl.namespace,
        BERTH_JOB_NAME=job,
        BERTH_REPORT_SECONDS="1",
    )
    seen_midway = set()
    deadline = time.monotonic() + 60
    while process.poll() is None and time.monotonic() < deadline:
        for name in ("first", "second"):
            download = kubectl.get("md", name)["status"].get("download", {})
            if 0 < (download.get("bytesDone") or 0) < repo.size("model.safetensors"):
                seen_midway.add(name)
        time.sleep(0.3)
    result = finish(process, cache)
    assert result.returncode == 0, result.output
    assert seen_midway == {"first", "second"}, "progress was visible while downloading"
    for name in ("first", "second"):
        # the operator copies the final report from the Job on its next pass: wait for it
        download = kubectl.wait_for(
            "md",
            name,
            lambda m: m["status"]["download"].get("completedAt"),
            what="the final report",
        )["status"]["download"]
        assert download["resolvedRevision"] == repo.commit
        assert download["bytesTotal"] == sum(len(c) for c in repo.files.values())
        assert download["bytesDone"] == download["bytesTotal"]
        assert download["filesDone"] == download["filesTotal"] == 3
        assert download["completedAt"] and download["job"] == job
    assert "could not write" not in result.output, result.output
    for name in ("first", "second"):
        assert_status_owners(with_managed_fields(kubectl, name))
        assert "berth-runtime" not in status_writers(with_managed_fields(kubectl, name))
