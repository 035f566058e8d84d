"""Tests for workbench.evaluation.voice: the bundled GE2E, DNSMOS and Whisper tiny.en models on real speech made by espeak-ng."""

from __future__ import annotations

import math

import numpy as np
import pytest

from workbench.demo.recordings import espeak_available, speak
from workbench.evaluation import voice

SR = 24_000
needs_espeak = pytest.mark.skipif(
    not espeak_available(), reason="espeak-ng not installed (apt-get install espeak-ng)"
)
FOX = "The quick brown fox jumps over the lazy dog near the river bank."
SHELLS = "She sells sea shells by the sea shore every single summer morning."


@pytest.fixture(scope="module")
def clips() -> dict[str, np.ndarray]:
    """Two sentences by one espeak voice, the second sentence by another voice."""
    return {
        "male_fox": speak(FOX, SR, voice="en-us"),
        "male_shells": speak(SHELLS, SR, voice="en-us"),
        "female_shells": speak(SHELLS, SR, voice="en-us+f3"),
    }


def test_cosine():
    assert voice.cosine(np.array([1.0, 0.0]), np.array([2.0, 0.0])) == 1.0
    assert voice.cosine(np.array([1.0, 0.0]), np.array([0.0, 3.0])) == 0.0
    assert voice.cosine(np.array([1.0, 1.0]), np.array([-1.0, -1.0])) == pytest.approx(-1.0)
    assert voice.cosine(np.array([1.0, 2.0]), np.array([2.0, 1.0])) == pytest.approx(0.8)
    assert voice.cosine(np.zeros(3), np.ones(3)) == 0.0


@needs_espeak
def test_the_same_voice_is_more_similar_than_another_voice(clips):
    encoder = voice.speaker_encoder()
    same = encoder.similarity(clips["male_fox"], clips["male_shells"], SR)  # other words, same voice
    other = encoder.similarity(clips["male_fox"], clips["female_shells"], SR)
    print(f"GE2E similarity: same voice {same:.3f}, other voice {other:.3f}")
    assert same > other + 0.1, (same, other)
    assert same > 0.8 and other < 0.8
    assert encoder.similarity(clips["male_fox"], clips["male_fox"].copy(), SR) == pytest.approx(1.0)
    # Any rate in, the same embedding out (within resampling); silence embeds to zeros, similarity 0.
    at_16k = speak(FOX, 16_000, voice="en-us")
    assert float(encoder.embed(at_16k, 16_000) @ encoder.embed(clips["male_fox"], SR)) > 0.99
    assert not encoder.embed(np.zeros(SR, np.float32), SR).any()
    assert encoder.similarity(np.zeros(SR, np.float32), clips["male_fox"], SR) == 0.0


@needs_espeak
def test_clean_speech_scores_higher_naturalness_than_noisy_speech(clips):
    mos = voice.dnsmos()
    speech = clips["male_shells"]
    noisy = speech + 0.05 * np.random.default_rng(0).standard_normal(len(speech)).astype(np.float32)
    clean_scores, noisy_scores = mos.scores(speech, SR), mos.scores(noisy, SR)
    print(f"DNSMOS OVRL/BAK: clean {clean_scores['dnsmos_ovrl']:.2f}/{clean_scores['dnsmos_bak']:.2f}, "
          f"noisy {noisy_scores['dnsmos_ovrl']:.2f}/{noisy_scores['dnsmos_bak']:.2f}")  # fmt: skip
    assert set(clean_scores) == {"dnsmos_ovrl", "dnsmos_sig", "dnsmos_bak"}
    assert all(1.0 <= v <= 5.0 for v in clean_scores.values())
    assert clean_scores["dnsmos_ovrl"] > noisy_scores["dnsmos_ovrl"] + 0.5
    assert clean_scores["dnsmos_bak"] > noisy_scores["dnsmos_bak"] + 1.0  # the background is what got worse
    long = np.concatenate([speech] * 3)  # over 9 s: scored in windows, the same speech scores alike
    assert mos.scores(long, SR)["dnsmos_ovrl"] == pytest.approx(clean_scores["dnsmos_ovrl"], abs=0.3)
    assert all(math.isnan(v) for v in mos.scores(np.zeros(0, np.float32), SR).values())


@needs_espeak
def test_voice_scorer_compares_with_reference_and_target_files(clips, tmp_path):
    import soundfile as sf

    ref, target = tmp_path / "ref.wav", tmp_path / "target.wav"
    sf.write(ref, clips["male_fox"], SR)
    sf.write(target, clips["female_shells"], SR)
    scorer = voice.VoiceScorer(SR)
    assert not scorer.notes
    row = scorer.scores(clips["male_shells"], str(ref), str(target))
    assert set(row) == {"speaker_sim_ref", "speaker_sim_target", "dnsmos_ovrl", "dnsmos_sig", "dnsmos_bak"}
    assert row["speaker_sim_ref"] > row["speaker_sim_target"]
    # A file already loaded is not read again; a missing one is left out.
    again = scorer.scores(
        clips["male_shells"], "not-a-file.wav", None, clips={"not-a-file.wav": clips["male_fox"]}
    )
    assert again["speaker_sim_ref"] == pytest.approx(row["speaker_sim_ref"], abs=1e-4)  # 16-bit file
    assert "speaker_sim_ref" not in scorer.scores(clips["male_shells"], str(tmp_path / "missing.wav"))


@needs_espeak
def test_the_bundled_recogniser_hears_what_was_said(clips):
    asr = voice.bundled_asr()
    heard = asr.scores(clips["male_fox"], SR, FOX)
    other = asr.scores(clips["male_fox"], SR, SHELLS)
    print(
        f"Whisper tiny.en: {heard['transcript']!r}: WER {heard['wer']:.2f}, against another text {other['wer']:.2f}"
    )
    assert heard["wer"] < 0.5 and heard["cer"] < 0.25, heard  # espeak's robotic voice: a few words misheard
    assert other["wer"] > 0.9 and other["transcript"] == heard["transcript"]
    noise = 0.3 * np.random.default_rng(0).standard_normal(3 * SR).astype(np.float32)
    assert asr.scores(noise, SR, FOX)["wer"] > 0.8  # no speech: nothing of the text is heard
    assert asr.transcribe(np.zeros(0, np.float32), SR) == ""
    # Over Whisper's 30 s window: transcribed window by window, every window heard.
    long = np.concatenate(
        [clips["male_fox"], np.zeros(30 * SR - len(clips["male_fox"]), np.float32), clips["male_shells"]]
    )
    assert asr.scores(long, SR, f"{FOX} {SHELLS}")["wer"] < 0.5


@needs_espeak
def test_voice_scorer_scores_english_prompts_only(clips):
    scorer = voice.VoiceScorer(SR)
    assert scorer.asr is not None and not scorer.notes
    assert scorer.scores(clips["male_fox"], text=FOX)["wer"] < 0.5
    assert "wer" not in scorer.scores(
        clips["male_fox"], text="Der schnelle braune Fuchs springt über den Hund."
    )
    assert "wer" not in scorer.scores(clips["male_fox"])
    assert voice.VoiceScorer(SR, asr=False).asr is None


def test_other_weights_are_refused_by_their_hash(tmp_path):
    import hashlib

    weights = tmp_path / "model.bin"
    weights.write_bytes(b"not the model")
    assert voice.verified_weights(weights, hashlib.sha256(b"not the model").hexdigest(), "m") == weights
    with pytest.raises(voice.BundledModelError, match="is not the Whisper tiny.en the workbench scores with"):
        voice.verified_weights(weights, voice.ASR_WEIGHTS_SHA256, "Whisper tiny.en")


def test_a_missing_package_names_the_fix():
    with pytest.raises(voice.BundledModelError, match="pip install no-such-wheel"):
        voice._package_file("workbench_no_such_package", "model.pt", "no-such-wheel")
    with pytest.raises(voice.BundledModelError, match="force-reinstall speechmos"):
        voice._package_file("speechmos", "no_such_model.onnx", "speechmos")
    # A weights-only package (weights.txt) is installed without its dependencies.
    with pytest.raises(voice.BundledModelError, match="pip install --no-deps no-such-wheel"):
        voice._package_file("workbench_no_such_package", "model.pt", "no-such-wheel", weights_only=True)
    with pytest.raises(voice.BundledModelError, match="force-reinstall --no-deps Resemblyzer"):
        voice._package_file("resemblyzer", "no_such_weights.pt", "Resemblyzer", weights_only=True)


def test_importing_the_package_loads_no_scorer():
    import subprocess
    import sys

    code = (
        "import sys, workbench.evaluation, workbench.evaluation.voice; "
        "print(any(m in sys.modules for m in ('onnxruntime', 'torchaudio', 'jiwer', 'ctranslate2')))"
    )
    assert (
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout.strip()
        == "False"
    )
