"""The nemo-asr engine with the real NeMo on the CPU: a tiny random canary2 model, fetched by the
download Job into an HF cache, served offline and called with the official OpenAI client."""

from __future__ import annotations

import io
import itertools
import json
import os
import re
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest
from berth_runtime.engines.nemo_asr.model import EXTRACTION_DIR
from openai import APIStatusError, OpenAI

from tests.engines.conftest import EngineServer, cached_tiny_model
from tests.engines.forms import multipart
from tests.engines.speech import SAMPLE_RATE, conversation, speak, wav_bytes

REPO_ID = "nvidia/canary-tiny"
SERVED = "canary"
LANGUAGES = ["en", "de", "fr", "es"]
SETTINGS = {
    "servedModelName": SERVED,
    "sourceLang": "fr",  # not the built-in default, so its use shows
    "targetLang": "en",  # Canary translates to and from English only
    "maxAudioSeconds": 120,
    "chunkSeconds": 30,
    "maxBatchSize": 8,
    "batchWaitMs": 100,
}
TIMES = re.compile(r"(\d\d):(\d\d):(\d\d)[,.](\d{3}) --> (\d\d):(\d\d):(\d\d)[,.](\d{3})")
timings: dict[str, float] = {}


@pytest.fixture(scope="module")
def server(serve: Any, tmp_path_factory: pytest.TempPathFactory) -> EngineServer:
    started = time.monotonic()
    cache = cached_tiny_model("nemo-asr", "tiny_canary.py", REPO_ID, tmp_path_factory)
    timings["build and download"] = time.monotonic() - started
    # /tmp as a restarted container finds it: what a start killed midway left behind
    leftover = cache.parent / "tmp" / EXTRACTION_DIR / "model_weights.ckpt"
    leftover.parent.mkdir(parents=True)
    leftover.write_bytes(b"half written")
    started = time.monotonic()
    engine_server = serve("nemo-asr", cache, REPO_ID, SETTINGS, TMPDIR=str(leftover.parent.parent))
    engine_server.status = engine_server.wait_ready(timeout=300)
    timings["start to Ready"] = time.monotonic() - started
    return engine_server


@pytest.fixture(scope="module")
def client(server: EngineServer) -> OpenAI:
    return OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=300)


@pytest.fixture(scope="module")
def speech() -> bytes:
    """About 11 s of English speech: long enough for the aligner to place random words."""
    return wav_bytes(
        conversation(
            [
                ("en", "Good morning. The weather today is sunny with a light breeze."),
                ("en-us", "We will meet at the station at nine and take the early train."),
                ("en", "Please bring the documents and a warm coat."),
            ]
        )
    )


def upload(data: bytes, name: str = "speech.wav") -> tuple[str, io.BytesIO, str]:
    return (name, io.BytesIO(data), "audio/wav")


def seconds(match: tuple[str, ...]) -> tuple[float, float]:
    h1, m1, s1, ms1, h2, m2, s2, ms2 = (int(x) for x in match)
    return h1 * 3600 + m1 * 60 + s1 + ms1 / 1000, h2 * 3600 + m2 * 60 + s2 + ms2 / 1000


def error_of(call: Any) -> tuple[int, dict[str, str]]:
    with pytest.raises(APIStatusError) as caught:
        call()
    return caught.value.status_code, caught.value.response.json()["error"]


def test_loads_offline_and_reports_ready(server: EngineServer) -> None:
    status = server.status
    assert status["state"] == "Ready", status
    dependencies = status["dependencies"]
    assert "cuda_runtime" in dependencies["torch"]
    assert dependencies["nemo_toolkit"]["version"] == "3.0.0"
    details = status["details"]
    assert details["sample_rate"] == 16000
    assert details["device"] == "cpu" and "CPU" in details["warning"]
    assert details["model_class"] == "EncDecMultiTaskModel"
    assert details["tokenizer"] == "CanaryTokenizer"
    assert details["languages"] == LANGUAGES
    assert details["timestamps"] == "aligner"  # the CTC model inside the .nemo, as canary-1b-v2
    # one extraction for Canary and its aligner, removed once loaded, and the leftover with it
    log = server.log.read_text()
    assert log.count("Restoration will occur within pre-extracted directory") == 2, log[-3000:]
    assert not (server.cache.parent / "tmp" / EXTRACTION_DIR).exists()
    # what status.runtime.progress said while it loaded
    steps = server.load_steps()
    assert steps[0] == "importing NeMo" and steps[-1].endswith(".nemo onto cpu"), steps
    assert re.fullmatch(r"unpacking \S+\.nemo \(\d+\.\d\d GB\)", steps[1]), steps
    print(f"\nload {details['load_seconds']} s; timings {timings}")


def test_every_response_format(client: OpenAI, speech: bytes) -> None:
    duration = len(speech) / 2 / SAMPLE_RATE

    started = time.monotonic()
    json_answer = client.audio.transcriptions.create(
        model=SERVED, file=upload(speech), language="en", response_format="json"
    )
    timings["one transcription (json, 11 s)"] = time.monotonic() - started
    assert isinstance(json_answer.text, str) and json_answer.text

    text = client.audio.transcriptions.create(
        model=REPO_ID, file=upload(speech), language="en", response_format="text"
    )
    assert isinstance(text, str) and text.strip() == json_answer.text

    srt = client.audio.transcriptions.create(
        model="canary-tiny", file=upload(speech), language="en", response_format="srt"
    )
    blocks = [b for b in srt.strip().split("\n\n") if b]
    assert blocks and all(b.splitlines()[0].isdigit() for b in blocks)
    srt_times = [seconds(m) for m in TIMES.findall(srt)]
    assert len(srt_times) == len(blocks)
    assert all(0 <= start <= end <= duration + 0.5 for start, end in srt_times)

    vtt = client.audio.transcriptions.create(
        model=SERVED, file=upload(speech), language="en", response_format="vtt"
    )
    assert vtt.startswith("WEBVTT")
    assert [seconds(m) for m in TIMES.findall(vtt)] == srt_times

    verbose = client.audio.transcriptions.create(
        model=SERVED,
        file=upload(speech),
        language="en",
        response_format="verbose_json",
        timestamp_granularities=["word", "segment"],
    )
    body = verbose.model_dump()
    assert body["language"] == "en" and body["target_language"] == "en"
    assert abs(body["duration"] - duration) < 0.1
    assert body["text"] == json_answer.text
    assert body["segments"] and body["words"], body
    for item in body["segments"] + body["words"]:
        assert 0 <= item["start"] <= item["end"] <= duration + 0.5, item
    starts = [w["start"] for w in body["words"]]
    assert starts == sorted(starts)

    words_only = client.audio.transcriptions.create(
        model=SERVED,
        file=upload(speech),
        language="en",
        response_format="verbose_json",
        timestamp_granularities=["word"],
    ).model_dump()
    assert words_only["words"] and not words_only.get("segments")


@pytest.mark.filterwarnings("ignore:deprecated:DeprecationWarning")  # the client's overloads
def test_defaults_translations_and_alias(
    client: OpenAI, server: EngineServer, speech: bytes
) -> None:
    # no language: the server's sourceLang; transcriptions keep it as the target
    default = client.audio.transcriptions.create(
        model=SERVED, file=upload(speech), response_format="verbose_json"
    ).model_dump()
    assert (default["language"], default["target_language"]) == ("fr", "fr")
    assert default["task"] == "transcribe" and default["segments"]

    # target_lang, Berth's field, turns a transcription into a translation
    to_spanish = client.audio.transcriptions.create(
        model=SERVED,
        file=upload(speech),
        language="en",
        response_format="verbose_json",
        extra_body={"target_lang": "es"},
    ).model_dump()
    assert (to_spanish["language"], to_spanish["target_language"]) == ("en", "es")

    # translations: the server's targetLang unless target_lang is given
    translated = client.audio.translations.create(
        model=SERVED, file=upload(speech), response_format="verbose_json"
    ).model_dump()
    assert (translated["language"], translated["target_language"]) == ("fr", "en")
    assert translated["task"] == "translate" and isinstance(translated["text"], str)
    plain = client.audio.translations.create(
        model=SERVED, file=upload(speech), extra_body={"source_lang": "de", "target_lang": "en"}
    )
    assert isinstance(plain.text, str)

    # the earlier gateway's route: no model needed, the spec's defaults
    status, _, payload = server.call(
        "/api/audio/transcribe", *multipart({"response_format": "verbose_json"}, speech)
    )
    assert status == 200, payload
    alias = json.loads(payload)
    assert (alias["language"], alias["target_language"]) == ("fr", "en")


def recording(seconds: int) -> np.ndarray:
    """`seconds` of English speech: one sentence over and over, with pauses."""
    sentence = speak("This long recording goes on and on about trains, weather and meetings.")
    pause = np.zeros(SAMPLE_RATE // 2, dtype=np.float32)
    repeats = seconds * SAMPLE_RATE // (len(sentence) + len(pause)) + 1
    return np.concatenate([sentence, pause] * repeats)[: seconds * SAMPLE_RATE]


def transcribe_long(client: OpenAI, audio: np.ndarray) -> dict[str, Any]:
    return client.audio.transcriptions.create(
        model=SERVED,
        file=upload(wav_bytes(audio)),
        language="en",
        response_format="verbose_json",
        timestamp_granularities=["word", "segment"],
    ).model_dump()


def assert_one_timeline(body: dict[str, Any], seconds: float) -> None:
    """Words and segments in order, none overlapping the one before: chunk overlaps merged."""
    assert abs(body["duration"] - seconds) < 0.1
    for items in (body["words"], body["segments"]):
        assert items and items[-1]["end"] > seconds - 30, items[-3:]
        for before, after in itertools.pairwise(items):
            assert (
                before["start"] <= before["end"] <= after["start"] <= after["end"] <= seconds + 0.5
            )


def test_long_audio_is_chunked_with_overlaps_merged(client: OpenAI, server: EngineServer) -> None:
    assert server.status["details"]["chunk_overlap_seconds"] == 2
    started = time.monotonic()
    body = transcribe_long(client, recording(70))
    timings["70 s transcription with timestamps"] = time.monotonic() - started
    # chunks [0, 30], [28, 58] and [56, 70]: one timeline across them
    assert_one_timeline(body, 70)
    assert body["text"].split()[0] == body["words"][0]["word"]


@pytest.fixture(scope="module")
def small_shm_server(serve: Any, server: EngineServer) -> EngineServer:
    """The engine as a pod runs it: /dev/shm a 64 MiB tmpfs, in a mount namespace of its own."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("needs root and unshare to give the server a pod-sized /dev/shm")
    shm = 'mount -t tmpfs -o size=64m tmpfs /dev/shm && exec "$@"'
    long_server = serve(
        "nemo-asr",
        server.cache,
        REPO_ID,
        SETTINGS | {"maxAudioSeconds": 1600},
        wrapper=("unshare", "--mount", "sh", "-c", shm, "sh"),
    )
    long_server.wait_ready(timeout=300)
    return long_server


def test_a_25_minute_recording_with_a_pod_sized_dev_shm(small_shm_server: EngineServer) -> None:
    client = OpenAI(base_url=small_shm_server.url + "/v1", api_key="-", max_retries=0, timeout=900)
    started = time.monotonic()
    body = transcribe_long(client, recording(25 * 60))
    timings["25 min transcription with timestamps, 64 MiB /dev/shm"] = time.monotonic() - started
    assert_one_timeline(body, 25 * 60)
    print(f"\ntimings {timings}")


def test_concurrent_requests_are_batched(
    client: OpenAI, server: EngineServer, speech: bytes
) -> None:
    before = server.json("/api/status")[1]["details"]["batching"]

    def one(index: int) -> str:
        return client.audio.transcriptions.create(
            model=SERVED, file=upload(speech, f"s{index}.wav"), language="en"
        ).text

    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(one, range(6)))
    assert all(isinstance(a, str) and a for a in answers)
    assert len(set(answers)) == 1  # the same audio in a batch gets the same words
    after = server.json("/api/status")[1]["details"]["batching"]
    assert after["requests"] - before["requests"] == 6
    assert after["batches"] - before["batches"] < 6, after
    assert after["largestBatch"] > 1, after
    print(f"\nbatching: {after}")


@pytest.mark.filterwarnings("ignore:deprecated:DeprecationWarning")  # the client's overloads
def test_bad_input_gets_clear_errors(client: OpenAI, speech: bytes) -> None:
    def transcribe(data: bytes, **kwargs: Any) -> Any:
        return lambda: client.audio.transcriptions.create(
            **{"model": SERVED, "file": upload(data), **kwargs}
        )

    status, error = error_of(transcribe(b"this is not audio at all" * 50))
    assert (status, error["type"]) == (415, "UndecodableAudio"), error

    status, error = error_of(transcribe(b""))
    assert (status, error["type"]) == (400, "EmptyAudio"), error

    status, error = error_of(transcribe(speech, language="xx"))
    assert (status, error["type"]) == (400, "UnsupportedLanguage"), error
    assert "'xx'" in error["message"] and "en, de, fr, es" in error["message"]

    status, error = error_of(transcribe(speech, extra_body={"target_lang": "ja"}))
    assert (status, error["type"]) == (400, "UnsupportedLanguage"), error

    # both languages known, but Canary translates to and from English only
    status, error = error_of(transcribe(speech, language="de", extra_body={"target_lang": "fr"}))
    assert (status, error["type"]) == (400, "UnsupportedLanguagePair"), error
    assert "from 'de' to 'fr'" in error["message"], error
    assert "X->en and en->X" in error["message"], error
    status, error = error_of(
        lambda: client.audio.translations.create(
            model=SERVED, file=upload(speech), extra_body={"source_lang": "es", "target_lang": "de"}
        )
    )
    assert (status, error["type"]) == (400, "UnsupportedLanguagePair"), error

    too_long = wav_bytes(np.zeros(130 * SAMPLE_RATE, dtype=np.float32))
    status, error = error_of(transcribe(too_long))
    assert (status, error["type"]) == (413, "AudioTooLong"), error

    status, error = error_of(transcribe(speech, model="whisper-1"))
    assert (status, error["type"]) == (404, "ModelNotFound"), error
    assert all(name in error["message"] for name in (SERVED, REPO_ID, "canary-tiny"))

    status, error = error_of(transcribe(speech, response_format="mp3"))
    assert (status, error["type"]) == (400, "InvalidField"), error
