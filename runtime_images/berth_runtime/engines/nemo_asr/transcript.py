"""Transcripts of long audio: cutting it into chunks and joining the chunks' results with offsets."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

SAMPLE_RATE = 16_000


@dataclass(frozen=True)
class Word:
    word: str
    start: float
    end: float


@dataclass(frozen=True)
class Segment:
    text: str
    start: float
    end: float


@dataclass
class ChunkResult:
    """What the model said about one chunk; times relative to the chunk's start, -1 if unaligned."""

    text: str
    duration: float
    words: list[Word] = field(default_factory=list)
    segments: list[Segment] = field(default_factory=list)


@dataclass
class Transcript:
    """One request's answer: the text, its duration, and times where they were asked for."""

    text: str
    duration: float
    language: str
    target_language: str
    segments: list[Segment] = field(default_factory=list)
    words: list[Word] = field(default_factory=list)


def split_chunks(
    audio: np.ndarray, chunk_seconds: float, sample_rate: int = SAMPLE_RATE
) -> list[np.ndarray]:
    """Cuts audio into chunks of `chunk_seconds`; a tail under a second joins the chunk before it."""
    size = max(1, int(chunk_seconds * sample_rate))
    starts = list(range(0, len(audio), size)) or [0]
    if len(starts) > 1 and len(audio) - starts[-1] < sample_rate:
        starts.pop()
    ends = [*starts[1:], len(audio)]
    return [audio[start:end] for start, end in zip(starts, ends, strict=True)]


def _aligned(start: float, end: float) -> bool:
    return start >= 0 and end >= start


def assemble(chunks: list[ChunkResult], language: str, target_language: str) -> Transcript:
    """Joins chunk results in order; times are shifted by each chunk's offset. A chunk without
    aligned segments becomes one segment spanning the whole chunk."""
    texts: list[str] = []
    words: list[Word] = []
    segments: list[Segment] = []
    offset = 0.0
    for chunk in chunks:
        text = chunk.text.strip()
        if text:
            texts.append(text)
        words += [
            Word(w.word, round(offset + w.start, 3), round(offset + w.end, 3))
            for w in chunk.words
            if _aligned(w.start, w.end)
        ]
        aligned = [s for s in chunk.segments if _aligned(s.start, s.end) and s.text.strip()]
        if aligned:
            segments += [
                Segment(s.text.strip(), round(offset + s.start, 3), round(offset + s.end, 3))
                for s in aligned
            ]
        elif text:
            segments.append(Segment(text, round(offset, 3), round(offset + chunk.duration, 3)))
        offset += chunk.duration
    return Transcript(
        text=" ".join(texts),
        duration=round(offset, 3),
        language=language,
        target_language=target_language,
        segments=segments,
        words=words,
    )
