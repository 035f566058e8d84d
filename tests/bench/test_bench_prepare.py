"""`workbench bench prepare`: real-time factors of segmentation and of prepare with ASR / subtitles."""

from __future__ import annotations

import subprocess
import sys

import pytest

from workbench.bench.prepare import SEGMENTATION_GOAL, bench_prepare
from workbench.demo.recordings import espeak_available

pytestmark = pytest.mark.skipif(
    not espeak_available(), reason="espeak-ng not installed (apt-get install espeak-ng)"
)


def test_bench_prepare_prints_real_time_factors_and_keeps_a_given_workdir(tmp_path):
    result = bench_prepare(minutes=0.4, workdir=tmp_path / "work")
    assert result.audio_seconds >= 24
    assert list(result.stages) == [
        "segmentation (decode + Silero VAD + plan)",
        "VAD only, Silero's sequential loop",
        "prepare with ASR (model load included)",
        "prepare with subtitles",
    ]
    for stage in result.stages.values():
        assert stage["seconds"] > 0
        assert stage["x_real_time"] == pytest.approx(result.audio_seconds / stage["seconds"])
    clips = [s["clips"] for s in result.stages.values() if "clips" in s]
    assert len(clips) == 3 and min(clips) >= 3
    text = result.format_text()
    assert "x real time" in text and f"goal: segmentation >= {SEGMENTATION_GOAL:.0f}x real time" in text
    assert (tmp_path / "work" / "speech" / "talk.wav").exists()
    assert (tmp_path / "work" / "dataset-asr" / "prepare.csv").exists()


def test_bench_prepare_refuses_nonsense_minutes_on_the_command_line():
    proc = subprocess.run(
        [sys.executable, "-m", "workbench.cli", "bench", "prepare", "--minutes", "0"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and "--minutes: must be positive" in proc.stderr
