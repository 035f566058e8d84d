"""The callbacks of a training run: ``metrics.jsonl``, complete checkpoints, licence notices, progress.

What a person watching a long run reads is rank 0's terminal: one line per logging step (step/total,
loss, learning rate, tokens/s, elapsed, ETA) and one per evaluation. A checkpoint is marked complete
(:data:`workbench.training.checkpoints.COMPLETE_MARKER`) once every rank has written its part, so a
resumed run never starts from a half-written one.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from workbench.files import write_json
from workbench.training.checkpoints import COMPLETE_MARKER
from workbench.training.params import TrainParams
from workbench.training.preparation import interval_steps, process_state


def append_metrics(output_dir: str | os.PathLike, state: Any, entry: dict[str, Any]) -> None:
    """Append one entry (with the step, epoch and time) to the run's ``metrics.jsonl``.

    The file is a log that grows by a line per entry: appended to, not rewritten whole at every
    step (a line cut short by a kill is dropped when the run resumes).
    """
    line = {"step": state.global_step, "epoch": state.epoch, "time": time.time(), **entry}
    with open(Path(output_dir) / "metrics.jsonl", "a", encoding="utf-8") as fh:
        fh.write(json.dumps(line) + "\n")


class MetricsJsonl(TrainerCallback):
    """Append every log entry (loss, lr, eval metrics) to ``metrics.jsonl``."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        if state.is_world_process_zero and logs:
            append_metrics(args.output_dir, state, logs)


class CompleteMarker(TrainerCallback):
    """Mark a checkpoint complete after every rank finished writing it."""

    def on_save(self, args, state, control, **kwargs):
        process_state().wait_for_everyone()  # every rank has written its part (rng_state_<rank>.pth)
        folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        if state.is_world_process_zero and folder.is_dir():
            write_json(folder / COMPLETE_MARKER, {"step": state.global_step, "time": time.time()})


def base_model_dir(model: str) -> Path | None:
    """The base model's local folder (for its licence files), or None (``random-full``, not found)."""
    from workbench.models.folder import ModelNotFoundError, resolve_model_path

    try:
        return resolve_model_path(model)
    except ModelNotFoundError:
        return None


class LicenceNotices(TrainerCallback):
    """Write the family's licence notices into every checkpoint (a checkpoint is an adapter too)."""

    def __init__(self, family: Any, model: str) -> None:
        self.family, self.model = family, model

    def on_save(self, args, state, control, **kwargs):
        folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        if state.is_world_process_zero and folder.is_dir():
            self.family.write_notices(folder, base_model_dir(self.model))


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

    def __init__(self, logging_steps: int | float) -> None:
        self.logging_steps = logging_steps
        self.seen = 0  # the Trainer's token count at the last progress line
        self.busy = 0.0  # seconds of training since the last progress line

    def on_train_begin(self, args, state, control, **kwargs):
        self.started = self.tick = time.perf_counter()
        self.start_step = state.global_step  # > 0 when resumed
        self.seen = state.num_input_tokens_seen
        if state.is_world_process_zero:
            resumed = f" from step {state.global_step}" if state.global_step else ""
            ranks = process_state().num_processes
            print(
                f"training {state.max_steps} steps{resumed}, a line every {interval_steps(self.logging_steps, state.max_steps)}; "
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


def run_callbacks(params: TrainParams, family: Any) -> list[Any]:
    """The callbacks every run has: metrics, licence notices, complete markers (after the checkpoint's
    last file), the progress line."""
    return [
        MetricsJsonl(),
        LicenceNotices(family, params.model),
        CompleteMarker(),
        TrainingProgress(params.logging_steps),
    ]
