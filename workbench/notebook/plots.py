"""Matplotlib figures for the notebooks (embedded as PNG in the HTML reports)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from workbench.audio import TARGET_SAMPLE_RATE


def distributions(rows: Sequence[dict[str, Any]]) -> Figure:
    """Durations, speakers, sample rates and characters per second of the target audio.

    Args:
        rows: per-sample dicts with ``duration``, ``speaker``, ``sample_rate`` and ``chars_per_second``
            (missing values are skipped), e.g. from :func:`workbench.data.inspection.sample_rows`.
    """
    fig = Figure(figsize=(12, 6.5), layout="constrained")
    axes = fig.subplots(2, 2)
    durations = [r["duration"] for r in rows if r.get("duration") is not None]
    ax = axes[0, 0]
    if durations:
        ax.hist(durations, bins=min(30, max(5, len(durations) // 2)), color="#4C72B0")
    ax.set(title=f"target duration (s), n={len(durations)}", xlabel="seconds", ylabel="samples")

    speakers = Counter(str(r.get("speaker")) for r in rows)
    ax = axes[0, 1]
    names, counts = zip(*speakers.most_common(20), strict=False) if speakers else ((), ())
    ax.barh(list(names)[::-1], list(counts)[::-1], color="#55A868")
    ax.set(title=f"samples per speaker ({len(speakers)} speakers)", xlabel="samples")

    rates = Counter(r["sample_rate"] for r in rows if r.get("sample_rate"))
    ax = axes[1, 0]
    labels = [f"{k / 1000:g} kHz" for k in sorted(rates)]
    ax.bar(labels, [rates[k] for k in sorted(rates)], color="#C44E52")
    ax.set(title="sample rates of target audio", ylabel="samples")

    cps = [r["chars_per_second"] for r in rows if r.get("chars_per_second") is not None]
    ax = axes[1, 1]
    if cps:
        ax.hist(cps, bins=min(30, max(5, len(cps) // 2)), color="#8172B2")
    ax.set(title="speaking rate (characters per second)", xlabel="chars/s", ylabel="samples")
    return fig


def waveform_and_spectrogram(
    audio: np.ndarray, sample_rate: int = TARGET_SAMPLE_RATE, title: str = ""
) -> Figure:
    """Waveform over a log-magnitude spectrogram of one clip."""
    fig = Figure(figsize=(10, 4), layout="constrained")
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[1, 2])
    t = np.arange(len(audio)) / sample_rate
    top.plot(t, audio, linewidth=0.5, color="#4C72B0")
    top.set(title=title, ylabel="amplitude", ylim=(-1.05, 1.05))
    if len(audio) >= 512:
        with np.errstate(divide="ignore"):  # silent stretches: log of zero power is -inf, drawn as the floor
            bottom.specgram(
                audio, NFFT=512, Fs=sample_rate, noverlap=384, cmap="magma", scale="dB", vmin=-120
            )
    bottom.set(xlabel="seconds", ylabel="Hz")
    return fig


def figure_png(fig: Figure) -> bytes:
    """PNG bytes of a figure (for widgets that show images)."""
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    return buf.getvalue()


def training_curves(metrics_jsonl: str) -> Figure:
    """Loss, learning rate, evaluation loss and per-codebook accuracy over steps (from ``metrics.jsonl``)."""
    import json

    rows = []
    with open(metrics_jsonl, encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh if line.strip()]
    fig = Figure(figsize=(12, 6.5), layout="constrained")
    (loss_ax, lr_ax), (eval_ax, acc_ax) = fig.subplots(2, 2)
    train = [r for r in rows if "loss" in r and "eval_loss" not in r]
    evals = [r for r in rows if "eval_loss" in r]
    loss_ax.plot([r["step"] for r in train], [r["loss"] for r in train], marker=".", color="#4C72B0")
    loss_ax.set(title="training loss (sum over codebooks)", xlabel="step")
    lr_ax.plot(
        [r["step"] for r in train if "learning_rate" in r],
        [r["learning_rate"] for r in train if "learning_rate" in r],
        color="#55A868",
    )
    lr_ax.set(title="learning rate", xlabel="step")
    eval_ax.plot([r["step"] for r in evals], [r["eval_loss"] for r in evals], marker="o", color="#C44E52")
    eval_ax.set(title="validation loss", xlabel="step")
    keys = sorted({k for r in evals for k in r if k.startswith("eval_acc_cb")}, key=lambda k: int(k[11:]))
    for k in keys:
        acc_ax.plot([r["step"] for r in evals], [r.get(k) for r in evals], linewidth=1, label=k[9:])
    if keys:
        acc_ax.plot(
            [r["step"] for r in evals],
            [r.get("eval_acc_mean") for r in evals],
            linewidth=2.5,
            color="black",
            label="mean",
        )
        acc_ax.legend(fontsize="x-small", ncol=3)
    acc_ax.set(title="validation top-1 accuracy per codebook", xlabel="step", ylim=(0, 1))
    return fig
