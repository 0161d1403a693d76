"""The pyannote engine: speaker diarization with a pyannote.audio pipeline at /api/diarization/process."""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import os
import re
from pathlib import Path
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError

from berth_runtime.audio import SAMPLE_RATE, decode_audio
from berth_runtime.server.app import accepts
from berth_runtime.server.engine import Engine
from berth_runtime.server.errors import BadRequest

logger = logging.getLogger(__name__)

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


class PipelineLoadError(RuntimeError):
    """The pipeline did not load; the message says what to fix."""

    reason = "PipelineLoadFailed"


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
    """The JSON body: base64 audio and optional speaker counts."""

    audio: str


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


def hub_cache_of(model_dir: Path) -> Path | None:
    """The HF cache holding a snapshot dir (<cache>/models--org--repo/snapshots/<rev>), if it is one."""
    if model_dir.parent.name == "snapshots" and model_dir.parent.parent.name.startswith("models--"):
        return model_dir.parent.parent.parent
    return None


def has_plda_entry(model_dir: Path) -> bool:
    """Whether config.yaml names its own PLDA (without one, pyannote 4 asks the hub for community-1's)."""
    import yaml

    try:
        config = yaml.safe_load((model_dir / "config.yaml").read_text())
        return "plda" in config["pipeline"].get("params", {})
    except (OSError, KeyError, TypeError, AttributeError, yaml.YAMLError):
        return True  # nothing to hint at; pyannote's own error will say what is wrong


class PyannoteEngine(Engine):
    """A pyannote.audio SpeakerDiarization pipeline (3.1 or community-1 style) on one GPU or the CPU."""

    libraries = ("pyannote.audio", "pyannote.core", "pyannote.pipeline", "torchcodec")

    def __init__(self, settings: dict[str, Any]) -> None:
        super().__init__(settings)
        self.pipeline: Any = None
        self.device = "cpu"
        self.warning: str | None = None
        self.defaults = SpeakerCounts()
        self.max_seconds = float(DEFAULT_MAX_AUDIO_SECONDS)
        self._lock = asyncio.Lock()

    def load(self, model_dir: Path) -> None:
        """Loads config.yaml and its `$model/...` parts from the local snapshot, offline."""
        self.defaults = defaults_from_settings(self.settings)
        self.max_seconds = max_audio_seconds(self.settings)
        os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "0")
        import torch
        from pyannote.audio import Pipeline

        try:
            pipeline = Pipeline.from_pretrained(model_dir, cache_dir=hub_cache_of(model_dir))
        except Exception as error:
            hint = ""
            if not has_plda_entry(model_dir):
                hint = (
                    "; config.yaml has no 'plda:' entry, so pyannote.audio 4 loads the PLDA of "
                    "pyannote/speaker-diarization-community-1 (gated): download that repository "
                    "into the same cache, or add a plda entry pointing at local files"
                )
            raise PipelineLoadError(
                f"pyannote could not load the pipeline in {model_dir}: "
                f"{type(error).__name__}: {error}{hint}"
            ) from error
        if pipeline is None:
            raise PipelineLoadError(f"no pipeline config.yaml in {model_dir}")

        wanted_gpus = self.settings.get("gpus")
        if torch.cuda.is_available() and wanted_gpus != 0:
            self.device = "cuda:0"  # the first GPU this container sees
            self.warning = None
        else:
            self.device = "cpu"
            if wanted_gpus == 0:
                self.warning = "running on the CPU: the deployment asks for no GPU"
            elif torch.version.cuda is None:
                self.warning = f"no GPU visible: running on the CPU (torch {torch.__version__} is a CPU-only build)"
            else:
                self.warning = "no GPU visible: running on the CPU"
            logger.warning(self.warning)
        pipeline.to(torch.device(self.device))
        self.pipeline = pipeline

    def routes(self) -> list[web.RouteDef]:
        return [web.post("/api/diarization/process", self.process)]

    def details(self) -> dict[str, Any]:
        details: dict[str, Any] = {"sample_rate": SAMPLE_RATE, "device": self.device}
        if self.pipeline is not None:
            cls = type(self.pipeline)
            details["pipeline"] = f"{cls.__module__}.{cls.__qualname__}"
            if clustering := getattr(self.pipeline, "klustering", None):
                details["clustering"] = clustering
        if self.warning:
            details["warning"] = self.warning
        return details

    # ---- requests ---------------------------------------------------------------------------

    async def _read_multipart(self, request: web.Request) -> tuple[bytes, SpeakerCounts]:
        form = await request.post()
        unknown = sorted(set(form) - {"file", *SPEAKER_FIELDS})
        if unknown:
            raise InvalidRequest(
                f"unknown form field '{unknown[0]}': the fields are file, {', '.join(SPEAKER_FIELDS)}"
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
        request_counts = SpeakerCounts(**counts)
        check_combination(request_counts)
        return data, request_counts

    async def _read_json(self, request: web.Request) -> tuple[bytes, SpeakerCounts]:
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
        counts = SpeakerCounts(**body.model_dump(exclude={"audio"}))
        check_combination(counts)
        return data, counts

    @accepts("multipart/form-data", "application/json")
    async def process(self, request: web.Request) -> web.Response:
        """Diarizes one recording: multipart `file` or JSON base64 `audio`, optional speaker counts."""
        if request.content_type == "application/json":
            data, request_counts = await self._read_json(request)
        else:
            data, request_counts = await self._read_multipart(request)
        counts = merge_counts(request_counts, self.defaults)
        if counts.num_speakers is None and getattr(self.pipeline, "_expects_num_speakers", False):
            raise InvalidSpeakerCount(
                f"this pipeline's clustering ({self.pipeline.klustering}) needs num_speakers"
            )
        loop = asyncio.get_running_loop()
        audio = await loop.run_in_executor(None, decode_audio, data, self.max_seconds)
        async with self._lock:
            segments = await loop.run_in_executor(None, self._diarize, audio, counts)
        return web.json_response(
            {
                "segments": segments,
                "runtime": {"details": {**self.details(), "sample_rate": SAMPLE_RATE}},
            }
        )

    def _diarize(self, audio: Any, counts: SpeakerCounts) -> list[dict[str, Any]]:
        """Runs the pipeline on mono 16 kHz samples; segments exactly as it returns them."""
        import torch

        waveform = torch.from_numpy(audio).unsqueeze(0)
        output = self.pipeline(
            {"waveform": waveform, "sample_rate": SAMPLE_RATE}, **counts.as_kwargs()
        )
        # pyannote 4 returns a DiarizeOutput; a `legacy: true` config returns the Annotation itself
        annotation = getattr(output, "speaker_diarization", output)
        return [
            {"speaker": str(label), "start": float(turn.start), "end": float(turn.end)}
            for turn, _, label in annotation.itertracks(yield_label=True)
        ]
