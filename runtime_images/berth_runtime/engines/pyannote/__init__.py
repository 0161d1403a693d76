"""The pyannote engine (speaker diarization)."""

from berth_runtime.engines.pyannote.engine import PyannoteEngine

__all__ = ["PyannoteEngine"]
