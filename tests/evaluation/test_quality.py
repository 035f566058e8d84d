"""Tests for workbench.evaluation.quality: the signal metrics on real synthetic signals."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import voiced
from scipy.signal import resample_poly

from workbench.evaluation.quality import (
    MCD_CONSTANT,
    basic_metrics,
    clipping_fraction,
    dtw_path,
    duration,
    median_pitch,
    mel_cepstra,
    mel_cepstral_distortion,
    pitch_distance,
    silence_ratio,
    speaking_rate,
)

SR = 24_000


def tone(seconds: float, freq: float = 440.0, amp: float = 0.5, sr: int = SR) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    return voiced(2.0, SR, f0=150.0)


# --------------------------------------------------------------------------- signal metrics


def test_duration_and_speaking_rate():
    assert duration(np.zeros(36_000, np.float32), SR) == 1.5
    assert duration(np.zeros((48_000, 2), np.float32), SR) == 2.0  # frames, not samples
    assert speaking_rate("hello world", 2.0) == 5.0  # 10 non-space characters
    assert speaking_rate("  a \n b\t", 1.0) == 2.0
    assert speaking_rate("hello", 0.0) is None
    with pytest.raises(ValueError, match="sample_rate"):
        duration(np.zeros(10), 0)


def test_silence_ratio_on_tone_then_zeros():
    audio = np.concatenate([tone(1.0), np.zeros(SR, np.float32)])
    assert silence_ratio(audio, SR) == pytest.approx(0.5)
    assert silence_ratio(tone(1.0), SR) == 0.0
    assert silence_ratio(np.zeros(SR, np.float32), SR) == 1.0
    assert silence_ratio(np.zeros(0, np.float32), SR) == 1.0
    # A tone 30 dB down is silence at a 20 dB threshold, not at the default 40 dB.
    quiet = np.concatenate([tone(1.0), tone(1.0, amp=0.5 * 10 ** (-30 / 20))])
    assert silence_ratio(quiet, SR) == 0.0
    assert silence_ratio(quiet, SR, threshold_db=20.0) == pytest.approx(0.5)
    # Stereo is down-mixed; other sample rates use their own 10 ms frames.
    stereo = np.stack([audio, audio], axis=1)
    assert silence_ratio(stereo, SR) == pytest.approx(0.5)
    assert silence_ratio(np.concatenate([tone(1.0, sr=16_000), np.zeros(48_000)]), 16_000) == pytest.approx(
        0.75
    )


def test_silence_ratio_is_the_detector_the_probe_and_trim_use(speech):
    from workbench.audio import edge_silence, voiced_frames

    clip = np.concatenate([np.zeros(SR // 2, np.float32), speech, np.zeros(SR, np.float32)])
    flags = voiced_frames(clip, SR)
    assert silence_ratio(clip, SR) == pytest.approx(1 - flags.mean())
    # The speech holds no pause, so its silent frames are the edges the probe reports.
    lead, trail = edge_silence(clip, SR)
    assert lead >= 0.5 and trail >= 1.0
    assert silence_ratio(clip, SR) == pytest.approx((lead + trail) / duration(clip, SR), abs=0.01)


def test_clipping_fraction_on_clipped_sine():
    sine = np.sin(2 * np.pi * np.arange(SR) / 100)  # 240 whole periods
    assert clipping_fraction(0.5 * sine) == 0.0
    clipped = np.clip(2.0 * sine, -1.0, 1.0)
    expected = 1 - 2 * np.arcsin(0.999 / 2) / np.pi  # share of a period where |2 sin| >= 0.999
    assert clipping_fraction(clipped) == pytest.approx(expected, abs=0.01)
    assert clipping_fraction(clipped, level=1.0) == pytest.approx(np.mean(np.abs(clipped) >= 1.0))
    assert clipping_fraction(np.zeros(0)) == 0.0


# --------------------------------------------------------------------------- mel-cepstral distortion


def test_mcd_identical_is_zero(speech):
    assert mel_cepstral_distortion(speech, speech, SR) == 0.0
    assert mel_cepstral_distortion(speech, speech.copy(), SR, n_mfcc=25) == 0.0


def test_mcd_orders_a_stretched_copy_below_a_different_signal(speech):
    stretched = resample_poly(speech, 21, 20).astype(np.float32)  # 5% longer (and lower)
    different = voiced(2.0, SR, f0=300.0)
    noise = (0.1 * np.random.default_rng(0).standard_normal(len(speech))).astype(np.float32)
    near = mel_cepstral_distortion(speech, stretched, SR)
    far = mel_cepstral_distortion(speech, different, SR)
    farther = mel_cepstral_distortion(speech, noise, SR)
    assert 0.0 < near < far < farther
    assert near < 6.0  # dB: a 5% change is small
    # Loudness is c0, excluded: a 6 dB quieter copy differs only where bands reach the -80 dB floor.
    assert mel_cepstral_distortion(speech, 0.5 * speech, SR) < near / 2
    # Symmetric up to DTW tie-breaking.
    assert mel_cepstral_distortion(stretched, speech, SR) == pytest.approx(near, rel=1e-6)


def test_mcd_aligns_in_time():
    """A copy whose first sound is held 0.1 s longer costs far less with DTW than frame by frame."""
    sound = np.concatenate([voiced(0.3, SR, f0) for f0 in (120.0, 200.0, 310.0, 170.0)])
    held = np.concatenate([sound[: SR // 10], sound])
    aligned = mel_cepstral_distortion(sound, held, SR)
    ref, gen = mel_cepstra(sound, SR)[:, 1:], mel_cepstra(held, SR)[:, 1:]
    n = min(len(ref), len(gen))
    frame_by_frame = MCD_CONSTANT * np.mean(np.linalg.norm(ref[:n] - gen[:n], axis=1))
    assert aligned < frame_by_frame / 3


def test_mcd_downsamples_long_clips(speech, monkeypatch):
    import workbench.evaluation.quality as quality

    stretched = resample_poly(speech, 21, 20).astype(np.float32)
    full = mel_cepstral_distortion(speech, stretched, SR)
    monkeypatch.setattr(quality, "MCD_MAX_DTW_CELLS", 2_000)  # forces every 5th frame or so
    assert mel_cepstral_distortion(speech, stretched, SR) == pytest.approx(full, rel=0.5)
    with pytest.raises(ValueError, match="n_mfcc"):
        mel_cepstral_distortion(speech, speech, SR, n_mfcc=1)


def test_mel_cepstra_shape_and_short_input():
    assert mel_cepstra(np.zeros(SR, np.float32), SR).shape == (98, 13)  # (1 s - 25 ms) / 10 ms + 1
    assert mel_cepstra(np.zeros(10, np.float32), SR, n_mfcc=5).shape == (1, 5)


def test_dtw_path_known_alignment():
    a = np.array([0.0, 1.0, 2.0, 3.0])
    b = np.array([0.0, 0.0, 1.0, 2.0, 2.0, 3.0])
    cost = np.abs(a[:, None] - b[None, :])
    i, j = dtw_path(cost)
    assert cost[i, j].sum() == 0.0
    assert (i[0], j[0]) == (0, 0) and (i[-1], j[-1]) == (3, 5)
    assert np.all(np.diff(i) >= 0) and np.all(np.diff(j) >= 0) and np.all(np.diff(i) + np.diff(j) >= 1)
    assert list(zip(i.tolist(), j.tolist(), strict=True)) == [(0, 0), (0, 1), (1, 2), (2, 3), (2, 4), (3, 5)]


# --------------------------------------------------------------------------- bundle


def test_basic_metrics_with_and_without_target(speech):
    audio = np.concatenate([speech, np.zeros(SR, np.float32)])
    metrics = basic_metrics(audio, SR, "hello world")
    assert set(metrics) == {"duration", "speaking_rate", "silence_ratio", "clipping"}
    assert metrics["duration"] == pytest.approx(3.0)
    assert metrics["speaking_rate"] == pytest.approx(10 / 3)
    assert 1 / 3 <= metrics["silence_ratio"] < 0.5
    assert metrics["clipping"] == 0.0
    with_target = basic_metrics(audio, SR, "hello world", target=speech)
    assert with_target["duration_ratio"] == pytest.approx(1.5)
    assert with_target["mcd"] > 0.0
    assert basic_metrics(speech, SR, "x", target=speech)["mcd"] == 0.0
    empty = basic_metrics(np.zeros(0, np.float32), SR, "x", target=np.zeros(0, np.float32))
    assert math.isnan(empty["speaking_rate"]) and math.isnan(empty["duration_ratio"])
    assert math.isnan(empty["pitch_target"])  # nothing voiced to compare
    with_ref = basic_metrics(speech, SR, "x", target=speech, reference=voiced(1.0, SR, f0=300.0))
    assert with_ref["pitch_target"] == pytest.approx(0.0, abs=0.05)
    assert with_ref["pitch_ref"] == pytest.approx(12.0, abs=0.1)  # an octave apart


@pytest.mark.parametrize("f0", [70.0, 110.0, 150.0, 240.0, 380.0])
def test_median_pitch_finds_the_fundamental(f0):
    assert median_pitch(voiced(1.0, SR, f0=f0), SR) == pytest.approx(f0, rel=0.01)
    quiet_then_voiced = np.concatenate([np.zeros(SR // 2, np.float32), voiced(1.0, SR, f0=f0, amp=0.05)])
    assert median_pitch(quiet_then_voiced, SR) == pytest.approx(f0, rel=0.01)  # silence is not voiced


def test_median_pitch_of_noise_silence_and_short_clips_is_none():
    rng = np.random.default_rng(0)
    assert median_pitch(rng.normal(0, 0.3, SR).astype(np.float32), SR) is None
    assert median_pitch(np.zeros(SR, np.float32), SR) is None
    assert median_pitch(voiced(0.03, SR), SR) is None  # shorter than one 40 ms window
    assert math.isnan(pitch_distance(np.zeros(SR, np.float32), voiced(1.0, SR), SR))


def test_pitch_distance_in_semitones_at_other_rates():
    low, high = voiced(1.0, 16_000, f0=120.0), voiced(1.0, 16_000, f0=120.0 * 2 ** (7 / 12))
    assert pitch_distance(low, high, 16_000) == pytest.approx(7.0, abs=0.1)  # a fifth
    assert pitch_distance(high, low, 16_000) == pytest.approx(7.0, abs=0.1)
