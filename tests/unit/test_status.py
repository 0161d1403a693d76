"""Status derived from what was observed: conditions, reasons, phase, stable transitions."""

from berth_operator.api.modeldeployment import (
    MODEL_SERVER_STATUS_KEYS,
    DownloadStatus,
    ModelDeploymentStatus,
)
from berth_operator.config import OperatorConfig
from berth_operator.controller.download import download_identity
from berth_operator.controller.observed import SecretCheck
from berth_operator.controller.status import derive_status

from tests.unit.factories import failed_download_pod, job, md, observed, pod

CONFIG = OperatorConfig()
NOW = "2026-11-26T12:00:00Z"


def job_name_of(resource):
    return download_identity(resource).job_name


def conditions(status):
    return {c["type"]: c for c in status["conditions"]}


def test_downloading_shows_progress_in_words():
    resource = md()
    report = {
        "bytesDone": 3 * 2**30,
        "bytesTotal": 12 * 2**30,
        "percent": 25,
        "bytesPerSecond": 200 * 2**20,
    }
    status = derive_status(
        observed(resource, job=job(job_name_of(resource), report=report)), CONFIG, NOW
    )
    assert status["download"] | report == status["download"], "the Job's report, copied"
    cache = conditions(status)["CacheReady"]
    assert cache["reason"] == "Downloading"
    assert "3.0 GiB of 12.0 GiB (25%), 200.0 MiB/s" in cache["message"]
    assert status["phase"] == "Downloading"


def test_new_download_job_clears_the_previous_progress():
    resource = md(status={"download": {"job": "old-job", "bytesDone": 5, "percent": 100}})
    status = derive_status(observed(resource, job=job(job_name_of(resource))), CONFIG, NOW)
    assert status["download"]["bytesDone"] is None and status["download"]["percent"] is None
    assert status["download"]["job"] == job_name_of(resource)


def test_typed_download_failure_comes_from_the_termination_message():
    failed_pod = {
        "metadata": {"name": "p", "creationTimestamp": "t"},
        "status": {
            "containerStatuses": [
                {
                    "state": {
                        "terminated": {
                            "exitCode": 2,
                            "message": '{"reason": "GatedAccessDenied", "message": "accept the conditions"}',
                        }
                    }
                }
            ]
        },
    }
    status = derive_status(
        observed(md(), job=job("j", "Failed"), download_pods=[failed_pod]), CONFIG, NOW
    )
    assert conditions(status)["Ready"]["reason"] == "GatedAccessDenied"
    assert status["phase"] == "Failed"


def test_a_failed_attempt_shows_while_the_job_retries():
    pods = [
        failed_download_pod("a", "Stalled", "2026-11-26T11:00:00Z"),
        failed_download_pod("b", "NetworkError", "2026-11-26T11:01:00Z"),
    ]
    status = derive_status(observed(md(), job=job("j"), download_pods=pods), CONFIG, NOW)
    cache = conditions(status)["CacheReady"]
    assert cache["reason"] == "DownloadRetrying"
    assert cache["message"].startswith("attempt 2 of 5 failed with NetworkError: the hub answered")
    assert status["phase"] == "Downloading"


def test_job_failure_without_a_report_uses_the_jobs_reason():
    status = derive_status(observed(md(), job=job("j", "Failed")), CONFIG, NOW)
    assert conditions(status)["CacheReady"]["reason"] == "BackoffLimitExceeded"


def test_ready_needs_pods_and_the_runtime():
    resource = md(status={"runtime": {"state": "Ready", "pod": "p1"}})
    parts = {
        "job": job(job_name_of(resource), "Complete"),
        "deployment": {"metadata": {}},
        "pods": [pod("p1")],
    }
    status = derive_status(observed(resource, **parts), CONFIG, NOW)
    assert conditions(status)["Ready"]["status"] == "True" and status["phase"] == "Ready"
    assert status["ready"] == "1/1" and status["download"]["progress"] == "100%"

    stale = md(status={"runtime": {"state": "Ready", "pod": "gone"}})
    status = derive_status(observed(stale, **parts), CONFIG, NOW)
    assert conditions(status)["RuntimeReady"]["reason"] == "NotReported"
    assert status["phase"] == "Starting"


def test_one_of_two_replicas_crashing_is_degraded():
    resource = md(replicas=2, status={"runtime": {"state": "Ready", "pod": "p1"}})
    crashing = pod(
        "p2",
        ready=False,
        containerStatuses=[
            {
                "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                "lastState": {"terminated": {"exitCode": 1}},
                "restartCount": 4,
            }
        ],
    )
    status = derive_status(
        observed(
            resource,
            job=job(job_name_of(resource), "Complete"),
            deployment={"metadata": {}},
            pods=[pod("p1"), crashing],
        ),
        CONFIG,
        NOW,
    )
    assert status["phase"] == "Degraded"
    assert conditions(status)["PodsReady"]["reason"] == "CrashLoopBackOff"
    assert "4 restarts" in conditions(status)["PodsReady"]["message"]


def test_scaled_to_zero_is_stopped_and_ready():
    status = derive_status(observed(md(replicas=0)), CONFIG, NOW)
    assert status["phase"] == "Stopped"
    assert conditions(status)["Ready"] == conditions(status)["Ready"] | {
        "status": "True",
        "reason": "ScaledToZero",
    }


def test_missing_secret_fails_with_the_fix():
    problem = SecretCheck(
        "SecretKeyNotFound", "secret hf-token has no key 'token' (spec.model.tokenSecretRef.key)"
    )
    status = derive_status(observed(md(), token_problem=problem), CONFIG, NOW)
    assert conditions(status)["Ready"]["message"] == problem.message
    assert status["phase"] == "Failed"
    assert conditions(status)["Stalled"]["status"] == "True"
    assert conditions(status)["Stalled"]["reason"] == "SecretKeyNotFound"


def test_transition_time_moves_only_when_status_changes():
    first = derive_status(observed(md()), CONFIG, NOW)
    again = derive_status(
        observed(md(status={"conditions": first["conditions"]})), CONFIG, "2026-11-26T13:00:00Z"
    )
    assert all(c["lastTransitionTime"] == NOW for c in again["conditions"])
    resource = md(status={"conditions": first["conditions"]})
    done = derive_status(
        observed(resource, job=job(job_name_of(resource), "Complete")),
        CONFIG,
        "2026-11-26T14:00:00Z",
    )
    assert conditions(done)["CacheReady"]["lastTransitionTime"] == "2026-11-26T14:00:00Z"
    assert conditions(done)["Ready"]["lastTransitionTime"] == NOW
    assert all(c["observedGeneration"] == 3 for c in done["conditions"])


def test_unschedulable_pod_quotes_the_scheduler():
    unscheduled = pod(
        "p1",
        ready=False,
        scheduled={
            "type": "PodScheduled",
            "status": "False",
            "reason": "Unschedulable",
            "message": "0/3 nodes are available: 3 Insufficient nvidia.com/gpu.",
        },
    )
    resource = md()
    status = derive_status(
        observed(
            resource,
            job=job(job_name_of(resource), "Complete"),
            deployment={"metadata": {}},
            pods=[unscheduled],
        ),
        CONFIG,
        NOW,
    )
    assert status["phase"] == "Pending"
    assert "3 Insufficient nvidia.com/gpu" in conditions(status)["Ready"]["message"]


def test_complete_job_is_100_percent_of_the_reported_total():
    name = job_name_of(md())
    late = {"bytesDone": 40, "bytesTotal": 62, "filesDone": 1, "filesTotal": 2, "percent": 64}
    status = derive_status(observed(md(), job=job(name, "Complete", report=late)), CONFIG, NOW)
    assert (
        status["download"] | {"bytesDone": 62, "filesDone": 2, "percent": 100}
        == (status["download"])
    ), "the final report was lost: the verified Job says every byte is there"
    silent = derive_status(observed(md(), job=job(name, "Complete")), CONFIG, NOW)
    assert silent["download"]["percent"] == 100
    assert silent["download"]["completedAt"] == "2026-11-26T10:00:00Z"


def test_a_complete_download_before_the_deployment_exists_is_starting_not_failed():
    name = job_name_of(md())
    status = derive_status(observed(md(), job=job(name, "Complete")), CONFIG, NOW)
    assert status["phase"] == "Starting"
    assert conditions(status)["Stalled"]["status"] == "False"
    assert conditions(status)["Ready"]["reason"] == "Downloaded"


def test_the_operator_writes_every_status_key_but_the_model_servers():
    resource = md()
    status = derive_status(observed(resource, job=job(job_name_of(resource))), CONFIG, NOW)
    every = {f.alias for f in ModelDeploymentStatus.model_fields.values()}
    assert set(status) == every - MODEL_SERVER_STATUS_KEYS
    # every key of status.download on every pass: nothing of an earlier Job can remain
    assert set(status["download"]) == {f.alias for f in DownloadStatus.model_fields.values()}


def test_a_failed_load_is_the_ready_reason_while_the_pod_is_not_ready():
    report = {"state": "Failed", "pod": "p1", "lastError": {"reason": "PipelineLoadFailed"}}
    resource = md(status={"runtime": report})
    status = derive_status(
        observed(
            resource,
            job=job(job_name_of(resource), "Complete"),
            deployment={"metadata": {}},
            pods=[pod("p1", ready=False)],
        ),
        CONFIG,
        NOW,
    )
    assert status["phase"] == "Failed"
    assert conditions(status)["Ready"]["reason"] == "PipelineLoadFailed"
    assert conditions(status)["PodsReady"]["reason"] == "Starting"


def test_gateway_model_is_the_served_model_name():
    plain = md("canary", engine="nemo-asr")
    named = md("qwen", engine="vllm", vllm={"servedModelName": "qwen3-vl"})
    for resource, expected in ((plain, "canary"), (named, "qwen3-vl")):
        status = derive_status(observed(resource), CONFIG, NOW)
        assert status["gatewayModel"] == expected
