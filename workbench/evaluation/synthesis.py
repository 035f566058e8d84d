"""Prompts and generation shared by ``workbench evaluate`` and ``workbench generate``.

A canonical sample is cut into a prompt (:func:`make_prompt`), encoded as training encodes it
(:func:`generation_inputs`), generated with :class:`Sampling` settings (:func:`generation_config`)
and decoded to a waveform (:func:`decode_audio`), so what ``workbench generate`` says is what
notebook 05 measures.
"""

from __future__ import annotations

import copy
import logging
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from workbench.data.sample import Sample
from workbench.evaluation.params import Sampling
from workbench.models.family import NoAudioError

log = logging.getLogger(__name__)

__all__ = [
    "EvalPrompt", "NoAudioError", "Sampling", "decode_audio", "generation_config", "generation_inputs", "make_prompt",
]  # fmt: skip


@dataclass
class EvalPrompt:
    """One evaluation prompt derived from a canonical sample.

    Attributes:
        sample: The sample as read from ``eval_data``.
        context: The sample cut before its last target audio (all of it when prompt-only); the
            model continues it with audio.
        text: The text to speak (the last user message of ``context``).
        reference: The first audio of the context (the voice to clone), if any.
        target: The last target audio, if any.
        seed: Generation seed, from ``params.seed`` and the sample id (same for every candidate).
        problem: Why this prompt cannot be generated from, if it cannot.
    """

    sample: Sample
    context: Sample
    text: str | None
    reference: str | None
    target: str | None
    seed: int
    problem: str | None = None


def make_prompt(sample: Sample, seed: int = 0) -> EvalPrompt:
    """Cut a sample into a generation prompt (see :class:`EvalPrompt`)."""
    targets = sample.target_indices()
    cut = targets[-1] if targets else len(sample.messages)
    messages = sample.messages[:cut]
    last = messages[-1] if messages else None
    problem = None
    if last is None or last.role != "user" or last.text is None:
        problem = "the prompt does not end with a user text message (the text to speak)"
    audio = [m.audio_url for m in messages if m.is_audio]
    return EvalPrompt(
        sample=sample,
        # A prompt: start_index at its text to speak (the last message), every audio before it context.
        context=Sample(
            sample.id, tuple(messages), max(len(messages) - 1, 0), sample.speaker, dict(sample.misc)
        ),
        text=last.text if problem is None else sample.target_text(),  # type: ignore[union-attr]
        reference=audio[0] if audio else None,
        target=sample.messages[cut].audio_url if targets else None,
        seed=(seed * 1_000_003 + zlib.crc32(sample.id.encode())) % 2**31,
        problem=problem,
    )


def generation_inputs(prompt: EvalPrompt, processor: Any, codes_cache: Any) -> dict[str, torch.Tensor]:
    """Model inputs for generating the prompt's audio, built as training builds sequences.

    The prompt's context (reference audio codes from the codes cache, then the text to speak) is
    encoded by the processor's model family exactly as its inference builds the prompt
    (:meth:`workbench.models.family.ModelFamily.generation_inputs`).

    Returns:
        ``input_ids`` and ``attention_mask`` ``(1, L)``; with context audio also
        ``audio_input_ids`` ``(1, F, N)`` and ``audio_input_ids_mask`` ``(1, F)``.

    Raises:
        ValueError: the prompt cannot be generated from (names the sample and the problem).
    """
    from workbench.models.families import family_for

    if prompt.problem:
        raise ValueError(f"sample {prompt.sample.id!r}: {prompt.problem}")
    return family_for(processor).generation_inputs(prompt.context, processor, codes_cache)


# --- generation -------------------------------------------------------------------------------------
def generation_config(model: torch.nn.Module, params: Any) -> Any:
    """A copy of the model's generation config with the sampling settings of ``params``.

    ``params``: a :class:`Sampling`, or anything with its fields (``EvalParams``). A ``temperature``
    of None takes the model family's serving default; ``ras_win_len`` on a family whose ``generate``
    has no repetition-aware sampling is a warning, not an error.
    """
    from workbench.models.families import family_for

    family = family_for(model)
    temperature = family.default_temperature if params.temperature is None else params.temperature
    config = copy.deepcopy(model.generation_config)
    config.max_new_tokens = params.max_new_tokens
    config.do_sample = temperature > 0
    if config.do_sample:
        config.temperature = temperature
        config.top_k = params.top_k
        config.top_p = params.top_p
    else:
        config.temperature, config.top_k, config.top_p = None, None, None
    if params.ras_win_len and not family.repetition_aware_sampling:
        log.warning(
            "ras_win_len %s has no effect on %s: its sampler has no repetition-aware sampling",
            params.ras_win_len, family.title,
        )  # fmt: skip
    if params.ras_win_len is not None:
        config.ras_win_len = params.ras_win_len or None
        if config.ras_win_len and getattr(config, "ras_win_max_num_repeat", None) is None:
            config.ras_win_max_num_repeat = 2
    return config


def prompt_rows(inputs: dict[str, Any]) -> int:
    """The reference rows of generation ``inputs`` that ``generate`` returns before the generated ones."""
    if "audio_input_ids_mask" in inputs:
        return int(inputs["audio_input_ids_mask"][0].sum())
    return int(inputs["audio_input_ids"].shape[1]) if "audio_input_ids" in inputs else 0


def decode_audio(processor: Any, audio_ids: torch.Tensor, inputs: dict[str, Any] | None = None) -> np.ndarray:
    """Decode what the model's ``generate`` returned ``(1, rows, N)`` to a float32 waveform at 24 kHz.

    ``inputs``: the generation inputs, so the generated rows are told from the prompt's by count.

    Raises:
        NoAudioError: the codes hold no decodable audio (the reason is in the message).
    """
    from workbench.models.families import family_for

    rows = prompt_rows(inputs) if inputs is not None else None
    return family_for(processor).decode_generated(processor, audio_ids, rows)
