"""Tests for workbench.evaluation.during_training: a tiny training run speaks and scores at its evaluations."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import soundfile as sf
from conftest import voiced

from workbench.data import probe as probe_module
from workbench.data.sample import Audio, Message, Sample, write_samples
from workbench.evaluation.during_training import METRIC_KEYS, eval_generate_callbacks
from workbench.evaluation.synthesis import Sampling
from workbench.training.params import TrainParams

TEXTS = (
    "The quick brown fox.",
    "Hello world, a short test.",
    "Sea shells by the shore.",
    "How are you today?",
)


def _sample(sample_id: str, ref: Path, text: str, target: Path) -> Sample:
    messages = (
        Message("system", "Generate speech in the provided voice."),
        Message("user", "A reference sentence."),
        Message("assistant", Audio(str(ref))),
        Message("user", text),
        Message("assistant", Audio(str(target))),
    )
    return Sample(sample_id, messages, 3, "spk")


@pytest.fixture
def params(tmp_path, monkeypatch) -> TrainParams:
    from workbench.demo import make_tiny_model

    monkeypatch.setenv("WORKBENCH_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(probe_module, "_default_cache", None)
    samples = []
    for i, text in enumerate(TEXTS):
        ref, target = tmp_path / f"ref{i}.wav", tmp_path / f"target{i}.wav"
        sf.write(ref, voiced(1.0, f0=140 + 10 * i), 24_000)
        sf.write(target, voiced(0.8, f0=150 + 10 * i), 24_000)
        samples.append(_sample(f"s{i}", ref, text, target))
    write_samples(tmp_path / "train.jsonl", samples[:3])
    write_samples(tmp_path / "val.jsonl", samples[3:])
    return TrainParams(
        train_data=str(tmp_path / "train.jsonl"), val_data=str(tmp_path / "val.jsonl"),
        model=str(make_tiny_model(tmp_path / "tiny")), output_dir=str(tmp_path / "run"), max_steps=2,
        save_steps=2, eval_steps=2, batch_size=2, learning_rate=5e-3, warmup_ratio=0.0, lora_r=4, lora_alpha=8,
        lora_dropout=0.0, codes_cache_dir=str(tmp_path / "codes"), logging_steps=1, eval_generate=1,
    )  # fmt: skip


def test_each_evaluation_speaks_and_logs_voice_scores(params):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from workbench.training import train

    prepared = train.prepare(params)
    prepared.params.eval_generate = 0
    assert eval_generate_callbacks(prepared) == []
    prepared.params.eval_generate = 1
    callbacks = eval_generate_callbacks(prepared, Sampling(max_new_tokens=30))
    assert len(callbacks) == 1 and [p.sample.id for p in callbacks[0].prompts] == ["s3"]

    result = train.fit(prepared, callbacks=callbacks)
    assert result is not None and result.global_step == 2
    # The evaluation at step 2 (the last) carries the voice scores: returned, logged, kept with the checkpoint.
    assert set(METRIC_KEYS) <= set(result.eval_metrics) and "eval_loss" in result.eval_metrics
    scores = {k: result.eval_metrics[k] for k in METRIC_KEYS}
    # the fixed seed makes the tiny model speak about a third of the target's length: scored, kept
    assert scores["eval_silent_clips"] == 0.0 and scores["eval_runaway_clips"] == 0.0
    assert 0.0 < scores["eval_speaker_similarity"] <= 1.0 and 1.0 <= scores["eval_dnsmos_ovrl"] <= 5.0
    assert 0.0 < scores["eval_duration_ratio"] < 1.0
    assert scores["eval_wer"] >= 0.0  # English prompt: heard by the bundled Whisper tiny.en
    assert [p.name for p in (Path(params.output_dir) / "eval_audio" / "step-2").glob("*.wav")] == ["s3.wav"]
    state = json.loads((Path(params.output_dir) / "checkpoint-2" / "trainer_state.json").read_text())
    entry = next(e for e in state["log_history"] if "eval_loss" in e)
    assert entry["step"] == 2 and "eval_dnsmos_ovrl" in entry and "eval_speaker_similarity" in entry
    lines = [json.loads(x) for x in (Path(params.output_dir) / "metrics.jsonl").read_text().splitlines()]
    assert any(line.get("step") == 2 and "eval_silent_clips" in line for line in lines)

    events = EventAccumulator(str(Path(params.output_dir) / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert "eval/loss" in tags and "eval/silent_clips" in tags
    assert {f"eval/{k[5:]}" for k in METRIC_KEYS} <= tags
