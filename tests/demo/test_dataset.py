"""Tests for workbench.demo.dataset: the embedded demo dataset is deterministic and safe to write."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from workbench.demo import demo_data, demo_inputs
from workbench.notebook.steps import resolve_inputs


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_demo_data_is_deterministic_and_refuses_non_empty_folder(tmp_path):
    demo_data(tmp_path / "d1")
    demo_data(tmp_path / "d2")
    files1 = sorted(p.relative_to(tmp_path / "d1") for p in (tmp_path / "d1").rglob("*") if p.is_file())
    files2 = sorted(p.relative_to(tmp_path / "d2") for p in (tmp_path / "d2").rglob("*") if p.is_file())
    assert files1 == files2
    for rel in files1:
        if rel.name != "demo.json":
            assert sha(tmp_path / "d1" / rel) == sha(tmp_path / "d2" / rel), rel
    with pytest.raises(FileExistsError):
        demo_data(tmp_path / "d1")
    demo_data(tmp_path / "d1", overwrite=True)


def test_demo_inputs_are_the_notebooks_default_and_resolve_as_given(tmp_path):
    inputs = demo_inputs(tmp_path / "01_inspect_data")
    info = json.loads((tmp_path / "01_inspect_data" / "demo_data" / "demo.json").read_text())
    assert inputs == [str(tmp_path / "01_inspect_data" / "demo_data" / p) for p in info["inputs"]]
    assert resolve_inputs(inputs) == inputs  # every path exists
    assert demo_inputs(tmp_path / "01_inspect_data") == inputs  # a rerun writes it afresh
    for empty in (None, "", []):
        with pytest.raises(ValueError, match="input_data: no input given"):
            resolve_inputs(empty)
    with pytest.raises(FileNotFoundError, match="nowhere.jsonl"):
        resolve_inputs([*inputs, str(tmp_path / "nowhere.jsonl")])
