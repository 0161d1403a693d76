"""Words assigned to speaker turns, on synthetic timelines (the rules in nemo_asr/speakers.py)."""

from __future__ import annotations

import time
import tracemalloc

from berth_runtime.engines.nemo_asr.speakers import (
    MAX_SEGMENT_SECONDS,
    PAUSE_SECONDS,
    UNKNOWN_SPEAKER,
    SpeakerSegment,
    Turn,
    assign,
    attribute,
    letters,
    unattributed,
)
from berth_runtime.engines.nemo_asr.transcript import Word


def words(*timed: tuple[str, float, float]) -> list[Word]:
    return [Word(text, start, end) for text, start, end in timed]


def test_each_word_inside_a_turn_gets_that_turns_speaker() -> None:
    turns = [Turn("SPEAKER_00", 0.0, 2.0), Turn("SPEAKER_01", 2.5, 4.0)]
    found = assign(words(("hello", 0.2, 0.6), ("there", 0.7, 1.1), ("hi", 2.8, 3.1)), turns)
    assert found == ["SPEAKER_00", "SPEAKER_00", "SPEAKER_01"]


def test_a_word_across_a_turn_boundary_goes_to_the_turn_that_covers_more_of_it() -> None:
    turns = [Turn("SPEAKER_00", 0.0, 1.0), Turn("SPEAKER_01", 1.0, 3.0)]
    assert assign(words(("mostly-first", 0.5, 1.2)), turns) == ["SPEAKER_00"]
    assert assign(words(("mostly-second", 0.9, 1.6)), turns) == ["SPEAKER_01"]


def test_two_speakers_alternating_every_word() -> None:
    turns = [Turn(f"SPEAKER_0{i % 2}", i * 0.5, i * 0.5 + 0.5) for i in range(40)]
    said = words(*((f"w{i}", i * 0.5 + 0.1, i * 0.5 + 0.4) for i in range(40)))
    segments = attribute(said, turns)
    assert [s.speaker for s in segments] == ["A", "B"] * 20
    assert [s.text for s in segments] == [f"w{i}" for i in range(40)]


def test_silence_between_turns_the_word_goes_to_the_nearest_turn() -> None:
    turns = [Turn("SPEAKER_00", 0.0, 1.0), Turn("SPEAKER_01", 5.0, 6.0)]
    said = words(("near-first", 1.5, 1.8), ("near-second", 4.0, 4.6), ("middle", 2.5, 3.5))
    assert assign(said, turns) == ["SPEAKER_00", "SPEAKER_01", "SPEAKER_00"]  # a tie: the earlier


def test_words_before_the_first_and_after_the_last_turn_are_kept() -> None:
    turns = [Turn("SPEAKER_00", 2.0, 3.0)]
    said = words(("early", 0.1, 0.4), ("inside", 2.1, 2.5), ("late", 7.0, 7.5))
    segments = attribute(said, turns)
    assert " ".join(s.text for s in segments) == "early inside late"
    assert {s.speaker for s in segments} == {"A"}


def test_a_speaker_who_says_one_word() -> None:
    turns = [
        Turn("SPEAKER_00", 0.0, 3.0),
        Turn("SPEAKER_01", 3.0, 3.4),
        Turn("SPEAKER_00", 3.4, 6.0),
    ]
    said = words(("so", 2.0, 2.4), ("we", 2.5, 2.9), ("yes", 3.05, 3.35), ("go", 3.5, 3.9))
    assert attribute(said, turns) == [
        SpeakerSegment("A", 2.0, 2.9, "so we"),
        SpeakerSegment("B", 3.05, 3.35, "yes"),
        SpeakerSegment("A", 3.5, 3.9, "go"),
    ]


def test_overlapped_speech_goes_to_the_speaker_heard_longer_over_the_word() -> None:
    turns = [Turn("SPEAKER_00", 0.0, 4.0), Turn("SPEAKER_01", 1.0, 1.3)]
    assert assign(words(("word", 0.9, 1.5)), turns) == ["SPEAKER_00"]
    # the same overlap for both: the speaker whose turn began first
    turns = [Turn("SPEAKER_01", 1.0, 2.0), Turn("SPEAKER_00", 0.0, 2.0)]
    assert assign(words(("both", 1.2, 1.8)), turns) == ["SPEAKER_00"]


def test_a_point_word_inside_a_turn() -> None:
    turns = [Turn("SPEAKER_00", 0.0, 1.0), Turn("SPEAKER_01", 1.0, 2.0)]
    assert assign(words(("blip", 1.5, 1.5)), turns) == ["SPEAKER_01"]


def test_segments_end_at_long_pauses_and_at_the_length_limit() -> None:
    turns = [Turn("SPEAKER_00", 0.0, 100.0)]
    said = words(("one", 0.0, 0.5), ("two", 0.5 + PAUSE_SECONDS, 2.0 + PAUSE_SECONDS))
    assert [s.text for s in attribute(said, turns)] == ["one", "two"]
    steady = words(*((f"w{i}", i * 0.5, i * 0.5 + 0.4) for i in range(200)))
    found = attribute(steady, turns)
    assert all(s.end - s.start <= MAX_SEGMENT_SECONDS for s in found)
    assert " ".join(s.text for s in found) == " ".join(w.word for w in steady)


def test_words_out_of_order_are_segmented_in_time_order() -> None:
    turns = [Turn("SPEAKER_00", 0.0, 1.0), Turn("SPEAKER_01", 1.0, 2.0)]
    said = words(("second", 1.2, 1.5), ("first", 0.2, 0.5))
    assert [(s.speaker, s.text) for s in attribute(said, turns)] == [
        ("A", "first"),
        ("B", "second"),
    ]


def test_no_turn_at_all_gives_one_speaker() -> None:
    assert [s.speaker for s in attribute(words(("alone", 0.0, 0.5)), [])] == ["A"]


def test_without_speakers_segments_are_cut_as_usual_and_said_by_unknown() -> None:
    said = words(("one", 0.0, 0.5), ("two", 0.5 + PAUSE_SECONDS, 2.0 + PAUSE_SECONDS))
    assert [(s.speaker, s.text) for s in unattributed(said)] == [
        (UNKNOWN_SPEAKER, "one"),
        (UNKNOWN_SPEAKER, "two"),
    ]
    assert unattributed([]) == []


def test_punctuation_words_join_without_a_space() -> None:
    found = attribute(words(("Hello", 0.0, 0.3), (",", 0.3, 0.3), ("you", 0.4, 0.6)), [])
    assert found[0].text == "Hello, you"


def test_speakers_are_lettered_in_order_of_first_appearance_and_known_names_kept() -> None:
    assert letters(["SPEAKER_03", "SPEAKER_01", "SPEAKER_03"]) == {
        "SPEAKER_03": "A",
        "SPEAKER_01": "B",
    }
    assert letters(["SPEAKER_00", "A", "SPEAKER_01", "agent"]) == {
        "SPEAKER_00": "B",
        "A": "A",
        "SPEAKER_01": "C",
        "agent": "agent",
    }
    many = letters(f"SPEAKER_{i:02d}" for i in range(28))
    assert list(many.values())[-3:] == ["Z", "AA", "AB"]


def test_two_hours_of_words_take_linear_time_and_memory() -> None:
    """A word every 0.4 s for 2 hours, turns of 3 s over 4 speakers: 18,000 words. Twice the
    input takes about twice the time and memory (well under the factor 4 of a quadratic)."""

    def timeline(hours: float) -> tuple[list[Word], list[Turn]]:
        seconds = hours * 3600
        said = [Word(f"w{i}", i * 0.4, i * 0.4 + 0.3) for i in range(int(seconds / 0.4))]
        turns = [Turn(f"SPEAKER_0{i % 4}", i * 3.0, i * 3.0 + 3.0) for i in range(int(seconds / 3))]
        return said, turns

    def measure(hours: float) -> tuple[float, int]:
        said, turns = timeline(hours)
        tracemalloc.start()
        started = time.process_time()
        found = attribute(said, turns)
        took = time.process_time() - started
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert sum(len(s.text.split()) for s in found) == len(said)
        return took, peak

    measure(0.1)  # warm up
    (time_1, memory_1), (time_2, memory_2) = measure(1.0), measure(2.0)
    assert time_2 < 3 * time_1, (time_1, time_2)
    assert memory_2 < 3 * memory_1, (memory_1, memory_2)
