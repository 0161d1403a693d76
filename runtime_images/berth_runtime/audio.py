"""Audio input for the speech engines: any common format in memory -> mono float32 at 16 kHz.

FFmpeg's decoders and resampler through PyAV; no temporary files.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np

from berth_runtime.server.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType

SAMPLE_RATE = 16_000
RESAMPLE_BLOCK = 65_536  # input samples per resampler call


class EmptyAudio(BadRequest):
    type = "EmptyAudio"


class UndecodableAudio(UnsupportedMediaType):
    type = "UndecodableAudio"


class AudioTooLong(PayloadTooLarge):
    type = "AudioTooLong"


class Samples:
    """A float32 buffer sized from the container's duration, so the decoded recording is held
    once (gathering chunks, then concatenating them, held it twice); grown by half when a
    container under-states its duration."""

    def __init__(self, expected: int) -> None:
        self.buffer = np.empty(max(expected, RESAMPLE_BLOCK), dtype=np.float32)
        self.size = 0

    def append(self, block: np.ndarray) -> None:
        end = self.size + len(block)
        if end > len(self.buffer):
            grown = np.empty(max(end, len(self.buffer) * 3 // 2), dtype=np.float32)
            grown[: self.size] = self.buffer[: self.size]
            self.buffer = grown
        self.buffer[self.size : end] = block
        self.size = end

    def result(self) -> np.ndarray:
        """The samples; a copy only when the buffer is much larger than them."""
        if self.size < len(self.buffer) * 0.9:
            return self.buffer[: self.size].copy()
        return self.buffer[: self.size]


def expected_samples(container: Any, limit: int) -> int:
    """Samples at 16 kHz the container says it holds (a little over), at most the limit."""
    duration = container.duration  # in microseconds; None when the format does not say
    if not duration or duration <= 0:
        return 30 * SAMPLE_RATE
    return min(limit + RESAMPLE_BLOCK, int(duration * SAMPLE_RATE / 1_000_000 * 1.01) + 4096)


def decode_audio(data: bytes, max_seconds: float = 3 * 3600) -> np.ndarray:
    """Decodes wav, flac, mp3, ogg/opus, m4a, ... to mono float32 samples at 16 kHz."""
    import av

    if not data:
        raise EmptyAudio("the audio file is empty")
    try:
        container = av.open(io.BytesIO(data), mode="r")
    except (av.error.InvalidDataError, av.error.FFmpegError, ValueError) as error:
        raise UndecodableAudio(
            f"not a readable audio file ({error}); send wav, flac, mp3, ogg or m4a"
        ) from error
    with container:
        streams = [s for s in container.streams if s.type == "audio"]
        if not streams:
            raise UndecodableAudio("the file has no audio stream")
        # Decoded frames are small (1152 samples for MP3): gather them in FFmpeg's FIFO and
        # resample in large blocks, which keeps the per-frame Python work to one call.
        fifo = av.AudioFifo()
        resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
        limit = int(max_seconds * SAMPLE_RATE)
        samples = Samples(expected_samples(container, limit))

        def drain(block: av.AudioFrame | None) -> None:
            for out in resampler.resample(block):
                samples.append(out.to_ndarray()[0])

        try:
            for frame in container.decode(streams[0]):
                frame.pts = None
                fifo.write(frame)
                if fifo.samples >= RESAMPLE_BLOCK:
                    drain(fifo.read(RESAMPLE_BLOCK))
                    if samples.size > limit:
                        raise AudioTooLong(f"audio longer than the limit of {max_seconds:.0f} s")
            if fifo.samples:
                drain(fifo.read())
            drain(None)
        except av.error.FFmpegError as error:
            raise UndecodableAudio(f"the audio could not be decoded: {error}") from error
        if samples.size > limit:
            raise AudioTooLong(f"audio longer than the limit of {max_seconds:.0f} s")
    if samples.size == 0:
        raise EmptyAudio("the audio file holds no samples")
    return samples.result()
