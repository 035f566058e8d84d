"""Wrapping a model with PEFT adapters (training, evaluation, generation, export) without transformers' v6 notices."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager

# PEFT (0.21) asks every model it wraps for ``is_gradient_checkpointing``, the name transformers v6
# removes (``is_activation_checkpointing`` is the one it keeps); the answer is the same, so the
# FutureWarning it draws on every wrap says nothing about the run.
PEFT_CHECKPOINTING_PROBE = r"`is_gradient_checkpointing` is deprecated"


@contextmanager
def peft_wrapping() -> Iterator[None]:
    """A block that wraps a model with PEFT (``get_peft_model``, ``PeftModel.from_pretrained``).

    Only PEFT's probe of the retired name is left unsaid; any other warning shows as usual.

    Examples:
        >>> with peft_wrapping():  # doctest: +SKIP
        ...     model = get_peft_model(model, LoraConfig(r=16, target_modules=["q_proj"]))
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=PEFT_CHECKPOINTING_PROBE, category=FutureWarning)
        yield
