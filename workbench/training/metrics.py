"""Training-time metrics: per-codebook top-1 accuracy of the audio head on target rows (as the family counts it)."""

from __future__ import annotations

from typing import Any

import torch


def codebook_hits(
    model: torch.nn.Module, inputs: dict[str, Any], logits: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Correct and total next-row predictions per codebook, on supervised entries only.

    Args:
        model: the (possibly wrapped) model of either family.
        inputs: the batch (``input_ids`` (B, L), ``audio_input_ids_mask`` (B, F), ``audio_labels`` (B, F, N)).
        logits: the forward pass's ``logits``.

    Returns:
        ``(correct, total)``: LongTensors of shape ``(N,)``.
    """
    from workbench.models.families import family_for

    return family_for(model).codebook_hits(model, inputs, logits)
