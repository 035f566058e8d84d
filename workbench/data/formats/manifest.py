"""NeMo-style manifests: ``{"audio_filepath", "text", "duration"?, "offset"?, "speaker"|"speaker_id"?}``.

A record with an ``offset`` is a slice of its file (``duration`` seconds from ``offset``, to the end
without one), cut into the output's ``.clips`` folder; ``duration`` alone is the file's length.

The audio is the target. With ``--reference same-speaker`` (default) another utterance of the
same speaker becomes the reference; with no speaker or a single utterance the sample is plain TTS.
"""

from __future__ import annotations

from typing import Any

from ..sample import Sample
from .base import (
    AudioPart,
    ConvertContext,
    RecordError,
    Utterance,
    record_id,
    reference_candidate,
    seconds_field,
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


def _audio(record: dict[str, Any], ctx: ConvertContext) -> str:
    """The record's audio file; a slice (``offset`` > 0) is cut into the output's clips folder."""
    offset = seconds_field(record.get("offset"), "offset")
    if not offset:
        return ctx.resolve(record.get("audio_filepath"), "audio_filepath")
    url = record.get("audio_filepath")
    if not isinstance(url, str) or not url.strip():
        return ctx.resolve(url, "audio_filepath")  # the usual BAD_FIELD
    return ctx.audio_path(AudioPart(url=url, offset=offset, duration=_duration(record)), "audio_filepath")


def utterance(record: dict[str, Any], ctx: ConvertContext) -> tuple[str, Utterance] | None:
    """The record as a reference candidate (first pass), or None when it cannot be one."""
    return reference_candidate(
        ctx,
        speaker_of(record),
        lambda: (
            _audio(record, ctx),
            text_field(record, "text"),
            record_id(record) or ctx.default_id(),
        ),
    )


def convert(record: dict[str, Any], ctx: ConvertContext) -> Sample:
    audio = _audio(record, ctx)
    text = text_field(record, "text", required=False)
    if text is None:
        raise RecordError("BAD_FIELD", "field 'text' (the transcript of audio_filepath) is missing", "text")
    return single_utterance_sample(
        record_id(record), audio, text, speaker_of(record), ctx, NAME, duration=_duration(record)
    )
