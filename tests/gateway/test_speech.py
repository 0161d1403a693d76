"""The tiny Canary and pyannote models answer through the gateway, each on its engine's real
model server: OpenAI's transcription route through the `openai` client, the earlier system's
routes for both, and transcripts with speakers from the two together."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import pytest
from openai import OpenAI
from openai.types.audio import TranscriptionDiarized

from tests.cluster import ControlPlane
from tests.cluster.kubectl import Kubectl
from tests.engines.forms import multipart
from tests.engines.runner import cached_tiny_model
from tests.engines.speech import (
    check_known_speakers,
    conversation,
    wav_bytes,
)
from tests.gateway.parts import GatewayProcess, endpoint_slice, http, model_deployment, wait_until
from tests.gateway.speech_stack import (
    CANARY_REPO,
    DIARIZATION_REPO,
    SpeechStack,
    closed_port,
    speech_gateway,
)


@pytest.fixture(scope="module")
def speech() -> bytes:
    return wav_bytes(
        conversation(
            [
                ("en", "Good morning. The weather today is sunny with a light breeze."),
                ("en-us", "We will meet at the station at nine."),
            ]
        )
    )


@pytest.fixture(scope="module")
def stack(
    cluster: ControlPlane, crd: None, address: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SpeechStack]:
    """Both engine servers on the local address, their ModelDeployments (Canary paired with
    pyannote) and EndpointSlices in a namespace of the module's own, and a gateway watching
    it."""
    namespace = f"gateway-speech-{tmp_path_factory.getbasetemp().name[-6:]}".lower()
    work = tmp_path_factory.mktemp("speech")
    caches = {
        "nemo-asr": cached_tiny_model("nemo-asr", "tiny_canary.py", CANARY_REPO, tmp_path_factory),
        "pyannote": cached_tiny_model(
            "pyannote", "tiny_pyannote.py", DIARIZATION_REPO, tmp_path_factory
        ),
    }
    with speech_gateway(cluster, namespace, address, caches, work) as found:
        yield found


@pytest.fixture(scope="module")
def gateway(stack: SpeechStack) -> GatewayProcess:
    return stack.gateway


def test_openai_client_transcribes_through_the_gateway(
    gateway: GatewayProcess, speech: bytes
) -> None:
    client = OpenAI(base_url=gateway.url + "/v1", api_key="unused", max_retries=0, timeout=120)
    result = client.audio.transcriptions.create(
        model="canary", file=("speech.wav", io.BytesIO(speech), "audio/wav")
    )
    assert isinstance(result.text, str)


def test_diarized_json_through_the_openai_client(gateway: GatewayProcess, speech: bytes) -> None:
    """One call: the gateway asks the paired pyannote model for speaker turns, Canary's words
    are assigned to them; the client parses OpenAI's diarized shape into its own types."""
    client = OpenAI(base_url=gateway.url + "/v1", api_key="unused", max_retries=0, timeout=120)
    result = client.audio.transcriptions.create(
        model="canary",
        file=("speech.wav", io.BytesIO(speech), "audio/wav"),
        response_format="diarized_json",
    )
    assert isinstance(result, TranscriptionDiarized)
    assert result.segments, "speech gave no segment"
    assert {s.speaker for s in result.segments} <= {"A", "B", "C"}  # the tiny model's 3 classes
    assert result.segments[0].speaker == "A"
    starts = [s.start for s in result.segments]
    assert starts == sorted(starts) and all(s.start <= s.end for s in result.segments)
    assert result.segments[-1].end <= result.duration + 1
    # every word of the transcript is in exactly one segment (random weights: the words are noise)
    assert "".join(s.text for s in result.segments).replace(" ", "") == result.text.replace(" ", "")


def test_known_speakers_through_the_openai_client(gateway: GatewayProcess) -> None:
    """OpenAI's known_speaker_names[] and known_speaker_references[] (data URLs) reach the
    paired pyannote model, whose embedding tells the two test voices apart: each name labels
    the speaker who holds most of its voice's time, and no letter is left."""
    client = OpenAI(base_url=gateway.url + "/v1", api_key="unused", max_retries=0, timeout=120)
    check_known_speakers(client, "canary")


def test_speakers_in_other_formats_and_on_the_earlier_route(
    gateway: GatewayProcess, speech: bytes
) -> None:
    srt = post_text(gateway, "/v1/audio/transcriptions", speech, "srt")
    cues = [block.split("\n") for block in srt.strip().split("\n\n")]
    assert cues and all(lines[2].split(": ", 1)[0] in ("A", "B", "C") for lines in cues)
    verbose = json.loads(post_text(gateway, "/v1/audio/transcriptions", speech, "verbose_json"))
    assert all(segment["speaker"] in ("A", "B", "C") for segment in verbose["segments"])
    alias = post(
        gateway,
        "/api/audio/transcribe",
        *multipart({"model": "canary", "response_format": "diarized_json"}, speech),
    )
    assert all(segment["speaker"] in ("A", "B", "C") for segment in alias["segments"])


def post_text(gateway: GatewayProcess, path: str, speech: bytes, response_format: str) -> str:
    fields = {"model": "canary", "response_format": response_format, "diarize": "true"}
    status, _, payload = http("POST", gateway.url + path, *multipart(fields, speech))
    assert status == 200, payload
    return payload.decode()


def test_why_a_transcript_cannot_have_speakers(
    cluster: ControlPlane, address: str, stack: SpeechStack, speech: bytes
) -> None:
    """Never a transcript silently missing its speakers: each case is an error with its reason.
    ASR models that cannot have speakers, for this test only: not paired, paired with nothing,
    paired with a diarization model whose only pod refuses connections."""
    gateway, kubectl = stack.gateway, Kubectl(cluster, stack.namespace)
    unpaired = (
        model_deployment("solo", "nemo-asr", resources={"gpus": 0}),
        model_deployment("orphan", "nemo-asr", asr={"diarizationModel": "nobody"}),
        model_deployment("stranded", "nemo-asr", asr={"diarizationModel": "unreachable"}),
        model_deployment("unreachable", "pyannote", resources={"gpus": 0}),
        endpoint_slice("unreachable", address, closed_port()),
    )
    kubectl.apply(*unpaired)
    gateway.wait_for_endpoints("unreachable", 1)
    wait_until(lambda: {"solo", "orphan", "stranded"} <= listed(gateway), "the models listed")
    try:
        cannot_have_speakers(gateway, speech)
        canary_paired_with("unreachable", kubectl, gateway)
        try:
            speakers_optional(gateway, speech)
        finally:
            canary_paired_with("diarization", kubectl, gateway)
    finally:
        for manifest in unpaired:
            kubectl("delete", manifest["kind"], manifest["metadata"]["name"], check=False)
        wait_until(lambda: not {"solo", "orphan", "stranded"} & listed(gateway), "models gone")


def listed(gateway: GatewayProcess) -> set[str]:
    return {m["id"] for m in json.loads(http("GET", gateway.url + "/v1/models")[2])["data"]}


def cannot_have_speakers(gateway: GatewayProcess, speech: bytes) -> None:
    def refused(model: str, **fields: str) -> tuple[int, dict[str, str], dict[str, Any]]:
        form = {"model": model, "response_format": "diarized_json", **fields}
        status, headers, payload = http(
            "POST", gateway.url + "/v1/audio/transcriptions", *multipart(form, speech)
        )
        return status, headers, json.loads(payload)["error"]

    status, _, error = refused("solo")
    assert (status, error["code"]) == (400, "SpeakersUnavailable")
    assert "spec.asr.diarizationModel" in error["message"]
    status, headers, error = refused("orphan")
    assert (status, error["code"]) == (503, "DiarizationModelMissing")
    assert "nobody" in error["message"] and headers["Retry-After"]
    status, _, error = refused("stranded")
    assert (status, error["code"]) == (502, "UpstreamUnavailable")
    assert error["message"].startswith("the diarization model unreachable: ")
    # the diarization model refuses the request itself: the client learns why
    status, _, error = refused("canary", num_speakers="0")
    assert status == 400
    assert "diarization answered 400" in error["message"] and "num_speakers" in error["message"]
    # a known speaker without a reference clip: the diarization model names the field
    status, _, error = refused("canary", **{"known_speaker_names[]": "agent"})
    assert status == 400 and "known_speaker_references[] 0" in error["message"]
    # the model list says which models can say who speaks
    status, _, listed = http("GET", gateway.url + "/v1/models")
    pairs = {m["id"]: m.get("diarizationModel") for m in json.loads(listed)["data"]}
    assert pairs["canary"] == "diarization" and pairs["solo"] is None


def canary_paired_with(partner: str, kubectl: Kubectl, gateway: GatewayProcess) -> None:
    patch = {"spec": {"asr": {"diarizationModel": partner}}}
    kubectl("patch", "md", "canary", "--type=merge", "-p", json.dumps(patch))

    def paired() -> bool:
        models = json.loads(http("GET", gateway.url + "/v1/models")[2])["data"]
        return {m["id"]: m.get("diarizationModel") for m in models}["canary"] == partner

    wait_until(paired, f"canary paired with {partner}")


def speakers_optional(gateway: GatewayProcess, speech: bytes) -> None:
    """Canary is paired with a diarization model that cannot be reached: a client that sent
    speakers_optional=true gets the transcript without speakers, flagged in every format (the
    header, `speakers_unavailable` in JSON, the speaker `unknown`); without it, the error."""

    def transcribe(response_format: str, **fields: str) -> tuple[int, dict[str, str], bytes]:
        form = {"model": "canary", "response_format": response_format, "diarize": "true"}
        body, headers = multipart(form | fields, speech)
        return http("POST", gateway.url + "/v1/audio/transcriptions", body, headers)

    status, _, payload = transcribe("diarized_json")
    assert status == 502, payload
    status, headers, payload = transcribe("diarized_json", speakers_optional="true")
    assert status == 200, payload
    assert headers["Berth-Speakers-Unavailable"] == "UpstreamUnavailable"
    answer = json.loads(payload)
    assert answer["speakers_unavailable"]["reason"] == "UpstreamUnavailable"
    assert answer["speakers_unavailable"]["message"].startswith("the diarization model unreachable")
    assert answer["segments"] and {s["speaker"] for s in answer["segments"]} == {"unknown"}
    status, headers, payload = transcribe("srt", speakers_optional="true")
    assert status == 200 and headers["Berth-Speakers-Unavailable"] == "UpstreamUnavailable"
    cues = [block.split("\n") for block in payload.decode().strip().split("\n\n")]
    assert cues and all(lines[2].startswith("unknown: ") for lines in cues), cues


def post(gateway: GatewayProcess, path: str, body: bytes, headers: dict[str, str]) -> Any:
    status, _, payload = http("POST", gateway.url + path, body, headers)
    assert status == 200, payload
    return json.loads(payload)


def test_the_earlier_systems_transcription_route(gateway: GatewayProcess, speech: bytes) -> None:
    path = "/api/audio/transcribe"
    # `model` after the file: the gateway finds it in the buffered form
    after = post(gateway, path, *multipart({"model": "canary"}, speech, file_first=True))
    # no model: the only model of the route's engine
    alone = post(gateway, path, *multipart({}, speech))
    # the model in a header: the body streams through without being buffered
    body, headers = multipart({}, speech)
    streamed = post(gateway, path, body, {**headers, "X-Berth-Model": "canary"})
    assert all(isinstance(answer["text"], str) for answer in (after, alone, streamed))


def test_the_earlier_systems_diarization_route(gateway: GatewayProcess, speech: bytes) -> None:
    path = "/api/diarization/process"
    # `model` after the file: the gateway finds it in the buffered form, the server accepts it
    after = post(gateway, path, *multipart({"model": "diarization"}, speech, file_first=True))
    # no model: the only pyannote model answers
    alone = post(gateway, path, *multipart({}, speech))
    # the model in the query or a header: the body streams through without being buffered
    body, headers = multipart({}, speech)
    named = post(gateway, path + "?model=diarization", body, headers)
    streamed = post(gateway, path, body, {**headers, "X-Berth-Model": "diarization"})
    for answer in (after, alone, named, streamed):
        assert all(set(s) >= {"speaker", "start", "end"} for s in answer["segments"])
