"""Tests for workbench.doctor and ``workbench doctor``: real checks on this machine, no mocks of torch."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from workbench.cli import main
from workbench.data.sample import Audio, Message, Sample, write_samples
from workbench.demo import make_tiny_model
from workbench.doctor import (
    FAIL,
    NO_GPU,
    PASS,
    WARN,
    Check,
    all_passed,
    check_data,
    check_disk,
    check_end_ids,
    check_model,
    check_offline,
    check_torch,
    doctor,
    format_checks,
)

STATUSES = (PASS, WARN, FAIL)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("tiny") / "model", seed=0)


@pytest.fixture
def data_file(tmp_path: Path) -> Path:
    sample = Sample(
        id="s1",
        messages=(
            Message("system", "Generate speech in the provided voice."),
            Message("user", "Hello there."),
            Message("assistant", Audio(str(tmp_path / "a.wav"))),
        ),
        start_index=2,
    )
    path = tmp_path / "train.jsonl"
    write_samples(path, [sample])
    return path


def by_name(checks: list[Check]) -> dict[str, Check]:
    return {c.name: c for c in checks}


def test_doctor_passes_with_valid_paths(tiny: Path, data_file: Path, tmp_path: Path) -> None:
    checks = doctor(model=str(tiny), data=[data_file], output_dir=tmp_path / "out")
    names = by_name(checks)
    for name in (
        "python",
        "torch",
        "torchaudio",
        "transformers",
        "peft",
        "accelerate",
        "gpu",
        "bf16",
        "nccl",
    ):
        assert name in names, name
    assert {"disk", "model", "data", "hf offline"} <= set(names)
    assert names["speaker score"].status == PASS and "GE2E" in names["speaker score"].detail
    assert names["naturalness"].status == PASS and "DNSMOS" in names["naturalness"].detail
    assert names["intelligibility"].status == PASS and "Whisper tiny.en" in names["intelligibility"].detail
    assert all(c.status in STATUSES for c in checks)
    assert names["transformers"].status == PASS and "higgs_audio_v2" in names["transformers"].detail
    assert names["torchaudio"].status == PASS
    assert names["model"].status == PASS and str(tiny) in names["model"].detail
    assert names["data"].status == PASS and str(data_file) in names["data"].detail
    assert all_passed(checks), format_checks(checks)
    if not torch.cuda.is_available():  # this machine: WARN, never FAIL, without a GPU
        for name in ("gpu", "bf16", "nccl"):
            assert names[name].status == WARN and NO_GPU in names[name].detail


def test_cli_exit_0_and_one_line_per_check(tiny: Path, data_file: Path, tmp_path: Path, capsys) -> None:
    code = main(["doctor", "--model", str(tiny), "--data", str(data_file), "--output-dir", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0, out
    lines = out.strip().splitlines()
    assert all(line.split()[0] in STATUSES for line in lines[:-1]), out
    assert "0 failed" in lines[-1]
    if not torch.cuda.is_available():
        assert any(line.startswith("WARN") and "gpu" in line and NO_GPU in line for line in lines)


def test_cli_exit_1_with_missing_model_names_the_path(tmp_path: Path, capsys) -> None:
    missing = tmp_path / "no-such-model"
    code = main(["doctor", "--model", str(missing), "--output-dir", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 1
    model_line = next(line for line in out.splitlines() if line.split()[1:2] == ["model"])
    assert model_line.startswith(FAIL) and str(missing) in model_line and "hint:" in model_line


def test_data_problems_fail_with_the_path_and_line(tmp_path: Path) -> None:
    missing = check_data(tmp_path / "missing.jsonl")
    assert missing.status == FAIL and str(tmp_path / "missing.jsonl") in missing.detail
    raw = tmp_path / "raw.jsonl"
    raw.write_text('{"audio_filepath": "a.wav", "text": "not canonical"}\n')
    bad = check_data(raw)
    assert bad.status == FAIL and f"{raw}:1" in bad.detail and "workbench convert" in (bad.hint or "")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    assert check_data(empty).status == FAIL


def test_model_variants(tmp_path: Path) -> None:
    assert check_model("random-full").status == PASS
    not_a_model = tmp_path / "folder"
    not_a_model.mkdir()
    check = check_model(str(not_a_model))
    assert check.status == FAIL and "config.json" in check.detail and check.hint
    assert check_model("nobody/not-in-the-cache").status == FAIL


def test_higgs_tts3_folders_and_unknown_families(tmp_path: Path) -> None:
    """A tiny Higgs TTS 3 passes; without its codec it fails naming what is missing; a folder of
    another model fails naming its model_type."""
    import json
    import shutil

    tts3 = make_tiny_model(tmp_path / "tts3", family="higgs-tts-3")
    check = check_model(str(tts3))
    assert check.status == PASS and "Higgs TTS 3" in check.detail
    assert check_end_ids(str(tts3)) is None  # v3 stops by its sampler, not an end id
    shutil.rmtree(tts3 / "audio_tokenizer")
    check = check_model(str(tts3))
    assert (
        check.status == FAIL and "Higgs TTS 3" in check.detail and "higgs-audio-v2-tokenizer" in check.detail
    )
    other = tmp_path / "bert"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"model_type": "bert", "architectures": ["BertModel"]}))
    (other / "model.safetensors").write_bytes(b"")
    check = check_model(str(other))
    assert check.status == FAIL and "'bert'" in check.detail and "higgs_multimodal_qwen3" in check.detail


def test_disk_warns_under_the_threshold_and_uses_an_existing_parent(tmp_path: Path) -> None:
    target = tmp_path / "not" / "yet" / "created"
    assert check_disk(target, min_free_gb=0).status == PASS
    low = check_disk(target, min_free_gb=1e12)
    assert low.status == WARN and str(target) in low.detail and low.hint


def test_torchaudio_mismatch_fails(monkeypatch) -> None:
    torchaudio = pytest.importorskip("torchaudio")
    monkeypatch.setattr(torchaudio, "__version__", "2.0.1")
    check = by_name(check_torch())["torchaudio"]
    assert (
        check.status == FAIL
        and "does not match" in check.detail
        and torch.__version__.split("+")[0] in check.hint
    )


class _HideResemblyzer:
    """An import finder that reports ``resemblyzer`` as a namespace with no folder: not installed."""

    def find_spec(self, name, path=None, target=None):
        import importlib.machinery

        return importlib.machinery.ModuleSpec(name, None) if name == "resemblyzer" else None


def test_a_missing_voice_scorer_warns_with_the_install_command(monkeypatch) -> None:
    import sys

    from workbench.doctor import check_voice_scorers
    from workbench.evaluation import voice

    monkeypatch.setattr(sys, "meta_path", [_HideResemblyzer(), *sys.meta_path])
    voice.speaker_encoder.cache_clear()
    try:
        checks = by_name(check_voice_scorers())
    finally:
        voice.speaker_encoder.cache_clear()
    speaker = checks["speaker score"]
    assert speaker.status == WARN and "'resemblyzer' package is not installed" in speaker.detail
    assert speaker.hint.startswith("pip install --no-deps Resemblyzer"), speaker.hint
    assert checks["naturalness"].status == PASS


def test_offline_setting(monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert check_offline().status == PASS
    monkeypatch.delenv("HF_HUB_OFFLINE")
    check = check_offline()
    assert check.status == WARN and "HF_HUB_OFFLINE=1" in check.hint


def test_format_line_and_summary() -> None:
    checks = [Check("a", PASS, "fine"), Check("b", FAIL, "broken", "fix it")]
    text = format_checks(checks)
    assert text.splitlines()[1] == "FAIL  b              broken  (hint: fix it)"
    assert "1 passed, 0 warnings, 1 failed" in text and not all_passed(checks)


def test_params_file_checks_validity_launch_precision_and_its_paths(
    tiny: Path, data_file: Path, tmp_path: Path
) -> None:
    """`workbench doctor --params`: the pre-flight of a production run on this machine."""
    root = Path(__file__).resolve().parents[1] / "params"
    good = tmp_path / "mine.yaml"
    good.write_text(
        f"num_processes: 2\nenv: {{CUDA_VISIBLE_DEVICES: ''}}\nmodel: {tiny}\ntrain_data: {data_file}\n"
        f"val_data: null\noutput_dir: {tmp_path / 'run'}\nmixed_precision: 'no'\n"
    )
    names = by_name(doctor(params_file=good))
    assert names["params"].status == PASS and str(good) in names["params"].detail
    assert (
        names["launch"].status == PASS
        and "2 rank(s) on this machine, 0 GPUs: ranks run on the CPU" in names["launch"].detail
    )
    assert "precision" not in names  # fp32 runs anywhere
    assert names["model"].status == PASS and str(tiny) in names["model"].detail  # paths taken from the file
    assert names["data"].status == PASS and str(data_file) in names["data"].detail

    h200 = by_name(doctor(params_file=root / "h200x8.yaml"))
    assert h200["params"].status == PASS
    if not torch.cuda.is_available():
        assert h200["launch"].status == PASS and "8 rank(s) on this machine" in h200["launch"].detail
        assert h200["precision"].status == WARN and "bf16 without a GPU" in h200["precision"].detail
    assert h200["model"].status == FAIL  # the 3B model is not in this machine's cache

    bad = tmp_path / "bad.yaml"
    bad.write_text("lora_r: 0\nlerning_rate: 1e-4\n")
    checks = doctor(params_file=bad)
    line = by_name(checks)["params"]
    assert (
        line.status == FAIL
        and "lora_r: must be at least 1" in line.detail
        and "did you mean 'learning_rate'" in line.detail
    )
    assert not all_passed(checks)


def test_end_ids_warn_when_generation_would_not_stop(tiny: Path, tmp_path: Path, capsys) -> None:
    ok = check_end_ids(str(tiny))
    assert ok is not None and ok.status == PASS and "generation stops" in ok.detail

    copy = Path(shutil.copytree(tiny, tmp_path / "copy"))
    config = json.loads((copy / "config.json").read_text())
    generation = json.loads((copy / "generation_config.json").read_text())
    generation["eos_token_id"] = config["pad_token_id"]  # the release's generation eos next to <|eot_id|>
    (copy / "generation_config.json").write_text(json.dumps(generation))
    warn = check_end_ids(str(copy))
    assert warn is not None and warn.status == WARN and str(copy) in warn.detail
    assert f"{config['eos_token_id']}" in warn.detail and f"{config['pad_token_id']}" in warn.detail
    assert "generation_config.json" in (warn.hint or "")

    code = main(["doctor", "--model", str(copy), "--output-dir", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0, out  # a warning, not a failure
    assert any(
        line.startswith(WARN) and "end ids" in line and "max_new_tokens" in line for line in out.splitlines()
    )
    assert check_end_ids("random-full") is None
    assert check_end_ids(str(tmp_path / "missing")) is None  # the model check reports it


def test_original_layout_model_checks(tiny: Path, tmp_path: Path) -> None:
    from workbench.models.original_convert import export_original

    original = export_original(tiny, tmp_path / "original")
    assert check_model(str(original)).status == PASS
    ids = check_end_ids(str(original))
    assert ids is not None and ids.status == PASS and "after import" in ids.detail

    config = json.loads((original / "config.json").read_text())
    config["use_delay_pattern"] = False
    (original / "config.json").write_text(json.dumps(config))
    refused = check_model(str(original))
    assert refused.status == FAIL and "use_delay_pattern is false" in refused.detail
    assert check_end_ids(str(original)) is None
