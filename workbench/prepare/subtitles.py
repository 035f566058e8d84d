"""Subtitles: read SubRip (``.srt``) and WebVTT (``.vtt``) cues, write ``.srt``.

A cue is a time range and the words spoken in it. Reading keeps what is speech: markup
(``<i>``, ``<v Anna>``, ``{\\an8}``), sound descriptions in square brackets (``[music]``) and
music notes are removed, lines are joined with spaces, and cues left empty are dropped. Errors
name the file and line (``talk.srt:12: bad time '00:01:xx,000'``).

Examples:
    >>> cues = parse_srt("1\\n00:00:01,000 --> 00:00:02,500\\n<i>Hello</i> there.\\n")
    >>> cues[0].start, cues[0].end, cues[0].text
    (1.0, 2.5, 'Hello there.')
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

SUBTITLE_SUFFIXES = (".srt", ".vtt")

_TIME = re.compile(r"^(?:(\d+):)?(\d{1,2}):(\d{1,2})[,.](\d{1,3})$")
_ARROW = "-->"
_MARKUP = re.compile(r"<[^>]*>|\{\\[^}]*\}")
_SOUNDS = re.compile(r"\[[^\]]*\]|[♪♫]")


class SubtitleError(ValueError):
    """A subtitle file that cannot be read, located by file and line."""


@dataclass(frozen=True)
class Cue:
    """One subtitle cue: seconds from the start of the recording and its text."""

    start: float
    end: float
    text: str
    line: int | None = None  # where the cue's timing line is in its file (1-based)


def parse_time(value: str, where: str = "") -> float:
    """``HH:MM:SS,mmm`` (SRT) or ``[HH:]MM:SS.mmm`` (WebVTT) as seconds.

    Raises:
        SubtitleError: not a time, with ``where`` in the message.
    """
    match = _TIME.match(value.strip())
    if not match:
        raise SubtitleError(f"{where}bad time {value.strip()!r} (expected HH:MM:SS,mmm or MM:SS.mmm)")
    hours, minutes, seconds, millis = match.groups()
    if int(minutes) > 59 or int(seconds) > 59:
        raise SubtitleError(f"{where}bad time {value.strip()!r}: minutes and seconds must be below 60")
    return int(hours or 0) * 3600 + int(minutes) * 60 + int(seconds) + int(millis.ljust(3, "0")) / 1000


def clean_text(lines: Iterable[str]) -> str:
    """Cue lines as one line of spoken text: markup and bracketed sound descriptions removed."""
    text = " ".join(_SOUNDS.sub(" ", _MARKUP.sub("", line)) for line in lines)
    return " ".join(text.split())


def _parse(text: str, name: str, webvtt: bool) -> list[Cue]:
    lines = text.replace("\r\n", "\n").replace("\r", "\n").lstrip("\ufeff").split("\n")
    if webvtt:
        if not lines or not lines[0].startswith("WEBVTT"):
            raise SubtitleError(f"{name}:1: a WebVTT file starts with 'WEBVTT'")
    cues: list[Cue] = []
    i = 1 if webvtt else 0
    while i < len(lines):
        if not lines[i].strip():
            i += 1
            continue
        block_start = i
        block = []
        while i < len(lines) and lines[i].strip():
            block.append(lines[i])
            i += 1
        if webvtt and block[0].split(maxsplit=1)[0] in ("NOTE", "STYLE", "REGION"):
            continue
        timing = next((k for k, line in enumerate(block[:2]) if _ARROW in line), None)
        if timing is None:
            raise SubtitleError(
                f"{name}:{block_start + 1}: expected a timing line 'start --> end', got {block[0].strip()!r}"
            )
        line_no = block_start + timing + 1
        where = f"{name}:{line_no}: "
        left, right = block[timing].split(_ARROW, 1)
        start = parse_time(left, where)
        end = parse_time(right.split()[0] if right.split() else "", where)  # WebVTT cue settings follow
        if end <= start:
            raise SubtitleError(f"{where}cue ends at {end:.3f} s, not after its start {start:.3f} s")
        spoken = clean_text(block[timing + 1 :])
        if spoken:
            cues.append(Cue(start, end, spoken, line_no))
    return sorted(cues, key=lambda c: (c.start, c.end))


def parse_srt(text: str, name: str = "<srt>") -> list[Cue]:
    """The cues of SubRip text, sorted by start time (empty cues dropped)."""
    return _parse(text, name, webvtt=False)


def parse_vtt(text: str, name: str = "<vtt>") -> list[Cue]:
    """The cues of WebVTT text, sorted by start time (NOTE/STYLE blocks and empty cues dropped)."""
    return _parse(text, name, webvtt=True)


def read_subtitles(path: str | os.PathLike) -> list[Cue]:
    """The cues of an ``.srt`` or ``.vtt`` file (UTF-8, with or without BOM; CRLF tolerated).

    Raises:
        SubtitleError: unknown suffix, not UTF-8, or a malformed cue (file and line named).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUBTITLE_SUFFIXES:
        raise SubtitleError(f"{path}: not a subtitle file (expected {', '.join(SUBTITLE_SUFFIXES)})")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SubtitleError(f"{path}: not UTF-8 ({exc.reason} at byte {exc.start})") from None
    return parse_vtt(text, str(path)) if suffix == ".vtt" else parse_srt(text, str(path))


def format_time(seconds: float, separator: str = ",") -> str:
    """Seconds as ``HH:MM:SS,mmm`` (``separator="."`` for WebVTT)."""
    millis = int(round(seconds * 1000))
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def write_srt(cues: Iterable[Cue | tuple[float, float, str]], path: str | os.PathLike) -> Path:
    """Write cues (or ``(start, end, text)`` tuples) as a SubRip file."""
    blocks = []
    for n, cue in enumerate(cues, 1):
        start, end, text = (cue.start, cue.end, cue.text) if isinstance(cue, Cue) else cue
        blocks.append(f"{n}\n{format_time(start)} {_ARROW} {format_time(end)}\n{text}\n")
    path = Path(path)
    path.write_text("\n".join(blocks), encoding="utf-8")
    return path
