"""Source formats. Each module has ``NAME``, ``detect(record) -> bool`` and
``convert(record, ctx) -> Sample``; formats that can serve as references for other samples of
the same speaker also have ``utterance(record, ctx)`` (used in a first pass).

Detection order matters: more specific formats first (``mixed`` before ``chatml``).
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from . import audiofolder, chatml, higgs_trainer, ljspeech, manifest, mixed, paired, sharegpt
from .base import ConvertContext, RecordError, ReferencePool, Utterance

DETECTION_ORDER: tuple[ModuleType, ...] = (
    mixed, chatml, paired, sharegpt, higgs_trainer, manifest, audiofolder, ljspeech
)  # fmt: skip
FORMATS: dict[str, ModuleType] = {m.NAME: m for m in DETECTION_ORDER}
FORMAT_NAMES: tuple[str, ...] = tuple(FORMATS)


def detect(record: dict[str, Any]) -> str | None:
    """The name of the first format that claims ``record``, or None."""
    for module in DETECTION_ORDER:
        if module.detect(record):
            return module.NAME
    return None


__all__ = ["ConvertContext", "RecordError", "ReferencePool", "Utterance", "FORMATS", "FORMAT_NAMES", "detect"]
