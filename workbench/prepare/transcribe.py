"""Local speech recognition for ``workbench prepare``: clip texts, confidence, word times, alignment.

:class:`Transcriber` wraps ``transformers.pipeline("automatic-speech-recognition")`` over a local
model folder or a hub id already in the local Hugging Face cache; nothing is downloaded. For
Whisper models each transcript also gets

- ``confidence``: the geometric mean of the token probabilities of the transcript (the exponent
  of the mean token log-probability), scored in one teacher-forced pass; and
- ``no_speech``: the model's probability of its no-speech token right after
  ``<|startoftranscript|>``, as Whisper itself computes it.

Clips under ``min_confidence`` (exp(-1) ≈ 0.37, Whisper's own log-probability threshold) or over
``max_no_speech`` (0.6, Whisper's threshold) are flagged ``low_confidence``, never dropped.

:func:`align_transcript` spreads a whole-file transcript over clips by matching its words to
the recognised words of each clip.
"""

from __future__ import annotations

import difflib
import logging
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from workbench.offline import LocalModelMissing, MissingKind, local_model_folder

log = logging.getLogger(__name__)

ASR_SAMPLE_RATE = 16_000
MIN_CONFIDENCE = math.exp(-1.0)
MAX_NO_SPEECH = 0.6
_NO_SPEECH_TOKENS = ("<|nospeech|>", "<|nocaptions|>")
_WORD = re.compile(r"[\w']+")


class AsrModelError(ValueError):
    """The speech-recognition model is missing or cannot be loaded; the message says what to pass."""


@dataclass(frozen=True)
class Transcript:
    """What the model heard in one clip."""

    text: str
    confidence: float | None = None  # geometric mean token probability, 0..1
    no_speech: float | None = None  # probability of the no-speech token, 0..1

    def low_confidence(
        self, min_confidence: float = MIN_CONFIDENCE, max_no_speech: float = MAX_NO_SPEECH
    ) -> bool:
        low = self.confidence is not None and self.confidence < min_confidence
        return low or (self.no_speech is not None and self.no_speech > max_no_speech)


def resolve_asr_model(model: str | os.PathLike) -> str:
    """A local folder for ``model``: the folder itself, or the cached snapshot of a hub id.

    Raises:
        AsrModelError: neither exists locally; the message says what to pass instead.
    """
    try:
        return str(local_model_folder(model))
    except LocalModelMissing as missing:
        reason = missing.reason
        if missing.kind is MissingKind.NOT_CACHED:
            reason += " (nothing is downloaded at run time)"
        raise AsrModelError(
            f"speech-recognition model {str(model)!r} cannot be loaded offline: {reason}. Pass --asr-model "
            "with a local Whisper folder (config.json, weights, tokenizer, preprocessor_config.json), or a hub "
            "id already in the cache (run `hf download openai/whisper-small` once where there is network)."
        ) from None


class Transcriber:
    """Transcribe clips with a local speech-recognition model.

    Args:
        model: a local model folder or an already-cached hub id (Whisper, or any model the
            ``automatic-speech-recognition`` pipeline loads; only Whisper gives a confidence).
        language: the spoken language for multilingual Whisper models (``"en"``); default: detected.
        device: ``"cpu"``, ``"cuda"``...; default: CUDA when available.
        batch_size: clips per forward pass.

    Raises:
        AsrModelError: the model is missing or fails to load.
    """

    def __init__(
        self,
        model: str | os.PathLike,
        language: str | None = None,
        device: str | None = None,
        batch_size: int = 8,
    ):
        import torch
        from transformers import pipeline

        folder = resolve_asr_model(model)
        self.model_name = str(model)
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        try:
            self.pipeline = pipeline("automatic-speech-recognition", model=folder, device=self.device)
        except Exception as exc:  # missing tokenizer, unknown architecture, corrupt weights...
            raise AsrModelError(
                f"speech-recognition model {self.model_name!r} ({folder}) failed to load: "
                f"{type(exc).__name__}: {exc}. Pass --asr-model with a complete local Whisper folder."
            ) from exc
        self.batch_size = batch_size
        self.language = language
        self.model = self.pipeline.model
        self.is_whisper = self.model.config.model_type == "whisper"
        self.generate_kwargs: dict[str, Any] = {}
        if language and self.is_whisper and getattr(self.model.generation_config, "is_multilingual", False):
            self.generate_kwargs = {"language": language, "task": "transcribe"}

    # -- texts -------------------------------------------------------------------------
    def transcribe(self, clips: Sequence[np.ndarray]) -> list[Transcript]:
        """Transcripts of mono 16 kHz clips (each at most 30 s), in order."""
        if not clips:
            return []
        inputs = [{"raw": np.asarray(c, np.float32), "sampling_rate": ASR_SAMPLE_RATE} for c in clips]
        kwargs: dict[str, Any] = {"batch_size": self.batch_size}
        if self.generate_kwargs:
            kwargs["generate_kwargs"] = dict(self.generate_kwargs)
        outputs = self.pipeline(inputs, **kwargs)
        texts = [" ".join(str(o["text"]).split()) for o in outputs]
        scores: list[tuple[float | None, float | None]] = [(None, None)] * len(texts)
        if self.is_whisper:
            scores = []
            for k in range(0, len(clips), self.batch_size):
                scores += self._whisper_scores(clips[k : k + self.batch_size], texts[k : k + self.batch_size])
        return [Transcript(t, c, n) for t, (c, n) in zip(texts, scores, strict=True)]

    def _prefix(self, language_ids: list[int | None]) -> list[list[int]]:
        """Whisper's decoder prompt per clip: start, language and task (multilingual), no timestamps."""
        config = self.model.generation_config
        start = int(config.decoder_start_token_id)
        tail = [int(config.no_timestamps_token_id)] if config.no_timestamps_token_id is not None else []
        if not getattr(config, "is_multilingual", False):
            return [[start, *tail] for _ in language_ids]
        task = (getattr(config, "task_to_id", None) or {}).get("transcribe")
        return [[start, *([lang] if lang is not None else []), *([task] if task is not None else []), *tail]
                for lang in language_ids]  # fmt: skip

    def _language_ids(self, encoder_outputs: Any, batch: int) -> list[int | None]:
        config = self.model.generation_config
        lang_to_id = getattr(config, "lang_to_id", None) or {}
        if not getattr(config, "is_multilingual", False) or not lang_to_id:
            return [None] * batch
        if self.language:
            from transformers.models.whisper.tokenization_whisper import TO_LANGUAGE_CODE

            code = TO_LANGUAGE_CODE.get(self.language.lower(), self.language.lower())
            return [lang_to_id.get(f"<|{code}|>")] * batch
        detected = self.model.detect_language(encoder_outputs=encoder_outputs, generation_config=config)
        return [int(x) for x in detected.view(-1).tolist()]

    def _whisper_scores(
        self, clips: Sequence[np.ndarray], texts: Sequence[str]
    ) -> list[tuple[float | None, float | None]]:
        """(confidence, no-speech probability) per clip from one teacher-forced pass."""
        import torch

        tokenizer, extractor = self.pipeline.tokenizer, self.pipeline.feature_extractor
        features = extractor(
            [np.asarray(c, np.float32) for c in clips], sampling_rate=ASR_SAMPLE_RATE, return_tensors="pt"
        ).input_features.to(self.model.device, self.model.dtype)
        eot = int(self.model.generation_config.eos_token_id)
        no_speech_id = next(
            (
                i
                for t in _NO_SPEECH_TOKENS
                if (i := tokenizer.convert_tokens_to_ids(t)) not in (None, tokenizer.unk_token_id)
            ),
            None,
        )
        with torch.inference_mode():
            encoded = self.model.get_encoder()(features)
            prefixes = self._prefix(self._language_ids(encoded, len(clips)))
            bodies = [
                tokenizer(" " + t, add_special_tokens=False).input_ids + [eot] if t else [eot] for t in texts
            ]
            rows = [p + b for p, b in zip(prefixes, bodies, strict=True)]
            width = max(len(r) for r in rows)
            ids = torch.tensor([r + [eot] * (width - len(r)) for r in rows], device=self.model.device)
            logits = self.model(encoder_outputs=encoded, decoder_input_ids=ids).logits.float()
            logprobs = torch.log_softmax(logits, dim=-1)
        out = []
        for k, (prefix, body) in enumerate(zip(prefixes, bodies, strict=True)):
            positions = torch.arange(len(prefix) - 1, len(prefix) - 1 + len(body), device=logprobs.device)
            targets = torch.tensor(body, device=logprobs.device)
            mean = float(logprobs[k, positions, targets].mean())
            no_speech = float(logprobs[k, 0, no_speech_id].exp()) if no_speech_id is not None else None
            out.append((math.exp(mean), no_speech))
        return out

    # -- word times ----------------------------------------------------------------------
    def word_times(self, audio16k: np.ndarray, offset: float = 0.0) -> list[tuple[float, float]] | None:
        """Word (else segment) start and end times in seconds plus ``offset``, or None when the model gives none."""
        kwargs: dict[str, Any] = (
            {"generate_kwargs": {**self.generate_kwargs, "num_beams": 1}} if self.is_whisper else {}
        )
        if len(audio16k) > 30 * ASR_SAMPLE_RATE:
            kwargs["chunk_length_s"] = 30
        for mode in ("word", True):
            try:
                result = self.pipeline(
                    {"raw": np.asarray(audio16k, np.float32), "sampling_rate": ASR_SAMPLE_RATE},
                    return_timestamps=mode,
                    **kwargs,
                )
            except Exception as exc:  # models without alignment heads or timestamp tokens
                log.debug("no %s timestamps from %s: %s", mode, self.model_name, exc)
                continue
            times = [
                (offset + float(c["timestamp"][0]), offset + float(c["timestamp"][1]))
                for c in result.get("chunks") or []
                if c.get("timestamp") and None not in c["timestamp"]
            ]
            if len(times) > 1:
                return times
        return None


# --------------------------------------------------------------------------- alignment
def words_of(text: str) -> list[str]:
    """Lower-case words for matching (punctuation dropped)."""
    return _WORD.findall(text.lower())


def align_transcript(
    transcript: str, heard: Sequence[str], durations: Sequence[float] | None = None
) -> list[tuple[str, float]]:
    """Spread a whole-file ``transcript`` over clips whose recognised texts are ``heard``.

    The transcript's words are matched to the recognised words in order (difflib); a run of
    transcript words facing a run of other recognised words is spread evenly over that run, and
    transcript words facing nothing go with the clip of the word before them. When the model heard
    nothing at all, the words are spread in proportion to the clips' ``durations``. Every
    transcript word lands in exactly one clip, in order.

    Returns:
        Per clip: its part of the transcript (as written: punctuation and case kept) and the share
        of its words that matched what the model heard (0..1).
    """
    written = transcript.split()
    keys = [" ".join(words_of(w)) for w in written]
    heard_words, heard_clip = [], []
    for clip, text in enumerate(heard):
        for word in words_of(text):
            heard_words.append(word)
            heard_clip.append(clip)
    clip_of = [0] * len(written)
    matched = [False] * len(written)
    if not heard_words:
        weights = np.cumsum(np.asarray(durations if durations is not None else [1.0] * len(heard), float))
        if len(weights) and weights[-1] > 0:
            positions = (np.arange(len(written)) + 0.5) / max(1, len(written)) * weights[-1]
            clip_of = [int(min(len(heard) - 1, np.searchsorted(weights, x))) for x in positions]
    matcher = difflib.SequenceMatcher(a=keys, b=heard_words, autojunk=False)
    last_clip = 0
    for tag, i1, i2, j1, j2 in matcher.get_opcodes() if heard_words else ():
        for i in range(i1, i2):
            if tag in ("equal", "replace") and j2 > j1:
                j = j1 + (i - i1) * (j2 - j1) // (i2 - i1)
                last_clip = heard_clip[j]
                matched[i] = tag == "equal"
            elif j1 < len(heard_clip) and i == i1 and tag == "delete" and j1 > 0:
                last_clip = heard_clip[j1 - 1]
            clip_of[i] = last_clip
    out: list[tuple[str, float]] = []
    for clip in range(len(heard)):
        mine = [k for k, c in enumerate(clip_of) if c == clip]
        text = " ".join(written[k] for k in mine)
        share = sum(matched[k] for k in mine) / len(mine) if mine else 0.0
        out.append((text, share))
    return out
