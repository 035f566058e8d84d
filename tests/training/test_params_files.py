"""Every committed parameter file is valid for what it drives (no unknown keys, existing configs)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

from workbench.evaluation.evaluate import load_eval_params
from workbench.notebook.report import NOTEBOOK_DIR, load_notebook_params, notebook_parameters
from workbench.training.params import load_train_params

ROOT = Path(__file__).resolve().parents[2]
PARAMS = ROOT / "params"


@pytest.mark.parametrize("name", ["demo.yaml", "single_gpu.yaml", "h200x8.yaml", "higgs_tts_3.yaml"])
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
    assert params.mixed_precision == "bf16" and params.use_gradient_checkpointing
    assert params.dataloader_num_workers == 16 and params.num_epochs == 3
    assert launch.env["OMP_NUM_THREADS"] == "16"
    assert launch.env["PYTORCH_CUDA_ALLOC_CONF"] == "max_split_size_mb:512"
    assert any(k.startswith("NCCL") for k in launch.env)


@pytest.mark.parametrize("name", ["cpu2.yaml", "single_gpu.yaml", "h200x8.yaml", "multinode.yaml"])
def test_accelerate_configs_parse(name):
    config = yaml.safe_load((PARAMS / "accelerate" / name).read_text())
    assert config["num_processes"] >= 1 and config["distributed_type"] in ("NO", "MULTI_GPU")


def test_evaluation_params_load():
    assert load_eval_params(PARAMS / "evaluate_demo.yaml").adapters


@pytest.mark.parametrize("name", ["data_demo.yaml", "data_example.yaml"])
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
    from workbench.notebook import launch as wl
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

    from workbench.notebook.launch import visible_gpus

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
    monkeypatch.setattr("workbench.notebook.launch.visible_gpus", lambda env=None: 0)
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
    from workbench.evaluation.evaluate import EvalParams
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
