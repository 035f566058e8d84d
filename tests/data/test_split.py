"""Tests for workbench.data.split: determinism, no leakage, speaker grouping, single-speaker fallback."""

from __future__ import annotations

import logging
import random

import numpy as np
import pytest
import soundfile as sf

from workbench.data import probe as probe_module
from workbench.data.sample import Audio, Message, Sample, load_samples, write_samples
from workbench.data.split import split
from workbench.data.validate import validate

SR = 24_000


@pytest.fixture(autouse=True)
def _private_probe_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(probe_module, "_default_cache", None)


def make(sample_id: str, target: str | None, speaker: str | None = "spk1", ref: str | None = None) -> Sample:
    msgs = [Message("system", "Generate speech in the provided voice.")]
    if ref is not None:
        msgs += [Message("user", "reference words"), Message("assistant", Audio(ref))]
    msgs.append(Message("user", f"target words of {sample_id}"))
    start = len(msgs) - 1
    if target is not None:
        msgs.append(Message("assistant", Audio(target)))
    return Sample(sample_id, tuple(msgs), start, speaker=speaker)


def dataset(n_speakers: int = 6, per_speaker: int = 10) -> list[Sample]:
    return [
        make(f"s{s}_{i}", f"/data/s{s}/{i}.wav", speaker=f"spk{s}")
        for s in range(n_speakers)
        for i in range(per_speaker)
    ]


def ids(path) -> list[str]:
    return [s.id for s in load_samples(path)]


def test_split_is_deterministic_and_order_free(tmp_path):
    samples = dataset()
    shuffled = samples[:]
    random.Random(1).shuffle(shuffled)
    a = split(
        samples, tmp_path / "a_train.jsonl", tmp_path / "a_val.jsonl", val_fraction=0.2, by="sample", seed=3
    )
    b = split(
        shuffled, tmp_path / "b_train.jsonl", tmp_path / "b_val.jsonl", val_fraction=0.2, by="sample", seed=3
    )
    assert (a.train, a.val) == (48, 12) == (b.train, b.val)
    assert sorted(ids(tmp_path / "a_val.jsonl")) == sorted(ids(tmp_path / "b_val.jsonl"))
    c = split(
        samples, tmp_path / "c_train.jsonl", tmp_path / "c_val.jsonl", val_fraction=0.2, by="sample", seed=4
    )
    assert sorted(ids(tmp_path / "c_val.jsonl")) != sorted(ids(tmp_path / "a_val.jsonl"))
    assert c.val == 12


def test_by_speaker_keeps_each_speaker_on_one_side(tmp_path):
    result = split(dataset(), tmp_path / "train.jsonl", tmp_path / "val.jsonl", val_fraction=0.2)
    assert result.by == "speaker" and result.fallback is None
    assert set(result.train_speakers).isdisjoint(result.val_speakers)
    assert result.val == 10 * len(result.val_speakers) and result.train + result.val == 60
    val_speakers = {s.speaker for s in load_samples(tmp_path / "val.jsonl")}
    assert val_speakers == set(result.val_speakers)


def test_single_speaker_falls_back_to_sample(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="workbench.data.split"):
        result = split(dataset(1, 20), tmp_path / "train.jsonl", tmp_path / "val.jsonl", val_fraction=0.1)
    assert result.by == "sample" and result.requested_by == "speaker"
    assert "only one speaker (spk0)" in result.fallback and "only one speaker" in caplog.text
    assert (result.train, result.val) == (18, 2)


def test_shared_target_audio_never_crosses_sides(tmp_path):
    samples = [make(f"x{i}", f"/data/{i % 5}.wav", speaker=f"spk{i % 7}") for i in range(35)]
    for by in ("sample", "speaker"):
        result = split(
            samples,
            tmp_path / f"{by}_t.jsonl",
            tmp_path / f"{by}_v.jsonl",
            val_fraction=0.3,
            by=by,
            overwrite=True,
        )
        train = {a for s in load_samples(tmp_path / f"{by}_t.jsonl") for a in s.target_audio()}
        val = {a for s in load_samples(tmp_path / f"{by}_v.jsonl") for a in s.target_audio()}
        assert train.isdisjoint(val)
        assert result.train + result.val == 35 and result.merged_groups > 0


def test_no_leakage_found_by_validate(tmp_path):
    d = tmp_path / "wav"
    d.mkdir()
    t = np.arange(SR) / SR
    samples = []
    for i in range(12):
        path = d / f"{i}.wav"
        sf.write(path, (0.3 * np.sin(2 * np.pi * (100 + 10 * i) * t)).astype(np.float32), SR)
        samples.append(make(f"w{i}", str(path), speaker=f"spk{i % 4}"))
    samples.append(make("w_dup", str(d / "3.wav"), speaker="spk0"))  # shares a target with w3 (spk3)
    split(samples, tmp_path / "train.jsonl", tmp_path / "val.jsonl", val_fraction=0.25)
    report = validate(tmp_path / "train.jsonl", tmp_path / "val.jsonl")
    assert "SPLIT_LEAKAGE" not in {f.code for f in report.findings}


def test_prompts_go_to_neither_file(tmp_path):
    samples = dataset(2, 5) + [make("p1", None, ref="/data/r.wav"), make("p2", None)]
    result = split(samples, tmp_path / "train.jsonl", tmp_path / "val.jsonl", val_fraction=0.5)
    assert result.prompts_skipped == 2 and result.train + result.val == 10
    assert not {"p1", "p2"} & set(ids(tmp_path / "train.jsonl") + ids(tmp_path / "val.jsonl"))


def test_at_least_one_val_sample_and_train_never_empty(tmp_path):
    result = split(dataset(1, 2), tmp_path / "t.jsonl", tmp_path / "v.jsonl", val_fraction=0.01)
    assert (result.train, result.val) == (1, 1)
    result = split(dataset(3, 4), tmp_path / "t2.jsonl", tmp_path / "v2.jsonl", val_fraction=0.01)
    assert result.val == 4 and result.train == 8  # one whole speaker, even above the fraction
    result = split(dataset(1, 5), tmp_path / "t3.jsonl", tmp_path / "v3.jsonl", val_fraction=0.0)
    assert (result.train, result.val) == (5, 0)


def test_reads_files_and_refuses_to_overwrite(tmp_path):
    src = tmp_path / "all.jsonl"
    write_samples(src, dataset(3, 3))
    result = split(src, tmp_path / "train.jsonl", tmp_path / "val.jsonl", val_fraction=0.3)
    before = (tmp_path / "train.jsonl").read_text()
    with pytest.raises(FileExistsError):
        split(src, tmp_path / "train.jsonl", tmp_path / "other_val.jsonl")
    assert not (tmp_path / "other_val.jsonl").exists()
    again = split(src, tmp_path / "train.jsonl", tmp_path / "val.jsonl", val_fraction=0.3, overwrite=True)
    assert (tmp_path / "train.jsonl").read_text() == before and again.to_dict() == result.to_dict()
    assert result.to_dict()["train"] + result.to_dict()["val"] == 9
    assert "train:" in result.format_text()


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="by must be"):
        split(dataset(), tmp_path / "t.jsonl", tmp_path / "v.jsonl", by="utterance")
    with pytest.raises(ValueError, match="same file"):
        split(dataset(), tmp_path / "t.jsonl", tmp_path / "t.jsonl")
    with pytest.raises(ValueError, match="val_fraction"):
        split(dataset(), tmp_path / "t.jsonl", tmp_path / "v.jsonl", val_fraction=1.5)
