"""Fix recipes: dataset fixes recorded as an ordered list of validated operations, kept as YAML.

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

The notebook's fix buttons call :meth:`FixRecipe.add`; ``workbench fix`` replays a recipe
(:func:`workbench.data.fixes.fix`). Every problem in a recipe is reported at once, before any work,
as a :class:`RecipeError`.

Example:
    >>> recipe = FixRecipe()
    >>> recipe.add("drop_samples", ids=["a"], reason="noisy")  # doctest: +ELLIPSIS
    Operation(op='drop_samples', ...)
    >>> print(recipe.describe())
    1. drop a (noisy)
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from workbench.audio import SILENCE_DB_BELOW_PEAK
from workbench.files import write_text

_REQUIRED = object()
TRIM_AUDIO_CHOICES = ("target", "reference", "all")


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
        "threshold_db": (SILENCE_DB_BELOW_PEAK, _number(0, strict=True)),
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
                f"(threshold {a['threshold_db']:g} dB below peak, keep {a['keep_ms']:g} ms)"
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
        return write_text(path, self.to_yaml())

    def describe(self) -> str:
        return "\n".join(f"{n}. {op.describe()}" for n, op in enumerate(self.ops, start=1))


def as_recipe(recipe: FixRecipe | str | os.PathLike) -> FixRecipe:
    """``recipe`` itself, or the recipe loaded from that YAML file."""
    return recipe if isinstance(recipe, FixRecipe) else FixRecipe.load(recipe)
