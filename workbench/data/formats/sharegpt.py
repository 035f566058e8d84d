"""ShareGPT-style records: ``{"conversations": [{"from": "human", "value": ...}, {"from": "gpt", ...}], "audio": path}``.

Also ``"audios": [...]``, and LLaMA-Factory's variant ``{"messages": [{"role": "user", "content":
"<audio>..."}, {"role": "assistant", "content": ...}], "audios": [...]}``. Default mapping: human = reference text, gpt = target text, first audio
= reference audio (so a prompt); a second audio is the target audio. Override with
``--map human=target_text --map audio0=target_audio`` (slots: human, gpt, audio0, audio1;
roles: reference_text, target_text, reference_audio, target_audio, ignore). ``<audio>``
markers inside texts are removed.
"""

from __future__ import annotations

import re
from typing import Any

from ..sample import Sample
from .base import ConvertContext, RecordError, is_sharegpt_messages, speaker_of, tts_sample
from .chatml import sample_id

NAME = "sharegpt"
SLOTS = ("human", "gpt", "audio0", "audio1")
ROLES = ("reference_text", "target_text", "reference_audio", "target_audio", "ignore")
DEFAULT_MAP = {
    "human": "reference_text",
    "gpt": "target_text",
    "audio0": "reference_audio",
    "audio1": "target_audio",
}
_AUDIO_MARK = re.compile(r"<audio>|<\|audio\|>", re.IGNORECASE)
_FROM_ALIASES = {"user": "human", "assistant": "gpt", "model": "gpt"}


def parse_map(items: list[str] | dict[str, str] | None) -> dict[str, str]:
    """``["human=target_text", ...]`` (or a dict) merged over :data:`DEFAULT_MAP`, checked.

    An explicit mapping wins over the defaults: a default slot that held the same role is
    ignored (``--map human=target_text`` alone makes the gpt turn unused, not a silent tie).

    Raises:
        ValueError: an unknown slot or role, or two explicit slots given the same role, naming
            them and the allowed values.
    """
    mapping = dict(DEFAULT_MAP)
    pairs = (
        items.items()
        if isinstance(items, dict)
        else (i.split("=", 1) if "=" in i else (i, "") for i in items or [])
    )
    explicit: dict[str, str] = {}
    for slot, role in pairs:
        slot, role = slot.strip(), role.strip()
        if slot not in SLOTS:
            raise ValueError(f"--map: unknown slot {slot!r}; expected one of {', '.join(SLOTS)}")
        if role not in ROLES:
            raise ValueError(f"--map {slot}=...: unknown role {role!r}; expected one of {', '.join(ROLES)}")
        explicit[slot] = role
    taken: dict[str, str] = {}
    for slot, role in explicit.items():
        if role != "ignore" and role in taken:
            raise ValueError(
                f"--map: slots {taken[role]!r} and {slot!r} are both mapped to {role!r}; map one to ignore"
            )
        taken[role] = slot
    for slot, role in mapping.items():
        if slot not in explicit and role in taken:
            mapping[slot] = "ignore"
    mapping.update(explicit)
    return mapping


def detect(record: dict[str, Any]) -> bool:
    return isinstance(record.get("conversations"), list) or is_sharegpt_messages(record)


def _audios(record: dict[str, Any]) -> list[Any]:
    if isinstance(record.get("audios"), list):
        return list(record["audios"])
    if record.get("audio") not in (None, ""):
        return [record["audio"]]
    return []


def convert(record: dict[str, Any], ctx: ConvertContext) -> Sample:
    mapping = ctx.sharegpt_map or DEFAULT_MAP
    values: dict[str, Any] = {}
    key = "conversations" if isinstance(record.get("conversations"), list) else "messages"
    who_key, value_key = ("from", "value") if key == "conversations" else ("role", "content")
    for i, turn in enumerate(record[key]):
        if not isinstance(turn, dict):
            raise RecordError("BAD_FIELD", f"{key}[{i}] should be an object", f"{key}[{i}]")
        who = turn.get(who_key)
        who = _FROM_ALIASES.get(who.strip().lower(), who) if isinstance(who, str) else who
        value = turn.get(value_key)
        if who in ("human", "gpt") and who not in values:
            if not isinstance(value, str):
                raise RecordError(
                    "BAD_FIELD", f"{key}[{i}].{value_key} should be text", f"{key}[{i}].{value_key}"
                )
            values[who] = _AUDIO_MARK.sub("", value).strip()
    for i, path in enumerate(_audios(record)[:2]):
        values[f"audio{i}"] = ctx.resolve(path, f"audios[{i}]" if "audios" in record else "audio")

    slots: dict[str, Any] = {}
    for slot, role in mapping.items():
        if role != "ignore" and slot in values:
            slots[role] = values[slot]
    if "reference_audio" in slots and "reference_text" not in slots:
        raise RecordError(
            "BAD_FIELD", "the reference audio has no transcript under this --map", "conversations"
        )
    references = (
        [(slots["reference_audio"], slots.get("reference_text", ""))] if "reference_audio" in slots else []
    )
    return tts_sample(
        sample_id=sample_id(record, ctx),
        target_text=slots.get("target_text"),
        target_audio=slots.get("target_audio"),
        references=references,
        speaker=speaker_of(record),
        misc=ctx.misc(NAME),
        system_prompt=ctx.system_prompt,
    )
