"""Dataset statistics: how much speech, from whom, in what shape.

:func:`inspect` streams a canonical JSONL file twice (paths first, then per-sample facts),
probes the distinct audio files once through the probe cache, and summarises: samples
(trainable, prompt or invalid, as the sample contract :func:`~workbench.data.contract.check_sample`
decides for convert, validate and the collator alike), speakers, hours and duration percentiles
of target audio, sample rates and channel counts of the files, characters per second, and source
formats.

Example:
    >>> stats = inspect("data/train.jsonl")  # doctest: +SKIP
    >>> print(stats.format_text())  # doctest: +SKIP
"""

from __future__ import annotations

import logging
from array import array
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from workbench.data.contract import INVALID, PROMPT, check_sample
from workbench.data.probe import AudioInfo, probe_many
from workbench.data.validate import SampleSource, Source

log = logging.getLogger(__name__)

PERCENTILES = (0, 5, 50, 95, 100)


def _summary(values: array) -> dict[str, float] | None:
    """``{"p0", "p5", "p50", "p95", "p100", "mean"}`` of ``values``, or None when empty."""
    if not values:
        return None
    arr = np.frombuffer(values, dtype=np.float64)
    out = {
        f"p{p}": round(float(v), 3) for p, v in zip(PERCENTILES, np.percentile(arr, PERCENTILES), strict=True)
    }
    out["mean"] = round(float(arr.mean()), 3)
    return out


@dataclass
class DatasetStats:
    """Summary numbers of one dataset (see :func:`inspect`).

    Attributes:
        samples: samples read (``trainable + prompts + invalid``).
        bad_records: lines that are not canonical samples.
        trainable, prompts, invalid: samples by the sample contract's verdict
            (:func:`workbench.data.contract.check_sample`), the same split convert makes into the
            trainable, prompts and rejected files.
        speakers: speaker -> sample count (``None`` speakers counted as ``"<unknown>"``).
        target_hours: summed duration of the target audio of all samples (None without probing).
        duration: percentiles of target audio duration, seconds (per target occurrence).
        sample_rates: sample rate -> number of distinct readable files.
        channels: channel count -> number of distinct readable files.
        chars_per_second: percentiles of target text characters per second of target audio.
        source_formats: ``misc.source_format`` -> sample count.
        audio_files: distinct audio files referenced; ``missing_audio`` and ``unreadable_audio``
            count those that do not exist or cannot be decoded.
    """

    samples: int = 0
    bad_records: int = 0
    trainable: int = 0
    prompts: int = 0
    invalid: int = 0
    speakers: dict[str, int] = field(default_factory=dict)
    target_hours: float | None = None
    duration: dict[str, float] | None = None
    sample_rates: dict[int, int] = field(default_factory=dict)
    channels: dict[int, int] = field(default_factory=dict)
    chars_per_second: dict[str, float] | None = None
    source_formats: dict[str, int] = field(default_factory=dict)
    audio_files: int = 0
    missing_audio: int = 0
    unreadable_audio: int = 0
    probed: bool = True

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict (integer keys become strings, as JSON requires)."""
        return {
            "samples": self.samples,
            "bad_records": self.bad_records,
            "trainable": self.trainable,
            "prompts": self.prompts,
            "invalid": self.invalid,
            "speakers": dict(self.speakers),
            "target_hours": self.target_hours,
            "duration": self.duration,
            "sample_rates": {str(k): v for k, v in self.sample_rates.items()},
            "channels": {str(k): v for k, v in self.channels.items()},
            "chars_per_second": self.chars_per_second,
            "source_formats": dict(self.source_formats),
            "audio_files": self.audio_files,
            "missing_audio": self.missing_audio,
            "unreadable_audio": self.unreadable_audio,
            "probed": self.probed,
        }

    def format_text(self) -> str:
        """A short human-readable summary."""
        lines = [f"{self.samples:,} samples: {self.trainable:,} trainable, {self.prompts:,} prompts"]
        if self.invalid:
            lines[0] += f", {self.invalid:,} invalid (run validate for why)"
        if self.bad_records:
            lines.append(f"{self.bad_records:,} lines are not canonical samples (run validate for details)")
        top = ", ".join(f"{s} {n:,}" for s, n in list(self.speakers.items())[:5])
        more = f", … ({len(self.speakers) - 5} more)" if len(self.speakers) > 5 else ""
        lines.append(f"{len(self.speakers)} speaker{'' if len(self.speakers) == 1 else 's'}: {top}{more}")
        if self.target_hours is not None:
            lines.append(f"target audio: {self.target_hours:.2f} h")
        if self.duration:
            d = self.duration
            lines.append(
                f"target duration s: min {d['p0']:.2f}, p5 {d['p5']:.2f}, median {d['p50']:.2f}, "
                f"p95 {d['p95']:.2f}, max {d['p100']:.2f}"
            )
        if self.chars_per_second:
            c = self.chars_per_second
            lines.append(f"characters/s: p5 {c['p5']:.1f}, median {c['p50']:.1f}, p95 {c['p95']:.1f}")
        if self.probed:
            rates = ", ".join(f"{r} Hz × {n:,}" for r, n in self.sample_rates.items())
            chans = ", ".join(f"{c} ch × {n:,}" for c, n in self.channels.items())
            lines.append(f"{self.audio_files:,} audio files: {rates or 'none readable'}; {chans or '-'}")
            if self.missing_audio or self.unreadable_audio:
                lines.append(
                    f"{self.missing_audio:,} missing, {self.unreadable_audio:,} unreadable audio files"
                )
        if self.source_formats:
            lines.append("source formats: " + ", ".join(f"{k} {n:,}" for k, n in self.source_formats.items()))
        return "\n".join(lines)


def inspect(data: SampleSource, *, probe_audio: bool = True) -> DatasetStats:
    """Summarise a canonical dataset.

    Args:
        data: canonical JSONL path, or an iterable of :class:`Sample`.
        probe_audio: read the audio files (through the probe cache) for durations, rates and
            channels; without it only text-level counts are given.

    Returns:
        A :class:`DatasetStats`.

    Raises:
        FileNotFoundError: ``data`` is a path that does not exist.
    """
    source = Source(data)
    probes: dict[str, AudioInfo] = {}
    if probe_audio:
        probes = probe_many(sorted(set(source.audio_paths())))
    stats = DatasetStats(probed=probe_audio)
    speakers: Counter[str] = Counter()
    formats: Counter[str] = Counter()
    durations = array("d")
    rates = array("d")
    for record in source.records():
        sample = record.sample
        if sample is None:
            stats.bad_records += 1
            continue
        stats.samples += 1
        speakers[sample.speaker or "<unknown>"] += 1
        fmt = sample.misc.get("source_format")
        if fmt is not None:
            formats[str(fmt)] += 1
        start = sample.start_index if record.bad_start_index is None else record.bad_start_index
        verdict = check_sample(sample, start_index=start)
        if verdict.kind == PROMPT:
            stats.prompts += 1
            continue
        if verdict.kind == INVALID:
            stats.invalid += 1
            continue
        stats.trainable += 1
        targets = verdict.targets
        if not probe_audio:
            continue
        chars, seconds, complete = 0, 0.0, True
        for i in targets:
            info = probes.get(sample.messages[i].audio_url)  # type: ignore[arg-type]
            if info is None or not info.readable or not info.frames:
                complete = False
                continue
            durations.append(info.duration or 0.0)
            seconds += info.duration or 0.0
            text = sample.text_for_audio(i)
            if text and text.strip():
                chars += len(text.strip())
            else:
                complete = False
        if complete and seconds > 0:
            rates.append(chars / seconds)

    stats.speakers = dict(speakers.most_common())
    stats.source_formats = dict(formats.most_common())
    if probe_audio:
        stats.target_hours = round(sum(durations) / 3600, 4)
        stats.duration = _summary(durations)
        stats.chars_per_second = _summary(rates)
        readable = [p for p in probes.values() if p.readable]
        stats.audio_files = len(probes)
        stats.missing_audio = sum(1 for p in probes.values() if not p.exists)
        stats.unreadable_audio = sum(1 for p in probes.values() if p.exists and p.error is not None)
        stats.sample_rates = dict(sorted(Counter(p.sample_rate for p in readable).items()))  # type: ignore[arg-type]
        stats.channels = dict(sorted(Counter(p.channels for p in readable).items()))  # type: ignore[arg-type]
    log.info("inspected %s: %d samples, %d trainable", source.name, stats.samples, stats.trainable)
    return stats
