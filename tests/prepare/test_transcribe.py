"""Local speech recognition for prepare: offline model resolution, confidence, word times, alignment."""

from __future__ import annotations

import math

import numpy as np
import pytest

from workbench.prepare.transcribe import (
    AsrModelError,
    Transcriber,
    Transcript,
    align_transcript,
    resolve_asr_model,
    words_of,
)


@pytest.fixture(scope="module")
def tiny_whisper(tmp_path_factory):
    from tiny_audio_models import build_tiny_whisper

    return build_tiny_whisper(tmp_path_factory.mktemp("asr") / "tiny-whisper")


def test_a_missing_model_is_an_error_that_says_what_to_pass(tmp_path):
    for model, reason in (
        (tmp_path / "nope", "no such folder"),
        ("someone/whisper-none", "not in the local Hugging Face cache"),
    ):
        with pytest.raises(AsrModelError) as err:
            resolve_asr_model(model)
        assert (
            reason in str(err.value) and "--asr-model" in str(err.value) and "hf download" in str(err.value)
        )
    (tmp_path / "empty").mkdir()
    with pytest.raises(AsrModelError, match="has no config.json"):
        resolve_asr_model(tmp_path / "empty")


def test_tiny_whisper_transcribes_with_confidence_and_no_speech_probability(tiny_whisper):
    asr = Transcriber(str(tiny_whisper), device="cpu", batch_size=2)
    rng = np.random.default_rng(0)
    clips = [(0.1 * rng.standard_normal(16_000 * s)).astype(np.float32) for s in (1, 3, 2)]
    out = asr.transcribe(clips)
    assert len(out) == 3
    for t in out:
        assert t.text and t.text == " ".join(t.text.split())
        assert 0.0 < t.confidence <= 1.0 and 0.0 <= t.no_speech <= 1.0
        assert t.low_confidence()  # a random model is unsure of what it says
        assert not t.low_confidence(min_confidence=0.0, max_no_speech=1.0)
    # the confidence is the model's own: scoring another text gives another value
    again = asr._whisper_scores(clips[:1], ["zzz qqq xxx"])[0][0]
    assert again != pytest.approx(out[0].confidence)
    assert asr.transcribe([]) == []


def test_language_is_passed_to_multilingual_whisper(tiny_whisper):
    asr = Transcriber(str(tiny_whisper), language="en", device="cpu")
    assert asr.generate_kwargs == {"language": "en", "task": "transcribe"}
    clip = (0.1 * np.random.default_rng(1).standard_normal(16_000)).astype(np.float32)
    assert asr.transcribe([clip])[0].confidence is not None


def test_word_times_are_none_or_ordered_times_within_the_clip(tiny_whisper):
    asr = Transcriber(str(tiny_whisper), device="cpu")
    clip = (0.1 * np.random.default_rng(2).standard_normal(16_000 * 4)).astype(np.float32)
    times = asr.word_times(clip, offset=10.0)
    assert times is None or all(10.0 <= a <= b <= 14.5 for a, b in times)


def test_alignment_spreads_every_transcript_word_over_the_clips_in_order():
    transcript = "The quick brown fox, jumps over the lazy dog. She sells sea shells!"
    heard = ["the quick brown fox jumps", "over the lazy dog", "she sells sea shells"]
    parts = align_transcript(transcript, heard)
    assert [p[0] for p in parts] == [
        "The quick brown fox, jumps",
        "over the lazy dog.",
        "She sells sea shells!",
    ]
    assert all(share == 1.0 for _, share in parts)


def test_alignment_with_misheard_words_still_keeps_every_word_once():
    transcript = "one two three four five six seven eight nine ten"
    heard = ["won too three", "for five sicks seven", "ate nine ten"]
    parts = align_transcript(transcript, heard)
    assert " ".join(p[0] for p in parts).split() == transcript.split()
    assert parts[0][0].split()[-1] == "three" and parts[2][0].split()[-1] == "ten"
    assert all(0.0 < share < 1.0 for _, share in parts)


def test_alignment_when_nothing_was_heard_follows_clip_durations():
    words = " ".join(f"w{k}" for k in range(30))
    parts = align_transcript(words, ["", "", ""], durations=[1.0, 2.0, 3.0])
    counts = [len(p[0].split()) for p in parts]
    assert counts == [5, 10, 15] and all(share == 0.0 for _, share in parts)


def test_words_and_low_confidence_thresholds():
    assert words_of("It's 5 o'clock, Anna!") == ["it's", "5", "o'clock", "anna"]
    assert Transcript("x", confidence=math.exp(-0.5), no_speech=0.1).low_confidence() is False
    assert Transcript("x", confidence=math.exp(-1.5), no_speech=0.1).low_confidence() is True
    assert Transcript("x", confidence=0.9, no_speech=0.7).low_confidence() is True
    assert Transcript("x").low_confidence() is False
