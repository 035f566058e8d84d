"""Segmentation: Silero VAD on real (espeak-ng) speech, cuts inside over-long speech, clip planning."""

from __future__ import annotations

import numpy as np
import pytest

from workbench.demo.recordings import espeak_available, long_recording
from workbench.prepare.segment import (
    FLAG_SPLIT_AT_WORD,
    FLAG_SPLIT_IN_SPEECH,
    FLAG_TOO_LONG,
    FLAG_TOO_SHORT,
    Region,
    SpeechDetector,
    plan_clips,
    quietest_point,
    split_long_regions,
)

needs_espeak = pytest.mark.skipif(
    not espeak_available(), reason="espeak-ng not installed (apt-get install espeak-ng)"
)


def _spans(plans):
    return [(round(p.start, 3), round(p.end, 3)) for p in plans]


def test_clips_are_cut_at_the_long_pauses_and_padded_without_overlap():
    # sentences of 3 s with 1 s pauses; inside each, word gaps of 0.15 s
    regions = []
    for k in range(4):
        t = 1.0 + 4.0 * k
        regions += [Region(t, t + 1.4), Region(t + 1.55, t + 3.0)]
    plans = plan_clips(regions, duration=17.0, min_clip=2.0, max_clip=15.0, pad=0.2)
    assert _spans(plans) == [(0.8, 4.2), (4.8, 8.2), (8.8, 12.2), (12.8, 16.2)]
    assert all(len(p.regions) == 2 and not p.flags for p in plans)


def test_short_sentences_merge_and_max_clip_forces_a_cut_at_the_best_pause():
    # five 1 s utterances, pauses 0.6 0.3 0.9 0.6: alone each is under min_clip
    starts = [0.0, 1.6, 2.9, 4.8, 6.4]
    regions = [Region(s, s + 1.0) for s in starts]
    plans = plan_clips(regions, duration=7.4, min_clip=2.0, max_clip=4.0, pad=0.0)
    assert all(2.0 <= p.duration <= 4.0 for p in plans)
    cuts = [p.end for p in plans[:-1]]
    assert cuts == [3.9]  # the 0.9 s pause, not the 0.3 s one
    assert [len(p.regions) for p in plans] == [3, 2]


def test_a_long_pause_never_stays_inside_a_clip_and_lonely_short_speech_is_flagged():
    regions = [Region(0.0, 3.0), Region(6.0, 7.0), Region(10.0, 13.0)]
    plans = plan_clips(regions, duration=13.0, min_clip=2.0, max_clip=15.0, pad=0.2, max_pause=2.0)
    assert [len(p.regions) for p in plans] == [1, 1, 1]
    assert plans[1].flags == [FLAG_TOO_SHORT] and not plans[0].flags and not plans[2].flags


def test_one_cue_over_max_clip_is_kept_whole_and_flagged_and_overlapping_cues_merge():
    cues = [Region(0.0, 20.0, "a long cue"), Region(21.0, 24.0, "first"), Region(23.5, 25.0, "overlaps")]
    plans = plan_clips(cues, duration=26.0, min_clip=2.0, max_clip=15.0, pad=0.2)
    assert plans[0].flags == [FLAG_TOO_LONG] and plans[0].text == "a long cue"
    assert plans[1].text == "first overlaps" and len(plans) == 2


def _tone_with_dip(seconds: float, dip_at: float, sr: int = 24_000) -> np.ndarray:
    rng = np.random.default_rng(0)
    audio = (0.3 * rng.standard_normal(int(seconds * sr))).astype(np.float32)
    a = int(dip_at * sr)
    audio[a - int(0.03 * sr) : a + int(0.03 * sr)] *= 0.001
    return audio


def test_speech_without_a_pause_is_cut_at_its_quietest_point_and_flagged():
    audio = _tone_with_dip(20.0, dip_at=9.3)
    assert abs(quietest_point(audio, 24_000, 2.0, 15.0) - 9.3) < 0.03
    pieces = split_long_regions([Region(0.0, 20.0)], audio, 24_000, min_clip=2.0, max_clip=15.0)
    assert len(pieces) == 2 and abs(pieces[0].end - 9.3) < 0.03 and pieces[1].start == pieces[0].end
    assert all(FLAG_SPLIT_IN_SPEECH in p.flags for p in pieces)
    assert all(p.duration <= 15.0 for p in pieces)


def test_with_word_times_the_cut_falls_in_the_widest_gap_between_words():
    audio = _tone_with_dip(20.0, dip_at=9.3)
    words = [(0.0, 4.0), (4.1, 7.9), (8.4, 11.0), (11.05, 20.0)]  # widest gap 7.9-8.4
    asked = []

    def word_times(start, end):
        asked.append((start, end))
        return words

    pieces = split_long_regions([Region(0.0, 20.0)], audio, 24_000, 2.0, 15.0, word_times=word_times)
    assert asked == [(0.0, 20.0)]
    assert pieces[0].end == pytest.approx(8.15) and all(FLAG_SPLIT_AT_WORD in p.flags for p in pieces)


def test_very_long_speech_becomes_several_pieces_within_bounds():
    audio = _tone_with_dip(61.0, dip_at=30.0)
    pieces = split_long_regions([Region(0.5, 60.5)], audio, 24_000, min_clip=2.0, max_clip=15.0)
    assert len(pieces) >= 4
    assert all(2.0 <= p.duration <= 15.0 for p in pieces)
    assert pieces[0].start == 0.5 and pieces[-1].end == 60.5


@needs_espeak
def test_silero_finds_every_utterance_and_batched_streams_agree_with_the_sequential_pass(tmp_path):
    from workbench.audio import load_audio

    texts = [
        "The quick brown fox jumps over the lazy dog.",
        "She found the key under a pile of autumn leaves.",
        "Fresh bread smells wonderful on a cold winter day.",
    ] * 8
    pauses = [0.7, 1.2, 0.9] * 7 + [0.8, 1.0]
    rec = long_recording(tmp_path / "talk.wav", texts, pauses, sample_rate=22_050, noise_db=-45)
    audio16 = load_audio(rec.path, 16_000)
    detector = SpeechDetector()
    regions = detector.regions(audio16)
    for u in rec.utterances:  # each utterance is speech, and no region spans a pause
        inside = [r for r in regions if r.end > u.start and r.start < u.end]
        assert inside, u
        assert inside[0].start <= u.start + 0.1 and inside[-1].end >= u.end - 0.1
    for a, b in rec.pauses()[1:-1]:
        assert not any(r.start < a + 0.1 and r.end > b - 0.1 for r in regions), (a, b)
    batched = detector.probabilities(audio16) > 0.5
    sequential = detector.sequential_probabilities(audio16)[: len(batched)] > 0.5
    assert rec.duration > 60 and np.mean(batched == sequential) > 0.99
