"""Things notebooks show that must also work in a static HTML report.

Widgets do not render in nbconvert HTML, so every widget has a static stand-in built from these
helpers: HTML tables, side-by-side JSON, and audio players whose WAV data is embedded in the
page (capped in number and length so a report stays small).
"""

from __future__ import annotations

import base64
import html
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from workbench.audio import TARGET_SAMPLE_RATE, load_audio, wav_bytes

SUMMARY_KEY = "workbench_summary"
PARAMETERS_KEY = "workbench_parameters"  # a displayed parameter table: the report folds it into one table
ANSWER_TAG = "answer"  # the cell that shows a step's result: the HTML report puts it first
LOG_TAG = "log"  # a cell whose printed output is a log: the HTML report moves it into the log section

# Border and background of an answer box per state (ok: go on; warn: look first; bad: stop here).
ANSWER_COLOURS = {
    "ok": ("#2a7", "#f3fbf6"),
    "warn": ("#c80", "#fdf8ee"),
    "bad": ("#c33", "#fdf3f3"),
    "none": ("#888", "#f6f6f6"),
}


def audio_html(audio: np.ndarray, sample_rate: int = TARGET_SAMPLE_RATE, label: str | None = None) -> str:
    """An ``<audio>`` element with the WAV data embedded as a data URI."""
    data = base64.b64encode(wav_bytes(audio, sample_rate)).decode("ascii")
    caption = f'<div style="font-size:small">{html.escape(label)}</div>' if label else ""
    return (
        f'<div class="wb-audio">{caption}<audio controls preload="metadata" '
        f'src="data:audio/wav;base64,{data}"></audio></div>'
    )


class Listener:
    """Embeds at most ``max_listen`` clips, each cut to ``max_seconds``, then shows text notes.

    Examples:
        >>> listen = Listener(max_listen=4)
        >>> html_snippet = listen.player("/data/a.wav", label="target")  # doctest: +SKIP
    """

    def __init__(self, max_listen: int = 8, max_seconds: float = 10.0, sample_rate: int = TARGET_SAMPLE_RATE):
        self.max_listen = max_listen
        self.max_seconds = max_seconds
        self.sample_rate = sample_rate
        self.embedded = 0

    def player(self, path: str | os.PathLike, label: str | None = None) -> str:
        """HTML for one clip as training sees it (24 kHz mono), or a note when it cannot be embedded."""
        name = label or os.path.basename(str(path))
        if self.embedded >= self.max_listen:
            return f'<div class="wb-note">{html.escape(name)}: not embedded (max_listen={self.max_listen} reached)</div>'
        try:
            audio = load_audio(path, self.sample_rate)
        except (FileNotFoundError, ValueError) as exc:
            return f'<div class="wb-note">{html.escape(name)}: cannot play ({html.escape(str(exc))})</div>'
        limit = int(self.max_seconds * self.sample_rate)
        note = f" (first {self.max_seconds:g} s)" if len(audio) > limit else ""
        self.embedded += 1
        return audio_html(audio[:limit], self.sample_rate, f"{name}{note}")

    def sample_html(self, sample: Any, note: str | None = None, references: bool = True) -> str:
        """A sample's id, speaker, ``note`` and target text, then its reference and target players."""
        who = f" ({html.escape(sample.speaker)})" if sample.speaker else ""
        tag = f" [{html.escape(note)}]" if note else ""
        parts = [
            f"<div><b>{html.escape(sample.id)}</b>{who}{tag}: {html.escape(sample.target_text() or '')}</div>"
        ]
        if references:
            parts += [self.player(p, "reference") for p in sample.reference_audio()]
        parts += [self.player(p, "target") for p in sample.target_audio()]
        return "".join(parts)


def table_html(
    rows: Iterable[dict[str, Any]], columns: Sequence[str] | None = None, max_rows: int = 200
) -> str:
    """A plain HTML table (the static stand-in for interactive tables)."""
    rows = list(rows)
    if columns is None:
        columns = list(dict.fromkeys(k for r in rows for k in r))
    head = "".join(f'<th style="text-align:left">{html.escape(str(c))}</th>' for c in columns)
    body = []
    for r in rows[:max_rows]:
        cells = "".join(
            f'<td style="text-align:left;vertical-align:top">{html.escape(_cell(r.get(c)))}</td>'
            for c in columns
        )
        body.append(f"<tr>{cells}</tr>")
    more = f"<p>… {len(rows) - max_rows} more rows not shown</p>" if len(rows) > max_rows else ""
    return (
        '<table class="wb-table" style="border-collapse:collapse;font-size:small;text-align:left">'
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>{more}"
    )


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.3g}"
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)[:300]
    return str(value)


def json_html(obj: Any, title: str | None = None) -> str:
    text = html.escape(json.dumps(obj, indent=1, ensure_ascii=False))
    head = f"<b>{html.escape(title)}</b>" if title else ""
    return f'<div style="flex:1;min-width:0">{head}<pre style="white-space:pre-wrap;font-size:small">{text}</pre></div>'


def side_by_side(
    left: Any, right: Any, left_title: str = "source record", right_title: str = "canonical sample"
) -> str:
    """Two JSON objects next to each other (original record | converted sample)."""
    return f'<div style="display:flex;gap:1em">{json_html(left, left_title)}{json_html(right, right_title)}</div>'


def show(markup: str) -> None:
    """Display HTML in a notebook (no-op text print outside IPython)."""
    try:
        from IPython.display import HTML, display
    except ImportError:  # pragma: no cover - IPython is a dependency
        print(markup)
        return
    display(HTML(markup))


def show_summary(text: str) -> None:
    """Show a step's one-line result; the run index (``workbench report``) picks it up."""
    from IPython.display import Markdown, display

    display(Markdown(f"**Result:** {text}"), metadata={SUMMARY_KEY: text})


@dataclass
class Answer:
    """What a step report opens with: a verdict, why, and the few things to look at or run next.

    Attributes:
        headline: the verdict in a few words ("GO: 27 trainable samples", "Yes: checkpoint-40 is better").
        summary: the step's one-line result; the run index (``RUN_DIR/index.html``) lists it.
        state: ``ok`` (go on), ``warn`` (look first), ``bad`` (stop here) or ``none``; colours the box.
        why: one sentence under the headline.
        body: HTML under it: a small table, players, a figure, next commands.
    """

    headline: str
    summary: str
    state: str = "ok"
    why: str = ""
    body: str = ""

    def html(self) -> str:
        border, background = ANSWER_COLOURS.get(self.state, ANSWER_COLOURS["none"])
        why = f'<div class="wb-why" style="margin-top:.3em">{html.escape(self.why)}</div>' if self.why else ""
        return (
            f'<div class="wb-answer wb-{self.state}" style="border-left:6px solid {border};background:{background};'
            'padding:.6em 1em;margin:.4em 0 .8em 0">'
            f'<div class="wb-verdict" style="font-size:1.3em;font-weight:bold">{html.escape(self.headline)}</div>'
            f"{why}{self.body}</div>"
        )


def show_answer(answer: Answer) -> None:
    """Display a step's answer; the run index picks up its summary, the HTML report puts it first.

    The notebooks show it in their last cell (tagged ``answer``): the result exists only at the end
    of a run, and the export moves it to the top of the report.
    """
    from IPython.display import display

    bundle = {
        "text/html": answer.html(),
        "text/markdown": f"**Result:** {answer.summary}",
        "text/plain": answer.summary,
    }
    display(bundle, raw=True, metadata={SUMMARY_KEY: answer.summary})


def show_parameters(values: dict[str, Any]) -> None:
    """Display a run's resolved parameters as a table; the HTML report folds it into its one parameter table."""
    from IPython.display import display

    table = table_html([{"parameter": k, "value": v} for k, v in values.items()], max_rows=10_000)
    plain = json.loads(json.dumps(values, default=str))  # JSON-safe, to travel in the notebook's metadata
    display(
        {"text/html": table, "text/plain": f"{len(values)} parameters"},
        raw=True,
        metadata={PARAMETERS_KEY: plain},
    )


def pre_html(text: str, style: str = "") -> str:
    """Preformatted text (commands, summaries) in a report."""
    return (
        f'<pre style="white-space:pre-wrap;font-size:small;margin:.3em 0;{style}">{html.escape(text)}</pre>'
    )


def img_html(png: bytes, alt: str, style: str = "max-width:100%") -> str:
    """An ``<img>`` with the PNG embedded and its text alternative (reports stand alone)."""
    data = base64.b64encode(png).decode("ascii")
    return f'<img alt="{html.escape(alt, quote=True)}" src="data:image/png;base64,{data}" style="{style}">'


def figure_alt(fig) -> str:
    """A figure's text alternative: its title and its panels' titles and axis labels."""
    parts = [fig._suptitle.get_text()] if getattr(fig, "_suptitle", None) is not None else []
    for ax in fig.axes:
        words = [ax.get_title(), ax.get_ylabel() and f"{ax.get_ylabel()} vs {ax.get_xlabel() or 'index'}"]
        panel = " — ".join(w for w in words if w)
        if panel:
            parts.append(panel)
    return "; ".join(p for p in parts if p) or "figure"


def show_figure(fig, alt: str | None = None) -> None:
    """Display a matplotlib Figure as an embedded PNG (works headless and in HTML reports).

    The HTML form carries ``alt`` text (default: :func:`figure_alt`) for screen readers; the PNG
    is there too for front ends that prefer it.
    """
    from IPython.display import display

    from workbench.notebook.plots import figure_png

    png = figure_png(fig)
    text = alt or figure_alt(fig)
    bundle = {"text/html": img_html(png, text), "image/png": base64.b64encode(png).decode("ascii")}
    display({**bundle, "text/plain": f"<figure: {text}>"}, raw=True)
