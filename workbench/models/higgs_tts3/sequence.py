"""Higgs TTS 3 training sequences from canonical samples, built exactly as inference builds prompts.

A canonical sample maps onto the v3 prompt like this:

- the *target* is the first assistant audio at or after ``start_index``; its text is the user text
  right before it;
- the *reference* is the last assistant audio before the target; its transcript, if any, is the
  user text right before it.

The sequence is the prompt (:meth:`HiggsTTS3Processor.prompt_ids`, ending with ``<|audio|>``)
followed by one placeholder per delayed target row (``T + N - 1``). Labels cover the target's
codes and its EOCs; BOC entries, every reference row and all text are context (-100). The row at
placeholder ``p`` is predicted from position ``p - 1``, as generation predicts it.

What a sample holds that the v3 prompt has no place for (a system or scene text, earlier
references, later targets) is named by :func:`sample_notes`, never dropped silently.

The codes cache is duck-typed (``get(url) -> LongTensor (N, T)``, ``num_frames(url) -> int``):
the models stage does not import the training stage.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from workbench.data.sample import DEFAULT_SYSTEM_PROMPT, Sample
from workbench.models.family import SequenceTooLongError
from workbench.models.higgs_tts3.processing import HiggsTTS3Processor

IGNORE_INDEX = -100
SERVING_MIN_REFERENCE_SECONDS = 1.0  # SGLang-Omni and mlx-audio pad shorter references to this


@dataclass(frozen=True)
class PromptParts:
    """What of a sample the v3 prompt uses.

    Attributes:
        text: The text to speak (the target's transcript, or a prompt's last user text).
        target: Index of the target audio message, None for a prompt.
        reference: Index of the reference audio message, or None.
        reference_text: The reference's transcript, or None.
    """

    text: str
    target: int | None
    reference: int | None
    reference_text: str | None

    def audio_url(self, sample: Sample, index: int | None) -> str | None:
        return None if index is None else sample.messages[index].audio_url


def _error(sample: Sample, problem: str) -> ValueError:
    return ValueError(f"sample {sample.id!r} ({sample.provenance()}): {problem}; run `workbench validate`")


def _reference_before(sample: Sample, end: int) -> int | None:
    audio = [i for i, m in enumerate(sample.messages[:end]) if m.is_audio and m.role == "assistant"]
    return audio[-1] if audio else None


def prompt_parts(sample: Sample) -> PromptParts:
    """The target, its text, the reference and its transcript of a trainable sample.

    Raises:
        ValueError: No target audio, or no user text before it (names the sample).
    """
    targets = sample.target_indices()
    if not targets:
        raise _error(sample, "no assistant audio at or after start_index to train on")
    target = targets[0]
    text = sample.text_for_audio(target)
    if text is None:
        raise _error(sample, f"the target audio (message {target}) has no user text right before it")
    reference = _reference_before(sample, target)
    reference_text = sample.text_for_audio(reference) if reference is not None else None
    return PromptParts(text, target, reference, reference_text)


def context_parts(context: Sample) -> PromptParts:
    """The text to speak (the last message, a user text) and the reference of a generation prompt.

    Raises:
        ValueError: The context does not end with a user text.
    """
    last = context.messages[-1] if context.messages else None
    if last is None or last.role != "user" or last.text is None:
        raise _error(context, "the prompt does not end with a user text message (the text to speak)")
    end = len(context.messages) - 1
    reference = _reference_before(context, end)
    reference_text = context.text_for_audio(reference) if reference is not None else None
    return PromptParts(last.text, None, reference, reference_text)


def _codes(sample: Sample, url: str, processor: HiggsTTS3Processor, codes_cache: Any) -> torch.Tensor:
    codes = codes_cache.get(url)
    if codes.ndim != 2 or codes.shape[0] != processor.num_codebooks:
        raise ValueError(
            f"sample {sample.id!r}: codes of {url} have shape {tuple(codes.shape)}, expected "
            f"({processor.num_codebooks}, frames); is the codes cache built with this model's audio tokenizer?"
        )
    return codes.long()


def encode_sample(
    sample: Sample, processor: HiggsTTS3Processor, codes_cache: Any, max_length: int | None = None
) -> dict[str, Any]:
    """Per-sample tensors of one canonical sample (no padding), as v2's ``encode_sample`` returns.

    Args:
        sample: A trainable canonical sample.
        processor: The v3 processor.
        codes_cache: ``get(url) -> LongTensor (N, T)``.
        max_length: When set, raise :class:`SequenceTooLongError` for longer samples.

    Returns:
        ``input_ids`` (L,) with -100 per audio row; ``audio_input_ids`` (F, N), the reference rows
        then the target rows; ``audio_labels`` (F, N); ``num_target_tokens`` (supervised entries);
        ``length`` (L); ``sample_id``.

    Raises:
        ValueError: A malformed sample or codes of the wrong shape.
        SequenceTooLongError: ``L > max_length``.
    """
    parts = prompt_parts(sample)
    n = processor.num_codebooks
    reference = torch.empty((0, n), dtype=torch.long)
    if parts.reference is not None:
        reference = processor.delay(
            _codes(sample, parts.audio_url(sample, parts.reference), processor, codes_cache)
        )
    target = processor.delay(_codes(sample, parts.audio_url(sample, parts.target), processor, codes_cache))
    prompt = processor.prompt_ids(parts.text, parts.reference_text, len(reference))
    input_ids = torch.tensor(prompt + [processor.audio_token_id] * len(target), dtype=torch.long)
    if max_length is not None and len(input_ids) > max_length:
        raise SequenceTooLongError(sample.id, len(input_ids), max_length)
    labels = torch.cat(
        [
            torch.full_like(reference, IGNORE_INDEX),
            target.masked_fill(target == processor.audio_stream_bos_id, IGNORE_INDEX),
        ]
    )
    return {
        "input_ids": input_ids,
        "audio_input_ids": torch.cat([reference, target]),
        "audio_labels": labels,
        "num_target_tokens": int((labels != IGNORE_INDEX).sum()),
        "length": len(input_ids),
        "sample_id": sample.id,
    }


def sequence_length(sample: Sample, processor: HiggsTTS3Processor, codes_cache: Any) -> int:
    """``len(input_ids)`` of :func:`encode_sample`, from cached frame counts (no tensors)."""
    parts = prompt_parts(sample)
    n = processor.num_codebooks
    reference_rows = 0
    if parts.reference is not None:
        reference_rows = codes_cache.num_frames(parts.audio_url(sample, parts.reference)) + n - 1
    target_rows = codes_cache.num_frames(parts.audio_url(sample, parts.target)) + n - 1
    return processor.prompt_length(parts.text, parts.reference_text, reference_rows) + target_rows


def estimated_length(
    sample: Sample, processor: HiggsTTS3Processor, seconds: Mapping[str, float]
) -> int | None:
    """:func:`sequence_length` from durations: ``ceil(seconds x frame_rate)`` frames per clip.

    Returns:
        The estimate, or None when the duration of a clip the prompt uses is unknown.
    """
    parts = prompt_parts(sample)
    n, rate = processor.num_codebooks, processor.frame_rate
    rows = {}
    for index in (parts.reference, parts.target):
        if index is None:
            continue
        duration = seconds.get(parts.audio_url(sample, index))  # type: ignore[arg-type]
        if duration is None:
            return None
        rows[index] = math.ceil(duration * rate) + n - 1
    reference_rows = rows.get(parts.reference, 0) if parts.reference is not None else 0
    return processor.prompt_length(parts.text, parts.reference_text, reference_rows) + rows[parts.target]


def generation_inputs(
    context: Sample, processor: HiggsTTS3Processor, codes_cache: Any
) -> dict[str, torch.Tensor]:
    """The prompt to generate the audio that follows ``context`` (ending with the text to speak).

    Returns:
        ``input_ids`` and ``attention_mask`` ``(1, L)`` up to and including ``<|audio|>``; with a
        reference also ``audio_input_ids`` ``(1, F, N)`` and ``audio_input_ids_mask`` ``(1, F)``.

    Raises:
        ValueError: The context does not end with a user text.
    """
    parts = context_parts(context)
    reference = None
    if parts.reference is not None:
        reference = processor.delay(
            _codes(context, parts.audio_url(context, parts.reference), processor, codes_cache)
        )
    rows = 0 if reference is None else len(reference)
    input_ids = torch.tensor([processor.prompt_ids(parts.text, parts.reference_text, rows)], dtype=torch.long)
    inputs = {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids)}
    if reference is not None:
        inputs["audio_input_ids"] = reference[None]
        inputs["audio_input_ids_mask"] = torch.ones((1, rows), dtype=torch.bool)
    return inputs


def sample_notes(sample: Sample, seconds: Mapping[str, float] | None = None) -> list[str]:
    """What a sample holds that the v3 prompt leaves out or the serving stacks read otherwise, one
    sentence each (warnings).

    Covers a system text other than the default, scene texts, references before the last one,
    targets after the first, and (with ``seconds``, durations by path) a voice reference under
    :data:`SERVING_MIN_REFERENCE_SECONDS`. A sample without a target is read as a generation prompt.
    """
    notes = []
    for i, message in enumerate(sample.messages):
        if (
            message.role == "system"
            and message.text is not None
            and message.text.strip() != DEFAULT_SYSTEM_PROMPT
        ):
            notes.append(
                f"message {i}: the system text {_quote(message.text)} is left out (Higgs TTS 3 has no system prompt)"
            )
        elif message.role == "scene" and message.text is not None:
            notes.append(
                f"message {i}: the scene text {_quote(message.text)} is left out (Higgs TTS 3 has no scene "
                "description; put style tags such as <|emotion:...|> inline in the text instead)"
            )
    targets = sample.target_indices()
    end = targets[0] if targets else len(sample.messages)
    audio_before = [i for i, m in enumerate(sample.messages[:end]) if m.is_audio and m.role == "assistant"]
    if len(audio_before) > 1:
        earlier = ", ".join(f"message {i} ({sample.messages[i].audio_url})" for i in audio_before[:-1])
        notes.append(
            f"{len(audio_before) - 1} earlier reference(s) left out: {earlier}; Higgs TTS 3 conditions on "
            f"one reference, the last one before the target (message {audio_before[-1]})"
        )
    if audio_before and seconds:
        reference = sample.messages[audio_before[-1]].audio_url
        length = seconds.get(reference)
        if length is not None and length < SERVING_MIN_REFERENCE_SECONDS:
            notes.append(
                f"message {audio_before[-1]}: the reference {reference} lasts {length:.2f} s; the serving stacks "
                f"(SGLang-Omni, mlx-audio) pad a reference under {SERVING_MIN_REFERENCE_SECONDS:g} s with silence "
                "before encoding it, training and the workbench's generation use it as it is: use a reference "
                f"of at least {SERVING_MIN_REFERENCE_SECONDS:g} s"
            )
    if len(targets) > 1:
        later = ", ".join(f"message {i} ({sample.messages[i].audio_url})" for i in targets[1:])
        notes.append(
            f"{len(targets) - 1} later target(s) left out: {later}; Higgs TTS 3 trains the first target "
            f"(message {targets[0]}) of a sample only (split multi-turn samples to train the others)"
        )
    return notes


def _quote(text: str, limit: int = 60) -> str:
    text = " ".join(text.split())
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")
