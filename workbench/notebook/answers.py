"""What each step report opens with: the step's result as an :class:`~workbench.notebook.display.Answer`.

One function per step (05's is :func:`workbench.notebook.eval_view.answer`); the notebook's last cell,
tagged ``answer``, shows it with :func:`workbench.notebook.display.show_answer`, and the HTML export
puts it first. Each takes what the notebook already computed; nothing is recomputed here.
"""

from __future__ import annotations

import html
import os
from collections import Counter
from pathlib import Path
from typing import Any

from workbench.notebook.display import Answer, pre_html, table_html

SPOKEN_METRICS = ("eval_speaker_sim", "eval_dnsmos", "eval_wer", "eval_silent", "eval_runaway")


def _next(*commands: str) -> str:
    lines = "\n".join(commands)
    return f'<div style="margin-top:.5em"><b>Next</b>:{pre_html(lines)}</div>'


def prepare_answer(report: Any, conversion: Any) -> Answer:
    """Notebook 00: clips made from the recordings, flagged and dropped, and what ``convert`` makes of them.

    Args:
        report: the :class:`workbench.prepare.pipeline.PrepareReport`.
        conversion: :func:`workbench.notebook.steps.convert_in_memory` of the clip folder.
    """
    from workbench.notebook.prepare_view import flag_counts

    ok = [r for r in report.inputs if not r.error]
    clips = sum(r.clips for r in ok)
    flagged = sum(r.flagged for r in ok)
    state = "bad" if report.failed or not clips else "warn" if flagged else "ok"
    headline = (
        f"{clips} clips made from {len(report.inputs)} recording{'s' if len(report.inputs) != 1 else ''}"
    )
    if report.failed:
        headline += f"; {len(report.failed)} failed"
    counts = flag_counts(report.rows)
    flags = (
        "flags: " + ", ".join(f"{k} {v}" for k, v in counts.items()) + " (listen to the flagged clips first)"
        if counts
        else "no clip is flagged"
    )
    body = (
        f"<div>{html.escape(flags)}</div>"
        f"<div>convert will make: {html.escape(conversion.report.summary_line())}</div>"
        f"<div>clips: <code>{html.escape(str(report.dataset_dir))}</code></div>"
        + _next(
            f"workbench convert {report.dataset_dir} -o converted.jsonl && workbench validate converted.jsonl"
        )
    )
    return Answer(headline, report.summary_line(), state, report.summary_line(), body)


def inspect_answer(inputs: list[str], loaded: Any, stats: Any) -> Answer:
    """Notebook 01: what the files hold: records and formats, trainable samples, prompts, speakers, hours.

    Args:
        inputs: the input paths.
        loaded: :func:`workbench.notebook.steps.convert_in_memory` of them.
        stats: :func:`workbench.data.inspection.inspect` of the loaded samples.
    """
    report = loaded.report
    speakers = len(stats.speakers)
    formats = ", ".join(f"{k}: {v}" for k, v in sorted(report.formats.items()))
    summary = (
        f"{report.total} records in {len(inputs)} inputs ({formats}); {stats.trainable} trainable, "
        f"{stats.prompts} prompts, {speakers} speaker{'' if speakers == 1 else 's'}"
    )
    hours = f", {stats.target_hours:.2f} h of target audio" if stats.target_hours is not None else ""
    headline = f"{stats.trainable} trainable samples, {speakers} speaker{'' if speakers == 1 else 's'}{hours}"
    state = "bad" if not stats.trainable else "warn" if report.rejected or loaded.truncated else "ok"
    counts = [
        {
            "records": report.total,
            "trainable": report.converted,
            "prompt-only": report.prompts,
            "rejected": report.rejected,
        }
    ]
    truncated = (
        "<div>Only the first records of each file were loaded (max_records).</div>"
        if loaded.truncated
        else ""
    )
    why = f"{report.total} records in {len(inputs)} input{'s' if len(inputs) != 1 else ''}; formats: {formats or 'none'}"
    return Answer(headline, summary, state, why, table_html(counts) + truncated)


def convert_answer(report: Any, converted: str | os.PathLike) -> Answer:
    """Notebook 02: every record trainable, prompt-only or rejected, the reasons counted, the files written."""
    from workbench.data.sample import sibling_path
    from workbench.notebook.steps import rejected_rows

    codes = Counter(
        code.strip() for r in rejected_rows(converted) for code in r["code"].split(",") if code.strip()
    )
    state = "bad" if not report.converted else "warn" if report.rejected else "ok"
    headline = (
        f"{report.converted} of {report.total} records trainable"
        f"{f', {report.rejected} rejected' if report.rejected else ''}"
        f"{f', {report.prompts} prompt-only' if report.prompts else ''}"
    )
    why = (
        "rejected: " + ", ".join(f"{k} {v}" for k, v in codes.most_common())
        if codes
        else "no record was rejected"
    )
    files = [Path(converted), sibling_path(converted, "prompts"), sibling_path(converted, "rejected")]
    listing = "".join(f"<div><code>{html.escape(str(p))}</code></div>" for p in files if p.exists())
    body = listing + _next(f"workbench validate {converted}")
    return Answer(headline, report.summary_line(), state, why, body)


def validate_answer(report: Any, split: Any, final: Any, out_dir: str | os.PathLike) -> Answer:
    """Notebook 03: GO or NO-GO for training, the findings counted, the split written.

    Args:
        report: validation of the samples as they came in (findings shown in the report).
        split: the :class:`workbench.notebook.steps.TrainingSplit` written.
        final: validation of the written train/val files (the verdict).
        out_dir: the notebook's output folder.
    """
    counts = split.to_dict()
    verdict = final.go_no_go().splitlines()[0]
    summary = (
        f"{report.samples} samples checked, {len(report.errors)} errors / {len(report.warnings)} warnings; "
        f"{counts['train']} train / {counts['val']} val; {verdict}"
    )
    go = verdict.startswith("GO")
    headline, _, why = verdict.partition(": ")
    headline = f"{headline}: {counts['train']} train / {counts['val']} val samples"
    table = table_html(
        [
            {
                "samples checked": report.samples,
                "errors": len(report.errors),
                "warnings": len(report.warnings),
                "left out for errors": counts["excluded_for_errors"],
                "train": counts["train"],
                "val": counts["val"],
            }
        ]
    )
    out = Path(out_dir)
    body = table + _next(
        f"workbench train --params params/single_gpu.yaml -p model MODEL -p train_data {out / 'train.jsonl'} "
        f"-p val_data {out / 'val.jsonl'} -p output_dir runs/me"
        if go
        else f"fix or drop the samples above (fix recipe: {out / 'fixes.yaml'}), then validate again"
    )
    return Answer(headline, summary, "ok" if go else "bad", why, body)


def train_answer(params: Any, prepared: Any, result: Any, curves: bool = True) -> Answer:
    """Notebook 04: the loss curves, the final numbers, the adapter and the commands to run next.

    Args:
        params: the run's :class:`workbench.training.params.TrainParams`.
        prepared: what :func:`workbench.training.preparation.prepare` checked.
        result: the :class:`workbench.training.train.TrainResult` (None: data check only).
        curves: draw the curves from ``metrics.jsonl`` (rank 0 only: every rank runs the notebook).
    """
    from workbench.notebook.display import figure_alt, img_html
    from workbench.notebook.plots import figure_png, training_curves

    if result is None:
        text = prepared.summary()
        go = "NO-GO" not in text
        return Answer("Data checked, no training (validate_data_only)" if go else "Data check failed", text,
                      "warn" if go else "bad", text)  # fmt: skip
    summary = result.summary()
    trend = (result.eval_trend or {}).get("note")
    ev = result.eval_metrics
    numbers: dict[str, Any] = {"steps": result.global_step, "train loss": result.train_loss}
    if "eval_loss" in ev:
        numbers.update(
            {"eval loss": ev["eval_loss"], "codebook accuracy": f"{ev.get('eval_acc_mean', 0):.1%}"}
        )
    # what eval_generate measured at the last evaluation (speaker similarity, DNSMOS, silent clips)
    numbers.update({k[5:].replace("_", " "): v for k, v in ev.items() if k.startswith(SPOKEN_METRICS)})
    numbers["time"] = f"{result.seconds:.0f} s" if result.seconds < 120 else f"{result.seconds / 60:.1f} min"
    headline = f"Trained {result.global_step} steps" + (
        f": eval loss {ev['eval_loss']:.3f}, codebook accuracy {ev.get('eval_acc_mean', 0):.1%}"
        if "eval_loss" in ev
        else ""
    )
    body = table_html([numbers])
    body += f"<div>adapter: <code>{html.escape(str(result.adapter_dir))}</code></div>"
    if result.merged_dir:
        body += f"<div>merged model: <code>{html.escape(str(result.merged_dir))}</code></div>"
    metrics = Path(params.output_dir) / "metrics.jsonl"
    if curves and metrics.exists():
        fig = training_curves(str(metrics))
        body += img_html(figure_png(fig), figure_alt(fig), "max-width:100%;width:960px")
    from workbench.training.launch import next_steps

    body += f'<div style="margin-top:.5em"><b>Next</b>:{pre_html(next_steps(params))}</div>'
    return Answer(headline, summary, "warn" if trend else "ok", trend or summary, body)
