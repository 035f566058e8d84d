"""Reading an evaluation: per-model summary, the A/B check, the best checkpoint.

The functions here turn the rows of :func:`workbench.evaluation.evaluate.evaluate` (one per model and prompt)
into what a person reads: mean and spread per model (:func:`summarize`), whether each adapter
changes anything (:func:`ab_check`) and the best checkpoint with its reason in words
(:func:`select_best`, :func:`best_sentence`): by what listeners notice (speaker similarity, DNSMOS,
WER) unless one metric is named, never a checkpoint that falls silent or runs away in length. Notebook 05's tables, plots and listening rows over them are
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
    "speaker_sim_target": ("speaker similarity to the target", "higher", ""),
    "speaker_sim_ref": ("speaker similarity to the reference", "higher", ""),
    "dnsmos_ovrl": ("DNSMOS overall", "higher", ""),
    "dnsmos_sig": ("DNSMOS speech signal", "higher", ""),
    "dnsmos_bak": ("DNSMOS background", "higher", ""),
    "wer": ("word error rate", "lower", ""),
    "cer": ("character error rate", "lower", ""),
    "xvector_sim_target": ("x-vector similarity to the target (speaker_model)", "higher", ""),
    "xvector_sim_ref": ("x-vector similarity to the reference (speaker_model)", "higher", ""),
    "loss": ("teacher-forced loss", "lower", ""),
    "acc_mean": ("teacher-forced top-1 accuracy", "higher", ""),
    "mcd": ("mel-cepstral distortion", "lower", " dB"),
    "pitch_target": ("pitch distance to the target voice", "lower", " st"),
    "pitch_ref": ("pitch distance to the reference voice", "lower", " st"),
    "duration": ("duration", None, " s"),
    "duration_ratio": ("duration ratio to the target", None, ""),
    "speaking_rate": ("speaking rate", None, ""),
    "silence_ratio": ("silence ratio", None, ""),
    "clipping": ("clipping", None, ""),
}
# select_by auto: (metric, tolerance). Candidates within the tolerance of the best value of a metric
# count as tied on it and go on to the next; the first metric that leaves one candidate decides.
AUTO_SELECT_RULE: tuple[tuple[str, float], ...] = (
    ("speaker_sim_target", 0.02),  # GE2E cosine: differences under 0.02 are within prompt-to-prompt spread
    ("speaker_sim_ref", 0.02),
    ("dnsmos_ovrl", 0.1),  # about the spread of DNSMOS between takes of the same speech
    ("wer", 0.02),
    ("mcd", 0.2),
    ("loss", 0.0),
    ("pitch_ref", 0.0),
)
AUTO_SELECT_ORDER = tuple(metric for metric, _ in AUTO_SELECT_RULE)
# Clips a listener would reject outright: they rule a checkpoint out whatever its other scores.
SILENT_CLIP_RATIO = 0.8  # silence_ratio at or above this: the clip is (nearly) silent
RUNAWAY_DURATION_RATIO = 2.0  # generated / target duration above this: the model does not stop
_SHORT = {
    "speaker_sim_target": "speaker similarity", "speaker_sim_ref": "speaker similarity to the reference",
    "dnsmos_ovrl": "DNSMOS", "wer": "WER", "mcd": "MCD", "loss": "loss", "pitch_ref": "pitch distance",
}  # fmt: skip
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
        raised), ``no_audio`` (generations the model ended before any audio frame), ``silent`` (those
        and clips whose silence ratio is at least :data:`SILENT_CLIP_RATIO`), ``runaway`` (clips that
        hit ``max_new_tokens`` or last more than :data:`RUNAWAY_DURATION_RATIO` times their target),
        and ``<metric>_mean`` / ``<metric>_std`` (std None with fewer than two values).
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
            "silent": sum(clip_problem(r) == "silent" for r in mine),
            "runaway": sum(clip_problem(r) == "runaway" for r in mine),
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


def clip_problem(row: dict[str, Any]) -> str | None:
    """What makes a row's clip unusable: ``"failed"``, ``"silent"``, ``"runaway"``, or None when it is fine.

    Silent: the model ended before any audio, or the clip's silence ratio is at least
    :data:`SILENT_CLIP_RATIO`. Runaway: generation hit ``max_new_tokens`` (``hit_max_new_tokens``), or
    the clip lasts more than :data:`RUNAWAY_DURATION_RATIO` times its target.
    """
    if row.get("status") == "failed":
        return "failed"
    if row.get("status") == "no_audio" or _number(row.get("silence_ratio"), 0.0) >= SILENT_CLIP_RATIO:
        return "silent"
    if row.get("hit_max_new_tokens") or _number(row.get("duration_ratio"), 0.0) > RUNAWAY_DURATION_RATIO:
        return "runaway"
    return None


def _number(value: Any, default: float) -> float:
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else default


def _unusable(entry: dict[str, Any]) -> int:
    """Prompts a candidate left without a usable clip: failed, silent or runaway."""
    return entry.get("failed", 0) + entry.get("silent", entry.get("no_audio", 0)) + entry.get("runaway", 0)


def select_best(summary: Sequence[dict[str, Any]], select_by: str = "auto") -> dict[str, Any] | None:
    """The adapter a listener would keep, with the reason in words.

    Only the adapters with the fewest unusable clips compete (failed, silent or runaway, see
    :func:`clip_problem`): a checkpoint that falls silent or does not stop never wins on the
    scores of its other clips. Among them:

    - ``select_by="auto"`` walks :data:`AUTO_SELECT_RULE`: speaker similarity to the target (then to the
      reference), DNSMOS overall, WER, mel-cepstral distortion, teacher-forced loss. On each metric
      that the competitors have, those further than its tolerance from the best drop out; the first
      metric that leaves one adapter decides (when none does, the best on the first measured metric wins).
    - ``select_by=<metric>``: the best mean of that one metric.

    Returns:
        ``{"candidate", "step", "metric" (the deciding metric), "label", "direction", "unit", "value",
        "base", "beats_base", "rule", "compared" (per metric: value and base), "unusable", "reason"}``,
        or None when no adapter has a value of any selection metric.
    """
    base = next((s for s in summary if s["candidate"] == "base"), None)
    rule = AUTO_SELECT_RULE if select_by == "auto" else ((select_by, 0.0),)
    adapters = [s for s in summary if s["candidate"] != "base"]
    measured = [m for m, _ in rule if any(s.get(f"{m}_mean") is not None for s in adapters)]
    if not measured:
        return None
    fewest = min(_unusable(s) for s in adapters)
    pool = [s for s in adapters if _unusable(s) == fewest]
    deciding = None
    for metric, tolerance in rule:
        scored = [s for s in pool if s.get(f"{metric}_mean") is not None]
        if not scored:
            continue
        better = max if METRICS[metric][1] == "higher" else min
        top = better(s[f"{metric}_mean"] for s in scored)
        pool = [s for s in scored if abs(s[f"{metric}_mean"] - top) <= tolerance]
        deciding = deciding or metric  # the first measured metric, unless a later one breaks the tie
        if len(pool) == 1:
            deciding = metric
            break
    if len(pool) > 1:  # still tied after every metric: the best on the first measured one
        first = next(m for m, _ in rule if all(s.get(f"{m}_mean") is not None for s in pool))
        better = max if METRICS[first][1] == "higher" else min
        pool, deciding = [better(pool, key=lambda s: s[f"{first}_mean"])], first
    best = pool[0]
    label, direction, unit = METRICS[deciding]
    value = best[f"{deciding}_mean"]
    base_value = base.get(f"{deciding}_mean") if base else None
    beats = None
    if base_value is not None and value is not None:
        beats = value < base_value if direction == "lower" else value > base_value
    # What a listener notices, with the deciding metric: one speaker similarity, DNSMOS, WER.
    similarity = [m for m in ("speaker_sim_target", "speaker_sim_ref") if best.get(f"{m}_mean") is not None]
    heard = [*similarity[:1], "dnsmos_ovrl", "wer"] if select_by == "auto" else []
    shown = [m for m in dict.fromkeys([*heard, deciding]) if best.get(f"{m}_mean") is not None]
    compared = [
        {
            "metric": m,
            "label": METRICS[m][0],
            "value": best[f"{m}_mean"],
            "base": base.get(f"{m}_mean") if base else None,
        }
        for m in shown
    ]
    result = {
        "candidate": best["candidate"], "step": best["step"], "metric": deciding, "label": label,
        "direction": direction, "unit": unit, "value": value, "base": base_value, "beats_base": beats,
        "rule": select_by, "compared": compared, "unusable": _unusable(best),
        "silent": best.get("silent", best.get("no_audio", 0)), "runaway": best.get("runaway", 0),
        "prompts": best.get("prompts", 0),
    }  # fmt: skip
    result["reason"] = _reason(result, adapters)
    return result


def _pair(value: float, base: float | None, unit: str) -> str:
    """``0.83 vs base 0.71``, with enough digits to show two different numbers differ."""
    digits = 2 if abs(value) < 10 else 3
    while base is not None and digits < 8 and value != base and f"{value:.{digits}g}" == f"{base:.{digits}g}":
        digits += 1
    text = f"{value:.{digits}g}{unit}"
    return text + (f" vs base {base:.{digits}g}{unit}" if base is not None else "")


def _reason(best: dict[str, Any], adapters: Sequence[dict[str, Any]]) -> str:
    """E.g. ``checkpoint-400: speaker similarity 0.83 vs base 0.71, DNSMOS 3.4 vs base 3.3, no silent or runaway clips``."""
    parts = [
        f"{_SHORT.get(c['metric'], c['label'])} {_pair(c['value'], c['base'], METRICS[c['metric']][2])}"
        for c in best["compared"]
    ]
    silent, runaway = best["silent"], best["runaway"]
    if not silent and not runaway:
        parts.append("no silent or runaway clips")
    else:
        problems = [
            f"{n} {kind} clip{'s' if n > 1 else ''}"
            for n, kind in ((silent, "silent"), (runaway, "runaway"))
            if n
        ]
        parts.append(f"{' and '.join(problems)} of {best['prompts']}")
    ruled_out = [s["candidate"] for s in adapters if _unusable(s) > best["unusable"]]
    if ruled_out:
        parts.append(f"ruled out for more silent, runaway or failed clips: {', '.join(ruled_out)}")
    if best["rule"] != "auto":
        parts.append(f"chosen by {best['label']} ({best['direction']} is better)")
    elif best["metric"] != best["compared"][0]["metric"]:
        parts.append(f"{_SHORT.get(best['metric'], best['label'])} broke the tie")
    if best["beats_base"] is False:
        parts.append(f"no adapter beats the base model on {best['label']}")
    return f"{best['candidate']}: " + ", ".join(parts)


def best_sentence(best: dict[str, Any] | None) -> str:
    """E.g. ``best: checkpoint-400: speaker similarity 0.83 vs base 0.71, DNSMOS 3.4 vs base 3.3, no silent or runaway clips``."""
    if best is None:
        return "best: none selected (no adapter has a value of the selection metric)"
    return f"best: {best['reason']}"
