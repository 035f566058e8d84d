"""Evaluation parameters: one typed schema for notebook 05, ``workbench evaluate`` and its README table.

The field names of :class:`EvalParams` are notebook 05's parameters; each field's type, default and
help are declared once here (:func:`workbench.training.param_schema.param`), and the
``workbench evaluate`` flags, the notebook's parameters cell and the README's table follow from
them. :class:`Sampling` holds the generation settings that ``workbench generate`` and scoring during
training share with it. Nothing here loads torch: the command line reads it.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Any

from workbench.evaluation.eval_report import METRICS
from workbench.training.param_schema import build_params, param, same_param
from workbench.training.params import ParamsError, load_params, section_params


@dataclass
class Sampling:
    """How audio is generated (fields shared by :class:`EvalParams` and ``workbench generate``)."""

    max_new_tokens: int = param(500, help="audio frames to generate at most (25 per second)")
    temperature: float | None = param(
        None,
        help="sampling temperature; 0: greedy; null: the model's serving default "
        "(0.3 for Higgs Audio v2, 1.0 for Higgs TTS 3)",
    )
    top_k: int | None = param(50, help="sample among the k likeliest codes; null: no limit")
    top_p: float | None = param(0.95, help="sample within this share of the probability; null: no limit")
    ras_win_len: int | None = param(
        None, help="repetition-aware sampling window (Higgs Audio v2); null: the model's setting, 0: off"
    )

    def check(self) -> list[str]:
        """Problems with values, each naming the parameter."""
        problems = []
        if self.max_new_tokens < 1:
            problems.append(f"max_new_tokens: must be at least 1, got {self.max_new_tokens}")
        if self.temperature is not None and self.temperature < 0:
            problems.append(f"temperature: must be >= 0 (0 is greedy), got {self.temperature}")
        if self.top_k is not None and self.top_k < 1:
            problems.append(f"top_k: must be at least 1 or None, got {self.top_k}")
        if self.top_p is not None and not 0 < self.top_p <= 1:
            problems.append(f"top_p: must be in (0, 1] or None, got {self.top_p}")
        if self.ras_win_len is not None and self.ras_win_len < 0:
            problems.append(f"ras_win_len: must be >= 0 (0 turns it off) or None, got {self.ras_win_len}")
        return problems


@dataclass
class EvalParams:
    """Everything an evaluation needs; the names are notebook 05's parameters. ``base_model``,
    ``adapters`` and ``eval_data`` are required (``params/evaluate_demo.yaml`` names the demo's)."""

    base_model: str | None = param(
        None, help="required: the model the adapters were trained on (an HF folder or cached hub id)"
    )
    adapters: list[str] = param(
        factory=list,
        help="required: adapter folders, checkpoint-N folders, or training output_dirs (their complete "
        "checkpoints, then adapter/)",
    )
    eval_data: str | None = param(
        None,
        help="required: canonical JSONL whose prompts are spoken; prompt-only samples are fine, samples "
        "with target audio add reference metrics",
    )
    output_dir: str = param("runs/evaluate", help="audio/, metrics.json, metrics.csv and the report")
    max_samples: int | None = param(8, help="prompts to speak; null: every sample of eval_data")
    max_new_tokens: int = same_param(Sampling, "max_new_tokens")
    temperature: float | None = same_param(Sampling, "temperature")
    top_k: int | None = same_param(Sampling, "top_k")
    top_p: float | None = same_param(Sampling, "top_p")
    seed: int = param(
        0, help="each prompt's seed derives from it and the sample id: the same for every candidate"
    )
    ras_win_len: int | None = same_param(Sampling, "ras_win_len")
    asr_model: str | None = param(
        None,
        help="a local speech-recognition model (e.g. a Whisper folder) for WER/CER of every prompt; "
        "null: the bundled Whisper tiny.en scores English prompts",
    )
    speaker_model: str | None = param(
        None,
        help="a local x-vector model (AutoModelForAudioXVector, e.g. WavLM), scored in addition to the "
        "bundled GE2E",
    )
    max_listen: int = param(4, help="prompts whose clips are embedded in the report")
    select_by: str = param(
        "auto",
        help="auto: speaker similarity, ties by DNSMOS, WER, mcd, loss, never a silent or runaway "
        "checkpoint; or one metric: loss, mcd, wer, speaker_sim_target, ...",
    )
    codes_cache_dir: str | None = param(
        None, help="the audio codes cache; null: <WORKBENCH_CACHE_DIR>/codes (~/.cache/workbench/codes)"
    )

    def check(self) -> list[str]:
        """Problems with values, each naming the parameter."""
        required = (
            (
                "base_model",
                "the model the adapters were trained on (a local folder or cached hub id)",
                "PATH_OR_ID",
            ),
            ("adapters", "adapter, checkpoint-N or training output_dir folders to compare", '"[DIR, ...]"'),
            (
                "eval_data",
                "the canonical JSONL whose prompts are spoken (notebook 03 writes val.jsonl)",
                "PATH",
            ),
        )
        problems = [
            f"{name}: required: {what}; pass -p {name} {placeholder} or set it in the params file"
            for name, what, placeholder in required
            if not getattr(self, name)
        ]
        if self.max_samples is not None and self.max_samples < 1:
            problems.append(f"max_samples: must be at least 1 (or None for all), got {self.max_samples}")
        problems += self.sampling().check()
        if self.max_listen < 0:
            problems.append(f"max_listen: must be >= 0, got {self.max_listen}")
        selectable = ["auto", *(k for k, v in METRICS.items() if v[1])]
        if self.select_by not in selectable:
            problems.append(f"select_by: expected one of {', '.join(selectable)}, got {self.select_by!r}")
        return problems

    def sampling(self) -> Sampling:
        """The generation settings of these parameters."""
        return Sampling(**{f.name: getattr(self, f.name) for f in dataclasses.fields(Sampling)})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def load_eval_params(
    path: str | os.PathLike | None = None, overrides: dict[str, Any] | None = None
) -> EvalParams:
    """Parameters from a YAML file (a ``05_evaluate:`` section is used when present) and overrides.

    Raises:
        workbench.training.params.ParamsError: every unknown key, wrong type and bad value at once.
    """
    data = section_params(load_params(path), "05_evaluate")
    data.update(overrides or {})
    problems: list[str] = []
    params = build_params(EvalParams, data, problems)
    problems.extend(params.check())
    if problems:
        raise ParamsError(problems, str(path) if path else None)
    return params


def eval_params_from_namespace(namespace: dict[str, Any]) -> EvalParams:
    """The :class:`EvalParams` held by a notebook's globals (its parameters cell's names)."""
    names = {f.name for f in dataclasses.fields(EvalParams)}
    return load_eval_params(None, {k: v for k, v in namespace.items() if k in names})
