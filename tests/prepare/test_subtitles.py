"""Subtitles: SubRip and WebVTT cues read with their times and spoken text; errors name file and line."""

from __future__ import annotations

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

VTT = """WEBVTT - a talk

NOTE this block is a comment
and spans lines

STYLE
::cue { color: lime }

intro
00:01.000 --> 00:02.500 align:start position:10%
<v Anna>Good morning</v> everyone.

00:00:03.000 --> 00:00:04.000
Second cue.
"""


def test_srt_cues_keep_times_and_spoken_text_only():
    cues = parse_srt(SRT, "talk.srt")
    assert [(c.start, c.end, c.text) for c in cues] == [
        (1.0, 3.25, "Hello there, general Kenobi."),
        (3723.04, 3724.5, "Last words."),  # the sound-only cue is dropped
    ]
    assert cues[0].line == 2


def test_vtt_skips_notes_and_styles_and_reads_cue_settings_and_voices():
    cues = parse_vtt(VTT, "talk.vtt")
    assert [(c.start, c.end, c.text) for c in cues] == [
        (1.0, 2.5, "Good morning everyone."),
        (3.0, 4.0, "Second cue."),
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1\n00:00:01,000 --> 00:00:xx,000\nHi\n", "talk.srt:2: bad time '00:00:xx,000'"),
        (
            "1\n00:00:05,000 --> 00:00:04,000\nHi\n",
            "talk.srt:2: cue ends at 4.000 s, not after its start 5.000 s",
        ),
        (
            "1\n00:00:01,000 --> 00:00:02,000\nHi\n\nno timing here\nat all\n",
            "talk.srt:5: expected a timing line",
        ),
        ("1\n00:00:01,000 --> 00:61:02,000\nHi\n", "minutes and seconds must be below 60"),
    ],
)
def test_malformed_srt_names_file_and_line(text, message):
    with pytest.raises(SubtitleError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_srt(text, "talk.srt")


def test_vtt_without_header_is_refused():
    with pytest.raises(SubtitleError, match=r"talk.vtt:1: a WebVTT file starts with 'WEBVTT'"):
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
