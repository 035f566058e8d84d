"""A tiny random model of either family, by name: the stacks the tests and the CPU demo run on."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from workbench.demo.tiny_higgs_audio_v2 import make_tiny_higgs_audio_v2
from workbench.demo.tiny_higgs_tts3 import make_tiny_tts3
from workbench.models.families import FAMILIES, family_named

TINY_BUILDERS: dict[str, Callable[..., Path]] = {
    "higgs-audio-v2": make_tiny_higgs_audio_v2,
    "higgs-tts-3": make_tiny_tts3,
}


def make_tiny_model(
    out_dir: str | os.PathLike[str], seed: int = 0, overwrite: bool = False, *, family: str = "higgs-audio-v2"
) -> Path:
    """Build and save a tiny random, complete model stack of ``family`` (tests, the CPU demo).

    Args:
        out_dir: Destination folder (built in a temporary sibling, then renamed).
        seed: Seeds every weight; the same seed gives bit-identical weights.
        overwrite: Replace an existing folder, only one built here (with the marker) or an empty one.
        family: ``"higgs-audio-v2"`` (:func:`make_tiny_higgs_audio_v2`) or ``"higgs-tts-3"``
            (:func:`make_tiny_tts3`).

    Returns:
        The absolute folder; :func:`workbench.models.load_model_and_processor` loads it.

    Raises:
        ValueError: ``family`` names no model family (the message lists them).
        FileExistsError: ``out_dir`` is not empty and ``overwrite`` is false or it is not a tiny model.

    Examples:
        >>> make_tiny_model("runs/tiny-v3", family="higgs-tts-3")  # doctest: +SKIP
    """
    name = family_named(family).name
    if name not in TINY_BUILDERS:
        known = ", ".join(f.name for f in FAMILIES if f.name in TINY_BUILDERS)
        raise ValueError(f"no tiny model of {name!r} can be built; families with one: {known}")
    return TINY_BUILDERS[name](out_dir, seed=seed, overwrite=overwrite)
