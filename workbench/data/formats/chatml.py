"""ChatML, as the original Higgs Audio tooling writes it, plus its common variants.

``{"messages": [{"role": "system" | "scene" | "user" | "assistant", "content": ...}, ...],
"start_index"?: int, "speaker"?: str, "misc"?: {...}}`` with any number of turns. How content,
user audio, assistant texts, instruction prefixes and ``start_index`` are read is described in
:mod:`workbench.data.formats.conversation`, which this format shares with ``mixed``.
"""

from __future__ import annotations

from typing import Any

from ..sample import Sample
from .base import ConvertContext, is_sharegpt_messages
from .conversation import content_parts, convert_conversation, message_role, sample_id

NAME = "chatml"

__all__ = ["NAME", "content_parts", "convert", "detect", "layout", "message_role", "sample_id"]


def detect(record: dict[str, Any]) -> bool:
    return isinstance(record.get("messages"), list) and not is_sharegpt_messages(record)


def layout(record: dict[str, Any]) -> str:
    """What the report counts: ``chatml``, or ``chatml+start_index`` when the record gives one."""
    return f"{NAME}+start_index" if "start_index" in record else NAME


def convert(record: dict[str, Any], ctx: ConvertContext) -> Sample:
    return convert_conversation(record, ctx, NAME)
