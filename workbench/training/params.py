"""Training parameters: one typed schema, YAML files, ``NAME=VALUE`` overrides.

The field names of :class:`TrainParams` are the names of notebook 04's parameters and of the
training functions' arguments. Unknown keys are errors (with a "did you mean"), and every
problem in a file is reported at once, before any work starts. Launch settings
(``accelerate_config``, ``num_processes``, ``env``...) live in :class:`LaunchParams`, in the same file.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import types
import typing
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


class ParamsError(ValueError):
    """All problems found in a parameter set, one per line."""

    def __init__(self, problems: list[str], source: str | None = None):
        self.problems = problems
        where = f"{source}: " if source else ""
        super().__init__(
            f"{where}{len(problems)} parameter problem(s):\n" + "\n".join(f"  - {p}" for p in problems)
        )


@dataclass
class TrainParams:
    """Everything a training run needs. ``train_data`` and ``model`` are required (``params/demo.yaml``
    names the demo's); the other defaults are a LoRA recipe, not a dataset."""

    train_data: str | None = None  # required: canonical JSONL (notebook 03 writes it)
    val_data: str | None = None  # None: no evaluation during training
    model: str | None = None  # required: HF dir, cached hub id, original-layout dir, "random-full"
    output_dir: str = "runs/train"
    num_epochs: float = 3.0
    max_steps: int = -1  # > 0 overrides num_epochs
    batch_size: int = 2  # per device
    gradient_accumulation_steps: int = 1
    learning_rate: float = 2e-4
    warmup_ratio: float = 0.05
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    lora_r: int = 16  # higher = more capacity and memory
    lora_alpha: int = 32  # the LoRA update is scaled by alpha / r
    lora_dropout: float = 0.05
    lora_target_modules: list[str] | None = (
        None  # None: the model family's (Higgs Audio v2: attention + text and audio FFN; Higgs TTS 3: attention + FFN)
    )
    modules_to_save: list[str] | None = (
        None  # trained fully, saved with the adapter: ["audio_lm_head"] (v2), ["audio_codebooks"] (TTS 3, stays tied)
    )
    mixed_precision: str = "no"  # "bf16" | "fp16" | "no"
    use_gradient_checkpointing: bool = False  # trades ~30% speed for much less activation memory
    dataloader_num_workers: int = 0
    save_steps: int | float = (
        50  # steps, or a fraction of the run (0.1: ten checkpoints, whatever the data size)
    )
    save_total_limit: int = 3
    eval_steps: int | float = 50  # steps, or a fraction of the run
    eval_generate: int = 0  # val prompts spoken at each evaluation, scored by speaker similarity and DNSMOS
    logging_steps: int | float = 5  # steps, or a fraction of the run
    codes_cache_dir: str | None = None  # default: <WORKBENCH_CACHE_DIR>/codes
    resume_from_checkpoint: str | None = (
        "auto"  # "auto": latest complete checkpoint in output_dir; None: fresh
    )
    merge: bool = False  # also write merged/ (plain transformers weights + processor)
    seed: int = 0
    ddp_timeout: int = 14_400  # seconds a rank waits at a barrier (a cold codes cache of 1,000 h on 8 GPUs)
    max_length: int | None = None  # tokens; None: the model's max_position_embeddings
    group_by_length: bool = True  # length-grouped batches cut padding
    validate_data_only: bool = False  # stop after the data check
    skip_validation: bool = False  # train even with error findings (not recommended)

    def check(self) -> list[str]:
        """Problems with values (not types), each naming the parameter and the fix."""
        problems = [
            f"{name}: required: {what}; pass -p {name} {placeholder} or set it in the params file"
            for name, what, placeholder in (
                ("train_data", "the canonical JSONL to train on (notebook 03 writes train.jsonl)", "PATH"),
                ("model", "the base model: a local folder, a cached hub id or random-full", "PATH_OR_ID"),
            )
            if not getattr(self, name)
        ]
        if self.mixed_precision not in ("bf16", "fp16", "no"):
            problems.append(f"mixed_precision: expected bf16, fp16 or no, got {self.mixed_precision!r}")
        for name in ("batch_size", "gradient_accumulation_steps", "lora_r", "lora_alpha"):
            if getattr(self, name) < 1:
                problems.append(f"{name}: must be at least 1, got {getattr(self, name)}")
        for name in ("save_steps", "eval_steps", "logging_steps"):
            value = getattr(self, name)
            if not (0 < value < 1 or (value >= 1 and value == int(value))):
                problems.append(
                    f"{name}: a whole number of steps (at least 1) or a fraction of the run in (0, 1), got {value}"
                )
        if self.eval_generate < 0:
            problems.append(f"eval_generate: 0 (off) or more prompts to speak, got {self.eval_generate}")
        if not 0 <= self.lora_dropout < 1:
            problems.append(f"lora_dropout: must be in [0, 1), got {self.lora_dropout}")
        if not 0 <= self.warmup_ratio < 1:
            problems.append(f"warmup_ratio: must be in [0, 1), got {self.warmup_ratio}")
        if self.ddp_timeout < 60:
            problems.append(f"ddp_timeout: seconds, at least 60, got {self.ddp_timeout}")
        if self.learning_rate <= 0:
            problems.append(f"learning_rate: must be positive, got {self.learning_rate}")
        if self.max_steps <= 0 and self.num_epochs <= 0:
            problems.append("num_epochs or max_steps must be positive")
        if self.lora_target_modules is not None and not self.lora_target_modules:
            problems.append(
                "lora_target_modules: empty; LoRA would train nothing (leave it unset for the model's default)"
            )
        return problems

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class LaunchParams:
    """How ``workbench train`` launches the run (not seen by the notebook).

    Several machines: every machine runs the same command with its own ``machine_rank``;
    ``num_processes`` counts the ranks of all machines. Given here, these settings override the
    accelerate config's (no YAML edited per machine); inside a SLURM allocation ``workbench train``
    reads the ones not given from SLURM (:func:`workbench.notebook.launch.slurm_launch_values`).
    """

    accelerate_config: str | None = None  # an accelerate config YAML (params/accelerate/*.yaml)
    num_processes: int = 1  # ranks over all machines; > 1 overrides the accelerate_config's
    num_machines: int | None = None  # None: the accelerate_config's, else 1
    machine_rank: int | None = None  # this machine: 0 (the main one), 1, ... num_machines - 1
    main_process_ip: str | None = None  # the main machine's address, reachable from every machine
    main_process_port: int | None = None  # None: a free port on one machine, 29500 on several
    env: dict[str, str] = field(
        default_factory=dict
    )  # environment for every rank (OMP_NUM_THREADS, NCCL_*...)

    def accelerate_config_values(self) -> dict[str, Any]:
        """The accelerate config's settings ({} without one, or when it cannot be read: the launch says why)."""
        if not self.accelerate_config:
            return {}
        try:
            with open(self.accelerate_config, encoding="utf-8") as fh:
                values = yaml.safe_load(fh)
        except (OSError, yaml.YAMLError):
            return {}
        return values if isinstance(values, dict) else {}

    def layout(self) -> tuple[int, int]:
        """``(ranks over all machines, machines)``: these settings over the accelerate config's.

        An accelerate config describes the ranks of each machine: with ``num_machines`` given and
        ``num_processes`` not, every machine starts the config's share (``params/h200x8.yaml`` with
        ``num_machines 2`` gives 16 ranks).
        """
        config = self.accelerate_config_values()
        config_machines = max(1, int(config.get("num_machines") or 1))
        machines = self.num_machines if self.num_machines is not None else config_machines
        if not self.accelerate_config or self.num_processes > 1:
            return self.num_processes, machines
        per_machine = int(config.get("num_processes") or 1) // config_machines
        return per_machine * machines, machines

    def check(self) -> list[str]:
        """Problems with values (not types), each naming the parameter and the fix."""
        problems = []
        if self.num_processes < 1:
            problems.append(f"num_processes: must be at least 1, got {self.num_processes}")
        if self.num_machines is not None and self.num_machines < 1:
            problems.append(f"num_machines: must be at least 1, got {self.num_machines}")
            return problems
        config = self.accelerate_config_values()
        total, machines = self.layout()
        rank = self.machine_rank if self.machine_rank is not None else config.get("machine_rank")
        if self.machine_rank is not None and not 0 <= self.machine_rank < machines:
            problems.append(
                f"machine_rank: must be in [0, {machines}) with num_machines {machines}, got {self.machine_rank}"
            )
        elif machines > 1 and rank is None:
            problems.append(
                f"machine_rank: required with num_machines {machines}: 0 on the main machine, 1 ... "
                f"{machines - 1} on the others"
            )
        if total >= 1 and total % machines:
            problems.append(
                f"num_processes: {total} ranks do not split evenly over num_machines {machines}. Hint: "
                f"num_processes counts the ranks of all machines, e.g. {machines * max(1, total // machines)}"
            )
        if machines > 1 and not (self.main_process_ip or config.get("main_process_ip")):
            problems.append(
                f"main_process_ip: required with num_machines {machines}: the address of the machine with "
                "machine_rank 0, reachable from every machine"
            )
        if machines > 1 and self.main_process_port == 0:
            problems.append(
                "main_process_port: 0 (a free port) works on one machine only; give the port every machine "
                "connects to, e.g. 29500"
            )
        return problems


# Words YAML 1.1 reads as booleans. On the command line they stay words (``-p mixed_precision no``
# means the string "no"); a boolean parameter still takes them (:func:`as_flag`).
FLAG_WORDS = {
    "true": True,
    "false": False,
    "yes": True,
    "no": False,
    "on": True,
    "off": False,
    "y": True,
    "n": False,
}


def parse_cli_value(text: str) -> Any:
    """``-p NAME VALUE``: VALUE is read as YAML (numbers, lists, true/false), else kept as text.

    yes/no/on/off stay text: YAML 1.1 would read them as booleans, and on a command line there is
    no way to quote them (the shell strips the quotes).
    """
    if text.strip().lower() in FLAG_WORDS.keys() - {"true", "false"}:
        return text.strip()
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def as_flag(value: Any) -> Any:
    """``value`` as a bool when it is a yes/no/on/off/true/false word, else unchanged."""
    if isinstance(value, str) and value.strip().lower() in FLAG_WORDS:
        return FLAG_WORDS[value.strip().lower()]
    return value


def load_params(
    params_file: str | os.PathLike | None, overrides: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Parameters from a YAML file, then ``overrides`` on top."""
    params: dict[str, Any] = {}
    if params_file:
        with open(params_file, encoding="utf-8") as fh:
            loaded = yaml.safe_load(fh) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"{params_file}: expected a mapping of parameter names to values")
        params.update(loaded)
    params.update(overrides or {})
    return params


def notebook_sections(raw: dict[str, Any]) -> set[str]:
    """The keys of a params file that hold one notebook's parameters (``02_convert_and_listen: {...}``)."""
    return {k for k, v in raw.items() if isinstance(v, dict) and k[:2].isdigit() and "_" in k}


def section_params(raw: dict[str, Any], stem: str, declared: Collection[str] | None = None) -> dict[str, Any]:
    """The parameters a params file gives notebook ``stem``: its top-level keys, then its section.

    A file may hold several notebooks' parameters in sections named after them
    (``02_convert_and_listen: {...}``). With ``declared`` (the notebook's parameter names), only
    the top-level keys the notebook declares apply to it.
    """
    params = {k: v for k, v in raw.items() if k not in notebook_sections(raw)}
    if declared is not None:
        params = {k: v for k, v in params.items() if k in declared}
    params.update(raw.get(stem) or {})
    return params


def _type_ok(value: Any, annotation: Any) -> tuple[bool, Any]:
    """Check (and gently coerce: int -> float, scalar -> list) ``value`` against an annotation."""
    if isinstance(annotation, str):
        annotation = eval(
            annotation, {"list": list, "dict": dict, "str": str, "int": int, "float": float, "bool": bool}
        )  # noqa: S307 - our own annotations
    origin = typing.get_origin(annotation)
    if origin in (types.UnionType, typing.Union):
        for arm in typing.get_args(annotation):
            if arm is type(None) and value is None:
                return True, None
            ok, coerced = _type_ok(value, arm) if arm is not type(None) else (False, value)
            if ok:
                return True, coerced
        return False, value
    if origin is list:
        if isinstance(value, str):
            value = [value]
        return isinstance(value, list) and all(isinstance(v, str) for v in value), value
    if origin is dict:
        return isinstance(value, dict), value
    if annotation is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return True, float(value)
        if isinstance(value, str):  # YAML 1.1 reads 1e-4 (no dot) as a string
            try:
                return True, float(value)
            except ValueError:
                return False, value
        return False, value
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if annotation is bool:
        value = as_flag(value)  # -p merge yes
        return isinstance(value, bool), value
    if annotation is str:
        return isinstance(value, str), value
    return True, value


def build_params(cls: type, data: dict[str, Any], problems: list[str], prefix: str = "") -> Any:
    """A parameter dataclass ``cls`` from ``data``: unknown keys and wrong types are appended to
    ``problems`` (each naming the key, with a "did you mean" when one is close) and left at their
    defaults, so a caller reports every problem at once."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in data.items():
        if key not in fields:
            close = difflib.get_close_matches(key, fields, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            problems.append(f"{prefix}{key}: unknown parameter{hint}")
            continue
        ok, coerced = _type_ok(value, fields[key].type)
        if not ok:
            hint = ""
            if isinstance(value, bool) and "str" in str(fields[key].type):
                hint = ' (YAML reads unquoted no/yes/off/on as booleans: quote the value, e.g. "no")'
            problems.append(f"{prefix}{key}: expected {fields[key].type}, got {value!r}{hint}")
            continue
        kwargs[key] = coerced
    return cls(**kwargs)


LAUNCH_KEYS = {f.name for f in dataclasses.fields(LaunchParams)}


def resolve_beside(value: str, source: str | os.PathLike | None) -> str:
    """A relative path from a params file: from the current folder if it exists there, else from the
    file's folder or its parent (so ``params/accelerate/x.yaml`` in ``params/h200x8.yaml`` works
    from any folder)."""
    if os.path.isabs(value) or os.path.exists(value) or source is None:
        return value
    folder = Path(source).absolute().parent
    for base in (folder, folder.parent):
        if (base / value).exists():
            return str(base / value)
    return value


def split_launch(
    data: dict[str, Any], problems: list[str], source: str | os.PathLike | None = None
) -> tuple[LaunchParams, dict[str, Any]]:
    """The launch settings in ``data`` (problems appended) and the remaining, notebook parameters.

    ``source``: the params file, against which a relative ``accelerate_config`` also resolves.
    """
    launch = build_params(LaunchParams, {k: v for k, v in data.items() if k in LAUNCH_KEYS}, problems)
    if launch.accelerate_config:
        launch.accelerate_config = resolve_beside(launch.accelerate_config, source)
    problems.extend(launch.check())
    launch.env = {str(k): str(v) for k, v in launch.env.items()}
    return launch, {k: v for k, v in data.items() if k not in LAUNCH_KEYS}


def load_train_params(
    path: str | os.PathLike | None = None, overrides: dict[str, Any] | None = None
) -> tuple[TrainParams, LaunchParams]:
    """Parameters from a YAML file and ``overrides`` (which win), validated all at once.

    Raises:
        ParamsError: every unknown key, wrong type and bad value, naming the file.
    """
    data: dict[str, Any] = {}
    source = str(path) if path else None
    if path:
        with open(path, encoding="utf-8") as fh:
            loaded = yaml.safe_load(fh) or {}
        if not isinstance(loaded, dict):
            raise ParamsError(["expected a mapping of parameter names to values"], source)
        data.update(loaded)
    data.update(overrides or {})
    problems: list[str] = []
    launch, rest = split_launch(data, problems, path)
    params = build_params(TrainParams, rest, problems)
    problems.extend(params.check())
    if problems:
        raise ParamsError(problems, source)
    return params, launch


def params_from_namespace(namespace: dict[str, Any]) -> TrainParams:
    """The :class:`TrainParams` held by a notebook's globals (its parameter cell's names)."""
    names = {f.name for f in dataclasses.fields(TrainParams)}
    params, _ = load_train_params(None, {k: v for k, v in namespace.items() if k in names})
    return params


def save_resolved(params: TrainParams, path: str | os.PathLike) -> Path:
    """``params.resolved.yaml``: every parameter with the value the run used."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "# parameters this run used (defaults filled in)\n"
        + yaml.safe_dump(params.to_dict(), sort_keys=False)
    )
    return path
