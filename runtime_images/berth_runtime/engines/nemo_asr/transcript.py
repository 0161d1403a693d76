"""Transcripts of long audio: overlapping chunks, and their results merged into one transcript.

Like NeMo's own long-audio path (`chunking_utils.merge_parallel_chunks`), neighbouring chunks
share a stretch of audio and the words both heard are kept once: the text by the longest run of
words the two agree on in the overlap (NeMo aligns tokens by their longest common run), the
timed words by time.
"""

from __future__ import annotations

import string
from dataclasses import dataclass, field

import numpy as np

SAMPLE_RATE = 16_000
#: audio each chunk shares with the next: a word up to this long is whole in one of them
OVERLAP_SECONDS = 2.0
#: faster than speech goes: bounds how many words an overlap can hold
MAX_WORDS_PER_SECOND = 4
#: words that end a segment, as NeMo's segment timestamps end them
SENTENCE_ENDS = (".", "!", "?")
PUNCTUATION = string.punctuation + "¿¡«»“”„"


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


@dataclass(frozen=True)
class Chunk:
    """A piece of the recording and where it starts in it, in seconds."""

    start: float
    audio: np.ndarray

    @property
    def duration(self) -> float:
        return len(self.audio) / SAMPLE_RATE


@dataclass
class ChunkResult:
    """What the model said about one chunk; times relative to the chunk's start, -1 if unaligned.
    `offset` is where the chunk starts in the recording."""

    text: str
    duration: float
    words: list[Word] = field(default_factory=list)
    segments: list[Segment] = field(default_factory=list)
    offset: float = 0.0


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
    audio: np.ndarray,
    chunk_seconds: float,
    overlap_seconds: float = OVERLAP_SECONDS,
    sample_rate: int = SAMPLE_RATE,
) -> list[Chunk]:
    """Chunks of `chunk_seconds`, each sharing `overlap_seconds` (at most half a chunk) with the
    next; a tail that adds under a second joins the chunk before it."""
    size = max(1, int(chunk_seconds * sample_rate))
    hop = size - min(int(overlap_seconds * sample_rate), size // 2)
    starts = [0]
    while starts[-1] + size < len(audio):
        starts.append(starts[-1] + hop)
    if len(starts) > 1 and len(audio) - (starts[-2] + size) < sample_rate:
        starts.pop()
    ends = [start + size for start in starts[:-1]] + [len(audio)]
    return [
        Chunk(start / sample_rate, audio[start:end])
        for start, end in zip(starts, ends, strict=True)
    ]


def _norm(word: str) -> str:
    return word.strip(PUNCTUATION).lower()


def common_run(a: list[str], b: list[str]) -> tuple[int, int, int]:
    """(i, j, n) with a[i:i+n] == b[j:j+n] the longest run of equal words (n = 0: none); among
    equally long runs, the one nearest the end of `a` and the start of `b`."""
    best, best_key = (0, 0, 0), (0, 0)
    for i in range(len(a)):
        for j in range(len(b)):
            n = 0
            while i + n < len(a) and j + n < len(b) and a[i + n] and a[i + n] == b[j + n]:
                n += 1
            key = (n, -((len(a) - i - n) + j))
            if n and key > best_key:
                best, best_key = (i, j, n), key
    return best


def merge_texts(texts: list[str], overlap_seconds: float) -> list[list[str]]:
    """Each chunk's words, less those its neighbour already said in their overlap: the words
    after the longest run the two agree on come from the later chunk, those before it from the
    earlier one (cut words at a chunk's edges fall away)."""
    window = max(2, int(overlap_seconds * MAX_WORDS_PER_SECOND) + 2)
    pieces: list[list[str]] = []
    for text in texts:
        words = text.split()
        if pieces and pieces[-1] and words:
            before = pieces[-1]
            tail = before[-window:]
            i, j, n = common_run([_norm(w) for w in tail], [_norm(w) for w in words[:window]])
            if n:
                pieces[-1] = before[: len(before) - len(tail) + i + n]
                words = words[j + n :]
        pieces.append(words)
    return pieces


def _aligned(start: float, end: float) -> bool:
    return start >= 0 and end >= start


def bounds(chunks: list[ChunkResult]) -> list[tuple[float, float]]:
    """The part of the recording each chunk answers for: from the middle of its overlap with the
    chunk before to the middle of its overlap with the chunk after."""
    ends = [c.offset + c.duration for c in chunks]
    middles = [(end + after.offset) / 2 for end, after in zip(ends, chunks[1:], strict=False)]
    return list(zip([0.0, *middles], [*middles, max(ends, default=0.0)], strict=True))


def merge_words(chunks: list[ChunkResult]) -> list[list[Word]]:
    """Each chunk's aligned words on the recording's timeline, each word once: a chunk keeps the
    words centred before the end of its part (see `bounds`) and after the end of the last word
    kept; a start is moved no earlier than that end (as NeMo joins chunk timestamps)."""
    kept: list[list[Word]] = []
    last_end = float("-inf")
    for index, (chunk, (_, end_of_part)) in enumerate(zip(chunks, bounds(chunks), strict=True)):
        limit = end_of_part if index + 1 < len(chunks) else float("inf")
        mine: list[Word] = []
        for word in chunk.words:
            if not _aligned(word.start, word.end):
                continue
            start, end = chunk.offset + word.start, chunk.offset + word.end
            if last_end < (start + end) / 2 < limit:
                start = max(start, last_end)
                mine.append(Word(word.word, round(start, 3), round(end, 3)))
                last_end = end
        kept.append(mine)
    return kept


def sentences(words: list[Word]) -> list[Segment]:
    """Segments of consecutive words, each ending with a word that ends a sentence."""
    segments: list[Segment] = []
    current: list[Word] = []
    for word in words:
        current.append(word)
        if word.word.endswith(SENTENCE_ENDS):
            segments.append(_segment(current))
            current = []
    if current:
        segments.append(_segment(current))
    return segments


def _segment(words: list[Word]) -> Segment:
    return Segment(" ".join(w.word for w in words), words[0].start, words[-1].end)


def assemble(
    chunks: list[ChunkResult],
    language: str,
    target_language: str,
    overlap_seconds: float = OVERLAP_SECONDS,
) -> Transcript:
    """Merges chunk results in order. Segments are the sentences of the aligned words; a chunk
    that aligned no words becomes one segment over its part of the recording."""
    pieces = merge_texts([chunk.text for chunk in chunks], overlap_seconds)
    timed = merge_words(chunks)
    segments: list[Segment] = []
    pending: list[Word] = []
    for chunk, piece, words, (start, end) in zip(
        chunks, pieces, timed, bounds(chunks), strict=True
    ):
        if any(_aligned(w.start, w.end) for w in chunk.words):
            pending += words
        elif piece:
            segments += sentences(pending)
            segments.append(Segment(" ".join(piece), round(start, 3), round(end, 3)))
            pending = []
    segments += sentences(pending)
    return Transcript(
        text=" ".join(word for piece in pieces for word in piece),
        duration=round(bounds(chunks)[-1][1] if chunks else 0.0, 3),
        language=language,
        target_language=target_language,
        segments=segments,
        words=[word for words in timed for word in words],
    )
