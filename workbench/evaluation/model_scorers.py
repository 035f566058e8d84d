"""Optional model-based scorers: local models the user names, loaded offline (nothing is ever downloaded).

- :class:`AsrScorer`: any ``transformers`` speech-recognition pipeline model (e.g. Whisper) gives
  the WER/CER of generated audio against its prompt text (:mod:`workbench.evaluation.text_metrics`).
- :class:`SpeakerScorer`: an ``AutoModelForAudioXVector`` model (e.g. a WavLM x-vector) gives the
  cosine similarity of speaker embeddings.

A model that is named but cannot be loaded offline raises :class:`OptionalModelError`, whose message
names it and the fix. The scorers that need no such model (GE2E speaker similarity, DNSMOS
naturalness, bundled in installed wheels) are in :mod:`workbench.evaluation.voice`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from workbench.audio import mono, resample
from workbench.evaluation.quality import check_sample_rate
from workbench.evaluation.text_metrics import transcript_scores
from workbench.evaluation.voice import cosine
from workbench.offline import LocalModelMissing, MissingKind, is_hub_id, local_model_folder

_MIN_SPEAKER_SECONDS = 0.5  # x-vector TDNNs need a few dozen frames; shorter clips are zero-padded
_ASR_CHUNK_SECONDS = 30.0  # Whisper's window; longer clips are transcribed in chunks


class OptionalModelError(RuntimeError):
    """An optional metric model was named but cannot be loaded offline; the message names it and the fix."""


def _default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _local_model_dir(model: str | os.PathLike[str], role: str) -> str:
    """A local folder for ``model``: the folder itself, or the cached snapshot of a hub id.

    Raises:
        OptionalModelError: neither exists locally.
    """
    try:
        return str(local_model_folder(model))
    except LocalModelMissing as missing:
        reason = missing.reason
        if missing.kind is MissingKind.NOT_CACHED:
            reason = "it is not a local folder and not in the local Hugging Face cache"
        raise OptionalModelError(_message(model, role, reason)) from None


def _message(model: str | os.PathLike[str], role: str, reason: str) -> str:
    param = role.split()[-1].strip("()")
    if is_hub_id(model) and not Path(model).exists():
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
        check_sample_rate(sample_rate)
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
        return transcript_scores(text, self.transcribe(audio, sample_rate))


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

        check_sample_rate(sample_rate)
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
