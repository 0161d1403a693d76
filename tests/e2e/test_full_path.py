"""The whole path for real: apply, download with progress, load offline, answer through the
Service, and `kubectl get md` telling it."""

from __future__ import annotations

import io
import json
import time
import urllib.request

import openai
import pytest

from tests.cluster.kubectl import table_rows
from tests.e2e.stack import LocalStack, tiny_model_manifest
from tests.engines.forms import multipart
from tests.engines.speech import conversation, wav_bytes
from tests.hub.download import MiB
from tests.hub.server import Faults

pytestmark = pytest.mark.cluster


def test_tiny_models_from_apply_to_an_answer(stack: LocalStack) -> None:
    stack.publish_tiny_models()
    # slow enough that the download's progress shows in kubectl get md
    stack.hub.repos["berth-test/tiny-diarization"].faults = Faults(bytes_per_second=1 * MiB)
    began = time.monotonic()
    stack.kubectl.apply(
        tiny_model_manifest("diarization", "berth-test/tiny-diarization"),
        tiny_model_manifest("canary", "berth-test/tiny-canary"),
    )

    partial_progress: set[str] = set()
    deadline = time.monotonic() + 300
    while True:
        rows = table_rows(stack.kubectl, "md")
        if rows.get("diarization", {}).get("PHASE") == "Downloading":
            cache = rows["diarization"]["CACHE"]
            if cache.endswith("%") and cache != "100%":
                partial_progress.add(cache)
        if len(rows) == 2 and all(r["PHASE"] == "Ready" for r in rows.values()):
            break
        assert time.monotonic() < deadline, stack.kubectl("get", "md", "-o", "yaml").stdout
        time.sleep(0.5)
    apply_to_ready = time.monotonic() - began
    print(f"apply to Ready for both tiny models: {apply_to_ready:.1f} s")
    assert partial_progress, "no download progress was seen in kubectl get md"
    assert all(r["READY"] == "1/1" and r["CACHE"] == "100%" for r in rows.values()), rows

    for name, library in (("diarization", "pyannote.audio"), ("canary", "nemo_toolkit")):
        status = stack.kubectl.get("md", name)["status"]
        runtime = status["runtime"]
        assert runtime["state"] == "Ready"
        assert runtime["details"]["sample_rate"] == 16000
        assert runtime["details"]["device"] == "cpu"
        assert runtime["dependencies"]["torch"]["version"]
        assert "cuda_runtime" in runtime["dependencies"]["torch"]
        assert runtime["dependencies"][library]["version"]
        assert runtime["pod"].startswith(f"{name}-")
        assert status["download"]["percent"] == 100
        assert status["download"]["resolvedRevision"]

    speech = wav_bytes(
        conversation(
            [
                ("en+m3", "Good morning, this is the first speaker talking."),
                ("en+f3", "And this is the second voice answering the first one."),
            ]
        )
    )
    body, headers = multipart({}, speech)
    request = urllib.request.Request(
        stack.service_url("diarization") + "/api/diarization/process", data=body, headers=headers
    )
    with urllib.request.urlopen(request, timeout=120) as reply:
        diarized = json.loads(reply.read())
    assert diarized["segments"], diarized
    assert all(s["start"] < s["end"] for s in diarized["segments"])
    assert diarized["runtime"]["details"]["sample_rate"] == 16000

    client = openai.OpenAI(base_url=stack.service_url("canary") + "/v1", api_key="unused")
    transcript = client.audio.transcriptions.create(
        model="canary", file=("talk.wav", io.BytesIO(speech), "audio/wav")
    )
    assert isinstance(transcript.text, str)
