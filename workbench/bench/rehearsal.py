"""``workbench bench rehearsal``: the production path at full size, on the machine at hand.

Runs the commands a user runs, as subprocesses, on a few short synthetic clips:

1. ``workbench train`` with ``model: random-full`` (the full-size Higgs Audio v2 LM, random
   weights), bf16, activation checkpointing, LoRA r 64 / alpha 128 on attention and both dual-FFN
   paths, batch 1, ``steps`` optimizer steps, one process: the data check, the codes cache, the
   Trainer, the adapter and ``run.json``, through ``accelerate launch`` and notebook 04;
2. ``workbench generate --adapter`` speaks one short prompt with the trained adapter;
3. ``workbench export`` merges it, or refuses with a message when this machine lacks the memory.

For each it reports the exit code, the wall time and the peak memory of the whole process tree
(launcher, accelerate, ranks, notebook kernels), sampled every ``poll_s`` seconds: PSS (each page
counted once, shared libraries split between the processes that map them: the memory the tree
takes from the machine) and the sum of RSS (shared libraries counted once per process, ~0.7 GiB
for each process that imports torch). A peak between two samples can be missed, so the figures
are lower bounds, close for memory held over seconds (model weights). ``--model`` takes a model
folder to rehearse something else (the tests rehearse with the tiny model).

Examples:
    >>> from workbench.bench.rehearsal import bench_rehearsal
    >>> print(bench_rehearsal().format_text())  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from workbench.files import write_text
from workbench.models.model import RANDOM_FULL

GIB = 2**30
STAGES = ("train", "generate", "export")


class TreeMemory:
    """Peak memory of a process and all its descendants (summed PSS and RSS), sampled on a thread.

    Examples:
        >>> with TreeMemory(proc.pid) as mem:  # doctest: +SKIP
        ...     proc.wait()
        >>> mem.peak_bytes  # doctest: +SKIP
    """

    def __init__(self, pid: int, poll_s: float = 0.25) -> None:
        self.pid, self.poll_s = pid, poll_s
        self.peak_bytes = 0  # PSS (RSS where PSS cannot be read)
        self.peak_rss_bytes = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tree-memory", daemon=True)

    def sample(self) -> tuple[int, int]:
        """``(PSS, RSS)`` of the tree now, summed (processes that end while being read are skipped)."""
        import psutil

        try:
            root = psutil.Process(self.pid)
            processes = [root, *root.children(recursive=True)]
        except psutil.Error:
            return 0, 0
        pss = rss = 0
        for process in processes:
            try:
                info = process.memory_full_info()
            except psutil.AccessDenied:
                try:
                    info = process.memory_info()
                except psutil.Error:
                    continue
            except psutil.Error:
                continue
            rss += info.rss
            pss += getattr(info, "pss", info.rss)
        return pss, rss

    def _run(self) -> None:
        while not self._stop.is_set():
            pss, rss = self.sample()
            self.peak_bytes, self.peak_rss_bytes = max(self.peak_bytes, pss), max(self.peak_rss_bytes, rss)
            self.samples += 1
            self._stop.wait(self.poll_s)

    def __enter__(self) -> TreeMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()


@dataclass
class Stage:
    """One command of the rehearsal: what ran, its exit code, time, peak tree memory and output tail."""

    name: str
    command: list[str]
    exit_code: int
    seconds: float
    peak_pss_gib: float
    peak_rss_gib: float
    tail: str = ""

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


@dataclass
class RehearsalResult:
    """What :func:`bench_rehearsal` measured; :meth:`format_text` prints it."""

    machine: str
    model: str
    settings: dict[str, Any]
    stages: list[Stage] = field(default_factory=list)
    findings: dict[str, Any] = field(default_factory=dict)

    @property
    def peak_pss_gib(self) -> float:
        return max((s.peak_pss_gib for s in self.stages), default=0.0)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "peak_pss_gib": self.peak_pss_gib}

    def format_text(self) -> str:
        s = self.settings
        lines = [
            f"workbench bench rehearsal ({self.machine})",
            f"model {self.model}: {s['mixed_precision']}, activation checkpointing "
            f"{'on' if s['activation_checkpointing'] else 'off'}, LoRA r {s['lora_r']} / alpha {s['lora_alpha']} "
            f"on {len(s['lora_target_modules'])} module kinds, batch {s['batch_size']}, {s['max_steps']} steps, "
            f"{self.findings.get('clips', '?')} clips of {self.findings.get('clip_seconds', '?')} s, 1 process",
        ]
        for stage in self.stages:
            state = "ok" if stage.ok else f"exit {stage.exit_code}"
            lines.append(
                f"  {stage.name:<9} {state:<8} {stage.seconds:>7.1f} s   process tree peak {stage.peak_pss_gib:5.1f} GiB "
                f"PSS ({stage.peak_rss_gib:.1f} GiB summed RSS)"
            )
        for key, value in self.findings.items():
            if key not in ("clips", "clip_seconds"):
                lines.append(f"  {key}: {value}")
        lines.append(
            f"  peak over all stages: {self.peak_pss_gib:.1f} GiB PSS ({self.peak_pss_gib * GIB / 1e9:.1f} GB)"
        )
        return "\n".join(lines)


def rehearsal_params(workdir: Path, model: str, steps: int, train_data: Path) -> dict[str, Any]:
    """The params file of the rehearsal's training run (item by item what production uses per device)."""
    from workbench.models.higgs_audio_v2 import DEFAULT_LORA_TARGETS

    return {
        "num_processes": 1,
        "model": model,
        "train_data": str(train_data),
        "val_data": None,
        "output_dir": str(workdir / "train"),
        "codes_cache_dir": str(workdir / "codes"),
        "max_steps": steps,
        "batch_size": 1,
        "gradient_accumulation_steps": 1,
        "learning_rate": 1e-4,
        "warmup_ratio": 0.0,
        "lora_r": 64,
        "lora_alpha": 128,
        "lora_dropout": 0.05,
        "lora_target_modules": list(DEFAULT_LORA_TARGETS),  # attention, text FFN and audio FFN
        "mixed_precision": "bf16",
        "activation_checkpointing": True,
        "save_steps": max(steps, 1) * 10,  # no checkpoint: the adapter is written at the end
        "logging_steps": 1,
        "merge": False,
    }


def _run(name: str, command: list[str], env: dict[str, str], poll_s: float, log_file: Path) -> Stage:
    started = time.perf_counter()
    with open(log_file, "w", encoding="utf-8") as out:
        proc = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        with TreeMemory(proc.pid, poll_s) as memory:
            code = proc.wait()
    seconds = time.perf_counter() - started
    lines = log_file.read_text(encoding="utf-8", errors="replace").splitlines()
    tail = "\n".join(lines[-15:])
    return Stage(name, command, code, seconds, memory.peak_bytes / GIB, memory.peak_rss_bytes / GIB, tail)


def bench_rehearsal(
    model: str = RANDOM_FULL,
    steps: int = 2,
    clips: int = 3,
    clip_seconds: float = 2.0,
    workdir: str | os.PathLike | None = None,
    poll_s: float = 0.25,
    max_new_tokens: int = 25,
    stages: Sequence[str] = STAGES,
) -> RehearsalResult:
    """Train, speak and export at full size through the CLI (see the module docstring).

    Args:
        model: ``"random-full"``, or a model folder (the tests pass the tiny model).
        steps: Optimizer steps of the training run.
        clips: Voice-cloning samples written (each a reference and a target clip).
        clip_seconds: Length of each clip.
        workdir: Keep the files here (default: a temporary folder, removed afterwards).
        poll_s: Memory sampling interval.
        max_new_tokens: Audio frames the generation may produce (25 per second).
        stages: Which of ``train``, ``generate``, ``export`` to run after training (training always runs).

    Returns:
        A :class:`RehearsalResult`; a stage that failed has its exit code and output tail.
    """
    from workbench.bench.data import bench_workdir
    from workbench.bench.train_measures import machine_description
    from workbench.bench.train_workloads import synthetic_samples
    from workbench.data.sample import write_samples

    with bench_workdir(workdir, "workbench-rehearsal-") as work:
        samples = synthetic_samples(work / "wavs", clips, low=clip_seconds, high=clip_seconds)
        train_data = work / "train.jsonl"
        write_samples(train_data, samples, overwrite=True)
        params = rehearsal_params(work, model, steps, train_data)
        params_file = work / "rehearsal.yaml"
        write_text(params_file, yaml.safe_dump(params, sort_keys=False))
        settings = {
            k: v for k, v in params.items() if k not in ("train_data", "output_dir", "codes_cache_dir")
        }
        result = RehearsalResult(machine_description(), model, settings)
        result.findings.update(clips=clips, clip_seconds=clip_seconds)
        env = {**os.environ, "WORKBENCH_CACHE_DIR": str(work / "cache"), "PYTHONUNBUFFERED": "1"}
        workbench = [sys.executable, "-m", "workbench.cli"]

        train = _run(
            "train", [*workbench, "train", "--params", str(params_file)], env, poll_s, work / "train.log"
        )
        result.stages.append(train)
        adapter = work / "train" / "adapter"
        if not train.ok or not (adapter / "adapter_config.json").is_file():
            return result
        record = json.loads((work / "train" / "run.json").read_text())
        result.findings["optimizer steps"] = record["result"]["global_step"]
        result.findings["train loss"] = record["result"]["train_loss"]

        unknown = set(stages) - set(STAGES)
        if unknown:
            raise ValueError(f"stages: unknown {sorted(unknown)}; expected some of {', '.join(STAGES)}")
        reference = samples[0].messages[2].audio_url
        reference_text = samples[0].messages[1].text
        speak = [
            *workbench, "generate", "--adapter", str(adapter), "--reference", str(reference),
            "--reference-text", str(reference_text), "--text", "Hello there.", "--max-new-tokens",
            str(max_new_tokens), "--codes-cache-dir", str(work / "codes"), "-o", str(work / "hello.wav"),
        ]  # fmt: skip
        if "generate" in stages:
            result.stages.append(_run("generate", speak, env, poll_s, work / "generate.log"))
        if "export" not in stages:
            return result
        exported = work / "exported"
        export = [*workbench, "export", str(adapter), "-o", str(exported)]
        stage = _run("export", export, env, poll_s, work / "export.log")
        result.stages.append(stage)
        refusal = [line for line in stage.tail.splitlines() if "needs about" in line]
        if refusal:
            result.findings["export"] = refusal[-1].strip()
        return result
