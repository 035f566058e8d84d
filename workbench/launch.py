"""``workbench train``: run notebook 04 on every rank under ``accelerate launch``.

The launcher checks the parameters (all problems at once), writes them resolved to
``output_dir/params.launch.json``, and starts ``accelerate launch`` on this file. Every rank then
executes ``04_train.ipynb`` through papermill; the kernel inherits the rank's distributed
environment (RANK, WORLD_SIZE, MASTER_ADDR...), so the Trainer inside the notebook joins the
process group. Rank 0 writes ``output_dir/04_train.ipynb`` and its HTML report; other ranks write
``output_dir/logs/04_train.rank<N>.ipynb``. A failing rank prints its error and exits non-zero,
which ends the launch (torchrun stops the other ranks) with a non-zero exit.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from .params import LaunchParams, TrainParams, load_train_params

NOTEBOOK = "04_train"


def accelerate_command(launch: LaunchParams, params_json: Path) -> list[str]:
    """The ``accelerate launch`` command line for this run."""
    cmd = [sys.executable, "-m", "accelerate.commands.launch"]
    if launch.accelerate_config:
        if not os.path.isfile(launch.accelerate_config):
            raise FileNotFoundError(f"accelerate_config not found: {os.path.abspath(launch.accelerate_config)}")
        cmd += ["--config_file", launch.accelerate_config]
    else:
        cmd += ["--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
        if launch.num_processes > 1:
            cmd += ["--multi_gpu", "--num_processes", str(launch.num_processes)]
        else:
            cmd += ["--num_processes", "1"]
    if launch.main_process_port:
        cmd += ["--main_process_port", str(launch.main_process_port)]
    cmd += [str(Path(__file__).resolve().with_name("rank_entry.py")), "--rank-run", str(params_json)]
    return cmd


def train_launch(
    params_file: str | os.PathLike | None = None,
    overrides: dict[str, Any] | None = None,
    *,
    dry_run: bool = False,
) -> int:
    """Launch training as configured; returns the launch's exit code.

    Raises:
        workbench.params.ParamsError: every parameter problem, before anything starts.
    """
    params, launch = load_train_params(params_file, overrides)
    out = Path(params.output_dir).absolute()
    out.mkdir(parents=True, exist_ok=True)
    params_json = out / "params.launch.json"
    params_json.write_text(json.dumps(params.to_dict(), indent=2))
    cmd = accelerate_command(launch, params_json)
    env = {**os.environ, **launch.env}
    env.setdefault("PYTHONUNBUFFERED", "1")
    print("launching: " + " ".join(cmd), flush=True)
    if dry_run:
        return 0
    proc = subprocess.run(cmd, env=env, check=False)
    if proc.returncode != 0:
        print(f"workbench train: the launch failed with exit code {proc.returncode}; see the rank errors above and "
              f"{out / (NOTEBOOK + '.html')} (rank 0) and {out / 'logs'} (other ranks)", file=sys.stderr)
    return proc.returncode


def rank_run(params_json: str | os.PathLike) -> int:
    """One rank: execute notebook 04 with the run's parameters (see the module docstring)."""
    from .report import run_notebook

    params = TrainParams(**json.loads(Path(params_json).read_text()))
    rank = int(os.environ.get("RANK", "0"))
    out = Path(params.output_dir).absolute()
    target = out if rank == 0 else out / "logs"
    result = run_notebook(NOTEBOOK, target, params.to_dict(), log_output=rank == 0, export=rank == 0)
    if rank != 0 and Path(result.ipynb).exists():
        os.replace(result.ipynb, target / f"{NOTEBOOK}.rank{rank}.ipynb")
    if not result.ok:
        print(f"rank {rank} failed: {result.error}", file=sys.stderr, flush=True)
        return 1
    return 0

