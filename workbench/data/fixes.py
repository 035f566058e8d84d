"""Replay a fix recipe over canonical samples: ``workbench fix DATA.jsonl --recipe R -o FIXED.jsonl``.

:func:`apply_recipe` applies every step of a :class:`~workbench.data.recipe.FixRecipe`, in order, to
each sample and logs each change, skip and warning; :func:`fix` does it for a JSONL file and writes
the kept samples and the evaluation prompts atomically. Source audio is never modified: trimmed
copies are written by :func:`~workbench.data.trim.trim_file`. The recipe's names are importable from
here too, as the CLI, notebooks and scripts use them.

Example:
    >>> recipe = FixRecipe()
    >>> recipe.add("drop_samples", ids=["a"], reason="noisy")  # doctest: +ELLIPSIS
    Operation(op='drop_samples', ...)
    >>> len(apply_recipe([], recipe).samples)
    0
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench.data.recipe import TRIM_AUDIO_CHOICES, FixRecipe, Operation, RecipeError, as_recipe
from workbench.data.sample import AtomicJsonlWriter, Audio, Message, Sample, read_samples, sibling_path
from workbench.data.trim import trim_file

__all__ = [
    "TRIM_AUDIO_CHOICES",
    "FixRecipe",
    "FixResult",
    "Operation",
    "RecipeError",
    "apply_recipe",
    "fix",
    "trim_file",
]

log = logging.getLogger(__name__)


@dataclass
class FixResult:
    """What a recipe did.

    Attributes:
        samples: kept samples, in input order, possibly changed.
        prompts: samples moved to evaluation prompts (target audio removed).
        dropped: ``{"id", "step", "reason"}`` per dropped sample.
        log: one line per change, skip and warning (``step N op ID: what``).
        warnings: the warning lines (also in ``log``), e.g. ids that match no sample.
        outputs: files written by :func:`fix` (kind -> path).
    """

    samples: list[Sample] = field(default_factory=list)
    prompts: list[Sample] = field(default_factory=list)
    dropped: list[dict[str, Any]] = field(default_factory=list)
    log: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    outputs: dict[str, str] = field(default_factory=dict)

    def summary_line(self) -> str:
        return (
            f"{len(self.samples)} kept, {len(self.prompts)} moved to prompts, {len(self.dropped)} dropped, "
            f"{len(self.warnings)} warnings"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "kept": len(self.samples),
            "prompts": len(self.prompts),
            "dropped": self.dropped,
            "warnings": self.warnings,
            "log": self.log,
            "outputs": self.outputs,
        }


class _Run:
    """Applies a recipe sample by sample and remembers what each step matched, for warnings."""

    def __init__(self, recipe: FixRecipe, output_dir: str | os.PathLike | None):
        self.recipe, self.result = recipe, FixResult()
        self.trim_dir = Path(output_dir).absolute() / "trimmed" if output_dir is not None else None
        self.matched: list[set[str]] = [set() for _ in recipe.ops]
        self.id_sets = [
            None if op.args.get("ids", "all") == "all" else set(op.args["ids"]) for op in recipe.ops
        ]
        self.dropped_at: dict[str, int] = {}
        self.trims: dict[tuple[str, float, float], tuple[str | None, str]] = {}

    def note(self, step: int, op: Operation, sample_id: str, what: str) -> None:
        self.result.log.append(f"step {step} {op.op} {sample_id}: {what}")

    def apply(self, sample: Sample) -> None:
        moved = False
        for step, op in enumerate(self.recipe.ops, start=1):
            ids = self.id_sets[step - 1]
            if ids is not None:  # an op for listed samples; remap_prefix and merge_speakers see all
                if sample.id not in ids:
                    continue
                self.matched[step - 1].add(sample.id)
            if op.op == "drop_samples":
                self.result.dropped.append({"id": sample.id, "step": step, "reason": op.args["reason"]})
                self.dropped_at.setdefault(sample.id, step)
                self.note(step, op, sample.id, f"dropped ({op.args['reason']})")
                return
            if op.op == "move_to_prompts":
                sample, moved = self.move_to_prompts(step, op, sample), True
            else:
                sample = getattr(self, op.op)(step, op, sample)
        (self.result.prompts if moved else self.result.samples).append(sample)

    def remap_prefix(self, step: int, op: Operation, sample: Sample) -> Sample:
        old, new = op.args["old"], op.args["new"]
        changed = sample.map_audio(lambda p: new + p[len(old) :] if p.startswith(old) else p)
        for before, after in zip(sample.messages, changed.messages, strict=True):
            if before != after:
                self.matched[step - 1].add(sample.id)
                self.note(step, op, sample.id, f"{before.audio_url} -> {after.audio_url}")
        return changed

    def trim_silence(self, step: int, op: Operation, sample: Sample) -> Sample:
        which = op.args["audio"]
        indices = {"target": sample.target_indices, "reference": sample.reference_indices}.get(
            which, sample.audio_indices
        )()
        messages, trimmed_from = list(sample.messages), dict(sample.misc.get("trimmed_from") or {})
        for i in indices:
            src = messages[i].audio_url
            key = (src, op.args["threshold_db"], op.args["keep_ms"])
            if key not in self.trims:
                self.trims[key] = trim_file(src, self.trim_dir, *key[1:])  # type: ignore[arg-type]
            new_path, what = self.trims[key]
            self.note(step, op, sample.id, what)
            if new_path is not None:
                messages[i] = Message(messages[i].role, Audio(new_path))
                trimmed_from[new_path] = trimmed_from.pop(src, src)  # keep the original source
        if messages == list(sample.messages):
            return sample
        return sample.with_changes(
            messages=tuple(messages), misc={**sample.misc, "trimmed_from": trimmed_from}
        )

    def set_speaker(self, step: int, op: Operation, sample: Sample) -> Sample:
        if sample.speaker == op.args["speaker"]:
            return sample
        self.note(step, op, sample.id, f"speaker {sample.speaker!r} -> {op.args['speaker']!r}")
        return sample.with_changes(speaker=op.args["speaker"])

    def merge_speakers(self, step: int, op: Operation, sample: Sample) -> Sample:
        if sample.speaker not in op.args["speakers"] and sample.speaker != op.args["into"]:
            return sample
        self.matched[step - 1].add(str(sample.speaker))
        if sample.speaker == op.args["into"]:
            return sample
        self.note(step, op, sample.id, f"speaker {sample.speaker!r} -> {op.args['into']!r}")
        return sample.with_changes(speaker=op.args["into"])

    def move_to_prompts(self, step: int, op: Operation, sample: Sample) -> Sample:
        targets = set(sample.target_indices())
        removed = [sample.messages[i].audio_url for i in sorted(targets)]
        why = f" ({op.args['reason']})" if op.args["reason"] else ""
        self.note(step, op, sample.id, f"moved to prompts{why}; removed target audio {', '.join(removed)}")
        kept = tuple(m for i, m in enumerate(sample.messages) if i not in targets)
        misc = {
            **sample.misc,
            "removed_target_audio": list(sample.misc.get("removed_target_audio", [])) + removed,
        }
        return sample.with_changes(messages=kept, misc=misc)

    def finish(self) -> FixResult:
        for step, op in enumerate(self.recipe.ops, start=1):
            matched, warn = self.matched[step - 1], []
            if op.op == "remap_prefix" and not matched:
                warn.append(f"no audio path starts with {op.args['old']!r}")
            elif op.op == "merge_speakers":
                warn += [f"speaker {s!r} matches no sample" for s in op.args["speakers"] if s not in matched]
            elif op.args.get("ids", "all") != "all":
                for sample_id in dict.fromkeys(op.args["ids"]):
                    if sample_id in matched:
                        continue
                    earlier = self.dropped_at.get(sample_id)
                    gone = (
                        f"was dropped in step {earlier}"
                        if earlier and earlier < step
                        else "matches no sample"
                    )
                    warn.append(f"id {sample_id!r} {gone}")
            for what in warn:
                line = f"WARNING step {step} {op.op}: {what}"
                self.result.warnings.append(line)
                self.result.log.append(line)
                log.warning(line)
        log.info("fix recipe applied: %s", self.result.summary_line())
        return self.result


def apply_recipe(
    samples: Iterable[Sample],
    recipe: FixRecipe | str | os.PathLike,
    output_dir: str | os.PathLike | None = None,
) -> FixResult:
    """Apply every step of ``recipe``, in order, to each sample.

    Args:
        samples: canonical samples (streamed once).
        recipe: a :class:`FixRecipe` or the path of its YAML file.
        output_dir: folder whose ``trimmed/`` subfolder receives trimmed audio copies; needed only
            when the recipe has a ``trim_silence`` step.

    Returns:
        The :class:`FixResult` (kept samples, prompts, dropped ids, change log, warnings).

    Raises:
        RecipeError: the recipe is invalid, or trims audio without an ``output_dir``.
    """
    recipe = as_recipe(recipe)
    if output_dir is None and any(op.op == "trim_silence" for op in recipe.ops):
        steps = [str(n) for n, op in enumerate(recipe.ops, start=1) if op.op == "trim_silence"]
        raise RecipeError(
            [f"step {', '.join(steps)} (trim_silence): needs an output_dir for the trimmed copies"]
        )
    run = _Run(recipe, output_dir)
    for sample in samples:
        run.apply(sample)
    return run.finish()


def fix(
    data: str | os.PathLike,
    recipe: FixRecipe | str | os.PathLike,
    output: str | os.PathLike,
    *,
    output_dir: str | os.PathLike | None = None,
    overwrite: bool = False,
) -> FixResult:
    """Apply a fix recipe to canonical JSONL: ``workbench fix DATA.jsonl --recipe R -o FIXED.jsonl``.

    Writes ``output`` (kept samples) and, when any sample was moved to prompts,
    ``FIXED.prompts.jsonl`` beside it; both atomically. Source audio is never modified.

    Args:
        data: canonical JSONL input.
        recipe: a :class:`FixRecipe` or the path of its YAML file.
        output: the fixed JSONL path.
        output_dir: where ``trimmed/`` audio goes (default: the folder of ``output``).
        overwrite: replace existing outputs.

    Returns:
        The :class:`FixResult`, with ``outputs`` naming the files written.

    Raises:
        RecipeError: the recipe is invalid (every problem named), before any work.
        FileExistsError: an output exists and ``overwrite`` is false.
        FileNotFoundError: ``data`` does not exist.
        workbench.data.sample.CanonicalFormatError: a line of ``data`` is not a canonical sample.
    """
    recipe = as_recipe(recipe)
    output = Path(output).absolute()
    prompts_path = sibling_path(output, "prompts")
    if not overwrite:
        clash = [str(p) for p in (output, prompts_path) if p.exists()]
        if clash:
            raise FileExistsError(
                f"output already exists: {', '.join(clash)}. Hint: pass --overwrite to replace it."
            )
    if not os.path.isfile(data):
        raise FileNotFoundError(f"input not found: {os.path.abspath(data)}")
    result = apply_recipe(read_samples(data), recipe, output_dir if output_dir is not None else output.parent)
    with (
        AtomicJsonlWriter(output, overwrite=overwrite) as kept_w,
        AtomicJsonlWriter(prompts_path, overwrite=overwrite, keep_empty=False) as prompt_w,
    ):
        kept_w.write_many(result.samples)
        prompt_w.write_many(result.prompts)
    result.outputs = {"samples": str(output)}
    if result.prompts:
        result.outputs["prompts"] = str(prompts_path)
    return result
