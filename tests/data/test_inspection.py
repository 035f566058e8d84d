"""Tests for workbench.data.inspection: numbers on audio of known durations."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from workbench.data import probe as probe_module
from workbench.data.contract import INVALID, PROMPT, TRAINABLE, check_sample
from workbench.data.convert import convert
from workbench.data.inspection import inspect
from workbench.data.sample import Audio, Message, Sample, write_samples

SR = 24_000


@pytest.fixture(autouse=True)
def _private_probe_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(probe_module, "_default_cache", None)


def tone(path, seconds: float, sr: int = SR, channels: int = 1) -> str:
    t = np.arange(int(round(seconds * sr))) / sr
    x = (0.3 * np.sin(2 * np.pi * 150 * t) + 0.1 * np.sin(2 * np.pi * 450 * t)).astype(np.float32)
    sf.write(str(path), np.stack([x] * channels, axis=1) if channels > 1 else x, sr)
    return str(path)


def make(
    sample_id: str, target: str | None, text: str, speaker: str, ref: str | None = None, fmt: str = "manifest"
):
    msgs = [Message("system", "Generate speech in the provided voice.")]
    if ref is not None:
        msgs += [Message("user", "reference"), Message("assistant", Audio(ref))]
    msgs.append(Message("user", text))
    start = len(msgs) - 1
    if target is not None:
        msgs.append(Message("assistant", Audio(target)))
    return Sample(sample_id, tuple(msgs), start, speaker=speaker, misc={"source_format": fmt})


@pytest.fixture
def data(tmp_path):
    """Targets of 1, 2, 3, 4 s (texts of 10 characters per second), a 44.1 kHz stereo reference, a prompt."""
    ref = tone(tmp_path / "ref.wav", 5.0, sr=44_100, channels=2)
    samples = [
        make(f"s{k}", tone(tmp_path / f"t{k}.wav", k), "x" * (10 * k), speaker="a" if k < 4 else "b", ref=ref)
        for k in (1, 2, 3, 4)
    ]
    samples.append(make("p", None, "prompt text", speaker="b", ref=ref, fmt="csv"))
    path = tmp_path / "d.jsonl"
    write_samples(path, samples)
    return path


def test_inspect_numbers(data):
    stats = inspect(data)
    assert (stats.samples, stats.trainable, stats.prompts, stats.bad_records) == (5, 4, 1, 0)
    assert stats.speakers == {"a": 3, "b": 2}
    assert stats.target_hours == pytest.approx(10 / 3600, abs=1e-4)
    assert stats.duration["p0"] == pytest.approx(1.0) and stats.duration["p100"] == pytest.approx(4.0)
    assert stats.duration["p50"] == pytest.approx(2.5) and stats.duration["mean"] == pytest.approx(2.5)
    assert stats.duration["p5"] == pytest.approx(1.15)
    assert stats.chars_per_second["p0"] == pytest.approx(10.0) and stats.chars_per_second[
        "p100"
    ] == pytest.approx(10.0)
    assert stats.sample_rates == {24_000: 4, 44_100: 1}
    assert stats.channels == {1: 4, 2: 1}
    assert stats.source_formats == {"manifest": 4, "csv": 1}
    assert (stats.audio_files, stats.missing_audio, stats.unreadable_audio) == (5, 0, 0)


def test_to_dict_is_json_and_text_is_readable(data):
    stats = inspect(data)
    d = json.loads(json.dumps(stats.to_dict()))
    assert d["sample_rates"] == {"24000": 4, "44100": 1} and d["duration"]["p50"] == pytest.approx(2.5)
    text = stats.format_text()
    assert "5 samples: 4 trainable, 1 prompts" in text and "2 speakers" in text and "0.00 h" in text


def test_without_probing_gives_text_counts_only(data):
    stats = inspect(data, probe_audio=False)
    assert stats.trainable == 4 and stats.target_hours is None and stats.duration is None
    assert stats.sample_rates == {} and not stats.probed
    assert "audio files" not in stats.format_text()


def test_missing_and_unreadable_audio_are_counted(tmp_path):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio at all" * 50)
    good = tone(tmp_path / "g.wav", 2.0)
    samples = [
        make("g", good, "hello", "a"),
        make("m", str(tmp_path / "nope.wav"), "hi", "a"),
        make("b", str(bad), "x", "a"),
    ]
    stats = inspect(samples)
    assert (stats.audio_files, stats.missing_audio, stats.unreadable_audio) == (3, 1, 1)
    assert stats.trainable == 3 and stats.duration["p50"] == pytest.approx(2.0)
    assert stats.target_hours == pytest.approx(2 / 3600, abs=1e-4)


def test_bad_lines_are_counted(tmp_path, data):
    path = tmp_path / "mixed.jsonl"
    path.write_text(data.read_text() + "{broken\n")
    stats = inspect(path)
    assert (stats.samples, stats.bad_records) == (5, 1)


def test_trainable_is_the_sample_contracts_verdict_and_matches_convert(tmp_path):
    """Samples with target audio that the contract refuses are invalid, not trainable, as convert routes them."""
    ref = tone(tmp_path / "ref.wav", 2.0)
    target = tone(tmp_path / "t.wav", 1.0)
    markup = make("markup", target, "hello <|AUDIO_OUT|> there", "a", ref=ref)  # template markup in the text
    untranscribed = Sample("bare", (Message("system", "Speak."), Message("assistant", Audio(target))), 1)
    samples = [
        make("ok", target, "hello", "a", ref=ref),
        make("p", None, "prompt", "a", ref=ref),
        markup,
        untranscribed,
    ]
    assert [check_sample(s).kind for s in samples] == [TRAINABLE, PROMPT, INVALID, INVALID]
    assert all(
        s.target_indices() for s in (markup, untranscribed)
    )  # target audio alone does not make it trainable
    path = tmp_path / "d.jsonl"
    write_samples(path, samples)

    stats = inspect(path)
    report = convert(path, tmp_path / "out" / "c.jsonl")
    assert (stats.samples, stats.trainable, stats.prompts, stats.invalid) == (4, 1, 1, 2)
    assert (stats.trainable, stats.prompts, stats.invalid) == (
        report.converted,
        report.prompts,
        report.rejected,
    )
    assert stats.duration["p0"] == pytest.approx(1.0) and stats.duration["p100"] == pytest.approx(1.0)
    assert "4 samples: 1 trainable, 1 prompts, 2 invalid" in stats.format_text()


def test_a_start_index_that_is_not_an_integer_is_an_invalid_sample(tmp_path):
    record = make("s", tone(tmp_path / "t.wav", 1.0), "hello", "a").to_dict()
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps({**record, "start_index": "1"}) + "\n")
    stats = inspect(path, probe_audio=False)
    assert (stats.samples, stats.trainable, stats.invalid, stats.bad_records) == (1, 0, 1, 0)
