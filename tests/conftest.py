"""Shared fixtures: an isolated cache folder and real audio written per test."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from workbench.data import probe as probe_module


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path_factory, monkeypatch):
    """Keep the audio probe cache out of ~/.cache and fresh for every test."""
    cache = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv("WORKBENCH_CACHE_DIR", str(cache))
    monkeypatch.setattr(probe_module, "_default_cache", None)
    return cache


def voiced(seconds: float = 1.5, sr: int = 24_000, f0: float = 150.0, amp: float = 0.4) -> np.ndarray:
    """A speech-like voiced signal: harmonics under a syllable envelope, with short silent edges."""
    n = int(seconds * sr)
    t = np.arange(n) / sr
    sig = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 6))
    env = np.sin(np.pi * t / seconds) ** 0.5
    out = sig * env
    return (amp * out / np.abs(out).max()).astype(np.float32)


@pytest.fixture
def make_wav(tmp_path):
    """``make_wav("a.wav", seconds=1.0, sr=24000, channels=1, data=None)`` writes a real WAV file."""

    def _make(
        name: str,
        seconds: float = 1.5,
        sr: int = 24_000,
        channels: int = 1,
        data=None,
        subtype=None,
        f0=150.0,
    ):
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        sig = voiced(seconds, sr, f0) if data is None else np.asarray(data)
        if channels > 1 and sig.ndim == 1:
            sig = np.stack([sig] * channels, axis=1)
        sf.write(str(path), sig, sr, subtype=subtype or "PCM_16")
        return path

    return _make


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory):
    """The demo pipeline (notebooks 01-03 under papermill) run once per test session."""
    from workbench.demo import run_demo

    run = tmp_path_factory.mktemp("demo") / "run"
    result = run_demo(run)
    assert result.ok, result.format_text()
    return run


def write_jsonl(path: Path, records: list) -> Path:
    """Write records (dicts, or raw strings for malformed lines) as JSON Lines."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records), encoding="utf-8"
    )
    return path


def read_jsonl(path: Path) -> list[dict]:
    """The records of a JSON Lines file ([] when it does not exist)."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def save_random_adapter(model, target_modules: list[str], folder: Path) -> Path:
    """Wrap ``model`` with a LoRA whose B matrices are random (seed 0), so it changes the outputs; save it."""
    import torch
    from peft import LoraConfig, get_peft_model

    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=target_modules))
    torch.manual_seed(0)
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    peft_model.save_pretrained(folder)
    return folder
