"""Eight ranks: ``workbench train`` of the tiny model with ``num_processes: 8`` on this machine (CPU, gloo).

The schedule the launcher prints (:func:`workbench.training.preparation.training_schedule`) must be the one
the Trainer runs: effective batch = batch_size x accumulation x 8, steps per epoch, total steps.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from workbench.demo import make_tiny_model
from workbench.training.params import load_train_params
from workbench.training.preparation import training_schedule

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
LAUNCH_TIMEOUT_S = 300


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("tiny") / "model", seed=0)


def test_eight_ranks_train_on_the_schedule_they_print(
    demo_run: Path, tiny_dir: Path, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    out = tmp_path / "train"
    train = demo_run / "03_validate" / "train.jsonl"
    # 1 x 2 accumulation x 8 ranks: each rank gets ceil(samples / 8) batches an epoch, the last
    # accumulation window of an epoch is short, and epochs (not max_steps) set the length.
    overrides = {
        "train_data": str(train),
        "val_data": str(demo_run / "03_validate" / "val.jsonl"),
        "model": str(tiny_dir),
        "output_dir": str(out),
        "codes_cache_dir": str(tmp_path_factory.getbasetemp() / "codes-cache"),  # shared: same codec
        "num_processes": 8,
        "max_steps": -1,
        "num_epochs": 2,
        "batch_size": 1,
        "gradient_accumulation_steps": 2,
        "logging_steps": 1,
        "save_steps": 100,
        "eval_steps": 100,
        "merge": False,
    }
    cmd = [sys.executable, "-m", "workbench.cli", "train", "--params", str(ROOT / "params" / "demo.yaml")]
    for name, value in overrides.items():
        cmd += ["-p", name, str(value)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run(
        cmd, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        timeout=LAUNCH_TIMEOUT_S,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-6000:]
    assert "--num_processes 8" in proc.stdout

    samples = sum(1 for line in train.read_text().splitlines() if line.strip())
    params, _ = load_train_params(ROOT / "params" / "demo.yaml", overrides)
    schedule = training_schedule(params, samples, world_size=8)
    per_rank_batches = -(-samples // 8)
    assert schedule["effective_batch"] == 1 * 2 * 8
    assert schedule["steps_per_epoch"] == -(-per_rank_batches // 2)
    assert schedule["total_steps"] == 2 * schedule["steps_per_epoch"]
    printed = [line for line in proc.stdout.splitlines() if line.startswith("schedule: ")]
    assert printed == [schedule["text"]], printed  # once, by rank 0
    assert "effective batch 16 (1 x 2 accumulation x 8 ranks)" in printed[0]

    # What the Trainer did: the steps it took, and the epoch it counted at each step.
    record = json.loads((out / "run.json").read_text())
    assert record["world_size"] == 8
    assert record["result"]["global_step"] == schedule["total_steps"]
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]
    epoch_at = {r["step"]: r["epoch"] for r in rows if "loss" in r}
    assert sorted(epoch_at) == list(range(1, schedule["total_steps"] + 1)), rows
    assert epoch_at[schedule["steps_per_epoch"]] == pytest.approx(1.0)
    assert epoch_at[schedule["total_steps"]] == pytest.approx(2.0)
    assert (out / "adapter" / "adapter_model.safetensors").is_file()
    # Every other rank keeps its own notebook (none overwrites another's), each a finished run.
    logs = sorted(p.name for p in (out / "logs").iterdir())
    assert logs == [f"04_train.rank{r}.ipynb" for r in range(1, 8)], logs
    for r in range(1, 8):
        notebook = json.loads((out / "logs" / f"04_train.rank{r}.ipynb").read_text())
        assert not any(
            o.get("output_type") == "error" for c in notebook["cells"] for o in c.get("outputs", [])
        )
