"""Files: the one way the workbench writes a file, and the one way it writes a table.

Every file is written to a hidden temporary sibling (``.NAME.XXXX.tmp`` in the same folder) and moved
into place with ``os.replace``. A reader therefore sees the old file or the new one, never half a
file; two processes writing the same path leave one whole copy; a crash leaves no partial output
(and the temporary file is removed on any error). The new file gets the mode a plainly created file
would have (``0666`` under the umask, where ``mkstemp`` files are 0600), so shared caches stay
readable by the group.

:func:`atomic_write` opens a file object; :func:`atomic_path` hands a temporary path to a library
that writes by name (soundfile, ``np.save``, ``safetensors``); :func:`write_text`, :func:`write_bytes`
and :func:`write_json` are the one-liners; :func:`write_table` writes rows as CSV, JSON or JSON
Lines by the path's suffix, with the same cells in each. :func:`atomic_folder` does for a whole
folder (a model, a converted checkpoint) what :func:`atomic_path` does for a file.
"""

from __future__ import annotations

import csv
import io
import json
import os
import secrets
import shutil
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any


def plain_file_mode(path: str | os.PathLike) -> None:
    """Give ``path`` (e.g. a ``mkstemp`` file, always 0600) the mode a plainly created file gets under the umask.

    The umask can only be read by setting it, so another thread creating a file at that moment gets
    mode 0666; :func:`atomic_path` therefore never calls this and lets the kernel apply the umask.
    """
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


def _create_sibling(path: Path, suffix: str) -> Path:
    """Create an empty, uniquely named hidden sibling of ``path`` with a plain file's mode."""
    for _ in range(100):
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}{suffix}")
        try:
            # mode 0666 as open() uses: the kernel applies the umask (mkstemp would give 0600)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        return tmp
    raise FileExistsError(f"{path.parent}: no free temporary name for {path.name} after 100 tries")


@contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = ".tmp") -> Iterator[Path]:
    """A temporary sibling of ``path`` to write to by name; moved onto ``path`` when the block succeeds.

    The temporary file exists (empty) when the block starts. If the block raises, it is removed and
    ``path`` is left as it was.

    Args:
        path: the final file; its folder is created.
        suffix: the temporary file's suffix (some writers pick the format by it, e.g. ``".wav"``;
            ``np.save`` appends ``.npy`` to a name without it).

    Examples:
        >>> with atomic_path("out/clip.wav", suffix=".wav") as tmp:  # doctest: +SKIP
        ...     soundfile.write(tmp, audio, 24_000)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _create_sibling(path, suffix)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextmanager
def atomic_folder(
    path: str | os.PathLike, keep_existing: Callable[[Path], bool] | None = None
) -> Iterator[Path]:
    """A temporary sibling folder to build in; moved onto ``path`` when the block succeeds.

    An existing folder at ``path`` is replaced, unless ``keep_existing(path)`` (asked just before the
    move, so it sees what another process finished meanwhile) returns true: then the built folder is
    dropped and ``path`` is kept. ``keep_existing`` may also raise to refuse the replacement. If the
    block raises, the temporary folder is removed and ``path`` is left as it was. The folder gets the
    mode a plainly created folder would have (``mkdtemp`` would give 0700).

    Examples:
        >>> with atomic_folder("models/tiny") as tmp:  # doctest: +SKIP
        ...     model.save_pretrained(tmp)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(100):
        tmp = path.with_name(f".{path.name}.tmp-{secrets.token_hex(4)}")
        try:
            tmp.mkdir(mode=0o777)  # the kernel applies the umask
            break
        except FileExistsError:
            continue
    else:
        raise FileExistsError(f"{path.parent}: no free temporary name for {path.name} after 100 tries")
    try:
        yield tmp
        if path.exists():
            if keep_existing is not None and keep_existing(path):
                shutil.rmtree(tmp, ignore_errors=True)
                return
            shutil.rmtree(path)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


@contextmanager
def atomic_write(
    path: str | os.PathLike, mode: str = "w", *, encoding: str | None = "utf-8", newline: str | None = None
) -> Iterator[IO[Any]]:
    """Open ``path`` for writing (``"w"`` or ``"wb"``) so that it appears only whole, when the block ends.

    Args:
        path: the final file; its folder is created.
        mode: ``"w"`` (text) or ``"wb"`` (bytes).
        encoding: the text encoding (text mode only).
        newline: as for :func:`open` (text mode only); ``""`` for the ``csv`` module.

    Raises:
        ValueError: ``mode`` is not a write mode.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_write: mode must be 'w' or 'wb', got {mode!r}")
    with atomic_path(path) as tmp:
        if mode == "wb":
            with open(tmp, "wb") as fh:
                yield fh
        else:
            with open(tmp, "w", encoding=encoding, newline=newline) as fh:
                yield fh


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; returns ``path``."""
    with atomic_write(path, "wb") as fh:
        fh.write(data)
    return Path(path)


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; returns ``path``."""
    with atomic_write(path) as fh:
        fh.write(text)
    return Path(path)


def json_text(data: Any, indent: int | None = 2, *, sort_keys: bool = False) -> str:
    """``data`` as the workbench writes JSON: UTF-8 kept as is, ``indent`` 2, a final newline.

    Paths become strings, numpy and torch values plain numbers or lists, sets sorted lists.

    Raises:
        TypeError: a value is none of these, naming its type.
    """
    return json.dumps(data, indent=indent, ensure_ascii=False, sort_keys=sort_keys, default=_jsonable) + "\n"


def write_json(
    path: str | os.PathLike, data: Any, indent: int | None = 2, *, sort_keys: bool = False
) -> Path:
    """Write ``data`` as JSON (:func:`json_text`) to ``path`` atomically; returns ``path``."""
    return write_text(path, json_text(data, indent, sort_keys=sort_keys))


def _jsonable(value: Any) -> Any:
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if hasattr(value, "tolist"):  # numpy and torch scalars and arrays
        return value.tolist()
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def table_columns(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None) -> list[str]:
    """``columns``, or every key of ``rows`` in the order first seen."""
    return list(columns) if columns is not None else list(dict.fromkeys(k for r in rows for k in r))


def _csv_cell(value: Any) -> Any:
    """A nested value as its JSON text, so the CSV cell holds what the JSON export holds."""
    return json_text(value, indent=None).rstrip("\n") if isinstance(value, (list, tuple, dict)) else value


def csv_text(rows: Iterable[Mapping[str, Any]], columns: Sequence[str] | None = None) -> str:
    """``rows`` as CSV text with a header.

    Keys outside ``columns`` are left out, missing keys and ``None`` are empty cells, and lists and
    dicts are written as JSON text.
    """
    rows = list(rows)
    buf = io.StringIO()
    writer = csv.DictWriter(
        buf, fieldnames=table_columns(rows, columns), extrasaction="ignore", lineterminator="\n"
    )
    writer.writeheader()
    writer.writerows({k: _csv_cell(v) for k, v in r.items()} for r in rows)
    return buf.getvalue()


def write_table(
    rows: Iterable[Mapping[str, Any]], path: str | os.PathLike, columns: Sequence[str] | None = None
) -> Path:
    """Write ``rows`` to ``path`` atomically: CSV for ``.csv``, a JSON list for ``.json``, JSON Lines for ``.jsonl``.

    Args:
        rows: one mapping per row.
        path: the file; its suffix picks the format.
        columns: the columns, in order (default: every key, in the order first seen). JSON rows keep
            only these keys too, so the CSV and JSON exports of one table hold the same cells.

    Raises:
        ValueError: the suffix is none of ``.csv``, ``.json``, ``.jsonl``.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".json", ".jsonl"):
        got = repr(path.suffix) if path.suffix else "a name without one"
        raise ValueError(f"{path}: a table's suffix picks its format: .csv, .json or .jsonl, not {got}")
    rows = list(rows)
    names = table_columns(rows, columns)
    if suffix == ".csv":
        return write_text(path, csv_text(rows, names))
    picked = [{k: r.get(k) for k in names} for r in rows]
    if suffix == ".json":
        return write_json(path, picked)
    return write_text(path, "".join(json_text(r, indent=None) for r in picked))
