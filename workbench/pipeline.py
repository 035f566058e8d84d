"""The demo pipeline: every data step on the embedded demo dataset, into one run folder.

``workbench demo --out runs/demo`` writes the demo dataset, converts it, validates the result,
splits it for training, and summarises it; each step leaves its output and JSON report in the
run folder, and ``summary.json`` lists one line per step.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)


@dataclass
class StepResult:
    name: str
    ok: bool
    line: str
    outputs: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0


@dataclass
class DemoResult:
    run_dir: str
    steps: list[StepResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(s.ok for s in self.steps)

    def format_text(self) -> str:
        lines = [f"demo run in {self.run_dir}"]
        for s in self.steps:
            lines.append(f"  [{'ok' if s.ok else 'FAIL'}] {s.name:9s} {s.line} ({s.seconds:.1f} s)")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {
            "run_dir": self.run_dir,
            "ok": self.ok,
            "steps": [s.__dict__ for s in self.steps],
        }


def run_demo(out: str | os.PathLike = "runs/demo", overwrite: bool = True) -> DemoResult:
    """Run the data steps on the demo dataset into ``out`` (replaced when ``overwrite``)."""
    from .convert import convert
    from .demo_data import demo_data
    from .inspection import inspect
    from .split import split
    from .validate import validate

    run = Path(out).absolute()
    if run.exists():
        if not overwrite:
            raise FileExistsError(f"{run} exists. Hint: choose another --out or remove it.")
        shutil.rmtree(run)
    run.mkdir(parents=True)
    result = DemoResult(run_dir=str(run))

    t = time.perf_counter()
    info = demo_data(run / "data")
    result.steps.append(StepResult("data", True, f"{len(info['inputs'])} source files/folders", {"data": str(run / "data")}, time.perf_counter() - t))  # type: ignore[arg-type]

    t = time.perf_counter()
    converted = run / "converted.jsonl"
    report = convert([run / "data" / p for p in info["inputs"]], converted, report=run / "convert_report.json")  # type: ignore[union-attr]
    # Rejections are planted defects in the demo data, so they are expected, not a failure.
    result.steps.append(StepResult("convert", report.converted > 0, report.summary_line(), report.outputs, time.perf_counter() - t))

    t = time.perf_counter()
    checked = validate(converted)
    checked.write_json(run / "validate_report.json")
    errors = checked.to_dict()["summary"]["by_severity"].get("error", 0)
    result.steps.append(
        StepResult("validate", True, f"{checked.samples} samples, {errors} error findings (planted defects)", {"report": str(run / "validate_report.json")}, time.perf_counter() - t)
    )

    t = time.perf_counter()
    bad = {f.sample_id for f in checked.findings if f.severity == "error"}
    from .sample import read_samples, write_samples

    clean = run / "clean.jsonl"
    write_samples(clean, (s for s in read_samples(converted) if s.id not in bad))
    parts = split(clean, run / "train.jsonl", run / "val.jsonl", val_fraction=0.2, by="sample", seed=0)
    d = parts.to_dict()
    result.steps.append(
        StepResult("split", d["train"] > 0 and d["val"] > 0, f"{d['train']} train / {d['val']} val samples (dropped {len(bad)} with errors)", {"train": str(run / "train.jsonl"), "val": str(run / "val.jsonl")}, time.perf_counter() - t)
    )

    t = time.perf_counter()
    stats = inspect(run / "train.jsonl")
    (run / "inspect.json").write_text(json.dumps(stats.to_dict(), indent=2))
    result.steps.append(StepResult("inspect", True, stats.format_text().splitlines()[0], {"stats": str(run / "inspect.json")}, time.perf_counter() - t))

    (run / "summary.json").write_text(json.dumps(result.to_dict(), indent=2))
    return result
