"""ChatML, as the original Higgs Audio tooling writes it, plus its common variants.

Content may be a string, a single part object (``{"type": "audio", "audio_url": ...}`` or
``{"type": "text", "text": ...}``), or a list of parts; audio parts may name the file with
``audio_url``, ``url`` or ``path``. Each part becomes its own message; audio found in a user
turn is moved into an assistant turn right after its transcript (the Higgs Audio v2 chat
template only accepts audio from the assistant). A given ``start_index`` is re-pointed to the
message its original index now starts at.
"""

from __future__ import annotations

from typing import Any

from ..sample import ROLES, Audio, Message, Sample
from .base import ConvertContext, RecordError, speaker_of

NAME = "chatml"
_AUDIO_KEYS = ("audio_url", "url", "path")
_ROLE_ALIASES = {"human": "user", "gpt": "assistant", "model": "assistant"}


def detect(record: dict[str, Any]) -> bool:
    return isinstance(record.get("messages"), list)


def content_parts(content: Any, where: str) -> list[tuple[str, str | None]]:
    """``content`` as ``[("text", str) | ("audio", url_or_None)]``; an empty audio url is ``None``."""
    if content is None:
        return []
    if isinstance(content, str):
        return [("text", content)]
    if isinstance(content, dict):
        kind = content.get("type")
        if kind == "audio" or (kind is None and any(k in content for k in _AUDIO_KEYS)):
            url = next((content[k] for k in _AUDIO_KEYS if content.get(k) not in (None, "")), None)
            if url is not None and not isinstance(url, str):
                raise RecordError(
                    "BAD_FIELD", f"{where}: audio path should be text, got {type(url).__name__}", where
                )
            return [("audio", url)]
        if kind == "text" or "text" in content:
            text = content.get("text")
            if not isinstance(text, str):
                raise RecordError("BAD_FIELD", f"{where}: text part should hold a string", where)
            return [("text", text)]
        raise RecordError("BAD_FIELD", f"{where}: unknown content part {content!r:.80}", where)
    if isinstance(content, list):
        out: list[tuple[str, str | None]] = []
        for i, part in enumerate(content):
            out.extend(content_parts(part, f"{where}[{i}]"))
        return out
    raise RecordError(
        "BAD_FIELD", f"{where}: content should be text, a part or a list, got {type(content).__name__}", where
    )


def _role(message: Any, i: int) -> str:
    if not isinstance(message, dict):
        raise RecordError(
            "BAD_FIELD", f"messages[{i}] should be an object, got {type(message).__name__}", f"messages[{i}]"
        )
    role = message.get("role")
    role = _ROLE_ALIASES.get(role, role)
    if role not in ROLES:
        raise RecordError(
            "BAD_FIELD", f"messages[{i}].role should be one of {ROLES}, got {role!r}", f"messages[{i}].role"
        )
    return role


def _text_message(role: str, texts: list[str]) -> Message:
    return Message(role, " ".join(t.strip() for t in texts if t.strip()))


def normalize_messages(raw: list[Any], ctx: ConvertContext) -> tuple[list[Message], list[int]]:
    """Split parts into messages and move user audio into assistant turns.

    Returns the messages and, for each original message index, the index of the first new
    message it produced (or of the next message when it produced none).
    """
    messages: list[Message] = []
    first_of: list[int] = []
    for i, message in enumerate(raw):
        role = _role(message, i)
        first_of.append(len(messages))
        pending_text: list[str] | None = None  # text parts since the last audio part
        for kind, value in content_parts(message.get("content"), f"messages[{i}].content"):
            if kind == "text":
                pending_text = [*(pending_text or []), value or ""]
                continue
            if pending_text is not None:
                messages.append(_text_message(role, pending_text))
                pending_text = None
            if value is None:
                continue  # an empty audio url counts as absent
            path = ctx.resolve(value, f"messages[{i}].content")
            messages.append(Message("assistant", Audio(path)))
        if pending_text is not None:  # an empty text turn is kept: the validator reports it
            messages.append(_text_message(role, pending_text))
    first_of.append(len(messages))
    return messages, first_of


def with_system(messages: list[Message], ctx: ConvertContext) -> tuple[list[Message], int]:
    """Prepend the default system prompt when the source has none; returns the index shift."""
    if messages and messages[0].role == "system":
        return messages, 0
    return [Message("system", ctx.system_prompt), *messages], 1


def infer_start_index(messages: list[Message]) -> int:
    """The user text before the last assistant audio; for prompts, the last user text."""
    audio = [i for i, m in enumerate(messages) if m.is_audio and m.role == "assistant"]
    users = [i for i, m in enumerate(messages) if m.role == "user" and m.text is not None]
    last_user = users[-1] if users else len(messages) - 1
    if audio and audio[-1] > last_user:
        before = [u for u in users if u < audio[-1]]
        return before[-1] if before else audio[-1]
    return max(last_user, 0)


def sample_id(record: dict[str, Any], ctx: ConvertContext) -> str:
    for key in ("id", "sample_id", "audio_id"):
        if record.get(key) not in (None, ""):
            return str(record[key]).strip()
    return ctx.default_id()


def convert(record: dict[str, Any], ctx: ConvertContext) -> Sample:
    messages, first_of = normalize_messages(record["messages"], ctx)
    messages, shift = with_system(messages, ctx)
    given = record.get("start_index")
    if given is None:
        start_index = infer_start_index(messages)
    else:
        if isinstance(given, bool) or not isinstance(given, int) or not 0 <= given < len(first_of) - 1:
            raise RecordError(
                "BAD_START_INDEX",
                f"start_index should be a message index in [0, {len(first_of) - 2}], got {given!r}",
                "start_index",
            )
        start_index = first_of[given] + shift
    misc = dict(record.get("misc") or {}) if isinstance(record.get("misc"), dict) else {}
    misc.update(ctx.misc(NAME))
    return Sample(
        id=sample_id(record, ctx),
        messages=tuple(messages),
        start_index=start_index,
        speaker=speaker_of(record),
        misc=misc,
    )
