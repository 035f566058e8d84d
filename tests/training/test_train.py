"""Tests for workbench.training.params and workbench.training.train, in one process (real tiny model, no mocks).

The end-to-end launches under ``accelerate launch`` are in test_launch.py.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from workbench.data import probe as probe_module
from workbench.demo import make_tiny_model
from workbench.models.higgs_audio_v2 import DEFAULT_LORA_TARGETS
from workbench.training.checkpoints import (
    COMPLETE_MARKER,
    ResumeError,
    check_resume,
    latest_complete_checkpoint,
    remove_incomplete_checkpoints,
    resolve_resume,
)
from workbench.training.params import (
    ParamsError,
    TrainParams,
    load_train_params,
    params_from_namespace,
    save_resolved,
)
from workbench.training.preparation import DataCheckError, check_data, prepare, training_schedule
from workbench.training.train import TrainResult, eval_trend, fit
from workbench.training.trainer import apply_lora, trainable_table

ROOT = Path(__file__).resolve().parents[2]
FFN_TARGETS = [
    f"{ffn}.{proj}" for ffn in ("mlp", "audio_mlp") for proj in ("gate_proj", "up_proj", "down_proj")
]


# --- fixtures --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("tiny") / "model", seed=0)


def base_model(tiny_dir: Path):
    from transformers import HiggsAudioV2ForConditionalGeneration

    return HiggsAudioV2ForConditionalGeneration.from_pretrained(tiny_dir)


def read_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def write_rows(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def small_split(demo_run: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """4 training and 2 validation samples of the demo split (a clean split: no error findings)."""
    folder = tmp_path_factory.mktemp("small-split")
    train = write_rows(folder / "train.jsonl", read_rows(demo_run / "03_validate" / "train.jsonl")[:4])
    val = write_rows(folder / "val.jsonl", read_rows(demo_run / "03_validate" / "val.jsonl")[:2])
    return train, val


def shared_codes_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One audio-codes cache for the session: encoding is the slow part of ``prepare`` on a CPU.

    Safe to share: entries are keyed by file content and the codec's fingerprint.
    """
    return tmp_path_factory.getbasetemp() / "codes-cache"


@pytest.fixture(scope="module")
def codes_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return shared_codes_dir(tmp_path_factory)


def params_for(
    tiny_dir: Path, train: Path, val: Path | None, out: Path, codes: Path, **overrides
) -> TrainParams:
    values = dict(
        train_data=str(train),
        val_data=str(val) if val else None,
        model=str(tiny_dir),
        output_dir=str(out),
        codes_cache_dir=str(codes),
    )
    values.update(overrides)
    return TrainParams(**values)


@pytest.fixture(scope="module")
def trained(
    tiny_dir: Path, small_split: tuple[Path, Path], codes_dir: Path, tmp_path_factory: pytest.TempPathFactory
):
    """A short in-process over-fitting run (LoRA + full audio head), with merged weights."""
    train, val = small_split
    out = tmp_path_factory.mktemp("fit") / "out"
    params = params_for(
        tiny_dir, train, val, out, codes_dir,
        max_steps=20, batch_size=2, learning_rate=1e-2, warmup_ratio=0.0, lora_r=8, lora_alpha=16,
        lora_dropout=0.0, modules_to_save=["audio_lm_head"], logging_steps=2, eval_steps=10, save_steps=10,
        save_total_limit=2, merge=True,
    )  # fmt: skip
    with pytest.MonkeyPatch.context() as mp:  # module scope: keep caches out of ~/.cache
        mp.setenv("WORKBENCH_CACHE_DIR", str(out.parent / "cache"))
        mp.setattr(probe_module, "_default_cache", None)
        prepared = prepare(params)
        result = fit(prepared)
    return params, prepared, result


# --- parameters ------------------------------------------------------------------------------------
def test_params_report_every_problem_at_once(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        textwrap.dedent(
            """\
            lerning_rate: 0.001        # typo
            lora_targets: [q_proj]     # unknown, close to lora_target_modules
            batch_size: two            # wrong type
            merge: 3                   # wrong type
            num_processes: many        # wrong type (launch key)
            mixed_precision: fp8       # bad value
            lora_dropout: 1.5          # bad value
            warmup_ratio: -0.1         # bad value
            """
        )
    )
    with pytest.raises(ParamsError) as info:
        load_train_params(path)
    problems = info.value.problems
    text = str(info.value)
    assert len(problems) == 10, text  # the 8 in the file, and the two required values it lacks
    assert str(path) in text and "10 parameter problem(s)" in text
    assert any(p.startswith("train_data: required: ") and "-p train_data PATH" in p for p in problems)
    assert any(p.startswith("model: required: ") for p in problems)
    assert "lerning_rate: unknown parameter (did you mean 'learning_rate'?)" in problems
    assert any(
        p.startswith("lora_targets: unknown parameter (did you mean 'lora_target_modules'?)")
        for p in problems
    )
    assert any(p.startswith("batch_size: expected int, got 'two'") for p in problems)
    assert any(p.startswith("merge: expected bool, got 3") for p in problems)
    assert any(p.startswith("num_processes: expected int, got 'many'") for p in problems)
    assert any("mixed_precision" in p and "fp8" in p for p in problems)
    assert any("lora_dropout" in p and "1.5" in p for p in problems)
    assert any("warmup_ratio" in p and "-0.1" in p for p in problems)


def test_params_yaml_pitfalls_are_handled(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(
        "train_data: t.jsonl\nmodel: m\nlearning_rate: 1e-4\nmodules_to_save: audio_lm_head\nmixed_precision: no\n"
    )
    with pytest.raises(ParamsError) as info:
        load_train_params(path)
    assert info.value.problems == [
        'mixed_precision: expected str, got False (YAML reads unquoted no/yes/off/on as booleans: quote the value, e.g. "no")'
    ]
    params, _ = load_train_params(path, {"mixed_precision": "no"})
    assert params.learning_rate == 1e-4  # YAML 1.1 reads "1e-4" as a string
    assert params.modules_to_save == ["audio_lm_head"]  # a single name becomes a list


def test_a_retired_parameter_name_names_the_one_to_write(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("train_data: t.jsonl\nmodel: m\nuse_gradient_checkpointing: true\n")
    with pytest.raises(ParamsError) as info:
        load_train_params(path)
    assert info.value.problems == [
        "use_gradient_checkpointing: not a parameter; transformers v6 calls it activation_checkpointing. "
        "Hint: write activation_checkpointing: true"
    ]
    params, _ = load_train_params(
        None, {"train_data": "t.jsonl", "model": "m", "activation_checkpointing": True}
    )
    assert params.activation_checkpointing
    # a notebook's globals (papermill's injected cell) are refused the same way, not ignored
    with pytest.raises(
        ParamsError,
        match="use_gradient_checkpointing: not a parameter; transformers v6 calls it activation_checkpointing",
    ):
        params_from_namespace({"train_data": "t.jsonl", "model": "m", "use_gradient_checkpointing": False})


def test_step_intervals_are_whole_steps_or_fractions_of_the_run() -> None:
    given = {"train_data": "train.jsonl", "model": "tiny"}
    assert not TrainParams(**given, save_steps=0.1, eval_steps=0.25, logging_steps=1).check()
    problems = TrainParams(**given, save_steps=0, eval_steps=1.5, logging_steps=-2).check()
    assert problems == [
        f"{name}: a whole number of steps (at least 1) or a fraction of the run in (0, 1), got {value}"
        for name, value in (("save_steps", 0), ("eval_steps", 1.5), ("logging_steps", -2))
    ]
    params, _ = load_train_params(ROOT / "params" / "h200x8.yaml")
    assert params.save_steps == 0.1 and params.eval_steps == 0.1 and isinstance(params.logging_steps, int)


def test_overrides_win_over_the_file() -> None:
    params, launch = load_train_params(
        ROOT / "params" / "demo.yaml", {"max_steps": 7, "lora_r": 4, "num_processes": 1}
    )
    assert (params.max_steps, params.lora_r, launch.num_processes) == (7, 4, 1)
    assert params.learning_rate == 0.005 and params.modules_to_save == ["audio_lm_head"]  # from the file
    assert launch.env == {"OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    assert TrainParams().max_steps == -1  # the defaults are untouched


def test_command_line_words_yes_no_on_off() -> None:
    """`-p mixed_precision no` is the string "no" (a shell cannot quote it for YAML); a flag takes yes/no."""
    from workbench.cli import build_parser, overrides_from

    args = build_parser().parse_args(
        ["train", "-p", "mixed_precision", "no", "-p", "merge", "yes", "-p", "skip_validation", "off",
         "-p", "group_by_length", "false", "-p", "lora_r", "4", "-p", "resume_from_checkpoint", "no"]
    )  # fmt: skip
    overrides = overrides_from(args)
    assert overrides == {"mixed_precision": "no", "merge": "yes", "skip_validation": "off",
                         "group_by_length": False, "lora_r": 4, "resume_from_checkpoint": "no"}  # fmt: skip
    params, _ = load_train_params(ROOT / "params" / "single_gpu.yaml", overrides)
    assert params.mixed_precision == "no" and params.merge is True and params.skip_validation is False
    assert params.group_by_length is False and params.lora_r == 4 and resolve_resume(params) is None
    with pytest.raises(ParamsError, match="merge: expected bool, got 'maybe'"):
        load_train_params(None, {"merge": "maybe"})


def test_resolved_params_round_trip(tmp_path: Path) -> None:
    params = TrainParams(
        train_data="train.jsonl", model="tiny", max_steps=3, modules_to_save=["audio_lm_head"], max_length=512
    )
    loaded, _ = load_train_params(save_resolved(params, tmp_path / "params.resolved.yaml"))
    assert loaded == params


# --- LoRA ------------------------------------------------------------------------------------------
def test_lora_covers_attention_and_both_ffn_paths(tiny_dir: Path) -> None:
    from peft.tuners.lora import LoraLayer

    model = apply_lora(base_model(tiny_dir), TrainParams(lora_r=4, lora_alpha=8))
    modules = dict(model.named_modules())
    layers = model.get_base_model().config.num_hidden_layers
    for layer in range(layers):
        prefix = f"base_model.model.model.layers.{layer}"
        for target in (
            "self_attn.q_proj",
            "self_attn.k_proj",
            "self_attn.v_proj",
            "self_attn.o_proj",
            *FFN_TARGETS,
        ):
            module = modules[f"{prefix}.{target}"]
            assert isinstance(module, LoraLayer), f"{prefix}.{target} has no LoRA"
            assert module.r["default"] == 4
    lora_layers = [n for n, m in modules.items() if isinstance(m, LoraLayer)]
    assert len(lora_layers) == layers * len(DEFAULT_LORA_TARGETS)  # nothing else (e.g. not the heads)
    frozen = [n for n, p in model.named_parameters() if p.requires_grad and "lora_" not in n]
    assert frozen == []


def test_lora_target_typo_is_an_error(tiny_dir: Path) -> None:
    targets = ["q_proj", "audio_mlp.gate_prj", "mlp.upproj"]
    with pytest.raises(ValueError, match=r"audio_mlp\.gate_prj") as info:
        apply_lora(base_model(tiny_dir), TrainParams(lora_target_modules=targets))
    assert "mlp.upproj" in str(info.value) and "'q_proj'" not in str(info.value)


def test_modules_to_save_and_trainable_table(tiny_dir: Path) -> None:
    model = apply_lora(base_model(tiny_dir), TrainParams(lora_r=4, modules_to_save=["audio_lm_head"]))
    head = [n for n, p in model.named_parameters() if p.requires_grad and "lora_" not in n]
    assert head and all("audio_lm_head.modules_to_save" in n for n in head)

    rows = trainable_table(model)
    by_name = {r["module"]: r for r in rows}
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert by_name["TOTAL trainable"]["parameters"] == trainable
    assert by_name["TOTAL trainable"]["tensors"] == sum(1 for p in model.parameters() if p.requires_grad)
    assert rows[-1]["parameters"] == sum(p.numel() for p in model.parameters())
    layers = model.get_base_model().config.num_hidden_layers
    for target in ("q_proj", "o_proj", *FFN_TARGETS):  # text and audio FFN are separate rows
        assert by_name[f"LoRA {target}"]["tensors"] == 2 * layers  # lora_A and lora_B per layer
    head_size = model.get_base_model().audio_lm_head.weight.numel()
    assert by_name["full audio_lm_head"]["parameters"] == head_size


# --- data checks before training -------------------------------------------------------------------
def test_error_findings_stop_training_unless_skipped(small_split, tmp_path: Path) -> None:
    train, _ = small_split
    rows = read_rows(train)
    rows[1]["messages"][-1]["content"]["audio_url"] = str(tmp_path / "missing.wav")
    bad = write_rows(tmp_path / "bad.jsonl", rows)
    params = TrainParams(train_data=str(bad), val_data=None, output_dir=str(tmp_path / "out"))
    with pytest.raises(DataCheckError) as info:
        check_data(params)
    message = str(info.value)
    assert "AUDIO_NOT_FOUND" in message and rows[1]["id"] in message and "missing.wav" in message
    assert "skip_validation" in message

    params.skip_validation = True
    report = check_data(params)
    assert not report.ok  # let through the check, findings still reported


def test_sample_without_target_audio_is_refused(
    small_split, tiny_dir: Path, codes_dir: Path, tmp_path: Path
) -> None:
    train, _ = small_split
    rows = read_rows(train)
    rows[2]["messages"] = rows[2]["messages"][: rows[2]["start_index"] + 1]  # drop the target audio
    bad = write_rows(tmp_path / "prompt.jsonl", rows)
    params = params_for(tiny_dir, bad, None, tmp_path / "out", codes_dir)
    with pytest.raises(DataCheckError, match="MISSING_TARGET_AUDIO") as info:
        prepare(params)
    assert rows[2]["id"] in str(info.value)

    params.skip_validation = True  # the validator is skipped: prepare's own check still refuses it
    with pytest.raises(DataCheckError, match="cannot be trained on") as info:
        prepare(params)
    assert rows[2]["id"] in str(info.value) and "MISSING_TARGET_AUDIO" in str(info.value)
    # Only the data check's listing was written: no checkpoint, no adapter.
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["data_check.csv", "data_check.json"]
    listing = json.loads((tmp_path / "out" / "data_check.json").read_text())
    assert [(f["code"], f["sample_id"]) for f in listing["issues"]] == [
        ("MISSING_TARGET_AUDIO", rows[2]["id"])
    ]


def test_a_refusal_is_grouped_by_code_and_the_full_list_written(small_split, tmp_path: Path) -> None:
    """Many findings print as a few lines per code (count, three examples, the hint once); every
    finding is in output_dir/data_check.json and .csv."""
    train, _ = small_split
    rows = [{**json.loads(json.dumps(r)), "id": f"{r['id']}-{k}"} for k in range(4) for r in read_rows(train)]
    for i, row in enumerate(rows):
        if i % 2:
            row["messages"][-1]["content"]["audio_url"] = str(tmp_path / f"missing{i}.wav")
        else:  # a text-only assistant turn, as foreign tools write it
            row["messages"].insert(row["start_index"] + 1, {"role": "assistant", "content": "words"})
    bad = write_rows(tmp_path / "bad.jsonl", rows)
    params = TrainParams(train_data=str(bad), val_data=None, output_dir=str(tmp_path / "out"))
    with pytest.raises(DataCheckError) as info:
        check_data(params)
    message = str(info.value)
    n_missing, n_structure = len(rows) // 2, len(rows) - len(rows) // 2
    assert f"ERROR AUDIO_NOT_FOUND: {n_missing} findings" in message
    assert f"ERROR BAD_STRUCTURE: {n_structure} findings" in message
    assert message.count("hint: ") == 2  # once per code
    assert message.count("  - [") == min(3, n_missing) + min(3, n_structure)
    assert f"... and {n_missing - 3} more" in message and n_missing > 3
    assert len(message.splitlines()) < 25
    listing = json.loads((tmp_path / "out" / "data_check.json").read_text())
    codes = [f["code"] for f in listing["issues"] if f["severity"] == "error"]
    assert codes.count("AUDIO_NOT_FOUND") == n_missing and codes.count("BAD_STRUCTURE") == n_structure
    with open(tmp_path / "out" / "data_check.csv", newline="") as fh:
        table = list(csv.DictReader(fh))
    assert len(table) == len(listing["issues"]) and {"code", "sample_id", "message", "hint"} <= set(table[0])
    assert str(tmp_path / "out" / "data_check.json") in message


def test_sequence_longer_than_max_length_is_refused(
    small_split, tiny_dir: Path, codes_dir: Path, tmp_path: Path
) -> None:
    train, val = small_split
    params = params_for(tiny_dir, train, val, tmp_path / "out", codes_dir, max_length=64)
    with pytest.raises(DataCheckError, match="longer than the model's context of 64 tokens") as info:
        prepare(params)
    assert all(r["id"] in str(info.value) for r in read_rows(train))


def test_validate_data_only_stops_after_the_check(
    small_split, tiny_dir: Path, codes_dir: Path, tmp_path: Path
) -> None:
    train, val = small_split
    prepared = prepare(params_for(tiny_dir, train, val, tmp_path / "out", codes_dir, validate_data_only=True))
    assert prepared.stop and prepared.model is None
    assert prepared.report.ok and "data check only" in prepared.summary()
    assert fit(prepared) is None
    assert not (tmp_path / "out").exists()


# --- checkpoints -----------------------------------------------------------------------------------
def make_checkpoint(out: Path, step: int, complete: bool) -> Path:
    folder = out / f"checkpoint-{step}"
    folder.mkdir(parents=True)
    (folder / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    if complete:
        (folder / COMPLETE_MARKER).write_text("{}")
    return folder


def test_latest_complete_checkpoint_skips_half_written_ones(tmp_path: Path) -> None:
    assert latest_complete_checkpoint(tmp_path / "nothing-yet") is None
    make_checkpoint(tmp_path, 5, complete=True)
    newest = make_checkpoint(tmp_path, 20, complete=True)
    make_checkpoint(tmp_path, 9, complete=True)  # numeric order, not name order (9 < 20)
    half = make_checkpoint(tmp_path, 25, complete=False)  # killed while saving
    (tmp_path / "checkpoint-999").mkdir()  # nothing written yet
    (tmp_path / "checkpoint-final").mkdir()
    assert latest_complete_checkpoint(tmp_path) == str(newest)

    params = TrainParams(output_dir=str(tmp_path))
    assert resolve_resume(params) == str(newest)
    params.resume_from_checkpoint = None
    assert resolve_resume(params) is None
    params.resume_from_checkpoint = str(tmp_path / "checkpoint-999")
    with pytest.raises(FileNotFoundError, match="checkpoint-999"):
        resolve_resume(params)

    removed = remove_incomplete_checkpoints(tmp_path)
    assert sorted(Path(p).name for p in removed) == ["checkpoint-25", "checkpoint-999"]
    assert not half.exists() and newest.exists() and (tmp_path / "checkpoint-final").exists()


# --- a short training run --------------------------------------------------------------------------
def test_fit_overfits_and_writes_outputs(trained) -> None:
    params, prepared, result = trained
    out = Path(params.output_dir)
    assert result.global_step == 20 and result.resumed_from is None

    losses = [r["loss"] for r in read_rows(out / "metrics.jsonl") if "loss" in r]
    assert len(losses) == 10
    assert losses[-1] < 0.7 * losses[0], losses
    evals = [r for r in read_rows(out / "metrics.jsonl") if "eval_loss" in r]
    assert evals and all(0 <= r["eval_acc_mean"] <= 1 for r in evals)

    assert (out / "adapter" / "adapter_config.json").is_file()
    assert (out / "adapter" / "adapter_model.safetensors").is_file()
    adapter_config = json.loads((out / "adapter" / "adapter_config.json").read_text())
    assert set(adapter_config["target_modules"]) == set(DEFAULT_LORA_TARGETS)
    assert adapter_config["modules_to_save"] == ["audio_lm_head"]
    assert (out / "checkpoint-20" / COMPLETE_MARKER).is_file()
    assert list((out / "tensorboard").iterdir())

    run = json.loads((out / "run.json").read_text())
    assert run["world_size"] == 1
    assert {"torch", "transformers", "peft", "accelerate", "python"} <= set(run["versions"])
    assert run["versions"]["torch"] == torch.__version__
    assert len(run["data_fingerprint"]) == 16
    assert run["result"]["global_step"] == 20 and run["result"]["adapter_dir"] == str(out / "adapter")
    assert run["result"]["eval_trend"]["last_step"] == 20 and run["result"]["eval_trend"]["best_step"] in (
        10,
        20,
    )

    loaded, _ = load_train_params(out / "params.resolved.yaml")
    # what ran, the family's default LoRA targets written out where the params left them unset
    assert params.lora_target_modules is None
    assert loaded == dataclasses.replace(params, lora_target_modules=list(DEFAULT_LORA_TARGETS))


def test_bf16_mixed_precision_runs_under_autocast(
    tiny_dir: Path, small_split: tuple[Path, Path], codes_dir: Path, tmp_path: Path
) -> None:
    """mixed_precision: bf16 (the GPU setting) trains the LoRA under bf16 autocast; on the CPU too."""
    train, val = small_split
    params = params_for(
        tiny_dir, train, val, tmp_path / "out", codes_dir, max_steps=3, batch_size=2, lora_r=4, lora_alpha=8,
        mixed_precision="bf16", logging_steps=1, eval_steps=3, save_steps=3,
    )  # fmt: skip
    prepared = prepare(params)
    seen: list[torch.dtype] = []
    layer = prepared.model.model.layers[0].self_attn.q_proj  # becomes the LoRA layer's base_layer
    layer.register_forward_hook(lambda module, args, output: seen.append(output.dtype))
    result = fit(prepared)
    assert result.global_step == 3
    assert seen and set(seen) == {torch.bfloat16}, set(seen)
    rows = read_rows(tmp_path / "out" / "metrics.jsonl")
    assert all(np.isfinite(r["loss"]) for r in rows if "loss" in r)
    assert any("eval_loss" in r and np.isfinite(r["eval_loss"]) for r in rows)
    assert (tmp_path / "out" / "adapter" / "adapter_model.safetensors").is_file()


def test_a_run_uses_the_checkpointing_names_transformers_keeps(
    tiny_dir: Path, small_split: tuple[Path, Path], codes_dir: Path, tmp_path: Path, monkeypatch
) -> None:
    """A short run with activation checkpointing on draws none of the warnings about what transformers
    v6 removes (``gradient_checkpointing`` arguments and methods, ``is_gradient_checkpointing``)."""
    from transformers import TrainingArguments

    def checkpointing_deprecations(caught: list[warnings.WarningMessage]) -> list[str]:
        return [
            f"{w.filename}:{w.lineno}: {w.message}"
            for w in caught
            if issubclass(w.category, (FutureWarning, DeprecationWarning))
            and "checkpointing" in str(w.message)
        ]

    with warnings.catch_warnings(record=True) as caught:  # the check sees the old names' warnings
        warnings.simplefilter("always")
        TrainingArguments(output_dir=str(tmp_path / "old-names"), gradient_checkpointing=True)
    assert checkpointing_deprecations(caught)

    monkeypatch.setenv("WORKBENCH_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(probe_module, "_default_cache", None)
    train, _ = small_split
    params = params_for(
        tiny_dir, train, None, tmp_path / "out", codes_dir, max_steps=2, batch_size=2, lora_r=4, lora_alpha=8,
        activation_checkpointing=True, logging_steps=1, save_steps=2,
    )  # fmt: skip
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = fit(prepare(params))
    assert result.global_step == 2
    assert checkpointing_deprecations(caught) == []
    assert "activation_checkpointing: true" in (tmp_path / "out" / "params.resolved.yaml").read_text()


def test_the_same_params_give_the_same_adapter(trained, tmp_path: Path) -> None:
    """LoRA starts from random A matrices drawn before the Trainer seeds anything: they are seeded
    from ``params.seed`` too, so a second run of the same params is bit-identical."""
    import dataclasses

    from safetensors.torch import load_file

    params, _, _ = trained
    torch.manual_seed(12345)  # whatever ran before must not matter
    again = dataclasses.replace(params, output_dir=str(tmp_path / "again"), merge=False)
    fit(prepare(again))
    first = load_file(Path(params.output_dir) / "adapter" / "adapter_model.safetensors")
    second = load_file(tmp_path / "again" / "adapter" / "adapter_model.safetensors")
    assert first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)


def test_fit_resumes_from_the_latest_complete_checkpoint(trained, tmp_path: Path) -> None:
    import dataclasses

    params, _, _ = trained
    out = Path(shutil.copytree(params.output_dir, tmp_path / "out"))
    (out / "run.json").unlink()  # what the copied run wrote after training
    shutil.rmtree(out / "adapter")
    shutil.rmtree(out / "merged")
    with open(out / "metrics.jsonl", "a") as fh:  # logged by a run killed before its next save
        fh.write(json.dumps({"step": 22, "loss": 99.0}) + "\n" + '{"step": 23, "lo')
    (out / "checkpoint-23").mkdir()  # its half-written save

    again = dataclasses.replace(params, output_dir=str(out), max_steps=24, save_steps=2, merge=False)
    result = fit(prepare(again))
    assert result.resumed_from == str(out / "checkpoint-20") and result.global_step == 24
    steps = [r["step"] for r in read_rows(out / "metrics.jsonl") if "loss" in r]
    assert steps == [*range(2, 21, 2), 22, 24]  # the killed run's rows are gone, none repeated
    assert 99.0 not in [r.get("loss") for r in read_rows(out / "metrics.jsonl")]
    assert latest_complete_checkpoint(out) == str(out / "checkpoint-24")
    assert not (out / "checkpoint-23").exists()


def test_resume_refuses_what_cannot_work_and_names_what_changed(trained, tmp_path: Path) -> None:
    """A changed adapter shape or base model, or a fresh start over earlier checkpoints, is refused
    before training; a changed learning rate or data path is allowed and reported."""
    import dataclasses

    params, _, _ = trained
    out = Path(shutil.copytree(params.output_dir, tmp_path / "out"))
    same = dataclasses.replace(params, output_dir=str(out))
    latest = resolve_resume(same)
    assert Path(latest).name == "checkpoint-20"
    assert check_resume(same, latest) == []

    for change, message in [
        ({"lora_r": 16}, "lora_r: the checkpoint has 8, this run asks for 16"),
        ({"lora_target_modules": ["q_proj", "v_proj"]}, "lora_target_modules: the checkpoint has"),
        (
            {"modules_to_save": None},
            "modules_to_save: the checkpoint has ['audio_lm_head'], this run asks for None",
        ),
        ({"model": str(tmp_path / "other-model")}, "model: the checkpoint was trained on"),
    ]:
        with pytest.raises(ResumeError, match=re.escape(message)):
            check_resume(dataclasses.replace(same, **change), latest)
    changed = dataclasses.replace(
        same, learning_rate=1e-3, train_data=str(tmp_path / "more.jsonl"), max_steps=40
    )
    notes = check_resume(changed, latest)
    assert notes == ["train_data: " + repr(params.train_data) + " -> " + repr(str(tmp_path / "more.jsonl")),
                     "learning_rate: 0.01 -> 0.001"]  # fmt: skip
    with pytest.raises(
        ResumeError, match="holds complete checkpoints of an earlier run .latest: checkpoint-20."
    ):
        check_resume(dataclasses.replace(same, resume_from_checkpoint=None), None)
    assert check_resume(dataclasses.replace(same, output_dir=str(tmp_path / "new")), None) == []

    # Through fit: refused before any step, and the earlier run's params file is left as it was.
    before = (out / "params.resolved.yaml").read_text()
    with pytest.raises(ResumeError, match="lora_r"):
        fit(prepare(dataclasses.replace(same, lora_r=4, lora_alpha=8, max_steps=22)))
    assert (out / "params.resolved.yaml").read_text() == before
    assert latest_complete_checkpoint(out) == latest


def test_eval_trend_flags_a_rising_validation_loss() -> None:
    history = [{"step": 10, "loss": 5.0}, {"step": 10, "eval_loss": 3.0}, {"step": 20, "eval_loss": 2.0},
               {"step": 30, "eval_loss": 2.5}, {"step": 30, "train_loss": 1.0}]  # fmt: skip
    trend = eval_trend(history)
    assert trend["rising"] and (trend["best_step"], trend["best_eval_loss"]) == (20, 2.0)
    assert trend["note"] == (
        "validation loss rose from 2.000 (step 20) to 2.500 (step 30): likely over-fitting; "
        "listen to the checkpoints near step 20 in notebook 05"
    )
    result = TrainResult(
        output_dir="out", adapter_dir="out/adapter", global_step=30, train_loss=1.0, eval_trend=trend
    )
    assert "; validation loss rose from 2.000 (step 20)" in result.summary()

    falling = eval_trend([{"step": 10, "eval_loss": 3.0}, {"step": 20, "eval_loss": 2.0}])
    assert not falling["rising"] and falling["note"] is None
    assert not eval_trend([{"step": 10, "eval_loss": 2.0}, {"step": 20, "eval_loss": 2.01}])[
        "rising"
    ]  # noise
    assert eval_trend([{"step": 10, "eval_loss": 2.0}]) is None
    resumed = [{"step": 10, "eval_loss": 2.0}, {"step": 20, "eval_loss": 3.0}, {"step": 20, "eval_loss": 1.5}]
    assert not eval_trend(resumed)["rising"]  # the resumed run's value for a step replaces the killed run's


def test_schedule_predicts_the_trainers_step_count(
    tiny_dir: Path, small_split: tuple[Path, Path], codes_dir: Path, tmp_path: Path
) -> None:
    """The schedule printed before step 1 is the Trainer's own count (4 samples, batch 1 x 3 accumulation:
    a remainder batch makes a second step per epoch)."""
    train, _ = small_split
    params = params_for(
        tiny_dir, train, None, tmp_path / "out", codes_dir, num_epochs=1.5, batch_size=1, gradient_accumulation_steps=3,
        lora_r=4, lora_alpha=8, save_steps=0.5, logging_steps=1,
    )  # fmt: skip
    prepared = prepare(params)
    schedule = prepared.schedule
    assert (schedule["effective_batch"], schedule["steps_per_epoch"], schedule["total_steps"]) == (3, 2, 3)
    summary = prepared.summary()
    assert "schedule: effective batch 3 (1 x 3 accumulation x 1 rank); 2 steps per epoch; 3 steps" in summary
    assert schedule["save_every"] == 2 and schedule["notes"] == []  # half of 3 steps, rounded up
    assert fit(prepared).global_step == schedule["total_steps"]
    assert (
        tmp_path / "out" / "checkpoint-2" / COMPLETE_MARKER
    ).is_file()  # the Trainer read 0.5 the same way
    assert training_schedule(dataclasses.replace(params, save_steps=100), 4, 1)["notes"] == [
        "save_steps 100 >= 3 steps: no checkpoint before the end"
    ]


def test_schedule_arithmetic_and_notes() -> None:
    h200 = TrainParams(batch_size=4, gradient_accumulation_steps=4, num_epochs=3, warmup_ratio=0.05, save_steps=250,
                       eval_steps=250)  # fmt: skip
    schedule = training_schedule(h200, 100_000, 8)
    assert (schedule["effective_batch"], schedule["steps_per_epoch"], schedule["total_steps"]) == (
        128,
        782,
        2346,
    )
    assert schedule["warmup_steps"] == 118 and schedule["notes"] == []
    small = training_schedule(h200, 10_000, 8)  # 79 steps per epoch: 237 steps never reach save_steps 250
    assert small["notes"][0] == "save_steps 250 >= 237 steps: no checkpoint before the end"
    assert "effective batch 128 (4 x 4 accumulation x 8 ranks)" in schedule["text"]
    assert training_schedule(dataclasses.replace(h200, save_steps=0.1), 100_000, 8)["save_every"] == 235
    tiny = training_schedule(
        TrainParams(val_data="val.jsonl", batch_size=8, max_steps=10, eval_steps=20, save_steps=5), 5, 1
    )
    assert tiny["total_steps"] == 10 and tiny["steps_per_epoch"] == 1
    assert tiny["notes"] == ["eval_steps 20 >= 10 steps: no evaluation before the end",
                             "5 samples < effective batch 8: every step sees the whole set"]  # fmt: skip


def test_merged_loads_without_peft_and_matches_the_adapter(trained, tiny_dir: Path) -> None:
    from peft import PeftModel
    from transformers import HiggsAudioV2ForConditionalGeneration

    from workbench.models.peft_wrapping import peft_wrapping
    from workbench.training.collate import HiggsAudioCollator

    params, prepared, _ = trained
    out = Path(params.output_dir)
    merged = HiggsAudioV2ForConditionalGeneration.from_pretrained(out / "merged").eval()
    assert not any("lora" in k or "modules_to_save" in k for k in merged.state_dict())
    assert not (out / "merged" / "adapter_config.json").exists()
    with peft_wrapping():
        peft_model = PeftModel.from_pretrained(base_model(tiny_dir), out / "adapter").eval()

    collator = HiggsAudioCollator(prepared.processor, prepared.codes_cache)
    batch = collator(prepared.train_samples[:2] + prepared.val_samples[:1])
    batch = {k: v for k, v in batch.items() if k != "audio_labels"}
    with torch.no_grad():
        expected = peft_model(**batch).logits
        got = merged(**batch).logits
        base = base_model(tiny_dir).eval()(**batch).logits
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)
    assert not torch.allclose(got, base, atol=1e-2)  # the training changed the model


GENERATE = """
import json, sys
import numpy as np, torch
from peft import PeftModel
from transformers import AutoProcessor, HiggsAudioV2ForConditionalGeneration

tiny, adapter = sys.argv[1], sys.argv[2]
processor = AutoProcessor.from_pretrained(tiny)
model = PeftModel.from_pretrained(HiggsAudioV2ForConditionalGeneration.from_pretrained(tiny), adapter).eval()
t = np.arange(int(0.6 * 24000)) / 24000
reference = (0.3 * np.sin(2 * np.pi * 200 * t)).astype(np.float32)
conversation = [
    {"role": "system", "content": [{"type": "text", "text": "Generate speech in the provided voice."}]},
    {"role": "user", "content": [{"type": "text", "text": "The quick brown fox jumps over the lazy dog."}]},
    {"role": "assistant", "content": [{"type": "audio", "audio": reference}]},
    {"role": "user", "content": [{"type": "text", "text": "A gentle breeze moved through the open window."}]},
]
inputs = processor.apply_chat_template(conversation, add_generation_prompt=True, tokenize=True, return_dict=True,
                                       return_tensors="pt", processor_kwargs={"sampling_rate": 24000})
prompt_frames = inputs["audio_input_ids"].shape[1]
torch.manual_seed(0)
with torch.no_grad():
    codes = model.generate(**inputs, max_new_tokens=20, do_sample=False)
waveform = processor.decode(codes)
config = model.get_base_model().config
print(json.dumps({
    "peft": type(model).__name__,
    "lora_layers": sum("lora_A" in n for n, _ in model.named_parameters()),
    "codes_shape": list(codes.shape), "prompt_frames": prompt_frames,
    "codes_max": int(codes.max()), "codebook_size": config.codebook_size, "num_codebooks": config.num_codebooks,
    "waveform_shape": list(waveform.shape), "finite": bool(torch.isfinite(waveform).all()),
    "peak": float(waveform.abs().max()),
}))
"""


def test_adapter_generates_audio_in_a_fresh_process(trained, tiny_dir: Path, tmp_path: Path) -> None:
    params, _, _ = trained
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WORKBENCH_CACHE_DIR": str(tmp_path / "cache")}
    proc = subprocess.run(
        [sys.executable, "-c", GENERATE, str(tiny_dir), str(Path(params.output_dir) / "adapter")],
        capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-4000:]
    info = json.loads(proc.stdout.strip().splitlines()[-1])
    assert info["peft"] == "PeftModel" and info["lora_layers"] > 0
    batch, frames, codebooks = info["codes_shape"]
    assert batch == 1 and codebooks == info["num_codebooks"]
    assert 0 < frames - info["prompt_frames"] <= 20
    assert 0 <= info["codes_max"] < info["codebook_size"]
    (samples,) = info["waveform_shape"]
    assert samples > 0 and samples % 960 == 0  # whole codec frames at 24 kHz / 25 frames per second
    assert info["finite"]
