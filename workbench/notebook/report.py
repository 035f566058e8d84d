"""Run notebooks headless (papermill), export them as stand-alone HTML, and index a run folder.

The executed notebook is the run's immutable record: parameters, logs, results, errors. A failing
cell fails the run, but the partial notebook and its HTML are still written, so the report shows
where and why it stopped.
"""

from __future__ import annotations

import html
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workbench.files import write_text
from workbench.notebook.display import SUMMARY_KEY
from workbench.training.param_schema import as_flag
from workbench.training.params import load_params, notebook_sections, section_params

log = logging.getLogger(__name__)

NOTEBOOK_DIR = Path(__file__).resolve().parents[2] / "notebooks"


class NotebookParameterError(ValueError):
    """Parameters that the notebook does not declare (all named at once)."""


@dataclass
class NotebookRun:
    notebook: str
    ipynb: str
    html: str
    ok: bool
    error: str | None = None
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


def find_notebook(name: str | os.PathLike) -> Path:
    """A notebook path, or a short name (``01``, ``01_inspect_data``) under ``notebooks/``.

    Raises:
        FileNotFoundError: naming what was looked for and the notebooks available.
    """
    path = Path(name)
    if path.is_file():
        return path.absolute()
    stem = path.name[:-6] if path.name.endswith(".ipynb") else path.name
    matches = sorted(NOTEBOOK_DIR.glob(f"{stem}*.ipynb"))
    if len(matches) == 1:
        return matches[0]
    available = ", ".join(p.name for p in sorted(NOTEBOOK_DIR.glob("*.ipynb"))) or "none"
    raise FileNotFoundError(f"notebook {name!r} not found (looked in {NOTEBOOK_DIR}); available: {available}")


def notebook_parameters(notebook: str | os.PathLike) -> dict[str, Any]:
    """The names and default values declared in the notebook's ``parameters`` cell."""
    import papermill

    return {name: info["default"] for name, info in papermill.inspect_notebook(str(notebook)).items()}


def load_notebook_params(
    notebook: str | os.PathLike,
    params_file: str | os.PathLike | None,
    overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Parameters for one notebook from a YAML file, then ``overrides``.

    A file may hold several notebooks' parameters in sections named after them
    (``02_convert_and_listen: {...}``); its top-level keys then apply to every notebook that
    declares them. Without sections, every key must be a parameter of the notebook.
    """
    raw = load_params(params_file)
    # Shared top-level keys apply to the notebooks that declare them; section keys must exist.
    declared = notebook_parameters(notebook) if notebook_sections(raw) and Path(notebook).is_file() else None
    params = section_params(raw, Path(notebook).stem, declared)
    params.update(overrides or {})
    return params


def check_parameters(notebook: Path, params: dict[str, Any]) -> None:
    declared = notebook_parameters(notebook)
    unknown = sorted(set(params) - set(declared))
    if unknown:
        raise NotebookParameterError(
            f"{notebook.name} has no parameter(s) {', '.join(unknown)}; it declares: {', '.join(sorted(declared))}"
        )


def export_html(ipynb: str | os.PathLike) -> Path:
    """Write ``X.html`` next to ``X.ipynb``: plots, tables and audio are embedded, so it stands alone.

    The report reads answer first: the step's result, then one collapsed parameter table, then the
    details, then one collapsed log; code is hidden (see :mod:`workbench.notebook.report_layout`).
    The executed notebook is left as it ran.
    """
    import nbformat

    from workbench.notebook.report_layout import report_exporter

    ipynb = Path(ipynb)
    nb = nbformat.read(str(ipynb), as_version=4)
    body, _ = report_exporter().from_notebook_node(nb, resources={"metadata": {"name": ipynb.stem}})
    return write_text(ipynb.with_suffix(".html"), body)


HEADLESS_ENV = {"TQDM_DISABLE": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1"}


def run_notebook(
    notebook: str | os.PathLike,
    out_dir: str | os.PathLike,
    parameters: dict[str, Any] | None = None,
    *,
    kernel_name: str | None = None,
    cwd: str | os.PathLike | None = None,
    log_output: bool = False,
    export: bool = True,
    log_error: bool = True,
) -> NotebookRun:
    """Execute ``notebook`` with papermill into ``out_dir`` and export its HTML.

    A failing cell is logged (unless ``log_error`` is false: the caller reports it) and returned
    as ``NotebookRun.error``.

    Returns:
        A :class:`NotebookRun`; ``ok`` is false when a cell failed (both files are still written).

    Raises:
        NotebookParameterError: a parameter the notebook does not declare.
        FileNotFoundError: the notebook cannot be found.
    """
    import papermill
    from papermill.exceptions import PapermillExecutionError

    source = find_notebook(notebook)
    params = dict(parameters or {})
    check_parameters(source, params)
    flags = {name for name, default in notebook_parameters(source).items() if default in ("True", "False")}
    params = {k: as_flag(v) if k in flags else v for k, v in params.items()}  # -p exclude_errors no
    out = Path(out_dir).absolute()
    out.mkdir(parents=True, exist_ok=True)
    ipynb = out / source.name
    started = time.perf_counter()
    error = None
    # Progress-bar widgets render as blank boxes in the HTML report: headless kernels get none
    # (TQDM_DISABLE for our bars; Hugging Face's switch for the libraries' loading and saving bars,
    # since tqdm's notebook bars ignore TQDM_DISABLE). The kernel inherits this process's
    # environment; the settings are undone afterwards.
    previous = {name: os.environ.get(name) for name in HEADLESS_ENV}
    for name, value in HEADLESS_ENV.items():
        os.environ.setdefault(name, value)
    try:
        papermill.execute_notebook(
            str(source),
            str(ipynb),
            parameters=params,
            kernel_name=kernel_name,
            cwd=str(cwd or os.getcwd()),
            log_output=log_output,
            progress_bar=False,
            # The kernel's own start-up warnings (e.g. "running over TCP without encryption", about
            # its local sockets) go to the terminal of every run and rank, not into the notebook.
            extra_arguments=["--IPKernelApp.log_level=ERROR"],
        )
    except PapermillExecutionError as exc:
        error = f"cell {exc.exec_count}: {exc.ename}: {exc.evalue}"
        if log_error:
            log.error("%s failed at %s", source.name, error)
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
    html_path = export_html(ipynb) if export and ipynb.exists() else out / f"{source.stem}.html"
    return NotebookRun(
        source.name, str(ipynb), str(html_path), error is None, error, time.perf_counter() - started
    )


# --- run index -----------------------------------------------------------------------------
def notebook_status(ipynb: str | os.PathLike) -> dict[str, Any]:
    """Whether an executed notebook failed, and the step summary it displayed."""
    nb = json.loads(Path(ipynb).read_text(encoding="utf-8"))
    summary, error = None, None
    for cell in nb.get("cells", []):
        for output in cell.get("outputs", []) or []:
            if output.get("output_type") == "error":
                error = f"{output.get('ename')}: {output.get('evalue')}"
            text = (output.get("metadata") or {}).get(SUMMARY_KEY)
            if text:
                summary = text
    return {"ok": error is None, "summary": summary, "error": error}


def write_index(run_dir: str | os.PathLike, title: str | None = None) -> Path:
    """``RUN_DIR/index.html``: every step report in order, with its status and one-line result."""
    run = Path(run_dir).absolute()
    if not run.is_dir():
        raise FileNotFoundError(f"run folder not found: {run}")
    rows = []
    found = list(run.glob("[0-9][0-9]_*.ipynb")) + list(run.glob("*/[0-9][0-9]_*.ipynb"))
    for ipynb in sorted(found, key=lambda p: p.name):
        status = notebook_status(ipynb)
        html_file = ipynb.with_suffix(".html")
        href = html_file.relative_to(run).as_posix()
        link = (
            f'<a href="{html.escape(href)}">{html.escape(ipynb.stem)}</a>'
            if html_file.exists()
            else html.escape(ipynb.stem)
        )
        state = "ok" if status["ok"] else "failed"
        line = status["summary"] or status["error"] or ""
        rows.append(f'<tr><td>{link}</td><td class="{state}">{state}</td><td>{html.escape(line)}</td></tr>')
    title = title or f"Workbench run: {run.name}"
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;margin:2em}}td,th{{padding:.3em .8em;border-bottom:1px solid #ddd;text-align:left}}
.ok{{color:#2a7}}.failed{{color:#c33;font-weight:bold}}</style></head>
<body><h1>{html.escape(title)}</h1>
<p>Generated {time.strftime("%Y-%m-%d %H:%M:%S")} from {html.escape(str(run))}</p>
<table><thead><tr><th>step</th><th>status</th><th>result</th></tr></thead><tbody>
{"".join(rows) or '<tr><td colspan="3">no executed notebooks in this folder</td></tr>'}
</tbody></table></body></html>
"""
    return write_text(run / "index.html", page)
