"""Canonical samples: the one dataset format the rest of the workbench reads.

A sample is a ChatML conversation plus the index of its first supervised message::

    {"id": "spk1_0003", "speaker": "spk1", "start_index": 3,
     "messages": [
        {"role": "system", "content": "Generate speech in the provided voice."},
        {"role": "user", "content": "<reference transcript>"},
        {"role": "assistant", "content": {"type": "audio", "audio_url": "/abs/ref.wav"}},
        {"role": "user", "content": "<target text>"},
        {"role": "assistant", "content": {"type": "audio", "audio_url": "/abs/target.wav"}}],
     "misc": {"source_format": "manifest", "source_file": "/abs/train.json", "source_index": 3}}

Assistant audio at or after ``start_index`` is a training target; everything before it is
context. A sample with no such audio is a *prompt*: fine for evaluation, useless for training
(the classic "Missing required message types" error of the original tooling).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any

from workbench.files import atomic_write

DEFAULT_SYSTEM_PROMPT = "Generate speech in the provided voice."
ROLES = ("system", "scene", "user", "assistant")


@dataclass(frozen=True)
class Audio:
    """An audio part of an assistant message."""

    audio_url: str

    def to_dict(self) -> dict[str, str]:
        return {"type": "audio", "audio_url": self.audio_url}


@dataclass(frozen=True)
class Message:
    """One chat turn. ``content`` is text or a single :class:`Audio`."""

    role: str
    content: str | Audio

    @property
    def is_audio(self) -> bool:
        return isinstance(self.content, Audio)

    @property
    def text(self) -> str | None:
        return self.content if isinstance(self.content, str) else None

    @property
    def audio_url(self) -> str | None:
        return self.content.audio_url if isinstance(self.content, Audio) else None

    def to_dict(self) -> dict[str, Any]:
        content = self.content.to_dict() if isinstance(self.content, Audio) else self.content
        return {"role": self.role, "content": content}

    @staticmethod
    def from_dict(data: dict[str, Any]) -> Message:
        content = data["content"]
        if isinstance(content, dict):
            content = Audio(audio_url=content["audio_url"])
        return Message(role=data["role"], content=content)


@dataclass(frozen=True)
class Sample:
    """A canonical training/evaluation sample (see module docstring)."""

    id: str
    messages: tuple[Message, ...]
    start_index: int
    speaker: str | None = None
    misc: dict[str, Any] = field(default_factory=dict)

    # --- structure -----------------------------------------------------------------
    def audio_indices(self) -> list[int]:
        """Indices of every message that holds audio."""
        return [i for i, m in enumerate(self.messages) if m.is_audio]

    def target_indices(self) -> list[int]:
        """Indices of assistant audio messages that are training targets (at/after ``start_index``)."""
        return [
            i
            for i, m in enumerate(self.messages)
            if m.is_audio and m.role == "assistant" and i >= self.start_index
        ]

    def reference_indices(self) -> list[int]:
        """Indices of audio messages that are context (before ``start_index``)."""
        return [i for i, m in enumerate(self.messages) if m.is_audio and i < self.start_index]

    def target_audio(self) -> list[str]:
        return [self.messages[i].audio_url for i in self.target_indices()]  # type: ignore[misc]

    def reference_audio(self) -> list[str]:
        return [self.messages[i].audio_url for i in self.reference_indices()]  # type: ignore[misc]

    def text_for_audio(self, index: int) -> str | None:
        """The transcript of the audio at ``index``: the nearest user text before it."""
        for j in range(index - 1, -1, -1):
            m = self.messages[j]
            if m.role == "user" and m.text is not None:
                return m.text
            if m.is_audio:
                return None
        return None

    def target_text(self) -> str | None:
        targets = self.target_indices()
        if targets:
            return self.text_for_audio(targets[-1])
        users = [m.text for m in self.messages[self.start_index :] if m.role == "user" and m.text is not None]
        return users[-1] if users else None

    def provenance(self) -> str:
        """``file:line`` (or ``file record N``) of the record this sample came from, for messages."""
        src = self.misc.get("source_file")
        if src is None:
            return self.id
        line, idx = self.misc.get("source_line"), self.misc.get("source_index")
        if line is not None:
            return f"{src}:{line}"
        return f"{src} record {idx}" if idx is not None else str(src)

    # --- serialisation ---------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "speaker": self.speaker,
            "start_index": self.start_index,
            "messages": [m.to_dict() for m in self.messages],
        }
        if self.misc:
            out["misc"] = self.misc
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False)

    @staticmethod
    def from_dict(data: dict[str, Any]) -> Sample:
        return Sample(
            id=str(data["id"]),
            messages=tuple(Message.from_dict(m) for m in data["messages"]),
            start_index=int(data["start_index"]),
            speaker=data.get("speaker"),
            misc=dict(data.get("misc") or {}),
        )

    def with_changes(self, **changes: Any) -> Sample:
        """A copy with some fields replaced (samples are immutable)."""
        return replace(self, **changes)

    def map_audio(self, fn) -> Sample:
        """A copy whose audio paths are ``fn(path)``."""
        msgs = tuple(
            Message(m.role, Audio(fn(m.content.audio_url))) if isinstance(m.content, Audio) else m
            for m in self.messages
        )
        return replace(self, messages=msgs)


class CanonicalFormatError(ValueError):
    """A canonical JSONL line that cannot be read as a :class:`Sample`."""


def read_jsonl_lines(path: str | os.PathLike) -> Iterator[tuple[int, str]]:
    """Yield ``(line_number, line)`` for non-blank lines (1-based), tolerating a BOM and CRLF."""
    with open(path, encoding="utf-8-sig", newline=None) as fh:
        for number, line in enumerate(fh, start=1):
            line = line.strip()
            if line:
                yield number, line


def read_samples_with_lines(path: str | os.PathLike) -> Iterator[tuple[int, Sample]]:
    """Stream ``(line_number, sample)`` from a canonical JSONL file, one line at a time.

    Raises:
        CanonicalFormatError: naming the file, line and the problem.
    """
    for number, line in read_jsonl_lines(path):
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            raise CanonicalFormatError(f"{path}:{number}: not valid JSON ({exc.msg}).") from None
        try:
            sample = Sample.from_dict(data)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise CanonicalFormatError(
                f"{path}:{number}: not a canonical sample (problem with field {exc}). "
                "Hint: convert source data first with `workbench convert`."
            ) from None
        yield number, sample


def read_samples(path: str | os.PathLike) -> Iterator[Sample]:
    """Stream canonical samples from a JSONL file (see :func:`read_samples_with_lines`)."""
    for _, sample in read_samples_with_lines(path):
        yield sample


def load_samples(path: str | os.PathLike) -> list[Sample]:
    return list(read_samples(path))


class _NoLines(Exception):
    """Closes the output's :func:`~workbench.files.atomic_write` so that it drops its temporary file."""


class AtomicJsonlWriter:
    """Stream JSON lines into :func:`~workbench.files.atomic_write`: the file appears whole, on success.

    An existing output is never replaced unless ``overwrite``; a crash leaves the old file
    (or nothing) in place, never a half-written one. Files with no lines are not created
    when ``keep_empty`` is false (and an old one is removed when ``overwrite``).
    """

    def __init__(self, path: str | os.PathLike, overwrite: bool = False, keep_empty: bool = True):
        self.path = Path(path)
        self.overwrite = overwrite
        self.keep_empty = keep_empty
        self.count = 0
        self._output: AbstractContextManager[IO[Any]] | None = None
        self._fh: IO[Any] | None = None

    def __enter__(self) -> AtomicJsonlWriter:
        if self.path.exists() and not self.overwrite:
            raise FileExistsError(f"{self.path} already exists. Hint: pass --overwrite to replace it.")
        self._output = atomic_write(self.path)
        self._fh = self._output.__enter__()
        return self

    def write(self, obj: Sample | dict[str, Any]) -> None:
        line = obj.to_json() if isinstance(obj, Sample) else json.dumps(obj, ensure_ascii=False)
        self._fh.write(line + "\n")  # type: ignore[union-attr]
        self.count += 1

    def write_many(self, items: Iterable[Sample | dict[str, Any]]) -> None:
        for item in items:
            self.write(item)

    def __exit__(self, exc_type, exc, tb) -> None:
        if self._output is None:
            raise RuntimeError("AtomicJsonlWriter: __exit__ without __enter__")
        output, self._output, self._fh = self._output, None, None
        if exc_type is None and self.count == 0 and not self.keep_empty:
            output.__exit__(_NoLines, _NoLines(), None)  # drops the temporary file; returns False
            if self.path.exists() and self.overwrite:
                # An empty result replaces a stale non-empty file from an earlier run.
                self.path.unlink()
            return
        output.__exit__(exc_type, exc, tb)  # moves the file into place, or drops it on an error


def write_samples(path: str | os.PathLike, samples: Iterable[Sample], overwrite: bool = False) -> int:
    with AtomicJsonlWriter(path, overwrite=overwrite) as writer:
        writer.write_many(samples)
    return writer.count


def sibling_path(out: str | os.PathLike, kind: str) -> Path:
    """``OUT.jsonl`` -> ``OUT.<kind>.jsonl`` (kind: prompts, rejected)."""
    out = Path(out)
    stem = out.name[: -len(".jsonl")] if out.name.endswith(".jsonl") else out.stem
    return out.with_name(f"{stem}.{kind}.jsonl")
