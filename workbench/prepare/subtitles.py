"""Subtitles: read SubRip (``.srt``) and WebVTT (``.vtt``) cues, write ``.srt``.

A cue is a time range and the words spoken in it. SubRip is read by `srt`, WebVTT by
`webvtt-py` (headers, NOTE/STYLE/REGION blocks, cue identifiers and settings, voice spans).
Reading keeps what is speech: markup (``<i>``, ``<v Anna>``, ``{\\an8}``), sound descriptions in
square brackets (``[music]``) and music notes are removed, lines are joined with spaces, and cues
left empty are dropped. Cues come back sorted by start time; overlapping cues are kept (clip
planning merges them). Errors name the file, the cue (its number in the file, from 1) and, where
the file is malformed, the line, with a hint (``talk.srt:12: bad time '00:01:xx,000' in cue 3;
expected HH:MM:SS,mmm``).

Examples:
    >>> cues = parse_srt("1\\n00:00:01,000 --> 00:00:02,500\\n<i>Hello</i> there.\\n")
    >>> cues[0].start, cues[0].end, cues[0].text
    (1.0, 2.5, 'Hello there.')
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import srt
import webvtt
from webvtt.errors import MalformedCaptionError, MalformedFileError
from webvtt.models import Timestamp

from workbench.files import write_text

SUBTITLE_SUFFIXES = (".srt", ".vtt")

_ARROW = "-->"
_SRT_TIME = "HH:MM:SS,mmm"
_VTT_TIME = "[HH:]MM:SS.mmm"
_MARKUP = re.compile(r"<[^>]*>|\{\\[^}]*\}")
_SOUNDS = re.compile(r"\[[^\]]*\]|[♪♫]")


class SubtitleError(ValueError):
    """A subtitle file that cannot be read, located by file, cue and (where known) line."""


@dataclass(frozen=True)
class Cue:
    """One subtitle cue: seconds from the start of the recording and its text."""

    start: float
    end: float
    text: str
    number: int | None = None  # the cue's place in its file, from 1


def clean_text(lines: Iterable[str]) -> str:
    """Cue lines as one line of spoken text: markup and bracketed sound descriptions removed."""
    text = " ".join(_SOUNDS.sub(" ", _MARKUP.sub("", line)) for line in lines)
    return " ".join(text.split())


def _lines(text: str) -> list[str]:
    """``text`` split at CRLF, LF or a lone CR (``srt`` reads no lone CR), without a byte-order mark."""
    return text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n").split("\n")


def _cue(name: str, number: int, start: float, end: float, lines: Iterable[str]) -> Cue:
    """A cue whose end is after its start (neither parser refuses one that is not)."""
    if end <= start:
        raise SubtitleError(
            f"{name}: cue {number} ends at {end:.3f} s, not after its start {start:.3f} s; "
            "fix its times (a cue's end comes after its start)"
        )
    return Cue(start, end, clean_text(lines), number)


def _bad_timing(
    lines: list[str],
    name: str,
    first_line: int,
    first_cue: int,
    read_time: Callable[[str], object],
    expected: str,
) -> SubtitleError | None:
    """The first timing line among ``lines`` with a time ``read_time`` refuses, as an error naming its line.

    The libraries skip (``webvtt-py``) or stop at (``srt``) a malformed cue without saying which
    time is wrong, so this finds it; it runs only on a file the library did not read whole.
    """
    cue = first_cue
    for offset, line in enumerate(lines):
        if _ARROW not in line:
            continue
        left, _, right = line.partition(_ARROW)
        for value in (left.strip(), (right.split() or [""])[0]):  # cue settings follow the end time
            try:
                read_time(value)
            except (ValueError, MalformedCaptionError):
                return SubtitleError(
                    f"{name}:{first_line + offset}: bad time {value!r} in cue {cue}; expected {expected}"
                )
        cue += 1
    return None


def parse_srt(text: str, name: str = "<srt>") -> list[Cue]:
    """The cues of SubRip text, sorted by start time (empty cues dropped).

    Raises:
        SubtitleError: a malformed cue or time, or a cue that ends before it starts.
    """
    text = "\n".join(_lines(text))
    cues: list[Cue] = []
    try:
        for number, sub in enumerate(srt.parse(text), 1):
            start, end = sub.start.total_seconds(), sub.end.total_seconds()
            cues.append(_cue(name, number, start, end, sub.content.split("\n")))
    except srt.SRTParseError as exc:
        skipped = len(exc.unmatched_content) - len(exc.unmatched_content.lstrip())
        line = text.count("\n", 0, exc.expected_start + skipped) + 1
        lines = exc.unmatched_content.strip().split("\n")
        bad = _bad_timing(lines, name, line, len(cues) + 1, srt.srt_timestamp_to_timedelta, _SRT_TIME)
        if bad is not None:
            raise bad from None
        k = next((i for i, x in enumerate(lines) if not x.strip().isdigit()), 0)  # past the cue's index
        raise SubtitleError(
            f"{name}:{line + k}: cue {len(cues) + 1}: expected a timing line 'start --> end' ({_SRT_TIME}), "
            f"got {lines[k].strip()!r}"
        ) from None
    return sorted((c for c in cues if c.text), key=lambda c: (c.start, c.end))


def parse_vtt(text: str, name: str = "<vtt>") -> list[Cue]:
    """The cues of WebVTT text, sorted by start time (NOTE/STYLE/REGION blocks and empty cues dropped).

    Raises:
        SubtitleError: no ``WEBVTT`` header, a malformed time, or a cue that ends before it starts.
    """
    try:
        captions = webvtt.from_string(text).captions
    except MalformedFileError:
        raise SubtitleError(f"{name}:1: a WebVTT file starts with 'WEBVTT'; add that line first") from None
    lines = _lines(text)
    unread = sum(_ARROW in line for line in lines) - len(captions)
    if unread > 0:  # webvtt-py skips a cue it cannot read
        bad = _bad_timing(lines, name, 1, 1, Timestamp.from_string, _VTT_TIME)
        raise bad or SubtitleError(
            f"{name}: {unread} cue(s) could not be read; each cue is an optional identifier line, then "
            f"'start --> end' ({_VTT_TIME}) and its text, after an empty line"
        )
    cues = [
        _cue(name, n, c.start_time.in_milliseconds() / 1000, c.end_time.in_milliseconds() / 1000, c.lines)
        for n, c in enumerate(captions, 1)
    ]
    return sorted((c for c in cues if c.text), key=lambda c: (c.start, c.end))


def read_subtitles(path: str | os.PathLike) -> list[Cue]:
    """The cues of an ``.srt`` or ``.vtt`` file (UTF-8, with or without BOM; CRLF tolerated).

    Raises:
        SubtitleError: unknown suffix, not UTF-8, or a malformed cue (file, cue and line named).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUBTITLE_SUFFIXES:
        raise SubtitleError(f"{path}: not a subtitle file (expected {', '.join(SUBTITLE_SUFFIXES)})")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SubtitleError(
            f"{path}: not UTF-8 ({exc.reason} at byte {exc.start}); save the file as UTF-8"
        ) from None
    return parse_vtt(text, str(path)) if suffix == ".vtt" else parse_srt(text, str(path))


def _to_millisecond(seconds: float) -> timedelta:
    """``seconds`` rounded to the millisecond (srt truncates the microseconds it writes)."""
    return timedelta(milliseconds=round(seconds * 1000))


def format_time(seconds: float, separator: str = ",") -> str:
    """Seconds as ``HH:MM:SS,mmm``, rounded to the millisecond (``separator="."`` for WebVTT)."""
    return srt.timedelta_to_srt_timestamp(_to_millisecond(seconds)).replace(",", separator)


def write_srt(cues: Iterable[Cue | tuple[float, float, str]], path: str | os.PathLike) -> Path:
    """Write cues (or ``(start, end, text)`` tuples) as a SubRip file, numbered from 1 in the order given."""
    subs = []
    for n, cue in enumerate(cues, 1):
        start, end, text = (cue.start, cue.end, cue.text) if isinstance(cue, Cue) else cue
        subs.append(srt.Subtitle(n, _to_millisecond(start), _to_millisecond(end), text))
    return write_text(path, srt.compose(subs, reindex=False))
