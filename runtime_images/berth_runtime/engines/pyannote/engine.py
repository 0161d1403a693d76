"""The pyannote engine: a pyannote.audio pipeline from the cache, at /api/diarization/process."""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import Any

from aiohttp import web

from berth_runtime.audio import SAMPLE_RATE
from berth_runtime.engines.pyannote.known_speakers import (
    MAX_REFERENCE_SECONDS,
    REFERENCE_LEEWAY_SECONDS,
    REFERENCES_FIELD,
    InvalidKnownSpeakers,
    KnownSpeakers,
    Match,
    check_reference_length,
    match_speakers,
)
from berth_runtime.engines.pyannote.requests import (
    DEFAULT_MAX_AUDIO_SECONDS,
    InvalidSpeakerCount,
    SpeakerCounts,
    defaults_from_settings,
    known_speaker_threshold,
    max_audio_seconds,
    merge_counts,
    read_json,
    read_multipart,
)
from berth_runtime.server.app import accepts
from berth_runtime.server.engine import Engine
from berth_runtime.server.errors import ApiError

logger = logging.getLogger(__name__)


class PipelineLoadError(RuntimeError):
    """The pipeline did not load; the message says what to fix."""

    reason = "PipelineLoadFailed"


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
        self.threshold = 0.0
        self._lock = asyncio.Lock()

    def load(self, model_dir: Path) -> None:
        """Loads config.yaml and its `$model/...` parts from the local snapshot, offline."""
        self.defaults = defaults_from_settings(self.settings)
        self.max_seconds = max_audio_seconds(self.settings)
        self.threshold = known_speaker_threshold(self.settings)
        os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "0")
        self.step("importing pyannote.audio")
        import torch
        from pyannote.audio import Pipeline

        self.step(f"loading the pipeline of {self.repo or model_dir.name}")
        try:
            pipeline = Pipeline.from_pretrained(model_dir, cache_dir=hub_cache_of(model_dir))
        except Exception as error:
            hint = ""
            if not has_plda_entry(model_dir):
                hint = (
                    "; config.yaml has no 'plda:' entry, so pyannote.audio 4 loads the PLDA of "
                    "pyannote/speaker-diarization-community-1 (gated), which the download Job "
                    "fetches with the model: re-download it (berth.dev/redownload), or add a plda "
                    "entry pointing at local files"
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
        self.step(f"moving the pipeline to {self.device}")
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

    @accepts("multipart/form-data", "application/json")
    async def process(self, request: web.Request) -> web.Response:
        """Diarizes one recording: multipart `file` or JSON base64 `audio`, optional speaker
        counts, optional `model` (the served name, the repository or its last part), optional
        `exclusive` (one speaker at a time, where the pipeline provides it: `exclusive` in the
        answer says whether it did), optional known speakers (names and reference clips:
        matched speakers carry the names, `known_speakers` in the answer says who matched)."""
        if request.content_type == "application/json":
            data, request_counts, model, exclusive, known = await read_json(request)
        else:
            data, request_counts, model, exclusive, known = await read_multipart(request)
        if model is not None:
            self.check_model_name(model)
        counts = merge_counts(request_counts, self.defaults)
        if counts.num_speakers is None and getattr(self.pipeline, "_expects_num_speakers", False):
            raise InvalidSpeakerCount(
                f"this pipeline's clustering ({self.pipeline.klustering}) needs num_speakers"
            )
        audio = await self.decode(data, self.max_seconds)
        clips = await self.reference_clips(known)
        loop = asyncio.get_running_loop()
        async with self._lock:
            segments, exclusive, matches = await loop.run_in_executor(
                None, self._diarize, audio, counts, exclusive, clips
            )
        answer: dict[str, Any] = {
            "segments": segments,
            "runtime": {"details": {**self.details(), "sample_rate": SAMPLE_RATE}},
        }
        if exclusive is not None:
            answer["exclusive"] = exclusive
        if known is not None:
            answer["known_speakers"] = [match.as_json() for match in matches]
        return web.json_response(answer)

    async def reference_clips(self, known: KnownSpeakers | None) -> dict[str, Any]:
        """Each known name's clip as mono 16 kHz samples of 2 to 10 s."""
        if known is None:
            return {}
        longest = MAX_REFERENCE_SECONDS + 2 * REFERENCE_LEEWAY_SECONDS
        clips = {}
        for index, (name, clip) in enumerate(zip(known.names, known.clips, strict=True)):
            try:
                samples = await self.decode(clip, longest)
            except ApiError as error:
                field = f"{REFERENCES_FIELD}[{index}]"
                raise InvalidKnownSpeakers(f"{field}: {error.message}") from None
            check_reference_length(index, len(samples), SAMPLE_RATE)
            clips[name] = samples
        return clips

    def _diarize(
        self, audio: Any, counts: SpeakerCounts, exclusive: bool, clips: dict[str, Any]
    ) -> tuple[list[dict[str, Any]], bool | None, list[Match]]:
        """Runs the pipeline on mono 16 kHz samples: segments as it returns them (speakers
        renamed where a known speaker's clip matched), whether they are its exclusive
        diarization (when asked for), and what became of each known name."""
        import torch

        waveform = torch.from_numpy(audio).unsqueeze(0)
        output = self.pipeline(
            {"waveform": waveform, "sample_rate": SAMPLE_RATE}, **counts.as_kwargs()
        )
        # pyannote 4 returns a DiarizeOutput; a `legacy: true` config returns the Annotation itself
        annotation = getattr(output, "speaker_diarization", output)
        matches = self._match(clips, annotation.labels(), output) if clips else []
        names = {match.speaker: match.name for match in matches if match.speaker is not None}
        found = None
        if exclusive:
            only_one = getattr(output, "exclusive_speaker_diarization", None)
            annotation, found = (only_one, True) if only_one is not None else (annotation, False)
        segments = [
            {
                "speaker": names.get(str(label), str(label)),
                "start": float(turn.start),
                "end": float(turn.end),
            }
            for turn, _, label in annotation.itertracks(yield_label=True)
        ]
        return segments, found, matches

    def _match(self, clips: dict[str, Any], labels: list[Any], output: Any) -> list[Match]:
        """Known names matched to the diarized speakers: the clips embedded by the pipeline's
        own embedding model, against the speakers' centroids (rows in `labels` order)."""
        import numpy as np
        import torch

        centroids = getattr(output, "speaker_embeddings", None)
        if centroids is None:
            raise InvalidKnownSpeakers(
                "this pipeline gives no speaker embeddings (its config.yaml says legacy: true, "
                "or its clustering has no centroids): known speakers need them"
            )
        embed = self.pipeline._embedding  # the model the pipeline clusters with
        references = np.vstack(
            [embed(torch.from_numpy(samples)[None, None]) for samples in clips.values()]
        )
        speakers = [str(label) for label in labels]
        return match_speakers(tuple(clips), references, speakers, centroids, self.threshold)
