"""Batches from canonical samples and cached audio codes, built as inference builds them.

Each sample becomes its model family's sequence (:mod:`workbench.models.higgs_audio_v2`,
:mod:`workbench.models.higgs_tts3`): text tokens with one placeholder per audio row, the audio
rows' codes, and labels on target audio and its end only. This module pads those into batches
(the same keys for both families), refuses batches with nothing to learn, and orders samples by
length:

- a batch left-pads text with the pad token and right-pads audio rows with the stream-eos id,
  with ``audio_input_ids_mask`` marking real rows;
- :func:`sequence_length` gives a sample's token count up front (from cached code lengths, no
  tokenization of audio), :func:`length_grouped_sampler` wraps transformers'
  ``LengthGroupedSampler`` with a seed, and :func:`padding_fraction` measures what it saves.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from workbench.data.contract import PROMPT, SampleContractError, check_sample
from workbench.data.sample import Sample
from workbench.models.families import family_for
from workbench.models.family import SequenceTooLongError
from workbench.models.higgs_audio_v2 import IGNORE_INDEX

if TYPE_CHECKING:
    from workbench.training.codes import CodesCache

log = logging.getLogger(__name__)

MODEL_INPUT_KEYS = ("input_ids", "attention_mask", "audio_input_ids", "audio_input_ids_mask", "audio_labels")


class NoSupervisedTokensError(ValueError):
    """A batch in which every audio label is masked (nothing to learn from)."""


def encode_sample(
    sample: Sample, processor: Any, codes_cache: CodesCache, max_length: int | None = None
) -> dict[str, Any]:
    """Per-sample tensors of one canonical sample (no padding), as the processor's model family builds them.

    Returns:
        A dict with

        - ``input_ids``: LongTensor ``(L,)``, text with one placeholder per audio frame;
        - ``audio_input_ids``: LongTensor ``(F, N)``, every audio segment's delayed codes;
        - ``audio_labels``: LongTensor ``(F, N)``, ``-100`` except target codes and their end;
        - ``num_target_tokens``: int, label entries that are not ``-100``;
        - ``length``: int, ``L`` (total tokens, for length grouping);
        - ``sample_id``: str.

    Raises:
        ValueError: A malformed sample, or codes with the wrong number of codebooks.
        SequenceTooLongError: ``L > max_length``.
    """
    return family_for(processor).encode_sample(sample, processor, codes_cache, max_length)


def sequence_length(sample: Sample, processor: Any, codes_cache: CodesCache) -> int:
    """Token count of a sample, as :func:`encode_sample` would build it, without building it.

    Reads each clip's frame count from the cached ``.npy`` header. Use it at validation time to find
    samples over ``max_length`` before training starts.
    """
    return family_for(processor).sequence_length(sample, processor, codes_cache)


def estimated_length(sample: Sample, processor: Any, seconds: Mapping[str, float]) -> int | None:
    """:func:`sequence_length` from audio durations instead of codes (no encoding; for validation).

    Returns:
        The estimated length of ``input_ids``, or None when a clip's duration is unknown.
    """
    return family_for(processor).estimated_length(sample, processor, seconds)


def sequence_lengths(samples: Sequence[Sample], processor: Any, codes_cache: CodesCache) -> list[int]:
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
        processor: The model's processor (either family's: tokenizer, audio tokenizer, stream ids).
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
        processor: Any,
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
        self.num_codebooks = int(processor.audio_tokenizer.config.num_quantizers)
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
