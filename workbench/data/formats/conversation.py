"""Chat-style records (ChatML and mixed-content messages) to canonical samples, keeping their meaning.

Content may be a string, a single part object (``{"type": "audio", "audio_url": ...}`` or
``{"type": "text", "text": ...}``), or a list of parts; audio parts may name the file with
``audio_url``, ``url`` or ``path`` (a ``file://`` URL too), or, when that is empty or
``"placeholder"``, carry it base64-encoded in ``raw_audio``, as the original tooling reads them. An
audio part with an ``offset`` (seconds, and an optional ``duration``) is a slice; a ``duration``
alone is the file's length, not a cut. Slices and decoded bytes are written as WAV files into the
output's ``.clips`` folder (``misc.extracted_audio`` says where each came from). Roles are read case-insensitively; ``human``, ``gpt`` and
``model`` are aliases. The source's meaning is kept, as the original Higgs Audio tooling reads it:

- **A scene description in the system text** (``...\\n\\n<|scene_desc_start|>\\n...\\n<|scene_desc_end|>``,
  the original tooling's system prompt) becomes a ``scene`` turn after the system turn, which the
  chat template renders as the same block.
- **Audio in a user turn is context** (a reference). The Higgs Audio v2 chat template only takes
  audio from the assistant, so it moves into an assistant turn right after its transcript, and
  ``start_index`` is re-pointed to after it, whatever index the source gave (a START_INDEX_ADJUSTED
  warning says so when the source's index pointed at or before it).
- **Text in an assistant turn is the transcript of the audio after it.** It becomes the user text
  before that audio when the user text is missing, empty or carries an instruction, and is kept in
  ``misc.assistant_texts`` otherwise; a trailing assistant text with no audio is the target text of
  a prompt. It never stays as a text-only assistant turn; one in the middle of a conversation (a
  chat reply) is rejected.
- **Instruction prefixes** ("Please generate speech for given text in reference audio's voice: ",
  see :mod:`workbench.data.formats.instructions`) are removed from user texts; ``misc.original_texts``
  keeps every text as written (``[{"message": index, "text": ...}]``) and ``misc.instruction`` the
  prefix. ``misc.target_transcript`` / ``target_text`` and ``misc.ref_transcript`` /
  ``reference_text`` win over the texts in the turns when present (one target / one reference).
- **A record that ends with its reference** (a user ``[text, reference audio]``, an empty assistant
  audio, as the original tooling writes voice-cloning prompts) takes ``misc.target_text`` (or
  ``misc.target_transcript``) as the text to speak after the reference: a prompt.
- **start_index** (an index of the source's messages) is mapped to the message it now starts at;
  without one, the target is the last assistant audio after the references. A record whose only
  audio is a reference is a prompt when a text to speak follows it. An explicit ``start_index``
  that leaves no assistant audio to learn from, in a record that does not end with a text to
  speak, is ambiguous and rejected (BAD_START_INDEX).

The resulting ``start_index`` points at the first target's transcript (a prompt's: its target text).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..sample import ROLES, Audio, Message, Sample
from .base import AudioPart, ConvertContext, RecordError, seconds_field, speaker_of
from .instructions import strip_instruction

AUDIO_KEYS = ("audio_url", "url", "path")
SCENE_START, SCENE_END = "<|scene_desc_start|>", "<|scene_desc_end|>"
ROLE_ALIASES = {"human": "user", "gpt": "assistant", "model": "assistant"}
TARGET_TEXT_KEYS = ("target_text", "target_transcript", "transcript", "text")
SPOKEN_TEXT_KEYS = ("target_text", "target_transcript")  # the text to speak after a trailing reference
REF_TEXT_KEYS = ("reference_text", "ref_transcript", "reference_transcript", "ref_text")


def content_parts(content: Any, where: str) -> list[tuple[str, Any]]:
    """``content`` as ``[("text", str) | ("audio", AudioPart | None)]``.

    An audio part with no file (an empty or ``"placeholder"`` url and no ``raw_audio``) is ``None``.
    """
    if content is None:
        return []
    if isinstance(content, str):
        return [("text", content)]
    if isinstance(content, dict):
        kind = content.get("type")
        if kind == "audio" or (kind is None and any(k in content for k in AUDIO_KEYS)):
            url = next(
                (content[k] for k in AUDIO_KEYS if content.get(k) not in (None, "", "placeholder")), None
            )
            if url is not None and not isinstance(url, str):
                raise RecordError(
                    "BAD_FIELD", f"{where}: audio path should be text, got {type(url).__name__}", where
                )
            raw = content.get("raw_audio")
            raw = raw if url is None and isinstance(raw, str) and raw.strip() else None
            if url is None and raw is None:
                return [("audio", None)]
            offset = seconds_field(content.get("offset"), f"{where}.offset")
            duration = seconds_field(content.get("duration"), f"{where}.duration")
            return [("audio", AudioPart(url, raw, offset, duration))]
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


def message_role(message: Any, i: int) -> str:
    """The canonical role of source message ``i`` (aliases resolved), or a BAD_FIELD error."""
    if not isinstance(message, dict):
        raise RecordError(
            "BAD_FIELD", f"messages[{i}] should be an object, got {type(message).__name__}", f"messages[{i}]"
        )
    role = message.get("role")
    if isinstance(role, str):
        role = role.strip().lower()  # "User", "ASSISTANT " as some exporters write them
    role = ROLE_ALIASES.get(role, role)
    if role not in ROLES:
        raise RecordError(
            "BAD_FIELD", f"messages[{i}].role should be one of {ROLES}, got {role!r}", f"messages[{i}].role"
        )
    return role


def split_scene(system: str) -> tuple[str, str | None]:
    """A system text as the original tooling writes it, split into the system text and its scene.

    ``"Generate audio following instruction.\\n\\n<|scene_desc_start|>\\nA quiet room.\\n<|scene_desc_end|>"``
    gives ``("Generate audio following instruction.", "A quiet room.")``: the chat template renders a
    ``scene`` turn after the system text as exactly that block, so the tokens are the same. A text
    without one well-formed block at its end is returned as it is (the contract reports the markup).
    """
    if SCENE_START not in system:
        return system, None
    head, _, rest = system.partition(SCENE_START)
    scene, end, tail = rest.partition(SCENE_END)
    if not end or tail.strip() or SCENE_START in scene or SCENE_START in tail:
        return system, None
    return head.strip(), scene.strip()


def sample_id(record: dict[str, Any], ctx: ConvertContext) -> str:
    for key in ("id", "sample_id", "audio_id"):
        if record.get(key) not in (None, ""):
            return str(record[key]).strip()
    return ctx.default_id()


def _joined(texts: list[str]) -> str:
    return " ".join(t.strip() for t in texts if t.strip())


def _quote(text: str, limit: int = 60) -> str:
    return repr(text if len(text) <= limit else text[: limit - 1] + "…")


@dataclass
class _Conversation:
    """Canonical messages under construction, with what the start index and misc need."""

    messages: list[Message]
    from_user: set[int] = field(default_factory=set)  # audio messages that came from user turns
    first_of: list[int] = field(default_factory=list)  # source message -> first canonical index
    originals: dict[int, str] = field(default_factory=dict)  # message index -> text as written
    instructions: list[str] = field(default_factory=list)
    assistant_texts: list[str] = field(default_factory=list)

    def set_text(self, k: int, text: str) -> None:
        """Replace user text ``k``, keeping the first version the source wrote."""
        old = self.messages[k].text or ""
        if text != old:
            self.originals.setdefault(k, old)
            self.messages[k] = Message("user", text)

    def insert_text(self, k: int, text: str) -> None:
        """Insert a user text at ``k``, shifting every index at or after it."""
        self.messages.insert(k, Message("user", text))
        self.from_user = {j + (j >= k) for j in self.from_user}
        self.originals = {j + (j >= k): t for j, t in self.originals.items()}

    def transcribe(self, text: str) -> None:
        """An assistant text: the transcript of the audio about to be added (or a prompt's target text)."""
        last = len(self.messages) - 1
        previous = self.messages[last]
        if previous.role == "user" and previous.text is not None:
            old = previous.text
            prefix = strip_instruction(old)[1]
            if not old.strip() or prefix is not None:
                if prefix is not None:
                    self.instructions.append(prefix.strip())
                self.set_text(last, text)
            elif _joined([old]).casefold() != text.casefold():
                self.assistant_texts.append(text)
        else:
            self.messages.append(Message("user", text))

    def transcript_of(self, k: int) -> int | None:
        """Index of the user text right before message ``k`` (system and scene turns skipped)."""
        for j in range(k - 1, -1, -1):
            m = self.messages[j]
            if m.role == "user" and m.text is not None:
                return j
            if m.role not in ("system", "scene"):
                return None
        return None


def build_messages(raw: list[Any], ctx: ConvertContext) -> _Conversation:
    """Split parts into messages, move user audio into assistant turns, fold assistant texts."""
    has_system = bool(raw) and message_role(raw[0], 0) == "system"
    conv = _Conversation([] if has_system else [Message("system", ctx.system_prompt)])
    pending: list[str] = []  # assistant text waiting for its audio
    pending_at = -1
    for i, message in enumerate(raw):
        role = message_role(message, i)
        where = f"messages[{i}].content"
        conv.first_of.append(len(conv.messages))
        parts = content_parts(message.get("content"), where)
        if pending and role != "assistant":
            raise RecordError(
                "BAD_STRUCTURE",
                f"messages[{pending_at}] is an assistant turn holding only text ({_quote(_joined(pending))}) "
                "in the middle of the conversation; in a speech sample the assistant's turns hold audio",
                f"messages[{pending_at}].content",
                hint="Add the audio of that text to the turn, or drop the turn (a text reply is not speech to learn).",
            )
        if role in ("system", "scene"):
            if any(kind == "audio" and value for kind, value in parts):
                raise RecordError("BAD_FIELD", f"messages[{i}]: a '{role}' turn holds audio", where,
                                  hint="Move the audio into a user turn (a reference) or an assistant turn (a target).")  # fmt: skip
            text = _joined([v or "" for _, v in parts])
            system, scene = split_scene(text) if role == "system" else (text, None)
            conv.messages.append(Message(role, system))
            if scene is not None:
                conv.messages.append(Message("scene", scene))
        elif role == "user":
            texts: list[str] | None = None  # None: no text part since the last audio
            for kind, value in parts:
                if kind == "text":
                    texts = [*(texts or []), value or ""]
                elif value is not None:  # an empty audio url counts as absent
                    if texts is not None:
                        conv.messages.append(Message("user", _joined(texts)))
                        texts = None
                    conv.from_user.add(len(conv.messages))
                    conv.messages.append(Message("assistant", Audio(ctx.audio_path(value, where))))
            if texts is not None:  # an empty text turn is kept: the validator reports it
                conv.messages.append(Message("user", _joined(texts)))
        else:
            audios = [v for k, v in parts if k == "audio" and v is not None]
            texts_here, seen_audio = list(pending), False
            for kind, value in parts:
                if kind == "text":
                    if value and value.strip():
                        texts_here.append(value)
                    continue
                if value is None:
                    continue
                if seen_audio and not texts_here:  # taking one and dropping the others would lose data
                    raise RecordError(
                        "BAD_FIELD",
                        f"the assistant turn messages[{i}] holds {len(audios)} audio parts with no text between "
                        "them; expected one target audio per transcript",
                        where,
                        hint="Split the record into one sample per target, or put each audio's text before it.",
                    )
                if texts_here:
                    conv.transcribe(_joined(texts_here))
                    texts_here = []
                conv.messages.append(Message("assistant", Audio(ctx.audio_path(value, where))))
                seen_audio = True
            pending, pending_at = texts_here, i
    conv.first_of.append(len(conv.messages))
    if pending:  # a trailing assistant text without audio: the target text of a prompt
        conv.transcribe(_joined(pending))
    for k, m in enumerate(conv.messages):
        if m.role == "user" and m.text:
            text, prefix = strip_instruction(m.text)
            if prefix is not None:
                conv.instructions.append(prefix.strip())
                conv.set_text(k, text)
    return conv


def resolve_start_index(conv: _Conversation, given: Any, ctx: ConvertContext) -> int:
    """The canonical ``start_index`` (see the module docstring); notes a re-pointed index.

    Raises:
        RecordError: BAD_START_INDEX for an index outside the source's messages or an ambiguous
            one; BAD_STRUCTURE for a record whose last audio is a reference with nothing to speak.
    """
    messages = conv.messages
    floor = max(conv.from_user) + 1 if conv.from_user else 0  # everything before is context
    own_audio = [j for j, m in enumerate(messages) if m.is_audio and j not in conv.from_user]
    start = floor
    if isinstance(given, str) and given.strip().isdigit():
        given = int(given)  # "3", as CSV-born JSON writes it
    if given is not None:
        count = len(conv.first_of) - 1
        if isinstance(given, bool) or not isinstance(given, int) or not 0 <= given < count:
            raise RecordError(
                "BAD_START_INDEX",
                f"start_index should be a message index in [0, {count - 1}], got {given!r}",
                "start_index",
            )
        start = conv.first_of[given]
        if start < floor:
            lost = [j for j in own_audio if start <= j < floor]
            also = (
                f"; assistant audio in message(s) {lost} before that reference is context now" if lost else ""
            )
            ctx.note(
                "START_INDEX_ADJUSTED",
                f"start_index={given} would make the reference audio taken from a user turn (now message "
                f"{floor - 1}) a training target; re-pointed to message {floor}{also}",
                "start_index",
            )
            start = floor
    targets = [j for j in own_audio if j >= start]
    last = len(messages) - 1
    if messages[last].role == "user" and targets:
        # A text to speak comes last: a prompt, whatever start_index says; its audio is all context.
        if given is not None:
            ctx.note(
                "START_INDEX_ADJUSTED",
                f"start_index={given} would supervise the audio in message(s) {targets}, but the record ends with "
                f"a text to speak (message {last}) and no audio after it: kept as a prompt, that audio as its "
                "reference",
                "start_index",
            )
        targets = []
    if targets:
        target = targets[0] if given is not None else targets[-1]
        transcript = conv.transcript_of(target)
        return transcript if transcript is not None and transcript >= floor else target
    if messages[last].role == "user" and last >= start:
        return last  # a prompt: the text to speak comes last
    if conv.from_user and (not own_audio or own_audio[-1] < floor):
        raise RecordError(
            "BAD_STRUCTURE",
            f"the record's last audio (message {floor - 1}) comes from a user turn, so it is a reference, and no "
            "text follows it to be spoken: there is nothing to train on and nothing to prompt with",
            "messages",
            hint="Put the speech to learn in an assistant turn after its text, or add the text to speak after "
            "the reference, or as misc.target_text (an evaluation prompt).",
        )
    raise RecordError(
        "BAD_START_INDEX",
        f"start_index={given} leaves no assistant audio to learn from (the last one is message "
        f"{own_audio[-1] if own_audio else '-'}, before it) and the record does not end with a text to speak",
        "start_index",
        hint="Point start_index at the target's user text (or leave it out and convert infers it).",
    )


def _misc_text(misc: dict[str, Any], keys: tuple[str, ...]) -> str | None:
    for key in keys:
        value = misc.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def _apply_misc_transcripts(conv: _Conversation, start: int, misc: dict[str, Any]) -> int:
    """``misc`` target/reference transcripts win over the turns' texts; returns the start index."""
    messages = conv.messages
    targets = [j for j, m in enumerate(messages) if m.is_audio and j >= start]
    references = [j for j, m in enumerate(messages) if m.is_audio and j < start]
    for text, audio, is_target in (
        (_misc_text(misc, TARGET_TEXT_KEYS), targets, True),
        (_misc_text(misc, REF_TEXT_KEYS), references, False),
    ):
        if text is None or len(audio) > 1:
            continue  # several targets (or references): which one the text belongs to is unknown
        if not audio:  # a prompt: its text to speak is the start message
            if is_target and messages[start].role == "user" and messages[start].text is not None:
                conv.set_text(start, text)
            continue
        k = conv.transcript_of(audio[0])
        if k is not None:
            conv.set_text(k, text)
        else:
            conv.insert_text(audio[0], text)
            start += start >= audio[0]
            messages = conv.messages
    return start


def _resolve_audio_files(raw: list[Any], ctx: ConvertContext) -> None:
    """Resolve every audio path the messages name, skipping malformed parts (the error names those).

    Called when a record is rejected, so that its missing files are reported in the same pass.
    """
    for i, message in enumerate(raw):
        where = f"messages[{i}].content"
        try:
            parts = content_parts(message.get("content") if isinstance(message, dict) else None, where)
        except RecordError:
            continue
        for kind, part in parts:
            if kind == "audio" and part is not None and part.url is not None:
                try:
                    ctx.resolve(part.url, where)
                except RecordError:
                    continue


def _ends_with_reference(conv: _Conversation) -> bool:
    """The last message is audio taken from a user turn: a reference with no text to speak after it."""
    return len(conv.messages) - 1 in conv.from_user


def convert_conversation(record: dict[str, Any], ctx: ConvertContext, source_format: str) -> Sample:
    """A chat-style record (``{"messages": [...], "start_index"?, "speaker"?, "misc"?}``) as a sample."""
    misc_in = record.get("misc") if isinstance(record.get("misc"), dict) else {}
    try:
        conv = build_messages(record["messages"], ctx)
        spoken = _misc_text(misc_in, SPOKEN_TEXT_KEYS)
        if spoken is not None and _ends_with_reference(conv):
            conv.messages.append(Message("user", spoken))  # the text to speak in the reference's voice
        start = resolve_start_index(conv, record.get("start_index"), ctx)
    except RecordError:
        _resolve_audio_files(record["messages"], ctx)
        raise
    start = _apply_misc_transcripts(conv, start, misc_in)
    misc = dict(misc_in)
    misc.update(
        ctx.misc(
            source_format,
            instruction=" | ".join(dict.fromkeys(conv.instructions)) or None,
            original_texts=[{"message": k, "text": t} for k, t in sorted(conv.originals.items())] or None,
            assistant_texts=conv.assistant_texts or None,
        )
    )
    return Sample(
        id=sample_id(record, ctx),
        messages=tuple(conv.messages),
        start_index=start,
        speaker=speaker_of(record),
        misc=misc,
    )
