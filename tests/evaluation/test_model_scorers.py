"""Tests for workbench.evaluation.model_scorers: the optional ASR and x-vector scorers, with tiny models
built locally, and the errors of models that cannot be loaded offline."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import voiced
from tiny_audio_models import build_tiny_whisper, build_tiny_xvector

from workbench.evaluation.model_scorers import AsrScorer, OptionalModelError, SpeakerScorer
from workbench.evaluation.text_metrics import char_error_rate, word_error_rate

SR = 24_000


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    return voiced(2.0, SR, f0=150.0)


@pytest.fixture(scope="module")
def tiny_whisper(tmp_path_factory) -> Path:
    return build_tiny_whisper(tmp_path_factory.mktemp("asr") / "tiny-whisper")


@pytest.fixture(scope="module")
def tiny_xvector(tmp_path_factory) -> Path:
    return build_tiny_xvector(tmp_path_factory.mktemp("spk") / "tiny-xvector")


def test_asr_scorer_on_tiny_whisper(tiny_whisper, speech):
    scorer = AsrScorer(str(tiny_whisper), device="cpu")
    assert scorer.sample_rate == 16_000
    transcript = scorer.transcribe(speech, SR)  # 24 kHz in, resampled to 16 kHz
    assert isinstance(transcript, str) and transcript
    scores = scorer.scores(speech, SR, "hello world")
    assert scores["transcript"] == transcript  # greedy decoding is deterministic
    assert scores["wer"] == word_error_rate("hello world", transcript)
    assert scores["cer"] == char_error_rate("hello world", transcript)
    assert isinstance(scores["wer"], float) and isinstance(scores["cer"], float)
    assert scorer.transcribe(np.zeros(0, np.float32), SR) == ""
    english = AsrScorer(str(tiny_whisper), device="cpu", language="en")
    assert english.generate_kwargs == {"language": "en", "task": "transcribe"}
    assert isinstance(english.transcribe(speech[: SR // 2], SR), str)


def test_speaker_scorer_on_tiny_xvector(tiny_xvector, speech):
    scorer = SpeakerScorer(str(tiny_xvector), device="cpu")
    embedding = scorer.embed(speech, SR)
    assert embedding.ndim == 1 and np.linalg.norm(embedding) == pytest.approx(1.0)
    assert scorer.similarity(speech, speech.copy(), SR) == pytest.approx(1.0, abs=1e-6)
    other = (0.1 * np.random.default_rng(1).standard_normal(len(speech))).astype(np.float32)
    similarity = scorer.similarity(speech, other, SR)
    assert -1.0 <= similarity < 0.999
    assert scorer.embed(speech[:800], SR).shape == embedding.shape  # very short clips are padded


@pytest.mark.parametrize("scorer", [AsrScorer, SpeakerScorer])
def test_missing_model_names_it_and_the_fix(scorer, tmp_path):
    missing = tmp_path / "no-such-model"
    with pytest.raises(OptionalModelError, match="no-such-model") as info:
        scorer(str(missing), device="cpu")
    assert "Fix:" in str(info.value)
    with pytest.raises(OptionalModelError, match=r"hf download nobody-here/not-cached"):
        scorer("nobody-here/not-cached", device="cpu")
    (tmp_path / "empty").mkdir()
    with pytest.raises(OptionalModelError, match="no config.json"):
        scorer(str(tmp_path / "empty"), device="cpu")


def test_wrong_kind_of_model_is_an_optional_model_error(tiny_whisper):
    with pytest.raises(OptionalModelError, match="speaker_model"):
        SpeakerScorer(str(tiny_whisper), device="cpu")
