"""The nemo-asr Engine: loads Canary, serves the OpenAI audio routes and the earlier alias."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from aiohttp import web
from berth_operator.api.podenv import AsrEngineSettings

from berth_runtime.audio import SAMPLE_RATE
from berth_runtime.engines.nemo_asr.batching import Batcher
from berth_runtime.engines.nemo_asr.formats import TIMED_FORMATS, render
from berth_runtime.engines.nemo_asr.forms import (
    AudioForm,
    InvalidField,
    SpeakersUnavailable,
    read_form,
)
from berth_runtime.engines.nemo_asr.languages import check_language, check_pair
from berth_runtime.engines.nemo_asr.model import CanaryModel, Task, find_nemo_file
from berth_runtime.engines.nemo_asr.speakers import (
    SPEAKERS_UNAVAILABLE_HEADER,
    SpeakerSegment,
    attribute,
    timed_words,
    unattributed,
)
from berth_runtime.engines.nemo_asr.transcript import OVERLAP_SECONDS, Transcript
from berth_runtime.server.app import accepts
from berth_runtime.server.engine import Engine

logger = logging.getLogger(__name__)
FORM_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")


def pick_device() -> tuple[str, str | None]:
    """cuda:0 when a GPU is visible, else the CPU with a warning."""
    import torch

    if torch.cuda.is_available():
        return "cuda:0", None
    return "cpu", "no GPU visible: Canary runs on the CPU, which is slow"


class NemoAsrEngine(Engine):
    """Canary (canary2 prompt format): speech recognition and X<->en speech translation."""

    libraries = ("nemo_toolkit", "lhotse", "sentencepiece", "av", "numpy")

    def __init__(self, settings: dict[str, Any]) -> None:
        super().__init__(settings)
        spec = AsrEngineSettings.model_validate(settings)
        self.source_default, self.target_default = spec.source_lang, spec.target_lang
        self.pnc, self.timestamps = spec.pnc, spec.timestamps
        self.chunk_seconds = float(settings.get("chunkSeconds") or 30)
        self.max_audio_seconds = float(settings.get("maxAudioSeconds") or 3 * 3600)
        self.batcher: Batcher[Task, Any, Transcript] = Batcher(
            self._run_batch,
            max_size=int(settings.get("maxBatchSize") or 8),
            wait_seconds=float(settings.get("batchWaitMs", 20)) / 1000,
        )
        self.model: CanaryModel | None = None
        self.nemo_file = ""
        self.device = "cpu"
        self.warning: str | None = None

    # ---- loading ----------------------------------------------------------------------------

    def load(self, model_dir: Path) -> None:
        nemo_file = find_nemo_file(model_dir)
        self.device, self.warning = pick_device()
        if self.warning:
            logger.warning(self.warning)
        self.model = CanaryModel(
            nemo_file, self.device, self.chunk_seconds, self.batcher.max_size, self.step
        )
        self.nemo_file = nemo_file.name
        for role, language in (("source", self.source_default), ("target", self.target_default)):
            check_language(language, self.model.languages, f"the default {role}")
        check_pair(self.source_default, self.target_default, "spec.asr")

    def details(self) -> dict[str, Any]:
        details: dict[str, Any] = {
            "sample_rate": SAMPLE_RATE,
            "device": self.device,
            "chunk_seconds": self.chunk_seconds,
            "chunk_overlap_seconds": OVERLAP_SECONDS,
            "max_audio_seconds": self.max_audio_seconds,
            "source_lang": self.source_default,
            "target_lang": self.target_default,
            # a live view: status shows batches as they run
            "batching": self.batcher.stats.view,
        }
        if self.model is not None:
            details |= {
                "model_class": self.model.class_name,
                "model_file": self.nemo_file,
                "tokenizer": self.model.tokenizer_name,
                "languages": self.model.languages,
                "timestamps": "aligner" if self.model.aligner else "decoder",
            }
        if self.warning:
            details["warning"] = self.warning
        return details

    async def close(self) -> None:
        await self.batcher.close()

    # ---- requests ---------------------------------------------------------------------------

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/v1/audio/transcriptions", self.transcriptions),
            web.post("/v1/audio/translations", self.translations),
            web.post("/api/audio/transcribe", self.alias),
        ]

    def check_model(self, name: str | None, required: bool) -> None:
        """The OpenAI routes require `model`; the earlier route may leave it out."""
        if name is None:
            if required:
                accepted = ", ".join(self.model_names())
                raise InvalidField(f"the form has no 'model' field; use one of: {accepted}")
            return
        self.check_model_name(name)

    def languages(self, form: AudioForm, route: str) -> tuple[str, str]:
        """(source, target): transcriptions keep the source language unless target_lang says
        otherwise; translations and the alias fall back on the configured target."""
        assert self.model is not None
        source = form.source() or self.source_default
        if route == "transcriptions":
            target = form.target_lang or source
        else:
            target = form.target_lang or self.target_default
        supported = self.model.languages
        check_language(source, supported, "source")
        check_language(target, supported, "target")
        return check_pair(source, target)

    def wants_timestamps(self, form: AudioForm) -> bool:
        return (
            self.timestamps
            or form.response_format in TIMED_FORMATS
            or form.wants_speakers()
            or (form.response_format == "verbose_json" and bool(form.timestamp_granularities))
        )

    def _run_batch(self, task: Task, audios: list[Any]) -> list[Transcript]:
        assert self.model is not None
        return self.model.transcribe(task, audios)

    async def _answer(self, request: web.Request, route: str) -> web.Response:
        form, data = await read_form(request)
        self.check_model(form.model, required=route != "alias")
        source, target = self.languages(form, route)
        pnc = self.pnc if form.pnc is None else form.pnc
        task = Task(source, target, pnc, self.wants_timestamps(form))
        speakers_wanted = form.wants_speakers()
        missing = form.speakers_unavailable
        if speakers_wanted and form.speaker_turns is None and missing is None:
            raise SpeakersUnavailable(
                "speakers need a diarization model: send the request through Berth's gateway, "
                "with `model` as a form field, to a model whose spec.asr.diarizationModel names "
                "a pyannote ModelDeployment"
            )
        audio = await self.decode(data, self.max_audio_seconds)
        transcript = await self.batcher.submit(task, audio)
        speakers: list[SpeakerSegment] | None = None
        if speakers_wanted:
            said = timed_words(transcript.words, transcript.segments)
            speakers = unattributed(said) if missing else attribute(said, form.turns())
        body, content_type = render(
            transcript,
            form.response_format,
            task="translate" if source != target else "transcribe",
            granularities=frozenset(form.timestamp_granularities),
            speakers=speakers,
        )
        headers = {}
        if speakers_wanted and missing is not None:  # flagged in every format
            headers[SPEAKERS_UNAVAILABLE_HEADER] = missing.reason
            if isinstance(body, dict):
                body["speakers_unavailable"] = missing.model_dump()
        if isinstance(body, dict):
            return web.json_response(body, headers=headers)
        return web.Response(text=body, content_type=content_type, charset="utf-8", headers=headers)

    @accepts(*FORM_TYPES)
    async def transcriptions(self, request: web.Request) -> web.Response:
        return await self._answer(request, "transcriptions")

    @accepts(*FORM_TYPES)
    async def translations(self, request: web.Request) -> web.Response:
        return await self._answer(request, "translations")

    @accepts(*FORM_TYPES)
    async def alias(self, request: web.Request) -> web.Response:
        return await self._answer(request, "alias")
