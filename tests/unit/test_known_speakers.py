"""Known speakers: the matching rule and the request's checks (pyannote/known_speakers.py)."""

from __future__ import annotations

import base64

import numpy as np
import pytest
from berth_runtime.engines.pyannote.known_speakers import (
    MAX_KNOWN_SPEAKERS,
    InvalidKnownSpeakers,
    Match,
    check_reference_length,
    match_speakers,
    read_known_speakers,
)

THRESHOLD = 0.5


def unit(*values: float) -> np.ndarray:
    vector = np.array(values, dtype=np.float64)
    return vector / np.linalg.norm(vector)


def data_url(payload: bytes = b"RIFF....WAVE", kind: str = "audio/wav") -> str:
    return f"data:{kind};base64,{base64.b64encode(payload).decode()}"


def test_each_name_goes_to_its_most_similar_speaker() -> None:
    centroids = np.stack([unit(1, 0, 0), unit(0, 1, 0), unit(0, 0, 1)])
    references = np.stack([unit(0.1, 1, 0), unit(0, 0.2, 1)])
    found = match_speakers(
        ("alice", "bob"), references, ["SPEAKER_00", "SPEAKER_01", "SPEAKER_02"], centroids, 0.5
    )
    assert [(m.name, m.speaker) for m in found] == [("alice", "SPEAKER_01"), ("bob", "SPEAKER_02")]
    assert found[0].similarity == pytest.approx(float(unit(0.1, 1, 0) @ unit(0, 1, 0)))


def test_best_pairs_first_one_name_per_speaker_and_one_speaker_per_name() -> None:
    # both names are closest to SPEAKER_00; alice is closer, so bob takes his next best
    centroids = np.stack([unit(1, 0), unit(0.6, 0.8)])
    references = np.stack([unit(1, 0.05), unit(1, 0.3)])
    found = match_speakers(
        ("alice", "bob"), references, ["SPEAKER_00", "SPEAKER_01"], centroids, 0.5
    )
    assert [(m.name, m.speaker) for m in found] == [("alice", "SPEAKER_00"), ("bob", "SPEAKER_01")]


def test_a_pair_below_the_threshold_names_nobody() -> None:
    centroids = np.stack([unit(1, 0), unit(0, 1)])
    references = np.stack([unit(1, 0.1), unit(-1, -1)])  # bob resembles no one
    found = match_speakers(("alice", "bob"), references, ["S0", "S1"], centroids, THRESHOLD)
    assert found[0] == Match("alice", "S0", pytest.approx(float(unit(1, 0.1) @ unit(1, 0))))
    assert found[1].speaker is None
    assert found[1].similarity is not None and found[1].similarity < THRESHOLD


def test_more_names_than_speakers_leaves_the_weakest_unmatched() -> None:
    centroids = np.stack([unit(1, 0)])
    references = np.stack([unit(1, 0.5), unit(1, 0.1)])
    found = match_speakers(("alice", "bob"), references, ["S0"], centroids, THRESHOLD)
    assert [(m.name, m.speaker) for m in found] == [("alice", None), ("bob", "S0")]


def test_no_speakers_or_empty_centroids_match_nobody() -> None:
    assert match_speakers(("alice",), np.ones((1, 3)), [], np.zeros((0, 3)), THRESHOLD) == [
        Match("alice", None, None)
    ]
    # pyannote pads centroids with zeros for speakers clustering did not produce
    found = match_speakers(("alice",), np.ones((1, 3)), ["S0"], np.zeros((1, 3)), THRESHOLD)
    assert found == [Match("alice", None, None)]


def test_answers_as_json_with_rounded_similarity() -> None:
    assert Match("alice", "S0", 0.876543).as_json() == {
        "name": "alice",
        "speaker": "S0",
        "similarity": 0.8765,
    }


def test_reads_names_and_data_urls() -> None:
    known = read_known_speakers(
        [" alice ", "bob"], [data_url(b"one"), data_url(b"two", "audio/mpeg")]
    )
    assert known is not None
    assert known.names == ("alice", "bob")
    assert known.clips == (b"one", b"two")
    assert read_known_speakers([], []) is None


@pytest.mark.parametrize(
    ("names", "references", "message"),
    [
        (["alice"], [], "known_speaker_names[] has 1 entries and known_speaker_references[] 0"),
        (["a", "b", "c", "d", "e"], [data_url()] * 5, f"at most {MAX_KNOWN_SPEAKERS}"),
        (["alice", " "], [data_url()] * 2, "known_speaker_names[1] must be 1 to 64 characters"),
        (["alice", "alice"], [data_url()] * 2, "known_speaker_names[1] repeats the name 'alice'"),
        (["SPEAKER_01"], [data_url()], "known_speaker_names[0] is 'SPEAKER_01', a label"),
        (["alice"], ["https://example.com/a.wav"], "known_speaker_references[0] is not a base64"),
        (["alice"], ["data:audio/wav;base64,***"], "known_speaker_references[0] is not valid"),
    ],
)
def test_bad_known_speakers_are_400_naming_the_field(
    names: list[str], references: list[str], message: str
) -> None:
    with pytest.raises(InvalidKnownSpeakers) as raised:
        read_known_speakers(names, references)
    assert message in raised.value.message
    assert raised.value.status == 400


def test_reference_clips_last_two_to_ten_seconds() -> None:
    check_reference_length(0, 2 * 16_000, 16_000)
    check_reference_length(0, 10 * 16_000, 16_000)
    for seconds in (1.0, 12.0):
        with pytest.raises(InvalidKnownSpeakers, match=r"known_speaker_references\[2\] lasts"):
            check_reference_length(2, int(seconds * 16_000), 16_000)
