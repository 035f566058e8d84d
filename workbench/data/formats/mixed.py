"""Mixed-content messages: one user turn ``[text, audio, text]``, answered by one assistant turn.

``{"messages": [{"role": "system", ...}?,
                {"role": "user", "content": [ref_text, ref_audio, target_text]},
                {"role": "assistant", "content": [target_text, target_audio] | target_audio}?],
   "start_index"?: 0, "speaker"?: ..., "misc"?: {"ref_transcript", "target_transcript", ...}}``

The layout the original Higgs Audio tooling's own training files use. The user turn holds the
reference transcript, the reference audio and the target text (often behind an instruction
prefix, "Please generate speech for given text in reference audio's voice: "); the assistant
turn holds the target audio, often with its transcript. Without assistant audio the record is an
evaluation prompt, whatever ``start_index`` says. Conversion is shared with ChatML
(:mod:`workbench.data.formats.conversation`): the user's audio is a reference, never a target; the
assistant's text is the target's transcript; the prefix is removed (kept in ``misc``).
"""

from __future__ import annotations

from typing import Any

from ..sample import Sample
from .base import ConvertContext, RecordError
from .conversation import content_parts, convert_conversation

NAME = "mixed"


def detect(record: dict[str, Any]) -> bool:
    """One user turn mixing text and audio parts, optionally answered by one assistant turn.

    Multi-turn conversations (several user turns) are ChatML. A user ``[text, audio]`` with no
    assistant turn and no text after the audio is ChatML too: it has no text to speak.
    """
    messages = record.get("messages")
    if not isinstance(messages, list):
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
    return len(turns) == 2 or kinds[-1] == "text"


def layout(record: dict[str, Any]) -> str:
    """What the report counts: ``mixed``, or ``mixed+start_index`` when the record gives one."""
    return f"{NAME}+start_index" if "start_index" in record else NAME


def _safe_parts(content: Any) -> list[tuple[str, str | None]]:
    try:
        return content_parts(content, "content")
    except RecordError:
        return []


def convert(record: dict[str, Any], ctx: ConvertContext) -> Sample:
    return convert_conversation(record, ctx, NAME)
