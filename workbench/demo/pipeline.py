"""The demo pipeline: the step notebooks, executed headless on the embedded demo dataset.

``workbench demo --out runs/demo`` writes the demo dataset and the tiny Higgs Audio v2 model, runs
00 → 03 with papermill (each leaving its executed notebook and HTML report in the run folder, and
its outputs in a sub-folder named after it), trains with 04 under ``accelerate launch``, evaluates
with 05 and writes ``index.html`` linking the reports in order.
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench.demo.dataset import demo_data
from workbench.demo.tiny_higgs_audio_v2 import make_tiny_higgs_audio_v2
from workbench.notebook.report import NotebookRun, run_notebook, write_index

log = logging.getLogger(__name__)


@dataclass
class DemoResult:
    run_dir: str
    runs: list[NotebookRun] = field(default_factory=list)
    index: str | None = None

    @property
    def ok(self) -> bool:
        return bool(self.runs) and all(r.ok for r in self.runs)

    def format_text(self) -> str:
        lines = [f"demo run in {self.run_dir}"]
        for r in self.runs:
            state = "ok" if r.ok else f"FAILED ({r.error})"
            lines.append(f"  {r.notebook:32s} {state:6s} {r.seconds:6.1f} s  {r.html}")
        if self.index:
            lines.append(f"index: {self.index}")
        return "\n".join(lines)


def demo_steps(
    run: Path, data_inputs: list[str], model: str | None = None
) -> list[tuple[str, dict[str, Any]]]:
    """Each step notebook with its parameters for a demo run in ``run``.

    ``model``: the model notebook 03 checks token lengths against (None: no length check).
    """
    converted = run / "02_convert_and_listen" / "converted.jsonl"
    return [
        # a demo recording with subtitles cut into a clip folder (the synthetic dataset feeds 01-05)
        ("00_prepare", {"output_dir": str(run / "00_prepare"), "max_listen": 3}),
        (
            "01_inspect_data",
            {"input_data": data_inputs, "output_dir": str(run / "01_inspect_data"), "max_listen": 4},
        ),
        (
            "02_convert_and_listen",
            {"input_data": data_inputs, "output_dir": str(run / "02_convert_and_listen"), "max_listen": 4},
        ),
        (
            "03_validate",
            {
                "input_data": str(converted),
                "output_dir": str(run / "03_validate"),
                "max_listen": 4,
                "val_fraction": 0.2,
                "split_by": "sample",
                "model": model,
            },
        ),
    ]


PARAMS_DIR = Path(__file__).resolve().parents[2] / "params"


def demo_train_overrides(run: Path) -> dict[str, Any]:
    """``params/demo.yaml`` pointed at the folders of a demo run in ``run``."""
    return {
        "train_data": str(run / "03_validate" / "train.jsonl"),
        "val_data": str(run / "03_validate" / "val.jsonl"),
        "model": str(run / "tiny-model"),
        "output_dir": str(run / "04_train"),
        "codes_cache_dir": str(run / "codes"),
    }


def demo_evaluate_params(run: Path) -> dict[str, Any]:
    """``params/evaluate_demo.yaml`` pointed at a demo run: base vs every checkpoint and the adapter."""
    from workbench.notebook.report import load_notebook_params

    params = load_notebook_params("05_evaluate", PARAMS_DIR / "evaluate_demo.yaml")
    params.update(
        base_model=str(run / "tiny-model"),
        adapters=[str(run / "04_train")],
        eval_data=str(run / "03_validate" / "val.jsonl"),
        output_dir=str(run / "05_evaluate"),
        codes_cache_dir=str(run / "codes"),
    )
    return params


def run_training_step(run: Path) -> NotebookRun:
    """Notebook 04 under ``accelerate launch`` with 2 CPU processes (``params/demo.yaml``)."""
    import time

    from workbench.notebook.ranks import launched_run
    from workbench.training.launch import NOTEBOOK, train_launch

    started = time.perf_counter()
    code = train_launch(PARAMS_DIR / "demo.yaml", demo_train_overrides(run))
    return launched_run(NOTEBOOK, run / "04_train", code, time.perf_counter() - started)


def run_demo(out: str | os.PathLike = "runs/demo", overwrite: bool = True, train: bool = True) -> DemoResult:
    """Run the step notebooks on the demo dataset into ``out``; stops at the first failing step."""
    run = Path(out).absolute()
    if run.exists():
        if not overwrite:
            raise FileExistsError(f"{run} exists. Hint: choose another --out or remove it.")
        shutil.rmtree(run)
    run.mkdir(parents=True)
    info = demo_data(run / "data")
    inputs = [str(run / "data" / p) for p in info["inputs"]]  # type: ignore[union-attr]
    result = DemoResult(run_dir=str(run))
    model = str(make_tiny_higgs_audio_v2(run / "tiny-model")) if train else None
    for notebook, params in demo_steps(run, inputs, model):
        log.info("running %s", notebook)
        step = run_notebook(notebook, run, params)
        result.runs.append(step)
        if not step.ok:
            break
    if train and result.ok:
        result.runs.append(run_training_step(run))
    if train and result.ok:
        result.runs.append(run_notebook("05_evaluate", run / "05_evaluate", demo_evaluate_params(run)))
    result.index = str(write_index(run, title="Workbench demo run"))
    return result
