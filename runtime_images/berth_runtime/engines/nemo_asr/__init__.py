"""The nemo-asr engine: NVIDIA Canary (canary2 prompt format) speech recognition and translation."""

from berth_runtime.engines.nemo_asr.engine import NemoAsrEngine

__all__ = ["NemoAsrEngine"]
