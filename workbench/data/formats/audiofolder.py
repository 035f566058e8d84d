"""Folder + metadata tables: the Hugging Face AudioFolder layout and plain ``audio,text`` tables.

A folder holding ``metadata.csv`` / ``metadata.jsonl`` (or any CSV/TSV/JSONL file) whose rows name
an audio file and its transcript::

    file_name,transcription,speaker_id
    clips/0001.wav,Hello there.,anna

The audio column is the first of :data:`AUDIO_KEYS` a row has (a Hugging Face ``datasets``
export's ``{"path": ...}`` audio dict works too), the transcript the first of :data:`TEXT_KEYS`;
relative paths are relative to the table's folder. :mod:`workbench.data.readers` also reads a plain
folder of clips with sidecar transcripts (``clip.wav`` + ``clip.txt``) as records of this format. A row without an ``id`` is named after its
audio path as written, without the extension (``clips/0001``). The audio is the target; a
same-speaker reference is chosen as for manifests.
"""

from __future__ import annotations

import os
import re
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

NAME = "audiofolder"
AUDIO_KEYS = (
    "file_name",
    "audio",
    "audio_path",
    "path",
    "wav",
    "wav_path",
    "filepath",
    "file_path",
    "filename",
    "file",
)
TEXT_KEYS = ("normalized_text", "text", "transcription", "transcript", "sentence")  # spoken form first
_OTHER_FORMATS = ("messages", "conversations", "audio_filepath", "reference_audio")


def _audio_key(record: dict[str, Any]) -> str | None:
    return next((k for k in AUDIO_KEYS if k in record), None)


def detect(record: dict[str, Any]) -> bool:
    if any(k in record for k in _OTHER_FORMATS):
        return False
    return _audio_key(record) is not None and any(k in record for k in TEXT_KEYS)


def _audio(record: dict[str, Any], ctx: ConvertContext) -> str:
    key = _audio_key(record)
    if key is None:
        raise RecordError(
            "BAD_FIELD", f"no audio column: expected one of {', '.join(AUDIO_KEYS)}", AUDIO_KEYS[0]
        )
    value = record[key]
    if isinstance(value, dict):  # a datasets export: {"path": ..., "array"?: ..., "sampling_rate"?: ...}
        value = value.get("path")
    return ctx.resolve(value, key)


def _text(record: dict[str, Any]) -> str:
    for key in TEXT_KEYS:
        text = text_field(record, key, required=False)
        if text:
            return text
    if record.get("missing_transcript"):  # a clip of a plain audio folder (see workbench.data.readers)
        raise RecordError(
            "BAD_FIELD",
            f"no transcript file next to the clip (looked for {record['missing_transcript']})",
            "text",
        )
    present = [k for k in TEXT_KEYS if k in record]
    raise RecordError(
        "BAD_FIELD",
        f"the transcript ({', '.join(present) or 'none of ' + ', '.join(TEXT_KEYS)}) is empty",
        present[0] if present else TEXT_KEYS[1],
    )


def _sample_id(record: dict[str, Any], ctx: ConvertContext) -> str:
    own = record_id(record)
    if own:
        return own
    value = record.get(_audio_key(record) or "")
    if isinstance(value, dict):
        value = value.get("path")
    if isinstance(value, str) and value.strip():
        stem = os.path.splitext(value.strip().replace("\\", "/"))[0]
        return re.sub(r"^(\./|/)+", "", stem) or ctx.default_id()
    return ctx.default_id()


def utterance(record: dict[str, Any], ctx: ConvertContext) -> tuple[str, Utterance] | None:
    """The row as a reference candidate (first pass), or None when it cannot be one."""
    return reference_candidate(
        ctx,
        speaker_of(record),
        lambda: (_audio(record, ctx), _text(record), _sample_id(record, ctx)),
    )


def convert(record: dict[str, Any], ctx: ConvertContext) -> Sample:
    audio = _audio(record, ctx)
    return single_utterance_sample(
        _sample_id(record, ctx), audio, _text(record), speaker_of(record), ctx, NAME
    )
