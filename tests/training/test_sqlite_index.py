"""Tests for workbench.data.sqlite_index through its two users, the codes cache's content-hash index and
the audio probe cache: 8 processes (the ranks of a node) creating and writing one file at once."""

from __future__ import annotations

import multiprocessing
import sqlite3
import traceback
from pathlib import Path

from workbench.data.probe import AudioInfo, ProbeCache
from workbench.data.sqlite_index import connect_index
from workbench.training.content_hashes import HashIndex

WRITERS = 8
ROWS = 1_500  # per writer and index


def write_rows(rank: int, hashes_db: str, probes_db: str, start, results) -> None:
    """One rank: open both (new) indexes at the same moment as the others, then write ROWS rows each."""
    try:
        start.wait()
        index = HashIndex(Path(hashes_db))
        probes = ProbeCache(probes_db)
        batch = []
        for i in range(ROWS):
            index.put((f"/data/r{rank}/f{i}.wav", i, rank), f"{rank:02d}{i:030d}")  # flushes every 256
            batch.append(((f"/data/r{rank}/f{i}.wav", i, rank), AudioInfo(path=f"r{rank}/f{i}", exists=True)))
            if len(batch) == 100:
                probes.put_many(batch)
                batch = []
        index.flush()
        probes.put_many(batch)
        results.put((rank, index.enabled, probes.persistent, None))
    except BaseException:
        results.put((rank, False, False, traceback.format_exc()))


def test_eight_processes_create_and_write_the_indexes_at_once(tmp_path: Path) -> None:
    context = multiprocessing.get_context("fork")  # the children only use sqlite3 and the standard library
    start, results = context.Barrier(WRITERS), context.Queue()
    hashes_db, probes_db = (
        tmp_path / "node" / "content_hashes.sqlite",
        tmp_path / "node" / "audio_probe.sqlite",
    )
    workers = [
        context.Process(target=write_rows, args=(rank, str(hashes_db), str(probes_db), start, results))
        for rank in range(WRITERS)
    ]
    for worker in workers:
        worker.start()
    outcomes = sorted(results.get(timeout=240) for _ in workers)
    for worker in workers:
        worker.join(timeout=60)
    # No process failed, and none disabled its index (what a "database is locked" error would do).
    assert [o[3] for o in outcomes] == [None] * WRITERS, [o[3] for o in outcomes if o[3]]
    assert [(o[1], o[2]) for o in outcomes] == [(True, True)] * WRITERS
    assert [w.exitcode for w in workers] == [0] * WRITERS

    with sqlite3.connect(hashes_db) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("SELECT COUNT(*) FROM content_hash").fetchone()[0] == WRITERS * ROWS
        assert db.execute("SELECT hash FROM content_hash WHERE path='/data/r7/f1499.wav'").fetchone() == (
            f"07{1499:030d}",
        )
    with sqlite3.connect(probes_db) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("SELECT COUNT(*) FROM probe").fetchone()[0] == WRITERS * ROWS
    # A reader opens the same file again: tables exist, nothing is created twice.
    conn = connect_index(hashes_db, ["CREATE TABLE IF NOT EXISTS content_hash (path TEXT)"])
    assert conn.execute("SELECT COUNT(*) FROM content_hash").fetchone()[0] == WRITERS * ROWS
    conn.close()


def test_an_unusable_index_is_disabled_not_fatal(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    index = HashIndex(blocker / "content_hashes.sqlite")  # its folder cannot be created
    assert index.get(("/a.wav", 1, 2)) is None and not index.enabled
    probes = ProbeCache(blocker / "audio_probe.sqlite")
    assert not probes.persistent
    probes.put_many([(("/a.wav", 1, 2), AudioInfo(path="/a.wav", exists=True))])  # memory only
    assert probes.get(("/a.wav", 1, 2)) is not None
