"""Notebook 00's clip browser: flag filter, selection, and the static stand-in for reports."""

from __future__ import annotations

import pytest

from workbench.demo.recordings import long_recording
from workbench.notebook.prepare_view import FLAGGED, UNFLAGGED, ClipBrowser, flag_counts
from workbench.prepare.pipeline import prepare
from workbench.prepare.subtitles import write_srt

TEXTS = [
    "The quick brown fox jumps over the lazy dog.",
    "A gentle breeze moved through the open window.",
    "We will meet again at the old station tomorrow.",
    "Please bring the blue notebook to the meeting.",
]


@pytest.fixture
def dataset(tmp_path):
    rec = long_recording(tmp_path / "in" / "a.wav", TEXTS, [1.0, 1.0, 1.0], speech="synthetic")
    assert rec.duration > 15.0
    # the last cue alone is longer than max_clip: written whole and flagged too_long
    cues = [(0.5, 3.0, TEXTS[0]), (4.0, 6.5, TEXTS[1]), (7.5, 10.0, TEXTS[2]), (11.0, 15.0, TEXTS[3])]
    write_srt(cues, tmp_path / "in" / "a.srt")
    prepare([tmp_path / "in"], tmp_path / "dataset", max_clip=3.5, progress=False)
    return tmp_path / "dataset"


def test_filter_by_flag_selects_the_matching_clips(dataset):
    browser = ClipBrowser(str(dataset), max_listen=2)
    assert flag_counts(browser.rows) == {"too_long": 1}
    assert list(browser.filter_box.options) == ["(all)", FLAGGED, UNFLAGGED, "too_long"]
    assert browser.selected == "in/clip_0001.wav" and len(browser.visible()) == 4
    browser.filter_box.value = "too_long"  # what picking in the dropdown does
    assert browser.visible() == ["in/clip_0004.wav"] and browser.selected == "in/clip_0004.wav"
    assert "too_long" in browser.info.value and browser.player.value[:4] == b"RIFF" and browser.image.value
    browser.set_filter(UNFLAGGED)
    assert len(browser.visible()) == 3 and browser.selected == "in/clip_0001.wav"
    browser.select_box.value = "in/clip_0002.wav"
    assert browser.selected == "in/clip_0002.wav" and TEXTS[1] in browser.info.value
    with pytest.raises(KeyError, match="no clip 'nope.wav'"):
        browser.select("nope.wav")


def test_static_stand_in_lists_every_row_and_embeds_flagged_players_first(dataset):
    html = ClipBrowser(str(dataset), max_listen=2, max_seconds=3.0).static_html()
    assert all(text in html for text in TEXTS)
    assert html.count('src="data:audio/wav;base64,') == 2
    assert html.index("<b>in/clip_0004.wav</b>") < html.index("<b>in/clip_0001.wav</b>")  # flagged first
    assert "(first 3 s)" in html and "2 more clips not embedded (max_listen=2)" in html
