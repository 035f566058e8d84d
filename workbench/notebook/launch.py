"""``workbench train`` and ``workbench evaluate``: run a notebook on every rank under ``accelerate launch``.

The launcher checks the parameters (all problems at once), writes the job (notebook, parameters,
report folder) to ``output_dir/<notebook>.launch.json``, and starts ``accelerate launch`` on this
file. Every rank then executes the notebook (``04_train`` or ``05_evaluate``) through papermill; the
kernel inherits the rank's distributed environment (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR...),
so the Trainer inside notebook 04 joins the process group and notebook 05 takes its share of the
prompts on its own device. Rank 0 writes the executed notebook and its HTML report to the report
folder; other ranks write ``output_dir/logs/<notebook>.rank<N>.ipynb``. A failing rank prints its
error and exits non-zero, which ends the launch (torchrun stops the other ranks) with a non-zero exit.

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
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from workbench.training.params import LaunchParams, ParamsError, load_train_params, split_launch

NOTEBOOK = "04_train"
EVAL_NOTEBOOK = "05_evaluate"


def accelerate_command(launch: LaunchParams, job_json: Path) -> list[str]:
    """The ``accelerate launch`` command line for this run."""
    cmd = [sys.executable, "-m", "accelerate.commands.launch"]
    if launch.accelerate_config:
        cmd += ["--config_file", launch.accelerate_config]
    else:
        cmd += ["--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
        if launch.num_processes > 1:
            cmd += ["--multi_gpu", "--num_processes", str(launch.num_processes)]
            if launch.main_process_port is None:
                # One machine: a free port, so that two runs on one machine never collide.
                cmd += ["--main_process_port", "0"]
        else:
            cmd += ["--num_processes", "1"]
    if launch.main_process_port is not None:  # 0: accelerate picks a free port
        cmd += ["--main_process_port", str(launch.main_process_port)]
    cmd += [str(Path(__file__).resolve().with_name("rank_entry.py")), "--rank-run", str(job_json)]
    return cmd


def visible_gpus(env: dict[str, str] | None = None) -> int:
    """GPUs the ranks will see: ``CUDA_VISIBLE_DEVICES`` of the launch's ``env`` when it sets one."""
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    value = (env or {}).get("CUDA_VISIBLE_DEVICES")
    if value is None:
        return count
    ids = []
    for item in value.split(","):
        if not item.strip() or item.strip() == "-1":  # CUDA stops at the first invalid entry
            break
        ids.append(item.strip())
    return min(len(ids), count)


def processes_per_machine(launch: LaunchParams) -> int:
    """Ranks this machine starts: ``num_processes``, or the accelerate config's share per machine."""
    if not launch.accelerate_config:
        return launch.num_processes
    import yaml

    with open(launch.accelerate_config, encoding="utf-8") as fh:
        config = yaml.safe_load(fh) or {}
    if config.get("use_cpu") or config.get("distributed_type") == "MULTI_CPU":
        return 0  # CPU ranks need no GPU
    if config.get("distributed_type") == "NO":
        return 1
    return int(config.get("num_processes", 1)) // max(1, int(config.get("num_machines", 1)))


def check_gpu_fit(launch: LaunchParams, gpus: int) -> list[str]:
    """A problem when the launch would start more GPU ranks on this machine than it has GPUs.

    Without GPUs, ranks run on the CPU (gloo), as the demo does; with too few, a rank would ask
    for a device that does not exist and fail with "invalid device ordinal" after loading.
    """
    wanted = processes_per_machine(launch)
    if gpus == 0 or wanted <= gpus:
        return []
    where = f"accelerate_config {launch.accelerate_config}" if launch.accelerate_config else "num_processes"
    return [
        f"{where}: starts {wanted} ranks on this machine, but it has {gpus} GPU(s). Hint: use "
        f"num_processes: {gpus} and multiply gradient_accumulation_steps by {wanted / gpus:g} to keep the "
        'effective batch, or set env CUDA_VISIBLE_DEVICES: "" to run the ranks on the CPU.'
    ]


def launch_notebook(
    notebook: str,
    params: dict[str, Any],
    launch: LaunchParams,
    output_dir: str | os.PathLike,
    report_dir: str | os.PathLike | None = None,
    *,
    dry_run: bool = False,
) -> int:
    """Run ``notebook`` on every rank of an ``accelerate launch``; returns the launch's exit code.

    Args:
        notebook: ``04_train`` or ``05_evaluate`` (a notebook that splits its work by rank).
        params: The notebook's parameters, already checked.
        launch: Processes, accelerate config and environment.
        output_dir: The run's folder: the job file and other ranks' ``logs/`` go here.
        report_dir: Rank 0's executed notebook and HTML (default: ``output_dir``).
        dry_run: Print the command only; nothing is written.
    """
    if launch.accelerate_config and not os.path.isfile(launch.accelerate_config):
        raise FileNotFoundError(
            f"accelerate_config not found: {os.path.abspath(launch.accelerate_config)}. Hint: a relative path is "
            "looked up from the current folder, then beside the params file and in its parent folder."
        )
    problems = check_gpu_fit(launch, visible_gpus(launch.env))
    if problems:
        raise ParamsError(problems)
    out = Path(output_dir).absolute()
    report = Path(report_dir).absolute() if report_dir else out
    job_json = out / f"{notebook}.launch.json"
    cmd = accelerate_command(launch, job_json)
    print(("would launch: " if dry_run else "launching: ") + " ".join(cmd), flush=True)
    if dry_run:  # nothing is written
        return 0
    out.mkdir(parents=True, exist_ok=True)
    job = {"notebook": notebook, "params": params, "report_dir": str(report), "logs_dir": str(out / "logs")}
    job_json.write_text(json.dumps(job, indent=2, default=str))
    env = {**os.environ, **launch.env}
    env.setdefault("PYTHONUNBUFFERED", "1")
    proc = subprocess.run(cmd, env=env, check=False)
    if proc.returncode != 0:
        print(
            f"workbench: the launch of {notebook} failed with exit code {proc.returncode}; see the rank errors "
            f"above and {report / (notebook + '.html')} (rank 0) and {out / 'logs'} (other ranks)",
            file=sys.stderr,
        )
    return proc.returncode


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


def train_launch(
    params_file: str | os.PathLike | None = None,
    overrides: dict[str, Any] | None = None,
    *,
    dry_run: bool = False,
) -> int:
    """Launch training as configured; returns the launch's exit code.

    Raises:
        workbench.training.params.ParamsError: every parameter problem, before anything starts.
    """
    params, launch = load_train_params(params_file, overrides)
    code = launch_notebook(NOTEBOOK, params.to_dict(), launch, params.output_dir, dry_run=dry_run)
    if code == 0 and not dry_run and not params.validate_data_only:
        print(next_steps(params), flush=True)
    return code


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
    from workbench.evaluation.evaluate import load_eval_params
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


def _voice_clip(data: str | None) -> tuple[str, str]:
    """A target clip of the trained voice and its transcript, for the "listen" command to paste
    (the first trainable sample of ``data``); ``REF.wav`` and a stand-in text when there is none."""
    from workbench.data.contract import check_sample
    from workbench.data.sample import read_samples

    try:
        for n, sample in enumerate(read_samples(data or "")):
            targets = sample.target_indices()
            text = sample.text_for_audio(targets[-1]) if targets else None
            if text and check_sample(sample).trainable:
                return sample.messages[targets[-1]].audio_url or "REF.wav", text
            if n >= 100:
                break
    except (OSError, ValueError):
        pass
    return "REF.wav", "its transcript"


def next_steps(params: Any) -> str:
    """What to run after a training run: listen, compare every checkpoint, export (exact commands)."""
    out = Path(params.output_dir).absolute()
    eval_params = Path(__file__).resolve().parents[2] / "params" / "evaluate_demo.yaml"
    evaluate = (
        f"workbench evaluate --params {eval_params} -p base_model {params.model} "
        f'-p adapters "[{out}]" -p eval_data {params.val_data or params.train_data} -p output_dir {out / "05_evaluate"}'
    )
    reference, reference_text = _voice_clip(params.val_data or params.train_data)
    return "\n".join(
        [
            f"report: {out / (NOTEBOOK + '.html')}",
            "next:",
            f"  listen:  workbench generate --adapter {out / 'adapter'} --reference {shlex.quote(reference)} "
            f'--reference-text {shlex.quote(reference_text)} --text "Hello." -o hello.wav',
            f"  compare every checkpoint with the base model:  {evaluate}",
            f"  export merged weights:  workbench export {out / 'adapter'} -o {out / 'exported'}",
        ]
    )


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
      interrupted): kill the kernel, so training stops now, but let papermill record the partial
      notebook and the report be written; exit anyway after ``grace_s`` (torchrun waits 30 s).

    Returns:
        An event that is set once the rank was terminated.
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

    def on_sigterm(signum: int, frame: Any) -> None:
        if terminated.is_set():
            return
        terminated.set()
        print(f"rank {rank}: terminated; stopping its notebook kernel", file=sys.stderr, flush=True)
        _kill_children()
        timer = threading.Timer(grace_s, os._exit, args=(128 + signum,))
        timer.daemon = True
        timer.start()

    threading.Thread(target=watch, name="follow-launcher", daemon=True).start()
    signal.signal(signal.SIGTERM, on_sigterm)
    return terminated


class _CellOutput(logging.Formatter):
    """Cell output as the kernel printed it (papermill logs each chunk with its newline)."""

    def format(self, record: logging.LogRecord) -> str:
        return super().format(record).rstrip("\n")


def _show_cell_output() -> None:
    """Print the notebook's output (prints and logs) on this rank's terminal, as it runs."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(_CellOutput("%(message)s"))
    handler.addFilter(lambda record: not str(record.msg).startswith(("Executing Cell", "Ending Cell")))
    pm_log = logging.getLogger("papermill")
    pm_log.addHandler(handler)
    pm_log.setLevel(logging.INFO)
    pm_log.propagate = False


def rank_run(job_json: str | os.PathLike) -> int:
    """One rank: execute the job's notebook with its parameters (see the module docstring)."""
    from workbench.notebook.report import export_html, run_notebook

    job = json.loads(Path(job_json).read_text())
    notebook, params = job["notebook"], job["params"]
    rank = int(os.environ.get("RANK", "0"))
    terminated = _follow_launcher(rank)
    if rank == 0:
        _show_cell_output()
    target = Path(job["report_dir"] if rank == 0 else job["logs_dir"])
    ipynb = target / f"{notebook}.ipynb"
    try:
        result = run_notebook(
            notebook, target, params, log_output=rank == 0, export=rank == 0, log_error=False
        )
        ok, error = result.ok, result.error
    except Exception as exc:  # the kernel died (e.g. killed on SIGTERM): keep what the notebook shows
        ok, error = False, f"{type(exc).__name__}: {exc}"
        if rank == 0 and ipynb.exists():
            export_html(ipynb)
    if rank != 0 and ipynb.exists():
        os.replace(ipynb, target / f"{notebook}.rank{rank}.ipynb")
        ipynb = target / f"{notebook}.rank{rank}.ipynb"
    if not ok:
        # Rank 0 prints the whole error once; the other ranks (usually failing the same way) its
        # first line and where their notebook is.
        text = (error or "").strip()
        shown = text if rank == 0 or "\n" not in text else text.splitlines()[0] + " ..."
        print(f"rank {rank} failed: {shown} (notebook: {ipynb})", file=sys.stderr, flush=True)
        return 143 if terminated.is_set() else 1
    return 143 if terminated.is_set() else 0
