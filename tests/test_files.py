"""workbench.files: a file appears whole or not at all, with a plain file's mode; one table, three formats."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from workbench.files import (
    atomic_folder,
    atomic_path,
    atomic_write,
    csv_text,
    json_text,
    plain_file_mode,
    write_bytes,
    write_json,
    write_table,
    write_text,
)

BIG = 8 * 1024 * 1024  # large enough that a write takes many chunks
CHUNK = 1024 * 1024


def hidden(folder: Path) -> list[str]:
    """Names of the hidden (temporary) files in ``folder``."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def umask():
    """A setter for the process umask; the previous umask is restored afterwards."""
    previous = os.umask(0o022)
    yield os.umask
    os.umask(previous)


class Boom(Exception):
    pass


def test_write_text_creates_the_folder_and_leaves_nothing_else(tmp_path):
    path = tmp_path / "a" / "b" / "note.txt"
    assert write_text(path, "naïve ☃\n") == path
    assert path.read_text(encoding="utf-8") == "naïve ☃\n"
    assert write_bytes(path, b"\x00\x01") == path  # an existing file is replaced whole
    assert path.read_bytes() == b"\x00\x01"
    assert hidden(path.parent) == []


def _fail_in_atomic_write_text(path: Path, error: type[BaseException]) -> None:
    with atomic_write(path) as fh:
        fh.write("new but unfinished")
        fh.flush()
        raise error()


def _fail_in_atomic_write_bytes(path: Path, error: type[BaseException]) -> None:
    with atomic_write(path, "wb") as fh:
        fh.write(b"new but unfinished")
        fh.flush()
        raise error()


def _fail_in_atomic_path(path: Path, error: type[BaseException]) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text("new but unfinished")
        raise error()


@pytest.mark.parametrize("error", [Boom, KeyboardInterrupt])
@pytest.mark.parametrize(
    "fail", [_fail_in_atomic_write_text, _fail_in_atomic_write_bytes, _fail_in_atomic_path]
)
def test_an_error_inside_the_block_keeps_the_old_file_and_no_temporary(tmp_path, fail, error):
    old = tmp_path / "kept.txt"
    old.write_text("old content")
    with pytest.raises(error):
        fail(old, error)
    assert old.read_text() == "old content"
    assert hidden(tmp_path) == []

    fresh = tmp_path / "never.txt"
    with pytest.raises(error):
        fail(fresh, error)
    assert not fresh.exists()
    assert hidden(tmp_path) == []


def test_a_failed_move_leaves_no_temporary(tmp_path):
    folder = tmp_path / "taken"
    (folder / "inside").mkdir(parents=True)  # a non-empty folder where the file should go
    with pytest.raises(OSError):
        write_text(folder, "text")
    assert folder.is_dir() and hidden(tmp_path) == []


def test_atomic_path_hands_an_existing_temporary_to_writers_by_name(tmp_path):
    seen = []
    with atomic_path(tmp_path / "codes.npy", suffix=".npy") as tmp:
        seen.append((tmp.parent, tmp.name.startswith(".codes.npy."), tmp.suffix, tmp.is_file()))
        np.save(tmp, np.arange(6, dtype=np.int16).reshape(2, 3), allow_pickle=False)
    assert seen == [(tmp_path, True, ".npy", True)]
    assert np.load(tmp_path / "codes.npy").tolist() == [[0, 1, 2], [3, 4, 5]]

    with atomic_path(tmp_path / "clip.wav", suffix=".wav") as tmp:
        sf.write(tmp, np.zeros(240, np.float32), 24_000, subtype="PCM_16")
    assert sf.info(tmp_path / "clip.wav").frames == 240
    assert hidden(tmp_path) == []


def test_a_reader_in_another_thread_sees_only_the_old_file_while_a_large_file_is_written(tmp_path):
    path = tmp_path / "big.bin"
    old = b"old" * 1000
    path.write_bytes(old)
    new = np.random.default_rng(0).bytes(BIG)
    turn = threading.Barrier(2, timeout=60)  # the writer and the reader take turns, chunk by chunk
    seen: list[tuple[bytes, int]] = []

    def writer() -> None:
        with atomic_write(path, "wb") as fh:
            for start in range(0, BIG, CHUNK):
                fh.write(new[start : start + CHUNK])
                fh.flush()
                turn.wait()  # this chunk is on disk: let the reader look
                turn.wait()  # the reader has looked

    thread = threading.Thread(target=writer)
    thread.start()
    for _ in range(BIG // CHUNK):
        turn.wait()
        (tmp,) = [p for p in tmp_path.iterdir() if p.name.startswith(".big.bin.")]
        seen.append((path.read_bytes(), tmp.stat().st_size))
        turn.wait()
    thread.join(timeout=60)
    assert not thread.is_alive()
    # the temporary file grew chunk by chunk while the reader saw the old file every time
    assert [size for _, size in seen] == list(range(CHUNK, BIG + 1, CHUNK))
    assert all(content == old for content, _ in seen)
    assert path.read_bytes() == new
    assert hidden(tmp_path) == []


def test_a_reader_in_another_process_sees_the_old_file_or_the_whole_new_one(tmp_path):
    path = tmp_path / "big.bin"
    old = b"old" * 1000
    path.write_bytes(old)
    new = np.random.default_rng(1).bytes(BIG)
    reader = [
        sys.executable,
        "-c",
        "import hashlib,sys; print(hashlib.sha256(open(sys.argv[1],'rb').read()).hexdigest())",
    ]

    def digest_seen_by_another_process() -> str:
        return subprocess.run([*reader, str(path)], capture_output=True, text=True, check=True).stdout.strip()

    with atomic_write(path, "wb") as fh:
        fh.write(new[: BIG // 2])
        fh.flush()
        assert digest_seen_by_another_process() == hashlib.sha256(old).hexdigest()
        fh.write(new[BIG // 2 :])
        fh.flush()
        assert digest_seen_by_another_process() == hashlib.sha256(old).hexdigest()
    assert digest_seen_by_another_process() == hashlib.sha256(new).hexdigest()


def test_writers_racing_for_one_path_leave_one_whole_copy(tmp_path):
    path = tmp_path / "shared.bin"
    contents = [bytes([k]) * (2 * CHUNK) for k in range(4)]
    start = threading.Barrier(len(contents), timeout=60)

    def write(data: bytes) -> None:
        start.wait()
        write_bytes(path, data)

    threads = [threading.Thread(target=write, args=(c,)) for c in contents]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert path.read_bytes() in contents
    assert hidden(tmp_path) == []


@pytest.mark.parametrize("mask, expected", [(0o022, 0o644), (0o027, 0o640), (0o002, 0o664), (0o077, 0o600)])
def test_files_get_a_plain_files_mode_under_the_umask(tmp_path, umask, mask, expected):
    umask(mask)
    write_text(tmp_path / "text.txt", "x")
    write_json(tmp_path / "data.json", {"a": 1})
    write_table([{"a": 1}], tmp_path / "table.csv")
    with atomic_path(tmp_path / "codes.npy", suffix=".npy") as tmp:
        np.save(tmp, np.zeros(3))
    (tmp_path / "plain.txt").write_text("x")  # what open() gives, for comparison
    for name in ("text.txt", "data.json", "table.csv", "codes.npy", "plain.txt"):
        assert mode_of(tmp_path / name) == expected, name


def test_replacing_a_private_file_gives_a_plain_files_mode(tmp_path, umask):
    path = tmp_path / "report.json"
    path.write_text("{}")
    path.chmod(0o600)
    write_json(path, {"b": 2})
    assert mode_of(path) == 0o644

    other = tmp_path / "made_by_mkstemp"
    other.write_text("x")
    other.chmod(0o600)
    plain_file_mode(other)
    assert mode_of(other) == 0o644


def test_atomic_write_refuses_modes_other_than_writing(tmp_path):
    with pytest.raises(ValueError, match="'a'"):
        with atomic_write(tmp_path / "x.txt", "a"):
            pass
    assert list(tmp_path.iterdir()) == []


def test_json_turns_paths_and_numpy_values_into_plain_values_and_keeps_utf8(tmp_path):
    data = {
        "path": Path("/data/clip.wav"),
        "count": np.int64(3),
        "ratio": np.float32(0.5),
        "codes": np.arange(3),
        "speakers": {"zoë", "adam"},
        "text": "naïve ☃",
    }
    path = write_json(tmp_path / "out" / "report.json", data)
    text = path.read_text(encoding="utf-8")
    assert text.endswith("}\n") and "naïve ☃" in text and '\n  "path"' in text
    assert json.loads(text) == {
        "path": "/data/clip.wav",
        "count": 3,
        "ratio": 0.5,
        "codes": [0, 1, 2],
        "speakers": ["adam", "zoë"],
        "text": "naïve ☃",
    }
    assert json_text([1], indent=None) == "[1]\n"


def test_json_that_cannot_be_written_names_the_type_and_writes_nothing(tmp_path):
    with pytest.raises(TypeError, match="object is not JSON serialisable"):
        write_json(tmp_path / "bad.json", {"x": object()})
    assert list(tmp_path.iterdir()) == []


ROWS = [
    {"id": "a", "n": 1, "score": 0.25, "tags": ["x", "y"], "note": None, "ok": True},
    {"id": "b,c", "score": 1e-07, "note": 'says "hi"\nthen leaves', "extra": "left out", "meta": {"k": 1}},
    {"id": "naïve ☃", "n": -2, "tags": [], "ok": False},
]
COLUMNS = ["id", "n", "score", "tags", "note", "ok", "meta"]


def _as_csv_cell(value) -> str:
    """What a CSV cell holds for a JSON value: nothing for null, JSON text for nested values."""
    if value is None:
        return ""
    if isinstance(value, (list, dict)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


@pytest.mark.parametrize("columns", [COLUMNS, None])
def test_csv_json_and_json_lines_of_one_table_hold_the_same_cells(tmp_path, columns):
    csv_path = write_table(ROWS, tmp_path / "t.csv", columns)
    json_path = write_table(iter(ROWS), tmp_path / "t.json", columns)  # any iterable of rows
    jsonl_path = write_table(ROWS, tmp_path / "t.JSONL", columns)

    with open(csv_path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        header = reader.fieldnames
        from_csv = list(reader)
    from_json = json.loads(json_path.read_text(encoding="utf-8"))
    from_jsonl = [json.loads(line) for line in jsonl_path.read_text(encoding="utf-8").splitlines()]

    expected_columns = COLUMNS if columns else ["id", "n", "score", "tags", "note", "ok", "extra", "meta"]
    assert header == expected_columns
    assert from_json == from_jsonl
    assert [list(row) for row in from_json] == [expected_columns] * len(ROWS)
    for source, csv_row, json_row in zip(ROWS, from_csv, from_json, strict=True):
        for name in expected_columns:
            assert json_row[name] == source.get(name), name  # missing keys are null
            assert csv_row[name] == _as_csv_cell(json_row[name]), name
    assert ("extra" in from_json[1]) is (columns is None)


def test_an_empty_table_has_its_header_only(tmp_path):
    assert write_table([], tmp_path / "t.csv", ["a", "b"]).read_text() == "a,b\n"
    assert json.loads(write_table([], tmp_path / "t.json", ["a"]).read_text()) == []
    assert write_table([], tmp_path / "t.jsonl").read_text() == ""
    assert csv_text([{"a": 1}]) == "a\n1\n"


@pytest.mark.parametrize("name", ["table.xlsx", "table"])
def test_a_table_with_an_unknown_suffix_is_an_error_naming_the_path(tmp_path, name):
    path = tmp_path / name
    with pytest.raises(ValueError) as err:
        write_table(ROWS, path)
    assert str(path) in str(err.value) and ".csv, .json or .jsonl" in str(err.value)
    assert list(tmp_path.iterdir()) == []


def test_atomic_folder_appears_whole_with_a_plain_mode_and_keeps_or_replaces_what_is_there(tmp_path):
    out = tmp_path / "model"
    old_umask = os.umask(0o022)
    try:
        with atomic_folder(out) as tmp:
            (tmp / "a.txt").write_text("one")
            assert not out.exists()
    finally:
        os.umask(old_umask)
    assert (out / "a.txt").read_text() == "one"
    assert stat.S_IMODE(out.stat().st_mode) == 0o755  # not mkdtemp's 0700
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_folder(out) as tmp:
            (tmp / "a.txt").write_text("two")
            raise RuntimeError("boom")
    assert (out / "a.txt").read_text() == "one"
    with atomic_folder(out, keep_existing=lambda existing: (existing / "a.txt").read_text() == "one") as tmp:
        (tmp / "a.txt").write_text("three")
    assert (out / "a.txt").read_text() == "one"  # kept: another process finished first
    with atomic_folder(out, keep_existing=lambda existing: False) as tmp:
        (tmp / "b.txt").write_text("four")
    assert sorted(p.name for p in out.iterdir()) == ["b.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no temporary folder left behind
