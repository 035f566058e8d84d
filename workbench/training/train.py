"""LoRA fine-tuning of Higgs Audio v2 with transformers' Trainer, PEFT and accelerate.

Two calls, which notebook 04 makes in two cells (so its report shows the data check even when
training is refused):

- :func:`prepare` checks the data (validator findings, target audio present, sequence lengths
  against the context), loads the model and processor, encodes every audio file once into the
  codes cache (sharded across ranks) and builds the datasets and collator;
- :func:`fit` wraps the model with LoRA, runs the Trainer (resuming from the latest complete
  checkpoint when asked), and writes ``adapter/`` (and ``merged/``), ``metrics.jsonl``,
  ``params.resolved.yaml`` and ``run.json``.

Only the Trainer (through accelerate) knows about devices and processes; this module only guards
writes and prints to the main process.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import platform
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from workbench.data.findings import finding, grouped_summary
from workbench.data.sample import Sample, read_samples
from workbench.training.checkpoints import (  # noqa: F401 - re-exported: the run's checkpoint API
    COMPLETE_MARKER,
    ResumeError,
    check_resume,
    latest_complete_checkpoint,
    remove_incomplete_checkpoints,
    resolve_resume,
    resume_point,
)
from workbench.training.params import TrainParams, save_resolved

log = logging.getLogger(__name__)


class DataCheckError(RuntimeError):
    """The data is not fit to train on; the message lists what and how to fix it."""


@dataclass
class Prepared:
    """What :func:`prepare` built; :func:`fit` consumes it."""

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


def _state(params: TrainParams | None = None):
    """accelerate's process state. The first call creates the process group: :func:`prepare` makes it,
    with ``params``, so a rank waits ``params.ddp_timeout`` seconds at a barrier (not accelerate's
    default) while the others fill a cold codes cache; later calls reuse it."""
    from datetime import timedelta

    from accelerate import PartialState

    kwargs = {"timeout": timedelta(seconds=params.ddp_timeout)} if params is not None else {}
    # Without GPUs, ranks started by `accelerate launch --multi_gpu` train on the CPU (gloo);
    # accelerate only sees them as distributed when told it is on the CPU.
    return PartialState(cpu=not torch.cuda.is_available(), **kwargs)


def _main_print(*args: Any) -> None:
    """Print once, on the main process (a message every rank reaches)."""
    _state().print(*args, flush=True)


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
    from workbench.data.tables import finding_rows, write_csv

    report.write_json(path)
    write_csv(finding_rows(report.findings), path.with_suffix(".csv"),
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

    state = _state(params)  # the first call: the process group gets params.ddp_timeout
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


# --- LoRA ----------------------------------------------------------------------------------------
def apply_lora(model: torch.nn.Module, params: TrainParams) -> torch.nn.Module:
    """Wrap ``model`` with PEFT LoRA on ``params.lora_target_modules``.

    Raises:
        ValueError: a target that matches no module (a typo would otherwise train nothing).
    """
    from peft import LoraConfig, get_peft_model

    from workbench.models.families import family_for

    family = family_for(model)
    targets = list(params.lora_target_modules or family.default_lora_targets)
    names = [n for n, _ in model.named_modules()]
    for field_name, wanted, examples in (
        ("lora_target_modules", targets, family.default_lora_targets),
        ("modules_to_save", params.modules_to_save or [], family.head_modules),
    ):
        unmatched = [t for t in wanted if not any(n == t or n.endswith("." + t) for n in names)]
        if unmatched:
            raise ValueError(
                f"{field_name} {unmatched} match no module of {type(model).__name__} ({family.title}); "
                f"expected names like {', '.join(examples)}"
            )
    config = LoraConfig(
        r=params.lora_r,
        lora_alpha=params.lora_alpha,
        lora_dropout=params.lora_dropout,
        target_modules=targets,
        modules_to_save=list(params.modules_to_save) if params.modules_to_save else None,
        bias="none",
    )
    return get_peft_model(model, config)


def trainable_table(model: torch.nn.Module) -> list[dict[str, Any]]:
    """Trainable parameters per module kind, summed over layers.

    Rows: ``LoRA q_proj`` ... (attention), ``LoRA mlp.gate_proj`` ... (text FFN), ``LoRA
    audio_mlp.gate_proj`` ... (audio FFN), ``full audio_lm_head`` (``modules_to_save``), then the
    trainable total and the share of all parameters.
    """
    groups: dict[str, list[int]] = {}
    total = 0
    for name, p in model.named_parameters():
        total += p.numel()
        if not p.requires_grad:
            continue
        parts = name.split(".")
        lora = next((i for i, x in enumerate(parts) if x.startswith("lora_")), None)
        if lora is not None:  # ...layers.0.mlp.gate_proj.lora_A.default.weight -> LoRA mlp.gate_proj
            kind = "LoRA " + ".".join(parts[max(0, lora - 2) : lora]).replace("self_attn.", "")
        elif "modules_to_save" in parts:  # ...audio_lm_head.modules_to_save.default.weight
            kind = "full " + parts[parts.index("modules_to_save") - 1]
        else:
            kind = "other " + ".".join(parts[-2:])
        groups.setdefault(kind, []).append(p.numel())
    rows = [{"module": k, "tensors": len(v), "parameters": sum(v)} for k, v in sorted(groups.items())]
    trainable = sum(r["parameters"] for r in rows)
    rows.append(
        {"module": "TOTAL trainable", "tensors": sum(r["tensors"] for r in rows), "parameters": trainable}
    )
    rows.append(
        {"module": f"of all parameters ({trainable / max(total, 1):.3%})", "tensors": "", "parameters": total}
    )
    return rows


# --- Trainer ---------------------------------------------------------------------------------------
class _WorkbenchTrainerMixin:
    """Length-grouped sampling from precomputed lengths; a training loss that weighs every supervised
    audio code alike across micro-batches and ranks; per-codebook accuracy in evaluation."""

    train_lengths: list[int] | None = None

    def _get_train_sampler(self, train_dataset=None):  # noqa: D401 - Trainer hook
        if self.train_lengths and self.args.train_sampling_strategy == "group_by_length":
            from workbench.training.collate import length_grouped_sampler

            return length_grouped_sampler(
                self.train_lengths,
                self.args.train_batch_size * self.args.gradient_accumulation_steps,
                seed=self.args.seed,
            )
        return super()._get_train_sampler(train_dataset)

    def _get_eval_sampler(self, eval_dataset):  # evaluation order does not matter; keep it simple
        return torch.utils.data.SequentialSampler(eval_dataset)

    def get_batch_samples(self, epoch_iterator, num_batches, device):
        """One optimizer step's micro-batches and their supervised audio entries per codebook.

        The Trainer counts ``num_items_in_batch`` only for a ``labels`` key; counted here for
        ``audio_labels``, it takes the path it takes for ``labels``: the model sums its cross entropy
        and divides by the count, ``compute_loss`` scales by the ranks and ``training_step`` skips the
        division by the accumulation steps (see :mod:`workbench.training.loss`).
        """
        batch_samples, num_items_in_batch = super().get_batch_samples(epoch_iterator, num_batches, device)
        if num_items_in_batch is not None or not self.model_accepts_loss_kwargs:
            return batch_samples, num_items_in_batch
        from workbench.training.loss import supervised_entries, supervised_per_codebook

        counted = supervised_entries(batch_samples)
        entries, codebooks = counted if counted else (torch.zeros((), dtype=torch.long), 1)
        # From here as transformers' _get_num_items_in_batch does for `labels`: the sum over the ranks
        # (every rank gathers, even one without batches), or a share per GPU under DataParallel.
        if self.args.average_tokens_across_devices and self.args.world_size > 1:
            entries = self.accelerator.gather(entries.to(device)).sum()
        elif self.args.n_gpu > 1:
            entries = entries // self.args.n_gpu
        if counted is None or not int(entries):
            return batch_samples, None
        num_items_in_batch = supervised_per_codebook(entries.to(device), codebooks)
        if self.args.n_gpu > 1 and num_items_in_batch.dim() == 0:
            num_items_in_batch = num_items_in_batch.unsqueeze(0).expand(self.args.n_gpu, -1)
        replicas = self.get_tp_size() * self.get_cp_size() * self.get_sp_size()  # ranks sharing a batch
        num_items_in_batch = num_items_in_batch / replicas
        return batch_samples, num_items_in_batch

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        loss, outputs = super().compute_loss(
            model, inputs, return_outputs=True, num_items_in_batch=num_items_in_batch
        )
        if not model.training and "audio_labels" in inputs:
            from workbench.training.metrics import codebook_hits

            correct, total = codebook_hits(model, inputs, outputs.logits)
            self._acc = (
                (self._acc[0] + correct, self._acc[1] + total)
                if getattr(self, "_acc", None)
                else (correct, total)
            )
        return (loss, outputs) if return_outputs else loss

    def evaluation_loop(self, *args, **kwargs):
        self._acc = None
        output = super().evaluation_loop(*args, **kwargs)
        if self._acc is not None:
            prefix = kwargs.get("metric_key_prefix", args[4] if len(args) > 4 else "eval")
            correct = self.accelerator.reduce(self._acc[0], "sum").float()
            total = self.accelerator.reduce(self._acc[1], "sum").float().clamp(min=1)
            acc = (correct / total).tolist()
            for k, value in enumerate(acc):
                output.metrics[f"{prefix}_acc_cb{k}"] = value
            output.metrics[f"{prefix}_acc_mean"] = sum(acc) / len(acc)
        return output


def _trainer_class():
    from transformers import Trainer

    return type("WorkbenchTrainer", (_WorkbenchTrainerMixin, Trainer), {})


def _callbacks(params: TrainParams) -> list[Any]:
    from transformers import TrainerCallback

    metrics_path = Path(params.output_dir) / "metrics.jsonl"

    class MetricsJsonl(TrainerCallback):
        """Append every log entry (loss, lr, eval metrics) to ``metrics.jsonl``."""

        def on_log(self, args, state, control, logs=None, **kwargs):
            if state.is_world_process_zero and logs:
                with open(metrics_path, "a", encoding="utf-8") as fh:
                    fh.write(
                        json.dumps(
                            {"step": state.global_step, "epoch": state.epoch, "time": time.time(), **logs}
                        )
                        + "\n"
                    )

    class CompleteMarker(TrainerCallback):
        """Mark a checkpoint complete after the Trainer finished writing it."""

        def on_save(self, args, state, control, **kwargs):
            _state().wait_for_everyone()  # every rank has written its part (rng_state_<rank>.pth)
            if state.is_world_process_zero:
                folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
                if folder.is_dir():
                    tmp = folder / (COMPLETE_MARKER + ".tmp")
                    tmp.write_text(json.dumps({"step": state.global_step, "time": time.time()}))
                    os.replace(tmp, folder / COMPLETE_MARKER)

    def clock(seconds: float | None) -> str:
        """``h:mm:ss`` (``?`` when unknown)."""
        if seconds is None:
            return "?"
        minutes, secs = divmod(round(seconds), 60)
        return f"{minutes // 60}:{minutes % 60:02d}:{secs:02d}"

    class TrainingProgress(TrainerCallback):
        """One line per logging step on the main process (step/total, loss, learning rate, tokens/s,
        elapsed, ETA) and one per evaluation: what a person watching a long run's terminal reads.

        Tokens/s counts the non-padding input tokens (the batch's attention mask: text and audio
        positions) of all ranks, as the Trainer counts them (``state.num_input_tokens_seen``), per
        second of training, evaluation and checkpoint time left out.
        """

        def __init__(self) -> None:
            self.seen = 0  # the Trainer's token count at the last progress line
            self.busy = 0.0  # seconds of training since the last progress line

        def on_train_begin(self, args, state, control, **kwargs):
            self.started = self.tick = time.perf_counter()
            self.start_step = state.global_step  # > 0 when resumed
            self.seen = state.num_input_tokens_seen
            if state.is_world_process_zero:
                resumed = f" from step {state.global_step}" if state.global_step else ""
                ranks = _state().num_processes
                print(
                    f"training {state.max_steps} steps{resumed}, a line every {interval_steps(params.logging_steps, state.max_steps)}; "
                    f"tokens/s: non-padding input tokens over {ranks} rank{'s' if ranks > 1 else ''}",
                    flush=True,
                )

        def on_step_end(self, args, state, control, **kwargs):
            now = time.perf_counter()
            self.busy += now - self.tick
            self.tick = now

        def on_evaluate(self, args, state, control, **kwargs):
            self.tick = time.perf_counter()  # evaluation time is not training throughput

        def on_save(self, args, state, control, **kwargs):
            self.tick = time.perf_counter()

        def on_log(self, args, state, control, logs=None, **kwargs):
            logs = logs or {}
            total = state.max_steps
            if "loss" in logs and state.is_world_process_zero:
                rate = (state.num_input_tokens_seen - self.seen) / self.busy if self.busy > 0 else 0.0
                self.seen, self.busy = state.num_input_tokens_seen, 0.0
                elapsed = time.perf_counter() - self.started
                done = state.global_step - self.start_step
                eta = elapsed / done * (total - state.global_step) if done > 0 else None
                print(
                    f"step {state.global_step}/{total} | loss {logs['loss']:.4g} | lr {logs.get('learning_rate', 0):.3g} | "
                    f"{rate:,.0f} tokens/s | elapsed {clock(elapsed)} | ETA {clock(eta)}",
                    flush=True,
                )
            elif "eval_loss" in logs and state.is_world_process_zero:
                acc = f" | codebook accuracy {logs['eval_acc_mean']:.1%}" if "eval_acc_mean" in logs else ""
                took = f" | {logs['eval_runtime']:.1f} s" if "eval_runtime" in logs else ""
                print(
                    f"eval at step {state.global_step}/{total} | loss {logs['eval_loss']:.4g}{acc}{took}",
                    flush=True,
                )

    return [MetricsJsonl(), CompleteMarker(), TrainingProgress()]


def _steps(value: int | float) -> int | float:
    """A step interval for the Trainer: whole steps as an int, a fraction of the run as it is."""
    return value if 0 < value < 1 else int(value)


def interval_steps(value: int | float, total: int) -> int:
    """The steps between saves (or evaluations, logs): ``value`` steps, or that fraction of ``total``,
    rounded up as the Trainer does."""
    import math

    return max(1, math.ceil(value * total)) if 0 < value < 1 else int(value)


def training_arguments(params: TrainParams, has_eval: bool) -> Any:
    from transformers import TrainingArguments

    return TrainingArguments(
        output_dir=params.output_dir,
        use_cpu=not torch.cuda.is_available(),
        per_device_train_batch_size=params.batch_size,
        per_device_eval_batch_size=params.batch_size,
        gradient_accumulation_steps=params.gradient_accumulation_steps,
        learning_rate=params.learning_rate,
        lr_scheduler_type="cosine",
        warmup_steps=params.warmup_ratio,  # a float in [0, 1) is a ratio of total steps
        weight_decay=params.weight_decay,
        max_grad_norm=params.max_grad_norm,
        num_train_epochs=params.num_epochs,
        max_steps=params.max_steps,
        bf16=params.mixed_precision == "bf16",
        fp16=params.mixed_precision == "fp16",
        activation_checkpointing=params.use_gradient_checkpointing,  # transformers' name for it now
        activation_checkpointing_kwargs={"use_reentrant": False}
        if params.use_gradient_checkpointing
        else None,
        dataloader_num_workers=params.dataloader_num_workers,
        save_strategy="steps",
        save_steps=_steps(params.save_steps),
        save_total_limit=params.save_total_limit,
        eval_strategy="steps" if has_eval else "no",
        eval_steps=_steps(params.eval_steps) if has_eval else None,
        logging_steps=_steps(params.logging_steps),
        seed=params.seed,
        data_seed=params.seed,
        report_to=["tensorboard"],
        remove_unused_columns=False,
        label_names=["audio_labels"],
        prediction_loss_only=True,
        train_sampling_strategy="group_by_length" if params.group_by_length else "random",
        ddp_find_unused_parameters=False,
        ddp_timeout=params.ddp_timeout,
        disable_tqdm=False,
        include_num_input_tokens_seen="non_padding",  # real tokens in state and logs (benchmarks, tokens/s)
    )


@dataclass
class TrainResult:
    """What :func:`fit` did; ``eval_trend`` is :func:`eval_trend` of the run's evaluations."""

    output_dir: str
    adapter_dir: str | None = None
    merged_dir: str | None = None
    resumed_from: str | None = None
    global_step: int = 0
    train_loss: float | None = None
    eval_metrics: dict[str, float] = field(default_factory=dict)
    eval_trend: dict[str, Any] | None = None
    seconds: float = 0.0

    def summary(self) -> str:
        resumed = f", resumed from {Path(self.resumed_from).name}" if self.resumed_from else ""
        ev = self.eval_metrics
        acc = (
            f", eval loss {ev['eval_loss']:.3f}, codebook accuracy {ev.get('eval_acc_mean', 0):.1%}"
            if "eval_loss" in ev
            else ""
        )
        loss = f"train loss {self.train_loss:.3f}" if self.train_loss is not None else "no training"
        trend = f"; {self.eval_trend['note']}" if self.eval_trend and self.eval_trend.get("note") else ""
        return f"{self.global_step} steps{resumed}; {loss}{acc}{trend}; adapter: {self.adapter_dir}"


EVAL_RISE_TOLERANCE = 0.02  # a final validation loss this much above the lowest one counts as rising


def eval_trend(log_history: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Lowest and last validation loss of a run, and a plain note when it rose since its lowest.

    A validation loss that rises while training goes on is the first sign of over-fitting (the
    voice degrades with longer training): the note names the step with the lowest loss, so the
    checkpoints around it are the ones to listen to in notebook 05.

    Returns:
        ``{"best_step", "best_eval_loss", "last_step", "last_eval_loss", "rising", "note"}``, or
        None with fewer than two evaluations.
    """
    evals = [(int(e["step"]), float(e["eval_loss"])) for e in log_history if "eval_loss" in e and "step" in e]
    evals = list(dict(evals).items())  # one value per step (a resumed run may log a step again)
    if len(evals) < 2:
        return None
    best_step, best = min(evals, key=lambda x: (x[1], x[0]))
    last_step, last = evals[-1]
    rising = last_step > best_step and last > best * (1 + EVAL_RISE_TOLERANCE)
    note = (
        f"validation loss rose from {best:.3f} (step {best_step}) to {last:.3f} (step {last_step}): likely "
        f"over-fitting; listen to the checkpoints near step {best_step} in notebook 05"
        if rising
        else None
    )
    return {
        "best_step": best_step, "best_eval_loss": best, "last_step": last_step, "last_eval_loss": last,
        "rising": rising, "note": note,
    }  # fmt: skip


def fit(prepared: Prepared, callbacks: list[Any] | None = None) -> TrainResult | None:
    """Train LoRA on the prepared data; write adapter, merged weights, metrics and run record.

    Args:
        prepared: What :func:`prepare` built.
        callbacks: More ``TrainerCallback`` objects (the benchmark's step timer).

    Raises:
        RuntimeError: out of memory, with the settings to change.
    """
    if prepared.stop:
        return None
    from workbench.models.families import family_for
    from workbench.training.collate import HiggsAudioCollator

    params = prepared.params
    family = family_for(prepared.model)
    state = _state()
    out = Path(params.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    resume = resume_point(params, state)  # checks against the earlier run's params before they are replaced
    if state.is_main_process:
        save_resolved(params, out / "params.resolved.yaml")
    model = prepared.model
    if params.use_gradient_checkpointing:
        model.enable_input_require_grads()
    # LoRA's A matrices start random: seed them, so the same params give the same run (the Trainer
    # seeds only later, when it is built). Every rank draws the same, as DDP expects.
    from transformers import set_seed

    set_seed(params.seed)
    model = apply_lora(model, params)
    prepared.lora_model = model
    for row in trainable_table(model):
        log.info("trainable %-40s %8s %12s", row["module"], row["tensors"], row["parameters"])
    collator = HiggsAudioCollator(prepared.processor, prepared.codes_cache, max_length=prepared.max_length)
    has_eval = bool(prepared.val_samples)
    # The TensorBoard callback reads its folder from the environment when the Trainer is built;
    # set it for this run only (a user's own TENSORBOARD_LOGGING_DIR wins).
    user_tb_dir = os.environ.get("TENSORBOARD_LOGGING_DIR")
    os.environ["TENSORBOARD_LOGGING_DIR"] = user_tb_dir or str(out / "tensorboard")
    try:
        trainer = _trainer_class()(
            model=model,
            args=training_arguments(params, has_eval),
            train_dataset=prepared.train_samples,
            eval_dataset=prepared.val_samples or None,
            data_collator=collator,
            callbacks=_callbacks(params) + [_notices_callback(family, params)] + list(callbacks or []),
        )
    finally:
        if user_tb_dir is None:
            os.environ.pop("TENSORBOARD_LOGGING_DIR", None)
    trainer.train_lengths = prepared.train_lengths
    if resume:
        _main_print(f"resuming from {resume}")
    started = time.perf_counter()
    try:
        output = trainer.train(resume_from_checkpoint=resume)
    except torch.OutOfMemoryError as exc:
        raise RuntimeError(
            f"out of memory at batch_size={params.batch_size} (longest sequence {max(prepared.train_lengths)} tokens). "
            "Hint: lower batch_size and raise gradient_accumulation_steps (same effective batch), set "
            "use_gradient_checkpointing: true and mixed_precision: bf16, or cut long clips (validate --max-duration)."
        ) from exc
    result = TrainResult(
        output_dir=str(out),
        resumed_from=resume,
        global_step=trainer.state.global_step,
        train_loss=output.training_loss,
        seconds=time.perf_counter() - started,
    )
    if has_eval:
        # The final evaluation, unless the last step was just evaluated (eval_steps divides it).
        last = [
            e
            for e in trainer.state.log_history
            if "eval_loss" in e and e.get("step") == trainer.state.global_step
        ]
        result.eval_metrics = dict(last[-1]) if last else trainer.evaluate()
        result.eval_trend = eval_trend(trainer.state.log_history)
        if result.eval_trend and result.eval_trend["note"]:
            log.warning("%s", result.eval_trend["note"])
    state.wait_for_everyone()
    if state.is_main_process:
        adapter = out / "adapter"
        trainer.model.save_pretrained(adapter)
        family.write_notices(adapter, _base_dir(params.model))
        result.adapter_dir = str(adapter)
        if params.merge:
            merged = family.save_merged(trainer.model, prepared.processor, out / "merged")
            family.write_notices(merged, _base_dir(params.model))
            result.merged_dir = str(merged)
        write_run_record(params, out, state.num_processes, result)
    state.wait_for_everyone()
    return result


def _base_dir(model: str) -> Path | None:
    """The base model's local folder (for its licence files), or None (``random-full``, not found)."""
    from workbench.models.folder import ModelNotFoundError, resolve_model_path

    try:
        return resolve_model_path(model)
    except ModelNotFoundError:
        return None


def _notices_callback(family: Any, params: TrainParams) -> Any:
    """A callback that writes the family's licence notices into every checkpoint (a checkpoint is an adapter too)."""
    from transformers import TrainerCallback

    class LicenceNotices(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            if state.is_world_process_zero and folder.is_dir():
                family.write_notices(folder, _base_dir(params.model))

    return LicenceNotices()


# --- run record ------------------------------------------------------------------------------------
def data_fingerprint(*paths: str | None) -> str:
    h = hashlib.sha256()
    for p in paths:
        if p and os.path.isfile(p):
            with open(p, "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    h.update(chunk)
    return h.hexdigest()[:16]


def _git_commit() -> str | None:
    try:
        root = Path(__file__).resolve().parents[2]
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5
        )
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def write_run_record(params: TrainParams, out: Path, world_size: int, result: TrainResult) -> Path:
    """``run.json``: versions, data fingerprint, git commit, world size, and the result."""
    import accelerate
    import peft
    import transformers

    from workbench import __version__

    record = {
        "workbench": __version__,
        "versions": {
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "peft": peft.__version__,
            "accelerate": accelerate.__version__,
            "python": platform.python_version(),
        },
        "git_commit": _git_commit(),
        "data_fingerprint": data_fingerprint(params.train_data, params.val_data),
        "world_size": world_size,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "result": {k: v for k, v in result.__dict__.items()},
    }
    path = out / "run.json"
    path.write_text(json.dumps(record, indent=2, default=str))
    return path


def is_main_process() -> bool:
    """True on the rank that writes reports (rank 0), and in single-process runs."""
    return _state().is_main_process
