"""The start of a run on 2 CPU ranks under ``accelerate launch`` (real gloo process group, no mocks).

``prepare`` creates the process group with ``ddp_timeout``, and the ranks probe the audio files
together: each reads its share, then validates every file without reading one again.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from workbench.data.sample import Audio, Message, Sample

pytestmark = pytest.mark.slow  # a real 2-rank launch (about a minute on 2 cores)

SR = 24_000
RANK_SCRIPT = textwrap.dedent(
    """
    import json, sys

    import torch
    from torch.distributed import distributed_c10d

    from workbench.data.probe import default_probe_cache
    from workbench.training.params import TrainParams
    from workbench.training.preparation import prepare, process_state
    from workbench.training.trainer import training_arguments

    train, out, timeout = sys.argv[1], sys.argv[2], int(sys.argv[3])
    params = TrainParams(train_data=train, model="unused", output_dir=out, ddp_timeout=timeout,
                         validate_data_only=True)
    prepared = prepare(params)
    state = process_state()
    group = distributed_c10d._get_default_group()
    seconds = group._get_backend(torch.device("cpu")).options._timeout.total_seconds()
    result = {
        "rank": state.process_index, "ranks": state.num_processes, "timeout": seconds,
        "trainer_timeout": training_arguments(params, has_eval=False).ddp_timeout,
        "reads": default_probe_cache().reads, "ok": prepared.report.ok, "samples": prepared.report.samples,
    }
    print("RESULT " + json.dumps(result), flush=True)
    """
)


def write_dataset(folder: Path, count: int) -> Path:
    """``count`` samples, each with its own target audio file (voiced, 0.6-1.0 s)."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for k in range(count):
        seconds = 0.6 + 0.04 * k
        t = np.arange(int(seconds * SR)) / SR
        wave = sum(np.sin(2 * np.pi * (110 + 9 * k) * h * t) / h for h in range(1, 6))
        wave = 0.4 * wave / np.abs(wave).max() * (0.3 + 0.7 * np.sin(np.pi * t / seconds))
        path = folder / f"clip{k}.wav"
        sf.write(str(path), wave.astype(np.float32), SR, subtype="PCM_16")
        messages = (
            Message("system", "Generate speech in the provided voice."),
            Message("user", f"Sentence number {k} is spoken here."),
            Message("assistant", Audio(str(path))),
        )
        lines.append(Sample(id=f"s{k}", messages=messages, start_index=1, speaker="spk").to_json())
    train = folder / "train.jsonl"
    train.write_text("\n".join(lines) + "\n")
    return train


def test_two_ranks_share_the_probing_and_wait_ddp_timeout(tmp_path: Path) -> None:
    train = write_dataset(tmp_path / "data", 10)
    script = tmp_path / "rank.py"
    script.write_text(RANK_SCRIPT)
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "CUDA_VISIBLE_DEVICES": "",  # gloo on the CPU, as on the test machines
        "WORKBENCH_CACHE_DIR": str(tmp_path / "cache"),  # a cold probe cache: every file must be read
    }
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--num_machines", "1", "--mixed_precision", "no",
           "--dynamo_backend", "no", "--multi_gpu", "--num_processes", "2", "--main_process_port", "0",
           str(script), str(train), str(tmp_path / "out"), "321"]  # fmt: skip
    proc = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-6000:]
    # Both ranks write to one pipe, so a rank's line can run on into the other's: read each JSON
    # object that follows a marker, wherever it ends.
    decoder = json.JSONDecoder()
    results = sorted(
        (decoder.raw_decode(part)[0] for part in proc.stdout.split("RESULT ")[1:]), key=lambda r: r["rank"]
    )
    assert [r["rank"] for r in results] == [0, 1] and all(r["ranks"] == 2 for r in results), output[-6000:]
    # The process group (every barrier of the run) waits ddp_timeout, and so do the Trainer's arguments.
    assert [r["timeout"] for r in results] == [321.0, 321.0]
    assert [r["trainer_timeout"] for r in results] == [321, 321]
    # Each rank read half the files; validation on every rank then read none (all 10 samples checked).
    assert [r["reads"] for r in results] == [5, 5]
    assert all(r["ok"] and r["samples"] == 10 for r in results), results
    # The first process of the machine kept every probe: a later run here reads no audio.
    import sqlite3

    with sqlite3.connect(tmp_path / "cache" / "audio_probe.sqlite") as db:
        assert db.execute("SELECT COUNT(*) FROM probe").fetchone()[0] == 10
