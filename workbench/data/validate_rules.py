"""The validator's rules: small functions from one sample (and its audio probes) to findings.

Per-sample rules take an :class:`Item` (the sample, where it came from, its probes and the
:class:`Options`) and return findings with stable codes; :class:`FileState` keeps the small
per-sample facts of one file that the cross-sample rules need (duplicate ids and audio,
speaking-rate outliers, split leakage). :func:`workbench.data.validate.validate` runs them all.
"""

from __future__ import annotations

import statistics
from array import array
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from workbench.audio import TARGET_SAMPLE_RATE
from workbench.data.contract import Verdict
from workbench.data.findings import ERROR, WARNING, Finding, finding
from workbench.data.probe import AudioInfo
from workbench.data.sample import Sample

MAX_CLIPPED_FRACTION = 0.001  # above this share of clipped samples a clip is reported
RATE_Z_LIMIT = 3.5  # robust z-score (median/MAD) above which a speaking rate is an outlier
RATE_MIN_SAMPLES = 8  # fewer rates than this give no meaningful distribution
RATE_MAD_FLOOR = 0.05  # MAD is at least 5% of the median, so near-identical rates never fire


# --- per-sample rules -----------------------------------------------------------------------------


@dataclass
class LengthCheck:
    """Token lengths against a model's context (see :func:`rule_length`).

    ``tokens`` estimates a sample's token count from the durations of its audio (seconds by path),
    None when a duration is unknown. It comes from the stage that knows the model's tokenization:
    :func:`workbench.training.context.length_check` builds one from a model's processor.
    """

    tokens: Callable[[Sample, Mapping[str, float]], int | None]
    limit: int  # tokens
    model: str  # for messages
    longest: tuple[int, str] = (0, "")  # (tokens, sample id) of the longest sample seen
    # what the model's prompt leaves out of a sample, given its clips' durations by path
    notes: Callable[[Sample, Mapping[str, float]], list[str]] | None = None

    @staticmethod
    def seconds(item: Item) -> dict[str, float]:
        """The durations of the item's readable clips, by path."""
        return {p: i.duration for p, i in item.probes.items() if i.readable and i.duration is not None}

    def estimate(self, item: Item) -> int | None:
        tokens = self.tokens(item.sample, self.seconds(item))
        if tokens is not None and tokens > self.longest[0]:
            self.longest = (tokens, item.sample.id)
        return tokens


@dataclass(frozen=True)
class Options:
    """Thresholds of the rules (the keyword arguments of :func:`validate`)."""

    min_duration: float = 0.5
    max_duration: float = 30.0
    max_silence: float = 1.0
    allow_placeholder: bool = False
    length: LengthCheck | None = None  # with a model: TOO_LONG_FOR_CONTEXT


@dataclass
class Item:
    """One sample being checked, with what every rule needs computed once.

    ``audio`` maps each distinct audio path of the sample to ``(message index, role)``, where
    role is ``target``, ``reference`` or ``audio`` (start_index unusable); a path used both as
    target and as reference is listed as target. ``placeholders`` are the sample's silent files
    when ``misc.placeholder_audio`` says the converter replaced missing audio: PLACEHOLDER_AUDIO
    covers them, so the content rules (silence, duplicates, rates) leave them alone.
    """

    sample: Sample
    where: dict[str, Any]
    verdict: Verdict  # the sample contract's decision (workbench.data.contract.check_sample)
    audio: dict[str, tuple[int, str]]
    probes: dict[str, AudioInfo]
    options: Options
    placeholders: frozenset[str] = frozenset()

    @property
    def start_ok(self) -> bool:
        """``start_index`` is a usable message index."""
        return not any(p.code == "BAD_START_INDEX" for p in self.verdict.problems)

    @property
    def targets(self) -> tuple[int, ...]:
        """Indices of the supervised audio messages."""
        return self.verdict.targets

    def find(self, code: str, message: str, **extra: Any) -> Finding:
        return finding(code, message, **self.where, **extra)


def _label(role: str) -> str:
    """``target audio``, ``reference audio`` or plain ``audio`` (when start_index is unusable)."""
    return "audio" if role == "audio" else f"{role} audio"


def _secs(x: float) -> str:
    return f"{x:.1f}" if x >= 1 else f"{x:.2f}"


def rule_contract(item: Item) -> list[Finding]:
    """BAD_START_INDEX, BAD_STRUCTURE, MISSING_TARGET_AUDIO, NO_AUDIO: the sample contract's problems.

    :func:`workbench.data.contract.check_sample` decides; convert routes by the same verdict and the
    training collator refuses by it, so what passes here is what training accepts.
    """
    return [
        item.find(p.code, p.message, field=p.field, **({"hint": p.hint} if p.hint else {}))
        for p in item.verdict.problems
    ]


def rule_placeholder(item: Item) -> list[Finding]:
    """PLACEHOLDER_AUDIO: the converter wrote silent stand-ins for missing files."""
    placeholders = item.sample.misc.get("placeholder_audio")
    if not placeholders:
        return []
    names = (
        ", ".join(map(str, placeholders)) if isinstance(placeholders, (list, tuple)) else str(placeholders)
    )
    severity = WARNING if item.options.allow_placeholder else ERROR
    allowed = " (allowed by allow_placeholder)" if item.options.allow_placeholder else ""
    return [
        item.find(
            "PLACEHOLDER_AUDIO",
            f"missing audio {names} was replaced by a silent placeholder, not real speech{allowed}",
            severity=severity,
            field="misc.placeholder_audio",
        )
    ]


def rule_text(item: Item) -> list[Finding]:
    """EMPTY_TEXT: the transcript of every audio (target and reference) and the target text."""
    out = []
    sample = item.sample
    for path, (i, role) in item.audio.items():
        j = _transcript_index(sample, i)
        if j is None:
            continue  # no transcript at all: BAD_STRUCTURE
        if not sample.messages[j].content.strip():  # type: ignore[union-attr]
            what = "target text" if role == "target" else "transcript"
            out.append(
                item.find(
                    "EMPTY_TEXT",
                    f"the {what} of {_label(role)} {path} (message {j}) is empty",
                    field=f"messages[{j}]",
                )
            )
    if item.start_ok and not item.targets:
        text = sample.target_text()
        if text is not None and not text.strip():
            out.append(item.find("EMPTY_TEXT", "the target text of this prompt is empty"))
    return out


def _transcript_index(sample: Sample, index: int) -> int | None:
    """Index of the user text that transcribes the audio at ``index`` (as :meth:`Sample.text_for_audio`)."""
    for j in range(index - 1, -1, -1):
        m = sample.messages[j]
        if m.role == "user" and m.text is not None:
            return j
        if m.is_audio:
            return None
    return None


def rule_audio_files(item: Item) -> list[Finding]:
    """AUDIO_NOT_FOUND / AUDIO_UNREADABLE / AUDIO_EMPTY, and the quality warnings of readable audio:
    SAMPLE_RATE_MISMATCH, MULTI_CHANNEL, CLIPPING, LONG_SILENCE. One finding per file and problem."""
    out = []
    max_silence = item.options.max_silence
    for path, (i, role) in item.audio.items():
        if path in item.placeholders:
            continue
        info = item.probes[path]
        where = {"field": f"messages[{i}]"}
        if not info.exists:
            out.append(item.find("AUDIO_NOT_FOUND", f"{_label(role)} {path} does not exist", **where))
            continue
        if info.error is not None:
            out.append(
                item.find(
                    "AUDIO_UNREADABLE", f"{_label(role)} {path} cannot be decoded ({info.error})", **where
                )
            )
            continue
        if not info.frames:
            out.append(item.find("AUDIO_EMPTY", f"{_label(role)} {path} has no samples (0 s long)", **where))
            continue
        if info.nonfinite:
            out.append(
                item.find(
                    "AUDIO_EMPTY", f"{_label(role)} {path} contains NaN or infinite sample values", **where
                )
            )
            continue
        if info.all_zero:
            out.append(
                item.find(
                    "AUDIO_EMPTY", f"{_label(role)} {path} is all zeros (pure digital silence)", **where
                )
            )
            continue
        if info.sample_rate != TARGET_SAMPLE_RATE:
            out.append(
                item.find(
                    "SAMPLE_RATE_MISMATCH",
                    f"{_label(role)} {path} is {info.sample_rate} Hz, not {TARGET_SAMPLE_RATE} Hz: it will be resampled",
                    **where,
                )
            )
        if info.channels and info.channels > 1:
            out.append(
                item.find(
                    "MULTI_CHANNEL",
                    f"{_label(role)} {path} has {info.channels} channels: it will be down-mixed to mono",
                    **where,
                )
            )
        if (info.clipped_fraction or 0.0) > MAX_CLIPPED_FRACTION:
            out.append(
                item.find(
                    "CLIPPING",
                    f"{_label(role)} {path} has {info.clipped_fraction:.2%} clipped samples (peak {info.peak:.3f}), "
                    f"above the {MAX_CLIPPED_FRACTION:.1%} limit",
                    **where,
                )
            )
        lead, trail = info.leading_silence or 0.0, info.trailing_silence or 0.0
        if lead > max_silence or trail > max_silence:
            parts = []
            if lead > max_silence:
                parts.append(f"{_secs(lead)} s of silence at the start")
            if trail > max_silence:
                parts.append(f"{_secs(trail)} s of silence at the end")
            out.append(
                item.find(
                    "LONG_SILENCE",
                    f"{_label(role)} {path} has {' and '.join(parts)} (limit {_secs(max_silence)} s)",
                    **where,
                )
            )
    return out


def rule_duration(item: Item) -> list[Finding]:
    """DURATION_OUT_OF_RANGE: target audio between ``min_duration`` and ``max_duration`` seconds."""
    out = []
    lo, hi = item.options.min_duration, item.options.max_duration
    for path, (i, role) in item.audio.items():
        info = item.probes[path]
        if (
            role != "target"
            or path in item.placeholders
            or not info.readable
            or not info.frames
            or info.duration is None
        ):
            continue
        if info.duration > hi:
            msg = f"target audio {path} lasts {_secs(info.duration)} s, above the {_secs(hi)} s maximum"
        elif info.duration < lo:
            msg = f"target audio {path} lasts {_secs(info.duration)} s, below the {_secs(lo)} s minimum"
        else:
            continue
        out.append(item.find("DURATION_OUT_OF_RANGE", msg, field=f"messages[{i}]"))
    return out


def rule_ref_is_target(item: Item) -> list[Finding]:
    """REF_IS_TARGET: a reference audio that is a target of the same sample, by path or by content."""
    if not item.start_ok or not item.targets:
        return []
    messages = item.sample.messages
    target_paths = {messages[i].audio_url for i in item.targets}
    target_hashes = {
        item.probes[p].content_hash: p
        for p in target_paths
        if item.probes[p].content_hash and p not in item.placeholders
    }
    out = []
    seen = set()
    for i, m in enumerate(messages[: item.sample.start_index]):
        path = m.audio_url
        if path is None or path in seen:
            continue
        seen.add(path)
        if path in target_paths:
            msg = f"reference audio {path} (message {i}) is also this sample's target audio"
        else:
            h = item.probes[path].content_hash
            if h is None or h not in target_hashes or path in item.placeholders:
                continue
            msg = f"reference audio {path} (message {i}) has the same content as target audio {target_hashes[h]}"
        out.append(item.find("REF_IS_TARGET", msg, field=f"messages[{i}]"))
    return out


def rule_length(item: Item) -> list[Finding]:
    """TOO_LONG_FOR_CONTEXT: the sample's tokens (text plus 25 per second of audio) exceed the model's context.

    Only with a model (``validate(..., length=length_check(model))``); the count is estimated from durations, at most
    one frame per clip above the exact one training computes before its first step.
    """
    check = item.options.length
    if check is None:
        return []
    tokens = check.estimate(item)
    if tokens is None or tokens <= check.limit:
        return []
    clips = sum(1 for m in item.sample.messages if m.is_audio)
    return [
        item.find(
            "TOO_LONG_FOR_CONTEXT",
            f"about {tokens:,} tokens ({clips} clip(s) at 25 tokens per second, plus text), over the "
            f"{check.limit:,}-token context of {check.model}",
        )
    ]


def rule_model_prompt(item: Item) -> list[Finding]:
    """NOT_IN_MODEL_PROMPT: a part of the sample that the model's prompt has no place for (with a model only).

    Higgs TTS 3, for one, has no system or scene text and one reference: the sample still trains, without them.
    """
    check = item.options.length
    if check is None or check.notes is None:
        return []
    notes = check.notes(item.sample, check.seconds(item))
    return [item.find("NOT_IN_MODEL_PROMPT", f"{note} ({check.model})") for note in notes]


RULES: tuple[Callable[[Item], list[Finding]], ...] = (
    rule_contract,
    rule_placeholder,
    rule_text,
    rule_audio_files,
    rule_duration,
    rule_ref_is_target,
    rule_length,
    rule_model_prompt,
)


# --- cross-sample rules --------------------------------------------------------------------------


class FileState:
    """What the cross-sample rules remember about one file: small facts, never whole samples."""

    def __init__(self, name: str):
        self.name = name
        self.ids: set[str] = set()
        self.target_by_path: dict[str, str] = {}  # target path -> first sample id
        self.target_by_hash: dict[str, tuple[str, str]] = {}  # content hash -> (sample id, path)
        self._rates = array("d")
        self._rate_ids: list[str] = []
        self._rate_files: list[str | None] = []
        self._rate_index = array("q")  # -1 when unknown
        self._rate_line = array("q")  # -1 when unknown

    def check_id(self, item: Item) -> list[Finding]:
        """DUPLICATE_ID within this file."""
        sample_id = item.sample.id
        if sample_id in self.ids:
            return [
                item.find(
                    "DUPLICATE_ID",
                    f"id '{sample_id}' is already used by an earlier sample in {self.name}",
                    field="id",
                )
            ]
        self.ids.add(sample_id)
        return []

    def check_targets(self, item: Item, other: FileState | None) -> list[Finding]:
        """DUPLICATE_AUDIO within this file and, when ``other`` (the training file) is given, SPLIT_LEAKAGE."""
        out = []
        sample_id = item.sample.id
        for path, (i, role) in item.audio.items():
            if role != "target":
                continue
            h = None if path in item.placeholders else item.probes[path].content_hash
            if other is not None:
                leak = self._match(other, path, h)
                if leak is not None:
                    out.append(
                        item.find(
                            "SPLIT_LEAKAGE",
                            f"target audio {path} of this sample {leak} in the training file {other.name}",
                            field=f"messages[{i}]",
                        )
                    )
            dup = self._match(self, path, h)
            if dup is not None:
                out.append(item.find("DUPLICATE_AUDIO", f"target audio {path} {dup}", field=f"messages[{i}]"))
            else:
                self.target_by_path.setdefault(path, sample_id)
                if h is not None:
                    self.target_by_hash.setdefault(h, (sample_id, path))
        return out

    @staticmethod
    def _match(state: FileState, path: str, h: str | None) -> str | None:
        first = state.target_by_path.get(path)
        if first is not None:
            return f"is also the target of sample '{first}'"
        if h is not None and h in state.target_by_hash:
            first, other_path = state.target_by_hash[h]
            return f"has the same content as {other_path}, the target of sample '{first}'"
        return None

    def add_rate(self, item: Item) -> None:
        """Remember the target's characters per second when every target has text and a duration."""
        if not item.start_ok or not item.targets:
            return
        chars, seconds = 0, 0.0
        for i in item.targets:
            path = item.sample.messages[i].audio_url
            if path in item.placeholders:
                return
            info = item.probes[path]  # type: ignore[index]
            text = item.sample.text_for_audio(i)
            if not text or not text.strip() or not info.readable or not info.duration or info.all_zero:
                return
            chars += len(text.strip())
            seconds += info.duration
        self._rates.append(chars / seconds)
        self._rate_ids.append(item.sample.id)
        self._rate_files.append(item.where.get("source_file"))
        index, line = item.where.get("source_index"), item.where.get("source_line")
        self._rate_index.append(index if index is not None else -1)
        self._rate_line.append(line if line is not None else -1)

    def rate_outliers(self) -> list[Finding]:
        """SPEAKING_RATE_OUTLIER: robust z-score (median, MAD) of characters per second above 3.5."""
        if len(self._rates) < RATE_MIN_SAMPLES:
            return []
        median = statistics.median(self._rates)
        mad = statistics.median(abs(r - median) for r in self._rates)
        scale = max(mad, RATE_MAD_FLOOR * median)
        if scale <= 0:
            return []
        out = []
        for k, rate in enumerate(self._rates):
            z = 0.6745 * (rate - median) / scale
            if abs(z) <= RATE_Z_LIMIT:
                continue
            direction = "fast" if z > 0 else "slow"
            index, line = self._rate_index[k], self._rate_line[k]
            out.append(
                finding(
                    "SPEAKING_RATE_OUTLIER",
                    f"the target text is read at {rate:.1f} characters/s, far too {direction} for this dataset "
                    f"(median {median:.1f} characters/s, robust z-score {z:+.1f}, limit {RATE_Z_LIMIT})",
                    sample_id=self._rate_ids[k],
                    source_file=self._rate_files[k],
                    source_index=index if index >= 0 else None,
                    source_line=line if line >= 0 else None,
                )
            )
        return out
