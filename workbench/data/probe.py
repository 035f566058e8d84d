"""Audio probes for validation: what is in a file, read once and cached.

Probing reads a file once and records what the validator needs: header facts (sample rate,
channels, duration) and content facts (peak, clipping, leading/trailing silence, all-zero or
non-finite samples, a content hash for duplicate detection). Results are cached by
``(path, size, mtime)`` in memory and in a small SQLite file, so re-validating a large dataset
reads no audio at all. Probes of distinct files run in a thread pool (libsndfile releases the GIL).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
import threading
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import soundfile as sf

from workbench.audio import CLIP_LEVEL, default_cache_dir, edge_silence
from workbench.data.sqlite_index import connect_index

log = logging.getLogger(__name__)

PROBE_VERSION = 3  # bump when AudioInfo's meaning changes so stale cache rows are ignored
_PROBE_TABLE = (
    "CREATE TABLE IF NOT EXISTS probe (path TEXT, size INTEGER, mtime INTEGER, "
    "version INTEGER, info TEXT, PRIMARY KEY (path, size, mtime, version))"
)


@dataclass(frozen=True)
class AudioInfo:
    """What one probe learned about an audio file. ``error`` is set when it could not be read."""

    path: str
    exists: bool
    error: str | None = None
    sample_rate: int | None = None
    channels: int | None = None
    frames: int | None = None
    duration: float | None = None
    format: str | None = None
    peak: float | None = None
    clipped_fraction: float | None = None
    nonfinite: bool = False
    all_zero: bool = False
    leading_silence: float | None = None
    trailing_silence: float | None = None
    content_hash: str | None = None

    @property
    def readable(self) -> bool:
        return self.exists and self.error is None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def probe_uncached(path: str) -> AudioInfo:
    """Read ``path`` fully and describe it. Never raises for bad audio: sets ``error``."""
    if not os.path.isfile(path):
        return AudioInfo(path=path, exists=False, error="file not found")
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
        content_hash = hashlib.blake2b(raw, digest_size=16).hexdigest()
        # The file's own samples at its own rate: resampling would move peaks and hide clipped samples.
        with sf.SoundFile(path) as fh:
            sr, file_format = fh.samplerate, fh.format
            data = fh.read(dtype="float32", always_2d=True)
    except Exception as exc:  # libsndfile raises several types for corrupt files
        return AudioInfo(path=path, exists=True, error=f"{type(exc).__name__}: {exc}".strip())
    frames, channels = data.shape
    finite = np.isfinite(data)
    nonfinite = not bool(finite.all())
    safe = np.where(finite, data, 0.0)
    peak = float(np.abs(safe).max()) if frames else 0.0
    clipped = float(np.mean(np.abs(safe) >= CLIP_LEVEL)) if frames else 0.0
    lead, trail = edge_silence(safe, sr)
    return AudioInfo(
        path=path,
        exists=True,
        sample_rate=int(sr),
        channels=int(channels),
        frames=int(frames),
        duration=frames / sr if sr else 0.0,
        format=file_format,
        peak=peak,
        clipped_fraction=clipped,
        nonfinite=nonfinite,
        all_zero=bool(frames == 0 or peak == 0.0),
        leading_silence=lead,
        trailing_silence=trail,
        content_hash=content_hash,
    )


class ProbeCache:
    """Probe results keyed by ``(path, size, mtime_ns)``: in memory, optionally persisted to SQLite."""

    def __init__(self, db_path: str | os.PathLike | None = "default"):
        self._memory: dict[tuple[str, int, int], AudioInfo] = {}
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self.reads = 0  # files this object probed (read), not found in a cache
        if db_path == "default":
            db_path = default_cache_dir() / "audio_probe.sqlite"
        self._db_path = db_path
        if db_path is not None:
            try:
                self._db = connect_index(db_path, [_PROBE_TABLE])
            except (sqlite3.Error, OSError) as exc:  # a read-only home must not stop validation
                self._disable(exc)

    @property
    def persistent(self) -> bool:
        """Whether results reach the SQLite file (false without one, or once a SQLite error disabled it)."""
        return self._db is not None

    def _disable(self, exc: Exception) -> None:
        log.warning("audio probe cache disabled (%s): %s", self._db_path, exc)
        self._db = None

    @staticmethod
    def _key(path: str) -> tuple[str, int, int] | None:
        try:
            st = os.stat(path)
        except OSError:
            return None
        return (path, st.st_size, st.st_mtime_ns)

    def get(self, key: tuple[str, int, int]) -> AudioInfo | None:
        hit = self._memory.get(key)
        if hit is not None or self._db is None:
            return hit
        with self._lock:
            try:
                row = self._db.execute(
                    "SELECT info FROM probe WHERE path=? AND size=? AND mtime=? AND version=?",
                    (*key, PROBE_VERSION),
                ).fetchone()
            except sqlite3.Error as exc:
                self._disable(exc)
                return None
        if row is None:
            return None
        info = AudioInfo(**json.loads(row[0]))
        self._memory[key] = info
        return info

    def put_many(self, items: Iterable[tuple[tuple[str, int, int], AudioInfo]], persist: bool = True) -> None:
        """Remember probe results (in SQLite too, unless ``persist`` is false)."""
        rows = []
        for key, info in items:
            self._memory[key] = info
            rows.append((*key, PROBE_VERSION, json.dumps(info.to_dict())))
        if self._db is not None and rows and persist:
            with self._lock:
                try:
                    self._db.executemany("INSERT OR REPLACE INTO probe VALUES (?, ?, ?, ?, ?)", rows)
                    self._db.commit()
                except sqlite3.Error as exc:
                    self._disable(exc)

    def probe_many(
        self, paths: Iterable[str], workers: int | None = None, progress: bool = False
    ) -> dict[str, AudioInfo]:
        """Probe distinct ``paths`` (cached ones are not read again). Returns path -> info."""
        results: dict[str, AudioInfo] = {}
        todo: list[tuple[tuple[str, int, int], str]] = []
        for path in dict.fromkeys(paths):
            key = self._key(path)
            if key is None:
                results[path] = AudioInfo(path=path, exists=False, error="file not found")
                continue
            hit = self.get(key)
            if hit is not None:
                results[path] = hit
            else:
                todo.append((key, path))
        if todo:
            self.reads += len(todo)
            workers = workers or min(8, (os.cpu_count() or 1) * 2)
            bar = None
            if progress and not os.environ.get("TQDM_DISABLE"):  # a notebook bar ignores TQDM_DISABLE
                from tqdm.auto import tqdm

                bar = tqdm(total=len(todo), desc="probing audio", unit="file")
            fresh = []
            with ThreadPoolExecutor(max_workers=workers) as pool:
                for (key, path), info in zip(
                    todo, pool.map(probe_uncached, (p for _, p in todo)), strict=False
                ):
                    results[path] = info
                    if info.readable:  # unreadable files are re-probed next time (they may be fixed)
                        fresh.append((key, info))
                    if bar is not None:
                        bar.update(1)
            if bar is not None:
                bar.close()
            self.put_many(fresh)
        return results


_default_cache: ProbeCache | None = None


def probe(path: str) -> AudioInfo:
    """Probe one file through the process-wide cache."""
    return probe_many([path])[path]


def probe_many(paths: Iterable[str], progress: bool = False) -> dict[str, AudioInfo]:
    """Probe files through the process-wide cache (see :class:`ProbeCache`)."""
    return default_probe_cache().probe_many(paths, progress=progress)


def default_probe_cache() -> ProbeCache:
    """The process-wide :class:`ProbeCache` (``<cache dir>/audio_probe.sqlite``), created on first use."""
    global _default_cache
    if _default_cache is None:
        _default_cache = ProbeCache()
    return _default_cache


def probe_share(
    paths: Iterable[str], rank: int = 0, world_size: int = 1, progress: bool = False
) -> list[tuple[tuple[str, int, int], AudioInfo]]:
    """Probe one rank's share of ``paths``, so that ranks probe a dataset together, each file once.

    The sorted distinct paths are split round-robin: rank ``r`` probes ``distinct[r::world_size]``
    through the process-wide cache. Every rank passes the same paths, then gives its results to
    the others (:func:`remember_probes`), and validation on any rank reads no audio.

    Returns:
        ``((path, size, mtime_ns), info)`` of each readable file of the share (missing and
        unreadable files are left to validation, which reports them).

    Raises:
        ValueError: ``rank`` is not in ``[0, world_size)``.
    """
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"rank must be in [0, world_size): got rank={rank}, world_size={world_size}")
    keys = {p: ProbeCache._key(p) for p in sorted(set(paths))[rank::world_size]}
    infos = default_probe_cache().probe_many(keys, progress=progress)
    return [(key, infos[p]) for p, key in keys.items() if key is not None and infos[p].readable]


def remember_probes(items: Iterable[tuple[tuple[str, int, int], AudioInfo]], persist: bool = False) -> int:
    """Put probe results made by other processes (:func:`probe_share`) into the process-wide cache.

    Args:
        items: ``((path, size, mtime_ns), info)`` pairs; a file changed since has another key, so
            its stale result is never used.
        persist: Also write them to this machine's SQLite probe cache (one process per machine).

    Returns:
        How many results were added.
    """
    items = list(items)
    default_probe_cache().put_many(items, persist=persist)
    return len(items)
