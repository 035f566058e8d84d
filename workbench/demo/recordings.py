"""Synthetic long recordings with known truth, for tests, ``workbench bench prepare`` and notebook 00.

Speech comes from Debian's ``espeak-ng`` (real phonemes, so a voice-activity detector hears
speech); utterances are joined with pauses of chosen lengths and a little noise, and the voiced
span of every utterance is recorded, so a test can check that cuts fall in the pauses. Without
``espeak-ng`` (``speech="synthetic"``) the demo voices of :mod:`workbench.demo.dataset` stand in:
good enough for the subtitle path, but a voice-activity detector does not take them for speech.
"""

from __future__ import annotations

import functools
import io
import os
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from workbench.audio import resample, voiced_span
from workbench.demo.dataset import SENTENCES, VOICES, synthesize
from workbench.files import atomic_path

SENTENCES_LONG = (
    *SENTENCES,
    "Nobody expected the small boat to cross the bay before noon.",
    "The library closes early on the first Sunday of every month.",
    "Our neighbour grows tomatoes and beans in a tiny garden.",
    "A light rain started just as the parade reached the square.",
    "Remember to water the plants while we are away.",
    "The old clock in the tower still keeps perfect time.",
    "Two owls watched quietly from the branches above the path.",
    "He practised the piano every evening for an hour.",
)


@dataclass(frozen=True)
class Utterance:
    """One spoken sentence in a recording: its text and voiced span in seconds."""

    text: str
    start: float
    end: float


@dataclass
class Recording:
    """A written recording and the truth about it."""

    path: Path
    sample_rate: int
    duration: float
    utterances: list[Utterance] = field(default_factory=list)

    def pauses(self) -> list[tuple[float, float]]:
        """The silent spans: before the first utterance, between utterances, after the last."""
        edges = [0.0] + [x for u in self.utterances for x in (u.start, u.end)] + [self.duration]
        return [(edges[k], edges[k + 1]) for k in range(0, len(edges), 2)]


def espeak_available() -> bool:
    """Whether the ``espeak-ng`` program is on PATH."""
    return shutil.which("espeak-ng") is not None


@functools.lru_cache(maxsize=512)
def _espeak(text: str, voice: str, words_per_minute: int) -> tuple[bytes, int]:
    proc = subprocess.run(
        ["espeak-ng", "--stdout", "-v", voice, "-s", str(words_per_minute), text],
        capture_output=True,
        check=True,
    )
    audio, rate = sf.read(io.BytesIO(proc.stdout), dtype="float32")
    return audio.tobytes(), int(rate)


def speak(text: str, sample_rate: int = 24_000, voice: str = "en", words_per_minute: int = 165) -> np.ndarray:
    """``text`` spoken by ``espeak-ng`` as float32 mono at ``sample_rate``.

    Raises:
        RuntimeError: ``espeak-ng`` is not installed (Debian: ``apt-get install espeak-ng``).
    """
    if not espeak_available():
        raise RuntimeError("espeak-ng is not installed (Debian/Ubuntu: apt-get install espeak-ng)")
    raw, rate = _espeak(text, voice, words_per_minute)
    return resample(np.frombuffer(raw, dtype=np.float32).copy(), rate, sample_rate)


def long_recording(
    path: str | os.PathLike,
    texts: Sequence[str],
    pauses: Sequence[float],
    *,
    sample_rate: int = 24_000,
    channels: int = 1,
    noise_db: float = -50.0,
    speech: str = "espeak",
    voice: str = "en",
    lead: float = 0.6,
    seed: int = 0,
) -> Recording:
    """Write ``texts`` spoken one after another with ``pauses`` between them, plus white noise.

    Args:
        path: output file (its suffix picks the format: .wav, .flac, .ogg...).
        texts: the sentences, in order.
        pauses: seconds of pause after each sentence but the last (``len(texts) - 1`` values).
        channels: 2 writes the same speech on both channels (a stereo recording).
        noise_db: noise level relative to full scale (-50 dB is a quiet room).
        speech: ``"espeak"`` (real speech) or ``"synthetic"`` (the demo voices, no espeak-ng needed).
        lead: seconds of silence before the first and after the last sentence.

    Returns:
        The :class:`Recording` with every utterance's voiced span.
    """
    if len(pauses) != len(texts) - 1:
        raise ValueError(f"expected {len(texts) - 1} pauses for {len(texts)} texts, got {len(pauses)}")
    rng = np.random.default_rng(seed)
    pieces = [np.zeros(int(lead * sample_rate), np.float32)]
    utterances = []
    offset = len(pieces[0])
    for k, text in enumerate(texts):
        if speech == "espeak":
            spoken = speak(text, sample_rate, voice)
        else:
            spoken = resample(synthesize(VOICES[0], text, seed + k), 24_000, sample_rate)
        spoken = (0.6 * spoken / (np.abs(spoken).max() + 1e-9)).astype(np.float32)
        a, b = voiced_span(spoken, sample_rate) or (0, 0)
        utterances.append(Utterance(text, (offset + a) / sample_rate, (offset + b) / sample_rate))
        gap = np.zeros(int((pauses[k] if k < len(pauses) else lead) * sample_rate), np.float32)
        pieces += [spoken, gap]
        offset += len(spoken) + len(gap)
    audio = np.concatenate(pieces)
    audio = audio + (10 ** (noise_db / 20) * rng.standard_normal(len(audio))).astype(np.float32)
    data = np.stack([audio] * channels, axis=1) if channels > 1 else audio
    path = Path(path)
    with atomic_path(path, suffix=path.suffix) as tmp:  # soundfile picks the format by the suffix
        sf.write(str(tmp), data, sample_rate)
    return Recording(path, sample_rate, len(audio) / sample_rate, utterances)


def recording_of_length(
    path: str | os.PathLike, minutes: float, *, seed: int = 0, speech: str = "espeak", **kwargs
) -> Recording:
    """A recording of at least ``minutes`` minutes: the sentences cycled, pauses of 0.6 to 1.4 s."""
    rng = np.random.default_rng(seed)
    rate = kwargs.get("sample_rate", 24_000)
    texts: list[str] = []
    pauses: list[float] = []
    seconds = 2 * kwargs.get("lead", 0.6)
    while seconds < minutes * 60:
        text = SENTENCES_LONG[(seed + len(texts)) % len(SENTENCES_LONG)]
        if texts:
            pauses.append(float(rng.uniform(0.6, 1.4)))
            seconds += pauses[-1]
        texts.append(text)
        if speech == "espeak":
            seconds += len(speak(text, rate, kwargs.get("voice", "en"))) / rate
        else:
            seconds += max(1.0, len(text) / 14.0) + 0.24  # as dataset.synthesize
    return long_recording(path, texts, pauses, seed=seed, speech=speech, **kwargs)


def demo_recordings(folder: str | os.PathLike, minutes: float = 1.0) -> list[str]:
    """Notebook 00's default input: one recording with ``.srt`` subtitles, under ``folder/demo/``.

    Spoken by ``espeak-ng`` when it is installed, else by a synthetic demo voice (the subtitles
    give the cuts and texts either way, so no speech-recognition model is needed).

    Returns:
        ``[folder/demo]``, the input folder (its name is the speaker).
    """
    from workbench.prepare.subtitles import write_srt

    target = Path(folder) / "demo"
    audio = target / "recording.wav"
    if not audio.exists():
        speech = "espeak" if espeak_available() else "synthetic"
        recording = recording_of_length(audio, minutes, speech=speech, seed=3)
        write_srt([(u.start, u.end, u.text) for u in recording.utterances], audio.with_suffix(".srt"))
    return [str(target)]
