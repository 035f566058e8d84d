"""workbench prepare: long recordings become a clip folder that converts and validates.

Speech is made by the tests with espeak-ng (tests that need a voice-activity detector to hear
speech skip without it); the subtitle path also runs on synthetic voices.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from workbench.demo.dataset import SENTENCES
from workbench.demo.recordings import espeak_available, long_recording, recording_of_length
from workbench.prepare.pipeline import AsrModelError, find_inputs, prepare
from workbench.prepare.store import CSV_COLUMNS, read_prepare_csv
from workbench.prepare.subtitles import write_srt

needs_espeak = pytest.mark.skipif(
    not espeak_available(), reason="espeak-ng not installed (apt-get install espeak-ng)"
)
ROOT = Path(__file__).resolve().parents[2]
TEXTS = [*SENTENCES[:2], "Yes.", *SENTENCES[2:9]]  # one very short utterance among them
PAUSES = [0.8, 0.6, 0.7, 1.3, 0.9, 2.6, 0.75, 1.1, 0.65]


@pytest.fixture(scope="module")
def tiny_whisper(tmp_path_factory):
    from tiny_audio_models import build_tiny_whisper

    return build_tiny_whisper(tmp_path_factory.mktemp("asr") / "tiny-whisper")


def _wav_seconds(path: Path) -> float:
    info = sf.info(str(path))
    assert info.samplerate == 24_000 and info.channels == 1, path
    return info.frames / info.samplerate


def _tree(root: Path, skip: Path | None = None) -> dict[str, tuple[int, str]]:
    """Every file under ``root`` (except under ``skip``) with its size and content hash."""
    out = {}
    for path in sorted(root.rglob("*")):
        if path.is_file() and (skip is None or skip not in path.parents):
            out[str(path)] = (path.stat().st_size, hashlib.md5(path.read_bytes()).hexdigest())
    return out


def _clip_files(dataset: Path) -> dict[str, str]:
    return {
        str(p.relative_to(dataset)): hashlib.md5(p.read_bytes()).hexdigest()
        for p in sorted(dataset.rglob("*"))
        if p.is_file() and ".prepare" not in p.parts
    }


def _cli(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "workbench.cli", "prepare", *args], capture_output=True, text=True, **kwargs
    )


# --------------------------------------------------------------------------- VAD + ASR
@needs_espeak
def test_vad_cuts_fall_in_the_pauses_and_asr_gives_text_confidence_and_flags(tmp_path, tiny_whisper):
    rec = long_recording(
        tmp_path / "in" / "anna" / "talk.flac", TEXTS, PAUSES, sample_rate=44_100, channels=2
    )
    dataset = tmp_path / "dataset"
    report = prepare([tmp_path / "in"], dataset, asr_model=str(tiny_whisper), progress=False)
    rows = read_prepare_csv(dataset)
    assert rows == report.rows and report.failed == []
    clips = [r for r in rows if r["file_name"]]
    assert len(clips) >= 4
    pauses = rec.pauses()
    tolerance = 0.05
    for row in clips:
        assert 2.0 <= row["duration"] <= 15.0, row
        for edge in (row["start"], row["end"]):  # every cut lies in a pause between utterances
            assert any(a - tolerance <= edge <= b + tolerance for a, b in pauses), (edge, row)
        assert (
            row["speaker"] == "anna" and row["text_source"] == "asr" and row["source_file"] == str(rec.path)
        )
        assert 0.0 < row["confidence"] <= 1.0 and 0.0 <= row["no_speech"] <= 1.0
        assert "low_confidence" in row["flags"]  # a random model is unsure: flagged, not dropped
        text = (dataset / row["file_name"]).with_suffix(".txt").read_text(encoding="utf-8")
        assert text.strip() == row["text"] and row["text"]
        assert abs(_wav_seconds(dataset / row["file_name"]) - row["duration"]) < 1e-3
    # clips follow each other without overlap, and every utterance is in exactly one clip
    assert all(a["end"] <= b["start"] for a, b in zip(clips, clips[1:], strict=False))
    for u in rec.utterances:
        holding = [r for r in clips if r["start"] - tolerance <= u.start and u.end <= r["end"] + tolerance]
        assert len(holding) == 1, u
    # the 2.6 s pause is never inside a clip; "Yes." (alone under 2 s) was merged with a neighbour
    long_pause = pauses[7]
    assert not any(r["start"] < long_pause[0] and r["end"] > long_pause[1] for r in clips)
    # durations add up: the summary's kept time is the clips' total, and no more than the audio
    kept = sum(_wav_seconds(dataset / r["file_name"]) for r in clips)
    assert report.inputs[0].kept_seconds == pytest.approx(kept, abs=0.01)
    assert report.inputs[0].seconds == pytest.approx(rec.duration, abs=0.01) and kept < rec.duration
    line = report.summary_line()
    assert f"-> {len(clips)} clips" in line and f"{len(clips)} flagged" in line
    assert f"({rec.duration / 60:.1f} min) in" in line and f"({kept / 60:.1f} min) kept" in line
    assert (dataset / "prepare.csv").read_text().splitlines()[0] == ",".join(CSV_COLUMNS)


@needs_espeak
def test_output_converts_and_validates_go(tmp_path, tiny_whisper):
    from workbench.data.convert import convert
    from workbench.data.validate import validate

    long_recording(tmp_path / "in" / "bo" / "a.wav", TEXTS[:6], PAUSES[:5])
    sub = long_recording(tmp_path / "in" / "bo" / "b.wav", TEXTS[4:], PAUSES[4:], speech="synthetic")
    write_srt([(u.start, u.end, u.text) for u in sub.utterances], tmp_path / "in" / "bo" / "b.srt")
    dataset = tmp_path / "dataset"
    report = prepare([tmp_path / "in"], dataset, asr_model=str(tiny_whisper), progress=False)
    written = [r for r in report.rows if r["file_name"]]
    assert {r["text_source"] for r in written} == {"asr", "subtitle"}
    converted = tmp_path / "converted.jsonl"
    result = convert([dataset], converted)
    assert result.rejected == 0 and result.converted == len(written)
    verdict = validate(converted)
    assert verdict.ok, verdict.go_no_go()
    assert verdict.go_no_go().startswith("GO")


# --------------------------------------------------------------------------- subtitles
@pytest.mark.parametrize("suffix", [".srt", ".vtt"])
def test_subtitles_drive_the_cuts_and_the_texts_exactly(tmp_path, suffix):
    texts = [*TEXTS[:3], "Okay.", *TEXTS[3:6]]
    rec = long_recording(
        tmp_path / "in" / "film.wav", texts, [0.9, 0.5, 1.2, 0.4, 3.0, 0.8], speech="synthetic"
    )
    cues = [(u.start, u.end, u.text) for u in rec.utterances] + [
        (rec.duration + 5, rec.duration + 6, "After.")
    ]
    srt = write_srt(cues, tmp_path / "in" / "film.srt")
    if suffix == ".vtt":  # the same cues as WebVTT
        body = srt.read_text().replace(",", ".")
        (tmp_path / "in" / "film.vtt").write_text("WEBVTT\n\n" + body)
        srt.unlink()
    dataset = tmp_path / "dataset"
    report = prepare([tmp_path / "in" / "film.wav"], dataset, speaker="Film Star", progress=False)
    rows = report.rows
    written = [r for r in rows if r["file_name"]]
    assert all(r["text_source"] == "subtitle" and r["speaker"] == "Film_Star" for r in rows)
    # every cue's text lands once, in order, and clip texts are whole cues joined
    assert " ".join(r["text"] for r in written) == " ".join(texts)
    starts = {round(u.start, 3): u for u in rec.utterances}
    for row in written:
        first = next(u for u in rec.utterances if row["text"].startswith(u.text))
        last = next(u for u in reversed(rec.utterances) if row["text"].endswith(u.text))
        k, j = rec.utterances.index(first), rec.utterances.index(last)
        before = first.start - (rec.utterances[k - 1].end if k else 0.0)
        after = (rec.utterances[j + 1].start if j + 1 < len(texts) else rec.duration) - last.end
        assert row["start"] == pytest.approx(first.start - min(0.2, before / 2 if k else before), abs=1e-3)
        assert row["end"] == pytest.approx(
            last.end + min(0.2, after / 2 if j + 1 < len(texts) else after), abs=1e-3
        )
        assert 2.0 <= row["duration"] <= 15.0
        assert (dataset / row["file_name"]).with_suffix(".txt").read_text().strip() == row["text"]
    assert len(starts) == len(texts)
    assert any("Okay." in r["text"] and r["text"] != "Okay." for r in written)  # the short cue was merged
    outside = [r for r in rows if not r["file_name"]]
    assert [(r["text"], r["flags"]) for r in outside] == [("After.", ["cue_outside_audio"])]
    assert report.inputs[0].dropped == 1


# --------------------------------------------------------------------------- given transcripts
@needs_espeak
def test_a_short_file_with_its_transcript_is_one_clip_trimmed_to_its_speech(tmp_path):
    rec = long_recording(tmp_path / "me" / "hello.wav", [TEXTS[0]], [], lead=1.5)
    (tmp_path / "me" / "hello.txt").write_text(
        "\ufeffThe quick brown fox\njumps over the lazy dog.\n", encoding="utf-8"
    )
    report = prepare([tmp_path / "me"], tmp_path / "dataset", progress=False)
    [row] = report.rows
    u = rec.utterances[0]
    assert row["text"] == TEXTS[0] and row["text_source"] == "given" and row["speaker"] == "me"
    assert (
        0.5 < row["start"] <= u.start and u.end <= row["end"] < rec.duration - 0.5
    )  # 1.5 s silences trimmed


@needs_espeak
def test_a_long_file_with_a_transcript_is_aligned_through_asr(tmp_path, tiny_whisper):
    rec = long_recording(tmp_path / "me" / "read.wav", TEXTS[3:9], PAUSES[3:8])
    transcript = " ".join(TEXTS[3:9])
    (tmp_path / "me" / "read.txt").write_text(transcript, encoding="utf-8")
    with pytest.raises(AsrModelError, match="--asr-model"):  # longer than max_clip: needs alignment
        prepare([tmp_path / "me"], tmp_path / "none", max_clip=8.0, progress=False)
    assert not (tmp_path / "none").exists()
    report = prepare(
        [tmp_path / "me"], tmp_path / "dataset", max_clip=8.0, asr_model=str(tiny_whisper), progress=False
    )
    written = [r for r in report.rows if r["file_name"]]
    assert rec.duration > 8.0 and len(written) >= 3
    assert " ".join(r["text"] for r in written).split() == transcript.split()  # every word once, in order
    assert all(r["text_source"] == "given" and "weak_alignment" in r["flags"] for r in written)


# --------------------------------------------------------------------------- errors
def test_inputs_without_text_need_an_asr_model_and_a_missing_one_is_named(tmp_path, make_wav):
    make_wav("in/a.wav", seconds=3.0)
    make_wav("in/b.flac", seconds=20.0)
    with pytest.raises(AsrModelError) as err:
        prepare([tmp_path / "in"], tmp_path / "dataset", progress=False)
    assert "2 input(s)" in str(err.value) and "a.wav" in str(err.value) and "--asr-model" in str(err.value)
    with pytest.raises(AsrModelError, match="no such folder"):
        prepare([tmp_path / "in"], tmp_path / "dataset", asr_model=str(tmp_path / "whisper"), progress=False)
    assert not (tmp_path / "dataset").exists()
    proc = _cli(str(tmp_path / "in"), "-o", str(tmp_path / "dataset"))
    assert proc.returncode == 2 and "--asr-model" in proc.stderr


def test_bad_settings_and_foreign_folders_are_refused_before_any_work(tmp_path, make_wav):
    make_wav("in/a.wav")
    with pytest.raises(
        ValueError, match=r"min_clip: must be at least 0\.5.*max_clip: must be above min_clip"
    ):
        prepare([tmp_path / "in"], tmp_path / "d", min_clip=0.1, max_clip=0.05)
    with pytest.raises(ValueError, match="max_clip.*at most 30"):
        prepare([tmp_path / "in"], tmp_path / "d", max_clip=45)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    (tmp_path / "in" / "a.srt").write_text("1\n00:00:00,100 --> 00:00:01,400\nHello.\n")
    with pytest.raises(FileExistsError, match="did not write"):
        prepare([tmp_path / "in"], tmp_path / "mine", min_clip=1.0)
    assert [p.name for p in (tmp_path / "mine").iterdir()] == ["notes.txt"]
    with pytest.raises(FileNotFoundError, match="nowhere.wav"):
        prepare([tmp_path / "nowhere.wav"], tmp_path / "d")


def test_a_corrupt_input_is_located_and_the_others_still_finish(tmp_path):
    good = long_recording(tmp_path / "in" / "good.wav", TEXTS[:4], PAUSES[:3], speech="synthetic")
    write_srt([(u.start, u.end, u.text) for u in good.utterances], tmp_path / "in" / "good.srt")
    (tmp_path / "in" / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk" + os.urandom(300))
    (tmp_path / "in" / "broken.srt").write_text("1\n00:00:01,000 --> 00:00:02,000\nHi\n")
    bad_subs = long_recording(tmp_path / "in" / "subs.wav", TEXTS[:2], PAUSES[:1], speech="synthetic")
    (tmp_path / "in" / "subs.srt").write_text(
        "1\n00:00:00,500 --> 00:00:02,000\nOne.\n\n2\n00:00:03,000 -> 00:00:04\nTwo.\n"
    )
    dataset = tmp_path / "dataset"
    proc = _cli(str(tmp_path / "in"), "-o", str(dataset), "--speaker", "x")
    assert proc.returncode == 1, proc.stderr
    assert f"FAILED  {tmp_path / 'in' / 'broken.wav'}: cannot decode audio" in proc.stdout
    assert (
        f"FAILED  {bad_subs.path}: {tmp_path / 'in' / 'subs.srt'}:6: cue 2: expected a timing line"
        in proc.stdout
    )
    assert "2 input(s) failed" in proc.stdout
    rows = read_prepare_csv(dataset)
    assert {r["source_file"] for r in rows} == {str(good.path)} and len(rows) >= 2
    assert bad_subs.path.exists()


# --------------------------------------------------------------------------- resume, isolation
@needs_espeak
def test_a_killed_run_resumes_to_the_same_dataset_and_a_second_run_skips_everything(tmp_path, tiny_whisper):
    inputs = tmp_path / "in"
    recording_of_length(inputs / "anna" / "one.wav", 0.75, seed=1)
    recording_of_length(inputs / "anna" / "two.wav", 0.75, seed=2)
    args = [str(inputs), "--asr-model", str(tiny_whisper), "--no-progress"]
    whole = tmp_path / "whole"
    assert _cli(*args, "-o", str(whole)).returncode == 0
    # start again elsewhere, kill it once the first recording's clips are written
    killed = tmp_path / "killed"
    proc = subprocess.Popen(
        [sys.executable, "-m", "workbench.cli", "prepare", *args, "-o", str(killed)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if len(list((killed / "anna").glob("clip_*.wav"))) >= 3:
            break
        time.sleep(0.02)
    assert proc.poll() is None, "the run ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = _clip_files(killed)
    assert (
        0
        < len([p for p in partial if p.endswith(".wav")])
        < len([p for p in _clip_files(whole) if p.endswith(".wav")])
    )
    again = _cli(*args, "-o", str(killed))
    assert again.returncode == 0, again.stderr
    assert "clips were already done" in again.stdout
    assert _clip_files(killed) == _clip_files(whole)  # same names, same audio, same texts, same table
    third = _cli(*args, "-o", str(killed))
    clips = len([p for p in _clip_files(whole) if p.endswith(".wav")])
    assert f"{clips} clips were already done" in third.stdout and _clip_files(killed) == _clip_files(whole)


class _Killed(BaseException):
    """Stands in for SIGKILL: nothing in ``prepare`` catches it."""


def test_a_run_killed_at_any_write_resumes_to_the_same_dataset(tmp_path, monkeypatch):
    # every point a kill can land on: just before each file moves into place, and just after
    for k, name in enumerate(("one", "two")):
        rec = long_recording(
            tmp_path / "in" / "anna" / f"{name}.wav", TEXTS[3 * k : 3 * k + 4], PAUSES[:3], speech="synthetic"
        )
        write_srt([(u.start, u.end, u.text) for u in rec.utterances], rec.path.with_suffix(".srt"))
    settings = {"min_clip": 1.0, "max_clip": 4.0, "progress": False}
    moves = []
    real_replace = os.replace
    with monkeypatch.context() as m:
        m.setattr(os, "replace", lambda src, dst: (moves.append(dst), real_replace(src, dst)))
        prepare([tmp_path / "in"], tmp_path / "whole", **settings)
    whole = _clip_files(tmp_path / "whole")
    assert len([p for p in whole if p.endswith(".wav")]) >= 4 and len(moves) > 10

    def kill_at(n: int, before: bool):
        calls = []

        def replace(src, dst):
            calls.append(dst)
            if before and len(calls) == n:  # the temporary is complete and synced, not yet in place
                raise _Killed
            real_replace(src, dst)
            if len(calls) == n:
                raise _Killed

        return replace

    for n in range(1, len(moves) + 1):
        for before in (True, False):
            dataset = tmp_path / f"killed_{n}_{'before' if before else 'after'}"
            with monkeypatch.context() as m, pytest.raises(_Killed):
                m.setattr(os, "replace", kill_at(n, before))
                prepare([tmp_path / "in"], dataset, **settings)
            prepare([tmp_path / "in"], dataset, **settings)
            assert _clip_files(dataset) == whole, f"killed {'before' if before else 'after'} {moves[n - 1]}"
            assert not [p.name for p in (dataset / ".prepare").iterdir() if p.name.startswith(".")]
            report = prepare([tmp_path / "in"], dataset, **settings)
            assert _clip_files(dataset) == whole and report.summary_line().endswith(
                f"{len([p for p in whole if p.endswith('.wav')])} clips were already done"
            )


def test_temporaries_left_by_a_killed_run_are_removed_when_the_next_run_starts(tmp_path):
    rec = long_recording(tmp_path / "in" / "anna" / "a.wav", TEXTS[:4], PAUSES[:3], speech="synthetic")
    write_srt([(u.start, u.end, u.text) for u in rec.utterances], rec.path.with_suffix(".srt"))
    dataset = tmp_path / "dataset"
    prepare([tmp_path / "in"], dataset, progress=False)
    whole = _clip_files(dataset)
    # what a kill leaves: the hidden siblings that files.atomic_path writes before moving them into place
    strays = [
        dataset / "anna" / ".clip_0001.wav.0badc0de.wav",
        dataset / "anna" / ".clip_0099.txt.0badc0de.tmp",
        dataset / ".prepare" / ".0123456789abcdef.json.0badc0de.tmp",
        dataset / ".prepare.csv.0badc0de.tmp",
    ]
    for stray in strays:
        stray.write_bytes(b"half a file")
    report = prepare([tmp_path / "in"], dataset, progress=False)
    assert [s.name for s in strays if s.exists()] == []
    assert _clip_files(dataset) == whole and report.failed == []


@needs_espeak
def test_nothing_is_written_outside_the_dataset_folder(tmp_path, tiny_whisper):
    inputs = tmp_path / "in"
    long_recording(inputs / "talk.ogg", TEXTS[:5], PAUSES[:4], sample_rate=48_000)
    long_recording(inputs / "subs.wav", TEXTS[5:], PAUSES[5:], speech="synthetic")
    dataset = tmp_path / "out" / "dataset"
    sandbox = {name: tmp_path / "sandbox" / name for name in ("home", "cache", "hf", "tmp", "cwd")}
    for folder in sandbox.values():
        folder.mkdir(parents=True)
    before = _tree(tmp_path)
    env = {
        **os.environ,
        "HOME": str(sandbox["home"]),
        "XDG_CACHE_HOME": str(sandbox["cache"]),
        "HF_HOME": str(sandbox["hf"]),
        "TMPDIR": str(sandbox["tmp"]),
        "WORKBENCH_CACHE_DIR": str(sandbox["cache"] / "workbench"),
        "HF_HUB_OFFLINE": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONPATH": str(ROOT),
    }
    proc = _cli(
        str(inputs), "-o", str(dataset), "--asr-model", str(tiny_whisper), env=env, cwd=sandbox["cwd"]
    )
    assert proc.returncode == 0, proc.stderr
    assert _tree(tmp_path, skip=dataset) == before  # inputs, model and sandbox untouched
    assert len(list(dataset.rglob("clip_*.wav"))) >= 2


def test_find_inputs_takes_speakers_from_folders_and_skips_the_dataset(tmp_path, make_wav):
    make_wav("data/anna/one.wav")
    make_wav("data/anna/deep/two.flac")
    make_wav("data/solo.wav")
    make_wav("data/dataset/anna/clip_0001.wav")
    (tmp_path / "data" / "solo.srt").write_text("")
    (tmp_path / "data" / "anna" / "one.txt").write_text("hi")
    found = {
        Path(i.path).relative_to(tmp_path).as_posix(): i
        for i in find_inputs([tmp_path / "data"], tmp_path / "data" / "dataset")
    }
    assert sorted(found) == ["data/anna/deep/two.flac", "data/anna/one.wav", "data/solo.wav"]
    assert [found[k].speaker for k in sorted(found)] == ["anna", "anna", "data"]
    assert (
        found["data/solo.wav"].text_source == "subtitle" and found["data/anna/one.wav"].text_source == "given"
    )
    assert found["data/anna/deep/two.flac"].text_source == "asr"
    direct = find_inputs([tmp_path / "data" / "anna" / "one.wav"], tmp_path / "x", speaker="Me & You")
    assert direct[0].speaker == "Me_You"


def test_changed_settings_are_refused_unless_overwrite(tmp_path):
    rec = long_recording(tmp_path / "in" / "a.wav", TEXTS[:6], PAUSES[:5], speech="synthetic")
    write_srt([(u.start, u.end, u.text) for u in rec.utterances], tmp_path / "in" / "a.srt")
    dataset = tmp_path / "dataset"
    first = prepare([tmp_path / "in"], dataset, progress=False)
    n = first.inputs[0].clips
    changed = prepare([tmp_path / "in"], dataset, max_clip=6.0, progress=False)
    assert "max_clip 15.0 -> 6.0" in changed.inputs[0].error and "--overwrite" in changed.inputs[0].error
    assert len(list(dataset.rglob("clip_*.wav"))) == n  # nothing removed
    again = prepare([tmp_path / "in"], dataset, min_clip=3.0, overwrite=True, progress=False)
    assert again.failed == [] and again.inputs[0].already_done == 0
    assert all(r["duration"] >= 3.0 for r in again.rows if r["file_name"])
    names = sorted(p.name for p in dataset.rglob("clip_*.wav"))
    assert len(names) == again.inputs[0].clips and len(set(names)) == len(names)


def test_a_mono_clip_keeps_its_samples_at_24_khz(tmp_path):
    sr = 16_000
    rng = np.random.default_rng(0)
    rec = long_recording(tmp_path / "in" / "a.wav", TEXTS[:3], [1.0, 1.0], sample_rate=sr, speech="synthetic")
    write_srt([(u.start, u.end, u.text) for u in rec.utterances], tmp_path / "in" / "a.srt")
    report = prepare([tmp_path / "in"], tmp_path / "dataset", progress=False)
    row = report.rows[0]
    clip, rate = sf.read(str(tmp_path / "dataset" / row["file_name"]))
    source, _ = sf.read(str(rec.path))
    from workbench.audio import resample

    expected = resample(source.astype(np.float32), sr, 24_000)[round(row["start"] * 24_000) :][: len(clip)]
    middle = slice(200, len(clip) - 200)  # the edges fade in and out over 5 ms
    assert rate == 24_000 and np.max(np.abs(clip[middle] - expected[middle])) < 1e-3
    assert rng is not None


@needs_espeak
@pytest.mark.slow
def test_ten_minute_recordings_with_and_without_subtitles_become_a_dataset_that_validates_go(
    tmp_path, tiny_whisper
):
    """The issue's bar: 10 minutes with subtitles and 10 without, prepared, converted, validated GO."""
    from workbench.data.convert import convert
    from workbench.data.validate import validate

    subtitled = recording_of_length(tmp_path / "in" / "anna" / "episode1.wav", 10.0, seed=1)
    write_srt([(u.start, u.end, u.text) for u in subtitled.utterances], subtitled.path.with_suffix(".srt"))
    plain = recording_of_length(tmp_path / "in" / "anna" / "episode2.mp3", 10.0, seed=2, sample_rate=44_100)
    dataset = tmp_path / "dataset"
    proc = _cli(str(tmp_path / "in"), "-o", str(dataset), "--asr-model", str(tiny_whisper), "--no-progress")
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = read_prepare_csv(dataset)
    by_source = {
        s: [r for r in rows if r["source_file"] == s and r["file_name"]]
        for s in (str(subtitled.path), str(plain.path))
    }
    assert {r["text_source"] for r in by_source[str(subtitled.path)]} == {"subtitle"}
    assert {r["text_source"] for r in by_source[str(plain.path)]} == {"asr"}
    assert all(len(clips) >= 40 for clips in by_source.values())
    assert all(2.0 <= r["duration"] <= 15.0 for r in rows if r["file_name"])
    assert "2 input(s), 0.33 h (20." in proc.stdout
    converted = tmp_path / "converted.jsonl"
    result = convert([dataset], converted)
    assert result.rejected == 0 and result.converted == sum(len(c) for c in by_source.values())
    verdict = validate(converted)
    assert verdict.ok and verdict.go_no_go().startswith("GO"), verdict.go_no_go()
