"""Audio input for the speech engines: any common format in memory -> mono float32 at 16 kHz.

FFmpeg's decoders and resampler through PyAV; no temporary files.
"""

from __future__ import annotations

import io

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
        chunks: list[np.ndarray] = []

        def drain(block: av.AudioFrame | None) -> int:
            produced = 0
            for out in resampler.resample(block):
                chunks.append(out.to_ndarray()[0])
                produced += out.samples
            return produced

        total = 0
        try:
            for frame in container.decode(streams[0]):
                frame.pts = None
                fifo.write(frame)
                if fifo.samples >= RESAMPLE_BLOCK:
                    total += drain(fifo.read(RESAMPLE_BLOCK))
                    if total > limit:
                        raise AudioTooLong(f"audio longer than the limit of {max_seconds:.0f} s")
            if fifo.samples:
                total += drain(fifo.read())
            total += drain(None)
        except av.error.FFmpegError as error:
            raise UndecodableAudio(f"the audio could not be decoded: {error}") from error
        if total > limit:
            raise AudioTooLong(f"audio longer than the limit of {max_seconds:.0f} s")
    if total == 0:
        raise EmptyAudio("the audio file holds no samples")
    return np.concatenate(chunks).astype(np.float32, copy=False)
