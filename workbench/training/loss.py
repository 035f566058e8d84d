"""Loss normalisation over a whole optimizer step: every supervised audio code weighs the same.

``HiggsAudioV2ForConditionalGeneration`` computes its loss from ``audio_labels`` (B, F, N) as the sum
over the N codebooks of each codebook's next-frame cross entropy, averaged over that codebook's
supervised entries (labels other than ``-100``; text ``labels`` add a text loss only with a text head,
which the workbench never uses). Given ``num_items_in_batch``, the model's loss function sums
instead and divides every codebook's sum by that number.

The Trainer counts ``num_items_in_batch`` over the accumulation window and the ranks only for a key
named ``labels``; without it each micro-batch's loss is its own mean, so a micro-batch of short
clips weighs as much as one of long clips. :func:`supervised_entries` gives the count for
``audio_labels``, :func:`supervised_per_codebook` turns the window's total into the divisor that
keeps the model's scale: every target segment of the collator supervises the same frames (its codes
and first stream-eos) in every codebook, so the count per codebook is the total over N, and one
micro-batch alone gives exactly the model's own loss (sum over codebooks of per-codebook means).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

IGNORE_INDEX = -100


def supervised_entries(batches: Sequence[Mapping[str, Any]]) -> tuple[torch.Tensor, int] | None:
    """Supervised audio-label entries of some batches, as the model's loss counts them.

    Only real frames count (``audio_input_ids_mask``): the model places ``audio_labels`` of those
    frames on the audio placeholders and ignores the rest.

    Args:
        batches: collated batches with ``audio_labels`` (B, F, N) and ``audio_input_ids_mask`` (B, F).

    Returns:
        ``(entries, num_codebooks)``: a LongTensor scalar, summed over the batches, and N; None when
        no batch has ``audio_labels``.
    """
    entries, codebooks = None, None
    for batch in batches:
        labels = batch.get("audio_labels") if isinstance(batch, Mapping) else None
        if labels is None:
            continue
        mask = batch.get("audio_input_ids_mask")
        real = labels[mask.bool()] if mask is not None else labels  # (frames, N)
        count = real.ne(IGNORE_INDEX).sum()
        entries = count if entries is None else entries + count.to(entries.device)
        codebooks = int(labels.shape[-1])
    return None if entries is None else (entries, codebooks)


def supervised_per_codebook(entries: torch.Tensor, num_codebooks: int) -> torch.Tensor:
    """The divisor of every codebook's summed cross entropy: supervised entries per codebook.

    Args:
        entries: supervised entries over the accumulation window (and ranks), a scalar tensor.
        num_codebooks: N.

    Returns:
        A float scalar tensor on ``entries``' device (``entries / N``; exact, since the collator
        supervises the same frames in every codebook).
    """
    return entries.to(torch.float32) / num_codebooks
