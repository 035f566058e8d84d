"""Audio for the model: read a clip as the model hears it, find its silence, write WAV.

One clip reader (:func:`load_audio`) and one silence detector serve every stage: conversion and
validation findings, fixes, stage 00, the codes cache and the quality metrics.
"""

from __future__ import annotations

import io
import logging
import os
import threading
from math import gcd
from pathlib import Path

import numpy as np
import soundfile as sf

log = logging.getLogger(__name__)

TARGET_SAMPLE_RATE = 24_000
CLIP_LEVEL = 0.999  # |x| at or above this (float scale) counts as a clipped sample
SILENCE_DB_BELOW_PEAK = 40.0  # a 10 ms frame this far below the clip's peak RMS is silence


def default_cache_dir() -> Path:
    """``$WORKBENCH_CACHE_DIR`` or ``~/.cache/workbench``."""
    env = os.environ.get("WORKBENCH_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "workbench"


def edge_silence(mono: np.ndarray, sample_rate: int) -> tuple[float, float]:
    """Seconds of silence at the start and end, relative to the clip's loudest 10 ms frame."""
    hop = max(1, sample_rate // 100)
    n = len(mono) // hop
    if n == 0:
        return 0.0, 0.0
    frames = mono[: n * hop].astype(np.float64).reshape(n, hop)
    rms = np.sqrt(np.mean(frames * frames, axis=1))
    top = rms.max()
    if top <= 0:
        return len(mono) / sample_rate, len(mono) / sample_rate
    voiced = np.nonzero(rms > top * 10 ** (-SILENCE_DB_BELOW_PEAK / 20))[0]
    lead = voiced[0] * hop / sample_rate
    trail = (n - 1 - voiced[-1]) * hop / sample_rate
    return float(lead), float(trail)


def resample(audio: np.ndarray, orig_sr: int, target_sr: int = TARGET_SAMPLE_RATE) -> np.ndarray:
    """Polyphase resampling of a 1-D signal (band-limited, no phase shift)."""
    if orig_sr == target_sr:
        return audio
    from scipy.signal import resample_poly

    g = gcd(orig_sr, target_sr)
    return resample_poly(audio, target_sr // g, orig_sr // g).astype(np.float32)


def load_audio(path: str | os.PathLike, sample_rate: int = TARGET_SAMPLE_RATE) -> np.ndarray:
    """Load ``path`` as float32 mono at ``sample_rate`` (down-mixed, resampled): what training sees.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file cannot be decoded, naming the path.
    """
    path = str(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"audio file not found: {path}")
    try:
        data, sr = sf.read(path, dtype="float32", always_2d=True)
    except Exception as exc:
        raise ValueError(f"cannot decode audio file {path}: {exc}") from None
    return resample(data.mean(axis=1), int(sr), sample_rate)


def write_wav(path: str | os.PathLike, audio: np.ndarray, sample_rate: int = TARGET_SAMPLE_RATE) -> Path:
    """Write float audio (frames,) or (frames, channels) as 16-bit PCM WAV; creates the folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.asarray(audio), sample_rate, subtype="PCM_16")
    return path


def write_segment(
    source: str | os.PathLike | io.BytesIO,
    out_dir: str | os.PathLike,
    name: str,
    offset: float = 0.0,
    duration: float | None = None,
) -> Path:
    """Copy ``duration`` seconds from ``offset`` of ``source`` (a file or bytes) to ``out_dir/name.wav``.

    Keeps the rate and channels (16-bit PCM, or 32-bit float for a float source). Written to a
    temporary file and moved into place, so a concurrent or killed writer never leaves half a file;
    an existing file (the same name is the same content) is kept.

    Raises:
        ValueError: the source cannot be decoded, or the offset is at or past its end; the message
            says which.
    """
    out = Path(out_dir) / f"{name}.wav"
    if out.is_file():
        return out
    try:
        with sf.SoundFile(source) as f:
            sr, frames, subtype = f.samplerate, f.frames, f.subtype
            start = int(round(offset * sr))
            if start >= frames:
                raise ValueError(
                    f"offset {offset:g} s is at or past the end of the audio ({frames / sr:.3f} s)"
                )
            count = frames - start if duration is None else min(int(round(duration * sr)), frames - start)
            f.seek(start)
            data = f.read(count, dtype="float32", always_2d=True)
    except ValueError:
        raise
    except Exception as exc:
        if isinstance(source, io.BytesIO):  # soundfile names the buffer object: keep only the reason
            raise ValueError(f"cannot decode the audio bytes: {str(exc).split(': ', 1)[-1]}") from None
        raise ValueError(f"cannot decode audio file {source}: {exc}") from None
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    kind = "FLOAT" if subtype in ("FLOAT", "DOUBLE") else "PCM_16"
    sf.write(str(tmp), data, sr, subtype=kind, format="WAV")
    os.replace(tmp, out)
    return out


def wav_bytes(audio: np.ndarray, sample_rate: int = TARGET_SAMPLE_RATE) -> bytes:
    """16-bit PCM WAV file content, for embedding audio players in reports."""

    buf = io.BytesIO()
    sf.write(buf, np.asarray(audio), sample_rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()
