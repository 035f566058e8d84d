"""Audio for the model: read a clip as the model hears it, find its silence, write WAV.

One clip reader (:func:`load_audio`) serves every stage that feeds or scores the model: the codes
cache, stage 00, fixes, the quality metrics, synthesis and the notebooks. It decodes and resamples
as ``transformers.audio_utils.load_audio`` does with its soundfile backend (and as ``librosa.load``
does): soundfile decodes to float32, the channels are averaged, and soxr resamples at ``soxr_hq``,
padded or cut to ``ceil(frames * rate / source rate)`` samples. The codes the workbench trains on are
therefore the codes transformers computes for the same file; :data:`AUDIO_READER` names the reader
and its resampler's version, and the codes cache keys on it.

One silence detector (:func:`voiced_frames` over :func:`frame_rms`) serves the probe findings of
convert and validate (:func:`edge_silence`), the trim fix and the demo recordings
(:func:`voiced_span`) and the quality metrics (:func:`silence_ratio`): a 10 ms frame is voiced when
its RMS is no more than :data:`SILENCE_DB_BELOW_PEAK` below the clip's loudest frame
(:func:`above_silence`). Stage 00 finds speech with Silero VAD, and cuts speech without a pause at
the quietest :func:`frame_rms` window.
"""

from __future__ import annotations

import io
import math
import os
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from workbench.files import atomic_path

TARGET_SAMPLE_RATE = 24_000
CLIP_LEVEL = 0.999  # |x| at or above this (float scale) counts as a clipped sample
SILENCE_DB_BELOW_PEAK = 40.0  # a frame this far below the clip's loudest frame is silence
FRAME_SECONDS = 0.010  # frame and hop of the silence detector
RESAMPLE_QUALITY = "soxr_hq"  # transformers' and librosa's default
AUDIO_READER = (
    f"soundfile + soxr {soxr.__version__} (libsoxr {soxr.__libsoxr_version__}) {RESAMPLE_QUALITY}, "
    "as transformers.audio_utils.load_audio"
)
_BLOCK_SECONDS = 60  # decode a minute at a time: a long stereo recording costs memory for its mono copy only


def default_cache_dir() -> Path:
    """``$WORKBENCH_CACHE_DIR`` or ``~/.cache/workbench``."""
    env = os.environ.get("WORKBENCH_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "workbench"


# --------------------------------------------------------------------------- reading
def resample(audio: np.ndarray, orig_sr: int, target_sr: int = TARGET_SAMPLE_RATE) -> np.ndarray:
    """Resample a 1-D signal with soxr (``soxr_hq``) to ``ceil(len * target_sr / orig_sr)`` samples, float32.

    The same steps as ``transformers.audio_utils.load_audio`` and ``librosa.load`` after decoding.
    """
    if orig_sr == target_sr:
        return audio
    length = math.ceil(len(audio) * target_sr / orig_sr)
    out = soxr.resample(audio, orig_sr, target_sr, quality=RESAMPLE_QUALITY)
    out = np.pad(out, (0, max(0, length - len(out))))[:length]
    return np.ascontiguousarray(out, dtype=np.float32)


def load_audio(path: str | os.PathLike, sample_rate: int = TARGET_SAMPLE_RATE) -> np.ndarray:
    """Load ``path`` as float32 mono at ``sample_rate``: what the model hears, as transformers reads it.

    Equal, sample for sample, to ``transformers.audio_utils.load_audio(path, sample_rate,
    backend="soundfile")``: channels averaged per frame, then resampled by :func:`resample`.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file cannot be decoded, naming the path.
    """
    path = str(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"audio file not found: {path}")
    try:
        with sf.SoundFile(path) as fh:
            rate = fh.samplerate
            # Transposed before the mean, as transformers does, so the float32 sums are the same.
            blocks = [
                b.T.mean(axis=0) if b.shape[1] > 1 else b[:, 0]
                for b in fh.blocks(blocksize=rate * _BLOCK_SECONDS, dtype="float32", always_2d=True)
            ]
    except Exception as exc:  # libsndfile raises several types for corrupt files
        raise ValueError(f"{path}: cannot decode audio ({type(exc).__name__}: {exc})") from None
    samples = np.concatenate(blocks) if blocks else np.zeros(0, np.float32)
    return np.ascontiguousarray(resample(samples, int(rate), sample_rate), dtype=np.float32)


# --------------------------------------------------------------------------- silence
def mono(audio: np.ndarray) -> np.ndarray:
    """Float64 mono copy: ``(frames, channels)`` is down-mixed, non-finite samples become 0."""
    x = np.asarray(audio, dtype=np.float64)
    if x.ndim == 2:
        x = x.mean(axis=1)
    elif x.ndim != 1:
        raise ValueError(f"expected audio of shape (frames,) or (frames, channels), got {x.shape}")
    return np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)


def frame_bounds(
    num_samples: int, sample_rate: int, window: float = FRAME_SECONDS, hop: float = FRAME_SECONDS
):
    """Start and end samples of ``window``-second frames every ``hop`` seconds over ``num_samples``.

    The last frame runs to the end, so no sample is left out; a clip shorter than one window is one frame.

    Returns:
        ``(starts, ends)``, two int arrays of the same length (at least 1).
    """
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")
    step = max(1, round(hop * sample_rate))
    width = max(step, round(window * sample_rate))
    starts = np.arange(0, max(1, num_samples - width + 1), step)
    ends = np.minimum(starts + width, num_samples)
    ends[-1] = num_samples
    return starts, ends


def frame_rms(
    audio: np.ndarray, sample_rate: int, window: float = FRAME_SECONDS, hop: float = FRAME_SECONDS
) -> np.ndarray:
    """RMS of each frame of :func:`frame_bounds` (mono or ``(frames, channels)``, down-mixed): float64."""
    x = mono(audio)
    starts, ends = frame_bounds(len(x), sample_rate, window, hop)
    squared = np.concatenate([[0.0], np.cumsum(x * x)])
    return np.sqrt(np.maximum(squared[ends] - squared[starts], 0.0) / np.maximum(1, ends - starts))


def above_silence(rms: np.ndarray, threshold_db: float = SILENCE_DB_BELOW_PEAK) -> np.ndarray:
    """Which frames are voiced: RMS within ``threshold_db`` of the loudest (none when all are zero)."""
    rms = np.asarray(rms, dtype=np.float64)
    top = rms.max() if rms.size else 0.0
    if top <= 0:
        return np.zeros(rms.shape, bool)
    return rms >= top * 10 ** (-threshold_db / 20)


def voiced_frames(
    audio: np.ndarray, sample_rate: int, threshold_db: float = SILENCE_DB_BELOW_PEAK
) -> np.ndarray:
    """Per 10 ms frame (:func:`frame_bounds`), whether it is voiced: a bool array."""
    return above_silence(frame_rms(audio, sample_rate), threshold_db)


def voiced_span(
    audio: np.ndarray, sample_rate: int, threshold_db: float = SILENCE_DB_BELOW_PEAK
) -> tuple[int, int] | None:
    """Samples ``[start, end)`` from the first voiced 10 ms frame to the end of the last; None when silent.

    Examples:
        >>> voiced_span(np.r_[np.zeros(240), np.ones(480), np.zeros(240)], 24_000)
        (240, 720)
    """
    x = mono(audio)
    voiced = np.nonzero(voiced_frames(x, sample_rate, threshold_db))[0]
    if len(voiced) == 0:
        return None
    starts, ends = frame_bounds(len(x), sample_rate)
    return int(starts[voiced[0]]), int(ends[voiced[-1]])


def edge_silence(audio: np.ndarray, sample_rate: int) -> tuple[float, float]:
    """Seconds of silence before the first and after the last voiced frame (the whole clip when silent)."""
    length = len(audio)
    span = voiced_span(audio, sample_rate)
    if span is None:
        return length / sample_rate, length / sample_rate
    return span[0] / sample_rate, (length - span[1]) / sample_rate


def silence_ratio(audio: np.ndarray, sample_rate: int, threshold_db: float = SILENCE_DB_BELOW_PEAK) -> float:
    """Fraction of 10 ms frames that are silent (:func:`voiced_frames`); 1.0 for an empty or all-zero clip."""
    if len(audio) == 0:
        return 1.0
    return float(1.0 - np.mean(voiced_frames(audio, sample_rate, threshold_db)))


# --------------------------------------------------------------------------- writing
def write_wav(path: str | os.PathLike, audio: np.ndarray, sample_rate: int = TARGET_SAMPLE_RATE) -> Path:
    """Write float audio (frames,) or (frames, channels) as 16-bit PCM WAV, atomically; creates the folder."""
    path = Path(path)
    with atomic_path(path, suffix=".wav") as tmp:
        sf.write(str(tmp), np.asarray(audio), sample_rate, subtype="PCM_16", format="WAV")
    return path


def write_segment(
    source: str | os.PathLike | io.BytesIO,
    out_dir: str | os.PathLike,
    name: str,
    offset: float = 0.0,
    duration: float | None = None,
) -> Path:
    """Copy ``duration`` seconds from ``offset`` of ``source`` (a file or bytes) to ``out_dir/name.wav``.

    Keeps the rate and channels (16-bit PCM, or 32-bit float for a float source). Written atomically
    (:func:`workbench.files.atomic_path`), so a concurrent or killed writer never leaves half a file;
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
    kind = "FLOAT" if subtype in ("FLOAT", "DOUBLE") else "PCM_16"
    with atomic_path(out, suffix=".wav") as tmp:
        sf.write(str(tmp), data, sr, subtype=kind, format="WAV")
    return out


def wav_bytes(audio: np.ndarray, sample_rate: int = TARGET_SAMPLE_RATE) -> bytes:
    """16-bit PCM WAV file content, for embedding audio players in reports."""
    buf = io.BytesIO()
    sf.write(buf, np.asarray(audio), sample_rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()
