"""Convert source records to canonical samples: trainable, prompt-only, or rejected with reasons.

Every input record ends in exactly one of three files: ``OUT.jsonl`` (trainable samples),
``OUT.prompts.jsonl`` (no target audio: evaluation prompts) or ``OUT.rejected.jsonl`` (the
record as the user wrote it, plus the reasons). Nothing is silently dropped and no audio is
invented unless asked for (``missing_audio="placeholder"``, for pipeline smoke tests only).
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from workbench.audio import TARGET_SAMPLE_RATE, write_wav
from workbench.data import formats
from workbench.data.contract import INVALID, TRAINABLE, Verdict, check_sample
from workbench.data.findings import ERROR, WARNING, Finding, finding
from workbench.data.formats.base import ConvertContext, RecordError, ReferencePool
from workbench.data.readers import RawRecord, iter_records
from workbench.data.sample import DEFAULT_SYSTEM_PROMPT, AtomicJsonlWriter, Sample, sibling_path
from workbench.files import write_json

log = logging.getLogger(__name__)

MISSING_AUDIO_POLICIES = ("error", "drop-reference", "placeholder")
REFERENCE_POLICIES = ("same-speaker", "none")
REFERENCE_SECONDS = (
    0.5,
    30.0,
)  # a reference outside this is never chosen: too little voice, or too much context
REFERENCE_PREFERRED_SECONDS = (2.0, 15.0)  # chosen first when a speaker has such clips
PLACEHOLDER_SECONDS = 1.0


@dataclass
class ConvertOptions:
    """Options of :func:`convert`; the CLI flags map one to one."""

    format: str = "auto"
    audio_root: str | None = None
    remap: tuple[tuple[str, str], ...] = ()
    reference: str = "same-speaker"
    missing_audio: str = "error"
    sharegpt_map: dict[str, str] = field(default_factory=dict)
    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    format_by_file: dict[str, str] = field(default_factory=dict)  # absolute input path -> format (or auto)

    def check(self) -> None:
        """Raise ValueError naming every bad option at once."""
        problems = []
        for where, name in [
            ("format", self.format),
            *((f"format for {k}", v) for k, v in self.format_by_file.items()),
        ]:
            if name != "auto" and name not in formats.FORMATS:
                problems.append(
                    f"{where} {name!r} is unknown; expected auto or one of {', '.join(formats.FORMAT_NAMES)}"
                )
        if self.reference not in REFERENCE_POLICIES:
            problems.append(
                f"reference {self.reference!r} is unknown; expected one of {', '.join(REFERENCE_POLICIES)}"
            )
        if self.missing_audio not in MISSING_AUDIO_POLICIES:
            problems.append(
                f"missing_audio {self.missing_audio!r} is unknown; expected one of {', '.join(MISSING_AUDIO_POLICIES)}"
            )
        if self.audio_root is not None and not os.path.isdir(self.audio_root):
            problems.append(f"audio_root {self.audio_root!r} is not a folder")
        if problems:
            raise ValueError("; ".join(problems))


def parse_remap(items: Iterable[str] | None) -> tuple[tuple[str, str], ...]:
    """``["OLD=NEW", ...]`` -> pairs, longest prefix first. Raises ValueError on a bad item."""
    pairs = []
    for item in items or ():
        if "=" not in item or not item.split("=", 1)[0]:
            raise ValueError(f"--remap {item!r}: expected OLD=NEW (a path prefix and its replacement)")
        old, new = item.split("=", 1)
        pairs.append((old, new))
    return tuple(sorted(pairs, key=lambda p: -len(p[0])))


@dataclass
class Outcome:
    """What became of one source record."""

    raw: RawRecord
    kind: str  # "trainable" | "prompt" | "rejected"
    sample: Sample | None = None
    format: str | None = None
    findings: list[Finding] = field(default_factory=list)
    layout: str | None = None  # the format's variant, e.g. "mixed+start_index" (None: the format itself)


@dataclass
class ConvertReport:
    """Counts, per-format counts, and every issue found (see the CLI contract in the README)."""

    total: int = 0
    converted: int = 0
    prompts: int = 0
    rejected: int = 0
    formats: Counter = field(default_factory=Counter)
    layouts: Counter = field(default_factory=Counter)  # records per detected layout (format variant)
    issues: list[Finding] = field(default_factory=list)
    outputs: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    def add(self, outcome: Outcome) -> None:
        self.total += 1
        if outcome.format:
            self.formats[outcome.format] += 1
            self.layouts[outcome.layout or outcome.format] += 1
        if outcome.kind == "trainable":
            self.converted += 1
        elif outcome.kind == "prompt":
            self.prompts += 1
        else:
            self.rejected += 1
        self.issues.extend(outcome.findings)

    def to_dict(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "converted": self.converted,
            "prompts": self.prompts,
            "rejected": self.rejected,
            "formats": dict(sorted(self.formats.items())),
            "layouts": dict(sorted(self.layouts.items())),
            "issues": [f.to_dict() for f in self.issues],
            "outputs": self.outputs,
            "seconds": round(self.seconds, 3),
        }

    def summary_line(self) -> str:
        fmts = ", ".join(f"{k}: {v}" for k, v in sorted(self.formats.items())) or "none"
        if set(self.layouts) != set(self.formats):
            fmts += "; layouts: " + ", ".join(f"{k}: {v}" for k, v in sorted(self.layouts.items()))
        return (
            f"{self.total} records -> {self.converted} trainable, {self.prompts} prompt-only, "
            f"{self.rejected} rejected (formats: {fmts})"
        )


class _ExistsCache:
    """``os.path.isfile`` memoised for one run: a dataset reuses few reference files many times."""

    def __init__(self) -> None:
        self._known: dict[str, bool] = {}

    def __call__(self, path: str) -> bool:
        hit = self._known.get(path)
        if hit is None:
            hit = self._known[path] = os.path.isfile(path)
        return hit


class Converter:
    """Turns :class:`RawRecord` objects into :class:`Outcome` objects under fixed options."""

    def __init__(
        self,
        options: ConvertOptions,
        placeholder_dir: str | os.PathLike | None = None,
        clips_dir: str | os.PathLike | None = None,
    ):
        options.check()
        self.options = options
        self.exists = _ExistsCache()
        self.resolved: dict[tuple[str, str], str] = {}
        self.pool = ReferencePool() if options.reference == "same-speaker" else None
        self.placeholder_dir = Path(placeholder_dir) if placeholder_dir is not None else None
        self.clips_dir = str(clips_dir) if clips_dir is not None else None
        self._id_prefixes: dict[str, str] = {}  # source file -> default-id prefix, unique per run

    # -- passes ---------------------------------------------------------------------
    def context(self, raw: RawRecord) -> ConvertContext:
        return ConvertContext(
            source_file=raw.source_file,
            source_index=raw.source_index,
            source_line=raw.source_line,
            base_dir=raw.base_dir,
            audio_root=self.options.audio_root,
            remap=self.options.remap,
            reference=self.options.reference,
            pool=self.pool,
            system_prompt=self.options.system_prompt,
            sharegpt_map=self.options.sharegpt_map,
            path_exists=self.exists,
            resolved=self.resolved,
            id_prefix=self.id_prefix(raw.source_file),
            clips_dir=self.clips_dir,
        )

    def id_prefix(self, source_file: str) -> str:
        """The file's stem, made unique: ``a/train.jsonl`` and ``b/train.jsonl`` get ``train`` and ``train-2``."""
        prefix = self._id_prefixes.get(source_file)
        if prefix is None:
            stem = os.path.splitext(os.path.basename(source_file))[0]
            taken = set(self._id_prefixes.values())
            prefix, n = stem, 1
            while prefix in taken:
                n += 1
                prefix = f"{stem}-{n}"
            self._id_prefixes[source_file] = prefix
        return prefix

    def format_of(self, raw: RawRecord) -> str | None:
        chosen = self.options.format
        for path, name in self.options.format_by_file.items():
            if raw.source_file == path or raw.source_file.startswith(path + os.sep):
                chosen = name
                break
        if chosen != "auto":
            return chosen
        return raw.format_hint or formats.detect(raw.record)

    def collect_references(self, raws: Iterable[RawRecord]) -> None:
        """First pass: remember candidate reference utterances per speaker."""
        if self.pool is None:
            return
        for raw in raws:
            if raw.error is not None or not isinstance(raw.record, dict):
                continue
            module = formats.FORMATS.get(self.format_of(raw) or "")
            if module is None or not hasattr(module, "utterance"):
                continue
            found = module.utterance(raw.record, self.context(raw))
            if found is not None:
                self.pool.add(*found)
        self._drop_unusable_references()

    def _drop_unusable_references(self) -> None:
        """A reference must be worth cloning: readable, not silent, 0.5-30 s long; 2-15 s preferred.

        Every sample carries its reference, so a very long one costs context (25 tokens per
        second) in every sample of that speaker, and a very short one carries little of the voice.
        """
        from workbench.data.probe import probe_many

        assert self.pool is not None
        infos = probe_many(self.pool.audio_paths())
        lo, hi = REFERENCE_SECONDS

        def usable(path: str) -> bool:
            info = infos[path]
            seconds = info.duration or 0
            return info.readable and not info.all_zero and not info.nonfinite and lo <= seconds <= hi

        dropped = self.pool.keep_only(usable)
        if dropped:
            log.info(
                "not used as references (unreadable, silent, or outside %g-%g s): %s",
                lo,
                hi,
                ", ".join(dropped[:10]),
            )
        low, high = REFERENCE_PREFERRED_SECONDS
        self.pool.prefer(lambda path: low <= (infos[path].duration or 0) <= high)

    def convert_one(self, raw: RawRecord) -> Outcome:
        where = {
            "source_file": raw.source_file,
            "source_index": raw.source_index,
            "source_line": raw.source_line,
        }
        if raw.error is not None:
            return Outcome(raw, "rejected", findings=[finding("BAD_RECORD", f"{raw.error}", **where)])
        if not isinstance(raw.record, dict):
            return Outcome(
                raw,
                "rejected",
                findings=[
                    finding("BAD_RECORD", f"expected a JSON object, got {type(raw.record).__name__}", **where)
                ],
            )
        name = self.format_of(raw)
        if name is None:
            keys = ", ".join(sorted(map(str, raw.record))[:8]) or "none"
            return Outcome(
                raw,
                "rejected",
                findings=[finding("UNKNOWN_FORMAT", f"no format matches keys ({keys})", **where)],
            )
        module = formats.FORMATS[name]
        ctx = self.context(raw)
        layout = module.layout(raw.record) if hasattr(module, "layout") else None
        try:
            sample = module.convert(raw.record, ctx)
        except RecordError as exc:
            at = {**where, "sample_id": _record_id(raw.record)}
            f = finding(exc.code, exc.message, field=exc.field, hint=exc.hint, **at)
            named = ctx.audio_files or {}
            missing = [  # every problem of the record at once: its missing files too
                path
                for path, named_by in named.items()
                if not self.exists(path) and not (exc.code == "AUDIO_NOT_FOUND" and exc.field == named_by)
            ]
            severity = ERROR if self.options.missing_audio == "error" else WARNING
            found = self._missing_files(missing, named, {}, severity, at)
            return Outcome(raw, "rejected", format=name, findings=[f, *found], layout=layout)
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            msg = f"record does not fit format {name!r} ({type(exc).__name__}: {exc})"
            f = finding("BAD_FIELD", msg, sample_id=_record_id(raw.record), **where)
            return Outcome(raw, "rejected", format=name, findings=[f], layout=layout)
        notes = [
            finding(code, message, severity=WARNING, field=field_name, sample_id=sample.id, **where)
            for code, message, field_name in ctx.notes or ()
        ]
        outcome = self._place(raw, name, sample, notes, ctx.audio_files or {})
        outcome.layout = layout
        return outcome

    # -- audio policy -----------------------------------------------------------------
    @staticmethod
    def _missing_files(
        missing: list[str],
        fields: dict[str, str],
        kinds: dict[str, str],
        severity: str,
        where: dict[str, Any],
    ) -> list[Finding]:
        """One AUDIO_NOT_FOUND per missing file, naming the record's field that gives the path.

        Args:
            missing: the missing paths, in record order.
            fields: path -> the source field that names it (:attr:`ConvertContext.audio_files`).
            kinds: path -> ``target`` or ``reference``, where the sample says which.
            severity: ``error``, or ``warning`` where the missing-audio policy copes with the file.
            where: the record's location (source file, index, line, sample id).
        """
        out = []
        for path in missing:
            kind = kinds.get(path)
            message = f"{kind} audio not found: {path}" if kind else f"audio not found: {path}"
            out.append(
                finding("AUDIO_NOT_FOUND", message, severity=severity, field=fields.get(path), **where)
            )
        return out

    def _place(
        self, raw: RawRecord, name: str, sample: Sample, notes: list[Finding], fields: dict[str, str]
    ) -> Outcome:
        """Route a converted sample by the missing-audio policy and the sample contract.

        A rejected sample carries every problem found: each missing file and the contract's problems.
        """
        where = {
            "source_file": raw.source_file,
            "source_index": raw.source_index,
            "source_line": raw.source_line,
            "sample_id": sample.id,
        }
        if not sample.audio_indices():
            return Outcome(
                raw,
                "rejected",
                sample,
                name,
                [*notes, finding("NO_AUDIO", "the record names no audio file", **where)],
            )
        missing = [i for i in sample.audio_indices() if not self.exists(sample.messages[i].audio_url)]
        if missing:
            policy = self.options.missing_audio
            targets = set(sample.target_indices())
            missing_targets = [i for i in missing if i in targets]
            lines = [
                f"{'target' if i in targets else 'reference'} audio not found: {sample.messages[i].audio_url}"
                for i in missing
            ]
            if policy == "placeholder":
                sample = self._with_placeholders(sample, missing)
                notes.append(
                    finding(
                        "PLACEHOLDER_AUDIO",
                        "; ".join(lines) + " (replaced by a silent placeholder, --missing-audio placeholder)",
                        severity=WARNING,
                        **where,
                    )
                )
            elif policy == "error" or missing_targets:
                kinds = {
                    sample.messages[i].audio_url: "target" if i in targets else "reference" for i in missing
                }
                paths = list(dict.fromkeys(sample.messages[i].audio_url for i in missing))
                notes += self._missing_files(paths, fields, kinds, ERROR, where)  # type: ignore[arg-type]
                verdict = check_sample(sample)  # its structure problems too, so one pass shows them all
                notes += _contract_findings(verdict, where) if verdict.kind == INVALID else []
                return Outcome(raw, "rejected", sample, name, notes)
            else:  # drop-reference
                sample = drop_audio_pairs(sample, missing)
                sample.misc["dropped_references"] = len(missing)
                notes.append(
                    finding(
                        "AUDIO_NOT_FOUND",
                        "; ".join(lines) + " (reference dropped, --missing-audio drop-reference)",
                        severity=WARNING,
                        hint="The sample is kept without that reference; restore the file to use it.",
                        **where,
                    )
                )
        verdict = check_sample(sample)
        if verdict.kind == TRAINABLE:
            return Outcome(raw, "trainable", sample, name, notes)
        if verdict.kind == INVALID:
            notes += _contract_findings(verdict, where)
            return Outcome(raw, "rejected", sample, name, notes)
        msg = (
            f"no assistant target audio at or after start_index={sample.start_index} "
            "(the 'Missing required message types' error); kept as an evaluation prompt, not used for training"
        )
        notes.append(finding("MISSING_TARGET_AUDIO", msg, severity=WARNING, **where))
        return Outcome(raw, "prompt", sample, name, notes)

    def _with_placeholders(self, sample: Sample, missing: list[int]) -> Sample:
        if self.placeholder_dir is None:
            raise ValueError("missing_audio='placeholder' needs an output folder for the placeholder files")
        replaced = {}
        for i in missing:
            original = sample.messages[i].audio_url
            digest = hashlib.blake2b(original.encode(), digest_size=10).hexdigest()
            path = self.placeholder_dir / f"{digest}.wav"
            if not path.exists():
                write_wav(path, np.zeros(int(TARGET_SAMPLE_RATE * PLACEHOLDER_SECONDS), np.float32))
            replaced[original] = str(path.resolve())
        out = sample.map_audio(lambda p: replaced.get(p, p))
        misc = dict(out.misc)
        misc["placeholder_audio"] = sorted(replaced)
        return out.with_changes(misc=misc)


def _contract_findings(verdict: Verdict, where: dict[str, Any]) -> list[Finding]:
    """The sample contract's problems as findings (errors: the sample cannot be trained on)."""
    return [
        finding(p.code, p.message, field=p.field, **({"hint": p.hint} if p.hint else {}), **where)
        for p in verdict.problems
    ]


def _record_id(record: dict[str, Any]) -> str | None:
    """The id a record gives itself, for findings about records that never became samples."""
    for key in ("id", "sample_id", "audio_id", "utt_id"):
        value = record.get(key)
        if isinstance(value, (str, int)) and not isinstance(value, bool) and str(value).strip():
            return str(value).strip()
    return None


def drop_audio_pairs(sample: Sample, indices: Iterable[int]) -> Sample:
    """Remove reference audio messages (and the user transcript right before each)."""
    drop: set[int] = set()
    for i in indices:
        drop.add(i)
        if i > 0 and sample.messages[i - 1].role == "user" and sample.messages[i - 1].text is not None:
            drop.add(i - 1)
    kept = tuple(m for j, m in enumerate(sample.messages) if j not in drop)
    shift = sum(1 for j in drop if j < sample.start_index)
    return sample.with_changes(messages=kept, start_index=sample.start_index - shift, misc=dict(sample.misc))


def iter_inputs(inputs: Iterable[str | os.PathLike]) -> Iterator[RawRecord]:
    for path in inputs:
        yield from iter_records(path)


def convert(
    inputs: str | os.PathLike | Iterable[str | os.PathLike],
    output: str | os.PathLike,
    *,
    format: str | dict[str, str] | list[tuple[str, str]] = "auto",
    audio_root: str | None = None,
    remap: Iterable[str] | tuple[tuple[str, str], ...] = (),
    reference: str = "same-speaker",
    missing_audio: str = "error",
    sharegpt_map: dict[str, str] | list[str] | None = None,
    report: str | os.PathLike | None = None,
    overwrite: bool = False,
    progress: bool = False,
) -> ConvertReport:
    """Convert ``inputs`` to canonical JSONL at ``output`` (+ ``.prompts``/``.rejected`` siblings).

    Args:
        inputs: one path or several (files or dataset folders); formats may differ per record.
        output: the trainable samples' JSONL path; its folder is created when missing.
        format: ``auto`` (detect per record), a format name forced for all records, or per input
            ``{path: format}`` / ``[(path, format), ...]`` (what notebook 01's format picker chooses).
        audio_root: folder that relative audio paths resolve against (default: each input's folder).
        remap: ``OLD=NEW`` path prefix rewrites, for data moved between machines.
        reference: ``same-speaker`` (pick another utterance of the speaker as reference) or ``none``.
        missing_audio: ``error`` (reject), ``drop-reference`` or ``placeholder`` (smoke tests only).
        sharegpt_map: slot=role overrides for ShareGPT records (see :mod:`workbench.data.formats.sharegpt`).
        report: where to write the report JSON (optional).
        overwrite: replace existing outputs.
        progress: show a progress bar.

    Returns:
        The :class:`ConvertReport`.

    Raises:
        ValueError: bad options (all named at once).
        FileExistsError: an output exists and ``overwrite`` is false.
        workbench.data.readers.InputError: an input cannot be read at all.
    """
    from workbench.data.formats.sharegpt import parse_map

    paths = [inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs)
    if not paths:
        raise ValueError("no input given")
    if remap and isinstance(next(iter(remap)), tuple):
        pairs = tuple(sorted(remap, key=lambda p: -len(p[0])))  # type: ignore[arg-type]
    else:
        pairs = parse_remap(remap)  # type: ignore[arg-type]
    by_file = {} if isinstance(format, str) else dict(format.items() if isinstance(format, dict) else format)
    options = ConvertOptions(
        format if isinstance(format, str) else "auto",
        audio_root,
        pairs,
        reference,
        missing_audio,
        parse_map(sharegpt_map),
        format_by_file={os.path.abspath(k): v for k, v in by_file.items()},
    )
    output = Path(output).absolute()
    prompts_path, rejected_path = sibling_path(output, "prompts"), sibling_path(output, "rejected")
    outputs = [output, prompts_path, rejected_path] + ([Path(report)] if report else [])
    folders = [str(p) for p in outputs if p.is_dir()]
    if folders:
        raise IsADirectoryError(
            f"output {', '.join(folders)} is a folder. Hint: name a file such as OUT.jsonl."
        )
    if not overwrite:
        clash = [str(p) for p in outputs if p.exists()]
        if clash:
            raise FileExistsError(
                f"output already exists: {', '.join(clash)}. Hint: pass --overwrite to replace it."
            )
    from workbench.data.readers import InputError

    for p in paths:  # fail fast on unreadable inputs, before any output is touched
        if not os.path.exists(p):
            raise InputError(f"{os.path.abspath(p)}: input file not found.")
    input_files = {os.path.realpath(p) for p in paths}
    input_files |= {
        os.path.realpath(os.path.join(p, n)) for p in paths if os.path.isdir(p) for n in os.listdir(p)
    }
    overlap = [str(o) for o in outputs if os.path.realpath(o) in input_files]
    if overlap:  # inputs are never modified, not even with --overwrite
        raise ValueError(
            f"output {', '.join(overlap)} is also an input. Hint: write the outputs to another path."
        )

    started = time.perf_counter()
    converter = Converter(
        options,
        placeholder_dir=output.parent / f"{output.name}.placeholders",
        clips_dir=output.parent / f"{output.name}.clips",
    )
    converter.collect_references(iter_inputs(paths))
    result = ConvertReport()
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(desc="converting", unit="rec")
    with (
        AtomicJsonlWriter(output, overwrite=overwrite) as train_w,
        AtomicJsonlWriter(prompts_path, overwrite=overwrite, keep_empty=False) as prompt_w,
        AtomicJsonlWriter(rejected_path, overwrite=overwrite, keep_empty=False) as reject_w,
    ):
        for raw in iter_inputs(paths):
            outcome = converter.convert_one(raw)
            result.add(outcome)
            if outcome.kind == "trainable":
                train_w.write(outcome.sample)  # type: ignore[arg-type]
            elif outcome.kind == "prompt":
                prompt_w.write(outcome.sample)  # type: ignore[arg-type]
            else:
                reject_w.write(rejected_entry(outcome))
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    result.seconds = time.perf_counter() - started
    result.outputs = {"trainable": str(output)}
    if result.prompts:
        result.outputs["prompts"] = str(prompts_path)
    if result.rejected:
        result.outputs["rejected"] = str(rejected_path)
    if report:
        write_json(report, result.to_dict())
    log.debug(result.summary_line())  # callers show the summary (the CLI prints it)
    return result


def rejected_entry(outcome: Outcome) -> dict[str, Any]:
    """The record exactly as the user wrote it, where it came from, and why it was rejected."""
    raw = outcome.raw
    entry: dict[str, Any] = {"source_file": raw.source_file, "source_index": raw.source_index}
    if raw.source_line is not None:
        entry["source_line"] = raw.source_line
    if outcome.format:
        entry["detected_format"] = outcome.format
    entry["reasons"] = [
        {
            k: v
            for k, v in (("code", f.code), ("message", f.message), ("field", f.field), ("hint", f.hint))
            if v is not None
        }
        for f in outcome.findings
        if f.severity == ERROR
    ]
    entry["record"] = raw.record
    return entry
