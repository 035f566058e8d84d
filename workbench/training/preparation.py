"""Run preparation: what notebook 04's first cell does before any training step.

:func:`prepare` creates the process group (with ``ddp_timeout``), has each rank probe its share of
the audio files, checks the data (validator findings, the sample contract, sequence lengths against
the context; every finding to ``data_check.json`` and ``.csv``), loads the model and processor,
encodes every audio file once into the codes cache (sharded across ranks) and works out the
schedule the Trainer will follow. What it built, :class:`Prepared`, is what
:func:`workbench.training.train.fit` trains on.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from workbench.data.findings import finding, grouped_summary
from workbench.data.sample import Sample, read_samples
from workbench.training.params import TrainParams

log = logging.getLogger(__name__)


class DataCheckError(RuntimeError):
    """The data is not fit to train on; the message lists what and how to fix it."""


@dataclass
class Prepared:
    """What :func:`prepare` built; :func:`workbench.training.train.fit` consumes it."""

    params: TrainParams
    report: Any  # workbench.data.validate.ValidationReport
    stop: bool = False  # validate_data_only
    model: Any = None
    processor: Any = None
    codes_cache: Any = None
    train_samples: list[Sample] = field(default_factory=list)
    val_samples: list[Sample] = field(default_factory=list)
    train_lengths: list[int] = field(default_factory=list)
    max_length: int | None = None
    padding: dict[str, float] = field(default_factory=dict)
    schedule: dict[str, Any] = field(default_factory=dict)  # see training_schedule()
    lora_model: Any = None  # set by fit(): the model with LoRA (its unload() gives the base model back)

    def summary(self) -> str:
        if self.stop:
            return f"data check only: {self.report.go_no_go()}"
        longest = max(self.train_lengths) if self.train_lengths else 0
        text = (
            f"{len(self.train_samples)} train / {len(self.val_samples)} val samples; longest sequence "
            f"{longest} tokens (limit {self.max_length}); padding {self.padding.get('grouped', 0):.1%} grouped "
            f"vs {self.padding.get('random', 0):.1%} random batches"
        )
        return f"{text}\n{self.schedule['text']}" if self.schedule else text


def training_schedule(params: TrainParams, train_samples: int, world_size: int) -> dict[str, Any]:
    """The run's schedule as the Trainer will count it, in numbers and in one sentence.

    Effective batch = ``batch_size`` x ``gradient_accumulation_steps`` x ranks; an epoch is
    ``ceil(ceil(samples / (batch_size x ranks)) / gradient_accumulation_steps)`` optimizer steps;
    ``max_steps`` > 0 wins over ``num_epochs``. Notes say when a checkpoint or an evaluation would
    never happen before the end, or when an epoch is a single step.
    """
    import math

    effective = params.batch_size * params.gradient_accumulation_steps * world_size
    batches = math.ceil(train_samples / (params.batch_size * world_size)) if train_samples else 0
    per_epoch = max(1, math.ceil(batches / params.gradient_accumulation_steps)) if batches else 0
    total = params.max_steps if params.max_steps > 0 else math.ceil(params.num_epochs * per_epoch)
    warmup = math.ceil(params.warmup_ratio * total)
    epochs = total / per_epoch if per_epoch else 0.0
    save_every, eval_every = (
        interval_steps(params.save_steps, total),
        interval_steps(params.eval_steps, total),
    )
    notes = []
    if total and save_every >= total:
        notes.append(f"save_steps {params.save_steps} >= {total} steps: no checkpoint before the end")
    if total and params.val_data and eval_every >= total:
        notes.append(f"eval_steps {params.eval_steps} >= {total} steps: no evaluation before the end")
    if per_epoch == 1 and train_samples < effective:
        notes.append(f"{train_samples} samples < effective batch {effective}: every step sees the whole set")
    text = (
        f"schedule: effective batch {effective} ({params.batch_size} x {params.gradient_accumulation_steps} "
        f"accumulation x {world_size} rank{'s' if world_size > 1 else ''}); {per_epoch} steps per epoch; "
        f"{total} steps ({epochs:.2g} epochs); warmup {warmup} steps; checkpoint every {save_every}"
        + (f", evaluation every {eval_every}" if params.val_data else "")
        + "".join(f". Note: {n}" for n in notes)
    )
    return {"effective_batch": effective, "steps_per_epoch": per_epoch, "total_steps": total, "epochs": epochs,
            "warmup_steps": warmup, "save_every": save_every, "eval_every": eval_every, "notes": notes,
            "text": text}  # fmt: skip


def interval_steps(value: int | float, total: int) -> int:
    """The steps between saves (or evaluations, logs): ``value`` steps, or that fraction of ``total``,
    rounded up as the Trainer does."""
    import math

    return max(1, math.ceil(value * total)) if 0 < value < 1 else int(value)


def process_state(params: TrainParams | None = None) -> Any:
    """accelerate's process state. The first call creates the process group: :func:`prepare` makes it,
    with ``params``, so a rank waits ``params.ddp_timeout`` seconds at a barrier (not accelerate's
    default) while the others fill a cold codes cache; later calls reuse it."""
    from datetime import timedelta

    from accelerate import PartialState

    kwargs = {"timeout": timedelta(seconds=params.ddp_timeout)} if params is not None else {}
    # Without GPUs, ranks started by `accelerate launch --multi_gpu` train on the CPU (gloo);
    # accelerate only sees them as distributed when told it is on the CPU.
    return PartialState(cpu=not torch.cuda.is_available(), **kwargs)


def main_print(*args: Any) -> None:
    """Print once, on the main process (a message every rank reaches)."""
    process_state().print(*args, flush=True)


def is_main_process() -> bool:
    """True on the rank that writes reports (rank 0), and in single-process runs."""
    return process_state().is_main_process


def _load_split(path: str | None) -> list[Sample]:
    if not path:
        return []
    if not os.path.isfile(path):
        raise DataCheckError(
            f"data file not found: {os.path.abspath(path)} (working directory {os.getcwd()})"
        )
    return list(read_samples(path))


def check_data(params: TrainParams) -> Any:
    """Validate the training (and validation) files; raise :class:`DataCheckError` on errors.

    A refusal prints a summary grouped by finding code (count, a few examples, the fix hint once)
    and the main process writes every finding to ``output_dir/data_check.json`` and ``.csv``.

    Returns:
        The :class:`~workbench.data.validate.ValidationReport`.
    """
    from workbench.data.validate import validate

    for name in ("train_data", "val_data"):
        path = getattr(params, name)
        if path and not os.path.isfile(path):
            raise DataCheckError(
                f"{name}: file not found: {os.path.abspath(path)} (working directory {os.getcwd()})"
            )
    report = validate(params.train_data, val=params.val_data or None)
    listing = Path(params.output_dir) / "data_check.json"
    if not report.ok and not params.skip_validation:
        if is_main_process():
            write_data_check(report, listing)
        errors = report.errors
        samples = len({(f.source_file, f.sample_id) for f in errors})
        summary = "\n".join(grouped_summary(errors))
        raise DataCheckError(
            f"training refused: the data has {len(errors):,} error finding(s) in {samples:,} sample(s).\n{summary}\n"
            f"{report.go_no_go()}\nEvery finding: {listing} and {listing.with_suffix('.csv')}.\n"
            "Hint: fix them (notebook 03 / `workbench fix`), or set skip_validation: true "
            "to train anyway (not recommended)."
        )
    return report


def write_data_check(report: Any, path: Path) -> Path:
    """Every finding of the training data check as JSON (``path``) and CSV (beside it)."""
    from workbench.data.tables import finding_rows
    from workbench.files import write_table

    report.write_json(path)
    write_table(finding_rows(report.findings), path.with_suffix(".csv"),
              columns=["severity", "code", "sample_id", "source_file", "source_line", "source_index", "field",
                       "message", "hint"])  # fmt: skip
    return path


def refuse_untrainable(samples: list[Sample], name: str, output_dir: str | os.PathLike) -> None:
    """The sample contract over the loaded split (also under ``skip_validation``): the collator would
    refuse these samples mid-epoch, so they are refused here, grouped by problem.

    Raises:
        DataCheckError: some samples are prompts or invalid.
    """
    from workbench.data.contract import check_sample

    problems = []
    for sample in samples:
        verdict = check_sample(sample)
        if not verdict.trainable:
            where = {"sample_id": sample.id, "source_file": sample.misc.get("source_file")}
            problems += [finding(p.code, p.message, field=p.field, **where) for p in verdict.problems]
    if problems:
        from workbench.data.validate import ValidationReport

        listing = Path(output_dir) / "data_check.json"
        if is_main_process():
            write_data_check(ValidationReport(findings=problems, samples=len(samples)), listing)
        bad = len({f.sample_id for f in problems})
        raise DataCheckError(
            f"{bad} {name} sample(s) cannot be trained on: every label of a prompt is masked, and an invalid "
            "sample cannot be rendered as inference renders it.\n"
            + "\n".join(grouped_summary(problems))
            + f"\nEvery finding: {listing} and {listing.with_suffix('.csv')}."
            "\nHint: move prompts to an evaluation prompts file (fix recipe: move_to_prompts) or add target "
            "audio; re-run `workbench convert` on the source for structure problems."
        )


# Clips loaded per round when encoding on a GPU; those of equal length share a codec call, so the
# codes stay exactly the processor's (CodesCache.encode_batch). On a CPU one at a time is as fast.
CUDA_CODES_BATCH_SIZE = 16


def default_codes_cache_dir() -> Path:
    from workbench.audio import default_cache_dir

    return default_cache_dir() / "codes"


def _probe_audio(params: TrainParams, state: Any) -> int:
    """Probe this rank's share of the data's audio files and give the results to every rank.

    Rank ``r`` of ``n`` probes ``distinct[r::n]`` (:func:`workbench.data.probe.probe_share`); the
    results are gathered (a barrier), so :func:`check_data` on each rank reads no audio. The first
    process of each machine also writes them to its probe cache.

    Returns:
        How many files this rank read (its share, less what its probe cache held).
    """
    from workbench.data.probe import default_probe_cache, probe_share, remember_probes
    from workbench.data.validate import Source

    paths = [
        p
        for path in (params.train_data, params.val_data)
        if path and os.path.isfile(path)  # a missing file is check_data's to report
        for p in Source(path).audio_paths()
    ]
    cache = default_probe_cache()
    before = cache.reads
    mine = probe_share(paths, state.process_index, state.num_processes, progress=state.is_main_process)
    read = cache.reads - before
    rank, ranks = state.process_index, state.num_processes
    log.info("rank %d/%d: %d audio files probed, %d read", rank, ranks, len(mine), read)
    if state.num_processes > 1:
        from accelerate.utils import gather_object

        remember_probes(gather_object(mine), persist=state.is_local_main_process)
    return read


def prepare(params: TrainParams) -> Prepared:
    """Check the data, load the model, fill the codes cache, and measure sequence lengths.

    Raises:
        DataCheckError: error findings, samples without target audio, or sequences longer than
            the model's context — all before the first training step.
    """
    from workbench.models.families import detect_family
    from workbench.training.codes import CodesCache
    from workbench.training.collate import padding_report, sequence_lengths

    state = process_state(params)  # the first call: the process group gets params.ddp_timeout
    _probe_audio(params, state)  # each rank reads its share of the audio; validation then reads none
    report = check_data(params)
    prepared = Prepared(params=params, report=report)  # the verdict is logged by validate()
    if params.validate_data_only:
        prepared.stop = True
        return prepared
    family = detect_family(params.model)  # reads config.json only: a wrong folder fails here, before loading
    if params.lora_target_modules is None:  # the family's default, written out in params.resolved.yaml
        params = prepared.params = dataclasses.replace(
            params, lora_target_modules=list(family.default_lora_targets)
        )

    train_samples = _load_split(params.train_data)
    val_samples = _load_split(params.val_data)
    refuse_untrainable(train_samples, "training", params.output_dir)
    refuse_untrainable(val_samples, "validation", params.output_dir)

    # bf16 weights under bf16 mixed precision, on the CPU too: a full-size LM takes 11 GB so, 22 GB in
    # float32. LoRA's own weights stay float32 (PEFT upcasts adapters), the codec stays float32.
    dtype = torch.bfloat16 if params.mixed_precision == "bf16" else None
    model, processor = family.load(params.model, dtype=dtype)
    cache_dir = Path(params.codes_cache_dir) if params.codes_cache_dir else default_codes_cache_dir()
    if torch.cuda.is_available():
        processor.audio_tokenizer.to(state.device)
    codes_cache = CodesCache(cache_dir, processor.audio_tokenizer)
    paths = sorted({m.audio_url for s in train_samples + val_samples for m in s.messages if m.is_audio})
    codes_cache.encode_missing(
        paths, progress=state.is_main_process, rank=state.process_index, world_size=state.num_processes,
        batch_size=CUDA_CODES_BATCH_SIZE if torch.cuda.is_available() else 1,
    )  # fmt: skip
    state.wait_for_everyone()
    codes_cache.refresh()  # content hashes the other ranks (other nodes) wrote: their files are not re-read
    processor.audio_tokenizer.to("cpu")

    max_length = params.max_length or family.context_length(model.config)
    lengths = sequence_lengths(train_samples, processor, codes_cache)
    val_lengths = sequence_lengths(val_samples, processor, codes_cache)
    if max_length:
        too_long = [
            (s.id, n)
            for s, n in zip(train_samples + val_samples, lengths + val_lengths, strict=True)
            if n > max_length
        ]
        if too_long:
            listing = ", ".join(f"{i} ({n} tokens)" for i, n in too_long[:10])
            raise DataCheckError(
                f"{len(too_long)} sample(s) are longer than the model's context of {max_length} tokens: {listing}. "
                "Hint: cut long clips into sentences (or lower --max-duration in validation), or use shorter references."
            )
    prepared.model, prepared.processor, prepared.codes_cache = model, processor, codes_cache
    prepared.train_samples, prepared.val_samples = train_samples, val_samples
    prepared.train_lengths, prepared.max_length = lengths, max_length
    effective = params.batch_size * params.gradient_accumulation_steps
    prepared.padding = (
        padding_report(lengths, max(1, min(effective, len(lengths))), seed=params.seed) if lengths else {}
    )
    prepared.schedule = training_schedule(params, len(train_samples), state.num_processes)
    return prepared  # the notebook shows prepared.summary(), once
