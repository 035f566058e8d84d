"""LoRA fine-tuning with transformers' Trainer, PEFT and accelerate: the run, its outputs and its record.

Two calls, which notebook 04 makes in two cells (so its report shows the data check even when
training is refused):

- :func:`prepare` (:mod:`workbench.training.preparation`) checks the data, loads the model and
  processor, encodes every audio file once into the codes cache (sharded across ranks) and measures
  the sequences;
- :func:`fit` wraps the model with LoRA, runs the Trainer (:mod:`workbench.training.trainer`, with
  the callbacks of :mod:`workbench.training.callbacks`), resuming from the latest complete
  checkpoint when asked, and writes ``adapter/`` (and ``merged/``), ``metrics.jsonl``,
  ``params.resolved.yaml`` and ``run.json``.

Only the Trainer (through accelerate) knows about devices and processes; this module only guards
writes and prints to the main process.
"""

from __future__ import annotations

import hashlib
import logging
import os
import platform
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from workbench.files import write_json
from workbench.training.callbacks import base_model_dir, run_callbacks
from workbench.training.checkpoints import resume_point
from workbench.training.params import TrainParams, save_resolved
from workbench.training.preparation import (  # noqa: F401 - prepare and is_main_process: notebook 04's calls
    Prepared,
    is_main_process,
    main_print,
    prepare,
    process_state,
)
from workbench.training.trainer import apply_lora, trainable_table, trainer_class, training_arguments

log = logging.getLogger(__name__)


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
    state = process_state()
    out = Path(params.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    resume = resume_point(params, state)  # checks against the earlier run's params before they are replaced
    if state.is_main_process:
        save_resolved(params, out / "params.resolved.yaml")
    model = prepared.model
    if params.activation_checkpointing:
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
        trainer = trainer_class()(
            model=model,
            args=training_arguments(params, has_eval),
            train_dataset=prepared.train_samples,
            eval_dataset=prepared.val_samples or None,
            data_collator=collator,
            callbacks=run_callbacks(params, family) + list(callbacks or []),
        )
    finally:
        if user_tb_dir is None:
            os.environ.pop("TENSORBOARD_LOGGING_DIR", None)
    trainer.train_lengths = prepared.train_lengths
    if resume:
        main_print(f"resuming from {resume}")
    started = time.perf_counter()
    try:
        output = trainer.train(resume_from_checkpoint=resume)
    except torch.OutOfMemoryError as exc:
        raise RuntimeError(
            f"out of memory at batch_size={params.batch_size} (longest sequence {max(prepared.train_lengths)} tokens). "
            "Hint: lower batch_size and raise gradient_accumulation_steps (same effective batch), set "
            "activation_checkpointing: true and mixed_precision: bf16, or cut long clips (validate --max-duration)."
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
        family.write_notices(adapter, base_model_dir(params.model))
        result.adapter_dir = str(adapter)
        if params.merge:
            merged = family.save_merged(trainer.model, prepared.processor, out / "merged")
            family.write_notices(merged, base_model_dir(params.model))
            result.merged_dir = str(merged)
        write_run_record(params, out, state.num_processes, result)
    state.wait_for_everyone()
    return result


# --- run record ------------------------------------------------------------------------------------
def data_fingerprint(*paths: str | None) -> str:
    """The first 16 hex digits of the SHA-256 of the given files' bytes, in order (missing ones skipped)."""
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
    return write_json(out / "run.json", record)
