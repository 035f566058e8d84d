"""Conversion: the three outputs, missing-audio policies, paths, overwrite rules and the report."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path

import pytest
import soundfile as sf
from conftest import read_jsonl, write_jsonl
from original_records import voice_cloning_record

from workbench.data.contract import check_sample
from workbench.data.convert import convert, parse_remap
from workbench.data.readers import InputError
from workbench.data.sample import AtomicJsonlWriter, Sample, load_samples
from workbench.demo import demo_data


def count_lines(path: Path) -> int:
    return len(read_jsonl(path)) if path.exists() else 0


def outputs(out: Path) -> tuple[Path, Path, Path]:
    return out, out.with_name(out.stem + ".prompts.jsonl"), out.with_name(out.stem + ".rejected.jsonl")


def audio_urls(d: dict) -> list[str]:
    return [m["content"]["audio_url"] for m in d["messages"] if isinstance(m["content"], dict)]


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def mixed_input(tmp_path, make_wav):
    """Seven records: 2 trainable, 1 prompt, 4 rejected (bad JSON, not a dict, no audio, missing file)."""
    make_wav("data/a.wav")
    make_wav("data/b.wav")
    make_wav("data/r.wav")
    records = [
        {"audio_filepath": "a.wav", "text": "first", "id": "ok1"},
        '{"audio_filepath": "b.wav", "text": broken}',
        {"reference_audio": "r.wav", "reference_text": "ref", "target_text": "new words", "id": "prompt1"},
        [1, 2, 3],
        {"messages": [{"role": "user", "content": "no audio anywhere"}], "id": "noaudio"},
        {"audio_filepath": "gone.wav", "text": "missing", "id": "missing1"},
        {"audio_filepath": "b.wav", "text": "second", "id": "ok2"},
    ]
    return write_jsonl(tmp_path / "data" / "in.jsonl", records)


# --- the three outputs --------------------------------------------------------------------------
def test_every_record_ends_in_exactly_one_file(tmp_path, mixed_input):
    out = tmp_path / "out" / "train.jsonl"
    report = convert(mixed_input, out)
    train, prompts, rejected = outputs(out)
    assert (count_lines(train), count_lines(prompts), count_lines(rejected)) == (2, 1, 4)
    assert (report.total, report.converted, report.prompts, report.rejected) == (7, 2, 1, 4)
    assert report.total == count_lines(train) + count_lines(prompts) + count_lines(rejected)
    assert [d["id"] for d in read_jsonl(train)] == ["ok1", "ok2"]
    assert [d["id"] for d in read_jsonl(prompts)] == ["prompt1"]
    lines = [r.get("source_line") for r in read_jsonl(rejected)]
    assert lines == [2, 4, 5, 6]
    # the canonical outputs load back as samples
    assert all(check_sample(s).trainable for s in load_samples(train))
    assert not any(check_sample(s).trainable for s in load_samples(prompts))


def test_rejected_file_holds_original_record_and_reasons(tmp_path, mixed_input):
    out = tmp_path / "out" / "train.jsonl"
    convert(mixed_input, out)
    rejected = {r["source_line"]: r for r in read_jsonl(outputs(out)[2])}
    assert rejected[2]["record"] == '{"audio_filepath": "b.wav", "text": broken}'
    assert rejected[2]["reasons"][0]["code"] == "BAD_RECORD"
    assert rejected[4]["record"] == [1, 2, 3]
    assert rejected[4]["reasons"][0]["code"] == "BAD_RECORD"
    assert rejected[5]["record"] == {
        "messages": [{"role": "user", "content": "no audio anywhere"}],
        "id": "noaudio",
    }
    assert rejected[5]["reasons"][0]["code"] == "NO_AUDIO"
    assert rejected[6]["record"] == {"audio_filepath": "gone.wav", "text": "missing", "id": "missing1"}
    assert rejected[6]["reasons"][0]["code"] == "AUDIO_NOT_FOUND"
    assert str(mixed_input.parent / "gone.wav") in rejected[6]["reasons"][0]["message"]
    for r in rejected.values():
        assert r["source_file"] == str(mixed_input)
        assert all({"code", "message"} <= set(reason) for reason in r["reasons"])
    assert rejected[6]["detected_format"] == "manifest"


def test_prompts_file_and_missing_target_warning(tmp_path, make_wav):
    make_wav("r.wav")
    src = write_jsonl(
        tmp_path / "p.jsonl",
        [{"reference_audio": "r.wav", "reference_text": "r", "target_text": "t", "id": "p"}],
    )
    out = tmp_path / "o.jsonl"
    report = convert(src, out)
    train, prompts, rejected = outputs(out)
    assert train.exists() and count_lines(train) == 0  # the trainable file always exists
    assert count_lines(prompts) == 1 and not rejected.exists()
    issues = [f for f in report.issues if f.code == "MISSING_TARGET_AUDIO"]
    assert len(issues) == 1
    assert issues[0].severity == "warning"
    assert issues[0].sample_id == "p"
    assert "evaluation prompt" in issues[0].message
    assert report.rejected == 0


def test_no_prompts_or_rejected_file_when_empty(tmp_path, make_wav):
    make_wav("a.wav")
    src = write_jsonl(tmp_path / "in.jsonl", [{"audio_filepath": "a.wav", "text": "t"}])
    out = tmp_path / "o.jsonl"
    report = convert(src, out)
    assert [p.exists() for p in outputs(out)] == [True, False, False]
    assert report.outputs == {"trainable": str(out)}


# --- missing audio policies ---------------------------------------------------------------------
@pytest.fixture
def ref_missing(tmp_path, make_wav):
    make_wav("t.wav")
    make_wav("r_ok.wav")
    records = [
        {
            "id": "refgone",
            "reference_audio": "r_gone.wav",
            "reference_text": "ref",
            "target_text": "tgt",
            "target_audio": "t.wav",
        },
        {
            "id": "tgtgone",
            "reference_audio": "r_ok.wav",
            "reference_text": "ref",
            "target_text": "tgt",
            "target_audio": "t_gone.wav",
        },
    ]
    return write_jsonl(tmp_path / "in.jsonl", records)


def test_missing_audio_error_rejects_both(tmp_path, ref_missing):
    out = tmp_path / "o.jsonl"
    report = convert(ref_missing, out, missing_audio="error")
    assert (report.converted, report.rejected) == (0, 2)
    rejected = read_jsonl(outputs(out)[2])
    messages = [r["reasons"][0]["message"] for r in rejected]
    assert messages[0].startswith("reference audio not found") and "r_gone.wav" in messages[0]
    assert messages[1].startswith("target audio not found") and "t_gone.wav" in messages[1]


def test_missing_audio_drop_reference(tmp_path, ref_missing):
    out = tmp_path / "o.jsonl"
    report = convert(ref_missing, out, missing_audio="drop-reference")
    assert (report.converted, report.rejected) == (1, 1)
    (kept,) = read_jsonl(out)
    assert kept["id"] == "refgone"
    assert [m["role"] for m in kept["messages"]] == ["system", "user", "assistant"]
    assert kept["start_index"] == 1
    assert kept["messages"][1]["content"] == "tgt"
    assert kept["misc"]["dropped_references"] == 1
    assert read_jsonl(outputs(out)[2])[0]["record"]["id"] == "tgtgone"
    dropped = [f for f in report.issues if f.sample_id == "refgone"]
    assert [(f.code, f.severity) for f in dropped] == [("AUDIO_NOT_FOUND", "warning")]


def test_missing_audio_placeholder(tmp_path, ref_missing):
    out = tmp_path / "out" / "o.jsonl"
    report = convert(ref_missing, out, missing_audio="placeholder")
    assert (report.converted, report.rejected) == (2, 0)
    samples = {s.id: s for s in load_samples(out)}
    ref_ph = samples["refgone"].reference_audio()[0]
    tgt_ph = samples["tgtgone"].target_audio()[0]
    for path in (ref_ph, tgt_ph):
        assert Path(path).is_relative_to(out.parent)
        info = sf.info(path)
        assert info.samplerate == 24_000 and info.channels == 1 and info.frames > 0
        assert not sf.read(path)[0].any()  # silent
    assert samples["refgone"].misc["placeholder_audio"] == [str(tmp_path / "r_gone.wav")]
    assert samples["tgtgone"].misc["placeholder_audio"] == [str(tmp_path / "t_gone.wav")]
    assert not (tmp_path / "r_gone.wav").exists() and not (tmp_path / "t_gone.wav").exists()
    assert {f.code for f in report.issues} == {"PLACEHOLDER_AUDIO"}
    assert all(f.severity == "warning" for f in report.issues)


def test_placeholder_never_writes_outside_output_folder(tmp_path):
    data = tmp_path / "a" / "b" / "data"
    src = write_jsonl(data / "in.jsonl", [{"audio_filepath": "../../x.wav", "text": "escape", "id": "esc"}])
    out = tmp_path / "result" / "o.jsonl"
    before = {p for p in tmp_path.rglob("*")}
    report = convert(src, out, missing_audio="placeholder")
    assert report.converted == 1
    assert not (tmp_path / "a" / "x.wav").exists()  # where ../../x.wav points
    new_files = {p for p in tmp_path.rglob("*") if p.is_file()} - before
    assert new_files and all(p.is_relative_to(out.parent) for p in new_files), new_files
    (sample,) = load_samples(out)
    assert Path(sample.target_audio()[0]).is_relative_to(out.parent)
    assert sample.misc["placeholder_audio"] == [str(tmp_path / "a" / "x.wav")]


def test_voice_cloning_record_reports_its_missing_reference_and_becomes_a_prompt_once_found(
    tmp_path, make_wav
):
    src = write_jsonl(tmp_path / "in.jsonl", [voice_cloning_record(target_text="Say this, please.")])
    out = tmp_path / "o.jsonl"
    report = convert(src, out)
    assert (report.converted, report.prompts, report.rejected) == (0, 0, 1)
    (entry,) = read_jsonl(outputs(out)[2])
    assert [r["code"] for r in entry["reasons"]] == ["AUDIO_NOT_FOUND"]
    (missing,) = report.issues
    assert missing.message == f"reference audio not found: {tmp_path / 'ref.wav'}"
    assert (missing.sample_id, missing.source_file, missing.source_line) == ("vc", str(src), 1)
    assert missing.field == "messages[1].content" and "--audio-root" in missing.hint

    make_wav("ref.wav")
    report = convert(src, out, overwrite=True)
    assert (report.converted, report.prompts, report.rejected) == (0, 1, 0)
    (prompt,) = load_samples(outputs(out)[1])
    assert prompt.messages[prompt.start_index].text == "Say this, please."
    assert check_sample(prompt).kind == "prompt"
    assert prompt.reference_audio() == [str(tmp_path / "ref.wav")]


def test_a_records_structure_problem_and_missing_files_are_reported_together(tmp_path, make_wav):
    make_wav("t.wav")
    marked_up = {  # converts, but the contract refuses the markup; its target file is missing
        "id": "markup",
        "messages": [
            {"role": "user", "content": "hello <|eot_id|> there"},
            {"role": "assistant", "content": {"type": "audio", "audio_url": "gone.wav"}},
        ],
    }
    src = write_jsonl(tmp_path / "in.jsonl", [voice_cloning_record(ref_transcript="ref words"), marked_up])
    out = tmp_path / "o.jsonl"
    report = convert(src, out)
    assert report.rejected == 2
    reasons = {e["record"]["id"]: e["reasons"] for e in read_jsonl(outputs(out)[2])}
    assert [r["code"] for r in reasons["vc"]] == ["BAD_STRUCTURE", "AUDIO_NOT_FOUND"]
    assert reasons["vc"][1]["field"] == "messages[1].content" and "ref.wav" in reasons["vc"][1]["message"]
    assert [r["code"] for r in reasons["markup"]] == ["AUDIO_NOT_FOUND", "BAD_STRUCTURE"]
    assert (
        reasons["markup"][0]["message"].startswith("target audio not found")
        and "gone.wav" in reasons["markup"][0]["message"]
    )
    assert (
        reasons["markup"][0]["field"] == "messages[1].content"
        and "<|eot_id|>" in reasons["markup"][1]["message"]
    )
    assert all(r.get("hint") for rs in reasons.values() for r in rs)


# --- paths ----------------------------------------------------------------------------------------
def test_relative_paths_resolve_against_the_input_folder_and_load_from_any_cwd(
    tmp_path, make_wav, monkeypatch
):
    make_wav("ds/audio/a.wav")
    src = write_jsonl(tmp_path / "ds" / "in.jsonl", [{"audio_filepath": "audio/a.wav", "text": "t"}])
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    report = convert(os.path.relpath(src, elsewhere), "out/o.jsonl")
    assert report.converted == 1
    (sample,) = load_samples(elsewhere / "out" / "o.jsonl")
    path = sample.target_audio()[0]
    assert os.path.isabs(path) and path == str(tmp_path / "ds" / "audio" / "a.wav")
    assert sample.misc["source_file"] == str(src)
    monkeypatch.chdir(tmp_path)
    assert sf.info(path).frames > 0


def test_audio_root(tmp_path, make_wav):
    make_wav("store/clips/a.wav")
    src = write_jsonl(tmp_path / "meta" / "in.jsonl", [{"audio_filepath": "clips/a.wav", "text": "t"}])
    report = convert(src, tmp_path / "o1.jsonl")
    assert report.rejected == 1  # not next to the input
    report = convert(src, tmp_path / "o2.jsonl", audio_root=str(tmp_path / "store"))
    assert report.converted == 1
    assert load_samples(tmp_path / "o2.jsonl")[0].target_audio() == [
        str(tmp_path / "store" / "clips" / "a.wav")
    ]


def test_audio_root_must_be_a_folder(tmp_path, make_wav):
    src = write_jsonl(tmp_path / "in.jsonl", [{"audio_filepath": "a.wav", "text": "t"}])
    with pytest.raises(ValueError, match="audio_root"):
        convert(src, tmp_path / "o.jsonl", audio_root=str(tmp_path / "nope"))
    assert not (tmp_path / "o.jsonl").exists()


def test_remap_rewrites_prefix(tmp_path, make_wav):
    make_wav("new/data/x/a.wav")
    make_wav("new/data/r.wav")
    records = [
        {"audio_filepath": "/mnt/old/data/x/a.wav", "text": "t"},
        {
            "reference_audio": "/mnt/old/data/r.wav",
            "reference_text": "r",
            "target_text": "t",
            "target_audio": "/mnt/old/data/x/a.wav",
        },
    ]
    src = write_jsonl(tmp_path / "in.jsonl", records)
    report = convert(src, tmp_path / "o.jsonl", remap=[f"/mnt/old={tmp_path}/new"])
    assert (report.converted, report.rejected) == (2, 0)
    samples = load_samples(tmp_path / "o.jsonl")
    assert samples[0].target_audio() == [str(tmp_path / "new" / "data" / "x" / "a.wav")]
    assert samples[1].reference_audio() == [str(tmp_path / "new" / "data" / "r.wav")]


def test_remap_matches_whole_folders_only(tmp_path, make_wav):
    make_wav("new/a.wav")
    records = [
        {"audio_filepath": "/mnt/old/a.wav", "text": "t"},
        {"audio_filepath": "/mnt/older/a.wav", "text": "t"},
    ]
    src = write_jsonl(tmp_path / "in.jsonl", records)
    report = convert(src, tmp_path / "o.jsonl", remap=[f"/mnt/old={tmp_path}/new"])
    assert (report.converted, report.rejected) == (1, 1)
    (rejected,) = read_jsonl(tmp_path / "o.rejected.jsonl")
    assert "/mnt/older/a.wav" in rejected["reasons"][0]["message"]


def test_remap_windows_prefix(tmp_path, make_wav):
    make_wav("data/sub/a.wav")
    src = write_jsonl(tmp_path / "in.jsonl", [{"audio_filepath": "D:\\corpus\\sub\\a.wav", "text": "t"}])
    report = convert(src, tmp_path / "o.jsonl", remap=[f"D:\\corpus={tmp_path}/data"])
    assert report.converted == 1
    assert load_samples(tmp_path / "o.jsonl")[0].target_audio() == [str(tmp_path / "data" / "sub" / "a.wav")]


def test_remap_longest_prefix_first_and_bad_item():
    assert parse_remap(["/a=/x", "/a/b=/y"]) == (("/a/b", "/y"), ("/a", "/x"))
    with pytest.raises(ValueError, match="OLD=NEW"):
        parse_remap(["/no/equals/sign"])


# --- overwrite and inputs -------------------------------------------------------------------------
def test_outputs_not_overwritten_without_overwrite(tmp_path, mixed_input):
    out = tmp_path / "o.jsonl"
    convert(mixed_input, out)
    before = {p: sha(p) for p in outputs(out)}
    with pytest.raises(FileExistsError, match="overwrite"):
        convert(mixed_input, out)
    assert {p: sha(p) for p in outputs(out)} == before
    convert(mixed_input, out, overwrite=True)
    assert count_lines(out) == 2


def test_existing_sibling_blocks_too(tmp_path, mixed_input):
    out = tmp_path / "o.jsonl"
    out.with_name("o.rejected.jsonl").write_text("old\n", encoding="utf-8")
    with pytest.raises(FileExistsError, match="o.rejected.jsonl"):
        convert(mixed_input, out)
    assert not out.exists()


def test_overwrite_removes_stale_siblings(tmp_path, mixed_input, make_wav):
    out = tmp_path / "o.jsonl"
    convert(mixed_input, out)
    assert outputs(out)[2].exists()
    make_wav("c.wav")
    clean = write_jsonl(tmp_path / "clean.jsonl", [{"audio_filepath": "c.wav", "text": "t"}])
    convert(clean, out, overwrite=True)
    assert [p.exists() for p in outputs(out)] == [True, False, False]


def test_inputs_never_modified(tmp_path, mixed_input):
    before = sha(mixed_input)
    mtime = mixed_input.stat().st_mtime_ns
    convert(mixed_input, tmp_path / "o.jsonl", missing_audio="placeholder")
    convert(mixed_input, tmp_path / "o.jsonl", overwrite=True, missing_audio="drop-reference")
    assert sha(mixed_input) == before and mixed_input.stat().st_mtime_ns == mtime


def test_output_equal_to_input_refused_even_with_overwrite(tmp_path, mixed_input):
    before = sha(mixed_input)
    with pytest.raises(ValueError, match="also an input"):
        convert(mixed_input, mixed_input, overwrite=True)
    assert sha(mixed_input) == before


def test_missing_input_is_input_error_and_writes_nothing(tmp_path):
    out = tmp_path / "out" / "o.jsonl"
    with pytest.raises(InputError, match="nope.jsonl"):
        convert(tmp_path / "nope.jsonl", out)
    assert not out.parent.exists()


def test_unreadable_second_input_leaves_no_partial_output(tmp_path, mixed_input):
    bad = tmp_path / "data.parquet"
    bad.write_bytes(b"PAR1")
    out = tmp_path / "o.jsonl"
    with pytest.raises(InputError, match="data.parquet"):
        convert([mixed_input, bad], out, reference="none")
    assert list(tmp_path.glob("o*")) == [] and list(tmp_path.glob(".o*")) == []


def test_output_files_are_readable_by_others_like_plain_files(tmp_path, mixed_input):
    old = os.umask(0o022)
    try:
        convert(mixed_input, tmp_path / "o.jsonl", report=tmp_path / "r.json")
    finally:
        os.umask(old)
    for p in (tmp_path / "o.jsonl", tmp_path / "o.rejected.jsonl", tmp_path / "r.json"):
        assert stat.S_IMODE(p.stat().st_mode) == 0o644, p


def test_atomic_writer_leaves_no_temp_file_when_the_move_fails(tmp_path):
    target = tmp_path / "dir.jsonl"
    target.mkdir()
    with pytest.raises(OSError):
        with AtomicJsonlWriter(target, overwrite=True) as writer:
            writer.write({"a": 1})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir.jsonl"]


def test_atomic_writer_removes_temp_file_on_error(tmp_path):
    target = tmp_path / "o.jsonl"
    with pytest.raises(RuntimeError):
        with AtomicJsonlWriter(target) as writer:
            writer.write({"a": 1})
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_atomic_writer_empty_output_rules(tmp_path):
    kept = tmp_path / "kept.jsonl"
    with AtomicJsonlWriter(kept):
        pass
    assert kept.read_text() == ""  # keep_empty (the default): an empty file
    skipped = tmp_path / "skipped.jsonl"
    with AtomicJsonlWriter(skipped, keep_empty=False):
        pass
    assert not skipped.exists()
    stale = tmp_path / "stale.jsonl"
    stale.write_text('{"old": 1}\n')
    with pytest.raises(FileExistsError, match="--overwrite"):
        with AtomicJsonlWriter(stale, keep_empty=False):
            pass
    assert stale.read_text() == '{"old": 1}\n'
    with AtomicJsonlWriter(stale, overwrite=True, keep_empty=False):
        pass
    assert not stale.exists()  # an empty result replaces a stale file from an earlier run
    with AtomicJsonlWriter(stale, keep_empty=False) as writer:
        writer.write_many([{"id": "é"}, {"id": 2}])
    assert stale.read_text(encoding="utf-8") == '{"id": "é"}\n{"id": 2}\n' and writer.count == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept.jsonl", "stale.jsonl"]


# --- the report --------------------------------------------------------------------------------
def test_report_json_contract(tmp_path, mixed_input):
    out = tmp_path / "o.jsonl"
    report_path = tmp_path / "reports" / "convert.json"
    convert(mixed_input, out, report=report_path)
    data = json.loads(report_path.read_text(encoding="utf-8"))
    for key in ("total", "converted", "prompts", "rejected"):
        assert type(data[key]) is int
    assert (data["total"], data["converted"], data["prompts"], data["rejected"]) == (7, 2, 1, 4)
    assert data["formats"] == {"chatml": 1, "manifest": 3, "paired": 1}
    assert isinstance(data["issues"], list)
    by_code: dict[str, list[dict]] = {}
    for issue in data["issues"]:
        assert {"code", "severity", "message", "source_file", "source_index"} <= set(issue)
        assert issue["severity"] in ("error", "warning")
        assert issue["source_file"] == str(mixed_input)
        by_code.setdefault(issue["code"], []).append(issue)
    assert sorted(by_code) == ["AUDIO_NOT_FOUND", "BAD_RECORD", "MISSING_TARGET_AUDIO", "NO_AUDIO"]
    assert len(by_code["BAD_RECORD"]) == 2
    bad_json, not_dict = sorted(by_code["BAD_RECORD"], key=lambda i: i["source_line"])
    assert (bad_json["source_line"], bad_json["source_index"]) == (2, 1)
    assert "not valid JSON" in bad_json["message"]
    assert (not_dict["source_line"], not_dict["source_index"]) == (4, 3)
    assert "expected a JSON object, got list" in not_dict["message"]
    assert by_code["NO_AUDIO"][0]["sample_id"] == "noaudio"
    assert by_code["AUDIO_NOT_FOUND"][0]["sample_id"] == "missing1"
    assert by_code["MISSING_TARGET_AUDIO"][0]["sample_id"] == "prompt1"
    assert by_code["MISSING_TARGET_AUDIO"][0]["severity"] == "warning"
    assert all(
        i["severity"] == "error" for c in ("BAD_RECORD", "NO_AUDIO", "AUDIO_NOT_FOUND") for i in by_code[c]
    )


def test_bad_record_in_json_array_has_its_index(tmp_path, make_wav):
    make_wav("a.wav")
    src = tmp_path / "arr.json"
    src.write_text(
        json.dumps([{"audio_filepath": "a.wav", "text": "t"}, "just a string", 3]), encoding="utf-8"
    )
    report = convert(src, tmp_path / "o.jsonl")
    bad = [f for f in report.issues if f.code == "BAD_RECORD"]
    assert [(f.source_index, f.source_line) for f in bad] == [(1, None), (2, None)]
    assert "got str" in bad[0].message and "got int" in bad[1].message


def test_bad_field_issue_names_the_record_id(tmp_path):
    src = write_jsonl(tmp_path / "in.jsonl", [{"id": "x7", "audio_filepath": 42, "text": "t"}])
    report = convert(src, tmp_path / "o.jsonl")
    (issue,) = report.issues
    assert (issue.code, issue.sample_id, issue.field) == ("BAD_FIELD", "x7", "audio_filepath")


def test_several_inputs_and_formats(tmp_path, make_wav):
    make_wav("a.wav")
    make_wav("r.wav")
    one = write_jsonl(tmp_path / "one.jsonl", [{"audio_filepath": "a.wav", "text": "t"}])
    two = tmp_path / "two.csv"
    two.write_text(
        "reference_audio,reference_text,target_text,target_audio\nr.wav,ref,tgt,a.wav\nr.wav,ref,tgt2,\n",
        encoding="utf-8",
    )
    report = convert([one, two], tmp_path / "o.jsonl")
    assert report.formats == {"manifest": 1, "paired": 2}
    assert (report.total, report.converted, report.prompts) == (3, 2, 1)
    prompts = read_jsonl(tmp_path / "o.prompts.jsonl")
    assert prompts[0]["misc"]["source_file"] == str(two) and prompts[0]["misc"]["source_line"] == 3


def test_default_ids_unique_across_inputs_with_the_same_name(tmp_path, make_wav):
    make_wav("a/x.wav")
    make_wav("b/y.wav")
    one = write_jsonl(tmp_path / "a" / "train.jsonl", [{"audio_filepath": "x.wav", "text": "t"}])
    two = write_jsonl(tmp_path / "b" / "train.jsonl", [{"audio_filepath": "y.wav", "text": "t"}])
    convert([one, two], tmp_path / "o.jsonl")
    assert [d["id"] for d in read_jsonl(tmp_path / "o.jsonl")] == ["train-000000", "train-2-000000"]


# --- the demo dataset ---------------------------------------------------------------------------
def test_demo_dataset_converts_to_documented_counts(tmp_path):
    info = demo_data(tmp_path / "demo")
    assert json.loads((tmp_path / "demo" / "demo.json").read_text()) == info
    inputs = [tmp_path / "demo" / p for p in info["inputs"]]
    out = tmp_path / "conv" / "demo.jsonl"
    report = convert(inputs, out, report=tmp_path / "conv" / "report.json")
    expected = info["expected"]
    got = {k: getattr(report, k) for k in ("total", "converted", "prompts", "rejected")}
    assert got == expected
    assert dict(report.formats) == {
        "audiofolder": 4, "chatml": 3, "ljspeech": 6, "manifest": 11, "mixed": 3, "paired": 5,
    }  # fmt: skip
    assert count_lines(out) == expected["converted"]
    assert count_lines(outputs(out)[1]) == expected["prompts"]
    rejected = read_jsonl(outputs(out)[2])
    assert sorted(r["reasons"][0]["code"] for r in rejected) == ["AUDIO_NOT_FOUND", "BAD_FIELD", "BAD_RECORD"]
    assert {r.get("source_line") for r in rejected} == {6, 10, None}  # as documented in demo.json
    assert any(r["source_file"].endswith(info["defects"]["clip_without_transcript"]) for r in rejected)
    samples: list[Sample] = load_samples(out)
    assert len({s.id for s in samples}) == len(samples)
    assert all(os.path.isfile(p) for s in samples for p in s.target_audio() + s.reference_audio())
    mixed = [s for s in samples if s.misc["source_format"] == "mixed"]
    assert len(mixed) == 3
    assert all("generate speech" not in s.target_text() for s in mixed)
    assert all("generate speech" in s.misc["instruction"] for s in mixed)
