"""Higgs Audio v2 as a model family: sequences, generation prompt, decoding, metrics and export.

A canonical :class:`~workbench.data.sample.Sample` becomes exactly the tensors that
``HiggsAudioV2Processor.apply_chat_template(conversation, tokenize=True, return_dict=True,
return_tensors="pt")`` produces for the same conversation, except that the audio codes come from
the codes cache instead of running the audio tokenizer:

1. the processor's own chat template renders the conversation (system, optional scene, user text,
   assistant audio as ``<|audio_out_bos|><|AUDIO_OUT|><|audio_eos|>``);
2. each audio segment's codes ``(N, T)`` get a stream-bos and a stream-eos column and the
   processor's ``build_delay_pattern`` (codebook ``k`` shifted right by ``k``):
   ``(T + 2 + N - 1, N)`` frames;
3. each ``<|AUDIO_OUT|>`` expands to one placeholder per frame with the processor's
   ``get_audio_tokens`` and the text is tokenized by the processor's tokenizer.

Labels differ from the processor's on purpose. The processor labels every audio segment
(references included) and masks every stream-eos, so a model trained on them never learns to stop.
Here, as in the original Boson collator, only assistant audio at or after ``start_index`` is a
target, labelled ``delay([-100, codes, eos])`` with ``-100`` as the delay fill: each codebook's
codes plus its first stream-eos. Reference audio and all text are context (``-100``).

Loading and the merged export are :mod:`workbench.models.model`'s.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from workbench.data.contract import require_usable
from workbench.data.sample import Message, Sample
from workbench.models.family import ModelFamily, NoAudioError, SequenceTooLongError, decoded_waveform, unwrap

IGNORE_INDEX = -100
# LoRA on attention and on both FFN paths (text and audio) of every dual-FFN layer.
DEFAULT_LORA_TARGETS = (
    "q_proj", "k_proj", "v_proj", "o_proj",
    "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj",
    "audio_mlp.gate_proj", "audio_mlp.up_proj", "audio_mlp.down_proj",
)  # fmt: skip


@dataclass(frozen=True)
class _Segment:
    """One assistant audio message of a sample, in conversation order."""

    audio_url: str
    is_target: bool


def _structure_error(sample: Sample, problem: str) -> ValueError:
    return ValueError(f"sample {sample.id!r} ({sample.provenance()}): {problem}; run `workbench validate`")


def _ordered_messages(sample: Sample) -> list[tuple[int, Message]]:
    """``(index, message)`` pairs in template order: system, merged scene, then the rest.

    The caller has checked the sample against the contract (the system message is first).
    """
    messages = list(enumerate(sample.messages))
    scenes = [(i, m) for i, m in messages if m.role == "scene"]
    rest = [(i, m) for i, m in messages[1:] if m.role != "scene"]
    if scenes:
        # The template reads a scene only right after the system turn; several are joined.
        scene_text = "\n".join(m.text.strip() for _, m in scenes)  # type: ignore[union-attr]
        scenes = [(scenes[0][0], Message("scene", scene_text))]
    return [messages[0], *scenes, *rest]


def _segments(sample: Sample) -> list[_Segment]:
    targets = set(sample.target_indices())
    return [
        _Segment(m.audio_url, i in targets) for i, m in _ordered_messages(sample) if m.audio_url is not None
    ]


def sample_to_conversation(sample: Sample, audio: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """The chat-template conversation of a canonical sample.

    The system turn comes first; scene messages (wherever they are) are merged into one ``scene``
    turn right after it, where the Higgs template puts the ``<|scene_desc_start|>`` block; user
    turns are text; assistant turns are audio.

    Args:
        sample: A canonical sample (trainable or a prompt).
        audio: Optional ``audio_url -> waveform`` map; mapped audio entries carry the waveform
            (``{"type": "audio", "audio": array}``), the others the file path
            (``{"type": "audio", "path": url}``), both of which ``apply_chat_template`` loads.

    Returns:
        A list of ``{"role", "content": [part]}`` dicts for ``processor.apply_chat_template``.

    Raises:
        SampleContractError: The sample breaks the contract (no leading system message, audio
            outside assistant turns, text in an assistant turn...), naming the sample.
    """
    require_usable(sample, trainable=False)
    conversation = []
    for _, message in _ordered_messages(sample):
        if message.is_audio:
            url = message.audio_url
            in_memory = audio is not None and url in audio
            part = {"type": "audio", "audio": audio[url]} if in_memory else {"type": "audio", "path": url}
        else:
            part = {"type": "text", "text": message.text}
        conversation.append({"role": message.role, "content": [part]})
    return conversation


def render_text(sample: Sample, processor: Any) -> str:
    """The sample rendered by the processor's chat template (one ``<|AUDIO_OUT|>`` per audio)."""
    return processor.apply_chat_template(sample_to_conversation(sample), tokenize=False)


def _num_codebooks(processor: Any) -> int:
    return int(processor.audio_tokenizer.config.num_quantizers)


def _delay(rows: torch.Tensor, before: int, after: int) -> torch.Tensor:
    """Delay pattern of ``rows`` ``(N, S)``: codebook ``k`` shifted right by ``k``.

    Returns:
        ``(S + N - 1, N)``; the ``k`` leading slots of codebook ``k`` hold ``before``, the
        ``N - 1 - k`` trailing ones ``after``.
    """
    n, s = rows.shape
    out = torch.full((n, s + n - 1), after, dtype=torch.long)
    for k in range(n):
        out[k, :k] = before
        out[k, k : k + s] = rows[k]
    return out.T.contiguous()


def segment_tensors(
    codes: torch.Tensor, processor: Any, is_target: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Model inputs and labels of one audio segment.

    Args:
        codes: LongTensor ``(N, T)`` from the codes cache.
        processor: Supplies the stream bos/eos ids and ``build_delay_pattern``.
        is_target: Whether the segment is supervised.

    Returns:
        ``(audio_input_ids, audio_labels)``, both ``(T + N + 1, N)``. Inputs are
        ``build_delay_pattern([bos, codes, eos])`` exactly as the processor builds them; labels are
        ``delay([-100, codes, eos])`` with ``-100`` fill for a target, all ``-100`` otherwise.
    """
    n = codes.shape[0]
    bos = codes.new_full((n, 1), processor.audio_stream_bos_id)
    eos = codes.new_full((n, 1), processor.audio_stream_eos_id)
    inputs = processor.build_delay_pattern(torch.cat([bos, codes, eos], dim=1)[None])[0].T.contiguous()
    if is_target:
        ignore = codes.new_full((n, 1), IGNORE_INDEX)
        labels = _delay(torch.cat([ignore, codes, eos], dim=1), IGNORE_INDEX, IGNORE_INDEX)
    else:
        labels = torch.full_like(inputs, IGNORE_INDEX)
    return inputs, labels


def _tokenize(processor: Any, text: str) -> list[int]:
    tokenizer = processor.tokenizer
    # As apply_chat_template: a rendered prompt that starts with bos gets no second bos.
    add_special = not (tokenizer.bos_token is not None and text.startswith(tokenizer.bos_token))
    return tokenizer(text, add_special_tokens=add_special)["input_ids"]


def encode_sample(
    sample: Sample,
    processor: Any,
    codes_cache: Any,
    max_length: int | None = None,
) -> dict[str, Any]:
    """Per-sample tensors of one canonical sample (no padding).

    Args:
        sample: A canonical sample.
        processor: The model's ``Any`` (template, tokenizer, ids).
        codes_cache: Source of each audio file's codes (never re-encodes cached files).
        max_length: When set, raise :class:`SequenceTooLongError` for longer samples.

    Returns:
        A dict with

        - ``input_ids``: LongTensor ``(L,)``, text with one placeholder per audio frame;
        - ``audio_input_ids``: LongTensor ``(F, N)``, all segments' delayed codes concatenated
          (``F = sum(T_i + N + 1)``; ``(0, N)`` when the sample has no audio);
        - ``audio_labels``: LongTensor ``(F, N)``, ``-100`` except target codes and first eos;
        - ``num_target_tokens``: int, label entries that are not ``-100``;
        - ``length``: int, ``L`` (total tokens, for length grouping);
        - ``sample_id``: str.

    Raises:
        ValueError: A malformed sample, or codes with the wrong number of codebooks.
        SequenceTooLongError: ``L > max_length``.
    """
    num_codebooks = _num_codebooks(processor)
    segments = _segments(sample)
    text = render_text(sample, processor)
    placeholder = re.escape(processor.audio_token)
    if len(re.findall(placeholder, text)) != len(segments):
        raise _structure_error(
            sample,
            f"the rendered text has {len(re.findall(placeholder, text))} audio placeholders for "
            f"{len(segments)} audio messages (does a text contain {processor.audio_token!r}?)",
        )
    inputs, labels = [], []
    for segment in segments:
        codes = codes_cache.get(segment.audio_url)
        if codes.ndim != 2 or codes.shape[0] != num_codebooks:
            raise ValueError(
                f"sample {sample.id!r}: codes of {segment.audio_url} have shape {tuple(codes.shape)}, "
                f"expected ({num_codebooks}, frames); is the codes cache built with this model's audio tokenizer?"
            )
        segment_inputs, segment_labels = segment_tensors(codes, processor, segment.is_target)
        inputs.append(segment_inputs)
        labels.append(segment_labels)
    frames = iter([len(x) for x in inputs])
    text = re.sub(placeholder, lambda _: processor.get_audio_tokens(next(frames)), text)
    input_ids = torch.tensor(_tokenize(processor, text), dtype=torch.long)
    if max_length is not None and len(input_ids) > max_length:
        raise SequenceTooLongError(sample.id, len(input_ids), max_length)
    empty = torch.empty((0, num_codebooks), dtype=torch.long)
    audio_labels = torch.cat(labels) if labels else empty
    return {
        "input_ids": input_ids,
        "audio_input_ids": torch.cat(inputs) if inputs else empty,
        "audio_labels": audio_labels,
        "num_target_tokens": int((audio_labels != IGNORE_INDEX).sum()),
        "length": len(input_ids),
        "sample_id": sample.id,
    }


def sequence_length(sample: Sample, processor: Any, codes_cache: Any) -> int:
    """Token count of a sample, as :func:`encode_sample` would build it, without building it.

    Tokenizes the rendered text once (each ``<|AUDIO_OUT|>`` is one special token) and adds
    ``T_i + N`` for each audio segment (it expands to ``T_i + N + 1`` placeholders), reading
    ``T_i`` from the cached ``.npy`` header. Use it at validation time to find samples over
    ``max_length`` before training starts.

    Returns:
        The length ``L`` of ``input_ids``.
    """
    num_codebooks = _num_codebooks(processor)
    text_tokens = len(_tokenize(processor, render_text(sample, processor)))
    return text_tokens + sum(codes_cache.num_frames(s.audio_url) + num_codebooks for s in _segments(sample))


def estimated_length(sample: Sample, processor: Any, seconds: Mapping[str, float]) -> int | None:
    """:func:`sequence_length` from audio durations instead of codes (no encoding; for validation).

    Each clip counts ``ceil(seconds x frame_rate)`` frames, at most one more than the codec gives.

    Args:
        seconds: Duration of each audio path of ``sample``.

    Returns:
        The estimated length of ``input_ids``, or None when a clip's duration is unknown.
    """
    import math

    num_codebooks = _num_codebooks(processor)
    frame_rate = float(processor.audio_tokenizer.config.frame_rate)
    total = len(_tokenize(processor, render_text(sample, processor)))
    for segment in _segments(sample):
        duration = seconds.get(segment.audio_url)
        if duration is None:
            return None
        total += math.ceil(duration * frame_rate) + num_codebooks
    return total


# --- generation ---------------------------------------------------------------------------------
def generation_inputs(context: Sample, processor: Any, codes_cache: Any) -> dict[str, torch.Tensor]:
    """Model inputs for generating the audio that follows ``context``, built as training builds sequences.

    The context is encoded by :func:`encode_sample` (reference audio codes from the codes cache) and
    followed by the chat template's generation prompt (assistant header and ``<|audio_out_bos|>``),
    exactly what ``processor.apply_chat_template(..., add_generation_prompt=True)`` gives for the same audio.

    Returns:
        ``input_ids`` and ``attention_mask`` ``(1, L)``; with context audio also
        ``audio_input_ids`` ``(1, F, N)`` and ``audio_input_ids_mask`` ``(1, F)``.
    """
    encoded = encode_sample(context, processor, codes_cache)
    conversation = sample_to_conversation(context)
    plain = processor.apply_chat_template(conversation, tokenize=False)
    with_prompt = processor.apply_chat_template(conversation, tokenize=False, add_generation_prompt=True)
    if not with_prompt.startswith(plain):
        raise ValueError("the chat template's generation prompt does not extend the rendered conversation")
    suffix = processor.tokenizer(with_prompt[len(plain) :], add_special_tokens=False)["input_ids"]
    input_ids = torch.cat([encoded["input_ids"], torch.tensor(suffix, dtype=torch.long)])[None]
    inputs = {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids)}
    if len(encoded["audio_input_ids"]):
        inputs["audio_input_ids"] = encoded["audio_input_ids"][None]
        inputs["audio_input_ids_mask"] = torch.ones(inputs["audio_input_ids"].shape[:2], dtype=torch.bool)
    return inputs


def generated_codes(processor: Any, audio_ids: torch.Tensor) -> torch.Tensor:
    """The codes ``(N, T)`` between the last all-bos frame and the first all-eos frame, undelayed
    (what ``HiggsAudioV2Processor.decode`` hands its audio tokenizer).

    Raises:
        NoAudioError: no all-bos frame, or fewer frames than the delay pattern needs.
    """
    frames = audio_ids[0].cpu()
    num_codebooks = frames.shape[-1]
    starts = (frames == processor.audio_stream_bos_id).all(dim=-1).nonzero()
    if len(starts) == 0:
        raise NoAudioError("the generated codes have no all-bos frame where audio starts")
    generated = frames[int(starts[-1]) + 1 :]
    ends = (generated == processor.audio_stream_eos_id).all(dim=-1).nonzero()
    count = int(ends[0]) if len(ends) else len(generated)
    if count < num_codebooks:
        raise NoAudioError(
            f"only {count} audio frame(s) were generated before the end; the delay pattern over {num_codebooks} "
            f"codebooks needs at least {num_codebooks} to yield any audio (raise max_new_tokens, or the model "
            "stops too early)"
        )
    return processor.revert_delay_pattern(generated[:count]).T.contiguous()


def decode_generated(processor: Any, audio_ids: torch.Tensor) -> np.ndarray:
    """Decode what ``HiggsAudioV2ForConditionalGeneration.generate`` returned ``(1, frames, N)``.

    Returns:
        A float32 waveform at 24 kHz.

    Raises:
        NoAudioError: the codes hold no decodable audio (the reason is in the message).
    """
    generated_codes(processor, audio_ids)  # a clear NoAudioError before the processor's own checks
    return decoded_waveform(lambda: processor.decode(audio_ids), "the processor")


def codebook_hits(
    model: Any, inputs: Mapping[str, Any], logits: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Correct and total next-frame predictions per codebook, on supervised frames only.

    The model predicts the codes at position ``t + 1`` from position ``t`` (as in its loss).

    Args:
        model: the plain ``HiggsAudioV2ForConditionalGeneration``.
        inputs: the batch (``input_ids`` (B, L), ``audio_input_ids_mask`` (B, F), ``audio_labels`` (B, F, N)).
        logits: ``(B, L, N * C)`` from the forward pass.

    Returns:
        ``(correct, total)``: LongTensors of shape ``(N,)``.
    """
    n, c = model.config.num_codebooks, model.config.codebook_size
    input_ids, frame_mask, labels = (
        inputs["input_ids"],
        inputs["audio_input_ids_mask"],
        inputs["audio_labels"],
    )
    expanded = input_ids.new_full((*input_ids.shape[:2], n), IGNORE_INDEX)
    placeholders = model.model.get_placeholder_mask(input_ids, None, frame_mask)
    expanded[placeholders] = labels[frame_mask.bool()]
    predicted = logits.detach().reshape(*logits.shape[:2], n, c)[:, :-1].argmax(-1)
    target = expanded[:, 1:]
    valid = target != IGNORE_INDEX
    correct = ((predicted == target) & valid).sum(dim=(0, 1))
    return correct, valid.sum(dim=(0, 1))


# --- the family ---------------------------------------------------------------------------------
class HiggsAudioV2Family(ModelFamily):
    """Higgs Audio v2 (3B dual-FFN Llama, transformers' native ``higgs_audio_v2`` classes)."""

    name = "higgs-audio-v2"
    title = "Higgs Audio v2"
    model_types = ("higgs_audio_v2",)
    default_lora_targets = DEFAULT_LORA_TARGETS
    head_modules = ("audio_lm_head",)
    default_temperature = 0.3  # the Higgs Audio v2 examples' setting (with top_k 50, top_p 0.95)
    repetition_aware_sampling = True

    def owns(self, obj: Any) -> bool:
        from transformers import HiggsAudioV2ForConditionalGeneration, HiggsAudioV2Processor

        return isinstance(unwrap(obj), (HiggsAudioV2ForConditionalGeneration, HiggsAudioV2Processor))

    def load(
        self, model_path: str | os.PathLike[str], dtype: Any = None, device: Any = None
    ) -> tuple[Any, Any]:
        from workbench.models.model import load_model_and_processor

        return load_model_and_processor(model_path, dtype=dtype, device=device)

    def load_processor(self, model_path: str | os.PathLike[str]) -> Any:
        from workbench.models.model import load_processor, local_model_dir

        return load_processor(local_model_dir(model_path))

    def parameter_count(self, model_path: str | os.PathLike[str]) -> int | None:
        from transformers import AutoConfig, HiggsAudioV2ForConditionalGeneration

        from workbench.models.folder import resolve_model_path

        config = AutoConfig.from_pretrained(resolve_model_path(model_path), local_files_only=True)
        with torch.device("meta"):
            return sum(p.numel() for p in HiggsAudioV2ForConditionalGeneration(config).parameters())

    def context_length(self, config: Any) -> int | None:
        value = config.get("max_position_embeddings") if isinstance(config, Mapping) else None
        if isinstance(config, Mapping):
            value = value or (config.get("text_config") or {}).get("max_position_embeddings")
        else:
            value = getattr(config, "max_position_embeddings", None)
        return int(value) if value else None

    def encode_sample(
        self, sample: Any, processor: Any, codes_cache: Any, max_length: int | None = None
    ) -> dict[str, Any]:
        return encode_sample(sample, processor, codes_cache, max_length)

    def sequence_length(self, sample: Any, processor: Any, codes_cache: Any) -> int:
        return sequence_length(sample, processor, codes_cache)

    def estimated_length(self, sample: Any, processor: Any, seconds: Mapping[str, float]) -> int | None:
        return estimated_length(sample, processor, seconds)

    def generation_inputs(self, context: Any, processor: Any, codes_cache: Any) -> dict[str, Any]:
        return generation_inputs(context, processor, codes_cache)

    # transformers' Higgs Audio v2 generate marks where generation starts with an all-BOC frame, and
    # its processor decodes from there: prompt_rows is not needed.
    def generated_codes(self, processor: Any, audio_ids: Any, prompt_rows: int | None = None) -> Any:
        return generated_codes(processor, audio_ids)

    def decode_generated(self, processor: Any, audio_ids: Any, prompt_rows: int | None = None) -> Any:
        return decode_generated(processor, audio_ids)

    def codebook_hits(self, model: Any, inputs: Mapping[str, Any], logits: Any) -> tuple[Any, Any]:
        return codebook_hits(unwrap(model), inputs, logits)

    def save_merged(self, model: Any, processor: Any, out_dir: str | os.PathLike[str]) -> Path:
        from workbench.models.model import save_merged

        return save_merged(model, processor, out_dir)


HIGGS_AUDIO_V2 = HiggsAudioV2Family()
