"""Readers: every input shape people bring, one record at a time, with provenance."""

from __future__ import annotations

import json
import os

import pytest

from workbench.data.readers import InputError, RawRecord, iter_records


def _records(path) -> list[RawRecord]:
    return list(iter_records(path))


# --- JSON Lines ---------------------------------------------------------------------------
def test_jsonl_skips_blank_lines_and_counts_lines(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_text('{"n": 1}\n\n   \n{"n": 2}\n\n{"n": 3}\n', encoding="utf-8")
    recs = _records(path)
    assert [r.record for r in recs] == [{"n": 1}, {"n": 2}, {"n": 3}]
    assert [r.source_line for r in recs] == [1, 4, 6]
    assert [r.source_index for r in recs] == [0, 1, 2]
    assert all(r.error is None for r in recs)
    assert {r.source_file for r in recs} == {str(path)}
    assert {r.base_dir for r in recs} == {str(tmp_path)}


def test_jsonl_with_bom_and_crlf(tmp_path):
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"text": "caf\xc3\xa9"}\r\n\r\n{"text": "b"}\r\n')
    recs = _records(path)
    assert [r.record for r in recs] == [{"text": "café"}, {"text": "b"}]
    assert [r.source_line for r in recs] == [1, 3]
    assert all(r.error is None for r in recs)


def test_ndjson_extension_is_json_lines(tmp_path):
    path = tmp_path / "a.NDJSON"
    path.write_text('{"a": 1}\n[1, 2]\n', encoding="utf-8")
    recs = _records(path)
    assert [r.record for r in recs] == [{"a": 1}, [1, 2]]


def test_jsonl_malformed_line_among_good_ones(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text('{"a": 1}\n{"a": 2\n\n{"a": 3}\n', encoding="utf-8")
    recs = _records(path)
    assert len(recs) == 3
    good1, bad, good2 = recs
    assert good1.record == {"a": 1} and good1.error is None
    assert good2.record == {"a": 3} and good2.error is None and good2.source_line == 4
    assert bad.source_line == 2
    assert bad.source_index == 1
    assert bad.error is not None and "not valid JSON" in bad.error
    assert bad.record == '{"a": 2'  # the line as written, for the rejected file
    assert bad.where() == f"{path}:2"


def test_jsonl_invalid_utf8_line(tmp_path):
    path = tmp_path / "u.jsonl"
    path.write_bytes(b'{"a": 1}\n{"a": "\xff\xfe"}\n{"a": 3}\n')
    recs = _records(path)
    assert [r.error is None for r in recs] == [True, False, True]
    assert "UTF-8" in recs[1].error
    assert recs[1].source_line == 2
    assert recs[2].record == {"a": 3}


def test_jsonl_is_streamed(tmp_path):
    path = tmp_path / "s.jsonl"
    path.write_text("".join(json.dumps({"i": i}) + "\n" for i in range(1000)), encoding="utf-8")
    it = iter_records(path)
    assert next(it).record == {"i": 0}  # a generator: the first record comes before the rest is parsed
    assert sum(1 for _ in it) == 999


# --- JSON -----------------------------------------------------------------------------------
def test_json_array(tmp_path):
    path = tmp_path / "a.json"
    path.write_text(json.dumps([{"audio_filepath": "x.wav", "text": "t"}, 7, {"b": 2}]), encoding="utf-8")
    recs = _records(path)
    assert [r.record for r in recs] == [{"audio_filepath": "x.wav", "text": "t"}, 7, {"b": 2}]
    assert [r.source_index for r in recs] == [0, 1, 2]
    assert all(r.source_line is None for r in recs)
    assert recs[1].where() == f"{path} record 1"


def test_json_single_object(tmp_path):
    path = tmp_path / "one.json"
    record = {"reference_audio": "r.wav", "reference_text": "r", "target_text": "t", "tags": [{"k": 1}]}
    path.write_text(json.dumps(record), encoding="utf-8")
    recs = _records(path)
    assert len(recs) == 1 and recs[0].record == record


@pytest.mark.parametrize("key", ["samples", "data", "whatever_list"])
def test_json_object_holding_a_list(tmp_path, key):
    path = tmp_path / "holder.json"
    items = [{"audio_filepath": f"{i}.wav", "text": str(i)} for i in range(3)]
    path.write_text(json.dumps({"version": 2, "name": "ds", key: items}), encoding="utf-8")
    recs = _records(path)
    assert [r.record for r in recs] == items


def test_json_with_bom_and_crlf(tmp_path):
    path = tmp_path / "bom.json"
    path.write_bytes(b'\xef\xbb\xbf[\r\n {"a": 1},\r\n {"a": 2}\r\n]\r\n')
    assert [r.record for r in _records(path)] == [{"a": 1}, {"a": 2}]


def test_json_invalid_is_input_error_naming_path(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('[{"a": 1},', encoding="utf-8")
    with pytest.raises(InputError, match="broken.json") as info:
        _records(path)
    assert "not valid JSON" in str(info.value)


def test_json_scalar_is_input_error(tmp_path):
    path = tmp_path / "scalar.json"
    path.write_text("42", encoding="utf-8")
    with pytest.raises(InputError, match="scalar.json"):
        _records(path)


# --- CSV / TSV ------------------------------------------------------------------------------
def test_csv_with_header_empty_cells_are_none(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text('audio_filepath,text,speaker\na.wav,"hello, world",spk\nb.wav,,\n', encoding="utf-8")
    recs = _records(path)
    assert [r.record for r in recs] == [
        {"audio_filepath": "a.wav", "text": "hello, world", "speaker": "spk"},
        {"audio_filepath": "b.wav", "text": None, "speaker": None},
    ]
    assert [r.source_line for r in recs] == [2, 3]
    assert [r.source_index for r in recs] == [0, 1]
    assert all(r.format_hint is None for r in recs)


def test_csv_with_bom_and_crlf(tmp_path):
    path = tmp_path / "m.csv"
    path.write_bytes(b"\xef\xbb\xbfaudio_filepath,text\r\na.wav,hi\r\nb.wav,there\r\n")
    recs = _records(path)
    assert [r.record for r in recs] == [
        {"audio_filepath": "a.wav", "text": "hi"},
        {"audio_filepath": "b.wav", "text": "there"},
    ]


def test_tsv_with_header(tmp_path):
    path = tmp_path / "m.tsv"
    path.write_text("audio_filepath\ttext\tspeaker\na.wav\tone, two\t\n", encoding="utf-8")
    recs = _records(path)
    assert [r.record for r in recs] == [{"audio_filepath": "a.wav", "text": "one, two", "speaker": None}]


def test_csv_row_with_extra_cells_is_an_error_record(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text("audio_filepath,text\na.wav,hi\nb.wav,x,y,z\nc.wav,ok\n", encoding="utf-8")
    recs = _records(path)
    assert [r.error is None for r in recs] == [True, False, True]
    assert "2 more cell(s)" in recs[1].error
    assert recs[1].source_line == 3


def test_ljspeech_metadata_without_header(tmp_path):
    path = tmp_path / "metadata.csv"
    path.write_text('LJ001|Said "hi", twice.|said hi twice\nLJ002|Only raw text\n', encoding="utf-8")
    recs = _records(path)
    assert [r.record for r in recs] == [
        {"id": "LJ001", "text": 'Said "hi", twice.', "normalized_text": "said hi twice"},
        {"id": "LJ002", "text": "Only raw text", "normalized_text": None},
    ]
    assert [r.format_hint for r in recs] == ["ljspeech", "ljspeech"]
    assert [r.source_line for r in recs] == [1, 2]


def test_ljspeech_metadata_with_bom_and_crlf(tmp_path):
    path = tmp_path / "metadata.csv"
    path.write_bytes(b"\xef\xbb\xbfLJ001|One.|one\r\nLJ002|Two.|two\r\n")
    recs = _records(path)
    assert [r.record["id"] for r in recs] == ["LJ001", "LJ002"]
    assert recs[1].record["normalized_text"] == "two"


def test_pipe_separated_with_header_is_not_ljspeech(tmp_path):
    path = tmp_path / "list.csv"
    path.write_text("audio_filepath|text\na.wav|hello\n", encoding="utf-8")
    recs = _records(path)
    assert [r.record for r in recs] == [{"audio_filepath": "a.wav", "text": "hello"}]
    assert recs[0].format_hint is None


# --- dataset folders ------------------------------------------------------------------------
def test_trainer_folder_reads_metadata_json(tmp_path):
    folder = tmp_path / "trainer"
    folder.mkdir()
    entries = [{"audio_file": "a.wav", "transcript_file": "a.txt", "audio_id": "a"}]
    (folder / "metadata.json").write_text(json.dumps({"samples": entries}), encoding="utf-8")
    recs = _records(folder)
    assert [r.record for r in recs] == entries
    assert recs[0].source_file == str(folder / "metadata.json")
    assert recs[0].base_dir == str(folder)
    # A second metadata file is never silently ignored: the user names the one to read.
    (folder / "metadata.csv").write_text("X|should not be read\n", encoding="utf-8")
    with pytest.raises(InputError, match="several metadata files"):
        _records(folder)


def test_ljspeech_folder(tmp_path):
    folder = tmp_path / "LJSpeech-1.1"
    folder.mkdir()
    (folder / "metadata.csv").write_text("LJ001|A.|a\n", encoding="utf-8")
    recs = _records(folder)
    assert len(recs) == 1 and recs[0].format_hint == "ljspeech"
    assert recs[0].base_dir == str(folder)


def test_folder_without_metadata_is_input_error(tmp_path):
    folder = tmp_path / "empty_ds"
    folder.mkdir()
    with pytest.raises(InputError, match="empty_ds"):
        _records(folder)


# --- errors ----------------------------------------------------------------------------------
def test_unsupported_extension_names_path(tmp_path):
    path = tmp_path / "data.parquet"
    path.write_bytes(b"PAR1")
    with pytest.raises(InputError) as info:
        _records(path)
    assert str(path) in str(info.value)
    assert "unsupported" in str(info.value)


def test_missing_path_names_path(tmp_path):
    path = tmp_path / "nope" / "missing.jsonl"
    with pytest.raises(InputError) as info:
        _records(path)
    assert str(path) in str(info.value)
    assert "not found" in str(info.value)


def test_relative_input_path_is_made_absolute(tmp_path, monkeypatch):
    (tmp_path / "r.jsonl").write_text('{"a": 1}\n', encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    recs = _records("r.jsonl")
    assert os.path.isabs(recs[0].source_file) and recs[0].base_dir == str(tmp_path)
