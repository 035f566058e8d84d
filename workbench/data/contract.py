"""The sample contract: the one place that decides whether a canonical sample can be trained on.

Three modules ask the same question and must never disagree: ``convert`` routes each record to
the trainable, prompts or rejected file by it; ``validate`` reports its problems as findings
(errors make a NO-GO); the training collator calls it as its last guard. :func:`check_sample`
answers with a :class:`Verdict`:

- ``trainable``: well formed, with at least one assistant audio at or after ``start_index``;
- ``prompt``: well formed, without such audio (an evaluation prompt, the classic "Missing
  required message types" error of the original tooling if trained on);
- ``invalid``: a shape the chat template cannot render the way inference does.

A well-formed sample, as ``HiggsAudioV2Processor.apply_chat_template`` renders it at inference:

- the first message is a text ``system`` message; ``scene`` messages hold text;
- every role is one of ``system``, ``scene``, ``user``, ``assistant``;
- user turns hold text; assistant turns hold audio, never text (inference never builds a
  text-only assistant turn);
- every audio has its transcript: a user text right before it (system and scene messages in
  between are allowed);
- no text holds chat-template markup such as ``<|AUDIO_OUT|>`` or ``<|eot_id|>`` (it would be read
  as a special token and shift or break the audio placeholders);
- ``start_index`` is an integer index of one of the messages.

The checks are plain loops over the messages: :func:`check_sample` runs at validation speed
(tens of thousands of samples per second).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, NamedTuple

from workbench.data.sample import ROLES, Sample

TRAINABLE = "trainable"
PROMPT = "prompt"
INVALID = "invalid"

MISSING_TYPES = "this is the 'Missing required message types' error"
# Chat-template markup of Llama 3 / Higgs Audio (<|AUDIO_OUT|>, <|audio_bos|>, <|eot_id|>, ...).
TEMPLATE_TOKEN = re.compile(r"<\|[A-Za-z0-9_]{1,40}\|>")
_UNSET: Any = object()


@dataclass(frozen=True, slots=True)
class Problem:
    """One reason a sample is not trainable: a finding code, plain words, the field, a hint."""

    code: str
    message: str
    field: str | None = None
    hint: str | None = None  # None: the code's default hint (workbench.data.findings.CODES)


class Verdict(NamedTuple):
    """What :func:`check_sample` decided (a named tuple: built once per sample, on the hot path).

    Attributes:
        kind: ``trainable``, ``prompt`` or ``invalid``.
        problems: why the sample is not trainable (empty for trainable samples). Every problem
            is an error for training; a prompt's only problem is MISSING_TARGET_AUDIO or NO_AUDIO.
        targets: indices of the supervised assistant audio messages (empty unless trainable
            or ``start_index`` is unusable).
    """

    kind: str
    problems: tuple[Problem, ...] = ()
    targets: tuple[int, ...] = ()

    @property
    def trainable(self) -> bool:
        return self.kind == TRAINABLE

    @property
    def usable(self) -> bool:
        """Trainable or a prompt: the chat template renders it as inference does."""
        return self.kind != INVALID

    def describe(self) -> str:
        """The problems as one line: ``BAD_STRUCTURE: ...; MISSING_TARGET_AUDIO: ...``."""
        return "; ".join(f"{p.code}: {p.message}" for p in self.problems)


class SampleContractError(ValueError):
    """A sample that breaks the contract reached a place that needs it to hold (the collator)."""

    def __init__(self, sample: Sample, verdict: Verdict) -> None:
        self.sample_id = sample.id
        self.verdict = verdict
        super().__init__(
            f"sample {sample.id!r} ({sample.provenance()}) is {verdict.kind}: {verdict.describe()}; "
            "run `workbench validate` on the data (it reports the same problem with a fix hint)"
        )


def structure_problems(sample: Sample) -> list[Problem]:
    """BAD_STRUCTURE problems: roles, text/audio placement, transcripts, template markup."""
    messages = sample.messages
    if not messages:
        return [Problem("BAD_STRUCTURE", "the sample has no messages", "messages")]
    out: list[Problem] = []
    first = messages[0]
    if first.role != "system" or first.text is None:
        what = f"an audio '{first.role}'" if first.is_audio else f"a '{first.role}'"
        out.append(Problem("BAD_STRUCTURE", f"the first message is {what} message, expected 'system' (text)",
                           "messages[0]"))  # fmt: skip
    transcribed = False  # a user text since the last audio
    for i, m in enumerate(messages):  # hot: runs once per sample in convert, validate and the collator
        role, content = m.role, m.content
        if role not in ROLES:
            out.append(Problem("BAD_STRUCTURE", f"message {i} has unknown role '{role}'", f"messages[{i}]"))
            continue
        if not isinstance(content, str):  # audio
            if role != "assistant":
                out.append(Problem("BAD_STRUCTURE",
                                   f"message {i} holds audio {m.audio_url} in a '{role}' turn; audio belongs "
                                   "in assistant turns", f"messages[{i}]"))  # fmt: skip
            elif not transcribed:
                out.append(Problem("BAD_STRUCTURE",
                                   f"audio {m.audio_url} in message {i} has no user text (its transcript) right "
                                   "before it", f"messages[{i}]"))  # fmt: skip
            transcribed = False
            continue
        if role == "user":
            transcribed = True
        elif role == "assistant":
            out.append(Problem("BAD_STRUCTURE",
                               f"message {i} is an assistant turn holding text ({_quote(content)}); assistant turns "
                               "hold the audio, and inference never builds a text-only assistant turn",
                               f"messages[{i}]",
                               "Make the text the user message before the audio (its transcript), or drop it; "
                               "`workbench convert` does this for source files."))  # fmt: skip
        token = TEMPLATE_TOKEN.search(content) if "<|" in content else None
        if token is not None:
            out.append(Problem("BAD_STRUCTURE",
                               f"the text of message {i} holds the chat-template token {token.group(0)!r}, which "
                               "the tokenizer reads as a control token, not as words", f"messages[{i}]",
                               "Remove the markup from the text; audio belongs in assistant audio messages, and a "
                               "scene description in a 'scene' turn right after the system turn (`workbench "
                               "convert` moves a system text's <|scene_desc_start|> block there)."))  # fmt: skip
    return out


def check_sample(sample: Sample, start_index: Any = _UNSET) -> Verdict:
    """Decide whether ``sample`` is trainable, a prompt, or invalid (see the module docstring).

    Args:
        sample: A canonical sample.
        start_index: The start index as the source gave it, when it is not an int (a canonical
            file line with ``"start_index": "3"``); defaults to ``sample.start_index``.

    Returns:
        A :class:`Verdict`; its problems carry finding codes BAD_STRUCTURE, BAD_START_INDEX,
        MISSING_TARGET_AUDIO or NO_AUDIO.
    """
    start = sample.start_index if start_index is _UNSET else start_index
    problems = structure_problems(sample)
    messages = sample.messages
    n = len(messages)
    if type(start) is not int or not 0 <= start < n:
        message = (f"start_index={start!r} is not an integer" if type(start) is not int
                   else f"start_index={start} is outside the sample's {n} messages (expected 0 to {n - 1})")  # fmt: skip
        return Verdict(INVALID, (Problem("BAD_START_INDEX", message, "start_index"), *problems))
    targets = tuple(
        i
        for i in range(start, n)
        if messages[i].role == "assistant" and not isinstance(messages[i].content, str)
    )
    if problems:
        return Verdict(INVALID, tuple(problems), targets)
    if targets:
        return Verdict(TRAINABLE, (), targets)
    if all(isinstance(m.content, str) for m in messages):
        message = (f"the sample has no audio at all (no reference, no target): {MISSING_TYPES}; "
                   "the sample can only serve as a zero-shot evaluation prompt")  # fmt: skip
        return Verdict(PROMPT, (Problem("NO_AUDIO", message),))
    message = (f"no assistant target audio at or after start_index={start}: {MISSING_TYPES}; "
               "the sample can only serve as an evaluation prompt")  # fmt: skip
    return Verdict(PROMPT, (Problem("MISSING_TARGET_AUDIO", message, "messages"),))


def require_usable(sample: Sample, *, trainable: bool) -> Verdict:
    """:func:`check_sample`, raising when the sample cannot be used as asked.

    Args:
        trainable: Require a trainable sample (training); otherwise a prompt is fine (evaluation).

    Raises:
        SampleContractError: The sample is invalid, or a prompt where ``trainable`` is asked for.
    """
    verdict = check_sample(sample)
    if verdict.kind == INVALID or (trainable and verdict.kind != TRAINABLE):
        raise SampleContractError(sample, verdict)
    return verdict


def _quote(text: str | None, limit: int = 60) -> str:
    text = (text or "").strip()
    return repr(text if len(text) <= limit else text[: limit - 1] + "…")
