"""An ASR model's diarization partner: the DiarizationReady condition and the index that finds
the ASR models to look at again when their partner changes."""

from __future__ import annotations

from berth_operator.controller.pairing import Pairs, diarization_verdict

from tests.unit.factories import md

READY = {"conditions": [{"type": "Ready", "status": "True", "reason": "Ready", "message": ""}]}
LOADING = {
    "conditions": [
        {"type": "Ready", "status": "False", "reason": "Loading", "message": "loading the model"}
    ]
}


def asr(partner: str | None = "diarization", name: str = "canary"):
    settings = {"asr": {"diarizationModel": partner}} if partner else {}
    return md(name, "nemo-asr", "nvidia/canary-1b-v2", **settings)


def test_the_verdict_follows_the_partner() -> None:
    assert diarization_verdict(asr(None), None) is None  # not paired: no condition at all
    assert diarization_verdict(md("p", "pyannote"), None) is None
    missing = diarization_verdict(asr(), None)
    assert missing is not None and (missing.status, missing.reason) == (
        "False",
        "DiarizationModelMissing",
    )
    assert "ns/diarization" in missing.message
    wrong = diarization_verdict(asr(), md("diarization", "vllm", "org/llm"))
    assert wrong is not None and wrong.reason == "DiarizationModelInvalid"
    loading = diarization_verdict(asr(), md("diarization", status=LOADING))
    assert loading is not None and loading.reason == "DiarizationModelNotReady"
    assert "Loading: loading the model" in loading.message
    ready = diarization_verdict(asr(), md("diarization", status=READY))
    assert ready is not None and (ready.status, ready.reason) == ("True", "DiarizationModelReady")
    at_zero = md("diarization", replicas=0, autoscaling={"minReplicas": 0, "maxReplicas": 1})
    on_request = diarization_verdict(asr(), at_zero)
    assert on_request is not None and on_request.reason == "DiarizationModelOnRequest"


def test_a_partner_that_changes_brings_back_the_models_paired_with_it() -> None:
    pairs = Pairs()
    assert pairs.set(("ns", "canary"), asr()) == set()
    assert pairs.set(("ns", "canary-2"), asr(name="canary-2")) == set()
    # the partner comes, changes or goes: both ASR models look again
    assert pairs.set(("ns", "diarization"), md("diarization")) == {
        ("ns", "canary"),
        ("ns", "canary-2"),
    }
    assert pairs.set(("ns", "diarization"), None) == {("ns", "canary"), ("ns", "canary-2")}
    # one ASR model pairs with another partner, the other is deleted
    pairs.set(("ns", "canary"), asr("other"))
    pairs.set(("ns", "canary-2"), None)
    assert pairs.set(("ns", "diarization"), md("diarization")) == set()
    assert pairs.set(("ns", "other"), md("other")) == {("ns", "canary")}
    # the same name in another namespace is another model
    assert pairs.set(("elsewhere", "other"), md("other")) == set()
