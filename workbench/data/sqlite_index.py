"""Small SQLite indexes that every process of a machine reads and writes at once.

The audio probe cache and the content-hash index of the codes cache are SQLite files on this
machine's own disk, shared by all ranks of a launch (8 per node) and their data-loader workers.
:func:`connect_index` opens one the same way for both: write-ahead logging (readers never block
the writer, writers queue instead of failing), a busy timeout (a writer waits for the lock rather
than raising ``database is locked``), and its tables created once, under a file lock beside the
database, so that eight processes opening a new file together do not race to switch its journal
mode or create its tables.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Sequence
from pathlib import Path

BUSY_TIMEOUT_S = 60.0  # how long a writer waits for another process's write to finish


def connect_index(
    db_path: str | os.PathLike[str], schema: Sequence[str], timeout: float = BUSY_TIMEOUT_S
) -> sqlite3.Connection:
    """Open the SQLite file ``db_path`` for concurrent use by several processes.

    Args:
        db_path: The database file (its folder is created).
        schema: ``CREATE TABLE IF NOT EXISTS ...`` statements, run once (first opener, under
            the lock ``<db_path>.lock``).
        timeout: Seconds a statement waits for a lock held by another process.

    Returns:
        A connection in WAL mode with the busy timeout set (``check_same_thread=False``: guard it
        with a lock when threads share it; open one per process, never across ``fork``).

    Raises:
        sqlite3.Error: The file cannot be opened or set up (callers disable their index).
        OSError: The folder cannot be created.
    """
    from filelock import FileLock, Timeout

    path = Path(db_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(path), timeout=timeout, check_same_thread=False)
    try:
        conn.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
        if not _is_set_up(conn, schema):
            try:
                with FileLock(f"{path}.lock", timeout=timeout):
                    if not _is_set_up(conn, schema):
                        conn.execute("PRAGMA journal_mode=WAL")  # persistent: recorded in the file
                        for statement in schema:
                            conn.execute(statement)
                        conn.commit()
            except Timeout as exc:
                raise sqlite3.OperationalError(f"timed out waiting for {exc.lock_file}") from exc
        # With WAL, NORMAL is safe against process crashes (a power cut may lose the last rows of an index).
        conn.execute("PRAGMA synchronous=NORMAL")
    except BaseException:
        conn.close()
        raise
    return conn


def _is_set_up(conn: sqlite3.Connection, schema: Sequence[str]) -> bool:
    if str(conn.execute("PRAGMA journal_mode").fetchone()[0]).lower() != "wal":
        return False
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    return all(_table_name(statement) in tables for statement in schema)


def _table_name(statement: str) -> str:
    """``probe`` of ``CREATE TABLE IF NOT EXISTS probe (...)``."""
    head = statement.split("(", 1)[0].split()
    return head[-1].strip('"')
