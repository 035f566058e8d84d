"""A model's context for validation: how many tokens each sample will take, before any encoding.

:func:`length_check` gives the validator its TOO_LONG_FOR_CONTEXT rule for one model: the token
count that the model's family estimates from a sample's text and audio durations with the model's
processor, against the model's context; and NOT_IN_MODEL_PROMPT notes for what the family's prompt
leaves out of a sample (Higgs TTS 3: system and scene text, all references but the last). Importing this module loads
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
    from workbench.models.families import detect_family
    from workbench.models.model import local_model_dir

    family = detect_family(model)
    folder = local_model_dir(model)  # an original-layout checkpoint: its conversion
    processor = family.load_processor(folder)
    config = json.loads((folder / "config.json").read_text())
    limit = max_tokens or family.context_length(config)
    if not limit:
        raise ValueError(
            f"{model}: its config names no context length (max_position_embeddings): pass max_tokens"
        )

    def tokens(sample: Sample, seconds: Mapping[str, float]) -> int | None:
        return family.estimated_length(sample, processor, seconds)

    return LengthCheck(tokens, int(limit), str(model), notes=family.sample_notes)
