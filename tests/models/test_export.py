"""Export: an adapter merged into its base loads without peft, in the HF and the original layout."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from conftest import save_random_adapter

from workbench.demo import make_tiny_model
from workbench.models.export import adapter_base_model, export, is_adapter_dir
from workbench.models.model import load_model_and_processor
from workbench.models.original_format import is_original_checkpoint


@pytest.fixture(scope="module")
def adapter(tmp_path_factory):
    """A tiny model and a LoRA adapter whose B matrices are non-zero (so it changes the outputs)."""
    root = tmp_path_factory.mktemp("export")
    base = make_tiny_model(root / "base")
    model, _ = load_model_and_processor(base)
    return base, save_random_adapter(model, ["q_proj", "audio_mlp.up_proj"], root / "adapter")


def _logits(model) -> torch.Tensor:
    ids = torch.tensor([[0, 2, 50, 60, 70, 3, 80, 90, 4]])
    with torch.no_grad():
        return model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits


def test_adapter_records_its_base(adapter):
    base, adapter_dir = adapter
    assert is_adapter_dir(adapter_dir) and not is_adapter_dir(base)
    assert adapter_base_model(adapter_dir) == str(base)


def test_hf_export_loads_without_peft_and_matches_the_adapter(adapter, tmp_path):
    from peft import PeftModel
    from transformers import HiggsAudioV2ForConditionalGeneration

    base, adapter_dir = adapter
    out = export(adapter_dir, tmp_path / "merged")
    merged = HiggsAudioV2ForConditionalGeneration.from_pretrained(out).eval()
    model, _ = load_model_and_processor(base)
    with_adapter = PeftModel.from_pretrained(model, adapter_dir).eval()
    plain, _ = load_model_and_processor(base)
    expected = _logits(with_adapter)
    assert torch.allclose(_logits(merged), expected, atol=1e-5)
    assert not torch.allclose(_logits(plain.eval()), expected, atol=1e-3), (
        "the adapter should change the logits"
    )
    # the processor travels with the merged weights
    _, processor = load_model_and_processor(out)
    assert processor.audio_tokenizer is not None


def test_original_export_is_detected_and_round_trips(adapter, tmp_path):
    from workbench.models.original_convert import import_original

    _, adapter_dir = adapter
    out = export(adapter_dir, tmp_path / "original", format="original")
    assert is_original_checkpoint(out)
    back = import_original(out, tmp_path / "back")
    reloaded, _ = load_model_and_processor(back)
    merged = export(adapter_dir, tmp_path / "merged")
    expected, _ = load_model_and_processor(merged)
    assert torch.allclose(_logits(reloaded.eval()), _logits(expected.eval()), atol=1e-5)


def test_export_refuses_to_overwrite_and_names_missing_paths(adapter, tmp_path):
    _, adapter_dir = adapter
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError):
        export(adapter_dir, tmp_path / "busy")
    assert (tmp_path / "busy" / "keep.txt").read_text() == "mine"
    with pytest.raises(FileNotFoundError, match="nope"):
        export(tmp_path / "nope", tmp_path / "out")
    with pytest.raises(ValueError, match="onnx"):
        export(adapter_dir, tmp_path / "out2", format="onnx")


def test_cli_export_exit_codes(adapter, tmp_path):
    _, adapter_dir = adapter
    ok = subprocess.run(
        [sys.executable, "-m", "workbench.cli", "export", str(adapter_dir), "-o", str(tmp_path / "m")],
        capture_output=True,
        text=True,
    )
    assert ok.returncode == 0, ok.stderr
    assert (tmp_path / "m" / "config.json").exists()
    missing = subprocess.run(
        [sys.executable, "-m", "workbench.cli", "export", str(tmp_path / "x"), "-o", str(tmp_path / "n")],
        capture_output=True,
        text=True,
    )
    assert missing.returncode == 2 and "not found" in missing.stderr


def test_original_layout_loads_through_the_workbench_loader(adapter, tmp_path, monkeypatch):
    """An original-layout folder given as `model` is converted once (cached) and loads."""
    base, _ = adapter
    monkeypatch.setenv("WORKBENCH_CACHE_DIR", str(tmp_path / "cache"))
    original = export(base, tmp_path / "original", format="original")
    model, processor = load_model_and_processor(original)
    expected, _ = load_model_and_processor(base)
    assert torch.equal(_logits(model.eval()), _logits(expected.eval()))
    converted = list((tmp_path / "cache" / "converted").iterdir())
    assert len(converted) == 1
    load_model_and_processor(original)  # second use: the cached conversion, no new folder
    assert list((tmp_path / "cache" / "converted").iterdir()) == converted
