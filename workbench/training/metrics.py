"""Training-time metrics: per-codebook top-1 accuracy of the audio head on target frames."""

from __future__ import annotations

from typing import Any

import torch

IGNORE_INDEX = -100


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The plain ``HiggsAudioV2ForConditionalGeneration`` under DDP and PEFT wrappers."""
    while hasattr(model, "module"):
        model = model.module
    if hasattr(model, "get_base_model"):
        model = model.get_base_model()
    return model


def codebook_hits(
    model: torch.nn.Module, inputs: dict[str, Any], logits: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Correct and total next-frame predictions per codebook, on supervised frames only.

    The model predicts the codes at position ``t + 1`` from position ``t`` (as in its loss).

    Args:
        model: the (possibly wrapped) Higgs Audio v2 model.
        inputs: the batch (``input_ids`` (B, L), ``audio_input_ids_mask`` (B, F), ``audio_labels`` (B, F, N)).
        logits: ``(B, L, N * C)`` from the forward pass.

    Returns:
        ``(correct, total)``: LongTensors of shape ``(N,)``.
    """
    base = unwrap(model)
    n, c = base.config.num_codebooks, base.config.codebook_size
    input_ids, frame_mask, labels = (
        inputs["input_ids"],
        inputs["audio_input_ids_mask"],
        inputs["audio_labels"],
    )
    expanded = input_ids.new_full((*input_ids.shape[:2], n), IGNORE_INDEX)
    placeholders = base.model.get_placeholder_mask(input_ids, None, frame_mask)
    expanded[placeholders] = labels[frame_mask.bool()]
    predicted = logits.detach().reshape(*logits.shape[:2], n, c)[:, :-1].argmax(-1)
    target = expanded[:, 1:]
    valid = target != IGNORE_INDEX
    correct = ((predicted == target) & valid).sum(dim=(0, 1))
    return correct, valid.sum(dim=(0, 1))
