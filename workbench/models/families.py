"""Which model family a folder, a model or a processor belongs to, and loading through it.

:func:`detect_family` reads a folder's ``config.json`` (nothing heavy is loaded);
:func:`family_for` recognises a loaded model (plain, PEFT- or DDP-wrapped) or processor. The loaders
here (:func:`load_model_and_processor`, :func:`load_processor`) are what the stages call: each asks
the folder's family to do the work.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

from workbench.models.family import ModelFamily, UnknownModelFamilyError
from workbench.models.higgs_audio_v2 import HIGGS_AUDIO_V2
from workbench.models.higgs_tts3.family import HIGGS_TTS_3

FAMILIES: tuple[ModelFamily, ...] = (HIGGS_AUDIO_V2, HIGGS_TTS_3)
RANDOM_FULL = "random-full"


def family_named(name: str) -> ModelFamily:
    """The family called ``name`` (``higgs-audio-v2`` or ``higgs-tts-3``).

    Raises:
        ValueError: no such family (lists the names).
    """
    for family in FAMILIES:
        if family.name == name:
            return family
    raise ValueError(f"unknown model family {name!r}; expected one of {', '.join(f.name for f in FAMILIES)}")


def family_of_config(config: Mapping[str, Any], where: str = "config.json") -> ModelFamily:
    """The family a ``config.json`` dict belongs to.

    Raises:
        UnknownModelFamilyError: the config names neither family (says what it names).
    """
    for family in FAMILIES:
        if family.matches_config(config):
            return family
    known = ", ".join(f"{t!r} ({f.title})" for f in FAMILIES for t in f.model_types)
    raise UnknownModelFamilyError(
        f"{where}: model_type {config.get('model_type')!r} (architectures {config.get('architectures')}) is "
        f"not a model the workbench trains; expected {known}. Hint: pass a Higgs Audio v2 or Higgs TTS 3 folder."
    )


def detect_family(model_path: str | os.PathLike[str]) -> ModelFamily:
    """The family of a model folder, cached hub id, original-layout checkpoint or ``random-full``.

    Raises:
        ModelNotFoundError: nothing usable exists locally.
        UnknownModelFamilyError: the folder's config names neither family.
    """
    from workbench.models.folder import resolve_model_path
    from workbench.models.original_format import is_original_checkpoint

    if str(model_path) == RANDOM_FULL:
        return HIGGS_AUDIO_V2
    folder = resolve_model_path(model_path)
    if is_original_checkpoint(folder):
        return HIGGS_AUDIO_V2
    config = json.loads((folder / "config.json").read_text())
    return family_of_config(config, str(folder / "config.json"))


def family_for(obj: Any) -> ModelFamily:
    """The family of a loaded model (plain, PEFT- or DDP-wrapped) or processor.

    Raises:
        TypeError: ``obj`` belongs to no family.
    """
    for family in FAMILIES:
        if family.owns(obj):
            return family
    raise TypeError(f"{type(obj).__name__} is neither a Higgs Audio v2 nor a Higgs TTS 3 model or processor")


def load_model_and_processor(
    model_path: str | os.PathLike[str], dtype: Any = None, device: Any = None
) -> tuple[Any, Any]:
    """Load a model of either family and its processor, offline.

    Args:
        model_path: A local folder, a cached hub id, an original-layout Higgs Audio v2 checkpoint, or
            ``"random-full"`` (full-size Higgs Audio v2 with random weights, in memory).
        dtype: Weight dtype of the language model (e.g. ``torch.bfloat16``); None: the default.
        device: Where to put the model and the audio tokenizer; None leaves them on the CPU.

    Returns:
        ``(model, processor)``, the model in eval mode.

    Raises:
        ModelNotFoundError: the model or a part of it is missing locally.
        UnknownModelFamilyError: the folder is neither Higgs Audio v2 nor Higgs TTS 3.
    """
    family = detect_family(model_path)
    return family.load(model_path, dtype=dtype, device=device)


def load_processor(model_path: str | os.PathLike[str]) -> Any:
    """The processor of a model folder of either family (no weights are loaded)."""
    return detect_family(model_path).load_processor(model_path)
