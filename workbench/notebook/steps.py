"""Step helpers behind notebooks 01–03: small functions that gather what a cell shows.

The notebooks stay thin: each cell calls one of these (or a library function) and displays
the result. Anything a notebook computes can be computed here without Jupyter.
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench.data.convert import Converter, ConvertOptions, ConvertReport, Outcome, parse_remap
from workbench.data.readers import iter_records
from workbench.data.sample import Sample, read_samples, sibling_path


def resolve_inputs(input_data: str | os.PathLike | Iterable[str | os.PathLike]) -> list[str]:
    """The input paths of a notebook's ``input_data``: one path or a list, each checked to exist.

    Raises:
        ValueError: no input is given.
        FileNotFoundError: an input does not exist (names it and the working directory).
    """
    if input_data in (None, "", []):
        raise ValueError(
            "input_data: no input given. Hint: set input_data to a dataset file or folder "
            "(the notebooks use workbench.demo.demo_inputs(output_dir) when it is empty)"
        )
    items = [input_data] if isinstance(input_data, (str, os.PathLike)) else list(input_data)
    missing = [str(p) for p in items if not os.path.exists(p)]
    if missing:
        raise FileNotFoundError(
            f"input_data not found: {', '.join(missing)} (working directory {os.getcwd()})"
        )
    return [str(p) for p in items]


@dataclass
class InMemoryConversion:
    """Conversion without writing files: for looking at data before committing to a run."""

    samples: list[Sample] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)
    report: ConvertReport = field(default_factory=ConvertReport)
    truncated: bool = False


def convert_in_memory(
    inputs: Iterable[str | os.PathLike],
    *,
    format: str | dict[str, str] = "auto",
    audio_root: str | None = None,
    remap: Iterable[str] = (),
    reference: str = "same-speaker",
    sharegpt_map: dict[str, str] | list[str] | None = None,
    max_records: int | None = 20_000,
) -> InMemoryConversion:
    """Convert up to ``max_records`` records per input in memory (``format`` may be per file)."""
    from workbench.data.formats.sharegpt import parse_map

    result = InMemoryConversion()
    for path in inputs:
        chosen = format.get(str(path), "auto") if isinstance(format, dict) else format
        options = ConvertOptions(
            chosen, audio_root, parse_remap(remap), reference, "error", parse_map(sharegpt_map)
        )
        converter = Converter(options)
        converter.collect_references(itertools.islice(iter_records(path), max_records))
        records = iter_records(path)
        for raw in itertools.islice(records, max_records) if max_records else records:
            outcome = converter.convert_one(raw)
            result.report.add(outcome)
            result.outcomes.append(outcome)
            if outcome.sample is not None and outcome.kind != "rejected":
                result.samples.append(outcome.sample)
        if max_records and next(records, None) is not None:
            result.truncated = True
    return result


def original_record(source_file: str, source_index: int, sample: Sample | None = None) -> Any:
    """The record as written in the user's file (for "original beside canonical").

    For a clip of a plain audio folder (``sample`` given) that is its transcript file.
    """
    from workbench.data.readers import TRANSCRIPT_SUFFIXES

    clips = sample.target_audio() if sample is not None else []
    if clips and source_file in {os.path.splitext(clips[-1])[0] + s for s in TRANSCRIPT_SUFFIXES}:
        return {"transcript_file": source_file, "text": Path(source_file).read_text(encoding="utf-8-sig")}
    for raw in iter_records(source_file):
        if raw.source_index == source_index:
            return raw.record
    return None


def examples_by_format(converted: str | os.PathLike, per_format: int = 1) -> list[tuple[str, Any, Sample]]:
    """``(format, original record, canonical sample)`` for the first samples of each format."""
    seen: dict[str, int] = {}
    out = []
    paths = [Path(converted), sibling_path(converted, "prompts")]
    for sample in itertools.chain.from_iterable(read_samples(p) for p in paths if p.exists()):
        fmt = sample.misc.get("source_format", "?")
        if seen.get(fmt, 0) >= per_format:
            continue
        seen[fmt] = seen.get(fmt, 0) + 1
        out.append(
            (fmt, original_record(sample.misc["source_file"], sample.misc["source_index"], sample), sample)
        )
    return out


def rejected_rows(converted: str | os.PathLike) -> list[dict[str, Any]]:
    """One row per rejected record: where, codes, first reason, the record (shortened)."""
    path = sibling_path(converted, "rejected")
    rows = []
    if path.exists():
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                entry = json.loads(line)
                reasons = entry.get("reasons") or [{}]
                rows.append(
                    {
                        "source": f"{entry['source_file']}:{entry.get('source_line', entry['source_index'])}",
                        "code": ", ".join(r.get("code", "") for r in reasons),
                        "reason": reasons[0].get("message"),
                        "hint": reasons[0].get("hint"),
                        "record": entry.get("record"),
                    }
                )
    return rows


def prompt_rows(converted: str | os.PathLike) -> list[dict[str, Any]]:
    path = sibling_path(converted, "prompts")
    if not path.exists():
        return []
    return [
        {
            "id": s.id,
            "speaker": s.speaker,
            "target text": s.target_text(),
            "source": s.provenance(),
            "why": "no assistant target audio at or after start_index: evaluation prompt only",
        }
        for s in read_samples(path)
    ]


@dataclass
class TrainingSplit:
    """The split written for training, and the samples kept out of it for their errors."""

    split: Any  # workbench.data.split.SplitResult
    excluded: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        d = self.split.to_dict()
        return {
            "train": d["train"],
            "val": d["val"],
            "by": d["by"],
            "prompts_skipped": d["prompts_skipped"],
            "excluded_for_errors": len(self.excluded),
            "fallback": d.get("fallback"),
        }


def split_for_training(
    samples: Iterable[Sample],
    report: Any,
    out_dir: str | os.PathLike,
    *,
    val_fraction: float = 0.1,
    by: str = "speaker",
    seed: int = 0,
    exclude_errors: bool = True,
) -> TrainingSplit:
    """Write ``out_dir/train.jsonl`` and ``val.jsonl``, leaving out samples with error findings."""
    from workbench.data.split import split

    bad = {f.sample_id for f in report.errors} if exclude_errors else set()
    kept = [s for s in samples if s.id not in bad]
    out = Path(out_dir)
    result = split(
        kept,
        out / "train.jsonl",
        out / "val.jsonl",
        val_fraction=val_fraction,
        by=by,
        seed=seed,
        overwrite=True,
    )
    return TrainingSplit(result, sorted(i for i in bad if i))
