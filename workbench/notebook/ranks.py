"""Each rank of a launch: run the job's notebook with papermill, show rank 0's output, stop with the launcher.

:mod:`workbench.training.launch` starts ``accelerate launch`` on ``python -m
workbench.notebook.rank_entry --rank-run JOB_JSON``; every rank then runs :func:`rank_run`. Rank 0
writes the executed notebook and its HTML report to the report folder and prints the notebook's
output on the terminal (without papermill's bookkeeping and libraries' deprecation warnings); other
ranks write ``output_dir/logs/<notebook>.rank<N>.ipynb``. A failing rank prints its error and exits
non-zero.

Killing a launch stops its work: torchrun starts every rank in a session of its own and
papermill starts each kernel in yet another, so killing the launch's process group (or the
launcher with SIGKILL) would otherwise leave the ranks training on as orphans. Each rank therefore
watches its launcher and, when it is gone or when the rank is terminated, kills its notebook kernel
and exits; training then resumes from the last complete checkpoint when started again.
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from workbench.training.launch import EVAL_NOTEBOOK, launch_notebook
from workbench.training.params import ParamsError, split_launch


def launched_run(notebook: str, report_dir: str | os.PathLike, code: int, seconds: float) -> Any:
    """The :class:`workbench.notebook.report.NotebookRun` of a launch: rank 0's notebook, and the first error."""
    from workbench.notebook.report import NotebookRun, notebook_status

    ipynb = Path(report_dir) / f"{notebook}.ipynb"
    error = None if code == 0 else f"accelerate launch exited with {code}"
    if code != 0 and ipynb.exists():
        error = notebook_status(ipynb)["error"] or error
    return NotebookRun(
        f"{notebook}.ipynb", str(ipynb), str(ipynb.with_suffix(".html")), code == 0, error, seconds
    )


def run_evaluation_notebook(
    params: dict[str, Any],
    out_dir: str | os.PathLike | None = None,
    log_output: bool = False,
    params_file: str | os.PathLike | None = None,
) -> Any:
    """``workbench evaluate``: check the parameters, then run notebook 05 with papermill.

    With ``num_processes`` > 1 or an ``accelerate_config`` among ``params`` (the launch settings of
    :class:`workbench.training.params.LaunchParams`, with ``env``), notebook 05 runs on every rank of an
    ``accelerate launch``, each rank evaluating its share of the prompts; rank 0 writes the report.

    Args:
        params: Notebook parameters (e.g. from :func:`workbench.notebook.report.load_notebook_params`),
            launch settings included.
        out_dir: Folder for the executed notebook and its HTML (default: ``output_dir``).
        log_output: Stream cell output to the terminal (always on for rank 0 of a launch).
        params_file: The file ``params`` came from (a relative ``accelerate_config`` resolves beside it).

    Returns:
        The :class:`workbench.notebook.report.NotebookRun` (rank 0's notebook for a launch).

    Raises:
        workbench.training.params.ParamsError: every parameter problem, before anything runs.
    """
    from workbench.evaluation.params import load_eval_params
    from workbench.notebook.report import run_notebook

    problems: list[str] = []
    launch, notebook_params = split_launch(params, problems, params_file)
    try:
        checked = load_eval_params(None, notebook_params)
    except ParamsError as exc:
        problems += exc.problems
    if problems:
        raise ParamsError(problems)
    report_dir = out_dir or checked.output_dir
    if launch.num_processes > 1 or launch.accelerate_config:
        started = time.perf_counter()
        code = launch_notebook(EVAL_NOTEBOOK, notebook_params, launch, checked.output_dir, report_dir)
        return launched_run(EVAL_NOTEBOOK, report_dir, code, time.perf_counter() - started)
    return run_notebook(EVAL_NOTEBOOK, report_dir, notebook_params, log_output=log_output)


def _kill_children() -> None:
    """Kill this rank's notebook kernel and its data-loader workers."""
    import psutil

    for child in psutil.Process().children(recursive=True):
        try:
            child.kill()
        except psutil.Error:
            pass


def _follow_launcher(rank: int, poll_s: float = 0.5, grace_s: float = 15.0) -> threading.Event:
    """Stop this rank with its launcher (see the module docstring).

    - The launcher is gone (killed): kill the kernel and exit at once; nobody reads a report.
    - SIGTERM (torchrun stops the ranks because another one failed, or the launch was
      interrupted) or SIGINT (Ctrl-C, which torchrun passes on): kill the kernel, so training stops
      now, but let papermill record the partial notebook and the report be written; exit anyway
      after ``grace_s`` (torchrun waits 30 s). A Ctrl-C is said once, by rank 0.

    Returns:
        An event that is set once the rank was terminated; its ``signum`` is the signal.
    """
    launcher = os.getppid()
    terminated = threading.Event()

    def watch() -> None:
        while True:
            time.sleep(poll_s)
            if os.getppid() != launcher:
                print(
                    f"rank {rank}: the launcher (pid {launcher}) is gone; stopping",
                    file=sys.stderr,
                    flush=True,
                )
                _kill_children()
                os._exit(1)

    def on_signal(signum: int, frame: Any) -> None:
        if terminated.is_set():
            return
        terminated.signum = signum  # type: ignore[attr-defined]
        terminated.set()
        if signum != signal.SIGINT:
            print(f"rank {rank}: terminated; stopping its notebook kernel", file=sys.stderr, flush=True)
        _kill_children()
        timer = threading.Timer(grace_s, os._exit, args=(128 + signum,))
        timer.daemon = True
        timer.start()

    threading.Thread(target=watch, name="follow-launcher", daemon=True).start()
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    return terminated


class _CellOutput(logging.Formatter):
    """Cell output as the kernel printed it (papermill logs each chunk with its newline)."""

    def format(self, record: logging.LogRecord) -> str:
        return super().format(record).rstrip("\n")


# What the terminal leaves out of the notebook's output (the executed notebook keeps all of it):
# papermill's bookkeeping (the launcher printed the command; "Output Notebook" says where the record
# goes), the plain-text stand-ins of displays (a table, a Markdown summary, a progress-bar widget's
# first frame) and the deprecation warnings of libraries.
_PAPERMILL_CHATTER = (
    "Executing Cell", "Ending Cell", "Input Notebook", "Working directory", "Executing notebook with kernel",
)  # fmt: skip
_DISPLAY_STAND_IN = re.compile(r"<IPython\.core\.display\.\w+ object>|.*\d+%\|.*\| *\S+/\S+ \[.*\]")
_LIBRARY_WARNING = re.compile(r"\S.*:\d+: (FutureWarning|DeprecationWarning): ")


class _ForTheTerminal(logging.Filter):
    """Drop the output a person watching the run does not need (see above)."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if text.startswith(_PAPERMILL_CHATTER) or _DISPLAY_STAND_IN.fullmatch(text.strip()):
            return False
        lines, kept, in_warning = text.split("\n"), [], False
        for line in lines:  # a stream chunk may hold a warning among log lines
            if _LIBRARY_WARNING.match(line):
                in_warning = True
            elif not (in_warning and line.startswith(" ")):  # the source line Python shows under it
                in_warning = False
                kept.append(line)
        if len(kept) < len(lines):
            if not "".join(kept).strip():
                return False
            record.msg, record.args = "\n".join(kept), None
        return True


def _show_cell_output() -> None:
    """Print the notebook's output (prints and logs) on this rank's terminal, as it runs."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(_CellOutput("%(message)s"))
    handler.addFilter(_ForTheTerminal())
    pm_log = logging.getLogger("papermill")
    pm_log.addHandler(handler)
    pm_log.setLevel(logging.INFO)
    pm_log.propagate = False


def _cells_ran(ipynb: Path) -> bool:
    """Whether any code cell of a (partly) executed notebook ran."""
    if not ipynb.is_file():
        return False
    try:
        cells = json.loads(ipynb.read_text()).get("cells", [])
    except ValueError:
        return True  # unreadable: do not guess that nothing ran
    return any(c.get("execution_count") for c in cells if c.get("cell_type") == "code")


def rank_run(job_json: str | os.PathLike) -> int:
    """One rank: execute the job's notebook with its parameters (see the module docstring)."""
    from workbench.notebook.report import export_html, run_notebook

    job = json.loads(Path(job_json).read_text())
    notebook, params = job["notebook"], job["params"]
    rank = int(os.environ.get("RANK", "0"))
    terminated = _follow_launcher(rank)
    if rank == 0:
        _show_cell_output()
    else:  # the terminal is rank 0's; this rank's failure is said below, its output is in its notebook
        logging.getLogger("papermill").addHandler(logging.NullHandler())
    # Rank 0 writes the report; every other rank runs in a folder of its own (papermill writes the
    # notebook under its own name as it goes) and its notebook is then named after the rank.
    target = Path(job["report_dir"]) if rank == 0 else Path(job["logs_dir"]) / f"rank{rank}"
    ipynb = target / f"{notebook}.ipynb"
    try:
        try:
            result = run_notebook(
                notebook, target, params, log_output=rank == 0, export=rank == 0, log_error=False
            )
        except Exception as exc:
            # A kernel that failed to start (many kernels starting at once on a loaded machine can
            # race for their local ports) ran nothing: start it once more. Anything else is final.
            if terminated.is_set() or _cells_ran(ipynb):
                raise
            print(f"rank {rank}: the notebook kernel did not start ({type(exc).__name__}: {exc}); starting it again",
                  file=sys.stderr, flush=True)  # fmt: skip
            result = run_notebook(
                notebook, target, params, log_output=rank == 0, export=rank == 0, log_error=False
            )
        ok, error = result.ok, result.error
    except Exception as exc:  # the kernel died (e.g. killed on SIGTERM): keep what the notebook shows
        ok, error = False, f"{type(exc).__name__}: {exc}"
        if rank == 0 and ipynb.exists():
            export_html(ipynb)
    if rank != 0 and ipynb.exists():
        named = target.parent / f"{notebook}.rank{rank}.ipynb"
        os.replace(ipynb, named)
        ipynb = named
        try:
            target.rmdir()
        except OSError:  # something else was written there: leave it
            pass
    if terminated.is_set() and getattr(terminated, "signum", None) == signal.SIGINT:
        return 130  # Ctrl-C: the launcher says where the run stands, once
    if not ok:
        # Rank 0 prints the whole error once; the other ranks (usually failing the same way) its
        # first line and where their notebook is.
        text = (error or "").strip()
        shown = text if rank == 0 or "\n" not in text else text.splitlines()[0] + " ..."
        print(f"rank {rank} failed: {shown} (notebook: {ipynb})", file=sys.stderr, flush=True)
        return 143 if terminated.is_set() else 1
    return 143 if terminated.is_set() else 0
