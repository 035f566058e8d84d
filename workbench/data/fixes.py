"""Fix recipes: dataset fixes recorded as an ordered list of operations, replayable headless.

A recipe is YAML, one mapping per step, applied in order to every sample::

    # workbench fix recipe
    # replay: workbench fix DATA.jsonl --recipe fixes.yaml -o FIXED.jsonl
    - op: drop_samples
      ids: [a, b]
      reason: wrong speaker
    - op: remap_prefix           # every audio path starting with `old`
      old: /mnt/old/
      new: /data/new/
    - op: trim_silence           # trimmed copies under OUTPUT_DIR/trimmed/; sources never modified
      ids: all                   # or a list of sample ids
      audio: all                 # target | reference | all
      threshold_db: 40           # below the clip's loudest 10 ms frame; higher = trims less
      keep_ms: 100               # margin kept at each edge
    - op: set_speaker
      ids: [d]
      speaker: spk2
    - op: merge_speakers
      speakers: [spkA, spk_a]
      into: spkA
    - op: move_to_prompts        # target audio removed: kept as an evaluation prompt
      ids: [e]

The notebook's fix buttons call :meth:`FixRecipe.add`; ``workbench fix`` calls :func:`fix`.
Every problem in a recipe is reported at once, before any work, as a :class:`RecipeError`.

Example:
    >>> recipe = FixRecipe()
    >>> recipe.add("drop_samples", ids=["a"], reason="noisy")  # doctest: +ELLIPSIS
    Operation(op='drop_samples', ...)
    >>> print(recipe.describe())
    1. drop a (noisy)
"""

from __future__ import annotations

import difflib
import hashlib
import logging
import os
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import yaml

from workbench.data.sample import AtomicJsonlWriter, Audio, Message, Sample, read_samples, sibling_path

log = logging.getLogger(__name__)

_REQUIRED = object()
TRIM_AUDIO_CHOICES = ("target", "reference", "all")
# Source subtype -> (dtype read and written unchanged, WAV subtype written); others become 16-bit PCM.
_NATIVE = {
    "PCM_16": ("int16", "PCM_16"),
    "PCM_24": ("int32", "PCM_24"),
    "PCM_32": ("int32", "PCM_32"),
    "FLOAT": ("float32", "FLOAT"),
    "DOUBLE": ("float64", "DOUBLE"),
}


class RecipeError(ValueError):
    """A fix recipe with problems; ``problems`` lists every one (step number, op, argument)."""

    def __init__(self, problems: list[str], source: str | None = None):
        self.problems = list(problems)
        where = f"{source}: " if source else ""
        count = f"{len(problems)} problems" if len(problems) > 1 else "a problem"
        super().__init__(f"{where}fix recipe has {count}:\n" + "\n".join(f"  - {p}" for p in problems))


# --- argument checks: each returns the normalised value or raises ValueError(expected ...) ----
def _text(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"a non-empty string, got {value!r}")
    return value


def _any_text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"a string, got {value!r}")
    return value


def _ids(value: Any) -> list[str]:
    ok = isinstance(value, list) and value and all(isinstance(v, (str, int)) for v in value)
    if not ok or any(isinstance(v, bool) for v in value):  # YAML reads bare yes/no as booleans
        raise ValueError(f"a non-empty list of sample ids, got {value!r}")
    return [str(v) for v in value]


def _ids_or_all(value: Any) -> list[str] | str:
    if value == "all":
        return "all"
    try:
        return _ids(value)
    except ValueError:
        raise ValueError(f"'all' or a non-empty list of sample ids, got {value!r}") from None


def _names(value: Any) -> list[str]:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        raise ValueError(f"a non-empty list of speaker names, got {value!r}")
    return list(value)


def _number(minimum: float, strict: bool) -> Callable[[Any], float]:
    def check(value: Any) -> float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not ok or value < minimum or (strict and value == minimum):
            raise ValueError(f"a number {'>' if strict else '>='} {minimum:g}, got {value!r}")
        return value

    return check


def _choice(value: Any) -> str:
    if value not in TRIM_AUDIO_CHOICES:
        raise ValueError(f"one of {', '.join(TRIM_AUDIO_CHOICES)}, got {value!r}")
    return value


# op -> argument -> (default or _REQUIRED, check); argument order here is the YAML order.
OPS: dict[str, dict[str, tuple[Any, Callable[[Any], Any]]]] = {
    "drop_samples": {"ids": (_REQUIRED, _ids), "reason": ("dropped by fix recipe", _any_text)},
    "remap_prefix": {"old": (_REQUIRED, _text), "new": (_REQUIRED, _any_text)},
    "trim_silence": {
        "ids": ("all", _ids_or_all),
        "audio": ("all", _choice),
        "threshold_db": (40, _number(0, strict=True)),
        "keep_ms": (100, _number(0, strict=False)),
    },
    "set_speaker": {"ids": (_REQUIRED, _ids), "speaker": (_REQUIRED, _text)},
    "merge_speakers": {"speakers": (_REQUIRED, _names), "into": (_REQUIRED, _text)},
    "move_to_prompts": {"ids": (_REQUIRED, _ids), "reason": ("", _any_text)},
}


def _hint(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _short(ids: Iterable[str], limit: int = 5) -> str:
    ids = list(ids)
    more = f" and {len(ids) - limit} more" if len(ids) > limit else ""
    return ", ".join(ids[:limit]) + more


@dataclass(frozen=True)
class Operation:
    """One validated recipe step: ``op`` and its arguments, defaults filled in."""

    op: str
    args: dict[str, Any]

    @staticmethod
    def check(step: int, raw: Any) -> tuple[Operation | None, list[str]]:
        """Validate one raw step (a mapping with ``op``); returns the operation or every problem."""
        if not isinstance(raw, dict) or "op" not in raw:
            return None, [f"step {step}: expected a mapping with an 'op' key, got {raw!r}"]
        name = raw["op"]
        if not isinstance(name, str) or name not in OPS:
            known = ", ".join(OPS)
            return None, [f"step {step} ({name}): unknown op{_hint(str(name), OPS)}; expected one of {known}"]
        spec, problems, args = OPS[name], [], {}
        for key in raw:
            if key != "op" and key not in spec:
                problems.append(
                    f"step {step} ({name}): unknown argument {key!r}{_hint(str(key), spec)}; "
                    f"allowed: {', '.join(spec)}"
                )
        for key, (default, check) in spec.items():
            if key not in raw:
                if default is _REQUIRED:
                    problems.append(f"step {step} ({name}): missing required argument {key!r}")
                else:
                    args[key] = default
                continue
            try:
                args[key] = check(raw[key])
            except ValueError as exc:
                problems.append(f"step {step} ({name}): argument {key!r} must be {exc}")
        return (None, problems) if problems else (Operation(name, args), [])

    def to_dict(self) -> dict[str, Any]:
        return {"op": self.op, **self.args}

    def describe(self) -> str:
        """One readable line, e.g. ``merge speakers spkA, spk_a into spkA``."""
        a = self.args
        ids = "every sample" if a.get("ids") == "all" else _short(a.get("ids", ()))
        return {
            "drop_samples": lambda: f"drop {ids} ({a['reason']})",
            "remap_prefix": lambda: f"remap audio paths {a['old']} -> {a['new']}",
            "trim_silence": lambda: (
                f"trim edge silence of {a['audio']} audio in {ids} "
                f"(threshold {a['threshold_db']} dB below peak, keep {a['keep_ms']} ms)"
            ),
            "set_speaker": lambda: f"set speaker of {ids} to {a['speaker']}",
            "merge_speakers": lambda: f"merge speakers {', '.join(a['speakers'])} into {a['into']}",
            "move_to_prompts": lambda: (
                f"move {ids} to evaluation prompts" + (f" ({a['reason']})" if a["reason"] else "")
            ),
        }[self.op]()


class _BlockList(list):
    """The top-level step list: dumped in block style while inner lists stay inline."""


class _RecipeDumper(yaml.SafeDumper):
    pass


_RecipeDumper.add_representer(
    list, lambda d, v: d.represent_sequence("tag:yaml.org,2002:seq", v, flow_style=True)
)
_RecipeDumper.add_representer(
    _BlockList, lambda d, v: d.represent_sequence("tag:yaml.org,2002:seq", v, False)
)

_HEADER = "# workbench fix recipe\n# replay: workbench fix DATA.jsonl --recipe fixes.yaml -o FIXED.jsonl\n"


@dataclass
class FixRecipe:
    """An ordered list of validated :class:`Operation` steps."""

    ops: list[Operation] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.ops)

    def add(self, op_name: str, **args: Any) -> Operation:
        """Append a step (validated). Raises :class:`RecipeError` naming the step, op and argument."""
        op, problems = Operation.check(len(self.ops) + 1, {"op": op_name, **args})
        if problems:
            raise RecipeError(problems)
        self.ops.append(op)  # type: ignore[arg-type]
        return op  # type: ignore[return-value]

    @staticmethod
    def from_list(steps: Any, source: str | None = None) -> FixRecipe:
        """Build from a list of step mappings, gathering every problem into one :class:`RecipeError`."""
        if steps is None:
            return FixRecipe()
        if not isinstance(steps, list):
            raise RecipeError([f"expected a list of steps (`- op: ...`), got {type(steps).__name__}"], source)
        ops, problems = [], []
        for number, raw in enumerate(steps, start=1):
            op, found = Operation.check(number, raw)
            problems.extend(found)
            if op is not None:
                ops.append(op)
        if problems:
            raise RecipeError(problems, source)
        return FixRecipe(ops)

    @staticmethod
    def from_yaml(text: str, source: str | None = None) -> FixRecipe:
        try:
            steps = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise RecipeError([f"not valid YAML: {exc}"], source) from None
        return FixRecipe.from_list(steps, source)

    @staticmethod
    def load(path: str | os.PathLike) -> FixRecipe:
        return FixRecipe.from_yaml(Path(path).read_text(encoding="utf-8"), source=str(path))

    def to_yaml(self) -> str:
        body = yaml.dump(
            _BlockList(op.to_dict() for op in self.ops),
            Dumper=_RecipeDumper,
            sort_keys=False,
            allow_unicode=True,
            width=100,
        )
        return _HEADER + body

    def save(self, path: str | os.PathLike) -> Path:
        """Write the YAML atomically; returns the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(self.to_yaml())
        os.replace(tmp, path)
        return path

    def describe(self) -> str:
        return "\n".join(f"{n}. {op.describe()}" for n, op in enumerate(self.ops, start=1))


def _as_recipe(recipe: FixRecipe | str | os.PathLike) -> FixRecipe:
    return recipe if isinstance(recipe, FixRecipe) else FixRecipe.load(recipe)


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


def _voiced_span(mono: np.ndarray, sample_rate: int, threshold_db: float) -> tuple[int, int] | None:
    """First and end sample of audio louder than ``threshold_db`` below the loudest 10 ms frame."""
    hop = max(1, sample_rate // 100)
    n = len(mono) // hop
    if n == 0:
        return None
    frames = mono[: n * hop].reshape(n, hop)
    rms = np.sqrt(np.mean(frames * frames, axis=1))
    if rms.max() <= 0:
        return None
    voiced = np.nonzero(rms > rms.max() * 10 ** (-threshold_db / 20))[0]
    end = len(mono) if voiced[-1] == n - 1 else (voiced[-1] + 1) * hop  # keep a partial last frame
    return int(voiced[0] * hop), int(end)


def trim_file(
    src: str, folder: str | os.PathLike, threshold_db: float = 40, keep_ms: float = 100
) -> tuple[str | None, str]:
    """Write ``src`` without its edge silence into ``folder``; the source is only read.

    The copy keeps the sample rate, channels and (for PCM/float WAV-compatible data) the sample
    format; its name derives from the audio content and the parameters, so replays reuse it.

    Returns:
        ``(new_path, note)``; ``new_path`` is None when nothing was written (the note says why).
    """
    if not os.path.isfile(src):
        return None, f"{src}: file not found; not trimmed"
    try:
        dtype, subtype = _NATIVE.get(sf.info(src).subtype, ("float32", "PCM_16"))
        data, sr = sf.read(src, dtype=dtype, always_2d=True)
    except Exception as exc:  # libsndfile raises several types for corrupt files
        return None, f"{src}: cannot read ({type(exc).__name__}: {exc}); not trimmed"
    mono = np.nan_to_num(data.astype(np.float64)).mean(axis=1)
    span = _voiced_span(mono, sr, threshold_db)
    if span is None:
        return None, f"{src}: silent or shorter than 10 ms; not trimmed"
    keep = int(round(keep_ms * sr / 1000))
    start, end = max(0, span[0] - keep), min(len(mono), span[1] + keep)
    if start == 0 and end == len(mono):
        return None, f"{src}: no edge silence beyond {keep_ms} ms; unchanged"
    digest = hashlib.blake2b(data.tobytes(), digest_size=8)
    digest.update(f"{sr}:{data.shape[1]}:{subtype}:{threshold_db}:{keep_ms}".encode())
    out = Path(folder).absolute() / f"{Path(src).stem}.{digest.hexdigest()}.wav"
    if not out.exists():  # same name = same content and parameters: a replay reuses the file
        out.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".wav", dir=out.parent)
        os.close(fd)
        try:
            sf.write(tmp, data[start:end], sr, subtype=subtype, format="WAV")
            os.replace(tmp, out)
        except BaseException:
            os.unlink(tmp)
            raise
    cut = f"cut {start / sr:.2f} s at start, {(len(mono) - end) / sr:.2f} s at end"
    return str(out), f"{src} -> {out} ({cut})"


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
    recipe = _as_recipe(recipe)
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
    recipe = _as_recipe(recipe)
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
