"""The community Higgs Audio trainer's folder layout.

A dataset folder with ``metadata.json`` listing ``{"audio_file", "transcript_file",
"audio_id"?, "speaker"?...}`` entries (as a list, or under ``"samples"``), next to the audio
and ``.txt`` transcript files. Entries may carry the transcript inline as ``"transcript"``.
"""

from __future__ import annotations

import os
from typing import Any

from ..sample import Sample
from .base import (
    ConvertContext,
    RecordError,
    Utterance,
    reference_candidate,
    single_utterance_sample,
    speaker_of,
)

NAME = "higgs-trainer"


def detect(record: dict[str, Any]) -> bool:
    return "audio_file" in record and ("transcript_file" in record or "transcript" in record)


def _id(record: dict[str, Any], ctx: ConvertContext) -> str:
    for key in ("audio_id", "id"):
        if record.get(key) not in (None, ""):
            return str(record[key]).strip()
    return ctx.default_id()


def _transcript(record: dict[str, Any], ctx: ConvertContext) -> str:
    if isinstance(record.get("transcript"), str):
        return record["transcript"].strip()
    name = record.get("transcript_file")
    if not isinstance(name, str) or not name.strip():
        raise RecordError(
            "BAD_FIELD", f"field 'transcript_file' should be a path, got {name!r}", "transcript_file"
        )
    path = name if os.path.isabs(name) else os.path.join(ctx.base_dir, name)
    try:
        with open(path, encoding="utf-8-sig") as fh:
            return fh.read().strip()
    except FileNotFoundError:
        raise RecordError(
            "BAD_FIELD",
            f"transcript file not found: {os.path.normpath(path)}",
            "transcript_file",
            hint="Put the .txt transcript next to the audio, or fix transcript_file.",
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RecordError(
            "BAD_FIELD", f"cannot read transcript file {path}: {exc}", "transcript_file"
        ) from None


def utterance(record: dict[str, Any], ctx: ConvertContext) -> tuple[str, Utterance] | None:
    """The record as a reference candidate (first pass), or None when it cannot be one."""
    return reference_candidate(
        ctx,
        speaker_of(record),
        lambda: (
            ctx.resolve(record.get("audio_file"), "audio_file"),
            _transcript(record, ctx),
            _id(record, ctx),
        ),
    )


def convert(record: dict[str, Any], ctx: ConvertContext) -> Sample:
    audio = ctx.resolve(record.get("audio_file"), "audio_file")
    return single_utterance_sample(
        _id(record, ctx), audio, _transcript(record, ctx), speaker_of(record), ctx, NAME
    )
