"""The pyannote engine with the real pyannote.audio 4 on the CPU: tiny random pipelines, over HTTP."""

from __future__ import annotations

import base64
import itertools
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from tests.engines.conftest import EngineServer, cached_tiny_model, run_in_engine
from tests.engines.forms import multipart
from tests.engines.runner import tiny_model_dir
from tests.engines.speech import (
    SAMPLE_RATE,
    VOICES,
    conversation,
    data_url,
    meeting,
    reference_clip,
    spoken_by,
    wav_bytes,
)
from tests.hub.download import download_into, finish, repo_from_directory, start_download
from tests.hub.server import LocalHub

REPO_ID = "berth-test/tiny-diarization"  # speaker-diarization-3.1 style
COMMUNITY_REPO_ID = "berth-test/tiny-diarization-community"  # community-1 style
ROUTE = "/api/diarization/process"
# speaker-diarization-3.1 as published: its config names two other (gated) repositories and
# no PLDA, which pyannote 4 then takes from community-1
SPLIT_REPO_ID = "pyannote/tiny-speaker-diarization-3.1"
SPLIT_PARTS = {
    "segmentation": "pyannote/tiny-segmentation-3.0",
    "embedding": "pyannote/tiny-embedding",
}
COMMUNITY_1 = "pyannote/speaker-diarization-community-1"
SERVED = "diarizer"  # the community-style server's served model name


def cached_community_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The community-1-style tiny pipeline, published on a local hub and downloaded into a cache."""
    work = tmp_path_factory.mktemp("pyannote-community")
    run_in_engine("pyannote", "tiny_pyannote.py", str(work / "model"), "--community")
    hub = LocalHub().start()
    try:
        hub.add(repo_from_directory(COMMUNITY_REPO_ID, work / "model"))
        download_into(hub, work / "cache", COMMUNITY_REPO_ID)
    finally:
        hub.stop()
    return work / "cache"


def cached_split_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The 3.1-style tiny pipeline cut into repositories as 3.1 is, all gated behind one token,
    on a local hub; the download Job fetches the pipeline and finds the rest itself."""
    parts = tiny_model_dir("pyannote", "tiny_pyannote.py")
    work = tmp_path_factory.mktemp("pyannote-split")
    config = yaml.safe_load((parts / "config.yaml").read_text())
    params = config["pipeline"]["params"]
    params.update(SPLIT_PARTS)
    del params["plda"]
    (work / "pipeline").mkdir()
    (work / "pipeline" / "config.yaml").write_text(yaml.safe_dump(config))
    repos = [
        repo_from_directory(SPLIT_REPO_ID, work / "pipeline"),
        *(repo_from_directory(repo, parts / part) for part, repo in SPLIT_PARTS.items()),
        repo_from_directory(COMMUNITY_1, parts),  # its segmentation/ and embedding/ stay there
    ]
    hub = LocalHub().start()
    try:
        for repo in repos:
            repo.gated, repo.tokens = True, {"hf_tiny"}
            hub.add(repo)
        job = start_download(hub, work / "cache", SPLIT_REPO_ID, HF_TOKEN="hf_tiny")
        result = finish(job, work / "cache")
        assert result.returncode == 0, result.output
    finally:
        hub.stop()
    community = work / "cache" / f"models--{COMMUNITY_1.replace('/', '--')}"
    assert not list(community.rglob("segmentation")), "only the PLDA of community-1 is fetched"
    return work / "cache"


@pytest.fixture(scope="module")
def split_server(serve: Any, tmp_path_factory: pytest.TempPathFactory) -> EngineServer:
    server = serve("pyannote", cached_split_model(tmp_path_factory), SPLIT_REPO_ID, {})
    server.wait_ready()
    return server


@pytest.fixture(scope="module")
def caches(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return {
        REPO_ID: cached_tiny_model("pyannote", "tiny_pyannote.py", REPO_ID, tmp_path_factory),
        COMMUNITY_REPO_ID: cached_community_model(tmp_path_factory),
    }


@pytest.fixture(scope="module")
def servers(serve: Any, caches: dict[str, Path]) -> dict[str, EngineServer]:
    """Both started before either is waited for: they load side by side."""
    started = {
        REPO_ID: serve("pyannote", caches[REPO_ID], REPO_ID, {}),
        COMMUNITY_REPO_ID: serve(
            "pyannote",
            caches[COMMUNITY_REPO_ID],
            COMMUNITY_REPO_ID,
            {"numSpeakers": 1, "maxAudioSeconds": 30, "servedModelName": SERVED},
        ),
    }
    for server in started.values():
        server.wait_ready()
    return started


@pytest.fixture(scope="module")
def server(servers: dict[str, EngineServer]) -> EngineServer:
    """3.1 style, no settings."""
    return servers[REPO_ID]


@pytest.fixture(scope="module")
def community_server(servers: dict[str, EngineServer]) -> EngineServer:
    """community-1 style, settings numSpeakers=1 and maxAudioSeconds=30, served as SERVED."""
    return servers[COMMUNITY_REPO_ID]


@pytest.fixture(scope="module")
def speech() -> bytes:
    """About 15 s of two espeak-ng voices taking turns."""
    return wav_bytes(
        conversation(
            [
                ("en+m3", "Hello there, how are you doing today?"),
                ("en+f3", "I am fine, thank you very much for asking."),
                ("en+m3", "The weather is lovely this morning."),
                ("en+f3", "Yes, we should go for a walk in the park."),
                ("en+m3", "Let us meet at noon then."),
            ]
        )
    )


def post_file(server: EngineServer, audio: bytes | None, **fields: Any) -> tuple[int, Any]:
    body, headers = multipart({k: str(v) for k, v in fields.items()}, audio)
    return server.json(ROUTE, body, **headers)


def post_json(server: EngineServer, payload: dict[str, Any]) -> tuple[int, Any]:
    return server.json(ROUTE, json.dumps(payload).encode(), **{"Content-Type": "application/json"})


def speakers_of(answer: dict[str, Any], audio_seconds: float) -> set[str]:
    """Checks the answer's shape; returns its distinct speakers."""
    assert set(answer) - {"exclusive"} == {"segments", "runtime"}
    assert answer["runtime"]["details"]["sample_rate"] == 16000
    assert answer["runtime"]["details"]["device"] == "cpu"
    segments = answer["segments"]
    assert segments, "speech gave no segment"
    for segment in segments:
        assert set(segment) == {"speaker", "start", "end"}
        assert isinstance(segment["speaker"], str) and segment["speaker"]
        assert isinstance(segment["start"], float) and isinstance(segment["end"], float)
        # random weights may run ~0.5 s past the end (DESIGN.md); the times are not clipped
        assert 0 <= segment["start"] < segment["end"] <= audio_seconds + 1
    # pyannote's Annotation yields turns in time order
    starts = [s["start"] for s in segments]
    assert starts == sorted(starts)
    return {s["speaker"] for s in segments}


def seconds(wav: bytes) -> float:
    return (len(wav) - 44) / 2 / SAMPLE_RATE


def test_loads_offline_from_the_cache_and_reports_ready(server: EngineServer) -> None:
    status = server.json("/api/status")[1]
    assert status["state"] == "Ready"
    assert status["last_error"] is None
    dependencies = status["dependencies"]
    assert dependencies["torch"]["version"].startswith("2.9.1")
    assert "cuda_runtime" in dependencies["torch"]
    assert dependencies["torchaudio"]["build"] in {"cuda", "cpu", "unknown"}
    assert dependencies["torchaudio"]["version"].startswith("2.9.1")
    assert dependencies["pyannote.audio"]["version"].startswith("4.0.")
    assert dependencies["torchcodec"]["version"].startswith("0.9.")
    details = status["details"]
    assert details["sample_rate"] == 16000
    assert details["device"] == "cpu"
    assert "no GPU visible" in details["warning"]
    assert details["pipeline"].endswith(".SpeakerDiarization")
    assert details["clustering"] == "AgglomerativeClustering"
    assert details["load_seconds"] > 0
    assert server.load_steps() == [  # what status.runtime.progress said while it loaded
        "importing pyannote.audio",
        f"loading the pipeline of {REPO_ID}",
        "moving the pipeline to cpu",
    ]


def test_diarizes_two_voices_through_multipart(server: EngineServer, speech: bytes) -> None:
    status, answer = post_file(server, speech)
    assert status == 200, answer
    assert 1 <= len(speakers_of(answer, seconds(speech))) <= 3  # the segmentation's 3 classes

    status, answer = post_file(server, speech, num_speakers=2)
    assert status == 200, answer
    assert len(speakers_of(answer, seconds(speech))) <= 2


def test_json_base64_gives_what_multipart_gives(server: EngineServer, speech: bytes) -> None:
    status, by_json = post_json(
        server, {"audio": base64.b64encode(speech).decode(), "num_speakers": 2}
    )
    assert status == 200, by_json
    assert len(speakers_of(by_json, seconds(speech))) <= 2
    by_file = post_file(server, speech, num_speakers=2)[1]
    assert by_json["segments"] == by_file["segments"]  # same samples, same pipeline


def test_exclusive_asks_for_one_speaker_at_a_time(server: EngineServer, speech: bytes) -> None:
    """pyannote 4's exclusive diarization: no two turns overlap, and the answer says it is
    that one; the JSON body's field gives the same."""
    status, answer = post_file(server, speech, exclusive="true")
    assert status == 200, answer
    assert answer["exclusive"] is True
    speakers_of(answer, seconds(speech))
    turns = sorted((s["start"], s["end"]) for s in answer["segments"])
    assert all(end <= later + 1e-6 for (_, end), (later, _) in itertools.pairwise(turns))
    by_json = post_json(server, {"audio": base64.b64encode(speech).decode(), "exclusive": True})
    assert by_json == (200, answer)
    assert "exclusive" not in post_file(server, speech)[1]  # not asked for: the answer as before
    status, refused = post_file(server, speech, exclusive="maybe")
    assert status == 400 and "exclusive must be true or false" in refused["error"]["message"]


def test_known_speakers_name_the_speakers_their_clips_match(server: EngineServer) -> None:
    """The tiny pipeline's embedding tells the two test voices apart (tiny_pyannote.py): each
    voice's reference clip names the speaker who holds most of that voice's time, over
    multipart and JSON alike; a second clip of the first voice names nobody (one speaker per
    name, and it resembles the second voice's speaker less than the threshold)."""
    audio, second_starts = meeting()
    references = {
        "alice": data_url(reference_clip(VOICES[0])),
        "bob": data_url(reference_clip(VOICES[1])),
        "carol": data_url(reference_clip(VOICES[0])[::-1].copy()),
    }
    fields = [("exclusive", "true")] + [
        (f"known_speaker_{kind}[]", value)
        for name, url in references.items()
        for kind, value in (("names", name), ("references", url))
    ]
    body, headers = multipart(fields, wav_bytes(audio))
    status, answer = server.json(ROUTE, body, **headers)
    assert status == 200, answer
    matches = {m["name"]: m for m in answer["known_speakers"]}
    assert set(matches) == {"alice", "bob", "carol"}
    assert matches["alice"]["speaker"] and matches["bob"]["speaker"]
    assert matches["alice"]["speaker"] != matches["bob"]["speaker"]
    assert matches["carol"]["speaker"] is None, matches
    assert matches["alice"]["similarity"] > 0.5 and matches["bob"]["similarity"] > 0.5
    turns = [(s["speaker"], s["start"], s["end"]) for s in answer["segments"]]
    assert {speaker for speaker, _, _ in turns} <= {"alice", "bob"}, turns
    assert spoken_by(turns, 0, second_starts) == "alice"
    assert spoken_by(turns, second_starts, len(audio) / SAMPLE_RATE) == "bob"

    by_json = post_json(
        server,
        {
            "audio": base64.b64encode(wav_bytes(audio)).decode(),
            "exclusive": True,
            "known_speaker_names": list(references),
            "known_speaker_references": list(references.values()),
        },
    )
    assert by_json == (200, answer)


def test_bad_known_speakers_are_400_naming_the_field(server: EngineServer) -> None:
    audio = wav_bytes(reference_clip(VOICES[0]))
    short = data_url(reference_clip(VOICES[0])[: SAMPLE_RATE // 2])
    for fields, words in [
        ([("known_speaker_names[]", "alice")], "has 1 entries and known_speaker_references[] 0"),
        (
            [("known_speaker_names[]", "alice"), ("known_speaker_references[]", short)],
            "known_speaker_references[0] lasts 0.5 s",
        ),
        (
            [
                ("known_speaker_names[]", "alice"),
                ("known_speaker_references[]", "data:audio/wav;base64,AAAA"),
            ],
            "known_speaker_references[0]: not a readable audio file",
        ),
    ]:
        body, headers = multipart(fields, audio)
        status, answer = server.json(ROUTE, body, **headers)
        assert status == 400, answer
        assert answer["error"]["type"] == "InvalidKnownSpeakers"
        assert words in answer["error"]["message"]


def test_request_speaker_counts_reach_the_pipeline(server: EngineServer, speech: bytes) -> None:
    status, answer = post_file(server, speech, num_speakers=1)
    assert status == 200, answer
    assert len(speakers_of(answer, seconds(speech))) == 1

    status, answer = post_json(
        server,
        {"audio": base64.b64encode(speech).decode(), "min_speakers": 1, "max_speakers": 1},
    )
    assert status == 200, answer
    assert len(speakers_of(answer, seconds(speech))) == 1


def test_community_style_pipeline_applies_the_settings_defaults(
    community_server: EngineServer, speech: bytes
) -> None:
    details = community_server.json("/api/status")[1]["details"]
    assert details["clustering"] == "VBxClustering"

    status, answer = post_file(community_server, speech)  # settings numSpeakers=1
    assert status == 200, answer
    assert len(speakers_of(answer, seconds(speech))) == 1

    # the request overrides the default; this random pipeline does find two with num_speakers=2
    status, answer = post_file(community_server, speech, num_speakers=2)
    assert status == 200, answer
    assert len(speakers_of(answer, seconds(speech))) == 2


def test_audio_over_max_audio_seconds_is_413(community_server: EngineServer) -> None:
    long_audio = wav_bytes(np.zeros(40 * SAMPLE_RATE, dtype=np.float32))  # limit: 30 s
    status, answer = post_file(community_server, long_audio)
    assert status == 413
    assert answer["error"]["type"] == "AudioTooLong"
    assert "30 s" in answer["error"]["message"]


def test_model_may_be_the_served_name_the_repository_or_its_last_part(
    community_server: EngineServer, speech: bytes
) -> None:
    accepted = (SERVED, COMMUNITY_REPO_ID, COMMUNITY_REPO_ID.split("/")[-1])
    for name in accepted:
        status, answer = post_file(community_server, speech, model=name)
        assert status == 200, answer
        assert speakers_of(answer, seconds(speech))
    status, answer = post_json(
        community_server, {"audio": base64.b64encode(speech).decode(), "model": SERVED}
    )
    assert status == 200, answer

    for code, answer in (
        post_file(community_server, speech, model="tiny-diarization"),
        post_json(community_server, {"audio": "", "model": "tiny-diarization"}),
    ):
        assert (code, answer["error"]["type"]) == (404, "ModelNotFound")
        assert "tiny-diarization'" in answer["error"]["message"]
        assert all(name in answer["error"]["message"] for name in accepted)


@pytest.mark.parametrize(
    ("fields", "status", "error_type", "words"),
    [
        (
            {"num_speakers": "2", "min_speakers": "1"},
            400,
            "InvalidSpeakerCount",
            ["num_speakers", "min_speakers"],
        ),
        (
            {"min_speakers": "3", "max_speakers": "2"},
            400,
            "InvalidSpeakerCount",
            ["min_speakers", "max_speakers"],
        ),
        ({"num_speakers": "0"}, 400, "InvalidSpeakerCount", ["num_speakers", "at least 1"]),
        ({"max_speakers": "two"}, 400, "InvalidSpeakerCount", ["max_speakers", "whole number"]),
        ({"num_speaker": "2"}, 400, "InvalidRequest", ["num_speaker"]),
    ],
)
def test_bad_form_fields_are_400_naming_the_field(
    server: EngineServer,
    speech: bytes,
    fields: dict[str, str],
    status: int,
    error_type: str,
    words: list[str],
) -> None:
    code, answer = post_file(server, speech, **fields)
    assert code == status
    assert answer["error"]["type"] == error_type
    for word in words:
        assert word in answer["error"]["message"]


@pytest.mark.parametrize(
    ("payload", "error_type", "words"),
    [
        ({"num_speakers": 2.5}, "InvalidSpeakerCount", ["num_speakers", "whole number"]),
        ({"num_speakers": "2"}, "InvalidSpeakerCount", ["num_speakers"]),
        ({"min_speakers": 0}, "InvalidSpeakerCount", ["min_speakers"]),
        (
            {"num_speakers": 2, "max_speakers": 3},
            "InvalidSpeakerCount",
            ["num_speakers", "max_speakers"],
        ),
        ({"audio": "not base64!"}, "InvalidAudioEncoding", ["base64"]),
        ({"audio": None}, "InvalidRequest", ["audio"]),
        ({"language": "en"}, "InvalidRequest", ["language"]),
    ],
)
def test_bad_json_bodies_are_400_naming_the_field(
    server: EngineServer, speech: bytes, payload: dict[str, Any], error_type: str, words: list[str]
) -> None:
    body = {"audio": base64.b64encode(speech[:1000]).decode(), **payload}
    code, answer = post_json(server, {k: v for k, v in body.items() if v is not None})
    assert code == 400
    assert answer["error"]["type"] == error_type
    for word in words:
        assert word in answer["error"]["message"]


def test_bad_audio_and_content_types(server: EngineServer) -> None:
    code, answer = post_file(server, b"")
    assert (code, answer["error"]["type"]) == (400, "EmptyAudio")

    code, answer = post_file(server, b"these bytes are no audio file at all" * 20)
    assert (code, answer["error"]["type"]) == (415, "UndecodableAudio")

    code, answer = post_file(server, None, num_speakers=2)
    assert (code, answer["error"]["type"]) == (400, "MissingAudio")

    code, answer = post_json(server, {"audio": ""})
    assert (code, answer["error"]["type"]) == (400, "EmptyAudio")

    code, answer = server.json(ROUTE, b"hello", **{"Content-Type": "text/plain"})
    assert (code, answer["error"]["type"]) == (415, "UnsupportedMediaType")

    code, answer = server.json(ROUTE, b"{not json", **{"Content-Type": "application/json"})
    assert (code, answer["error"]["type"]) == (400, "InvalidRequest")


def test_invalid_speaker_settings_fail_the_load_with_the_reason(
    serve: Any, caches: dict[str, Path]
) -> None:
    failing = serve("pyannote", caches[REPO_ID], REPO_ID, {"numSpeakers": 2, "maxSpeakers": 3})
    deadline = time.monotonic() + 60
    status: dict[str, Any] = {}
    while time.monotonic() < deadline:
        try:
            status = failing.json("/api/status")[1]
        except OSError:
            status = {}
        if status.get("state") == "Failed":
            break
        time.sleep(0.3)
    assert status.get("state") == "Failed", failing.output()
    assert status["last_error"]["reason"] == "InvalidSettings"
    assert "numSpeakers" in status["last_error"]["message"]
    assert "maxSpeakers" in status["last_error"]["message"]
    code, answer = post_file(failing, b"RIFF")
    assert (code, answer["error"]["type"]) == (503, "ModelNotReady")


def test_a_pipeline_naming_other_repositories_downloads_and_diarizes(
    split_server: EngineServer, speech: bytes
) -> None:
    status = split_server.json("/api/status")[1]
    assert status["state"] == "Ready", status
    code, answer = post_file(split_server, speech)
    assert code == 200, answer
    assert speakers_of(answer, seconds(speech))
