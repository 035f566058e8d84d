"""Mixed-content messages: ``[text, audio, text]`` in one user turn.

``{"messages": [{"role": "user", "content": [ref_text, ref_audio, target_text]},
                {"role": "assistant", "content": [target_text, target_audio] | audio}], "misc": {...}}``

The user turn holds the reference transcript, the reference audio and the target text. When the
assistant turn or ``misc`` carries the target transcript, it wins over the user's last text,
which often carries an instruction prefix ("Please generate speech for given text ...: ").
An assistant audio with an empty ``audio_url`` counts as absent (the sample is then a prompt).
"""

from __future__ import annotations

from typing import Any

from ..sample import Sample
from .base import ConvertContext, RecordError, speaker_of, tts_sample
from .chatml import _role, content_parts, sample_id

NAME = "mixed"
_TARGET_TEXT_KEYS = ("target_text", "target_transcript", "transcript", "text")
_REF_TEXT_KEYS = ("reference_text", "ref_transcript", "reference_transcript", "ref_text")


def detect(record: dict[str, Any]) -> bool:
    messages = record.get("messages")
    if not isinstance(messages, list):
        return False
    for m in messages:
        if isinstance(m, dict) and m.get("role") == "user" and isinstance(m.get("content"), list):
            kinds = {k for k, _ in _safe_parts(m["content"])}
            if {"audio", "text"} <= kinds:
                return True
    return False


def _safe_parts(content: Any) -> list[tuple[str, str | None]]:
    try:
        return content_parts(content, "content")
    except RecordError:
        return []


def _misc_text(misc: dict[str, Any], keys: tuple[str, ...]) -> str | None:
    for key in keys:
        value = misc.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def convert(record: dict[str, Any], ctx: ConvertContext) -> Sample:
    system = None
    user_parts: list[tuple[str, str | None]] = []
    assistant_parts: list[tuple[str, str | None]] = []
    for i, message in enumerate(record["messages"]):
        role = _role(message, i)
        parts = content_parts(message.get("content"), f"messages[{i}].content")
        if role == "system":
            system = " ".join(v for k, v in parts if k == "text" and v) or None
        elif role == "user":
            user_parts.extend(parts)
        elif role == "assistant":
            assistant_parts.extend(parts)

    user_texts = [v.strip() for k, v in user_parts if k == "text" and v and v.strip()]
    user_audio = [(i, v) for i, (k, v) in enumerate(user_parts) if k == "audio" and v]
    if not user_audio:
        raise RecordError("NO_AUDIO", "the user turn holds no reference audio", "messages")
    ref_index, ref_url = user_audio[0]
    ref_text_parts = [v.strip() for k, v in user_parts[:ref_index] if k == "text" and v and v.strip()]
    misc_in = record.get("misc") if isinstance(record.get("misc"), dict) else {}
    ref_text = _misc_text(misc_in, _REF_TEXT_KEYS) or " ".join(ref_text_parts)

    target_text = _misc_text(misc_in, _TARGET_TEXT_KEYS)
    assistant_texts = [v.strip() for k, v in assistant_parts if k == "text" and v and v.strip()]
    if target_text is None and assistant_texts:
        target_text = " ".join(assistant_texts)
    after_ref = [v.strip() for k, v in user_parts[ref_index + 1 :] if k == "text" and v and v.strip()]
    if target_text is None:
        target_text = after_ref[-1] if after_ref else (user_texts[-1] if len(user_texts) > 1 else "")

    target_urls = [v for k, v in assistant_parts if k == "audio" and v]
    target_audio = ctx.resolve(target_urls[-1], "messages[assistant].content") if target_urls else None
    misc = dict(misc_in)
    misc.update(ctx.misc(NAME, instruction=after_ref[-1] if after_ref and after_ref[-1] != target_text else None))
    return tts_sample(
        sample_id=sample_id(record, ctx),
        target_text=target_text,
        target_audio=target_audio,
        references=[(ctx.resolve(ref_url, "messages[user].content"), ref_text)],
        speaker=speaker_of(record),
        misc=misc,
        system_prompt=system or ctx.system_prompt,
    )
