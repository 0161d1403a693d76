"""Diarization requests: speaker counts from the spec and the request, multipart or JSON bodies."""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any, NamedTuple

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError

from berth_runtime.engines.pyannote.known_speakers import (
    DEFAULT_THRESHOLD,
    NAMES_FIELD,
    REFERENCES_FIELD,
    KnownSpeakers,
    read_known_speakers,
)
from berth_runtime.server.errors import BadRequest

DEFAULT_MAX_AUDIO_SECONDS = 4 * 3600
SPEAKER_FIELDS = ("num_speakers", "min_speakers", "max_speakers")
SETTING_OF_FIELD = {
    "num_speakers": "numSpeakers",
    "min_speakers": "minSpeakers",
    "max_speakers": "maxSpeakers",
}
WHOLE_NUMBER = re.compile(r"[+-]?\d+")


class InvalidSpeakerCount(BadRequest):
    type = "InvalidSpeakerCount"


class InvalidRequest(BadRequest):
    type = "InvalidRequest"


class MissingAudio(BadRequest):
    type = "MissingAudio"


class InvalidAudioEncoding(BadRequest):
    type = "InvalidAudioEncoding"


class InvalidSettings(ValueError):
    """The deployment's settings cannot work; `reason` goes to status.runtime.lastError."""

    reason = "InvalidSettings"


class SpeakerCounts(BaseModel):
    """How many speakers to look for: an exact number, or bounds, or nothing (the pipeline decides)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    num_speakers: StrictInt | None = Field(default=None, ge=1)
    min_speakers: StrictInt | None = Field(default=None, ge=1)
    max_speakers: StrictInt | None = Field(default=None, ge=1)

    def given(self) -> bool:
        return any(getattr(self, name) is not None for name in SPEAKER_FIELDS)

    def as_kwargs(self) -> dict[str, int]:
        return {
            name: value for name in SPEAKER_FIELDS if (value := getattr(self, name)) is not None
        }


class DiarizationRequest(SpeakerCounts):
    """The JSON body: base64 audio, optional speaker counts, model name, `exclusive`, and
    known speakers (names and data-URL clips)."""

    audio: str
    model: str | None = None
    exclusive: bool = False
    known_speaker_names: list[str] = []
    known_speaker_references: list[str] = []


class Diarization(NamedTuple):
    """What a request asks for: the audio, its speaker counts, the model it names (or None),
    whether it wants the exclusive diarization (one speaker at a time, for transcripts), and
    the speakers it knows by name (or None)."""

    audio: bytes
    counts: SpeakerCounts
    model: str | None
    exclusive: bool = False
    known: KnownSpeakers | None = None


def describe_validation_error(error: ValidationError, names: dict[str, str] | None = None) -> str:
    """One sentence per problem, each naming its field (renamed through `names`)."""
    problems = []
    for item in error.errors():
        field = ".".join(str(part) for part in item["loc"]) or "body"
        field = (names or {}).get(field, field)
        if item["type"] == "extra_forbidden":
            problems.append(f"unknown field '{field}'")
        elif item["type"] == "missing":
            problems.append(f"'{field}' is required")
        elif item["type"] in ("int_type", "int_parsing"):
            problems.append(f"{field} must be a whole number, got {item.get('input')!r}")
        else:
            problems.append(f"{field}: {item['msg']}")
    return "; ".join(problems)


def check_combination(counts: SpeakerCounts, names: dict[str, str] | None = None) -> None:
    """Rejects an exact count together with bounds, and min above max."""
    name = (names or {}).get
    if counts.num_speakers is not None and (
        counts.min_speakers is not None or counts.max_speakers is not None
    ):
        bound = "min_speakers" if counts.min_speakers is not None else "max_speakers"
        raise InvalidSpeakerCount(
            f"{name('num_speakers', 'num_speakers')} cannot be combined with "
            f"{name(bound, bound)}: give an exact number or bounds, not both"
        )
    if (
        counts.min_speakers is not None
        and counts.max_speakers is not None
        and counts.min_speakers > counts.max_speakers
    ):
        raise InvalidSpeakerCount(
            f"{name('min_speakers', 'min_speakers')} ({counts.min_speakers}) is greater than "
            f"{name('max_speakers', 'max_speakers')} ({counts.max_speakers})"
        )


def merge_counts(request: SpeakerCounts, defaults: SpeakerCounts) -> SpeakerCounts:
    """The request's counts over the deployment's defaults; an exact count replaces bounds."""
    if request.num_speakers is not None:
        merged = request
    elif request.min_speakers is not None or request.max_speakers is not None:
        merged = SpeakerCounts(
            min_speakers=request.min_speakers
            if request.min_speakers is not None
            else defaults.min_speakers,
            max_speakers=request.max_speakers
            if request.max_speakers is not None
            else defaults.max_speakers,
        )
    else:
        merged = defaults
    try:
        check_combination(merged)
    except InvalidSpeakerCount as error:
        raise InvalidSpeakerCount(
            f"{error.message} (after applying the deployment's defaults: "
            f"{defaults.as_kwargs() or 'none'})"
        ) from None
    return merged


def parse_form_count(field: str, value: str) -> int | None:
    """A speaker count from a form field; empty means not given."""
    text = value.strip()
    if not text:
        return None
    if not WHOLE_NUMBER.fullmatch(text):
        raise InvalidSpeakerCount(f"{field} must be a whole number, got {value!r}")
    number = int(text)
    if number < 1:
        raise InvalidSpeakerCount(f"{field} must be at least 1, got {number}")
    return number


def defaults_from_settings(settings: dict[str, Any]) -> SpeakerCounts:
    """The deployment's default speaker counts (settings numSpeakers, minSpeakers, maxSpeakers)."""
    raw = {field: settings.get(key) for field, key in SETTING_OF_FIELD.items()}
    try:
        counts = SpeakerCounts.model_validate(raw)
        check_combination(counts, SETTING_OF_FIELD)
    except ValidationError as error:
        raise InvalidSettings(
            f"invalid speaker settings: {describe_validation_error(error, SETTING_OF_FIELD)}"
        ) from None
    except InvalidSpeakerCount as error:
        raise InvalidSettings(f"invalid speaker settings: {error.message}") from None
    return counts


def max_audio_seconds(settings: dict[str, Any]) -> float:
    """The longest audio a request may send (settings maxAudioSeconds)."""
    value = settings.get("maxAudioSeconds", DEFAULT_MAX_AUDIO_SECONDS)
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise InvalidSettings(
            f"maxAudioSeconds must be a positive number of seconds, got {value!r}"
        )
    return float(value)


def known_speaker_threshold(settings: dict[str, Any]) -> float:
    """The least similarity that names a speaker (settings knownSpeakerThreshold)."""
    value = settings.get("knownSpeakerThreshold", DEFAULT_THRESHOLD)
    if isinstance(value, bool) or not isinstance(value, int | float) or not -1 <= value <= 1:
        raise InvalidSettings(
            f"knownSpeakerThreshold must be a cosine similarity from -1 to 1, got {value!r}"
        )
    return float(value)


async def read_multipart(request: web.Request) -> Diarization:
    """A multipart request: `file`, `num_speakers`, ..., and `model`."""
    form = await request.post()
    lists = (NAMES_FIELD, REFERENCES_FIELD)
    known_fields = {"file", "model", "exclusive", *SPEAKER_FIELDS, *lists}
    unknown = sorted(set(form) - known_fields - {f"{name}[]" for name in lists})
    if unknown:
        raise InvalidRequest(
            f"unknown form field '{unknown[0]}': the fields are file, model, exclusive, "
            f"{', '.join(SPEAKER_FIELDS)}, {NAMES_FIELD}[], {REFERENCES_FIELD}[]"
        )
    if "file" not in form:
        raise MissingAudio("no 'file' field: send the audio as the multipart field 'file'")
    upload = form["file"]
    if isinstance(upload, web.FileField):
        data = upload.file.read()
    else:
        data = upload.encode() if isinstance(upload, str) else bytes(upload)
    counts: dict[str, int | None] = {}
    for field in SPEAKER_FIELDS:
        value = form.get(field)
        if value is not None:
            if not isinstance(value, str):
                raise InvalidSpeakerCount(f"{field} must be a form value, not a file")
            counts[field] = parse_form_count(field, value)
    model = form.get("model")
    if model is not None and not isinstance(model, str):
        raise InvalidRequest("model must be a form value, not a file")
    request_counts = SpeakerCounts(**counts)
    check_combination(request_counts)
    known = read_known_speakers(*(form_list(form, name) for name in lists))
    exclusive = form_flag(form.get("exclusive"), "exclusive")
    return Diarization(data, request_counts, model, exclusive, known)


def form_list(form: Any, name: str) -> list[str]:
    """Every value of a repeated text field, sent as `name` or `name[]`."""
    values = [*form.getall(name, []), *form.getall(f"{name}[]", [])]
    if not all(isinstance(value, str) for value in values):
        raise InvalidRequest(f"{name}[] must be form values, not files")
    return values


def form_flag(value: object, field: str) -> bool:
    """A true/false form field; absent or empty is false."""
    if value is None:
        return False
    if not isinstance(value, str) or value.strip().lower() not in ("", "true", "false", "1", "0"):
        raise InvalidRequest(f"{field} must be true or false, got {value!r}")
    return value.strip().lower() in ("true", "1")


async def read_json(request: web.Request) -> Diarization:
    """A JSON request: base64 `audio`, `num_speakers`, ..., and `model`."""
    try:
        body = DiarizationRequest.model_validate_json(await request.read())
    except ValidationError as error:
        if any(item["type"] == "json_invalid" for item in error.errors()):
            raise InvalidRequest("the body is not valid JSON") from None
        message = describe_validation_error(error)
        if any(item["loc"] and item["loc"][0] in SPEAKER_FIELDS for item in error.errors()):
            raise InvalidSpeakerCount(message) from None
        raise InvalidRequest(message) from None
    try:
        data = base64.b64decode(body.audio, validate=True)
    except (binascii.Error, ValueError) as error:
        raise InvalidAudioEncoding(f"'audio' is not valid base64 ({error})") from None
    counts = SpeakerCounts(**body.model_dump(include=set(SPEAKER_FIELDS)))
    check_combination(counts)
    known = read_known_speakers(body.known_speaker_names, body.known_speaker_references)
    return Diarization(data, counts, body.model, body.exclusive, known)
