"""Who said what: timed words assigned to a diarization's speaker turns, and the transcript
cut into segments, one speaker each.

Rules (doc/models.md repeats them for users):

- A word belongs to the speaker whose turns overlap it longest; on a tie, the speaker whose turn
  began first. Overlapped speech (two turns over one word) thus goes to the one heard longer;
  an exclusive diarization (one speaker at a time, what pyannote 4 returns next to the regular
  one) has no such ties.
- A word that overlaps no turn (the diarization heard no speech there) goes to the nearest turn
  in time, the earlier one on a tie, so no word is ever dropped.
- A segment is a run of words of one speaker; it also ends at a pause of `PAUSE_SECONDS` or
  more between two words, and before it grows past `MAX_SEGMENT_SECONDS`.
- Text the aligner could not time word by word (a chunk without word timestamps) is kept as
  one word spanning its segment.
- Speakers are named A, B, C... in the order they first speak, unless the diarization named
  them already (known speakers).

Both inputs are sorted once and swept together: time and memory grow linearly with the words
and turns (plus the sort).
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable
from dataclasses import dataclass

from berth_runtime.engines.nemo_asr.transcript import Segment, Word

#: a pause at least this long between two words of one speaker starts a new segment
PAUSE_SECONDS = 1.0
#: no segment grows longer than this (subtitles and readers want short ones)
MAX_SEGMENT_SECONDS = 30.0
#: the speaker of every segment when the speakers could not be had (the client allowed that)
UNKNOWN_SPEAKER = "unknown"
#: the response header that flags such a transcript, in every format (its value: the reason)
SPEAKERS_UNAVAILABLE_HEADER = "Berth-Speakers-Unavailable"
#: pyannote's own labels (SPEAKER_00, ...): renamed A, B, ... as OpenAI names speakers
_PIPELINE_LABEL = re.compile(r"^SPEAKER_\d+$")


@dataclass(frozen=True)
class Turn:
    """A stretch of time one speaker talks, in seconds from the recording's start."""

    speaker: str
    start: float
    end: float


@dataclass(frozen=True)
class SpeakerSegment(Turn):
    """A piece of the transcript one speaker said."""

    text: str


def timed_words(words: list[Word], segments: list[Segment]) -> list[Word]:
    """The transcript's timed words, plus each segment that holds none of them as one word."""
    starts = sorted(word.start for word in words)
    found = list(words)
    at = 0
    for segment in sorted(segments, key=lambda s: s.start):
        while at < len(starts) and starts[at] < segment.start:
            at += 1
        if segment.text and not (at < len(starts) and starts[at] <= segment.end):
            found.append(Word(segment.text, segment.start, segment.end))
    return found


def assign(words: list[Word], turns: list[Turn]) -> list[str]:
    """Each word's speaker, in the order of `words` (by the rules above); empty when there is
    no turn at all."""
    if not turns:
        return []
    ordered_turns = sorted(turns, key=lambda t: (t.start, t.end))
    order = sorted(range(len(words)), key=lambda i: (words[i].start, words[i].end))
    speakers: list[str] = [""] * len(words)
    active: list[Turn] = []  # turns begun before the current word ends and not ended before it
    latest_ended: Turn | None = None  # of the turns ended before the word, the one ending last
    following = 0  # the first turn that begins after the current word ends
    for index in order:
        word = words[index]
        while following < len(ordered_turns) and ordered_turns[following].start <= word.end:
            active.append(ordered_turns[following])
            following += 1
        still = []
        for turn in active:
            if turn.end < word.start:
                if latest_ended is None or turn.end > latest_ended.end:
                    latest_ended = turn
            else:
                still.append(turn)
        active = still
        speakers[index] = (
            _longest_overlap(word, active)
            if active
            else _nearest(word, latest_ended, ordered_turns[following : following + 1])
        )
    return speakers


def _longest_overlap(word: Word, turns: list[Turn]) -> str:
    """The speaker whose turns cover most of the word (a point word: any turn holding it)."""
    covered: dict[str, float] = {}
    first: dict[str, float] = {}
    for turn in turns:
        overlap = max(0.0, min(word.end, turn.end) - max(word.start, turn.start))
        covered[turn.speaker] = covered.get(turn.speaker, 0.0) + overlap
        first[turn.speaker] = min(first.get(turn.speaker, turn.start), turn.start)
    return max(covered, key=lambda speaker: (covered[speaker], -first[speaker]))


def _nearest(word: Word, before: Turn | None, after: list[Turn]) -> str:
    """The speaker of the turn closest in time to a word no turn overlaps; the earlier on a tie."""
    if before is None:
        return after[0].speaker
    if not after or word.start - before.end <= after[0].start - word.end:
        return before.speaker
    return after[0].speaker


def segments(words: list[Word], speakers: list[str]) -> list[SpeakerSegment]:
    """The words (in time order) cut where the speaker changes, at long pauses and at the
    length limit; each segment's text is its words joined by spaces."""
    found: list[SpeakerSegment] = []
    run: list[Word] = []
    speaker = ""
    for word, said_by in sorted(zip(words, speakers, strict=True), key=_by_time):
        if run and (
            said_by != speaker
            or word.start - run[-1].end >= PAUSE_SECONDS
            or word.end - run[0].start > MAX_SEGMENT_SECONDS
        ):
            found.append(_segment(speaker, run))
            run = []
        run.append(word)
        speaker = said_by
    if run:
        found.append(_segment(speaker, run))
    return found


def _by_time(pair: tuple[Word, str]) -> tuple[float, float]:
    return pair[0].start, pair[0].end


def _segment(speaker: str, words: list[Word]) -> SpeakerSegment:
    text = " ".join(word.word for word in words)
    return SpeakerSegment(speaker, words[0].start, words[-1].end, _tidy(text))


def _tidy(text: str) -> str:
    """No space before punctuation that a word list may carry as words of its own."""
    return re.sub(rf" ([{re.escape(string.punctuation)}](?:\s|$))", r"\1", text).strip()


def letters(speakers: Iterable[str]) -> dict[str, str]:
    """The pipeline's labels -> A, B, ... in order of first appearance, skipping letters a
    known speaker is called; a name the diarization gave (a known speaker) is kept."""
    ordered = list(dict.fromkeys(speakers))
    known = {speaker for speaker in ordered if not _PIPELINE_LABEL.match(speaker)}
    names: dict[str, str] = {}
    count = 0
    for speaker in ordered:
        if speaker in known:
            names[speaker] = speaker
            continue
        while _letter(count) in known:
            count += 1
        names[speaker] = _letter(count)
        count += 1
    return names


def _letter(index: int) -> str:
    """A, ..., Z, AA, AB, ... (spreadsheet columns)."""
    name = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        name = chr(ord("A") + rest) + name
    return name


def attribute(words: list[Word], turns: list[Turn]) -> list[SpeakerSegment]:
    """The transcript's speaker segments, speakers named A, B, ... (or as the turns name them)."""
    speakers = assign(words, turns)
    if not speakers:
        speakers = ["SPEAKER_00"] * len(words)
    found = segments(words, speakers)
    names = letters(segment.speaker for segment in found)
    return [SpeakerSegment(names[s.speaker], s.start, s.end, s.text) for s in found]


def unattributed(words: list[Word]) -> list[SpeakerSegment]:
    """The transcript's segments, cut as with speakers, each said by UNKNOWN_SPEAKER."""
    return segments(words, [UNKNOWN_SPEAKER] * len(words))
