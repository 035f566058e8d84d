"""Findings: problems found in data, as values people can read and tools can count.

Every converter and validator problem is a :class:`Finding` with a stable ``code``, a
``severity`` (``error`` or ``warning``), a plain-words ``message``, where it came from
(sample id, source file and record index or line) and a ``hint`` saying how to fix it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, replace
from typing import Any

ERROR = "error"
WARNING = "warning"

# Stable codes and what each one means; hints are the default fix advice per code.
CODES: dict[str, tuple[str, str]] = {
    # code: (default severity, hint)
    "BAD_RECORD": (ERROR, "Fix the record so it is a JSON object (one per line in .jsonl files)."),
    "UNKNOWN_FORMAT": (
        ERROR,
        "The record matches no known format; pass --format to force one, or reshape the record.",
    ),
    "BAD_FIELD": (ERROR, "Fix the named field; see the README's format table for what each format expects."),
    "NO_AUDIO": (ERROR, "Add an audio path to the record (the target speech, and optionally a reference)."),
    "MISSING_TARGET_AUDIO": (
        ERROR,
        "Add the assistant target audio after the target text (at or after start_index), "
        "or keep the sample as an evaluation prompt.",
    ),
    "AUDIO_NOT_FOUND": (
        ERROR,
        "Check the path; use --audio-root DIR for relative paths or --remap OLD=NEW if the data moved.",
    ),
    "AUDIO_UNREADABLE": (ERROR, "Re-export the file as WAV/FLAC (it is corrupt or not an audio file)."),
    "AUDIO_EMPTY": (ERROR, "Replace the clip: it has no samples, is all zeros, or holds NaN/Inf values."),
    "DURATION_OUT_OF_RANGE": (
        ERROR,
        "Cut long clips into sentences or drop very short ones (or change --min/--max-duration).",
    ),
    "EMPTY_TEXT": (ERROR, "Add the transcript; speech without text teaches nothing."),
    "REF_IS_TARGET": (
        ERROR,
        "Use a different utterance of the same speaker as reference; a reference equal to the target "
        "teaches the model to copy.",
    ),
    "TOO_LONG_FOR_CONTEXT": (
        ERROR,
        "Cut the clip into sentences, use a shorter reference, or move the sample to the evaluation prompts; "
        "training would refuse it.",
    ),
    "NOT_IN_MODEL_PROMPT": (
        WARNING,
        "This model's prompt has no place for it: the sample trains without it. Put style in the text itself "
        "(e.g. inline tags), or split the sample into one sample per target.",
    ),
    "DUPLICATE_ID": (ERROR, "Give every sample a unique id."),
    "BAD_START_INDEX": (ERROR, "Set start_index to the index of the target user text message."),
    "START_INDEX_ADJUSTED": (
        WARNING,
        "Fine: audio in a user turn is a reference, never a target. To silence this, point start_index at "
        "the target's text in the source (or leave it out).",
    ),
    "BAD_STRUCTURE": (
        ERROR,
        "Audio must be in assistant turns after their transcript; re-run `workbench convert` on the source.",
    ),
    "PLACEHOLDER_AUDIO": (
        ERROR,
        "This sample uses a silent placeholder written by --missing-audio placeholder; supply the real "
        "audio (or pass --allow-placeholder for pipeline smoke tests only).",
    ),
    "SPLIT_LEAKAGE": (ERROR, "Re-split with `workbench split` so no target audio is in both files."),
    "SAMPLE_RATE_MISMATCH": (WARNING, "Fine: it will be resampled to 24 kHz; resample offline to save time."),
    "MULTI_CHANNEL": (
        WARNING,
        "Fine: it will be down-mixed to mono; check both channels hold the same voice.",
    ),
    "CLIPPING": (WARNING, "Re-record or lower the gain: clipped peaks sound harsh and are learned as such."),
    "LONG_SILENCE": (WARNING, "Trim leading/trailing silence (fix recipe: trim_silence)."),
    "SPEAKING_RATE_OUTLIER": (
        WARNING,
        "The transcript probably does not match the audio (wrong file, truncated text or audio).",
    ),
    "DUPLICATE_AUDIO": (WARNING, "Drop duplicates so one clip is not learned several times."),
}


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem with one record or sample."""

    code: str
    severity: str
    message: str
    sample_id: str | None = None
    source_file: str | None = None
    source_index: int | None = None
    source_line: int | None = None
    field: str | None = None
    hint: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    def format_line(self) -> str:
        """One human-readable line: ``ERROR AUDIO_NOT_FOUND [id] file:idx: message (hint: ...)``."""
        where = ""
        if self.source_file is not None:
            if self.source_line is not None:
                where = f"{self.source_file}:{self.source_line}"
            elif self.source_index is not None:
                where = f"{self.source_file} record {self.source_index}"
            else:
                where = self.source_file
        who = f"[{self.sample_id}] " if self.sample_id else ""
        loc = f"{where}: " if where else ""
        message = self.message.rstrip()
        if self.hint:
            message = f"{message}{'' if message.endswith(('.', '!', '?')) else '.'} Hint: {self.hint}"
        return f"{self.severity.upper():7s} {self.code} {who}{loc}{message}"


def finding(
    code: str, message: str, *, severity: str | None = None, hint: str | None = None, **where: Any
) -> Finding:
    """Build a :class:`Finding` with the code's default severity and hint."""
    default_severity, default_hint = CODES[code]
    return Finding(
        code=code,
        severity=severity or default_severity,
        message=message,
        hint=hint if hint is not None else default_hint,
        **where,
    )


def summarize(findings: Iterable[Finding]) -> dict[str, Any]:
    """Counts by code and by severity."""
    by_code: Counter[str] = Counter()
    by_severity: Counter[str] = Counter()
    for f in findings:
        by_code[f.code] += 1
        by_severity[f.severity] += 1
    return {
        "by_code": dict(sorted(by_code.items())),
        "by_severity": {ERROR: by_severity.get(ERROR, 0), WARNING: by_severity.get(WARNING, 0)},
    }


def grouped_summary(findings: Iterable[Finding], examples: int = 3) -> list[str]:
    """Findings grouped by code, errors first: a count, a few examples, the fix hint once.

    Args:
        findings: Any findings (a whole dataset's are fine: only counts and examples are kept).
        examples: Examples shown per code.

    Returns:
        Lines like ``ERROR BAD_STRUCTURE: 58 samples`` then ``  - [id] file:line: message``
        (up to ``examples``), ``  - ... and 55 more`` and ``  hint: ...``.
    """
    groups: dict[tuple[str, str], list[Finding]] = {}
    counts: Counter[tuple[str, str]] = Counter()
    for f in findings:
        key = (f.severity, f.code)
        counts[key] += 1
        shown = groups.setdefault(key, [])
        if len(shown) < examples:
            shown.append(f)
    lines = []
    for key in sorted(groups, key=lambda k: (k[0] != ERROR, -counts[k], k[1])):
        severity, code = key
        lines.append(f"{severity.upper()} {code}: {counts[key]:,} finding{'s' * (counts[key] != 1)}")
        for f in groups[key]:
            line = replace(f, severity=severity, hint=None).format_line()
            lines.append("  - " + line.split(f" {code} ", 1)[-1])
        if counts[key] > len(groups[key]):
            lines.append(f"  - ... and {counts[key] - len(groups[key]):,} more")
        hint = next((f.hint for f in groups[key] if f.hint), None)
        if hint:
            lines.append(f"  hint: {hint}")
    return lines
