"""Tests for workbench.training.content_hashes: files hashed once per machine and once for all nodes
(real files on disk, two "nodes" as two objects with their own machine index and one shared folder)."""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
from pathlib import Path

import pytest

from workbench.training.content_hashes import (
    SHARED_HASHES_DIR,
    ContentHashes,
    SharedHashes,
    file_content_hash,
)


@pytest.fixture
def files(tmp_path: Path) -> list[Path]:
    paths = []
    for i in range(3):
        path = tmp_path / "data" / f"f{i}.bin"
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(bytes(range(256)) * (i + 1) + b"end")
        paths.append(path)
    return paths


def test_file_content_hash_is_blake2b_of_the_bytes(files, tmp_path: Path) -> None:
    data = files[2].read_bytes()
    assert file_content_hash(files[2]) == hashlib.blake2b(data, digest_size=16).hexdigest()
    assert file_content_hash(files[2], chunk_size=7) == file_content_hash(files[2])  # chunking is invisible
    copy = Path(shutil.copy(files[2], tmp_path / "copy.bin"))
    assert file_content_hash(copy) == file_content_hash(files[2]) != file_content_hash(files[1])


def test_a_node_finds_what_another_node_hashed_without_reading(files, tmp_path: Path) -> None:
    shared = tmp_path / "cache" / SHARED_HASHES_DIR
    node_a = ContentHashes(shared, index_path=tmp_path / "a" / "hashes.sqlite")
    node_b = ContentHashes(shared, index_path=tmp_path / "b" / "hashes.sqlite")
    digests = [node_a.get(f) for f in files]
    assert digests == [file_content_hash(f) for f in files] and node_a.files_read == 3
    assert [node_a.get(f) for f in files] == digests and node_a.files_read == 3  # memoised
    node_a.flush()
    assert (tmp_path / "a" / "hashes.sqlite").is_file() and len(list(shared.glob("*.jsonl"))) == 1

    assert node_b.refresh() == 3
    assert [node_b.get(f) for f in files] == digests and node_b.files_read == 0

    # A fresh process on node A trusts its machine index: no read, even with the shared map gone.
    shutil.rmtree(shared)
    again = ContentHashes(shared, index_path=tmp_path / "a" / "hashes.sqlite")
    assert again.get(files[0]) == digests[0] and again.files_read == 0

    # A symlink is its target; an edit (new size) is a new key.
    link = tmp_path / "link.bin"
    link.symlink_to(files[1])
    assert node_b.get(link) == digests[1] and node_b.files_read == 0
    files[1].write_bytes(b"edited")
    assert node_b.get(files[1]) == file_content_hash(files[1]) != digests[1] and node_b.files_read == 1


def test_shared_map_skips_damaged_lines_and_waits_for_whole_ones(tmp_path: Path) -> None:
    folder = tmp_path / SHARED_HASHES_DIR
    folder.mkdir()
    other = folder / "elsewhere-1.jsonl"
    other.write_text(
        '["/x.wav",1,2,"aa"]\nnot json\n["/y.wav",3,4,"bb"]\n["/z.wav",5,6,'
    )  # last line half written
    reader = SharedHashes(folder)
    assert reader.read_new() == {("/x.wav", 1, 2): "aa", ("/y.wav", 3, 4): "bb"}
    with open(other, "a") as fh:
        fh.write('"cc"]\n')
    assert reader.read_new() == {("/z.wav", 5, 6): "cc"}  # only what is new since the last look
    assert reader.read_new(force=False) == {}  # looked a moment ago

    SharedHashes(folder).append([("/w.wav", 7, 8, "dd")])
    own = [p for p in folder.glob("*.jsonl") if p != other]
    assert [p.name for p in own] == [f"{socket.gethostname()}-{os.getpid()}.jsonl"]
    assert reader.read_new() == {("/w.wav", 7, 8): "dd"}


def test_missing_file_and_unwritable_share_are_reported(files, tmp_path: Path, caplog) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the shared folder should be")
    hashes = ContentHashes(blocker / SHARED_HASHES_DIR, index_path=tmp_path / "i.sqlite")
    with pytest.raises(FileNotFoundError, match="nothing.wav"):
        hashes.get(tmp_path / "nothing.wav")
    assert hashes.get(files[0]) == file_content_hash(files[0])
    with caplog.at_level("WARNING", logger="workbench.training.content_hashes"):
        hashes.flush()  # the map is a shortcut: a share that cannot be written is a warning, not an error
    assert "shared content-hash map not written" in caplog.text
