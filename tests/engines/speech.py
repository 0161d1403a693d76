"""Real speech for engine tests: espeak-ng voices, mixed into one recording with numpy."""

from __future__ import annotations

import base64
import io
import subprocess
import wave
from typing import Any

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


#: the two voices the tiny pyannote pipeline's embedding tells apart (tests/engines/tiny_pyannote.py)
VOICES = ("en+m3", "en+f3")
MEETING = {
    VOICES[0]: (
        "Good morning, this is the first speaker talking about the plan for today.",
        "We will review the budget and then the schedule.",
        "After that we look at hiring for the next quarter.",
    ),
    VOICES[1]: (
        "And this is the second voice answering the first one with some questions.",
        "What about the timeline for the release next month?",
        "I think we need two more weeks for testing.",
    ),
}
REFERENCE_TEXT = "Hello, I am one of the people in this meeting today."


def meeting() -> tuple[np.ndarray, float]:
    """About 24 s: the first voice's three sentences, then the second's; and the second
    voice's start in seconds."""
    first = conversation([(VOICES[0], text) for text in MEETING[VOICES[0]]])
    second = conversation([(VOICES[1], text) for text in MEETING[VOICES[1]]])
    return np.concatenate([first, second]), len(first) / SAMPLE_RATE


def reference_clip(voice: str) -> np.ndarray:
    """A short clip (about 3 s) of `voice` saying words the meeting does not contain."""
    return speak(REFERENCE_TEXT, voice)


def spoken_by(segments: list[tuple[str, float, float]], start: float, end: float) -> str:
    """The speaker with the most time among `segments` (speaker, start, end) within [start, end]."""
    time_of: dict[str, float] = {}
    for speaker, begin, finish in segments:
        overlap = min(finish, end) - max(begin, start)
        if overlap > 0:
            time_of[speaker] = time_of.get(speaker, 0.0) + overlap
    return max(time_of, key=time_of.__getitem__)


def data_url(audio: np.ndarray) -> str:
    """A WAV data URL, as OpenAI's known_speaker_references[] take clips."""
    return "data:audio/wav;base64," + base64.b64encode(wav_bytes(audio)).decode()


def check_known_speakers(client: Any, model: str) -> None:
    """Transcribes a meeting() through `client` (the `openai` client) with known speakers
    "alice" (a reference clip of the first voice) and "bob" (of the second): the client parses
    OpenAI's diarized answer, which has only those names, each holding most of its voice's
    time."""
    from openai.types.audio import TranscriptionDiarized

    audio, second_starts = meeting()
    result = client.audio.transcriptions.create(
        model=model,
        file=("meeting.wav", io.BytesIO(wav_bytes(audio)), "audio/wav"),
        response_format="diarized_json",
        known_speaker_names=["alice", "bob"],
        known_speaker_references=[data_url(reference_clip(voice)) for voice in VOICES],
    )
    assert isinstance(result, TranscriptionDiarized) and result.segments, result
    turns = [(s.speaker, s.start, s.end) for s in result.segments]
    assert {speaker for speaker, _, _ in turns} == {"alice", "bob"}, turns
    assert spoken_by(turns, 0, second_starts) == "alice", turns
    assert spoken_by(turns, second_starts, result.duration) == "bob", turns
