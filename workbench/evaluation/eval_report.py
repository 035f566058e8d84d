"""Reading an evaluation: per-model summary, the A/B check, the best checkpoint.

The functions here turn the rows of :func:`workbench.evaluation.evaluate.evaluate` (one per model and prompt)
into what a person reads: mean and spread per model (:func:`summarize`), whether each adapter
changes anything (:func:`ab_check`) and the best checkpoint by one metric (:func:`select_best`,
:func:`best_sentence`). Notebook 05's tables, plots and listening rows over them are
:mod:`workbench.notebook.eval_view`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from workbench.evaluation.candidates import Candidate

SAMPLE_RATE = 24_000
NO_EFFECT_TOLERANCE = 1e-6  # max |Δlogit| at or below this counts as "no effect"

# Metric name -> (label, "lower"/"higher" is better or None, unit). Others are shown but not selectable.
METRICS: dict[str, tuple[str, str | None, str]] = {
    "loss": ("teacher-forced loss", "lower", ""),
    "acc_mean": ("teacher-forced top-1 accuracy", "higher", ""),
    "mcd": ("mel-cepstral distortion", "lower", " dB"),
    "speaker_sim_target": ("speaker similarity to the target", "higher", ""),
    "speaker_sim_ref": ("speaker similarity to the reference", "higher", ""),
    "pitch_target": ("pitch distance to the target voice", "lower", " st"),
    "pitch_ref": ("pitch distance to the reference voice", "lower", " st"),
    "wer": ("word error rate", "lower", ""),
    "cer": ("character error rate", "lower", ""),
    "duration": ("duration", None, " s"),
    "duration_ratio": ("duration ratio to the target", None, ""),
    "speaking_rate": ("speaking rate", None, ""),
    "silence_ratio": ("silence ratio", None, ""),
    "clipping": ("clipping", None, ""),
}
AUTO_SELECT_ORDER = ("speaker_sim_target", "speaker_sim_ref", "mcd", "loss", "pitch_ref")
# Row fields that are bookkeeping, not metrics to average.
_NOT_METRICS = {"step", "seed", "gen_frames", "gen_seconds", "frames_differ", "max_dlogit"}


def lora_b_norm(adapter_dir: str | os.PathLike) -> float | None:
    """L2 norm of all LoRA B matrices of an adapter (0 means the LoRA part adds nothing)."""
    from safetensors.torch import load_file

    weights = Path(adapter_dir) / "adapter_model.safetensors"
    if not weights.is_file():
        return None
    tensors = load_file(str(weights))
    total = sum(float(t.float().pow(2).sum()) for k, t in tensors.items() if "lora_B" in k)
    return math.sqrt(total)


# --- summary -----------------------------------------------------------------------------------------
def metric_names(rows: Sequence[dict[str, Any]]) -> list[str]:
    """Numeric metric columns present in ``rows``: known metrics first, then any others."""
    present: dict[str, None] = {}
    for row in rows:
        for key, value in row.items():
            if key not in _NOT_METRICS and isinstance(value, (int, float)) and not isinstance(value, bool):
                present[key] = None
    known = [k for k in METRICS if k in present]
    return known + [k for k in present if k not in METRICS]


def summarize(rows: Sequence[dict[str, Any]], candidates: Sequence[Candidate]) -> list[dict[str, Any]]:
    """Per candidate: mean and standard deviation of every metric, and counts.

    Returns:
        One dict per candidate: ``candidate``, ``step``, ``prompts``, ``failed`` (generations that
        raised), ``no_audio`` (generations the model ended before any audio frame), and
        ``<metric>_mean`` / ``<metric>_std`` (std None with fewer than two values).
    """
    names = metric_names(rows)
    summary = []
    for c in candidates:
        mine = [r for r in rows if r["candidate"] == c.name]
        entry: dict[str, Any] = {
            "candidate": c.name,
            "step": c.step,
            "prompts": len(mine),
            "failed": sum(r["status"] == "failed" for r in mine),
            "no_audio": sum(r["status"] == "no_audio" for r in mine),
        }
        for name in names:
            values = [
                float(r[name])
                for r in mine
                if isinstance(r.get(name), (int, float)) and math.isfinite(r[name])
            ]
            entry[f"{name}_mean"] = float(np.mean(values)) if values else None
            entry[f"{name}_std"] = float(np.std(values, ddof=1)) if len(values) > 1 else None
        summary.append(entry)
    return summary


def ab_check(rows: Sequence[dict[str, Any]], candidates: Sequence[Candidate]) -> list[dict[str, Any]]:
    """Per adapter: does it change anything? (max |Δlogit| on the first prompt, differing code frames).

    Returns:
        One dict per adapter with ``candidate``, ``max_dlogit``, ``frames_differ`` (mean fraction
        over prompts), ``lora_b_norm``, ``no_effect`` and a plain-language ``verdict``.
    """
    checks = []
    for c in candidates:
        if c.is_base:
            continue
        mine = [r for r in rows if r["candidate"] == c.name]
        dlogits = [r["max_dlogit"] for r in mine if r.get("max_dlogit") is not None]
        differ = [r["frames_differ"] for r in mine if r.get("frames_differ") is not None]
        max_dlogit = max(dlogits) if dlogits else None
        mean_differ = float(np.mean(differ)) if differ else None
        norm = lora_b_norm(c.path) if c.path else None
        compared = max_dlogit is not None or bool(differ)
        same = (max_dlogit is None or max_dlogit <= NO_EFFECT_TOLERANCE) and all(d == 0 for d in differ)
        no_effect = compared and same
        if no_effect:
            verdict = (
                f"{c.name} has no effect: its logits and generated codes are identical to the base model's"
            )
            if norm == 0:
                verdict += " (every LoRA B matrix is zero: an untrained, zero-initialised adapter)"
            else:
                verdict += " (is the adapter trained, and on the modules that matter?)"
        elif not compared:
            verdict = f"{c.name}: not compared (no generation succeeded for the base model and this adapter)"
        else:
            dl = f"{max_dlogit:.3g}" if max_dlogit is not None else "n/a"
            fd = f"{mean_differ:.0%}" if mean_differ is not None else "n/a"
            verdict = f"{c.name} is active: logits differ from the base by up to {dl}; {fd} of generated code frames differ"
        checks.append(
            {
                "candidate": c.name,
                "step": c.step,
                "max_dlogit": max_dlogit,
                "frames_differ": mean_differ,
                "lora_b_norm": norm,
                "no_effect": bool(no_effect),
                "verdict": verdict,
            }
        )
    return checks


def select_best(summary: Sequence[dict[str, Any]], select_by: str = "auto") -> dict[str, Any] | None:
    """The adapter with the best mean of ``select_by`` (auto: the first of :data:`AUTO_SELECT_ORDER` measured).

    Only the adapters with the fewest prompts left without audio (failed or ended at once) compete:
    a checkpoint that falls silent on some prompts never wins on the metrics of the others.

    Returns:
        ``{"candidate", "step", "metric", "label", "direction", "unit", "value", "base",
        "beats_base"}``, or None when no adapter has a value of the metric.
    """
    base = next((s for s in summary if s["candidate"] == "base"), None)
    adapters = [s for s in summary if s["candidate"] != "base"]
    order = AUTO_SELECT_ORDER if select_by == "auto" else (select_by,)
    for metric in order:
        scored = [s for s in adapters if s.get(f"{metric}_mean") is not None]
        if not scored:
            continue
        fewest = min(_without_audio(s) for s in scored)
        scored = [s for s in scored if _without_audio(s) == fewest]
        label, direction, unit = METRICS[metric]
        pick = min if direction == "lower" else max
        best = pick(scored, key=lambda s: s[f"{metric}_mean"])
        value = best[f"{metric}_mean"]
        base_value = base.get(f"{metric}_mean") if base else None
        beats = None
        if base_value is not None:
            beats = value < base_value if direction == "lower" else value > base_value
        return {
            "candidate": best["candidate"],
            "step": best["step"],
            "metric": metric,
            "label": label,
            "direction": direction,
            "unit": unit,
            "value": value,
            "base": base_value,
            "beats_base": beats,
        }
    return None


def _without_audio(entry: dict[str, Any]) -> int:
    """Prompts a candidate left without audio: generations that failed or ended at once."""
    return entry.get("failed", 0) + entry.get("no_audio", 0)


def best_sentence(best: dict[str, Any] | None) -> str:
    """E.g. ``best: checkpoint-40 by mel-cepstral distortion (lower is better): 7.91 dB vs base 9.02 dB``."""
    if best is None:
        return "best: none selected (no adapter has a value of the selection metric)"
    unit, value, base = best["unit"], best["value"], best["base"]
    digits = 3
    while base is not None and digits < 8 and value != base and f"{value:.{digits}g}" == f"{base:.{digits}g}":
        digits += 1  # enough digits to show the two numbers differ
    text = f"best: {best['candidate']} by {best['label']} ({best['direction']} is better): {value:.{digits}g}{unit}"
    if base is not None:
        text += f" vs base {base:.{digits}g}{unit}"
        if best["beats_base"] is False:
            text += " (no adapter beats the base model on this metric)"
    return text
