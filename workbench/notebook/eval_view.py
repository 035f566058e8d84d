"""Notebook 05's view of an evaluation: the per-model table, metric plots, listening rows.

:func:`summary_rows` (``mean ± std`` per metric), :func:`metric_plots` (each metric against the
training step, the base model as a dashed line) and :func:`listening_html` (one row of players and
spectrograms per prompt) present an :class:`~workbench.evaluation.evaluate.EvalResult`; the numbers behind
them come from :mod:`workbench.evaluation.eval_report`.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from workbench.evaluation.eval_report import METRICS, SAMPLE_RATE, metric_names

if TYPE_CHECKING:
    from workbench.evaluation.candidates import Candidate
    from workbench.evaluation.evaluate import EvalResult


def summary_rows(result: EvalResult, per_codebook: bool = False) -> list[dict[str, Any]]:
    """The per-candidate table for display: ``mean ± std`` per metric.

    Args:
        result: The evaluation.
        per_codebook: Show only the per-codebook accuracies (``acc_cb<k>``) instead of the rest.
    """
    names = [n for n in metric_names(result.rows) if n.startswith("acc_cb") == per_codebook]
    table = []
    for s in result.summary:
        row: dict[str, Any] = {
            "model": s["candidate"],
            "step": s["step"],
            "prompts": s["prompts"],
            "failed": s["failed"],
            "no audio": s.get("no_audio", 0),
        }
        for name in names:
            mean, std = s.get(f"{name}_mean"), s.get(f"{name}_std")
            row[name] = "" if mean is None else f"{mean:.3g}" + (f" ± {std:.2g}" if std is not None else "")
        table.append(row)
    return table


def metric_plots(result: EvalResult, metrics: Sequence[str] | None = None) -> Any:
    """Each metric's mean (± std) against the checkpoint step, base model as a dashed line.

    Returns:
        A matplotlib Figure, or None when no adapter has a known step.
    """
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    stepped = [s for s in result.summary if s["candidate"] != "base" and s["step"] is not None]
    if not stepped:
        return None
    names = [m for m in (metrics or metric_names(result.rows)) if not m.startswith("acc_cb")]
    names = [m for m in names if any(s.get(f"{m}_mean") is not None for s in stepped)]
    if not names:
        return None
    runs: dict[str | None, list[Candidate]] = {}
    for c in result.candidates:
        if not c.is_base and c.step is not None:
            runs.setdefault(c.run, []).append(c)
    by_name = {s["candidate"]: s for s in result.summary}
    base = by_name.get("base", {})
    cols = min(3, len(names))
    rows = -(-len(names) // cols)
    fig = Figure(figsize=(4.2 * cols, 3.0 * rows), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, cols)).reshape(-1)
    for ax, name in zip(axes, names, strict=False):
        label, direction, unit = METRICS.get(name, (name, None, ""))
        for run, members in runs.items():
            members = sorted(members, key=lambda c: c.step)  # type: ignore[arg-type, return-value]
            xs = [c.step for c in members if by_name[c.name].get(f"{name}_mean") is not None]
            ys = [
                by_name[c.name][f"{name}_mean"]
                for c in members
                if by_name[c.name].get(f"{name}_mean") is not None
            ]
            es = [
                by_name[c.name].get(f"{name}_std") or 0
                for c in members
                if by_name[c.name].get(f"{name}_mean") is not None
            ]
            ax.errorbar(xs, ys, yerr=es, marker="o", capsize=3, label=Path(run).name if run else "adapters")
        if base.get(f"{name}_mean") is not None:
            ax.axhline(base[f"{name}_mean"], color="gray", linestyle="--", label="base")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        better = f" ({direction} is better)" if direction else ""
        ax.set(title=f"{label}{better}", xlabel="step", ylabel=unit.strip() or None)
        ax.legend(fontsize="x-small")
    for ax in axes[len(names) :]:
        ax.set_visible(False)
    return fig


def _spectrogram_img(audio: np.ndarray, title: str) -> str:
    from workbench.notebook.display import img_html
    from workbench.notebook.plots import figure_png, waveform_and_spectrogram

    return img_html(
        figure_png(waveform_and_spectrogram(audio, SAMPLE_RATE, title=title)), title, "width:300px"
    )


def _clip_cell(
    label: str,
    path: str | None,
    listener: Any,
    embed: bool,
    metrics: str = "",
    error: str | None = None,
    status: str = "failed",
    heard: str | None = None,
) -> str:
    from workbench.audio import load_audio

    head = f"<b>{html.escape(label)}</b>"
    if error:
        what = "no audio" if status == "no_audio" else "failed"
        return f'<td style="vertical-align:top">{head}<div class="wb-note">{what}: {html.escape(error)}</div></td>'
    if not path:
        return f'<td style="vertical-align:top">{head}<div class="wb-note">no audio</div></td>'
    body = ""
    if embed:
        body = listener.player(path, label=label)
        try:
            audio = load_audio(path, SAMPLE_RATE)[: int(listener.max_seconds * SAMPLE_RATE)]
            body += _spectrogram_img(audio, label)
        except (FileNotFoundError, ValueError) as exc:
            body += f'<div class="wb-note">no spectrogram ({html.escape(str(exc))})</div>'
    else:
        body = '<div class="wb-note">not embedded (max_listen reached)</div>'
    note = f'<div style="font-size:small">{html.escape(metrics)}</div>' if metrics else ""
    if heard is not None:  # what the speech recogniser heard, beside its WER
        note += f'<div class="wb-heard" style="font-size:small">heard: “{html.escape(heard)}”</div>'
    return f'<td style="vertical-align:top">{head}{body}{note}</td>'


def _short_metrics(row: dict[str, Any]) -> str:
    shown = []
    for key, fmt in (
        ("duration", "{:.2f} s"),
        ("mcd", "mcd {:.2f} dB"),
        ("wer", "wer {:.2f}"),
        ("speaker_sim_target", "sim {:.2f}"),
        ("loss", "loss {:.2f}"),
        ("frames_differ", "{:.0%} frames ≠ base"),
    ):
        if isinstance(row.get(key), (int, float)):
            shown.append(fmt.format(row[key]))
    return " · ".join(shown)


def listening_html(result: EvalResult, max_listen: int | None = None) -> str:
    """One table row per prompt: reference | target | base | adapters, with players and spectrograms.

    Clips of the first ``max_listen`` prompts (default ``params.max_listen``) are embedded; the
    others show their metrics only, so the report stays small.
    """
    from workbench.notebook.display import Listener

    max_listen = result.params.max_listen if max_listen is None else max_listen
    names = [c.name for c in result.candidates]
    by_prompt: dict[str, dict[str, dict[str, Any]]] = {}
    for row in result.rows:
        by_prompt.setdefault(row["sample_id"], {})[row["candidate"]] = row
    has_ref = any(r.get("reference") for r in result.rows)
    has_target = any(r.get("target") for r in result.rows)
    listener = Listener(max_listen=10**9)  # the cap is per prompt row, below
    parts = []
    for number, (sid, cells) in enumerate(by_prompt.items()):
        first = next(iter(cells.values()))
        embed = number < max_listen
        tds = []
        if has_ref:
            tds.append(_clip_cell("reference", first.get("reference"), listener, embed))
        if has_target:
            tds.append(_clip_cell("target", first.get("target"), listener, embed))
        for name in names:
            row = cells.get(name)
            if row is None:
                continue
            tds.append(
                _clip_cell(
                    name,
                    row.get("audio"),
                    listener,
                    embed,
                    _short_metrics(row),
                    row.get("error"),
                    row["status"],
                    row.get("transcript"),
                )
            )
        text = html.escape(first.get("text") or "")
        parts.append(
            f'<h4 style="margin-bottom:0.2em">{html.escape(sid)}</h4><div style="font-size:small">“{text}”</div>'
            f'<table class="wb-table"><tr>{"".join(tds)}</tr></table>'
        )
    if len(by_prompt) > max_listen:
        parts.append(
            f"<p>Clips of {len(by_prompt) - max_listen} more prompt(s) not embedded (max_listen={max_listen}); "
            f"the WAV files are in {html.escape(str(Path(result.params.output_dir) / 'audio'))}.</p>"
        )
    return "\n".join(parts)


# --- the answer the report opens with ------------------------------------------------------------------
def _compared(result: EvalResult) -> str | None:
    """The adapter the answer sets against the base model: the best one, else the last one evaluated."""
    if result.best:
        return result.best["candidate"]
    adapters = [c.name for c in result.candidates if not c.is_base]
    return adapters[-1] if adapters else None


def verdict(result: EvalResult) -> tuple[str, str]:
    """``(state, headline)``: is the adapter better than the base model?

    ``state`` is ``ok`` (yes), ``bad`` (no, or it changes nothing), ``warn`` (no comparison possible)
    or ``none`` (no adapter was evaluated). The reason is the evaluation's best-checkpoint sentence.
    """
    name = _compared(result)
    if name is None:
        return "none", "No adapter to compare: only the base model was evaluated"
    if any(a["candidate"] == name and a["no_effect"] for a in result.ab):
        return "bad", f"No: {name} changes nothing (its LoRA has no effect on the base model)"
    best = result.best
    if best is None:
        return "warn", f"No verdict: no adapter has a value of the selection metric ({name} shown below)"
    beats = best.get("beats_base")
    if beats is True:
        return "ok", f"Yes: {name} is better than the base model. Keep {name}."
    if beats is False:
        return "bad", f"No: no adapter beats the base model (closest: {name})"
    return "warn", f"Best adapter: {name} (the base model has no value to compare with)"


def comparison_rows(result: EvalResult, candidate: str) -> list[dict[str, Any]]:
    """One row per metric: its label and direction, the base model's mean, ``candidate``'s, which is better."""
    by_name = {s["candidate"]: s for s in result.summary}
    base, other = by_name.get("base", {}), by_name.get(candidate, {})
    rows = []
    for name in metric_names(result.rows):
        if name.startswith("acc_cb") or (
            base.get(f"{name}_mean") is None and other.get(f"{name}_mean") is None
        ):
            continue
        label, direction, unit = METRICS.get(name, (name, None, ""))
        a, b = base.get(f"{name}_mean"), other.get(f"{name}_mean")
        better = ""
        if direction and a is not None and b is not None and a != b:
            better = candidate if (b < a) == (direction == "lower") else "base"
        digits = 3
        while better and digits < 8 and f"{a:.{digits}g}" == f"{b:.{digits}g}":
            digits += 1  # enough digits to show why one is better
        rows.append(
            {
                "metric": f"{label} ({direction} is better)" if direction else label,
                "base": "" if a is None else f"{a:.{digits}g}{unit}",
                candidate: "" if b is None else f"{b:.{digits}g}{unit}",
                "better": better,
            }
        )
    lost = [
        (by_name.get(n, {}).get("failed", 0) + by_name.get(n, {}).get("no_audio", 0))
        for n in ("base", candidate)
    ]
    rows.append(
        {
            "metric": "prompts without audio (fewer is better)",
            "base": lost[0],
            candidate: lost[1],
            "better": "",
        }
    )
    return rows


def _answer_players(result: EvalResult, candidate: str, max_seconds: float = 10.0) -> str:
    """The first prompt both models voiced: the real voice (target, else reference), base, ``candidate``."""
    from workbench.notebook.display import Listener

    rows: dict[str, dict[str, dict[str, Any]]] = {}
    for row in result.rows:
        rows.setdefault(row["sample_id"], {})[row["candidate"]] = row
    for sample_id, cells in rows.items():
        base, other = cells.get("base"), cells.get(candidate)
        if not (base and other and base.get("audio") and other.get("audio")):
            continue
        listen = Listener(max_listen=3, max_seconds=max_seconds)
        first = next(iter(cells.values()))
        real = (
            ("target", first.get("target")) if first.get("target") else ("reference", first.get("reference"))
        )
        players = [listen.player(real[1], f"{real[0]} (the real voice)")] if real[1] else []
        players += [listen.player(base["audio"], "base model"), listen.player(other["audio"], candidate)]
        text = html.escape(first.get("text") or "")
        return (
            f'<div style="font-size:small"><b>Listen</b>: {html.escape(sample_id)} “{text}”</div>'
            + "".join(players)
        )
    return '<div class="wb-note">No prompt has audio from both the base model and the adapter.</div>'


def answer(result: EvalResult) -> Any:
    """What report 05 opens with: the verdict, the best checkpoint and why, base vs adapter, players.

    Returns:
        A :class:`workbench.notebook.display.Answer` (:func:`workbench.notebook.display.show_answer`).
    """
    from workbench.notebook.display import Answer, table_html

    state, headline = verdict(result)
    candidate = _compared(result)
    body = ""
    if candidate is not None:
        table = table_html(comparison_rows(result, candidate), ["metric", "base", candidate, "better"])
        body = (
            '<div style="display:flex;flex-wrap:wrap;gap:1.5em;align-items:flex-start;margin-top:.5em">'
            f"<div>{table}</div><div>{_answer_players(result, candidate)}</div></div>"
        )
    notes = [a["verdict"] for a in result.ab if a["no_effect"]] + list(result.notes)
    if notes:
        items = "".join(f"<li>{html.escape(n)}</li>" for n in notes)
        body += f'<ul style="font-size:small;color:#555;margin:.4em 0">{items}</ul>'
    return Answer(headline, result.summary_line(), state, result.best_sentence(), body)
