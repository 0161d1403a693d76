"""Renders a transcript in the OpenAI response formats: json, text, srt, vtt, verbose_json."""

from __future__ import annotations

from typing import Any, Literal

from berth_runtime.engines.nemo_asr.transcript import Transcript

ResponseFormat = Literal["json", "text", "srt", "vtt", "verbose_json"]
Granularity = Literal["word", "segment"]
TIMED_FORMATS = frozenset({"srt", "vtt"})


def clock(seconds: float, separator: str) -> str:
    """HH:MM:SS,mmm (srt) or HH:MM:SS.mmm (vtt)."""
    millis = max(0, round(seconds * 1000))
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def srt(transcript: Transcript) -> str:
    blocks = [
        f"{index}\n{clock(s.start, ',')} --> {clock(s.end, ',')}\n{s.text}\n"
        for index, s in enumerate(transcript.segments, start=1)
    ]
    return "\n".join(blocks)


def vtt(transcript: Transcript) -> str:
    blocks = [
        f"{clock(s.start, '.')} --> {clock(s.end, '.')}\n{s.text}\n" for s in transcript.segments
    ]
    return "\n".join(["WEBVTT\n", *blocks])


def verbose_json(
    transcript: Transcript, task: str, granularities: frozenset[str]
) -> dict[str, Any]:
    """OpenAI's verbose_json: segments unless only words were asked for; words when asked."""
    body: dict[str, Any] = {
        "task": task,
        "language": transcript.language,
        "target_language": transcript.target_language,
        "duration": transcript.duration,
        "text": transcript.text,
    }
    if "segment" in granularities or not granularities:
        body["segments"] = [
            {"id": index, "seek": 0, "start": s.start, "end": s.end, "text": s.text}
            for index, s in enumerate(transcript.segments)
        ]
    if "word" in granularities:
        body["words"] = [{"word": w.word, "start": w.start, "end": w.end} for w in transcript.words]
    return body


def render(
    transcript: Transcript,
    response_format: ResponseFormat,
    task: str = "transcribe",
    granularities: frozenset[str] = frozenset(),
) -> tuple[str | dict[str, Any], str]:
    """The body (text or a JSON object) and its content type."""
    if response_format == "text":
        return transcript.text, "text/plain"
    if response_format == "srt":
        return srt(transcript), "application/x-subrip"
    if response_format == "vtt":
        return vtt(transcript), "text/vtt"
    if response_format == "verbose_json":
        return verbose_json(transcript, task, granularities), "application/json"
    return {"text": transcript.text}, "application/json"
