"""LJSpeech: ``metadata.csv`` rows ``id|text|normalized text`` with audio in ``wavs/<id>.wav``.

The reader yields rows as ``{"id", "text", "normalized_text"}`` records tagged with this
format. The normalized text is the target text when present. The dataset is one speaker (named
after its folder), so a same-speaker reference is chosen as for manifests.
"""

from __future__ import annotations

import os
from typing import Any

from ..sample import Sample
from .base import ConvertContext, RecordError, Utterance, reference_candidate, single_utterance_sample

NAME = "ljspeech"


def detect(record: dict[str, Any]) -> bool:
    return False  # only ever chosen by the reader, which knows the file's layout


def _fields(record: dict[str, Any], ctx: ConvertContext) -> tuple[str, str, str, str]:
    rid = str(record.get("id") or "").strip()
    if not rid:
        raise RecordError("BAD_FIELD", "the row has no id (first column)", "id")
    text = (record.get("normalized_text") or record.get("text") or "").strip()
    audio = ctx.resolve(os.path.join("wavs", rid + ".wav"), "id")
    speaker = record.get("speaker") or os.path.basename(os.path.normpath(ctx.base_dir)) or "ljspeech"
    return rid, audio, text, speaker


def utterance(record: dict[str, Any], ctx: ConvertContext) -> tuple[str, Utterance] | None:
    """The row as a reference candidate (first pass), or None when it cannot be one."""
    try:
        rid, audio, text, speaker = _fields(record, ctx)
    except RecordError:
        return None
    return reference_candidate(ctx, speaker, lambda: (audio, text, rid))


def convert(record: dict[str, Any], ctx: ConvertContext) -> Sample:
    rid, audio, text, speaker = _fields(record, ctx)
    return single_utterance_sample(rid, audio, text, speaker, ctx, NAME)
