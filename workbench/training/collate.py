"""Training sequences from canonical samples and cached audio codes, built as inference builds them.

A canonical :class:`~workbench.data.sample.Sample` becomes exactly the tensors that
``HiggsAudioV2Processor.apply_chat_template(conversation, tokenize=True, return_dict=True,
return_tensors="pt")`` produces for the same conversation, except that the audio codes come from
the :class:`~workbench.training.codes.CodesCache` instead of running the audio tokenizer:

1. the processor's own chat template renders the conversation (system, optional scene, user text,
   assistant audio as ``<|audio_out_bos|><|AUDIO_OUT|><|audio_eos|>``);
2. each audio segment's codes ``(N, T)`` get a stream-bos and a stream-eos column and the
   processor's ``build_delay_pattern`` (codebook ``k`` shifted right by ``k``):
   ``(T + 2 + N - 1, N)`` frames;
3. each ``<|AUDIO_OUT|>`` expands to one placeholder per frame with the processor's
   ``get_audio_tokens`` and the text is tokenized by the processor's tokenizer;
4. a batch left-pads text with the pad token and right-pads audio frames with the stream-eos id,
   with ``audio_input_ids_mask`` marking real frames.

Labels differ from the processor's on purpose. The processor labels every audio segment
(references included) and masks every stream-eos, so a model trained on them never learns to stop.
Here, as in the original Boson collator, only assistant audio at or after ``start_index`` is a
target, labelled ``delay([-100, codes, eos])`` with ``-100`` as the delay fill: each codebook's
codes plus its first stream-eos. Reference audio and all text are context (``-100``).

Length grouping: :func:`sequence_length` gives a sample's token count up front (from cached code
lengths, no tokenization of audio), :func:`length_grouped_sampler` wraps transformers'
``LengthGroupedSampler`` with a seed, and :func:`padding_fraction` measures what it saves.
"""

from __future__ import annotations

import copy
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from workbench.data.contract import PROMPT, SampleContractError, check_sample, require_usable
from workbench.data.sample import Message, Sample

if TYPE_CHECKING:
    from transformers import HiggsAudioV2Processor

    from workbench.training.codes import CodesCache

log = logging.getLogger(__name__)

IGNORE_INDEX = -100
MODEL_INPUT_KEYS = ("input_ids", "attention_mask", "audio_input_ids", "audio_input_ids_mask", "audio_labels")


class NoSupervisedTokensError(ValueError):
    """A batch in which every audio label is masked (nothing to learn from)."""


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


def render_text(sample: Sample, processor: HiggsAudioV2Processor) -> str:
    """The sample rendered by the processor's chat template (one ``<|AUDIO_OUT|>`` per audio)."""
    return processor.apply_chat_template(sample_to_conversation(sample), tokenize=False)


def _num_codebooks(processor: HiggsAudioV2Processor) -> int:
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
    codes: torch.Tensor, processor: HiggsAudioV2Processor, is_target: bool
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


def _tokenize(processor: HiggsAudioV2Processor, text: str) -> list[int]:
    tokenizer = processor.tokenizer
    # As apply_chat_template: a rendered prompt that starts with bos gets no second bos.
    add_special = not (tokenizer.bos_token is not None and text.startswith(tokenizer.bos_token))
    return tokenizer(text, add_special_tokens=add_special)["input_ids"]


def encode_sample(
    sample: Sample,
    processor: HiggsAudioV2Processor,
    codes_cache: CodesCache,
    max_length: int | None = None,
) -> dict[str, Any]:
    """Per-sample tensors of one canonical sample (no padding).

    Args:
        sample: A canonical sample.
        processor: The model's ``HiggsAudioV2Processor`` (template, tokenizer, ids).
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


def sequence_length(sample: Sample, processor: HiggsAudioV2Processor, codes_cache: CodesCache) -> int:
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


def estimated_length(
    sample: Sample, processor: HiggsAudioV2Processor, seconds: Mapping[str, float]
) -> int | None:
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


def sequence_lengths(
    samples: Sequence[Sample], processor: HiggsAudioV2Processor, codes_cache: CodesCache
) -> list[int]:
    """:func:`sequence_length` of every sample (for ``LengthGroupedSampler`` and max-length checks)."""
    lengths = [sequence_length(sample, processor, codes_cache) for sample in samples]
    codes_cache.flush()  # keep the content hashes computed on the way for the next run
    return lengths


@dataclass(frozen=True)
class _CodecConfig:
    """Stands in for the audio tokenizer in a pickled processor: only its config is read."""

    config: Any


class HiggsAudioCollator:
    """Collate canonical samples (or :func:`encode_sample` dicts) into a model batch.

    The batch is what ``HiggsAudioV2ForConditionalGeneration.forward`` takes and what the
    processor gives for the same conversations (B samples, L = longest text, F = most audio
    frames, N codebooks):

    - ``input_ids``: LongTensor ``(B, L)``, left-padded with the tokenizer's pad id;
    - ``attention_mask``: LongTensor ``(B, L)``, 0 on padding;
    - ``audio_input_ids``: LongTensor ``(B, F, N)``, right-padded with the stream-eos id;
    - ``audio_input_ids_mask``: BoolTensor ``(B, F)``, True on real frames;
    - ``audio_labels``: LongTensor ``(B, F, N)``, ``-100`` except target audio.

    The audio keys are left out when no sample has audio (as the processor does).

    Args:
        processor: The model's ``HiggsAudioV2Processor``.
        codes_cache: Cache built with the same audio tokenizer as ``processor``'s.
        max_length: Longest allowed sample in tokens (None: no limit).
        require_targets: Raise :class:`NoSupervisedTokensError` for batches without targets
            (set False for evaluating prompts).
        pad_to_multiple_of: Pad ``L`` up to a multiple (e.g. 8 for tensor cores); None keeps the
            processor's exact shapes.

    Raises:
        ValueError: ``codes_cache`` was built with a different audio tokenizer.
    """

    def __init__(
        self,
        processor: HiggsAudioV2Processor,
        codes_cache: CodesCache,
        max_length: int | None = None,
        require_targets: bool = True,
        pad_to_multiple_of: int | None = None,
    ) -> None:
        from workbench.training.codes import audio_tokenizer_fingerprint

        if codes_cache.audio_tokenizer is not processor.audio_tokenizer:
            expected = audio_tokenizer_fingerprint(processor.audio_tokenizer)
            if expected != codes_cache.fingerprint:
                raise ValueError(
                    f"the codes cache was built with another audio tokenizer (fingerprint "
                    f"{codes_cache.fingerprint[:16]}, expected {expected[:16]} for this processor)"
                )
        self.processor = processor
        self.codes_cache = codes_cache
        self.max_length = max_length
        self.require_targets = require_targets
        self.pad_to_multiple_of = pad_to_multiple_of
        self.num_codebooks = _num_codebooks(processor)
        self.pad_token_id = processor.tokenizer.pad_token_id
        if self.pad_token_id is None:
            raise ValueError("the processor's tokenizer has no pad token")

    def __getstate__(self) -> dict[str, Any]:
        # For spawned data-loader workers: the codec does not pickle and is not needed to collate
        # (codes come from the cache), so the copy's processor keeps only the codec's config.
        processor = copy.copy(self.processor)
        processor.audio_tokenizer = _CodecConfig(self.processor.audio_tokenizer.config)
        return {**self.__dict__, "processor": processor}

    def encode(self, feature: Sample | Mapping[str, Any]) -> Mapping[str, Any]:
        """A feature as per-sample tensors (encodes :class:`Sample` objects).

        The sample contract is the last guard here: an invalid sample, or (when targets are
        required) a prompt, is refused by name before anything is built.
        """
        if isinstance(feature, Sample):
            verdict = check_sample(feature)
            if verdict.kind == PROMPT and self.require_targets:
                raise NoSupervisedTokensError(
                    f"every label is masked for sample {feature.id!r} ({feature.provenance()}): "
                    f"{verdict.describe()}; run `workbench validate` (prompt-only samples belong in the "
                    "prompts file, not the training set)"
                )
            if not verdict.usable:
                raise SampleContractError(feature, verdict)
            return encode_sample(feature, self.processor, self.codes_cache, self.max_length)
        return feature

    def __call__(self, features: Sequence[Sample | Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        """Collate a list of samples or :func:`encode_sample` dicts (see the class docstring).

        Raises:
            SequenceTooLongError: A sample exceeds ``max_length`` (names it).
            NoSupervisedTokensError: Every audio label in the batch is ``-100``.
        """
        if not features:
            raise ValueError("cannot collate an empty list of samples")
        encoded = [self.encode(f) for f in features]
        ids = [f.get("sample_id", f"#{i} of the batch") for i, f in enumerate(encoded)]
        if self.max_length is not None:
            for sample_id, feature in zip(ids, encoded, strict=True):
                if len(feature["input_ids"]) > self.max_length:
                    raise SequenceTooLongError(sample_id, len(feature["input_ids"]), self.max_length)

        batch_size = len(encoded)
        longest = max(len(f["input_ids"]) for f in encoded)
        if self.pad_to_multiple_of:
            longest = -(-longest // self.pad_to_multiple_of) * self.pad_to_multiple_of
        input_ids = torch.full((batch_size, longest), self.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros((batch_size, longest), dtype=torch.long)
        for row, feature in enumerate(encoded):
            tokens = torch.as_tensor(feature["input_ids"], dtype=torch.long)
            if len(tokens):
                input_ids[row, -len(tokens) :] = tokens
                attention_mask[row, -len(tokens) :] = 1
        batch: dict[str, torch.Tensor] = {"input_ids": input_ids, "attention_mask": attention_mask}

        frames = [len(f["audio_input_ids"]) for f in encoded]
        supervised = 0
        if max(frames) > 0:
            shape = (batch_size, max(frames), self.num_codebooks)
            audio_input_ids = torch.full(shape, self.processor.audio_stream_eos_id, dtype=torch.long)
            audio_labels = torch.full(shape, IGNORE_INDEX, dtype=torch.long)
            for row, feature in enumerate(encoded):
                audio_input_ids[row, : frames[row]] = torch.as_tensor(feature["audio_input_ids"])
                audio_labels[row, : frames[row]] = torch.as_tensor(feature["audio_labels"])
            batch["audio_input_ids"] = audio_input_ids
            batch["audio_input_ids_mask"] = torch.arange(max(frames))[None, :] < torch.tensor(frames)[:, None]
            batch["audio_labels"] = audio_labels
            supervised = int((audio_labels != IGNORE_INDEX).sum())
        if self.require_targets and supervised == 0:
            raise NoSupervisedTokensError(
                f"every label is masked: the batch's samples ({', '.join(map(str, ids))}) have no target "
                "audio at or after start_index; run `workbench validate` (prompt-only samples belong in "
                "the prompts file, not the training set)"
            )
        return batch


# --------------------------------------------------------------------------- length grouping


def length_grouped_indices(lengths: Sequence[int], batch_size: int, seed: int = 0) -> list[int]:
    """transformers' length-grouped order (random mega-batches, each sorted by length), seeded.

    Args:
        lengths: Token count per sample (e.g. from :func:`sequence_lengths`).
        batch_size: Samples per batch (per device x gradient accumulation, as the Trainer uses).
        seed: Seed of the random permutation.

    Returns:
        A permutation of ``range(len(lengths))``.
    """
    from transformers.trainer_pt_utils import get_length_grouped_indices

    generator = torch.Generator().manual_seed(seed)
    return get_length_grouped_indices(list(lengths), batch_size, generator=generator)


def length_grouped_sampler(
    lengths: Sequence[int], batch_size: int, seed: int = 0
) -> torch.utils.data.Sampler:
    """A seeded ``transformers.trainer_pt_utils.LengthGroupedSampler`` over precomputed lengths."""
    from transformers.trainer_pt_utils import LengthGroupedSampler

    generator = torch.Generator().manual_seed(seed)
    return LengthGroupedSampler(batch_size, lengths=list(lengths), generator=generator)


def padding_fraction(lengths: Sequence[int], batch_size: int, grouped: bool, seed: int = 0) -> float:
    """Fraction of padded token slots when ``lengths`` are batched in order of one epoch.

    Args:
        lengths: Token count per sample.
        batch_size: Samples per batch.
        grouped: Length-grouped order (:func:`length_grouped_indices`) or a random permutation.
        seed: Seed of the (grouped or random) order.

    Returns:
        ``padded slots / (sum over batches of batch_size_b * longest_b)``, in ``[0, 1)``.
    """
    if not lengths:
        return 0.0
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if grouped:
        order = length_grouped_indices(lengths, batch_size, seed)
    else:
        order = torch.randperm(len(lengths), generator=torch.Generator().manual_seed(seed)).tolist()
    slots = real = 0
    for start in range(0, len(order), batch_size):
        batch = [lengths[i] for i in order[start : start + batch_size]]
        slots += max(batch) * len(batch)
        real += sum(batch)
    return (slots - real) / slots if slots else 0.0


def padding_report(lengths: Sequence[int], batch_size: int, seed: int = 0) -> dict[str, float]:
    """Padding fraction with and without length grouping, logged.

    Returns:
        ``{"grouped": float, "random": float}``.
    """
    report = {
        "grouped": padding_fraction(lengths, batch_size, grouped=True, seed=seed),
        "random": padding_fraction(lengths, batch_size, grouped=False, seed=seed),
    }
    log.info(
        "padding fraction at batch size %d over %d samples: %.1f%% length-grouped, %.1f%% random",
        batch_size,
        len(lengths),
        100 * report["grouped"],
        100 * report["random"],
    )
    return report
