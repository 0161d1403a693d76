"""The nemo-asr engine's pure parts: chunking, joining, response formats, languages, batching."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace

import numpy as np
import pytest
from berth_runtime.engines.nemo_asr.batching import Batcher
from berth_runtime.engines.nemo_asr.formats import clock, render
from berth_runtime.engines.nemo_asr.forms import AudioForm, InvalidField
from berth_runtime.engines.nemo_asr.languages import (
    UnsupportedLanguage,
    check_language,
    languages_from_tokens,
    supported_languages,
)
from berth_runtime.engines.nemo_asr.transcript import (
    SAMPLE_RATE,
    ChunkResult,
    Segment,
    Word,
    assemble,
    merge_texts,
    split_chunks,
)


def test_chunks_overlap_cover_every_sample_and_fold_a_short_tail() -> None:
    audio = np.arange(70 * SAMPLE_RATE, dtype=np.float32)
    chunks = split_chunks(audio, 30, overlap_seconds=2)
    assert [(c.start, c.duration) for c in chunks] == [(0, 30), (28, 30), (56, 14)]
    for chunk in chunks:  # each chunk is the recording's audio from its start
        at = int(chunk.start * SAMPLE_RATE)
        assert np.array_equal(chunk.audio, audio[at : at + len(chunk.audio)])
    assert chunks[-1].audio[-1] == audio[-1]
    # 58.5 s: a third chunk would add half a second, so the second one takes it
    tail = split_chunks(np.zeros(int(58.5 * SAMPLE_RATE), dtype=np.float32), 30, 2)
    assert [(c.start, c.duration) for c in tail] == [(0, 30), (28, 30.5)]
    assert len(split_chunks(np.zeros(10, dtype=np.float32), 30)) == 1
    # an overlap never exceeds half a chunk
    assert [c.start for c in split_chunks(np.zeros(10 * SAMPLE_RATE), 4, 3)] == [0, 2, 4, 6]


def test_a_word_across_a_boundary_comes_out_once_in_the_text() -> None:
    # both chunks heard "at the station" in their 2 s overlap; the first one cut "nine"
    pieces = merge_texts(["We will meet at the station at ni", "at the Station, at nine."], 2)
    assert " ".join(w for p in pieces for w in p) == "We will meet at the station at nine."
    assert pieces == [["We", "will", "meet", "at", "the", "station", "at"], ["nine."]]
    # the second chunk began inside a word: its cut word falls away
    assert merge_texts(["meet at the station", "tion the station at nine"], 2) == [
        ["meet", "at", "the", "station"],
        ["at", "nine"],
    ]
    # nothing in common (silence in the overlap): both kept whole
    assert merge_texts(["one two", "three four", ""], 2) == [["one", "two"], ["three", "four"], []]


def test_a_word_across_a_boundary_comes_out_once_in_the_words() -> None:
    # chunks [0, 30] and [28, 58]: the middle of their overlap is 29 s
    first = ChunkResult(
        "meet at the station",
        30.0,
        words=[Word("meet", 27.9, 28.3), Word("the", 28.6, 28.9), Word("station", 29.3, 30.0)],
    )
    second = ChunkResult(
        "the station at nine.",
        30.0,
        words=[Word("the", 0.62, 0.88), Word("station", 1.3, 2.2), Word("nine.", 2.6, 3.0)],
        offset=28.0,
    )
    transcript = assemble([first, second], "en", "en")
    assert [(w.word, w.start, w.end) for w in transcript.words] == [
        ("meet", 27.9, 28.3),
        ("the", 28.6, 28.9),
        ("station", 29.3, 30.2),  # the second chunk heard it whole
        ("nine.", 30.6, 31.0),
    ]
    assert transcript.text == "meet at the station at nine."
    assert [(s.text, s.start, s.end) for s in transcript.segments] == [
        ("meet the station nine.", 27.9, 31.0)  # a sentence across the boundary is one segment
    ]
    assert transcript.duration == 58.0


@pytest.mark.parametrize("first_start", [28.55, 28.75])  # its middle just before or after 29 s
def test_a_word_both_chunks_place_near_the_middle_comes_out_once(first_start: float) -> None:
    first = ChunkResult("go", 30.0, words=[Word("go", first_start, first_start + 0.6)])
    second = ChunkResult("go", 30.0, words=[Word("go", 0.65, 1.25)], offset=28.0)
    words = assemble([first, second], "en", "en").words
    assert [w.word for w in words] == ["go"]


def test_assemble_falls_back_to_one_segment_per_chunk_part() -> None:
    first = ChunkResult(
        "Hello there. Bye.",
        30.0,
        words=[Word("Hello", 0.5, 0.9), Word("there.", 1.0, 1.4), Word("Bye.", -1, -1)],
    )
    second = ChunkResult("again", 12.0, offset=28.0)  # nothing aligned: one segment
    transcript = assemble([first, second, ChunkResult("", 5.0, offset=38.0)], "en", "de")
    assert transcript.text == "Hello there. Bye. again"
    assert transcript.duration == 43.0
    assert [(w.word, w.start) for w in transcript.words] == [("Hello", 0.5), ("there.", 1.0)]
    assert [(s.text, s.start, s.end) for s in transcript.segments] == [
        ("Hello there.", 0.5, 1.4),
        ("again", 29.0, 39.0),
    ]
    assert (transcript.language, transcript.target_language) == ("en", "de")


def sample() -> object:
    chunk = ChunkResult(
        "One two.",
        4.0,
        [Word("One", 0.2, 0.5), Word("two.", 0.6, 1.0)],
        [Segment("One two.", 0.2, 1.0)],
    )
    return assemble([chunk, ChunkResult("Three", 3723.5, offset=4.0)], "en", "en")


def test_clock() -> None:
    assert clock(3723.456, ",") == "01:02:03,456"
    assert clock(0.0004, ".") == "00:00:00.000"


def test_render_every_format() -> None:
    transcript = sample()
    assert render(transcript, "json") == ({"text": "One two. Three"}, "application/json")
    assert render(transcript, "text") == ("One two. Three", "text/plain")
    srt, kind = render(transcript, "srt")
    assert kind == "application/x-subrip"
    assert (
        srt
        == "1\n00:00:00,200 --> 00:00:01,000\nOne two.\n\n2\n00:00:04,000 --> 01:02:07,500\nThree\n"
    )
    vtt, _ = render(transcript, "vtt")
    assert vtt.startswith("WEBVTT\n\n00:00:00.200 --> 00:00:01.000\nOne two.\n")
    verbose, _ = render(transcript, "verbose_json", "translate", frozenset({"word"}))
    assert isinstance(verbose, dict) and "segments" not in verbose
    assert verbose["task"] == "translate" and verbose["words"][1] == {
        "word": "two.",
        "start": 0.6,
        "end": 1.0,
    }
    default, _ = render(transcript, "verbose_json")
    assert isinstance(default, dict) and "words" not in default
    assert [s["id"] for s in default["segments"]] == [0, 1]
    json.dumps(default)


# what CanaryBPETokenizer offers: one vocabulary holding the prompt tokens
SINGLE_SENTENCEPIECE = SimpleNamespace(
    vocab=["<unk>", "<|endoftext|>", "<|pnc|>", "<|itn|>", "<|en|>", "<|de|>", "<|emo:sad|>", "▁a"]
)
# what CanaryTokenizer offers: language parts and the special tokens' ids
AGGREGATE = SimpleNamespace(
    langs=["spl_tokens", "en", "fr", "xx"], special_tokens={"<|en|>": 5, "<|fr|>": 6}
)


def test_languages_of_both_tokenizer_kinds() -> None:
    assert supported_languages(SINGLE_SENTENCEPIECE) == ["en", "de"]
    assert supported_languages(AGGREGATE) == ["en", "fr"]
    assert languages_from_tokens(["<|en-US|>", "<|nopnc|>", "<|12|>"]) == ["en-US"]
    assert check_language("fr", ["en", "fr"], "source") == "fr"
    with pytest.raises(UnsupportedLanguage, match=r"'ja'.*supported: en, fr"):
        check_language("ja", ["en", "fr"], "target")


def test_form_validation() -> None:
    form = AudioForm.model_validate(
        {"language": " EN ", "response_format": "srt", "timestamp_granularities": ["word"]}
    )
    assert form.source() == "en" and form.model is None
    with pytest.raises(InvalidField):
        AudioForm(language="en", source_lang="de").source()


def test_batcher_groups_by_key_and_caps_the_size() -> None:
    calls: list[tuple[str, list[int]]] = []

    def run(key: str, items: list[int]) -> list[int]:
        calls.append((key, items))
        return [item * 10 for item in items]

    async def main() -> list[int]:
        batcher: Batcher[str, int, int] = Batcher(run, max_size=3, wait_seconds=0.05)
        jobs = [batcher.submit("a" if i % 2 else "b", i) for i in range(8)]
        results = await asyncio.gather(*jobs)
        await batcher.close()
        assert batcher.stats.view["requests"] == 8 and batcher.stats.view["largestBatch"] == 3
        return list(results)

    assert asyncio.run(main()) == [i * 10 for i in range(8)]
    assert all(len(items) <= 3 and len({i % 2 for i in items}) == 1 for _, items in calls)
    assert len(calls) == 4  # 4 of each key: 3 + 1 twice


def test_batcher_passes_errors_to_every_caller() -> None:
    def run(key: str, items: list[int]) -> list[int]:
        raise RuntimeError("model broke")

    async def main() -> None:
        batcher: Batcher[str, int, int] = Batcher(run, wait_seconds=0.01)
        results = await asyncio.gather(
            *(batcher.submit("k", i) for i in range(3)), return_exceptions=True
        )
        assert all(isinstance(r, RuntimeError) for r in results)
        await batcher.close()

    asyncio.run(main())


def test_render_with_speakers() -> None:
    from berth_runtime.engines.nemo_asr.speakers import Turn, attribute, timed_words
    from openai.types.audio import TranscriptionDiarized

    transcript = sample()
    said = timed_words(transcript.words, transcript.segments)
    # "Three" was not aligned word by word: it stays, as one word over its segment
    assert [w.word for w in said] == ["One", "two.", "Three"]
    speakers = attribute(said, [Turn("SPEAKER_01", 0.0, 0.55), Turn("SPEAKER_00", 0.55, 9.0)])
    diarized, kind = render(transcript, "diarized_json", speakers=speakers)
    assert kind == "application/json" and isinstance(diarized, dict)
    parsed = TranscriptionDiarized.model_validate(diarized)
    # a pause of 3 s ends B's first segment
    assert [(s.speaker, s.text) for s in parsed.segments] == [
        ("A", "One"),
        ("B", "two."),
        ("B", "Three"),
    ]
    assert parsed.text == "One two. Three" and parsed.duration == transcript.duration
    srt, _ = render(transcript, "srt", speakers=speakers)
    assert srt.startswith("1\n00:00:00,200 --> 00:00:00,500\nA: One\n\n2\n")
    vtt, _ = render(transcript, "vtt", speakers=speakers)
    assert "\n<v B>two.\n" in vtt
    verbose, _ = render(transcript, "verbose_json", speakers=speakers)
    assert isinstance(verbose, dict)
    assert [s["speaker"] for s in verbose["segments"]] == ["A", "B", "B"]
    text, _ = render(transcript, "text", speakers=speakers)
    assert text == "A: One\nB: two.\nB: Three"
