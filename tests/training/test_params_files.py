"""Every committed parameter file is valid for what it drives (no unknown keys, existing configs), and
the notebooks' parameters cells and the README's parameter tables are the dataclasses'."""

from __future__ import annotations

import ast
import json
import sys
from pathlib import Path

import pytest
import yaml

from workbench.evaluation.params import EvalParams, load_eval_params
from workbench.notebook.report import NOTEBOOK_DIR, load_notebook_params, notebook_parameters
from workbench.training.param_schema import notebook_cell, schema
from workbench.training.params import TrainParams, load_train_params

ROOT = Path(__file__).resolve().parents[2]
PARAMS = ROOT / "params"
TRAINING_FILES = ["demo.yaml", "single_gpu.yaml", "h200x8.yaml", "higgs_tts_3.yaml"]
EVALUATION_FILES = ["evaluate_demo.yaml"]
NOTEBOOK_FILES = ["data_demo.yaml", "data_example.yaml"]  # sections of notebooks 00-03
SCHEMAS = {"04_train": TrainParams, "05_evaluate": EvalParams}


def test_every_params_file_is_checked_for_what_it_drives():
    listed = TRAINING_FILES + EVALUATION_FILES + NOTEBOOK_FILES
    assert sorted(listed) == sorted(p.name for p in PARAMS.glob("*.yaml")), "add the file to one list above"


@pytest.mark.parametrize("name", TRAINING_FILES)
def test_training_params_load_and_name_existing_accelerate_configs(name, monkeypatch):
    monkeypatch.chdir(ROOT)
    params, launch = load_train_params(PARAMS / name)
    if launch.accelerate_config:
        assert (ROOT / launch.accelerate_config).is_file(), launch.accelerate_config
    assert params.lora_target_modules is None or params.lora_target_modules  # None: the family's default


def test_h200x8_matches_the_documented_recipe():
    params, launch = load_train_params(PARAMS / "h200x8.yaml")
    config = yaml.safe_load((ROOT / launch.accelerate_config).read_text())
    assert (params.batch_size, params.gradient_accumulation_steps, config["num_processes"]) == (4, 4, 8)
    assert params.batch_size * params.gradient_accumulation_steps * config["num_processes"] == 128
    assert (params.learning_rate, params.lora_r, params.lora_alpha) == (5e-4, 64, 128)
    assert params.mixed_precision == "bf16" and params.activation_checkpointing
    assert params.dataloader_num_workers == 16 and params.num_epochs == 3
    assert launch.env["OMP_NUM_THREADS"] == "16"
    assert launch.env["PYTORCH_CUDA_ALLOC_CONF"] == "max_split_size_mb:512"
    assert any(k.startswith("NCCL") for k in launch.env)


@pytest.mark.parametrize("name", ["cpu2.yaml", "single_gpu.yaml", "h200x8.yaml", "multinode.yaml"])
def test_accelerate_configs_parse(name):
    config = yaml.safe_load((PARAMS / "accelerate" / name).read_text())
    assert config["num_processes"] >= 1 and config["distributed_type"] in ("NO", "MULTI_GPU")


@pytest.mark.parametrize("name", EVALUATION_FILES)
def test_evaluation_params_load(name):
    assert load_eval_params(PARAMS / name).adapters


@pytest.mark.parametrize("name", NOTEBOOK_FILES)
def test_notebook_params_files_only_use_declared_parameters(name):
    for notebook in sorted(NOTEBOOK_DIR.glob("0[1-3]_*.ipynb")):
        declared = set(notebook_parameters(notebook))
        raw = yaml.safe_load((PARAMS / name).read_text())
        used = load_notebook_params(notebook, PARAMS / name)
        section = raw.get(notebook.stem) or {}
        assert section, f"{name} has no section for {notebook.stem}"
        assert set(section) <= declared, f"{name}/{notebook.stem}: {set(section) - declared}"
        assert {k for k in used if k not in section} <= declared | {k for k in raw if k[:2].isdigit()}


def test_more_gpu_ranks_than_gpus_is_refused_before_launch(monkeypatch):
    """8 ranks on a 1-GPU machine would fail after loading with 'invalid device ordinal': say it first."""
    from workbench.training import launch as wl
    from workbench.training.params import LaunchParams, ParamsError

    h200x8 = LaunchParams(accelerate_config=str(PARAMS / "accelerate" / "h200x8.yaml"))
    multinode = LaunchParams(accelerate_config=str(PARAMS / "accelerate" / "multinode.yaml"))
    assert wl.processes_per_machine(h200x8) == 8
    assert wl.processes_per_machine(multinode) == 8  # per machine, not in all
    assert (
        wl.processes_per_machine(LaunchParams(accelerate_config=str(PARAMS / "accelerate" / "cpu2.yaml")))
        == 2
    )
    assert wl.check_gpu_fit(h200x8, gpus=8) == []
    assert wl.check_gpu_fit(h200x8, gpus=0) == []  # no GPU: ranks train on the CPU with gloo
    [problem] = wl.check_gpu_fit(LaunchParams(num_processes=8), gpus=2)
    assert "num_processes: starts 8 ranks on this machine, but it has 2 GPU(s)" in problem
    assert "num_processes: 2" in problem and "gradient_accumulation_steps by 4" in problem

    monkeypatch.setattr(wl, "visible_gpus", lambda env=None: 1)  # this machine as a 1-GPU workstation
    with pytest.raises(ParamsError, match="h200x8.yaml: starts 8 ranks on this machine, but it has 1 GPU"):
        wl.launch_notebook("04_train", {}, h200x8, PARAMS.parent / "runs" / "never", dry_run=True)
    assert not (PARAMS.parent / "runs" / "never").exists()


def test_visible_gpus_follows_the_launch_env():
    import torch

    from workbench.training.launch import visible_gpus

    physical = torch.cuda.device_count() if torch.cuda.is_available() else 0
    assert visible_gpus({}) == physical
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": ""}) == 0
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": "-1"}) == 0
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": "0,1"}) == min(2, physical)
    demo = yaml.safe_load((PARAMS / "demo.yaml").read_text())
    assert visible_gpus(demo["env"]) == 0  # the demo's 2 ranks stay on the CPU on a GPU machine too


def test_dry_run_from_another_folder_finds_the_accelerate_config_and_writes_nothing(
    tmp_path, monkeypatch, capsys
):
    from workbench.cli import main

    monkeypatch.chdir(tmp_path)  # params/accelerate/h200x8.yaml does not exist here: found beside the file
    monkeypatch.setattr("workbench.training.launch.visible_gpus", lambda env=None: 0)
    out = tmp_path / "run"
    assert (
        main(["train", "--params", str(PARAMS / "h200x8.yaml"), "-p", "output_dir", str(out), "--dry-run"])
        == 0
    )
    printed = capsys.readouterr().out
    assert f"would launch: {sys.executable} -m accelerate.commands.launch --config_file " in printed
    assert str(PARAMS / "accelerate" / "h200x8.yaml") in printed
    assert not out.exists()

    missing = tmp_path / "mine.yaml"
    missing.write_text("accelerate_config: nowhere/accel.yaml\ntrain_data: train.jsonl\nmodel: tiny\n")
    assert main(["train", "--params", str(missing), "--dry-run"]) == 2
    assert "looked up from the current folder, then beside the params file" in capsys.readouterr().err


def test_data_and_model_are_required_not_the_demo(tmp_path, monkeypatch, capsys):
    """No demo paths as defaults: a params file without its data or model says what to pass."""
    from workbench.cli import main
    from workbench.evaluation.params import EvalParams
    from workbench.training.params import ParamsError, TrainParams

    mine = tmp_path / "mine.yaml"
    mine.write_text("max_steps: 10\n")
    with pytest.raises(ParamsError) as info:
        load_train_params(mine)
    assert info.value.problems == [
        "train_data: required: the canonical JSONL to train on (notebook 03 writes train.jsonl); "
        "pass -p train_data PATH or set it in the params file",
        "model: required: the base model: a local folder, a cached hub id or random-full; "
        "pass -p model PATH_OR_ID or set it in the params file",
    ]
    params, _ = load_train_params(mine, {"train_data": "train.jsonl", "model": "tiny"})
    assert params.val_data is None and params.output_dir == "runs/train"  # no evaluation, a neutral folder
    assert "demo" not in repr(TrainParams()) and "demo" not in repr(EvalParams())

    monkeypatch.chdir(tmp_path)  # the CLI reports it before anything is written or launched
    assert main(["train", "--params", str(mine)]) == 2
    assert "train_data: required" in capsys.readouterr().err and not (tmp_path / "runs").exists()

    with pytest.raises(ParamsError) as info:
        load_eval_params(None, {"max_samples": 2})
    assert [p.split(":")[0] for p in info.value.problems] == ["base_model", "adapters", "eval_data"]
    assert "eval_data: required: the canonical JSONL whose prompts are spoken" in str(info.value)
    assert 'pass -p adapters "[DIR, ...]" or set it in the params file' in str(info.value)
    params = load_eval_params(None, {"base_model": "tiny", "adapters": ["run"], "eval_data": "val.jsonl"})
    assert params.output_dir == "runs/evaluate"


def parameters_cell(notebook: Path) -> str:
    nb = json.loads(notebook.read_text(encoding="utf-8"))
    [cell] = [c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert all(not c.get("outputs") for c in nb["cells"] if c["cell_type"] == "code")  # committed clean
    return "".join(cell["source"])


@pytest.mark.parametrize("stem", sorted(SCHEMAS))
def test_notebook_parameters_cell_is_the_dataclass(stem):
    """Every name of the cell is a field, every field is there, in order, with the dataclass's default."""
    cls = SCHEMAS[stem]
    cell = parameters_cell(NOTEBOOK_DIR / f"{stem}.ipynb")
    declared = {}
    for node in ast.parse(cell).body:
        assert isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name), (
            f"{stem}.ipynb, parameters cell, line {node.lineno}: expected NAME = VALUE"
        )
        declared[node.targets[0].id] = ast.literal_eval(node.value)  # the cell holds Python literals
    fields = {f.name: f.default for f in schema(cls)}
    assert set(declared) <= set(fields), (
        f"{stem}.ipynb: not {cls.__name__} fields: {set(declared) - set(fields)}"
    )
    assert set(fields) <= set(declared), (
        f"{stem}.ipynb: {cls.__name__} fields missing: {set(fields) - set(declared)}"
    )
    assert list(declared) == list(fields), f"{stem}.ipynb: the cell's order differs from {cls.__name__}'s"
    for name, value in declared.items():
        assert value == fields[name] and type(value) is type(fields[name]), (
            f"{stem}.ipynb: {name} = {value!r}, but {cls.__name__} says {fields[name]!r}"
        )
    assert list(notebook_parameters(NOTEBOOK_DIR / f"{stem}.ipynb")) == list(fields)  # as papermill reads it
    cli_name = {"04_train": "train", "05_evaluate": "evaluate"}[stem]
    assert cell == notebook_cell(cls), f"{stem}.ipynb: paste `workbench params {cli_name} --format cell`"


@pytest.mark.parametrize("name", ["train", "launch", "evaluate"])
def test_readme_holds_each_parameter_table(name, capsys):
    """The README's tables are `workbench params NAME`, rows neither added nor missing."""
    from workbench.cli import main

    assert main(["params", name]) == 0
    table = capsys.readouterr().out.strip()
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert table in readme, (
        f"README.md's {name} parameter table differs from the dataclass: paste `workbench params {name}`"
    )
    after = readme[readme.index(table) + len(table) :]
    assert after.startswith("\n\n"), f"README.md: the {name} table has rows the dataclass lacks"
