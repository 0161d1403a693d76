"""Known speakers: names put on diarized speakers by matching short reference clips.

A request names up to MAX_KNOWN_SPEAKERS speakers (`known_speaker_names[]`) and gives a clip
of each (`known_speaker_references[]`, data URLs of 2 to 10 s of audio, as OpenAI's Audio API
defines them). The pipeline's own embedding model embeds each clip; each diarized speaker has
its centroid from the same model. The rule (doc/models.md):

- similarity is the cosine between a clip's embedding and a speaker's centroid;
- pairs are taken best first: the most similar (name, speaker) pair is named, both leave the
  pool, and so on; a name goes to one speaker at most and a speaker gets one name at most;
- a pair below the threshold is never named: an unmatched speaker keeps its label, an
  unmatched name names nobody (the answer says so).
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from berth_runtime.server.errors import BadRequest

MAX_KNOWN_SPEAKERS = 4
MIN_REFERENCE_SECONDS = 2.0
MAX_REFERENCE_SECONDS = 10.0
#: leeway on the clip's length for encoders' padding (a "10 s" mp3 decodes a little longer)
REFERENCE_LEEWAY_SECONDS = 0.25
MAX_NAME_LENGTH = 64
DEFAULT_THRESHOLD = 0.5
NAMES_FIELD = "known_speaker_names"
REFERENCES_FIELD = "known_speaker_references"
DATA_URL = re.compile(
    r"data:(?P<type>[\w.+-]+/[\w.+-]+)?(?:;[\w.+-]+=[\w.+-]+)*;base64,(?P<data>.*)", re.S
)
#: the pipeline's own labels; a known name may not look like one
PIPELINE_LABEL = re.compile(r"SPEAKER_\d+")


class InvalidKnownSpeakers(BadRequest):
    type = "InvalidKnownSpeakers"


@dataclass(frozen=True)
class KnownSpeakers:
    """Names and their reference clips (encoded audio), in the request's order."""

    names: tuple[str, ...]
    clips: tuple[bytes, ...]


@dataclass(frozen=True)
class Match:
    """What became of one known name: the diarized speaker it names (None: nobody) and the
    best similarity it had to any speaker."""

    name: str
    speaker: str | None
    similarity: float | None

    def as_json(self) -> dict[str, Any]:
        similarity = None if self.similarity is None else round(self.similarity, 4)
        return {"name": self.name, "speaker": self.speaker, "similarity": similarity}


def decode_data_url(index: int, url: str) -> bytes:
    """The bytes of reference `index`, a base64 data URL."""
    field = f"{REFERENCES_FIELD}[{index}]"
    found = DATA_URL.fullmatch(url.strip())
    if found is None:
        raise InvalidKnownSpeakers(
            f"{field} is not a base64 data URL: send data:audio/wav;base64,<the clip's bytes>"
        )
    try:
        return base64.b64decode(found["data"], validate=True)
    except (binascii.Error, ValueError) as error:
        raise InvalidKnownSpeakers(f"{field} is not valid base64 ({error})") from None


def read_known_speakers(names: list[str], references: list[str]) -> KnownSpeakers | None:
    """The request's known speakers (None when it names none), checked field by field."""
    if not names and not references:
        return None
    if len(names) != len(references):
        raise InvalidKnownSpeakers(
            f"{NAMES_FIELD}[] has {len(names)} entries and {REFERENCES_FIELD}[] "
            f"{len(references)}: give one reference clip per name, in the same order"
        )
    if len(names) > MAX_KNOWN_SPEAKERS:
        raise InvalidKnownSpeakers(
            f"{NAMES_FIELD}[] has {len(names)} names: at most {MAX_KNOWN_SPEAKERS} are supported"
        )
    cleaned = [name.strip() for name in names]
    for index, name in enumerate(cleaned):
        if not name or len(name) > MAX_NAME_LENGTH:
            raise InvalidKnownSpeakers(
                f"{NAMES_FIELD}[{index}] must be 1 to {MAX_NAME_LENGTH} characters, got {name!r}"
            )
        if PIPELINE_LABEL.fullmatch(name):
            raise InvalidKnownSpeakers(
                f"{NAMES_FIELD}[{index}] is {name!r}, a label the pipeline gives unknown "
                "speakers: choose another name"
            )
        if name in cleaned[:index]:
            raise InvalidKnownSpeakers(f"{NAMES_FIELD}[{index}] repeats the name {name!r}")
    clips = tuple(decode_data_url(index, url) for index, url in enumerate(references))
    return KnownSpeakers(tuple(cleaned), clips)


def check_reference_length(index: int, samples: int, sample_rate: int) -> None:
    """A reference clip lasts 2 to 10 s."""
    seconds = samples / sample_rate
    if not (
        MIN_REFERENCE_SECONDS - REFERENCE_LEEWAY_SECONDS
        <= seconds
        <= MAX_REFERENCE_SECONDS + REFERENCE_LEEWAY_SECONDS
    ):
        raise InvalidKnownSpeakers(
            f"{REFERENCES_FIELD}[{index}] lasts {seconds:.1f} s: a reference clip must last "
            f"{MIN_REFERENCE_SECONDS:.0f} to {MAX_REFERENCE_SECONDS:.0f} s"
        )


def cosine_similarities(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """(len(left), len(right)) cosines; NaN where a vector is zero or not finite."""
    left, right = np.asarray(left, dtype=np.float64), np.asarray(right, dtype=np.float64)
    left_norms = np.linalg.norm(left, axis=1, keepdims=True)
    right_norms = np.linalg.norm(right, axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        similarities = (left / left_norms) @ (right / right_norms).T
    similarities[~np.isfinite(similarities)] = np.nan
    return similarities


def match_speakers(
    names: tuple[str, ...],
    references: np.ndarray,
    speakers: list[str],
    centroids: np.ndarray,
    threshold: float,
) -> list[Match]:
    """Each name's speaker by the module's rule: best pairs first, one to one, at or above
    `threshold`. `references` and `centroids` hold one embedding per row, in the order of
    `names` and `speakers`."""
    if not speakers:
        return [Match(name, None, None) for name in names]
    similarities = cosine_similarities(references, centroids)
    best = [None if np.all(np.isnan(row)) else float(np.nanmax(row)) for row in similarities]
    pool = np.where(np.isnan(similarities), -np.inf, similarities)
    named: dict[int, int] = {}
    while True:
        name_index, speaker_index = np.unravel_index(np.argmax(pool), pool.shape)
        if pool[name_index, speaker_index] < threshold:
            break
        named[int(name_index)] = int(speaker_index)
        pool[name_index, :] = -np.inf
        pool[:, speaker_index] = -np.inf
    return [
        Match(name, speakers[named[index]] if index in named else None, best[index])
        for index, name in enumerate(names)
    ]
