"""Benchmarks: throughput and memory, printed with ratios to the targets (not timed tests).

``workbench bench data --n 100000`` writes a synthetic manifest of N records over a pool of
short WAV files, then runs convert and validate (cold and warm probe cache) each in a fresh
process, so the peak RSS of each stage is its own.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from workbench.audio import write_wav
from workbench.files import write_table

TARGETS = {"convert_records_per_s": 20_000, "validate_records_per_s": 5_000, "convert_peak_rss_mb_1m": 1024}


@dataclass
class BenchResult:
    n: int
    pool: int
    stages: dict[str, dict[str, float]] = field(default_factory=dict)
    machine: str = ""

    def format_text(self) -> str:
        lines = [f"workbench bench data: {self.n:,} records over {self.pool:,} WAV files ({self.machine})"]
        for name, s in self.stages.items():
            lines.append(
                f"  {name:16s} {s['records_per_s']:>10,.0f} records/s  {s['seconds']:7.2f} s  peak RSS {s['peak_rss_mb']:6.0f} MB"
            )
        conv = self.stages.get("convert")
        if conv:
            lines.append(
                f"  convert vs target {TARGETS['convert_records_per_s']:,}/s: {conv['records_per_s'] / TARGETS['convert_records_per_s']:.2f}x"
            )
        for name in ("validate (cold)", "validate (warm)"):
            s = self.stages.get(name)
            if s:
                lines.append(
                    f"  {name} vs target {TARGETS['validate_records_per_s']:,}/s: {s['records_per_s'] / TARGETS['validate_records_per_s']:.2f}x"
                )
        cold, warm = self.stages.get("validate (cold)"), self.stages.get("validate (warm)")
        if cold and warm:
            lines.append(
                f"  probe cache speed-up (warm/cold): {warm['records_per_s'] / cold['records_per_s']:.2f}x"
            )
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {
            "n": self.n,
            "pool": self.pool,
            "machine": self.machine,
            "stages": self.stages,
            "targets": TARGETS,
        }


def machine_description() -> str:
    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def write_bench_manifest(workdir: Path, n: int, pool: int, speakers: int = 100, seed: int = 0) -> Path:
    """A manifest of ``n`` records over ``pool`` short WAVs (0.6–1.6 s) and ``speakers`` speakers."""
    rng = np.random.default_rng(seed)
    wavs = workdir / "wavs"
    wavs.mkdir(parents=True, exist_ok=True)
    durations = rng.uniform(0.6, 1.6, pool)
    for i in range(pool):
        path = wavs / f"u{i:05d}.wav"
        if not path.exists():
            t = np.arange(int(24_000 * durations[i])) / 24_000
            write_wav(path, (0.3 * np.sin(2 * np.pi * (100 + i % 200) * t)).astype(np.float32))
    manifest = workdir / f"manifest_{n}.jsonl"
    if not manifest.exists():
        picks = [int(rng.integers(pool)) for _ in range(n)]
        records = [
            {
                "audio_filepath": f"wavs/u{j:05d}.wav",
                "text": f"bench sentence number {i}",
                "speaker": f"s{j % speakers}",
                "duration": round(float(durations[j]), 3),
            }
            for i, j in enumerate(picks)
        ]
        write_table(records, manifest)
    return manifest


def _child(stage: str, manifest: str, out_dir: str) -> None:
    """Run one stage in this (fresh) process and print its timing and peak RSS as JSON."""
    os.environ.setdefault("WORKBENCH_CACHE_DIR", os.path.join(out_dir, "cache"))
    started = time.perf_counter()
    if stage == "convert":
        from workbench.data.convert import convert

        report = convert([manifest], os.path.join(out_dir, "converted.jsonl"), overwrite=True)
        count = report.total
    else:
        from workbench.data.validate import validate

        report = validate(os.path.join(out_dir, "converted.jsonl"))
        count = report.samples
    seconds = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "records": count, "peak_rss_mb": peak_mb}))


def _run_stage(stage: str, manifest: Path, out_dir: Path) -> dict[str, float]:
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            f"from workbench.bench.data import _child; _child({stage!r}, {str(manifest)!r}, {str(out_dir)!r})",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark stage {stage} failed:\n{proc.stderr[-2000:]}")
    data = json.loads(proc.stdout.strip().splitlines()[-1])
    data["records_per_s"] = data["records"] / data["seconds"]
    return data


@contextlib.contextmanager
def bench_workdir(workdir: str | os.PathLike | None, prefix: str) -> Iterator[Path]:
    """``workdir`` (created, kept), or a temporary folder removed afterwards."""
    if workdir is not None:
        work = Path(workdir)
        work.mkdir(parents=True, exist_ok=True)
        yield work
        return
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        yield Path(tmp)


def bench_data(n: int = 100_000, pool: int = 1000, workdir: str | os.PathLike | None = None) -> BenchResult:
    """Measure convert and validate throughput and peak memory on a synthetic manifest."""
    with bench_workdir(workdir, "workbench-bench-") as work:
        manifest = write_bench_manifest(work, n, pool)
        out_dir = work / f"out_{n}"
        out_dir.mkdir(exist_ok=True)
        cache = out_dir / "cache"
        if cache.exists():
            for f in cache.iterdir():
                f.unlink()
        result = BenchResult(n=n, pool=pool, machine=machine_description())
        result.stages["convert"] = _run_stage("convert", manifest, out_dir)
        result.stages["validate (cold)"] = _run_stage("validate", manifest, out_dir)
        result.stages["validate (warm)"] = _run_stage("validate", manifest, out_dir)
        return result
