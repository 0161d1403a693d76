"""The NeMo side: restores a Canary `.nemo` and transcribes batches of chunked audio with it."""

from __future__ import annotations

import logging
import shutil
import tarfile
import tempfile
import wave
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from berth_runtime.engines.nemo_asr.languages import supported_languages
from berth_runtime.engines.nemo_asr.transcript import (
    SAMPLE_RATE,
    Chunk,
    ChunkResult,
    Segment,
    Transcript,
    Word,
    assemble,
    split_chunks,
)

logger = logging.getLogger(__name__)
#: where the `.nemo` is unpacked, under /tmp: the operator sizes /tmp for it
EXTRACTION_DIR = "berth-nemo-model"


@dataclass(frozen=True)
class Task:
    """What a batch shares: requests are grouped by it."""

    source: str
    target: str
    pnc: bool
    timestamps: bool


def find_nemo_file(model_dir: Path) -> Path:
    """The one `.nemo` file of a snapshot (the one named like the repo if there are several)."""
    files = sorted(model_dir.rglob("*.nemo"))
    if not files:
        raise FileNotFoundError(f"no .nemo file in {model_dir}")
    if len(files) > 1:
        named = [f for f in files if f.stem == model_dir.parent.parent.name.rsplit("--", 1)[-1]]
        if len(named) != 1:
            raise FileNotFoundError(
                f"several .nemo files in {model_dir}: {', '.join(f.name for f in files)}"
            )
        return named[0]
    return files[0]


def extract(nemo_file: Path, scratch: Path) -> Path:
    """Unpacks the `.nemo` archive into `scratch`, emptied first: a start killed midway (by its
    startup probe, say) leaves its files there, and the next start would otherwise add more."""
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    with tarfile.open(nemo_file, "r:*") as archive:
        if hasattr(tarfile, "data_filter"):
            archive.extractall(scratch, filter="data")
        else:  # Debian 12's Python (3.11.2, the images') predates extraction filters
            archive.extractall(scratch, members=plain_members(archive, nemo_file))
    return scratch


def plain_members(archive: tarfile.TarFile, nemo_file: Path) -> list[tarfile.TarInfo]:
    """The archive's members when all are files or directories under the extraction root, as a
    `.nemo` holds; anything else (links, devices, absolute or `..` paths) refuses the archive."""
    members = archive.getmembers()
    for member in members:
        parts = Path(member.name).parts
        if not (member.isfile() or member.isdir()) or member.name.startswith("/") or ".." in parts:
            raise ValueError(f"{nemo_file} holds {member.name!r}, which a .nemo never does")
    return members


def restore(nemo_file: Path, device: str, scratch: Path, step: Callable[[str], None]) -> Any:
    """`ASRModel.restore_from` on one extraction of the archive, removed once loaded. NeMo (3.0)
    restores canary-1b-v2's built-in alignment model from the same directory. `step` hears
    each stage."""
    step("importing NeMo")
    import torch
    from nemo.collections.asr.models import ASRModel
    from nemo.core.connectors.save_restore_connector import SaveRestoreConnector

    connector = SaveRestoreConnector()
    size = nemo_file.stat().st_size / 1e9
    step(f"unpacking {nemo_file.name} ({size:.2f} GB)")
    connector.model_extracted_dir = str(extract(nemo_file, scratch))
    step(f"restoring {nemo_file.name} onto {device}")
    try:
        return ASRModel.restore_from(
            str(nemo_file), map_location=torch.device(device), save_restore_connector=connector
        )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def write_wav(path: Path, audio: np.ndarray) -> None:
    """16-bit PCM mono WAV at 16 kHz."""
    with wave.open(str(path), "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(SAMPLE_RATE)
        writer.writeframes((np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes())


def _times(entries: Any, text_key: str) -> list[tuple[str, float, float]]:
    return [
        (str(e.get(text_key, "")), float(e.get("start", -1)), float(e.get("end", -1)))
        for e in entries or []
        if isinstance(e, dict)
    ]


class CanaryModel:
    """An `EncDecMultiTaskModel` on one device; `transcribe` is called from one thread at a time."""

    def __init__(
        self,
        nemo_file: Path,
        device: str,
        chunk_seconds: float,
        max_batch: int,
        step: Callable[[str], None] = lambda what: None,
    ) -> None:
        self.device, self.chunk_seconds, self.max_batch = device, chunk_seconds, max_batch
        scratch = Path(tempfile.gettempdir()) / EXTRACTION_DIR
        self.model = restore(nemo_file, device, scratch, step)
        self.model.eval()
        self.languages = supported_languages(self.model.tokenizer)
        # canary-1b-v2 aligns with a CTC model kept in its .nemo, which reads audio files only
        self.aligner = getattr(self.model, "timestamps_asr_model", None) is not None

    @property
    def class_name(self) -> str:
        return type(self.model).__name__

    @property
    def tokenizer_name(self) -> str:
        return type(self.model.tokenizer).__name__

    def transcribe(self, task: Task, audios: list[np.ndarray]) -> list[Transcript]:
        """One `transcribe` call for every chunk of every request; results merged per request."""
        chunked = [split_chunks(audio, self.chunk_seconds) for audio in audios]
        flat = [chunk for chunks in chunked for chunk in chunks]
        results = self._run(task, flat)
        transcripts, at = [], 0
        for chunks in chunked:
            transcripts.append(assemble(results[at : at + len(chunks)], task.source, task.target))
            at += len(chunks)
        return transcripts

    def _run(self, task: Task, chunks: list[Chunk]) -> list[ChunkResult]:
        from nemo.collections.asr.models.aed_multitask_models import MultiTaskTranscriptionConfig

        prompt = {
            "source_lang": task.source,
            "target_lang": task.target,
            "pnc": "yes" if task.pnc else "no",
            # with an aligner, NeMo asks the decoder for no timestamp tokens and aligns afterwards
            "timestamp": "yes" if task.timestamps and not self.aligner else "no",
        }
        config = MultiTaskTranscriptionConfig(
            batch_size=min(len(chunks), self.max_batch),
            return_hypotheses=True,
            verbose=False,
            enable_chunking=False,  # we chunk ourselves; NeMo's path breaks on a one-array list
            # DataLoader workers pass batches through /dev/shm, 64 MiB in a pod: a bus error
            num_workers=0,
            prompt=prompt,
        )
        timestamps = True if task.timestamps else None
        if task.timestamps and self.aligner:
            with tempfile.TemporaryDirectory(prefix="berth-asr-") as tmp:
                paths = []
                for index, chunk in enumerate(chunks):
                    path = Path(tmp) / f"chunk-{index}.wav"
                    write_wav(path, chunk.audio)
                    paths.append(str(path))
                hypotheses = self.model.transcribe(
                    paths, override_config=config, timestamps=timestamps
                )
        else:
            hypotheses = self.model.transcribe(
                [chunk.audio for chunk in chunks], override_config=config, timestamps=timestamps
            )
        return [
            self._result(hypothesis, chunk, task.timestamps)
            for hypothesis, chunk in zip(hypotheses, chunks, strict=True)
        ]

    @staticmethod
    def _result(hypothesis: Any, chunk: Chunk, timestamps: bool) -> ChunkResult:
        text = hypothesis if isinstance(hypothesis, str) else str(hypothesis.text or "")
        result = ChunkResult(text=text.strip(), duration=chunk.duration, offset=chunk.start)
        stamps = getattr(hypothesis, "timestamp", None)
        if timestamps and isinstance(stamps, dict):
            result.words = [Word(*t) for t in _times(stamps.get("word"), "word")]
            result.segments = [Segment(*t) for t in _times(stamps.get("segment"), "segment")]
        return result
