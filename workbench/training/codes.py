"""Content-addressed cache of audio codes: every distinct audio file is encoded once.

Training reads audio codes, not waveforms. Each distinct audio file, loaded as the model hears it
(:func:`workbench.data.audio.load_audio`: float32 mono at the codec's sample rate), is encoded once by
the audio tokenizer (``processor.audio_tokenizer``, a ``HiggsAudioV2TokenizerModel``) and stored as
a ``.npy`` array of shape ``(num_codebooks, frames)``. The key is the file's *content* hash, under
a folder named by the audio tokenizer's fingerprint (config + weights digest + this module's
format version), so:

- later epochs, re-runs and other experiments that share ``codes_cache_dir`` never re-encode;
- a renamed or copied file is a hit, an edited file is a miss;
- a different codec (other weights, other config) never reads stale codes.

Layout::

    <cache_dir>/<fingerprint[:16]>/tokenizer.json        what the fingerprint stands for
    <cache_dir>/<fingerprint[:16]>/<hh>/<content hash>.npy
    <WORKBENCH_CACHE_DIR>/content_hashes.sqlite           (path, size, mtime) -> content hash, per machine

Under ``accelerate`` every rank calls :meth:`CodesCache.encode_missing` with the same list and
its ``rank``/``world_size``: each encodes its share, then the caller waits at a barrier
(``accelerator.wait_for_everyone()``). Files are written to a temporary name and moved into place
with ``os.replace``, so a concurrent reader never sees half a file and two ranks writing the same
key are harmless.

Examples:
    >>> cache = CodesCache("~/.cache/workbench/codes", processor.audio_tokenizer)  # doctest: +SKIP
    >>> cache.encode_missing(paths, rank=acc.process_index, world_size=acc.num_processes)  # doctest: +SKIP
    >>> acc.wait_for_everyone()  # doctest: +SKIP
    >>> cache.get(paths[0]).shape  # (num_codebooks, frames)  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
import tempfile
import weakref
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from workbench.data.audio import load_audio
from workbench.models.model import state_dict_digest

log = logging.getLogger(__name__)

CODES_FORMAT_VERSION = 1  # bump when the waveform loading or the stored layout changes
_FINGERPRINT_PREFIX_LEN = 16
# Config entries that name where a model came from rather than what it computes.
_VOLATILE_CONFIG_KEYS = ("_name_or_path", "name_or_path", "transformers_version", "_commit_hash")
_fingerprints: weakref.WeakKeyDictionary[torch.nn.Module, str] = weakref.WeakKeyDictionary()


class CodesMissingError(KeyError):
    """Codes for an audio file are not in the cache and the cache was told not to encode on a miss."""

    def __str__(self) -> str:  # KeyError would print the message with quotes
        return str(self.args[0]) if self.args else ""


@dataclass
class CacheStats:
    """Counters of one :class:`CodesCache` in this process.

    Attributes:
        hits: Lookups answered from disk.
        misses: Lookups (or ``encode_missing`` entries) that needed the encoder.
        encoded: Files this process encoded and stored.
    """

    hits: int = 0
    misses: int = 0
    encoded: int = 0

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


def _config_digest(audio_tokenizer: torch.nn.Module) -> str:
    config = getattr(audio_tokenizer, "config", None)
    data = config.to_dict() if config is not None else {}
    for key in _VOLATILE_CONFIG_KEYS:
        data.pop(key, None)
    text = json.dumps(data, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def audio_tokenizer_fingerprint(audio_tokenizer: torch.nn.Module, refresh: bool = False) -> str:
    """Fingerprint of an audio tokenizer: what its codes depend on.

    SHA-256 over the codec config (minus where it was loaded from), a digest of its weights
    (names, dtypes, shapes and bytes; see :func:`workbench.models.model.state_dict_digest`), the sample
    rate used to load audio and :data:`CODES_FORMAT_VERSION`. Hashing the weights reads every
    parameter once, so the result is memoised per module object.

    Args:
        audio_tokenizer: The codec, e.g. ``processor.audio_tokenizer``.
        refresh: Recompute even if memoised (after changing the module's weights in place).

    Returns:
        A 64-character hex digest.
    """
    if not refresh and audio_tokenizer in _fingerprints:
        return _fingerprints[audio_tokenizer]
    digest = hashlib.sha256()
    digest.update(f"workbench-codes-v{CODES_FORMAT_VERSION}|sr={_sample_rate(audio_tokenizer)}|".encode())
    digest.update(_config_digest(audio_tokenizer).encode())
    digest.update(state_dict_digest(audio_tokenizer).encode())
    fingerprint = digest.hexdigest()
    _fingerprints[audio_tokenizer] = fingerprint
    return fingerprint


def _sample_rate(audio_tokenizer: torch.nn.Module) -> int:
    config = getattr(audio_tokenizer, "config", None)
    return int(getattr(config, "sample_rate", 24_000))


def file_content_hash(path: str | os.PathLike[str], chunk_size: int = 1 << 20) -> str:
    """BLAKE2b-128 hex digest of a file's bytes (read in chunks)."""
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as fh:
        while chunk := fh.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


class _HashIndex:
    """Persistent ``(real path, size, mtime_ns) -> content hash`` map in a small SQLite file.

    Spares re-runs (and every data-loader worker) from reading each audio file just to hash it.
    Connections are opened per process (never shared across ``fork``); any SQLite problem (a
    read-only or network file system) disables the index with a warning, never the cache.
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
                self.db_path.parent.mkdir(parents=True, exist_ok=True)
                conn = sqlite3.connect(str(self.db_path), timeout=60, check_same_thread=False)
                conn.execute(
                    "CREATE TABLE IF NOT EXISTS content_hash (path TEXT, size INTEGER, mtime INTEGER, "
                    "hash TEXT, PRIMARY KEY (path, size, mtime))"
                )
                conn.commit()
            except sqlite3.Error as exc:
                return self._disable(exc)
            self._conn, self._pid = conn, os.getpid()
        return self._conn

    def _disable(self, exc: Exception) -> None:
        log.warning("content-hash index disabled (%s): %s", self.db_path, exc)
        self.enabled = False
        self._conn = None

    def get(self, key: tuple[str, int, int]) -> str | None:
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

    def put(self, key: tuple[str, int, int], digest: str) -> None:
        self._pending.append((*key, digest))
        if len(self._pending) >= 256:
            self.flush()

    def flush(self) -> None:
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


def _chmod_like_new_file(path: str) -> None:
    """Give a ``mkstemp`` file (always 0600) the mode a plainly created file gets (shared caches)."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


def _atomic_save_npy(path: Path, array: np.ndarray) -> None:
    """Write ``array`` to ``path`` via a temporary sibling and ``os.replace`` (never half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            np.save(fh, array, allow_pickle=False)
        _chmod_like_new_file(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


class CodesCache:
    """Audio codes of files, computed once and kept on disk by content hash and codec fingerprint.

    Args:
        cache_dir: Root folder (shared by runs and ranks; created on demand).
        audio_tokenizer: The ``HiggsAudioV2TokenizerModel`` that produces the codes (its device and
            dtype are used for encoding).
        encode_on_miss: When False, :meth:`get` raises :class:`CodesMissingError` instead of
            encoding (use it in data-loader workers after :meth:`encode_missing` ran).
        hash_index: The SQLite file of the ``(path, size, mtime) -> content hash`` index. Default:
            ``<WORKBENCH_CACHE_DIR>/content_hashes.sqlite``, on this machine's own disk even when
            ``cache_dir`` is a network file system shared by several nodes (SQLite's locking
            cannot be trusted there); the codes themselves are safe to share.

    Attributes:
        encode_calls: How many times this object ran the encoder (tests and benchmarks read it).
        stats: Hit/miss/encoded counters (:class:`CacheStats`).
        fingerprint: The codec fingerprint (:func:`audio_tokenizer_fingerprint`).
        directory: ``cache_dir/<fingerprint[:16]>``, where this codec's codes live.
    """

    def __init__(
        self,
        cache_dir: str | os.PathLike[str],
        audio_tokenizer: torch.nn.Module,
        encode_on_miss: bool = True,
        hash_index: str | os.PathLike[str] | None = None,
    ) -> None:
        from workbench.data.audio import default_cache_dir

        self.cache_dir = Path(cache_dir).expanduser()
        self.audio_tokenizer = audio_tokenizer
        self.encode_on_miss = encode_on_miss
        self.sample_rate = _sample_rate(audio_tokenizer)
        self.fingerprint = audio_tokenizer_fingerprint(audio_tokenizer)
        self.directory = self.cache_dir / self.fingerprint[:_FINGERPRINT_PREFIX_LEN]
        self.encode_calls = 0
        self.stats = CacheStats()
        self._content_hashes: dict[tuple[str, int, int], str] = {}
        self._index = _HashIndex(
            Path(hash_index) if hash_index else default_cache_dir() / "content_hashes.sqlite"
        )
        self._write_manifest()

    # ------------------------------------------------------------------ keys and paths
    def _write_manifest(self) -> None:
        manifest = self.directory / "tokenizer.json"
        if manifest.is_file():
            return
        config = getattr(self.audio_tokenizer, "config", None)
        data: dict[str, Any] = {
            "fingerprint": self.fingerprint,
            "format": CODES_FORMAT_VERSION,
            "sample_rate": self.sample_rate,
            "name_or_path": str(getattr(self.audio_tokenizer, "name_or_path", "")),
            "num_quantizers": getattr(config, "num_quantizers", None),
            "codebook_size": getattr(config, "codebook_size", None),
            "frame_rate": getattr(config, "frame_rate", None),
        }
        self.directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tokenizer.", suffix=".tmp", dir=self.directory)
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh, indent=2)
        _chmod_like_new_file(tmp)
        os.replace(tmp, manifest)

    def content_hash(self, path: str | os.PathLike[str]) -> str:
        """Content hash of ``path`` (:func:`file_content_hash`).

        Memoised by (real path, size, mtime) in memory and in ``content_hashes.sqlite`` under
        ``cache_dir``, so an unchanged file is read once, not once per run or data-loader worker.
        New entries reach the SQLite file in batches; :meth:`flush` writes the rest.

        Raises:
            FileNotFoundError: ``path`` does not exist.
        """
        real = os.path.realpath(path)
        try:
            st = os.stat(real)
        except FileNotFoundError:
            raise FileNotFoundError(f"audio file not found: {path}") from None
        memo_key = (real, st.st_size, st.st_mtime_ns)
        digest = self._content_hashes.get(memo_key)
        if digest is None:
            digest = self._index.get(memo_key)
            if digest is None:
                digest = file_content_hash(real)
                self._index.put(memo_key, digest)
            self._content_hashes[memo_key] = digest
        return digest

    def flush(self) -> None:
        """Write pending content hashes to the SQLite index."""
        self._index.flush()

    def entry_path(self, path: str | os.PathLike[str]) -> Path:
        """Where the codes of audio file ``path`` are (or would be) stored."""
        digest = self.content_hash(path)
        return self.directory / digest[:2] / f"{digest}.npy"

    def contains(self, path: str | os.PathLike[str]) -> bool:
        """Whether codes for ``path`` are already stored."""
        return self.entry_path(path).is_file()

    # ------------------------------------------------------------------ encoding
    @torch.inference_mode()
    def encode_waveform(self, waveform: np.ndarray) -> torch.Tensor:
        """Encode one mono waveform at the codec's sample rate, as the processor does.

        ``HiggsAudioV2Processor`` encodes each audio separately and unpadded (its feature
        extractor only adds the batch and channel axes), so this feeds ``(1, 1, samples)``.

        Args:
            waveform: float32 array of shape ``(samples,)``.

        Returns:
            LongTensor ``(num_codebooks, frames)`` on the CPU.
        """
        tokenizer = self.audio_tokenizer
        if tokenizer is None:
            raise RuntimeError(
                "this CodesCache copy has no audio tokenizer (it was pickled); it can only read"
            )
        device = getattr(tokenizer, "device", torch.device("cpu"))
        dtype = getattr(tokenizer, "dtype", torch.float32)
        values = torch.from_numpy(np.ascontiguousarray(waveform, dtype=np.float32))[None, None]
        self.encode_calls += 1
        codes = tokenizer.encode(values.to(device=device, dtype=dtype)).audio_codes
        return codes[0].to("cpu", torch.long)

    def _encode_and_store(self, path: str | os.PathLike[str], entry: Path) -> torch.Tensor:
        codes = self.encode_waveform(load_audio(path, self.sample_rate))
        max_code = int(codes.max()) if codes.numel() else 0
        dtype = np.int16 if max_code <= np.iinfo(np.int16).max else np.int32
        _atomic_save_npy(entry, codes.numpy().astype(dtype))
        self.stats.encoded += 1
        return codes

    def get(self, path: str | os.PathLike[str]) -> torch.LongTensor:
        """Codes of the audio file ``path``, encoding and storing them on a miss.

        Args:
            path: An audio file (any format and rate :func:`workbench.data.audio.load_audio` reads).

        Returns:
            LongTensor ``(num_codebooks, frames)``.

        Raises:
            FileNotFoundError: ``path`` does not exist.
            CodesMissingError: Not cached and ``encode_on_miss`` is False.
        """
        entry = self.entry_path(path)
        try:
            array = np.load(entry, allow_pickle=False)
        except FileNotFoundError:
            pass
        else:
            self.stats.hits += 1
            return torch.from_numpy(array.astype(np.int64))
        self.stats.misses += 1
        if not self.encode_on_miss:
            raise CodesMissingError(
                f"no cached audio codes for {path} in {self.directory}; "
                "run CodesCache.encode_missing over the dataset first (the training notebook does this)"
            )
        return self._encode_and_store(path, entry)

    def num_frames(self, path: str | os.PathLike[str]) -> int:
        """Number of code frames of ``path`` (reads only the ``.npy`` header when cached)."""
        entry = self.entry_path(path)
        if entry.is_file():
            return int(np.load(entry, mmap_mode="r", allow_pickle=False).shape[1])
        return int(self.get(path).shape[1])

    def encode_missing(
        self,
        paths: Iterable[str | os.PathLike[str]],
        progress: bool = True,
        rank: int = 0,
        world_size: int = 1,
    ) -> int:
        """Encode the files of this rank's share that are not cached yet.

        Distinct paths (first occurrence order) are split round-robin: rank ``r`` handles
        ``distinct[r::world_size]``. Every rank must pass the same ``paths``; afterwards the caller
        waits for all ranks (``accelerator.wait_for_everyone()``) before reading codes.

        Args:
            paths: Audio files (duplicates are fine).
            progress: Show a tqdm progress bar.
            rank: This process's index in ``[0, world_size)``.
            world_size: Number of processes sharing the work.

        Returns:
            How many files this rank encoded.

        Raises:
            ValueError: ``rank`` is not in ``[0, world_size)``.
        """
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, world_size): got rank={rank}, world_size={world_size}")
        distinct = list(dict.fromkeys(str(p) for p in paths))
        share = distinct[rank::world_size]
        todo: list[tuple[str, Path]] = []
        for path in self._progress(share, progress and len(share) > 1000, "hashing audio files"):
            entry = self.entry_path(path)
            if entry.is_file():
                self.stats.hits += 1
            else:
                self.stats.misses += 1
                todo.append((path, entry))
        log.info(
            "audio codes (rank %d/%d): %d distinct files, %d in this share, %d to encode, cache %s",
            rank,
            world_size,
            len(distinct),
            len(share),
            len(todo),
            self.directory,
        )
        bar = None
        if progress and todo:
            from tqdm.auto import tqdm

            desc = "encoding audio codes" + (f" (rank {rank}/{world_size})" if world_size > 1 else "")
            bar = tqdm(total=len(todo), desc=desc, unit="file")
        encoded = 0
        seen: set[Path] = set()
        for path, entry in todo:
            if entry not in seen and not entry.is_file():  # same content twice, or another rank wrote it
                self._encode_and_store(path, entry)
                encoded += 1
            seen.add(entry)
            if bar is not None:
                bar.update(1)
        if bar is not None:
            bar.close()
        self.flush()
        return encoded

    @staticmethod
    def _progress(items: list[str], show: bool, desc: str) -> Iterable[str]:
        if not show:
            return items
        from tqdm.auto import tqdm

        return tqdm(items, desc=desc, unit="file")

    def __getstate__(self) -> dict[str, Any]:
        # Codec modules do not pickle (weight-norm parametrizations); a copy sent to a spawned
        # data-loader worker only reads codes, so it drops the codec and never encodes.
        return {**self.__dict__, "audio_tokenizer": None, "encode_on_miss": False}

    def __repr__(self) -> str:
        return f"CodesCache({str(self.directory)!r}, stats={self.stats.to_dict()})"
