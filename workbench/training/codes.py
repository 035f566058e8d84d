"""Content-addressed cache of audio codes: every distinct audio file is encoded once.

Training reads audio codes, not waveforms. Each distinct audio file, loaded as the model hears it
(:func:`workbench.audio.load_audio`: float32 mono at the codec's sample rate, decoded and resampled
as ``transformers.audio_utils.load_audio`` does), is encoded once by the audio tokenizer
(``processor.audio_tokenizer``, a ``HiggsAudioV2TokenizerModel``) and stored as a ``.npy`` array of
shape ``(num_codebooks, frames)``. The key is the file's *content* hash, under a folder named by the
audio tokenizer's fingerprint (config + weights digest + the audio reader and its resampler's
version + this module's format version), so:

- later epochs, re-runs and other experiments that share ``codes_cache_dir`` never re-encode;
- a renamed or copied file is a hit, an edited file is a miss;
- a different codec (other weights, other config) never reads stale codes;
- codes of audio read another way (another resampler, or another version of it) are never reused.

Layout::

    <cache_dir>/<fingerprint[:16]>/tokenizer.json        what the fingerprint stands for
    <cache_dir>/<fingerprint[:16]>/<hh>/<content hash>.npy
    <cache_dir>/content_hashes/<host>-<pid>.jsonl         (path, size, mtime) -> content hash, for every node
    <WORKBENCH_CACHE_DIR>/content_hashes.sqlite           the same, per machine

The two content-hash maps are :mod:`workbench.training.content_hashes`.

Under ``accelerate`` every rank calls :meth:`CodesCache.encode_missing` with the same list and
its ``rank``/``world_size``: each encodes its share, then the caller waits at a barrier
(``accelerator.wait_for_everyone()``). Files are written atomically (:mod:`workbench.files`), so a
concurrent reader never sees half a file and two ranks writing the same key are harmless.

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
import time
import weakref
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from workbench.audio import AUDIO_READER, load_audio
from workbench.files import atomic_write, write_json
from workbench.models.model import state_dict_digest
from workbench.training.content_hashes import SHARED_HASHES_DIR, ContentHashes

log = logging.getLogger(__name__)

CODES_FORMAT_VERSION = 1  # bump when the stored layout changes (the audio reader is keyed by its name)
_FINGERPRINT_PREFIX_LEN = 16
# Config entries that name where a model came from rather than what it computes.
_VOLATILE_CONFIG_KEYS = ("_name_or_path", "name_or_path", "transformers_version", "_commit_hash")
_weight_digests: weakref.WeakKeyDictionary[torch.nn.Module, str] = weakref.WeakKeyDictionary()


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
        hashed: Files this process read to compute their content hash (found in no index).
    """

    hits: int = 0
    misses: int = 0
    encoded: int = 0
    hashed: int = 0

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


def _config_digest(audio_tokenizer: torch.nn.Module) -> str:
    config = getattr(audio_tokenizer, "config", None)
    data = config.to_dict() if config is not None else {}
    for key in _VOLATILE_CONFIG_KEYS:
        data.pop(key, None)
    text = json.dumps(data, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def audio_tokenizer_fingerprint(
    audio_tokenizer: torch.nn.Module, refresh: bool = False, reader: str = AUDIO_READER
) -> str:
    """Fingerprint of an audio tokenizer and the audio reader: what its codes depend on.

    SHA-256 over the codec config (minus where it was loaded from), a digest of its weights
    (names, dtypes, shapes and bytes; see :func:`workbench.models.model.state_dict_digest`), the sample
    rate used to load audio, the audio reader and its resampler's version and
    :data:`CODES_FORMAT_VERSION`. Hashing the weights reads every parameter once, so that digest is
    memoised per module object.

    Args:
        audio_tokenizer: The codec, e.g. ``processor.audio_tokenizer``.
        refresh: Recompute even if memoised (after changing the module's weights in place).
        reader: What decodes and resamples the audio (:data:`workbench.audio.AUDIO_READER`).

    Returns:
        A 64-character hex digest.
    """
    if refresh or audio_tokenizer not in _weight_digests:
        _weight_digests[audio_tokenizer] = state_dict_digest(audio_tokenizer)
    digest = hashlib.sha256()
    digest.update(f"workbench-codes-v{CODES_FORMAT_VERSION}|sr={_sample_rate(audio_tokenizer)}|".encode())
    digest.update(f"reader={reader}|".encode())
    digest.update(_config_digest(audio_tokenizer).encode())
    digest.update(_weight_digests[audio_tokenizer].encode())
    return digest.hexdigest()


def _sample_rate(audio_tokenizer: torch.nn.Module) -> int:
    config = getattr(audio_tokenizer, "config", None)
    return int(getattr(config, "sample_rate", 24_000))


PROGRESS_LOG_SECONDS = 30.0  # how often encode_missing logs its progress


def _duration(path: str) -> float:
    """Seconds of an audio file from its header (0 when unreadable: loading it reports why)."""
    import soundfile as sf

    try:
        return float(sf.info(path).duration)
    except Exception:  # libsndfile raises several types for bad files
        return 0.0


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
        content_hashes: The files' content hashes, the keys of the codes
            (:class:`~workbench.training.content_hashes.ContentHashes`).
    """

    def __init__(
        self,
        cache_dir: str | os.PathLike[str],
        audio_tokenizer: torch.nn.Module,
        encode_on_miss: bool = True,
        hash_index: str | os.PathLike[str] | None = None,
    ) -> None:
        self.cache_dir = Path(cache_dir).expanduser()
        self.audio_tokenizer = audio_tokenizer
        self.encode_on_miss = encode_on_miss
        self.sample_rate = _sample_rate(audio_tokenizer)
        self.fingerprint = audio_tokenizer_fingerprint(audio_tokenizer)
        self.directory = self.cache_dir / self.fingerprint[:_FINGERPRINT_PREFIX_LEN]
        self.encode_calls = 0
        self.stats = CacheStats()
        self.content_hashes = ContentHashes(self.cache_dir / SHARED_HASHES_DIR, hash_index)
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
            "audio_reader": AUDIO_READER,
            "name_or_path": str(getattr(self.audio_tokenizer, "name_or_path", "")),
            "num_quantizers": getattr(config, "num_quantizers", None),
            "codebook_size": getattr(config, "codebook_size", None),
            "frame_rate": getattr(config, "frame_rate", None),
        }
        write_json(manifest, data)

    def content_hash(self, path: str | os.PathLike[str]) -> str:
        """Content hash of ``path`` (:class:`~workbench.training.content_hashes.ContentHashes`).

        Memoised by (real path, size, mtime) in memory, in this machine's ``content_hashes.sqlite``
        and in the map shared by every node under ``cache_dir/content_hashes/``, so an unchanged
        file is read once, not once per run, node or data-loader worker. New entries are written
        in batches; :meth:`flush` writes the rest.

        Raises:
            FileNotFoundError: ``path`` does not exist.
        """
        digest = self.content_hashes.get(path)
        self.stats.hashed = self.content_hashes.files_read
        return digest

    def refresh(self) -> int:
        """Read the content hashes other processes added to the shared map since the last look.

        Call it after the ranks' barrier, so a node looks up files other nodes hashed without
        reading them. Returns how many entries were new.
        """
        return self.content_hashes.refresh()

    def flush(self) -> None:
        """Write pending content hashes to the SQLite index and the shared map."""
        self.content_hashes.flush()

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

    @torch.inference_mode()
    def encode_batch(self, waveforms: list[np.ndarray]) -> list[torch.Tensor]:
        """Encode several waveforms, clips of equal length together in one codec call.

        Only clips of exactly the same number of samples share a call: padding would change the
        codes (the codec's semantic branch, HuBERT, normalises over time and attends over every
        frame; on the tiny codec 20-28 % of a padded clip's codes changed), and training must see
        the codes inference sees. Every clip therefore gets exactly :meth:`encode_waveform`'s codes.

        Args:
            waveforms: float32 arrays of shape ``(samples,)`` at the codec's sample rate.

        Returns:
            One LongTensor ``(num_codebooks, frames)`` per waveform, on the CPU, in order.
        """
        tokenizer = self.audio_tokenizer
        if tokenizer is None or len(waveforms) < 2:
            return [self.encode_waveform(w) for w in waveforms]
        groups: dict[int, list[int]] = {}
        for index, waveform in enumerate(waveforms):
            groups.setdefault(len(waveform), []).append(index)
        device = getattr(tokenizer, "device", torch.device("cpu"))
        dtype = getattr(tokenizer, "dtype", torch.float32)
        out: list[torch.Tensor | None] = [None] * len(waveforms)
        for indices in groups.values():
            if len(indices) == 1:
                out[indices[0]] = self.encode_waveform(waveforms[indices[0]])
                continue
            batch = torch.from_numpy(np.stack([np.asarray(waveforms[i], dtype=np.float32) for i in indices]))
            self.encode_calls += 1
            codes = tokenizer.encode(batch[:, None].to(device=device, dtype=dtype)).audio_codes.to(
                "cpu", torch.long
            )
            for row, index in enumerate(indices):
                out[index] = codes[row].clone()
        return out  # type: ignore[return-value]

    def _store(self, entry: Path, codes: torch.Tensor) -> None:
        max_code = int(codes.max()) if codes.numel() else 0
        dtype = np.int16 if max_code <= np.iinfo(np.int16).max else np.int32
        with atomic_write(entry, "wb") as fh:
            np.save(fh, codes.numpy().astype(dtype), allow_pickle=False)
        self.stats.encoded += 1

    def _encode_and_store(self, path: str | os.PathLike[str], entry: Path) -> torch.Tensor:
        codes = self.encode_waveform(load_audio(path, self.sample_rate))
        self._store(entry, codes)
        return codes

    def get(self, path: str | os.PathLike[str]) -> torch.LongTensor:
        """Codes of the audio file ``path``, encoding and storing them on a miss.

        Args:
            path: An audio file (any format and rate :func:`workbench.audio.load_audio` reads).

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
        batch_size: int = 1,
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
            batch_size: Clips loaded per round. Above 1 the files to encode are sorted by duration
                (read from their headers) and clips of equal length share a codec call
                (:meth:`encode_batch`); the codes are the processor's either way.

        Returns:
            How many files this rank encoded.

        Raises:
            ValueError: ``rank`` is not in ``[0, world_size)``.
        """
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, world_size): got rank={rank}, world_size={world_size}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
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
        if progress and todo and not os.environ.get("TQDM_DISABLE"):  # headless: the log lines below
            from tqdm.auto import tqdm

            desc = "encoding audio codes" + (f" (rank {rank}/{world_size})" if world_size > 1 else "")
            bar = tqdm(total=len(todo), desc=desc, unit="file")
        encoded = 0
        first: dict[Path, str] = {}
        for path, entry in todo:
            first.setdefault(entry, path)  # the same content under two names is encoded once
        distinct_todo = list(first.items())
        if bar is not None:
            bar.update(len(todo) - len(distinct_todo))
        if batch_size > 1:
            distinct_todo.sort(key=lambda item: _duration(item[1]))
        started = last_line = time.monotonic()
        for start in range(0, len(distinct_todo), batch_size):
            if time.monotonic() - last_line >= PROGRESS_LOG_SECONDS and start:
                # A log line now and then: a headless run's terminal shows no progress bar.
                last_line = time.monotonic()
                rate = start / (last_line - started)
                log.info(
                    "audio codes (rank %d/%d): %d/%d files encoded, %.1f files/s, about %.0f min left",
                    rank, world_size, start, len(distinct_todo), rate, (len(distinct_todo) - start) / rate / 60,
                )  # fmt: skip
            chunk = [
                (e, p) for e, p in distinct_todo[start : start + batch_size] if not e.is_file()
            ]  # or another rank wrote it
            if chunk:
                waveforms = [load_audio(p, self.sample_rate) for _, p in chunk]
                for (entry, _), codes in zip(chunk, self.encode_batch(waveforms), strict=True):
                    self._store(entry, codes)
                encoded += len(chunk)
            if bar is not None:
                bar.update(len(distinct_todo[start : start + batch_size]))
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
