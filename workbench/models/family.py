"""Model families behind one seam: what differs between Higgs Audio v2 and Higgs TTS 3.

Every stage (convert, validate, codes cache, collate, train, evaluate, generate, export) works on
canonical samples, audio codes and a ``(model, processor)`` pair. What a model family decides is
asked of its :class:`ModelFamily` and of nothing else:

- loading a folder or cached hub id (:meth:`ModelFamily.load`, :meth:`ModelFamily.load_processor`);
- how a canonical sample becomes the token sequence and labels the model trains on, exactly as its
  inference builds the prompt (:meth:`ModelFamily.encode_sample`, :meth:`ModelFamily.sequence_length`,
  :meth:`ModelFamily.estimated_length`), and what a sample holds that the family cannot use
  (:meth:`ModelFamily.sample_notes`);
- the prompt for generation and how generated codes become a waveform
  (:meth:`ModelFamily.generation_inputs`, :meth:`ModelFamily.decode_generated`);
- per-codebook accuracy of a forward pass (:meth:`ModelFamily.codebook_hits`);
- the default LoRA targets, the context length and the export layout (:meth:`ModelFamily.save_merged`).

The families themselves live in ``higgs_audio_v2`` and ``higgs_tts3``; :mod:`workbench.models.families`
finds the family of a folder (from its ``config.json``) or of a loaded model or processor.

Every batch has the same keys in both families (B samples, L tokens, F audio rows, N codebooks):
``input_ids`` (B, L), ``attention_mask`` (B, L), ``audio_input_ids`` (B, F, N),
``audio_input_ids_mask`` (B, F) and ``audio_labels`` (B, F, N), so the collator, the loss
normalisation and the Trainer do not fork on the family.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from workbench.models.folder import ModelNotFoundError


class UnknownModelFamilyError(ModelNotFoundError):
    """A model folder whose ``config.json`` names neither Higgs Audio v2 nor Higgs TTS 3."""


class ModelFamily:
    """What one model family decides; subclasses implement every method.

    Attributes:
        name: The family's name on the command line (``higgs-audio-v2``, ``higgs-tts-3``).
        title: Its name in prose (``Higgs Audio v2``).
        model_types: ``model_type`` values of its ``config.json``.
        default_lora_targets: LoRA target modules when the parameters name none.
        head_modules: Modules that ``modules_to_save`` may name to train the audio head fully.
        default_temperature: Sampling temperature when the user sets none (the family's serving default).
        repetition_aware_sampling: Whether ``generate`` honours ``ras_win_len``.
    """

    name: str = ""
    title: str = ""
    model_types: tuple[str, ...] = ()
    default_lora_targets: tuple[str, ...] = ()
    head_modules: tuple[str, ...] = ()
    default_temperature: float = 1.0
    repetition_aware_sampling: bool = False

    # --- recognising ----------------------------------------------------------------------------
    def matches_config(self, config: Mapping[str, Any]) -> bool:
        """Whether a ``config.json`` (as a dict) is this family's."""
        return config.get("model_type") in self.model_types

    def owns(self, obj: Any) -> bool:
        """Whether a loaded model (possibly wrapped) or processor belongs to this family."""
        raise NotImplementedError

    # --- loading --------------------------------------------------------------------------------
    def load(
        self, model_path: str | os.PathLike[str], dtype: Any = None, device: Any = None
    ) -> tuple[Any, Any]:
        """``(model, processor)`` from a local folder, the model in eval mode (see ``load_model_and_processor``)."""
        raise NotImplementedError

    def load_processor(self, model_path: str | os.PathLike[str]) -> Any:
        """The processor (text tokenizer, audio tokenizer, prompt ids) of a local folder."""
        raise NotImplementedError

    def parameter_count(self, model_path: str | os.PathLike[str]) -> int | None:
        """Parameters of the model's LM, counted on the meta device from its config (no weights read)."""
        return None

    def context_length(self, config: Any) -> int | None:
        """Longest sequence in tokens the model is made for, from its config (object or dict)."""
        raise NotImplementedError

    # --- sequences ------------------------------------------------------------------------------
    def encode_sample(
        self, sample: Any, processor: Any, codes_cache: Any, max_length: int | None = None
    ) -> dict[str, Any]:
        """Per-sample tensors: ``input_ids`` (L,), ``audio_input_ids`` (F, N), ``audio_labels`` (F, N),
        ``num_target_tokens``, ``length`` and ``sample_id``; see ``workbench.training.collate``."""
        raise NotImplementedError

    def sequence_length(self, sample: Any, processor: Any, codes_cache: Any) -> int:
        """``len(input_ids)`` of :meth:`encode_sample`, from cached code lengths, without building it."""
        raise NotImplementedError

    def estimated_length(self, sample: Any, processor: Any, seconds: Mapping[str, float]) -> int | None:
        """:meth:`sequence_length` from audio durations (validation, before any encoding)."""
        raise NotImplementedError

    def sample_notes(self, sample: Any, seconds: Mapping[str, float] | None = None) -> list[str]:
        """What a valid sample holds that this family's prompt leaves out (warnings, never silent).

        ``seconds``: the durations of the sample's clips by path, where known.
        """
        return []

    # --- generation -----------------------------------------------------------------------------
    def generation_inputs(self, context: Any, processor: Any, codes_cache: Any) -> dict[str, Any]:
        """Model inputs to generate the audio that follows ``context`` (a sample ending with its text)."""
        raise NotImplementedError

    def generated_codes(self, processor: Any, audio_ids: Any, prompt_rows: int | None = None) -> Any:
        """The codec codes ``(N, T)`` of the clip that ``generate`` returned (delay pattern undone).

        ``prompt_rows``: the reference rows ``generate`` returns before the generated ones (the
        prompt's real ``audio_input_ids`` rows); None: the family finds where generation starts.

        Raises:
            workbench.models.family.NoAudioError: no audio was generated.
        """
        raise NotImplementedError

    def decode_generated(self, processor: Any, audio_ids: Any, prompt_rows: int | None = None) -> Any:
        """A float32 waveform (24 kHz numpy array) from what the model's ``generate`` returned.

        Raises:
            workbench.models.family.NoAudioError: the codes hold no decodable audio.
        """
        raise NotImplementedError

    # --- training metrics and export ------------------------------------------------------------
    def codebook_hits(self, model: Any, inputs: Mapping[str, Any], logits: Any) -> tuple[Any, Any]:
        """Correct and total next-row predictions per codebook on supervised entries: ``(N,)`` each."""
        raise NotImplementedError

    def save_merged(self, model: Any, processor: Any, out_dir: str | os.PathLike[str]) -> Path:
        """Merge a PEFT LoRA model (the caller's is left unmerged) and save the release layout."""
        raise NotImplementedError

    def write_notices(self, folder: str | os.PathLike[str], base_dir: str | os.PathLike[str] | None) -> None:
        """Write the licence notices a redistributed adapter or model of this family must carry."""


class NoAudioError(RuntimeError):
    """Generated codes that decode to no audio."""


def decoded_waveform(decode: Any, what: str) -> Any:
    """``decode()``'s waveform as float32 numpy, or :class:`NoAudioError` saying why there is none.

    Args:
        decode: A no-argument callable that decodes the generated codes (a tensor or array).
        what: What decodes, for the message ("the processor", "the codec").
    """
    import numpy as np

    try:
        waveform = decode()
    except Exception as exc:  # codecs raise various errors on degenerate codes
        raise NoAudioError(
            f"{what} could not decode the generated codes ({type(exc).__name__}: {exc})"
        ) from exc
    if hasattr(waveform, "detach"):
        waveform = waveform.detach().float().cpu().numpy()
    audio = np.asarray(waveform, dtype=np.float32).reshape(-1)
    if audio.size == 0:
        raise NoAudioError("the generated codes decode to no samples (the model stopped at once)")
    if not np.isfinite(audio).all():
        raise NoAudioError("the decoded audio has NaN or infinite samples")
    return audio


class SequenceTooLongError(ValueError):
    """A sample's token sequence is longer than the configured ``max_length``.

    Attributes:
        sample_id: The sample's id.
        length: Its length in tokens (text + audio placeholders).
        max_length: The limit.
    """

    def __init__(self, sample_id: str, length: int, max_length: int) -> None:
        self.sample_id, self.length, self.max_length = sample_id, length, max_length
        super().__init__(
            f"sample {sample_id!r} is {length} tokens long, more than max_length={max_length}; "
            "shorten its audio or references, drop it (`workbench validate` flags it), or raise max_length"
        )


def unwrap(model: Any) -> Any:
    """The plain model under DDP (``.module``) and PEFT (``get_base_model``) wrappers; others pass through."""
    while hasattr(model, "module") and not hasattr(model, "config"):
        model = model.module
    if hasattr(model, "get_base_model"):
        model = model.get_base_model()
    return model
