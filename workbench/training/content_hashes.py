"""Content hashes of files, each file read once per machine and once for every node sharing a cache.

The codes cache (:mod:`workbench.training.codes`) keys audio codes by the bytes of the audio file,
so a renamed or copied file is found and an edited one is not. Reading every file to hash it on
every run, node and data-loader worker would cost as much as reading the audio, so
:class:`ContentHashes` remembers ``(real path, size, mtime_ns) -> hash`` in three places:

- in memory, for this process;
- in a small SQLite file on this machine's own disk (:class:`HashIndex`; SQLite's locking cannot be
  trusted on a network file system);
- in append-only JSONL files in the shared cache folder (:class:`SharedHashes`), one per process,
  which every node reads, so a node finds what another node hashed without reading the audio.

A file whose size or modification time changed is a new key, so it is hashed again.

Examples:
    >>> hashes = ContentHashes(shared_folder=cache_dir / SHARED_HASHES_DIR)  # doctest: +SKIP
    >>> hashes.get("clip.wav")  # doctest: +SKIP
    '5f1c...'
    >>> hashes.flush()  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import sqlite3
import time
from pathlib import Path
from typing import Any

from workbench.audio import default_cache_dir
from workbench.data.sqlite_index import connect_index

log = logging.getLogger(__name__)

HashKey = tuple[str, int, int]  # (real path, size in bytes, mtime in ns)
HASH_TABLE = (
    "CREATE TABLE IF NOT EXISTS content_hash (path TEXT, size INTEGER, mtime INTEGER, "
    "hash TEXT, PRIMARY KEY (path, size, mtime))"
)
SHARED_HASHES_DIR = "content_hashes"  # under a shared cache folder: the map every node reads
SHARED_REFRESH_S = 1.0  # on a miss, look for other processes' new entries at most this often
FLUSH_EVERY = 256  # new entries kept in memory before they are written


def file_content_hash(path: str | os.PathLike[str], chunk_size: int = 1 << 20) -> str:
    """BLAKE2b-128 hex digest of a file's bytes (read in chunks)."""
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as fh:
        while chunk := fh.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


class HashIndex:
    """Persistent ``(real path, size, mtime_ns) -> content hash`` map in a small SQLite file.

    Spares re-runs (and every data-loader worker) from reading each file just to hash it.
    Connections are opened per process (never shared across ``fork``); any SQLite problem (a
    read-only or network file system) disables the index with a warning, never its user.

    Args:
        db_path: The SQLite file (created with its folder on first use).

    Attributes:
        enabled: False once a SQLite error disabled the index.
    """

    def __init__(self, db_path: Path) -> None:
        self.db_path = db_path
        self.enabled = True
        self._conn: sqlite3.Connection | None = None
        self._pid = -1
        self._pending: list[tuple[str, int, int, str]] = []

    def _connection(self) -> sqlite3.Connection | None:
        if not self.enabled:
            return None
        if self._conn is None or self._pid != os.getpid():
            try:
                conn = connect_index(self.db_path, [HASH_TABLE])
            except (sqlite3.Error, OSError) as exc:
                return self._disable(exc)
            self._conn, self._pid = conn, os.getpid()
        return self._conn

    def _disable(self, exc: Exception) -> None:
        log.warning("content-hash index disabled (%s): %s", self.db_path, exc)
        self.enabled = False
        self._conn = None

    def get(self, key: HashKey) -> str | None:
        """The stored hash of ``key``, or None (also when the index is disabled)."""
        conn = self._connection()
        if conn is None:
            return None
        try:
            row = conn.execute(
                "SELECT hash FROM content_hash WHERE path=? AND size=? AND mtime=?", key
            ).fetchone()
        except sqlite3.Error as exc:
            return self._disable(exc)
        return row[0] if row else None

    def put(self, key: HashKey, digest: str) -> None:
        """Remember ``digest`` for ``key`` (written with the next :meth:`flush`, at the latest)."""
        self._pending.append((*key, digest))
        if len(self._pending) >= FLUSH_EVERY:
            self.flush()

    def flush(self) -> None:
        """Write the pending entries in one transaction."""
        rows, self._pending = self._pending, []
        conn = self._connection()
        if conn is None or not rows:
            return
        try:
            conn.executemany("INSERT OR REPLACE INTO content_hash VALUES (?, ?, ?, ?)", rows)
            conn.commit()
        except sqlite3.Error as exc:
            self._disable(exc)

    def __getstate__(self) -> dict[str, Any]:  # picklable for spawned data-loader workers
        return {**self.__dict__, "_conn": None, "_pid": -1}


def _own_file_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}.jsonl"


class SharedHashes:
    """Append-only ``(real path, size, mtime_ns) -> content hash`` map in a shared folder.

    Lets a node find what another node hashed without reading the file: each process appends the
    hashes it learns to its own ``<folder>/<host>-<pid>.jsonl`` (one ``[path, size, mtime_ns, hash]``
    JSON array a line, whole lines per ``os.write``), and every process reads all such files. Files
    are never rewritten, so no locking is needed on a network file system; a line still being
    written (no newline yet) is read on a later look.

    Args:
        folder: The shared folder (created on the first append).
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._offsets: dict[str, int] = {}  # file name -> bytes already read
        self._own = _own_file_name()
        self._pid = os.getpid()
        self._looked = float("-inf")  # time.monotonic() of the last read

    def read_new(self, force: bool = True) -> dict[HashKey, str]:
        """Entries other processes appended since the last look (every entry on the first).

        Args:
            force: Look now; otherwise only when the last look is older than :data:`SHARED_REFRESH_S`.
        """
        now = time.monotonic()
        if not force and now - self._looked < SHARED_REFRESH_S:
            return {}
        self._looked = now
        found: dict[HashKey, str] = {}
        try:
            names = sorted(n for n in os.listdir(self.folder) if n.endswith(".jsonl"))
        except OSError:  # not created yet, or unreadable: the map is only a shortcut
            return found
        for name in names:
            start = self._offsets.get(name, 0)
            try:
                with open(self.folder / name, "rb") as fh:
                    fh.seek(start)
                    data = fh.read()
            except OSError:
                continue
            end = data.rfind(b"\n") + 1  # whole lines only
            for line in data[:end].splitlines():
                try:
                    path, size, mtime, digest = json.loads(line)
                    found[(str(path), int(size), int(mtime))] = str(digest)
                except (ValueError, TypeError):
                    continue  # a damaged line costs one re-read of that file, nothing more
            self._offsets[name] = start + end
        return found

    def append(self, rows: list[tuple[str, int, int, str]]) -> None:
        """Add ``(path, size, mtime_ns, hash)`` rows (never raises: a read-only share is skipped)."""
        if not rows:
            return
        if self._pid != os.getpid():  # a forked copy writes its own file
            self._own, self._pid = _own_file_name(), os.getpid()
        data = "".join(json.dumps(list(row), separators=(",", ":")) + "\n" for row in rows).encode()
        # Appended, not written atomically: readers take whole lines only, and other processes'
        # lines already in the file must stay (workbench.files replaces whole files).
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.folder / self._own, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
            finally:
                os.close(fd)
        except OSError as exc:
            log.warning("shared content-hash map not written (%s): %s", self.folder, exc)


class ContentHashes:
    """Content hashes of files (:func:`file_content_hash`), memoised in memory, on this machine and in a
    map shared by every node.

    Args:
        shared_folder: The folder of the map every node reads and appends to (usually
            ``<shared cache>/`` :data:`SHARED_HASHES_DIR`).
        index_path: This machine's SQLite index. Default:
            ``<WORKBENCH_CACHE_DIR>/content_hashes.sqlite``, on the machine's own disk.

    Attributes:
        files_read: How many files this object read to hash them (found in no map).
    """

    def __init__(self, shared_folder: Path, index_path: str | os.PathLike[str] | None = None) -> None:
        self.files_read = 0
        self._memo: dict[HashKey, str] = {}
        self._index = HashIndex(
            Path(index_path) if index_path else default_cache_dir() / "content_hashes.sqlite"
        )
        self._shared = SharedHashes(shared_folder)
        self._shared_pending: list[tuple[str, int, int, str]] = []

    def get(self, path: str | os.PathLike[str]) -> str:
        """Content hash of ``path``, read from the file only when no map knows it.

        New entries are written in batches; :meth:`flush` writes the rest.

        Raises:
            FileNotFoundError: ``path`` does not exist.
        """
        real = os.path.realpath(path)
        try:
            st = os.stat(real)
        except FileNotFoundError:
            raise FileNotFoundError(f"audio file not found: {path}") from None
        key = (real, st.st_size, st.st_mtime_ns)
        digest = self._memo.get(key)
        if digest is None:  # other processes (other nodes) may have hashed it since the last look
            self._memo.update(self._shared.read_new(force=False))
            digest = self._memo.get(key)
        if digest is None:
            digest = self._index.get(key)
            if digest is None:
                digest = file_content_hash(real)
                self.files_read += 1
                self._index.put(key, digest)
            self._memo[key] = digest
            self._shared_pending.append((*key, digest))
            if len(self._shared_pending) >= FLUSH_EVERY:
                self._flush_shared()
        return digest

    def refresh(self) -> int:
        """Read the entries other processes added to the shared map since the last look.

        Returns:
            How many entries were new.
        """
        before = len(self._memo)
        self._memo.update(self._shared.read_new())
        return len(self._memo) - before

    def flush(self) -> None:
        """Write pending entries to this machine's index and the shared map."""
        self._index.flush()
        self._flush_shared()

    def _flush_shared(self) -> None:
        rows, self._shared_pending = self._shared_pending, []
        self._shared.append(rows)
