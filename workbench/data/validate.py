"""Validate canonical samples before training: small rule functions → findings with stable codes.

Validation runs in two streaming passes over each file, so memory stays modest whatever the
file size:

1. collect the distinct audio paths of every sample and probe them all at once with
   :func:`workbench.data.probe.probe_many` (parallel, cached by path, size and mtime);
2. run the per-sample rules of :mod:`workbench.data.validate_rules` (each a small function returning
   findings) against the probes,
   keeping only small per-sample facts (ids, target keys, speaking rates) for the
   cross-sample rules: duplicate ids, duplicate audio, speaking-rate outliers and split leakage.

Example:
    >>> report = validate("data/train.jsonl", "data/val.jsonl")  # doctest: +SKIP
    >>> print(report.go_no_go())  # doctest: +SKIP
    GO: 1,204 trainable samples, no errors, 3 warnings (CLIPPING 3).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import sys
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench.data.contract import PROMPT, TRAINABLE, check_sample
from workbench.data.findings import ERROR, WARNING, Finding, finding, summarize
from workbench.data.probe import AudioInfo, probe_many
from workbench.data.sample import Sample, read_jsonl_lines
from workbench.data.validate_rules import RULES, FileState, Item, LengthCheck, Options
from workbench.files import write_json

log = logging.getLogger(__name__)

SampleSource = str | os.PathLike | Iterable[Sample]


# --- reading samples ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Record:
    """One line (or in-memory item) of a source: a sample, or the finding that explains why not.

    ``bad_start_index`` holds the original ``start_index`` when it was not an integer (the
    sample is then built with ``start_index=0`` so the other rules can still look at it).
    """

    index: int  # 0-based position among the source's records
    line: int | None  # 1-based line in the file (None for in-memory samples)
    sample: Sample | None
    problem: Finding | None = None
    bad_start_index: Any = None


class Source:
    """A re-iterable source of samples: a canonical JSONL path or an in-memory iterable.

    Files are streamed line by line on every pass; iterables are materialised once. ``count``
    is the number of records, known once :meth:`audio_paths` has run over a file.
    """

    def __init__(self, data: SampleSource):
        if isinstance(data, (str, os.PathLike)):
            self.path: str | None = str(data)
            self._samples: list[Sample] | None = None
            if not os.path.isfile(self.path):
                raise FileNotFoundError(f"canonical dataset not found: {self.path}")
        else:
            self.path = None
            self._samples = list(data)
        self.count: int | None = None if self._samples is None else len(self._samples)

    @property
    def name(self) -> str:
        return self.path if self.path is not None else "<in-memory samples>"

    def records(self) -> Iterator[Record]:
        """Yield every record; bad lines become records with a ``problem`` finding, never exceptions."""
        if self._samples is not None:
            for index, sample in enumerate(self._samples):
                yield Record(index, None, sample)
            return
        for index, (number, line) in enumerate(read_jsonl_lines(self.path)):  # type: ignore[arg-type]
            yield _parse_line(self.path, index, number, line)  # type: ignore[arg-type]

    def audio_paths(self) -> Iterator[str]:
        """Every audio path of every sample (with repeats), cheaply: no :class:`Sample` objects."""
        if self._samples is not None:
            for sample in self._samples:
                for m in sample.messages:
                    if m.audio_url is not None:
                        yield m.audio_url
            return
        count = 0
        for _, line in read_jsonl_lines(self.path):  # type: ignore[arg-type]
            count += 1
            try:
                messages = json.loads(line).get("messages") or ()
                for m in messages:
                    content = m.get("content")
                    if isinstance(content, dict) and isinstance(content.get("audio_url"), str):
                        yield content["audio_url"]
            except (json.JSONDecodeError, AttributeError, TypeError):
                continue  # reported as BAD_RECORD / BAD_FIELD in the checking pass
        self.count = count


def _parse_line(path: str, index: int, number: int, line: str) -> Record:
    where = {"source_file": path, "source_index": index, "source_line": number}
    try:
        data = json.loads(line)
    except json.JSONDecodeError as exc:
        return Record(
            index,
            number,
            None,
            finding("BAD_RECORD", f"line {number} is not valid JSON ({exc.msg})", **where),
        )
    if not isinstance(data, dict):
        return Record(
            index,
            number,
            None,
            finding("BAD_RECORD", f"line {number} is a JSON {type(data).__name__}, not an object", **where),
        )
    bad_start = None
    start = data.get("start_index")
    if type(start) is not int:
        bad_start = start
        data = dict(data, start_index=0)
    try:
        sample = Sample.from_dict(data)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        sample_id = data.get("id")
        return Record(
            index,
            number,
            None,
            finding(
                "BAD_FIELD",
                f"line {number} is not a canonical sample (problem with field {exc})",
                hint="Convert source data first with `workbench convert`; canonical files are its output.",
                sample_id=str(sample_id) if sample_id is not None else None,
                **where,
            ),
        )
    return Record(index, number, sample, None, bad_start)


# --- report ---------------------------------------------------------------------------------------


@dataclass
class ValidationReport:
    """All findings of one validation, with sample counts.

    Attributes:
        findings: every problem found, in file order (speaking-rate outliers at the end of each file).
        samples: records read, unreadable lines included.
        trainable: samples the contract calls trainable (:func:`workbench.data.contract.check_sample`).
        prompts: well-formed samples without target audio (evaluation prompts).
        files: the canonical files validated (empty for in-memory samples).
        context: with a model, ``{"model", "limit", "longest", "longest_id"}`` of the length check.
    """

    findings: list[Finding] = field(default_factory=list)
    samples: int = 0
    trainable: int = 0
    prompts: int = 0
    files: list[str] = field(default_factory=list)
    context: dict[str, Any] | None = None

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == ERROR]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == WARNING]

    @property
    def ok(self) -> bool:
        """True when no finding is an error."""
        return not any(f.severity == ERROR for f in self.findings)

    def samples_with(self, code: str) -> list[str]:
        """Ids of the samples with at least one finding of ``code``, in report order, each once."""
        return list(
            dict.fromkeys(f.sample_id for f in self.findings if f.code == code and f.sample_id is not None)
        )

    def to_dict(self) -> dict[str, Any]:
        """``{"summary": {...counts...}, "issues": [finding dicts]}``, JSON-serialisable."""
        counts = summarize(self.findings)
        summary = {
            "samples": self.samples,
            "trainable": self.trainable,
            "prompts": self.prompts,
            **counts,
            "errors": counts["by_severity"][ERROR],
            "warnings": counts["by_severity"][WARNING],
            "files": list(self.files),
        }
        if self.context is not None:
            summary["context"] = dict(self.context)
        keys = (
            "code",
            "severity",
            "sample_id",
            "message",
            "hint",
            "source_file",
            "source_index",
            "source_line",
            "field",
        )
        issues = [{k: getattr(f, k) for k in keys} for f in self.findings]
        return {"summary": summary, "issues": issues}

    def write_json(self, path: str | os.PathLike) -> Path:
        """Write :meth:`to_dict` as indented JSON, atomically. Returns the path."""
        return write_json(path, self.to_dict())

    def format_lines(self) -> list[str]:
        """One human-readable line per finding."""
        return [f.format_line() for f in self.findings]

    def go_no_go(self) -> str:
        """A short plain-text verdict: GO when there are no errors and at least one trainable sample."""
        errors = Counter(f.code for f in self.findings if f.severity == ERROR)
        warnings = Counter(f.code for f in self.findings if f.severity == WARNING)

        def listing(counts: Counter[str]) -> str:
            return ", ".join(f"{code} {n:,}" for code, n in counts.most_common())

        n_err, n_warn = sum(errors.values()), sum(warnings.values())
        warn_text = f"{n_warn:,} warnings ({listing(warnings)})" if n_warn else "no warnings"
        prompts = f" ({self.prompts:,} prompts will not be trained on)" if self.prompts else ""
        if self.trainable == 0:
            return (
                f"NO-GO: no trainable samples among {self.samples:,}: no sample has target audio, "
                f"so training would fail with 'Missing required message types'."
            )
        if n_err:
            bad = len({f.sample_id for f in self.findings if f.severity == ERROR})
            return (
                f"NO-GO: {n_err:,} errors in {bad:,} samples ({listing(errors)}); {warn_text}. "
                "Fix or drop those samples, then validate again."
            )
        fits = ""
        if self.context is not None:
            fits = (
                f" Longest sample about {self.context['longest']:,} tokens of the {self.context['limit']:,}-token "
                "context."
            )
        return f"GO: {self.trainable:,} trainable samples{prompts}, no errors, {warn_text}.{fits}"


# --- driver -----------------------------------------------------------------------------------------


def _where(sample: Sample, source: Source, record: Record) -> dict[str, Any]:
    """Where a finding points: the original source record (``misc``), else the canonical line."""
    misc = sample.misc
    src = misc.get("source_file")
    if src is not None:
        index, line = misc.get("source_index"), misc.get("source_line")
        return {  # interned: a million samples of one source file share one string
            "sample_id": sample.id,
            "source_file": sys.intern(str(src)),
            "source_index": index if type(index) is int else None,
            "source_line": line if type(line) is int else None,
        }
    if source.path is not None:
        return {
            "sample_id": sample.id,
            "source_file": source.path,
            "source_index": record.index,
            "source_line": record.line,
        }
    return {"sample_id": sample.id}


def _item(record: Record, source: Source, probes: dict[str, AudioInfo], options: Options) -> Item:
    sample = record.sample
    assert sample is not None
    start = sample.start_index if record.bad_start_index is None else record.bad_start_index
    verdict = check_sample(sample, start_index=start)
    start_ok = type(start) is int and 0 <= start < len(sample.messages)
    targets = set(verdict.targets)
    audio: dict[str, tuple[int, str]] = {}
    for i, m in enumerate(sample.messages):
        path = m.audio_url
        if path is None:
            continue
        if not start_ok:
            role = "audio"
        elif i in targets:
            role = "target"
        else:
            role = "reference" if i < start else "audio"
        if path not in probes:  # appeared between the two passes
            probes.update(probe_many([path]))
        if path not in audio or (role == "target" and audio[path][1] != "target"):
            audio[path] = (i, role)
    placeholders: frozenset[str] = frozenset()
    if sample.misc.get("placeholder_audio"):
        placeholders = frozenset(p for p in audio if probes[p].readable and probes[p].all_zero)
    where = _where(sample, source, record)
    return Item(sample, where, verdict, audio, probes, options, placeholders)


def validate(
    data: SampleSource,
    val: SampleSource | None = None,
    *,
    min_duration: float = 0.5,
    max_duration: float = 30.0,
    max_silence: float = 1.0,
    allow_placeholder: bool = False,
    length: LengthCheck | None = None,
    progress: bool = False,
) -> ValidationReport:
    """Check canonical samples for everything that would break or spoil training.

    Args:
        data: canonical JSONL path, or an iterable of :class:`Sample` (validated in memory).
        val: optional validation set (path or samples); its samples are checked too, and any
            target audio it shares with ``data`` (same path or same content) is SPLIT_LEAKAGE.
        min_duration: shortest allowed target audio, seconds.
        max_duration: longest allowed target audio, seconds.
        max_silence: longest leading or trailing silence before LONG_SILENCE, seconds.
        allow_placeholder: report placeholder audio as a warning instead of an error.
        length: the context-length rule for a model: estimate each sample's token length and
            report TOO_LONG_FOR_CONTEXT above the model's context. Build it with
            :func:`workbench.training.context.length_check` (``length_check(model, max_tokens)``: the
            model's processor, not its weights).
        progress: show tqdm progress bars.

    Returns:
        A :class:`ValidationReport`; ``report.ok`` is false when any finding is an error.

    Raises:
        FileNotFoundError: ``data`` or ``val`` is a path that does not exist.
    """
    options = Options(
        min_duration,
        max_duration,
        max_silence,
        allow_placeholder,
        dataclasses.replace(length, longest=(0, "")) if length is not None else None,
    )
    sources = [Source(data)] + ([Source(val)] if val is not None else [])
    paths: set[str] = set()
    for source in sources:
        paths.update(source.audio_paths())
    log.info("validating %s: probing %d distinct audio files", ", ".join(s.name for s in sources), len(paths))
    probes = probe_many(sorted(paths), progress=progress)

    report = ValidationReport(files=[s.path for s in sources if s.path is not None])
    train_state: FileState | None = None
    for k, source in enumerate(sources):
        state = FileState(source.name)
        records: Iterable[Record] = source.records()
        if progress:
            from tqdm.auto import tqdm

            records = tqdm(
                records, desc=f"validating {Path(source.name).name}", unit="sample", total=source.count
            )
        for record in records:
            report.samples += 1
            if record.sample is None:
                report.findings.append(record.problem)  # type: ignore[arg-type]
                continue
            item = _item(record, source, probes, options)
            for rule in RULES:
                report.findings.extend(rule(item))
            report.findings.extend(state.check_id(item))
            report.findings.extend(state.check_targets(item, train_state if k == 1 else None))
            state.add_rate(item)
            if item.verdict.kind == TRAINABLE:
                report.trainable += 1
            elif item.verdict.kind == PROMPT:
                report.prompts += 1
        report.findings.extend(state.rate_outliers())
        if k == 0:
            train_state = state
    if options.length is not None:
        tokens, sample_id = options.length.longest
        report.context = {"model": options.length.model, "limit": options.length.limit, "longest": tokens,
                          "longest_id": sample_id}  # fmt: skip
    log.info("validation done: %s", report.go_no_go())
    return report
