"""The training launcher: ``workbench train`` (and a launched ``workbench evaluate``) under ``accelerate launch``.

The launcher checks the parameters (all problems at once), writes the job (notebook, parameters,
report folder) to ``output_dir/<notebook>.launch.json``, and starts ``accelerate launch`` on this
file with the rank entry module (:data:`RANK_ENTRY`, the notebook layer's, named by its string so
that this stage does not import the layer above it). Every rank then executes the notebook
(``04_train`` or ``05_evaluate``) through papermill; the kernel inherits the rank's distributed
environment (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR...), so the Trainer inside notebook 04 joins
the process group and notebook 05 takes its share of the prompts on its own device. A failing rank
ends the launch (torchrun stops the other ranks) with a non-zero exit.

Ctrl-C stops every rank and says where the run stands: the same command resumes from the last
complete checkpoint. Inside a SLURM allocation of several nodes, the machine settings come from
SLURM. Importing this module loads no torch (a launched run needs its memory for the model).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from workbench.files import write_json
from workbench.training.params import LaunchParams, ParamsError, load_params, load_train_params

NOTEBOOK = "04_train"
EVAL_NOTEBOOK = "05_evaluate"
# The module every rank runs (``python -m``): it executes the job's notebook (workbench.notebook.ranks).
RANK_ENTRY = "workbench.notebook.rank_entry"


def accelerate_command(launch: LaunchParams, job_json: Path) -> list[str]:
    """The ``accelerate launch`` command line for this run (a single local process: the rank itself).

    The machine settings given in ``launch`` (``num_machines``, ``machine_rank``, ``main_process_ip``,
    ``main_process_port``, ``num_processes`` > 1) become flags, which accelerate lets override the
    values of an accelerate config file.
    """
    total, machines = launch.layout()
    arguments = ["--rank-run", str(job_json)]
    if not launch.accelerate_config and total == 1 and machines == 1 and not launch.main_process_ip:
        # One process needs no launcher: accelerate would only start it, and hold ~0.7 GB importing
        # torch (memory a full-size run on a small machine needs), and print a traceback on failure.
        return [sys.executable, "-m", RANK_ENTRY, *arguments]
    cmd = [sys.executable, "-m", "accelerate.commands.launch"]
    if launch.accelerate_config:
        cmd += ["--config_file", launch.accelerate_config]
        if launch.num_processes > 1 or launch.num_machines is not None:
            cmd += ["--num_machines", str(machines), "--num_processes", str(total)]
    else:
        cmd += ["--num_machines", str(machines), "--mixed_precision", "no", "--dynamo_backend", "no"]
        if total > 1:
            cmd += ["--multi_gpu", "--num_processes", str(total)]
            if launch.main_process_port is None and machines == 1:
                # One machine: a free port, so that two runs on one machine never collide.
                cmd += ["--main_process_port", "0"]
        else:
            cmd += ["--num_processes", "1"]
    if launch.machine_rank is not None:
        cmd += ["--machine_rank", str(launch.machine_rank)]
    if launch.main_process_ip:
        cmd += ["--main_process_ip", launch.main_process_ip]
    if launch.main_process_port is not None:  # 0: accelerate picks a free port
        cmd += ["--main_process_port", str(launch.main_process_port)]
    return [*cmd, "--module", RANK_ENTRY, *arguments]


def visible_gpus(env: dict[str, str] | None = None) -> int:
    """GPUs the ranks will see: ``CUDA_VISIBLE_DEVICES`` of the launch's ``env`` when it sets one.

    On a machine without the NVIDIA driver the answer is 0 without importing torch: the launcher
    then stays a small process (importing torch costs ~0.7 GB of memory, which a full-size run on a
    small machine needs for the model).
    """
    if not os.path.exists("/proc/driver/nvidia/version") and not os.path.exists("/dev/nvidiactl"):
        return 0
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
    """Ranks this machine starts: the ranks over all machines (``num_processes`` or the accelerate
    config's) divided by the machines (``num_machines`` or the config's)."""
    config = launch.accelerate_config_values()
    if config.get("use_cpu") or config.get("distributed_type") == "MULTI_CPU":
        return 0  # CPU ranks need no GPU
    if config.get("distributed_type") == "NO":
        return 1
    total, machines = launch.layout()
    return total // max(1, machines)


def check_gpu_fit(launch: LaunchParams, gpus: int) -> list[str]:
    """A problem when the launch would start more GPU ranks on this machine than it has GPUs.

    Without GPUs, ranks run on the CPU (gloo), as the demo does; with too few, a rank would ask
    for a device that does not exist and fail with "invalid device ordinal" after loading.
    """
    wanted = processes_per_machine(launch)
    if gpus == 0 or wanted <= gpus:
        return []
    total, machines = launch.layout()
    where = f"accelerate_config {launch.accelerate_config}" if launch.accelerate_config else "num_processes"
    if machines > 1:
        where = f"num_processes {total} over num_machines {machines}"
    return [
        f"{where}: starts {wanted} ranks on this machine, but it has {gpus} GPU(s). Hint: use "
        f"num_processes: {gpus * machines} and multiply gradient_accumulation_steps by {wanted / gpus:g} to "
        'keep the effective batch, or set env CUDA_VISIBLE_DEVICES: "" to run the ranks on the CPU.'
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
    write_json(job_json, job)  # whole or not at all: ranks of other nodes may read it from a shared folder
    env = {**os.environ, **launch.env}
    env.setdefault("PYTHONUNBUFFERED", "1")
    proc = subprocess.Popen(cmd, env=env)
    try:
        code = proc.wait()
    except KeyboardInterrupt:
        _stop_interrupted(proc, notebook, out, report)
        raise
    if code != 0:
        print(
            f"workbench: the launch of {notebook} failed with exit code {code}; see the rank errors "
            f"above and {report / (notebook + '.html')} (rank 0) and {out / 'logs'} (other ranks)",
            file=sys.stderr,
        )
    return code


def _stop_interrupted(
    proc: subprocess.Popen, notebook: str, out: Path, report: Path, wait_s: float = 45.0
) -> None:
    """Ctrl-C: the terminal sent SIGINT to the launch too; torchrun passes it to the ranks, which stop
    their kernels and write their partial notebooks. Wait for that (a second Ctrl-C, or ``wait_s``,
    kills the launch; its ranks follow it), then say where the run stands."""
    print(
        "workbench: interrupted; stopping every rank (Ctrl-C again to stop at once)",
        file=sys.stderr,
        flush=True,
    )
    try:
        proc.wait(timeout=wait_s)
    except (KeyboardInterrupt, subprocess.TimeoutExpired):
        proc.kill()
        proc.wait()
    where = f"partial report: {report / (notebook + '.ipynb')}"
    if notebook == NOTEBOOK:
        from workbench.training.checkpoints import latest_complete_checkpoint

        last = latest_complete_checkpoint(out)
        where += (
            f"; the same command resumes from {Path(last).name} (resume_from_checkpoint: auto)"
            if last
            else "; no complete checkpoint yet: the same command starts over"
        )
    print(f"workbench: {notebook} stopped; {where}", file=sys.stderr, flush=True)


def train_launch(
    params_file: str | os.PathLike | None = None,
    overrides: dict[str, Any] | None = None,
    *,
    dry_run: bool = False,
) -> int:
    """Launch training as configured; returns the launch's exit code.

    Inside a SLURM allocation of several nodes, the machine settings the parameters leave out are
    read from SLURM (:func:`launch_from_slurm`); every node runs the same command.

    Raises:
        workbench.training.params.ParamsError: every parameter problem, before anything starts.
    """
    overrides = {**launch_from_slurm(params_file, overrides), **(overrides or {})}
    params, launch = load_train_params(params_file, overrides)
    code = launch_notebook(NOTEBOOK, params.to_dict(), launch, params.output_dir, dry_run=dry_run)
    if code == 0 and not dry_run and not params.validate_data_only and not launch.machine_rank:
        print(next_steps(params), flush=True)  # once: on the main machine
    return code


def first_slurm_host(nodelist: str) -> str:
    """The first host of a SLURM nodelist (``gpu[01-04,07],cpu3`` -> ``gpu01``): ``scontrol show
    hostnames`` where SLURM's tools are installed, else read here (a container may lack them)."""
    if shutil.which("scontrol"):
        proc = subprocess.run(
            ["scontrol", "show", "hostnames", nodelist], capture_output=True, text=True, check=False
        )
        if proc.returncode == 0 and proc.stdout.split():
            return proc.stdout.split()[0]
    first = re.split(r",(?![^\[]*\])", nodelist.strip())[0]  # commas outside brackets part hosts
    # In each bracket, the first range's start is the first host: "n[08-10,3]" -> "n08".
    return re.sub(r"\[([^],-]*)[^]]*\]", r"\1", first)


def slurm_launch_values(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The machine settings of this SLURM job step: ``num_machines`` (its nodes), ``machine_rank``
    (this node's index), ``main_process_ip`` (its first node) and ``main_process_port`` (from the job
    id, so that two jobs sharing a node use two ports); ``{}`` outside SLURM or on one node.

    ``workbench train`` starts the ranks of its node, so SLURM runs one task per node
    (``srun --ntasks-per-node=1``, as in ``params/slurm_h200x8.sbatch``).

    Raises:
        workbench.training.params.ParamsError: several tasks per node.
    """
    env = os.environ if environ is None else environ

    def first(*names: str) -> str | None:
        return next((env[n] for n in names if env.get(n, "").strip()), None)

    nodes = first("SLURM_STEP_NUM_NODES", "SLURM_JOB_NUM_NODES", "SLURM_NNODES")
    nodelist = first("SLURM_STEP_NODELIST", "SLURM_JOB_NODELIST", "SLURM_NODELIST")
    rank = first("SLURM_NODEID", "SLURM_PROCID")
    if not env.get("SLURM_JOB_ID") or nodes is None or int(nodes) < 2 or not nodelist or rank is None:
        return {}
    tasks = first("SLURM_STEP_NUM_TASKS", "SLURM_NTASKS")
    if tasks is not None and int(tasks) != int(nodes):
        raise ParamsError(
            [
                f"SLURM runs {tasks} tasks on {nodes} nodes; workbench train starts the ranks of its node itself. "
                "Hint: one task per node: srun --ntasks-per-node=1 workbench train ... (params/slurm_h200x8.sbatch)"
            ]
        )
    return {
        "num_machines": int(nodes),
        "machine_rank": int(rank),
        "main_process_ip": first_slurm_host(nodelist),
        "main_process_port": 29500 + int(env["SLURM_JOB_ID"]) % 1000,
    }


def launch_from_slurm(
    params_file: str | os.PathLike | None,
    overrides: dict[str, Any] | None,
    environ: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The SLURM machine settings (:func:`slurm_launch_values`) that the params file and ``overrides``
    do not give (theirs win); prints one line saying what was taken."""
    found = slurm_launch_values(environ)
    if not found:
        return {}
    try:
        given = load_params(params_file, overrides)
    except (OSError, ValueError, yaml.YAMLError):  # load_train_params reports the file's problem
        given = dict(overrides or {})
    taken = {k: v for k, v in found.items() if k not in given}
    if taken:
        env = os.environ if environ is None else environ
        print(
            f"workbench: from SLURM job {env.get('SLURM_JOB_ID')}: "
            + ", ".join(f"{k} {v}" for k, v in taken.items()),
            flush=True,
        )
    return taken


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
