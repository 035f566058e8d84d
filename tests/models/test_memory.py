"""Tests for workbench.models.memory: what a model needs, what fits, and refusals before any loading."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from workbench.cli import main
from workbench.demo import make_tiny_model
from workbench.models.memory import (
    GIB,
    InsufficientMemoryError,
    available_bytes,
    check_fits,
    cpu_weight_dtype,
    parameter_count,
    weight_bytes,
)


def test_full_size_counts_and_bytes_without_loading_weights() -> None:
    count = parameter_count("random-full")
    assert 5.3e9 < count < 5.5e9
    assert weight_bytes("random-full", torch.bfloat16) == 2 * count
    assert weight_bytes("random-full", torch.float32) == 4 * count


def test_memory_limit_caps_what_is_available(monkeypatch) -> None:
    monkeypatch.setenv("WORKBENCH_MEMORY_LIMIT_GB", "2")
    assert available_bytes() <= 2 * GIB
    with pytest.raises(
        InsufficientMemoryError, match=r"needs about 3\.0 GiB.*2\.0 GiB available\. Hint: go bigger"
    ):
        check_fits(3 * GIB, "the work", "go bigger")
    check_fits(None, "unknown size", "nothing")  # unknown: not refused
    monkeypatch.setenv("WORKBENCH_MEMORY_LIMIT_GB", "lots")
    with pytest.raises(ValueError, match="WORKBENCH_MEMORY_LIMIT_GB"):
        available_bytes()


def test_cpu_inference_dtype_is_float32_where_it_fits(tmp_path: Path, monkeypatch) -> None:
    tiny = make_tiny_model(tmp_path / "tiny")
    assert cpu_weight_dtype(str(tiny)) is None  # float32
    monkeypatch.setenv("WORKBENCH_MEMORY_LIMIT_GB", "24")
    assert cpu_weight_dtype("random-full") == torch.bfloat16  # 21.5 GB of float32 weights: bf16
    assert cpu_weight_dtype("random-full", preferred=torch.float32) == torch.float32


def test_export_refuses_before_loading_when_memory_is_short(tmp_path: Path, monkeypatch, capsys) -> None:
    """A merge of the full-size model needs ~12 GiB: with 4 GiB available it is refused, with the
    sizes and what to do instead, and nothing is written."""
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(
        json.dumps({"base_model_name_or_path": "random-full", "peft_type": "LORA", "r": 64})
    )
    monkeypatch.setenv("WORKBENCH_MEMORY_LIMIT_GB", "4")
    assert main(["export", str(adapter), "-o", str(tmp_path / "exported")]) == 2
    err = capsys.readouterr().err
    assert "export: merging" in err and "needs about 12.0 GiB" in err and "4.0 GiB available" in err
    assert "workbench generate --adapter" in err
    assert not (tmp_path / "exported").exists()
