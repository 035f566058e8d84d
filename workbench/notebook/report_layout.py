"""The reading order of an HTML step report: the answer first, then details; parameters and logs folded.

The executed notebook keeps everything in the order it ran. Its HTML export (:func:`report_exporter`)
is rearranged for a reader by nbconvert's own machinery: ``exclude_input`` hides the code, and the
:class:`ReportLayout` preprocessor

- moves the cell tagged ``answer`` (the step's result, shown by the notebook's last cell) right
  after the title, and puts a banner there when a cell failed;
- replaces the ``parameters`` cell, papermill's ``injected-parameters`` cell and any parameter table
  (:func:`workbench.notebook.display.show_parameters`) by ONE collapsed table: name, value, default, meaning;
- moves stderr (logging, warnings) and the printed output of cells tagged ``log`` into ONE collapsed
  "Log" section at the end, each part under the heading of the section it came from;
- drops widget views and their saved state: without a kernel (and the widget JavaScript from a CDN)
  they render as nothing, and every widget has a static stand-in displayed next to it.
"""

from __future__ import annotations

import ast
import html
import re
from typing import Any

from nbconvert.preprocessors import Preprocessor

from workbench.notebook.display import ANSWER_COLOURS, ANSWER_TAG, LOG_TAG, PARAMETERS_KEY

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
PARAMETER_TAGS = ("parameters", "injected-parameters")
PAPERMILL_ERROR_TAG = "papermill-error-cell-tag"  # papermill marks a failed run's notebook with these cells
WARNING_LINE = re.compile(r"\b\w*Warning\b:")
MAX_LOG_LINES = 5000  # per cell; a report stays readable (the executed notebook keeps every line)


def _tags(cell: Any) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def _html_cell(markup: str, role: str) -> Any:
    """A code cell without source whose one output is ``markup`` (the exporter hides inputs).

    Not a raw cell: nbconvert sanitises raw HTML and would drop ``<details>``.
    """
    import nbformat

    output = nbformat.v4.new_output("display_data", data={"text/html": markup, "text/plain": role})
    return nbformat.v4.new_code_cell(source="", outputs=[output], metadata={"workbench_report": role})


def _heading(cell: Any) -> str | None:
    """The last heading of a markdown cell (what a following cell's output belongs to)."""
    lines = [ln.lstrip("#").strip() for ln in cell.get("source", "").splitlines() if ln.startswith("#")]
    return lines[-1] if lines else None


def _text(value: Any) -> str:
    return "".join(value) if isinstance(value, list) else str(value or "")


# --- parameters ------------------------------------------------------------------------------------
def _declared(nb: Any) -> list[Any]:
    """``(name, inferred_type_name, default, help)`` of the notebook's ``parameters`` cell (papermill's reading)."""
    from papermill.translators import papermill_translators
    from papermill.utils import nb_kernel_name, nb_language

    cell = next((c for c in nb.cells if "parameters" in _tags(c)), None)
    if cell is None:
        return []
    try:
        translator = papermill_translators.find_translator(nb_kernel_name(nb), nb_language(nb))
        return list(translator.inspect(cell))
    except (NotImplementedError, ValueError, KeyError):
        return []


def _literal(source: str) -> Any:
    """A default as written in the parameters cell, as a value (the text itself when not a literal)."""
    try:
        return ast.literal_eval(source)
    except (ValueError, SyntaxError):
        return source


def parameter_rows(nb: Any, resolved: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """One row per parameter: its value in this run, its default, whether the run set it, its meaning.

    Args:
        nb: the executed notebook (papermill records the parameters it injected in its metadata).
        resolved: the run's own resolved values (a parameter table the notebook displayed), if any.

    Returns:
        ``{"name", "value", "default", "set", "help"}`` per parameter; ``default`` is empty where
        the value is the default.
    """
    injected = dict(nb.metadata.get("papermill", {}).get("parameters", {}) or {})
    resolved = resolved or {}
    rows = []
    for param in _declared(nb):
        name, default = param.name, param.default
        value = resolved.get(name, injected.get(name, _literal(default)))
        same = value == _literal(default) or (isinstance(value, tuple) and list(value) == _literal(default))
        rows.append(
            {
                "name": name,
                "value": repr(value),
                "default": "" if same else default,
                "set": name in injected,
                "help": param.help or "",
            }
        )
    known = {r["name"] for r in rows}
    for name, value in resolved.items():  # resolved settings the parameters cell does not declare
        if name not in known:
            rows.append(
                {"name": name, "value": repr(value), "default": "", "set": name in injected, "help": ""}
            )
    return rows


def parameters_html(rows: list[dict[str, Any]]) -> str:
    """The collapsed parameter table: the run's values, set ones in bold, defaults where they differ."""
    body = []
    for r in rows:
        value = html.escape(r["value"])
        value = f"<b>{value}</b>" if r["set"] else value
        default = html.escape(r["default"])
        body.append(
            f"<tr><td><code>{html.escape(r['name'])}</code></td><td>{value}</td><td>{default}</td>"
            f"<td>{html.escape(r['help'])}</td></tr>"
        )
    changed = sum(r["set"] for r in rows)
    style = "text-align:left;vertical-align:top;padding:.15em .6em;border-bottom:1px solid #eee"
    table = (
        '<table style="border-collapse:collapse;font-size:small;text-align:left">'
        "<thead><tr><th>parameter</th><th>value (bold: set for this run)</th><th>default, where different</th>"
        "<th>meaning</th></tr>"
        f"</thead><tbody>{''.join(body)}</tbody></table>"
    ).replace("<td>", f'<td style="{style}">')
    return (
        '<details class="wb-parameters" style="margin:.4em 0 .8em 0"><summary style="cursor:pointer">'
        f"<b>Parameters</b>: {len(rows)}, {changed} set for this run</summary>{table}</details>"
    )


# --- log -------------------------------------------------------------------------------------------
def log_html(parts: list[tuple[str, str]]) -> str:
    """The collapsed log section: each part's text under the section it came from."""
    lines = sum(text.count("\n") + (not text.endswith("\n")) for _, text in parts)
    warnings = sum(len(WARNING_LINE.findall(text)) for _, text in parts)
    count = f"{lines} line{'s' if lines != 1 else ''}" + (
        f", {warnings} warning{'s' if warnings != 1 else ''}" if warnings else ""
    )
    blocks = []
    for section, text in parts:
        kept = text.splitlines()
        note = ""
        if len(kept) > MAX_LOG_LINES:
            note = (
                f"… {len(kept) - MAX_LOG_LINES} earlier lines left out (the executed notebook keeps them)\n"
            )
            kept = kept[-MAX_LOG_LINES:]
        blocks.append(
            f'<div style="font-size:small;font-weight:bold;margin-top:.6em">{html.escape(section)}</div>'
            '<pre style="white-space:pre-wrap;font-size:small;background:#f7f7f7;padding:.4em;margin:.2em 0">'
            f"{html.escape(note + chr(10).join(kept))}</pre>"
        )
    return (
        '<details class="wb-log" style="margin:1.5em 0 .5em 0"><summary style="cursor:pointer">'
        f"<b>Log</b>: {count} (logging, warnings, progress)</summary>{''.join(blocks)}</details>"
    )


def failure_html(section: str, ename: str, evalue: str) -> str:
    border, background = ANSWER_COLOURS["bad"]
    return (
        f'<div class="wb-answer wb-bad" style="border-left:6px solid {border};background:{background};'
        'padding:.6em 1em;margin:.4em 0 .8em 0">'
        f'<div class="wb-verdict" style="font-size:1.3em;font-weight:bold">Failed: {html.escape(ename)}</div>'
        f'<div class="wb-why">{html.escape(evalue)}</div>'
        f"<div>It stopped in “{html.escape(section)}”: the report shows what ran, and "
        '<a href="#papermill-error-cell">the error where it happened</a>.</div>'
        "</div>"
    )


class ReportLayout(Preprocessor):
    """Rearrange an executed step notebook for its HTML report (see the module docstring)."""

    def preprocess(self, nb: Any, resources: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        # A widget needs a kernel (or its JavaScript from a CDN, which reports do not reach) to show
        # anything: its saved state is dropped with its views, and its static stand-in stays.
        nb.metadata.pop("widgets", None)
        resolved: dict[str, Any] = {}
        answers, logs, body = [], [], []
        failure = None
        section = "start"
        cells = list(nb.cells)
        if cells and PAPERMILL_ERROR_TAG in _tags(cells[0]):
            cells.pop(0)  # papermill's "An exception was encountered" heading: the failure banner replaces it
        for cell in cells:
            tags = _tags(cell)
            if cell.cell_type == "markdown" and PAPERMILL_ERROR_TAG not in tags:
                section = _heading(cell) or section
            if any(t in tags for t in PARAMETER_TAGS):
                continue
            if cell.cell_type != "code":
                body.append(cell)
                continue
            kept, streams = [], []
            for output in cell.get("outputs", []):
                kind = output.get("output_type")
                data = output.get("data", {})
                if kind == "stream" and (output.get("name") == "stderr" or LOG_TAG in tags):
                    streams.append(_text(output.get("text")))
                    continue
                if PARAMETERS_KEY in output.get("metadata", {}):
                    resolved.update(output["metadata"][PARAMETERS_KEY])
                    continue
                if WIDGET_VIEW in data:
                    continue
                if kind == "error" and failure is None:
                    failure = failure_html(section, output.get("ename", ""), output.get("evalue", ""))
                kept.append(output)
            if streams:
                logs.append((section, "".join(streams)))
            cell.outputs = kept
            if ANSWER_TAG in tags:
                if kept:
                    answers.append(cell)
            elif kept:  # a cell with nothing left to show would leave an empty gap
                body.append(cell)
        top = [body.pop(0)] if body and body[0].cell_type == "markdown" else []
        if failure:
            top.append(_html_cell(failure, "failure"))
        top += answers
        rows = parameter_rows(nb, resolved)
        if rows:
            top.append(_html_cell(parameters_html(rows), "parameters"))
        tail = [_html_cell(log_html(logs), "log")] if logs else []
        nb.cells = top + body + tail
        return nb, resources


def report_exporter() -> Any:
    """nbconvert's HTML exporter (JupyterLab look) with code hidden and :class:`ReportLayout` applied."""
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(
        template_name="lab", exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True
    )
    exporter.register_preprocessor(ReportLayout(), enabled=True)
    return exporter
