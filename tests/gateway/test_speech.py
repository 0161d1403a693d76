"""The tiny Canary and pyannote models answer through the gateway, each on its engine's real
model server: OpenAI's transcription route through the `openai` client, and the earlier
system's routes for both."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import pytest
from openai import OpenAI

from tests.cluster import ControlPlane
from tests.cluster.kubectl import Kubectl
from tests.engines.forms import multipart
from tests.engines.runner import EngineServer, cached_tiny_model
from tests.engines.speech import conversation, wav_bytes
from tests.gateway.parts import GatewayProcess, endpoint_slice, http, model_deployment

CANARY_REPO = "nvidia/canary-tiny"
DIARIZATION_REPO = "berth-test/tiny-diarization"


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
def gateway(
    cluster: ControlPlane, crd: None, address: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    """Both engine servers on the local address, their ModelDeployments and EndpointSlices in a
    namespace of the module's own, and a gateway watching it."""
    namespace = f"gateway-speech-{tmp_path_factory.getbasetemp().name[-6:]}".lower()
    cluster.kubectl("create", "namespace", namespace)
    kubectl = Kubectl(cluster, namespace)
    servers = [
        EngineServer(
            "nemo-asr",
            cached_tiny_model("nemo-asr", "tiny_canary.py", CANARY_REPO, tmp_path_factory),
            CANARY_REPO,
            {"servedModelName": "canary"},
            host=address,
        ),
        EngineServer(
            "pyannote",
            cached_tiny_model("pyannote", "tiny_pyannote.py", DIARIZATION_REPO, tmp_path_factory),
            DIARIZATION_REPO,
            {"servedModelName": "diarization"},
            host=address,
        ),
    ]
    gateway = None
    try:
        for server in servers:
            server.wait_ready(timeout=300)
        kubectl.apply(
            model_deployment("canary", "nemo-asr", resources={"gpus": 0}),
            model_deployment("diarization", "pyannote", resources={"gpus": 0}),
            endpoint_slice("canary", address, servers[0].port),
            endpoint_slice("diarization", address, servers[1].port),
        )
        gateway = GatewayProcess(
            cluster, tmp_path_factory.mktemp("gateway"), f"--namespace={namespace}"
        )
        gateway.wait_for_endpoints("canary", 1)
        gateway.wait_for_endpoints("diarization", 1)
        yield gateway
    finally:
        if gateway:
            gateway.stop()
        for server in servers:
            server.stop()
        cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def test_openai_client_transcribes_through_the_gateway(
    gateway: GatewayProcess, speech: bytes
) -> None:
    client = OpenAI(base_url=gateway.url + "/v1", api_key="unused", max_retries=0, timeout=120)
    result = client.audio.transcriptions.create(
        model="canary", file=("speech.wav", io.BytesIO(speech), "audio/wav")
    )
    assert isinstance(result.text, str)


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
