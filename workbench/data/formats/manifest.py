"""NeMo-style manifests: ``{"audio_filepath", "text", "duration"?, "speaker"|"speaker_id"?}``.

The audio is the target. With ``--reference same-speaker`` (default) another utterance of the
same speaker becomes the reference; with no speaker or a single utterance the sample is plain TTS.
"""

from __future__ import annotations

from typing import Any

from ..sample import Sample
from .base import (
    ConvertContext,
    RecordError,
    Utterance,
    record_id,
    reference_candidate,
    single_utterance_sample,
    speaker_of,
    text_field,
)

NAME = "manifest"


def detect(record: dict[str, Any]) -> bool:
    return "audio_filepath" in record and "messages" not in record


def _duration(record: dict[str, Any]) -> float | None:
    value = record.get("duration")
    if value in (None, ""):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise RecordError(
            "BAD_FIELD", f"field 'duration' should be a number of seconds, got {value!r}", "duration"
        ) from None


def utterance(record: dict[str, Any], ctx: ConvertContext) -> tuple[str, Utterance] | None:
    """The record as a reference candidate (first pass), or None when it cannot be one."""
    return reference_candidate(
        ctx,
        speaker_of(record),
        lambda: (
            ctx.resolve(record.get("audio_filepath"), "audio_filepath"),
            text_field(record, "text"),
            record_id(record) or ctx.default_id(),
        ),
    )


def convert(record: dict[str, Any], ctx: ConvertContext) -> Sample:
    audio = ctx.resolve(record.get("audio_filepath"), "audio_filepath")
    text = text_field(record, "text", required=False)
    if text is None:
        raise RecordError("BAD_FIELD", "field 'text' (the transcript of audio_filepath) is missing", "text")
    return single_utterance_sample(
        record_id(record), audio, text, speaker_of(record), ctx, NAME, duration=_duration(record)
    )
