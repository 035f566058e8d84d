"""Paired voice-cloning records: ``{"reference_audio", "reference_text", "target_text", "target_audio"?}``.

Without ``target_audio`` the record is a prompt (evaluation only).
"""

from __future__ import annotations

from typing import Any

from ..sample import Sample
from .base import ConvertContext, speaker_of, text_field, tts_sample

NAME = "paired"
_KEYS = ("reference_audio", "reference_text", "target_text")


def detect(record: dict[str, Any]) -> bool:
    return "reference_audio" in record and ("target_text" in record or "target_audio" in record)


def convert(record: dict[str, Any], ctx: ConvertContext) -> Sample:
    ref_audio = ctx.resolve(record.get("reference_audio"), "reference_audio")
    ref_text = text_field(record, "reference_text")
    target_text = text_field(record, "target_text")
    target = record.get("target_audio")
    target_audio = ctx.resolve(target, "target_audio") if target not in (None, "") else None
    sample_id = str(record["id"]).strip() if record.get("id") not in (None, "") else ctx.default_id()
    return tts_sample(
        sample_id=sample_id,
        target_text=target_text,
        target_audio=target_audio,
        references=[(ref_audio, ref_text or "")],
        speaker=speaker_of(record),
        misc=ctx.misc(NAME),
        system_prompt=ctx.system_prompt,
        scene=record.get("scene") if isinstance(record.get("scene"), str) else None,
    )
