"""Checkpoints of a training run: which are complete, where to resume, and whether resuming can work.

A checkpoint is complete once :data:`COMPLETE_MARKER` is written into it, after the Trainer
finished saving; half-written ones (a kill during a save) are removed, never resumed from.
:func:`check_resume` refuses a resume that cannot load (another adapter shape or base model) and a
fresh start over an earlier run's checkpoints, before the first step.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import yaml

from workbench.files import write_text
from workbench.training.params import TrainParams

log = logging.getLogger(__name__)

COMPLETE_MARKER = "workbench_complete.json"  # written into a checkpoint once it is completely saved


def latest_complete_checkpoint(output_dir: str | os.PathLike) -> str | None:
    """The newest ``checkpoint-N`` that finished saving (has our marker and the trainer state)."""
    out = Path(output_dir)
    if not out.is_dir():
        return None
    found = []
    for d in out.glob("checkpoint-*"):
        suffix = d.name.split("-", 1)[1]
        if not suffix.isdigit():
            continue
        if (d / COMPLETE_MARKER).exists() and (d / "trainer_state.json").exists():
            found.append((int(suffix), d))
        else:
            log.warning("ignoring incomplete checkpoint %s", d)
    return str(max(found)[1]) if found else None


def remove_incomplete_checkpoints(output_dir: str | os.PathLike, keep: str | None = None) -> list[str]:
    """Delete ``checkpoint-N`` folders without our marker (saves cut short by a kill or a crash).

    Left in place they would still count in the Trainer's ``save_total_limit`` rotation, which
    could then delete the complete checkpoints instead. ``keep`` is never deleted.

    Returns:
        The deleted folders.
    """
    import shutil

    removed = []
    for d in sorted(Path(output_dir).glob("checkpoint-*")):
        if not d.is_dir() or not d.name.split("-", 1)[1].isdigit() or (d / COMPLETE_MARKER).exists():
            continue
        if keep and d.resolve() == Path(keep).resolve():
            continue
        log.warning(
            "removing incomplete checkpoint %s (its save was interrupted; it is never resumed from)", d
        )
        shutil.rmtree(d, ignore_errors=True)
        removed.append(str(d))
    return removed


def _trim_metrics(path: Path, resume: str | None) -> None:
    """Keep the ``metrics.jsonl`` rows up to the resumed step (none on a fresh start)."""
    if not path.exists():
        return
    step = 0
    if resume:
        state = json.loads((Path(resume) / "trainer_state.json").read_text())
        step = int(state.get("global_step", 0))
    kept = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            if line.strip() and json.loads(line).get("step", 0) <= step:
                kept.append(line + "\n")
        except json.JSONDecodeError:  # a row cut short by a kill
            continue
    write_text(path, "".join(kept) if resume else "")


def resume_point(params: TrainParams, state: Any) -> str | None:
    """Where to resume, decided by the main process and followed by every rank.

    The main process also removes incomplete checkpoints and the metrics logged after the resumed
    step (a killed run logged them, and they will be logged again).
    """
    decision: tuple[str | None, str | None] = (None, None)
    if state.is_main_process:
        try:
            resume = resolve_resume(params)
            for change in check_resume(params, resume):
                log.warning("resuming %s with a changed setting: %s", Path(resume).name, change)  # type: ignore[arg-type]
            remove_incomplete_checkpoints(params.output_dir, keep=resume)
            _trim_metrics(Path(params.output_dir) / "metrics.jsonl", resume)
            decision = (resume, None)
        except (OSError, ValueError) as exc:
            decision = (
                None,
                str(exc) if isinstance(exc, ResumeError) else f"cannot resume: {type(exc).__name__}: {exc}",
            )
    if state.num_processes > 1:
        from accelerate.utils import broadcast_object_list

        decision = tuple(broadcast_object_list(list(decision), from_process=0))
    resume, error = decision
    if error:
        raise ResumeError(error)
    return resume


class ResumeError(ValueError):
    """A resume that cannot work, or a fresh start that would overwrite an earlier run's checkpoints."""


# Settings that shape the adapter: a checkpoint trained with other values cannot be loaded.
ADAPTER_SHAPE = {"lora_r": "r", "lora_alpha": "lora_alpha", "lora_target_modules": "target_modules",
                 "modules_to_save": "modules_to_save"}  # fmt: skip
# Settings a resumed run may change, but that make it a different run than the checkpoint's: noted.
RESUME_NOTED = (
    "train_data", "val_data", "batch_size", "gradient_accumulation_steps", "learning_rate", "warmup_ratio",
    "weight_decay", "max_grad_norm", "lora_dropout", "mixed_precision", "seed", "max_length", "group_by_length",
)  # fmt: skip


def _same_path(a: Any, b: Any) -> bool:
    if isinstance(a, str) and isinstance(b, str) and (os.path.exists(a) or os.path.exists(b)):
        return os.path.realpath(a) == os.path.realpath(b)
    return a == b


def _default_targets(model: str) -> list[str] | None:
    """The LoRA targets that unset ``lora_target_modules`` means for ``model`` (its family's), or None."""
    from workbench.models.families import detect_family
    from workbench.models.folder import ModelNotFoundError

    try:
        return list(detect_family(model).default_lora_targets)
    except (ModelNotFoundError, OSError, ValueError):
        return None


def check_resume(params: TrainParams, resume: str | None) -> list[str]:
    """Refuse a resume that cannot work, before the Trainer fails deep inside; return what changed.

    - A fresh start (``resume_from_checkpoint: null``) in an ``output_dir`` holding complete
      checkpoints would overwrite and mix with them: refused.
    - Resuming a checkpoint whose adapter has another shape (``lora_r``, ``lora_alpha``,
      ``lora_target_modules``, ``modules_to_save``, from its ``adapter_config.json``) or another base
      ``model`` (from the run's ``params.resolved.yaml``) cannot load: refused.
    - Other changed settings (data, batch, learning rate...) are allowed and returned, one line each.

    Raises:
        ResumeError: naming each difference and the way out.
    """
    out = Path(params.output_dir)
    if resume is None:
        earlier = latest_complete_checkpoint(out)
        if earlier is not None:
            raise ResumeError(
                f"output_dir {out} holds complete checkpoints of an earlier run (latest: {Path(earlier).name}); a fresh "
                "start (resume_from_checkpoint: null) would overwrite and mix with them. Hint: resume with "
                "resume_from_checkpoint: auto, choose a new output_dir, or delete the checkpoint-* folders."
            )
        return []
    problems, changes = [], []
    config_file = Path(resume) / "adapter_config.json"
    adapter = json.loads(config_file.read_text()) if config_file.is_file() else {}
    for name, key in ADAPTER_SHAPE.items():
        if key not in adapter:
            continue
        ours, theirs = getattr(params, name), adapter[key]
        if name == "lora_target_modules" and ours is None:
            ours = _default_targets(params.model)
        if isinstance(theirs, (list, set, tuple)) or isinstance(ours, (list, tuple)):
            same = set(ours or []) == set(theirs or [])
        else:
            same = ours == theirs
        if not same:
            problems.append(f"{name}: the checkpoint has {theirs!r}, this run asks for {ours!r}")
    resolved = Path(resume).parent / "params.resolved.yaml"
    if resolved.is_file():
        earlier_params = yaml.safe_load(resolved.read_text()) or {}
        if "model" in earlier_params and not _same_path(earlier_params["model"], params.model):
            problems.append(
                f"model: the checkpoint was trained on {earlier_params['model']!r}, this run loads {params.model!r}"
            )
        for name in RESUME_NOTED:
            if name in earlier_params and not _same_path(earlier_params[name], getattr(params, name)):
                changes.append(f"{name}: {earlier_params[name]!r} -> {getattr(params, name)!r}")
    if problems:
        raise ResumeError(
            f"cannot resume {resume}: "
            + "; ".join(problems)
            + ". Hint: resume with the checkpoint's settings, or "
            "start a new run in a new output_dir."
        )
    return changes


def resolve_resume(params: TrainParams) -> str | None:
    """The checkpoint ``params.resume_from_checkpoint`` names: ``auto`` = the latest complete one.

    Raises:
        FileNotFoundError: an explicit checkpoint path that is not a complete checkpoint.
    """
    value = params.resume_from_checkpoint
    if value in (None, "", "none", "no"):
        return None
    if value == "auto":
        return latest_complete_checkpoint(params.output_dir)
    if not (Path(value) / "trainer_state.json").exists():
        raise FileNotFoundError(
            f"resume_from_checkpoint: {value} is not a complete checkpoint (no trainer_state.json)"
        )
    return value
