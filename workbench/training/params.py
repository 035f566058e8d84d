"""Training parameters: one typed schema, YAML files, ``NAME=VALUE`` overrides.

The field names of :class:`TrainParams` are the names of notebook 04's parameters and of the
training functions' arguments; each field's type, default and help are declared once here, and the
``workbench train`` flags, notebook 04's parameters cell and the README's table follow from them
(:mod:`workbench.training.param_schema`). Unknown keys are errors (with a "did you mean"), and every
problem in a file is reported at once, before any work starts. Launch settings
(``accelerate_config``, ``num_processes``, ``env``...) live in :class:`LaunchParams`, in the same file.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from workbench.files import write_text
from workbench.training.param_schema import build_params, param, yaml_text


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

    train_data: str | None = param(
        None, help="required: the canonical JSONL to train on (notebook 03 writes train.jsonl)"
    )
    val_data: str | None = param(
        None, help="canonical JSONL evaluated every eval_steps; null: no evaluation during training"
    )
    model: str | None = param(
        None,
        help="required: the base model: an HF folder, a cached hub id, an original-layout folder or random-full",
    )
    output_dir: str = param(
        "runs/train", help="adapter/, checkpoint-N/, metrics.jsonl, params.resolved.yaml and the report"
    )
    num_epochs: float = param(3.0, help="passes over the training data")
    max_steps: int = param(-1, help="optimizer steps; > 0 overrides num_epochs")
    batch_size: int = param(2, help="samples per micro-batch on each device")
    gradient_accumulation_steps: int = param(
        1, help="micro-batches per optimizer step (effective batch: batch_size x this x ranks)"
    )
    learning_rate: float = param(2e-4, help="peak learning rate of the cosine schedule")
    warmup_ratio: float = param(0.05, help="share of the steps that warm the learning rate up, in [0, 1)")
    weight_decay: float = param(0.0, help="AdamW weight decay")
    max_grad_norm: float = param(1.0, help="gradients are clipped to this norm")
    lora_r: int = param(16, help="LoRA rank: higher gives more capacity and takes more memory")
    lora_alpha: int = param(32, help="the LoRA update is scaled by lora_alpha / lora_r")
    lora_dropout: float = param(0.05, help="dropout on the LoRA path, in [0, 1)")
    lora_target_modules: list[str] | None = param(
        None,
        help="modules LoRA adapts; null: the model family's (Higgs Audio v2: attention + text and audio FFN; "
        "Higgs TTS 3: attention + FFN)",
    )
    modules_to_save: list[str] | None = param(
        None,
        help="trained fully, saved with the adapter: [audio_lm_head] (v2), [audio_codebooks] (TTS 3, stays tied)",
    )
    mixed_precision: str = param("no", help="bf16, fp16 or no")
    activation_checkpointing: bool = param(
        False, help="recompute activations in the backward pass: ~30% slower, much less activation memory"
    )
    dataloader_num_workers: int = param(0, help="data-loading processes per rank")
    save_steps: int | float = param(
        50,
        help="a checkpoint every N steps, or a fraction of the run (0.1: ten checkpoints, whatever the data size)",
    )
    save_total_limit: int = param(3, help="checkpoints kept; older ones are deleted")
    eval_steps: int | float = param(50, help="an evaluation every N steps, or a fraction of the run")
    eval_generate: int = param(
        0,
        help="validation prompts spoken at each evaluation, scored by speaker similarity and DNSMOS; 0: off",
    )
    logging_steps: int | float = param(5, help="a progress line every N steps, or a fraction of the run")
    codes_cache_dir: str | None = param(
        None, help="the audio codes cache; null: <WORKBENCH_CACHE_DIR>/codes (~/.cache/workbench/codes)"
    )
    resume_from_checkpoint: str | None = param(
        "auto",
        help="auto: the latest complete checkpoint in output_dir; or a checkpoint folder; null: start fresh",
    )
    merge: bool = param(False, help="also write merged/ (plain transformers weights + processor)")
    seed: int = param(0, help="LoRA initialisation, data order and dropout: the same seed, the same adapter")
    ddp_timeout: int = param(
        14_400, help="seconds a rank waits at a barrier (a cold codes cache of 1,000 h on 8 GPUs)"
    )
    max_length: int | None = param(
        None, help="tokens per sequence; null: the model's max_position_embeddings"
    )
    group_by_length: bool = param(True, help="length-grouped batches cut padding")
    validate_data_only: bool = param(False, help="stop after the data check")
    skip_validation: bool = param(
        False,
        help="train even with validator error findings (not recommended); untrainable samples still stop it",
    )

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
    reads the ones not given from SLURM (:func:`workbench.training.launch.slurm_launch_values`).
    """

    accelerate_config: str | None = param(
        None,
        help="an accelerate config YAML (params/accelerate/*.yaml); a relative path is also looked up beside "
        "the params file",
    )
    num_processes: int = param(1, help="ranks over all machines; > 1 overrides the accelerate_config's")
    num_machines: int | None = param(None, help="machines; null: the accelerate_config's, else 1")
    machine_rank: int | None = param(None, help="this machine: 0 (the main one), 1, ... num_machines - 1")
    main_process_ip: str | None = param(None, help="the main machine's address, reachable from every machine")
    main_process_port: int | None = param(None, help="null: a free port on one machine, 29500 on several")
    env: dict[str, str] = param(
        factory=dict, help="environment of every rank (OMP_NUM_THREADS, NCCL_*, CUDA_VISIBLE_DEVICES, ...)"
    )

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


LAUNCH_KEYS = {f.name for f in dataclasses.fields(LaunchParams)}
# Parameter names refused with the one to write instead (transformers' terms), so none is ignored silently.
RETIRED_NAMES = {"use_gradient_checkpointing": "activation_checkpointing"}


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
    for old, new in RETIRED_NAMES.items():
        if old in rest:
            problems.append(
                f"{old}: not a parameter; transformers v6 calls it {new}. Hint: write {new}: {yaml_text(rest.pop(old))}"
            )
    params = build_params(TrainParams, rest, problems)
    problems.extend(params.check())
    if problems:
        raise ParamsError(problems, source)
    return params, launch


def params_from_namespace(namespace: dict[str, Any]) -> TrainParams:
    """The :class:`TrainParams` held by a notebook's globals (its parameter cell's names)."""
    names = {
        f.name for f in dataclasses.fields(TrainParams)
    } | RETIRED_NAMES.keys()  # a retired name is refused, not ignored
    params, _ = load_train_params(None, {k: v for k, v in namespace.items() if k in names})
    return params


def save_resolved(params: TrainParams, path: str | os.PathLike) -> Path:
    """``params.resolved.yaml``: every parameter with the value the run used."""
    return write_text(
        path,
        "# parameters this run used (defaults filled in)\n"
        + yaml.safe_dump(params.to_dict(), sort_keys=False),
    )
