"""Tests for workbench.bench.rehearsal: the production path (train, generate, export) through the CLI.

The full-size rehearsal (``workbench bench rehearsal``) takes minutes and ~15 GB; here the same
commands run on the tiny model, so the rehearsal itself is known to work.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from workbench.bench.rehearsal import TreeMemory, bench_rehearsal
from workbench.demo import make_tiny_model


def test_rehearsal_trains_speaks_and_exports(tmp_path: Path) -> None:
    tiny = make_tiny_model(tmp_path / "tiny")
    result = bench_rehearsal(model=str(tiny), workdir=tmp_path / "work", clip_seconds=1.5, max_new_tokens=12)
    names = [s.name for s in result.stages]
    assert names == ["train", "generate", "export"], result.format_text()
    for stage in result.stages:
        assert stage.ok, f"{stage.name} failed:\n{stage.tail}"
        assert stage.peak_rss_gib >= stage.peak_pss_gib > 0.1 and stage.seconds > 0
    record = json.loads((tmp_path / "work" / "train" / "run.json").read_text())
    assert record["result"]["global_step"] == 2 and record["world_size"] == 1
    resolved = (tmp_path / "work" / "train" / "params.resolved.yaml").read_text()
    for line in ("mixed_precision: bf16", "activation_checkpointing: true", "lora_r: 64", "lora_alpha: 128",
                 "batch_size: 1", "- audio_mlp.gate_proj", "- mlp.gate_proj", "- q_proj"):  # fmt: skip
        assert line in resolved
    assert (tmp_path / "work" / "hello.wav").is_file() or "NO AUDIO" in result.stages[1].tail
    assert (tmp_path / "work" / "exported" / "config.json").is_file()
    text = result.format_text()
    assert "peak over all stages" in text and "optimizer steps: 2" in text


def test_tree_memory_counts_children(tmp_path: Path) -> None:
    """A grandchild holding 200 MB counts in the tree's memory (it is not the process started)."""
    import psutil

    ready = tmp_path / "ready"
    holder = (
        "import sys, time; x = bytearray(200 * 2**20); x[::4096] = b'1' * len(x[::4096]); "
        "open(sys.argv[1], 'w').close(); time.sleep(60)"
    )
    launcher = f"import subprocess, sys; subprocess.run([sys.executable, '-c', {holder!r}, {str(ready)!r}])"
    parent = subprocess.Popen([sys.executable, "-c", launcher])
    try:
        deadline = time.monotonic() + 30
        while not ready.exists():  # the file appears once the memory is held
            assert time.monotonic() < deadline and parent.poll() is None, "the child never held its memory"
            time.sleep(0.05)
        with TreeMemory(parent.pid, poll_s=0.05) as memory:
            pss, rss = memory.sample()
        assert rss >= pss > 200 * 2**20
        assert memory.peak_bytes > 200 * 2**20 and memory.samples >= 1
    finally:
        for child in psutil.Process(parent.pid).children(recursive=True):
            child.kill()
        parent.kill()
        parent.wait()
