"""A model's context for validation: how many tokens each sample will take, before any encoding.

:func:`length_check` gives the validator its TOO_LONG_FOR_CONTEXT rule for one model: the token
count that :func:`workbench.training.collate.estimated_length` estimates from a sample's text and audio
durations with the model's processor, against the model's context. Importing this module loads
nothing heavy; torch and the processor load when a check is built.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping

from workbench.data.sample import Sample
from workbench.data.validate_rules import LengthCheck


def length_check(model: str | os.PathLike, max_tokens: int | None = None) -> LengthCheck:
    """The context-length rule for ``model``: ``validate(..., length=length_check(model))``.

    Args:
        model: a model folder, cached hub id or original-layout folder. Loads its processor, not
            its weights.
        max_tokens: the context to check against instead of the model's ``max_position_embeddings``
            (e.g. the training's ``max_length``).

    Raises:
        workbench.models.folder.ModelNotFoundError: the model is not available locally.
        ValueError: no ``max_tokens`` and the model's config names no ``max_position_embeddings``.
    """
    from workbench.models.model import load_processor, local_model_dir
    from workbench.training.collate import estimated_length

    folder = local_model_dir(model)
    config = json.loads((folder / "config.json").read_text())
    limit = (
        max_tokens
        or config.get("max_position_embeddings")
        or (config.get("text_config") or {}).get("max_position_embeddings")
    )
    if not limit:
        raise ValueError(f"{folder}/config.json names no max_position_embeddings: pass max_tokens")
    processor = load_processor(folder)

    def tokens(sample: Sample, seconds: Mapping[str, float]) -> int | None:
        return estimated_length(sample, processor, seconds)

    return LengthCheck(tokens, int(limit), str(model))
