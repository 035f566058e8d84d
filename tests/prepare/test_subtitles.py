"""Subtitles: SubRip and WebVTT cues read with their times and spoken text; errors name file and line."""

from __future__ import annotations

import re

import pytest

from workbench.prepare.subtitles import (
    Cue,
    SubtitleError,
    format_time,
    parse_srt,
    parse_vtt,
    read_subtitles,
    write_srt,
)

SRT = """\ufeff1\r
00:00:01,000 --> 00:00:03,250\r
<i>Hello</i> there,\r
general Kenobi.\r
\r
2\r
00:00:04,500 --> 00:00:05,000\r
[door slams] ♪\r
\r
3\r
01:02:03,040 --> 01:02:04,500\r
{\\an8}Last words.\r
"""

VTT = """\ufeffWEBVTT - a talk
Kind: captions
Language: en

NOTE this block is a comment
and spans lines

STYLE
::cue { color: lime }

REGION
id:left
width:40%

intro
00:01.000 --> 00:02.500 align:start position:10%
<v Anna>Good morning</v> everyone.

00:00:03.000 --> 00:00:04.000 region:left line:0
Second cue.
"""


def test_srt_cues_keep_times_and_spoken_text_only():
    cues = parse_srt(SRT, "talk.srt")
    assert [(c.start, c.end, c.text) for c in cues] == [
        (1.0, 3.25, "Hello there, general Kenobi."),
        (3723.04, 3724.5, "Last words."),  # the sound-only cue is dropped
    ]
    assert [c.number for c in cues] == [1, 3]


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"])
def test_vtt_skips_header_notes_styles_and_regions_and_reads_cue_settings_and_voices(newline):
    cues = parse_vtt(VTT.replace("\n", newline), "talk.vtt")
    assert [(c.start, c.end, c.text, c.number) for c in cues] == [
        (1.0, 2.5, "Good morning everyone.", 1),
        (3.0, 4.0, "Second cue.", 2),
    ]


def test_srt_with_lone_carriage_returns_reads_like_crlf():
    assert parse_srt(SRT.replace("\r\n", "\r"), "talk.srt") == parse_srt(SRT, "talk.srt")


def test_overlapping_cues_are_kept_in_start_order():
    text = (
        "2\n00:00:04,000 --> 00:00:06,000\nSecond.\n\n"
        "1\n00:00:01,000 --> 00:00:05,000\nFirst, talking over.\n\n"
        "3\n00:00:04,000 --> 00:00:04,500\nShort.\n"
    )
    cues = parse_srt(text, "talk.srt")
    assert [(c.start, c.end, c.text, c.number) for c in cues] == [
        (1.0, 5.0, "First, talking over.", 2),
        (4.0, 4.5, "Short.", 3),
        (4.0, 6.0, "Second.", 1),
    ]


def test_a_blank_line_inside_a_cue_keeps_its_text_in_that_cue():
    text = "1\n00:00:01,000 --> 00:00:02,000\nHi,\n\nthere.\n\n2\n00:00:03,000 --> 00:00:04,000\nBye.\n"
    assert [c.text for c in parse_srt(text, "talk.srt")] == ["Hi, there.", "Bye."]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "1\n00:00:01,000 --> 00:00:xx,000\nHi\n",
            "talk.srt:2: bad time '00:00:xx,000' in cue 1; expected HH:MM:SS,mmm",
        ),
        (
            "1\n00:00:01,000 --> 00:00:02,000\nHi\n\n2\n00:00:03,000 --> 00:0x:04,000\nBye\n",
            "talk.srt:6: bad time '00:0x:04,000' in cue 2",
        ),
        (
            "1\n00:00:05,000 --> 00:00:04,000\nHi\n",
            "talk.srt: cue 1 ends at 4.000 s, not after its start 5.000 s; fix its times",
        ),
        (
            "no timing here\n\n1\n00:00:01,000 --> 00:00:02,000\nHi\n",
            "talk.srt:1: cue 1: expected a timing line 'start --> end' (HH:MM:SS,mmm), got 'no timing here'",
        ),
        (
            "1\n00:00:01,000 --> 00:00:02,000\nHi\n\n2\n00:00:03,000 -> 00:00:04,000\nBye\n",
            "talk.srt:6: cue 2: expected a timing line 'start --> end' (HH:MM:SS,mmm), got '00:00:03,000 -> 00:00:04,000'",
        ),
    ],
)
def test_malformed_srt_names_file_line_and_cue(text, message):
    with pytest.raises(SubtitleError, match=re.escape(message)):
        parse_srt(text, "talk.srt")


@pytest.mark.parametrize(
    ("cue", "message"),
    [
        (
            "00:00:03.000 --> 00:0x:04.000",
            "talk.vtt:7: bad time '00:0x:04.000' in cue 2; expected [HH:]MM:SS.mmm",
        ),
        ("00:00:03,000 --> 00:00:04.000 align:start", "talk.vtt:7: bad time '00:00:03,000' in cue 2"),
        ("00:00:03.000 --> 00:61:04.000", "talk.vtt:7: bad time '00:61:04.000' in cue 2"),
        ("00:00:05.000 --> 00:00:04.000", "talk.vtt: cue 2 ends at 4.000 s, not after its start 5.000 s"),
    ],
)
def test_malformed_vtt_names_file_line_and_cue(cue, message):
    text = f"WEBVTT\n\n1\n00:00:01.000 --> 00:00:02.000\nHi\n\n{cue}\nBye\n\n00:00:06.000 --> 00:00:07.000\nEnd\n"
    with pytest.raises(SubtitleError, match=re.escape(message)):
        parse_vtt(text, "talk.vtt")


def test_vtt_without_header_is_refused():
    with pytest.raises(SubtitleError, match=r"talk.vtt:1: a WebVTT file starts with 'WEBVTT'; add that line"):
        parse_vtt("00:01.000 --> 00:02.000\nHi\n", "talk.vtt")


def test_write_then_read_round_trips_to_the_millisecond(tmp_path):
    cues = [Cue(0.5, 2.0, "One."), (3.0004, 4.9996, "Two, three."), Cue(3661.25, 3662.0, "Later.")]
    path = write_srt(cues, tmp_path / "a.srt")
    back = read_subtitles(path)
    assert [(c.start, c.end, c.text) for c in back] == [
        (0.5, 2.0, "One."),
        (3.0, 5.0, "Two, three."),
        (3661.25, 3662.0, "Later."),
    ]
    assert format_time(3661.25) == "01:01:01,250" and format_time(1.5, ".") == "00:00:01.500"


def test_read_subtitles_refuses_other_suffixes_and_non_utf8(tmp_path):
    (tmp_path / "a.txt").write_text("hello")
    with pytest.raises(SubtitleError, match="not a subtitle file"):
        read_subtitles(tmp_path / "a.txt")
    (tmp_path / "b.srt").write_bytes(b"1\n00:00:01,000 --> 00:00:02,000\n\xff\xfe\xfa\n")
    with pytest.raises(SubtitleError, match=r"b.srt: not UTF-8"):
        read_subtitles(tmp_path / "b.srt")
