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
    """One user turn mixing text and audio parts, optionally answered by one assistant turn.

    Multi-turn conversations (several user turns, or an explicit ``start_index``) are ChatML:
    its converter moves user audio into assistant turns without merging turns.
    """
    messages = record.get("messages")
    if not isinstance(messages, list) or "start_index" in record:
        return False
    turns = [m for m in messages if not (isinstance(m, dict) and m.get("role") in ("system", "scene"))]
    if not 1 <= len(turns) <= 2 or not all(isinstance(m, dict) for m in turns):
        return False
    user = turns[0]
    if user.get("role") not in ("user", "human") or not isinstance(user.get("content"), list):
        return False
    if len(turns) == 2 and turns[1].get("role") not in ("assistant", "gpt", "model"):
        return False
    kinds = [k for k, _ in _safe_parts(user["content"])]
    if not {"audio", "text"} <= set(kinds):
        return False
    # [text, audio] with no assistant turn reads as "transcript, then its audio": ChatML's job.
    return len(turns) == 2 or kinds[-1] == "text"


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
    scene = None
    user_parts: list[tuple[str, str | None]] = []
    assistant_parts: list[tuple[str, str | None]] = []
    for i, message in enumerate(record["messages"]):
        role = _role(message, i)
        parts = content_parts(message.get("content"), f"messages[{i}].content")
        texts = " ".join(v.strip() for k, v in parts if k == "text" and v and v.strip()) or None
        if role == "system":
            system = texts
        elif role == "scene":
            scene = texts
        elif role == "user":
            user_parts.extend(parts)
        elif role == "assistant":
            assistant_parts.extend(parts)

    # Each user audio is a reference, transcribed by the text(s) right before it; the texts
    # after the last audio hold the target text (often behind an instruction prefix).
    references: list[tuple[str, str]] = []
    pending: list[str] = []
    for k, v in user_parts:
        if k == "text":
            if v and v.strip():
                pending.append(v.strip())
        elif v:  # an empty audio url counts as absent
            references.append((ctx.resolve(v, "messages[user].content"), " ".join(pending)))
            pending = []
    misc_in = record.get("misc") if isinstance(record.get("misc"), dict) else {}
    ref_text = _misc_text(misc_in, _REF_TEXT_KEYS)
    if ref_text is not None and references:
        references[0] = (references[0][0], ref_text)

    target_text = _misc_text(misc_in, _TARGET_TEXT_KEYS)
    assistant_texts = [v.strip() for k, v in assistant_parts if k == "text" and v and v.strip()]
    if target_text is None and assistant_texts:
        target_text = " ".join(assistant_texts)
    if target_text is None:
        target_text = pending[-1] if pending else ""
    instruction = " ".join(t for t in pending if t != target_text) or None

    target_urls = [v for k, v in assistant_parts if k == "audio" and v]
    if len(target_urls) > 1:  # taking one and dropping the others would lose data silently
        raise RecordError(
            "BAD_FIELD",
            f"the assistant turn holds {len(target_urls)} audio parts; expected one target audio",
            "messages[assistant].content",
            hint="Split the record into one sample per target, or write it as ChatML with one turn per audio.",
        )
    target_audio = ctx.resolve(target_urls[0], "messages[assistant].content") if target_urls else None
    misc = dict(misc_in)
    misc.update(ctx.misc(NAME, instruction=instruction))
    return tts_sample(
        sample_id=sample_id(record, ctx),
        target_text=target_text,
        target_audio=target_audio,
        references=references,
        speaker=speaker_of(record),
        misc=misc,
        system_prompt=system or ctx.system_prompt,
        scene=scene,
    )
