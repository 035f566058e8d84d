"""Split canonical samples into training and validation files, without leakage.

The split is deterministic and independent of file order: every group of samples gets a
rank from ``sha256(seed:key)`` and groups are moved to validation in rank order until the
requested fraction is reached. Groups are speakers (``by="speaker"``) or single samples
(``by="sample"``), merged whenever they share a target audio path, so no target audio ends up
in both files. Prompts (samples without target audio) go to neither file.

Example:
    >>> result = split("data/all.jsonl", "data/train.jsonl", "data/val.jsonl", val_fraction=0.1)  # doctest: +SKIP
    >>> result.to_dict()["val"]  # doctest: +SKIP
    120
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from workbench.data.contract import check_sample
from workbench.data.sample import AtomicJsonlWriter, Sample, read_samples_with_lines
from workbench.data.validate import SampleSource

log = logging.getLogger(__name__)

BY_CHOICES = ("speaker", "sample")
UNKNOWN_SPEAKER = "<unknown>"


@dataclass
class SplitResult:
    """What :func:`split` wrote.

    Attributes:
        train: samples written to ``train_out``.
        val: samples written to ``val_out``.
        prompts_skipped: samples without target audio, written to neither file.
        train_speakers: speaker -> sample count in the training file.
        val_speakers: speaker -> sample count in the validation file.
        by: the grouping actually used (``speaker`` or ``sample``).
        requested_by: the grouping asked for.
        fallback: why ``by`` differs from ``requested_by``, else None.
        merged_groups: groups joined because they share target audio.
    """

    train_out: str
    val_out: str
    train: int = 0
    val: int = 0
    prompts_skipped: int = 0
    train_speakers: dict[str, int] = field(default_factory=dict)
    val_speakers: dict[str, int] = field(default_factory=dict)
    by: str = "speaker"
    requested_by: str = "speaker"
    fallback: str | None = None
    merged_groups: int = 0
    val_fraction: float = 0.05
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable summary."""
        return asdict(self)

    def format_text(self) -> str:
        """A few plain lines for the CLI and notebooks."""
        lines = [
            f"train: {self.train:,} samples, {len(self.train_speakers)} speakers -> {self.train_out}",
            f"val:   {self.val:,} samples, {len(self.val_speakers)} speakers -> {self.val_out}",
            f"split by {self.by}, seed {self.seed}, val_fraction {self.val_fraction}",
        ]
        if self.prompts_skipped:
            lines.append(f"{self.prompts_skipped:,} prompts (no target audio) written to neither file")
        if self.fallback:
            lines.append(f"note: {self.fallback}")
        return "\n".join(lines)


class _Groups:
    """Union-find over group keys; the representative of a set is its smallest key (order-free)."""

    def __init__(self) -> None:
        self.parent: dict[str, str] = {}
        self.merges = 0

    def find(self, key: str) -> str:
        root = self.parent.setdefault(key, key)
        while self.parent[root] != root:
            root = self.parent[root]
        while key != root:  # path compression, iteratively (chains can be long)
            self.parent[key], key = root, self.parent[key]
        return root

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            lo, hi = (ra, rb) if ra < rb else (rb, ra)
            self.parent[hi] = lo
            self.merges += 1


def _samples(data: SampleSource) -> tuple[str | None, list[Sample] | None]:
    if isinstance(data, (str, os.PathLike)):
        if not os.path.isfile(data):
            raise FileNotFoundError(f"canonical dataset not found: {data}")
        return str(data), None
    return None, list(data)


def _iter(path: str | None, samples: list[Sample] | None):
    if samples is not None:
        yield from samples
    else:
        for _, sample in read_samples_with_lines(path):  # type: ignore[arg-type]
            yield sample


def _rank(seed: int, key: str) -> str:
    return hashlib.sha256(f"{seed}:{key}".encode()).hexdigest()


def _choose_val(sizes: dict[str, int], val_fraction: float, seed: int) -> set[str]:
    """Groups for validation: in hash-rank order, those that fit the target count.

    At least one group goes to validation when ``val_fraction > 0`` and there are two groups or
    more; the training side is never left empty.
    """
    total = sum(sizes.values())
    if val_fraction <= 0 or len(sizes) < 2:
        return set()
    target = max(1, round(val_fraction * total))
    ranked = sorted(sizes, key=lambda g: (_rank(seed, g), g))
    chosen: set[str] = set()
    count = 0
    for group in ranked:
        if count >= target:
            break
        if count + sizes[group] <= target and total - count - sizes[group] > 0:
            chosen.add(group)
            count += sizes[group]
    if not chosen:  # every group is larger than the target: take the smallest one
        smallest = min(ranked, key=lambda g: sizes[g])
        chosen.add(smallest)
    return chosen


def split(
    data: SampleSource,
    train_out: str | os.PathLike,
    val_out: str | os.PathLike,
    *,
    val_fraction: float = 0.05,
    by: str = "speaker",
    seed: int = 0,
    overwrite: bool = False,
) -> SplitResult:
    """Split trainable samples into a training and a validation file.

    Args:
        data: canonical JSONL path, or an iterable of :class:`Sample`.
        train_out: where to write the training samples (canonical JSONL).
        val_out: where to write the validation samples.
        val_fraction: share of trainable samples to put in validation (0 disables validation).
        by: ``"speaker"`` keeps each speaker on one side (falls back to ``"sample"`` when there
            is only one speaker); ``"sample"`` splits samples individually.
        seed: changes which groups are chosen; the same seed gives the same split.
        overwrite: replace existing output files.

    Returns:
        A :class:`SplitResult` with counts per side.

    Raises:
        ValueError: bad ``by`` or ``val_fraction``, or the two outputs are the same file.
        FileExistsError: an output exists and ``overwrite`` is false (nothing is written).
        workbench.data.sample.CanonicalFormatError: a line of ``data`` is not a canonical sample.
    """
    if by not in BY_CHOICES:
        raise ValueError(f"by must be one of {BY_CHOICES}, got {by!r}")
    if not 0 <= val_fraction < 1:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    train_path, val_path = Path(train_out), Path(val_out)
    if train_path.resolve() == val_path.resolve():
        raise ValueError(f"train_out and val_out are the same file: {train_path}")
    for out in (train_path, val_path):
        if out.exists() and not overwrite:
            raise FileExistsError(f"{out} already exists. Hint: pass --overwrite to replace it.")

    path, samples = _samples(data)
    result = SplitResult(
        str(train_path), str(val_path), by=by, requested_by=by, val_fraction=val_fraction, seed=seed
    )

    # Pass 1: speakers, and which samples share target audio.
    speakers: set[str] = set()
    for sample in _iter(path, samples):
        if check_sample(sample).trainable:
            speakers.add(sample.speaker or UNKNOWN_SPEAKER)
    if by == "speaker" and len(speakers) == 1:
        only = next(iter(speakers))
        result.by = "sample"
        result.fallback = (
            f"only one speaker ({only}) has trainable samples, so the split is by sample: "
            "validation measures unseen sentences, not an unseen voice"
        )
        log.warning("split: %s", result.fallback)

    def unit(sample: Sample) -> str:
        return (
            f"speaker:{sample.speaker or UNKNOWN_SPEAKER}"
            if result.by == "speaker"
            else f"sample:{sample.id}"
        )

    groups = _Groups()
    owner: dict[str, str] = {}  # target path -> first unit using it
    units: Counter[str] = Counter()
    for sample in _iter(path, samples):
        if not check_sample(sample).trainable:
            continue
        key = unit(sample)
        units[key] += 1
        groups.find(key)
        for audio in sample.target_audio():
            first = owner.setdefault(audio, key)
            if first != key:
                groups.union(first, key)
    result.merged_groups = groups.merges
    if groups.merges:
        log.info("split: %d groups merged because they share target audio", groups.merges)

    sizes: Counter[str] = Counter()
    for key, n in units.items():
        sizes[groups.find(key)] += n
    val_groups = _choose_val(sizes, val_fraction, seed)

    # Pass 2: write each sample to its group's side.
    train_speakers: Counter[str] = Counter()
    val_speakers: Counter[str] = Counter()
    with (
        AtomicJsonlWriter(train_path, overwrite=overwrite) as train_writer,
        AtomicJsonlWriter(val_path, overwrite=overwrite) as val_writer,
    ):
        for sample in _iter(path, samples):
            if not check_sample(sample).trainable:
                result.prompts_skipped += 1
                continue
            speaker = sample.speaker or UNKNOWN_SPEAKER
            if groups.find(unit(sample)) in val_groups:
                val_writer.write(sample)
                val_speakers[speaker] += 1
            else:
                train_writer.write(sample)
                train_speakers[speaker] += 1
    result.train, result.val = train_writer.count, val_writer.count
    result.train_speakers = dict(sorted(train_speakers.items()))
    result.val_speakers = dict(sorted(val_speakers.items()))
    if val_fraction > 0 and result.val == 0:
        log.warning(
            "split: validation is empty (%d trainable samples in %d groups)", result.train, len(sizes)
        )
    log.info("split: %d train, %d val, %d prompts skipped", result.train, result.val, result.prompts_skipped)
    return result
