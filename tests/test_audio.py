"""Tests for workbench.audio: the clip reader matches transformers' sample for sample; one silence detector."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
from conftest import voiced

from workbench.audio import (
    AUDIO_READER,
    edge_silence,
    frame_bounds,
    frame_rms,
    load_audio,
    resample,
    silence_ratio,
    voiced_frames,
    voiced_span,
)

transformers_audio = pytest.importorskip("transformers.audio_utils")


@pytest.mark.parametrize(
    ("name", "rate", "channels", "seconds", "subtype"),
    [
        ("stereo44k.wav", 44_100, 2, 1.3, "PCM_16"),
        ("three48k.flac", 48_000, 3, 0.7, "PCM_24"),
        ("mono22k.ogg", 22_050, 1, 1.0, "VORBIS"),
        ("float24k.wav", 24_000, 1, 0.5, "FLOAT"),
        ("long8k.wav", 8_000, 2, 61.5, "PCM_16"),  # longer than one decoded block
        ("empty.wav", 16_000, 2, 0.0, "PCM_16"),
    ],
)
def test_load_audio_equals_transformers_load_audio(tmp_path, name, rate, channels, seconds, subtype):
    noise = np.random.default_rng(7).uniform(-0.5, 0.5, (int(rate * seconds), channels))
    path = tmp_path / name
    sf.write(str(path), noise.astype(np.float32), rate, subtype=subtype)
    for target in (24_000, 16_000):
        ours = load_audio(path, target)
        theirs = transformers_audio.load_audio(str(path), target, backend="soundfile")
        assert ours.dtype == np.float32 and ours.ndim == 1
        assert np.array_equal(ours, theirs), (name, target)
    assert "soxr" in AUDIO_READER and "transformers.audio_utils.load_audio" in AUDIO_READER


def test_load_audio_names_the_file_it_cannot_read(tmp_path):
    with pytest.raises(FileNotFoundError, match="gone.wav"):
        load_audio(tmp_path / "gone.wav")
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF but not audio")
    with pytest.raises(ValueError, match=r"broken\.wav: cannot decode audio"):
        load_audio(broken)


def test_resample_keeps_the_rate_and_gives_ceil_length():
    x = voiced(0.5, 44_100)
    assert resample(x, 44_100, 44_100) is x
    out = resample(x, 44_100, 24_000)
    assert out.dtype == np.float32 and len(out) == -(-len(x) * 24_000 // 44_100)


def test_frames_are_10_ms_and_the_last_one_reaches_the_end():
    starts, ends = frame_bounds(1_000, 24_000)  # four 240-sample frames, 40 samples left over
    assert starts.tolist() == [0, 240, 480, 720] and ends.tolist() == [240, 480, 720, 1_000]
    assert frame_bounds(100, 24_000)[1].tolist() == [100]  # shorter than a frame: one frame
    starts, ends = frame_bounds(24_000, 24_000, window=0.03)
    assert len(starts) == 98 and ends[0] == 720 and ends[-1] == 24_000
    x = np.r_[np.full(240, 0.5), np.full(240, -0.25)]
    assert frame_rms(x, 24_000).tolist() == [0.5, 0.25]
    assert frame_rms(np.stack([x, x], axis=1), 24_000).tolist() == [0.5, 0.25]  # channels averaged
    with pytest.raises(ValueError, match="sample_rate"):
        frame_rms(x, 0)


def test_one_detector_gives_the_span_edges_and_ratio():
    sr = 16_000
    lead, speech, trail = np.zeros(4_000), voiced(1.0, sr), np.zeros(2_013)  # trail: 12.58 frames
    clip = np.concatenate([lead, speech, trail]).astype(np.float32)
    flags = voiced_frames(clip, sr)
    first, last = np.nonzero(flags)[0][[0, -1]]
    span = voiced_span(clip, sr)
    assert span == (first * 160, (last + 1) * 160)
    assert 4_000 <= span[0] <= 4_000 + 1_600 and 20_000 - 1_600 <= span[1] <= 20_000 + 160
    assert edge_silence(clip, sr) == (span[0] / sr, (len(clip) - span[1]) / sr)
    assert silence_ratio(clip, sr) == pytest.approx(1 - flags.mean())
    # A quieter threshold finds more voice; the stereo copy finds the same.
    assert voiced_frames(clip, sr, threshold_db=60).sum() >= flags.sum()
    assert voiced_span(np.stack([clip, clip], axis=1), sr) == span
    # Silence everywhere: no span, all edge, all silent.
    zeros = np.zeros(sr, np.float32)
    assert voiced_span(zeros, sr) is None and not voiced_frames(zeros, sr).any()
    assert edge_silence(zeros, sr) == (1.0, 1.0) and silence_ratio(zeros, sr) == 1.0
    assert silence_ratio(np.zeros(0), sr) == 1.0
    # NaN samples count as silence instead of poisoning the peak.
    assert voiced_span(np.where(np.arange(len(clip)) == 10, np.nan, clip), sr) == span
