"""The multipart form of the audio routes, parsed and validated with pydantic."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from berth_runtime.engines.nemo_asr.formats import Granularity, ResponseFormat
from berth_runtime.engines.nemo_asr.speakers import Turn
from berth_runtime.server.errors import BadRequest


class InvalidField(BadRequest):
    type = "InvalidField"


class MissingFile(BadRequest):
    type = "MissingFile"


class SpeakersUnavailable(BadRequest):
    type = "SpeakersUnavailable"


class SpeakerTurn(BaseModel):
    model_config = ConfigDict(extra="ignore")

    speaker: str = Field(min_length=1)
    start: float = Field(ge=0)
    end: float = Field(ge=0)


class SpeakersUnavailableReason(BaseModel):
    """Why a transcript that asked for speakers has none: the gateway's error code and message."""

    reason: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z]+$")
    message: str


class AudioForm(BaseModel):
    """The fields of /v1/audio/transcriptions and /v1/audio/translations (OpenAI's, plus Berth's
    source_lang, target_lang, pnc, diarize and speaker_turns); OpenAI fields Canary has no use
    for are ignored.

    `speaker_turns` (a JSON list of {speaker, start, end}) is what the gateway adds from the
    paired diarization model; `diarize=true` asks for speakers in any format;
    `speakers_unavailable` (JSON {reason, message}) is what the gateway adds instead when the
    diarization model failed and the client sent `speakers_optional=true`."""

    model_config = ConfigDict(extra="ignore")

    model: str | None = None
    language: str | None = None
    source_lang: str | None = None
    target_lang: str | None = None
    response_format: ResponseFormat = "json"
    timestamp_granularities: list[Granularity] = Field(default_factory=list)
    pnc: bool | None = None
    diarize: bool = False
    speaker_turns: list[SpeakerTurn] | None = None
    speakers_unavailable: SpeakersUnavailableReason | None = None

    @field_validator("speaker_turns", "speakers_unavailable", mode="before")
    @classmethod
    def turns_from_json(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                return json.loads(value)
            except ValueError as error:
                raise ValueError(f"not JSON: {error}") from error
        return value

    @field_validator("model", "language", "source_lang", "target_lang", mode="before")
    @classmethod
    def blank_is_none(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.strip()
            return value or None
        return value

    @field_validator("language", "source_lang", "target_lang")
    @classmethod
    def language_code(cls, value: str | None) -> str | None:
        return value.lower() if value and "-" not in value else value

    def source(self) -> str | None:
        """The spoken language: `source_lang`, or OpenAI's `language`."""
        if self.source_lang and self.language and self.source_lang != self.language:
            raise InvalidField(
                f"language '{self.language}' and source_lang '{self.source_lang}' disagree; send one"
            )
        return self.source_lang or self.language

    def wants_speakers(self) -> bool:
        return self.diarize or self.response_format == "diarized_json"

    def turns(self) -> list[Turn]:
        return [Turn(t.speaker, t.start, t.end) for t in self.speaker_turns or []]


async def read_form(request: web.Request) -> tuple[AudioForm, bytes]:
    """The validated fields and the uploaded file's bytes."""
    posted = await request.post()
    fields: dict[str, Any] = {}
    data: bytes | None = None
    for name, value in posted.items():
        if name == "file":
            if isinstance(value, web.FileField):
                data = value.file.read()
            else:
                data = value.encode() if isinstance(value, str) else bytes(value)
        elif name in ("timestamp_granularities[]", "timestamp_granularities"):
            fields.setdefault("timestamp_granularities", []).append(value)
        elif isinstance(value, str):
            fields[name] = value
    if data is None:
        raise MissingFile("the form has no 'file' field: send the audio as multipart field 'file'")
    try:
        return AudioForm.model_validate(fields), data
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'form'}: {e['msg']}" for e in error.errors()
        )
        raise InvalidField(problems) from error
