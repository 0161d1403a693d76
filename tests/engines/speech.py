"""Real speech for engine tests: espeak-ng voices, mixed into one recording with numpy."""

from __future__ import annotations

import io
import subprocess
import wave

import numpy as np

SAMPLE_RATE = 16_000


def speak(text: str, voice: str = "en", speed: int = 150) -> np.ndarray:
    """Mono float32 speech at 16 kHz from espeak-ng."""
    wav = subprocess.run(
        ["espeak-ng", "-v", voice, "-s", str(speed), "--stdout", text],
        check=True,
        capture_output=True,
    ).stdout
    with wave.open(io.BytesIO(wav)) as reader:
        rate = reader.getframerate()
        samples = np.frombuffer(reader.readframes(reader.getnframes()), dtype=np.int16)
    audio = samples.astype(np.float32) / 32768
    positions = np.arange(0, len(audio), rate / SAMPLE_RATE)
    return np.interp(positions, np.arange(len(audio)), audio).astype(np.float32)


def conversation(turns: list[tuple[str, str]], pause: float = 0.4) -> np.ndarray:
    """Turns of (voice, text) one after the other, with a pause between them."""
    silence = np.zeros(int(pause * SAMPLE_RATE), dtype=np.float32)
    parts: list[np.ndarray] = []
    for voice, text in turns:
        parts += [speak(text, voice), silence]
    return np.concatenate(parts)


def wav_bytes(audio: np.ndarray, rate: int = SAMPLE_RATE) -> bytes:
    """16-bit PCM WAV of mono float samples."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(rate)
        writer.writeframes((np.clip(audio, -1, 1) * 32767).astype(np.int16).tobytes())
    return buffer.getvalue()
