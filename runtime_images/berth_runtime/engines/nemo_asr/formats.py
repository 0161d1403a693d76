"""Renders a transcript in the OpenAI response formats: json, text, srt, vtt, verbose_json and
diarized_json; with speaker segments, the timed formats name each cue's speaker."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from berth_runtime.engines.nemo_asr.speakers import SpeakerSegment
from berth_runtime.engines.nemo_asr.transcript import Transcript

ResponseFormat = Literal["json", "text", "srt", "vtt", "verbose_json", "diarized_json"]
Granularity = Literal["word", "segment"]
TIMED_FORMATS = frozenset({"srt", "vtt", "diarized_json"})


def clock(seconds: float, separator: str) -> str:
    """HH:MM:SS,mmm (srt) or HH:MM:SS.mmm (vtt)."""
    millis = max(0, round(seconds * 1000))
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


@dataclass(frozen=True)
class Cue:
    """A timed piece of text and who said it ("" when speakers were not asked for)."""

    start: float
    end: float
    text: str
    speaker: str = ""


def cues(transcript: Transcript, speakers: list[SpeakerSegment] | None) -> list[Cue]:
    if speakers is None:
        return [Cue(s.start, s.end, s.text) for s in transcript.segments]
    return [Cue(s.start, s.end, s.text, s.speaker) for s in speakers]


def srt(timed: list[Cue]) -> str:
    """SubRip has no speaker markup: a named cue starts with "speaker: "."""
    blocks = [
        f"{index}\n{clock(c.start, ',')} --> {clock(c.end, ',')}\n"
        f"{f'{c.speaker}: ' if c.speaker else ''}{c.text}\n"
        for index, c in enumerate(timed, start=1)
    ]
    return "\n".join(blocks)


def vtt(timed: list[Cue]) -> str:
    """WebVTT names a cue's speaker with a voice span: <v speaker>text."""
    blocks = [
        f"{clock(c.start, '.')} --> {clock(c.end, '.')}\n"
        f"{f'<v {c.speaker}>' if c.speaker else ''}{c.text}\n"
        for c in timed
    ]
    return "\n".join(["WEBVTT\n", *blocks])


def text(transcript: Transcript, timed: list[Cue]) -> str:
    """The plain text; with speakers, one line per segment: "speaker: text"."""
    if timed and timed[0].speaker:
        return "\n".join(f"{c.speaker}: {c.text}" for c in timed)
    return transcript.text


def verbose_json(
    transcript: Transcript, timed: list[Cue], task: str, granularities: frozenset[str]
) -> dict[str, Any]:
    """OpenAI's verbose_json: segments unless only words were asked for (each with its
    `speaker` when speakers were asked for); words when asked."""
    body: dict[str, Any] = {
        "task": task,
        "language": transcript.language,
        "target_language": transcript.target_language,
        "duration": transcript.duration,
        "text": transcript.text,
    }
    if "segment" in granularities or not granularities:
        body["segments"] = [
            {"id": index, "seek": 0, "start": c.start, "end": c.end, "text": c.text}
            | ({"speaker": c.speaker} if c.speaker else {})
            for index, c in enumerate(timed)
        ]
    if "word" in granularities:
        body["words"] = [{"word": w.word, "start": w.start, "end": w.end} for w in transcript.words]
    return body


def diarized_json(transcript: Transcript, timed: list[Cue], task: str) -> dict[str, Any]:
    """OpenAI's diarized_json: speaker segments, and the duration as the usage."""
    return {
        "task": task,
        "duration": transcript.duration,
        "text": transcript.text,
        "segments": [
            {
                "type": "transcript.text.segment",
                "id": f"seg_{index}",
                "start": c.start,
                "end": c.end,
                "text": c.text,
                "speaker": c.speaker,
            }
            for index, c in enumerate(timed)
        ],
        "usage": {"type": "duration", "seconds": transcript.duration},
    }


def render(
    transcript: Transcript,
    response_format: ResponseFormat,
    task: str = "transcribe",
    granularities: frozenset[str] = frozenset(),
    speakers: list[SpeakerSegment] | None = None,
) -> tuple[str | dict[str, Any], str]:
    """The body (text or a JSON object) and its content type; `speakers`, when given, make the
    segments and cues those of the speakers."""
    timed = cues(transcript, speakers)
    if response_format == "text":
        return text(transcript, timed), "text/plain"
    if response_format == "srt":
        return srt(timed), "application/x-subrip"
    if response_format == "vtt":
        return vtt(timed), "text/vtt"
    if response_format == "verbose_json":
        return verbose_json(transcript, timed, task, granularities), "application/json"
    if response_format == "diarized_json":
        return diarized_json(transcript, timed, task), "application/json"
    return {"text": transcript.text}, "application/json"
