"""Audio decoding: common formats to mono float32 at 16 kHz, and clear errors."""

from __future__ import annotations

import io
import tracemalloc

import av
import numpy as np
import pytest
from berth_runtime.audio import (
    SAMPLE_RATE,
    AudioTooLong,
    EmptyAudio,
    UndecodableAudio,
    decode_audio,
)


def encode(
    container_format: str,
    codec: str,
    seconds: float = 2.0,
    rate: int = 44_100,
    frequency: float = 440.0,
) -> bytes:
    """A stereo sine wave, encoded in memory with FFmpeg's encoders."""
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format=container_format) as container:
        stream = container.add_stream(codec, rate=rate)
        stream.layout = "stereo"
        t = np.arange(int(seconds * rate)) / rate
        wave = (0.5 * np.sin(2 * np.pi * frequency * t)).astype(np.float32)
        samples = np.stack([wave, wave])
        fmt = stream.codec_context.format.name if stream.codec_context.format else "fltp"
        for start in range(0, samples.shape[1], 4096):
            block = samples[:, start : start + 4096]
            frame = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(block), format="fltp", layout="stereo"
            )
            frame.sample_rate = rate
            if fmt != "fltp":
                frame = av.AudioResampler(format=fmt, layout="stereo", rate=rate).resample(frame)[0]
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("container_format", "codec"),
    [
        ("wav", "pcm_s16le"),
        ("flac", "flac"),
        ("mp3", "libmp3lame"),
        ("ogg", "libopus"),
        ("ipod", "aac"),
    ],
    ids=["wav", "flac", "mp3", "ogg-opus", "m4a"],
)
def test_formats_decode_to_mono_16k(container_format: str, codec: str):
    rate = 48_000 if codec == "libopus" else 44_100
    samples = decode_audio(encode(container_format, codec, rate=rate))
    assert samples.dtype == np.float32 and samples.ndim == 1
    assert abs(len(samples) / SAMPLE_RATE - 2.0) < 0.1
    spectrum = np.abs(np.fft.rfft(samples))
    assert abs(np.argmax(spectrum) * SAMPLE_RATE / len(samples) - 440) < 5, (
        "the tone survives resampling"
    )


def test_bad_input_gets_clear_errors():
    with pytest.raises(EmptyAudio) as empty:
        decode_audio(b"")
    assert empty.value.status == 400
    with pytest.raises(UndecodableAudio) as garbage:
        decode_audio(b"this is not audio at all" * 100)
    assert garbage.value.status == 415 and "wav, flac, mp3" in garbage.value.message
    with pytest.raises(EmptyAudio):
        decode_audio(encode("wav", "pcm_s16le", seconds=0))
    with pytest.raises(AudioTooLong) as long:
        decode_audio(encode("flac", "flac", seconds=3), max_seconds=1)
    assert long.value.status == 413


def test_a_long_recording_is_held_once_while_decoding():
    """The decoded samples are written into one buffer sized from the container's duration:
    the peak of memory allocated while decoding stays near the result's size, not twice it."""
    data = encode("wav", "pcm_s16le", seconds=120, rate=SAMPLE_RATE)
    tracemalloc.start()
    try:
        audio = decode_audio(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(audio) == 120 * SAMPLE_RATE
    assert peak < 1.3 * audio.nbytes, f"peak {peak / 2**20:.1f} MiB for {audio.nbytes / 2**20:.1f}"
