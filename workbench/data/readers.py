"""Read source records from the files people bring, one record at a time, with provenance.

Supported: ``.jsonl``/``.ndjson`` (streamed line by line), ``.json`` (an array, a single
object, or an object holding a list), ``.csv``/``.tsv`` with a header row, LJSpeech
pipe-separated ``metadata.csv`` (no header), and folders holding ``metadata.json`` (the
community Higgs trainer layout), ``metadata.jsonl`` or ``metadata.csv`` (the Hugging Face
AudioFolder layout, or LJSpeech). UTF-8 with or without BOM;
CRLF line ends are fine. Records that cannot be parsed are yielded with ``error`` set, so the
converter rejects them with their line number instead of stopping.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from workbench.data import formats

_LIST_KEYS = ("samples", "data", "records", "items", "utterances", "entries", "dataset")
_CSV_HEADER_HINTS = {
    "audio_filepath",
    "audio",
    "text",
    "reference_audio",
    "target_text",
    "audio_file",
    "id",
    "speaker",
    "path",
    "file",
    "filename",
    "file_name",
    "wav",
    "transcript",
    "transcription",
    "normalized_text",
    "sentence",
}
SUPPORTED = (
    ".jsonl, .ndjson, .json, .csv, .tsv, LJSpeech metadata.csv, "
    "a folder with metadata.json, metadata.jsonl, metadata.csv or metadata.tsv, "
    "or a folder of audio files with same-named .txt/.normalized.txt/.lab transcripts"
)

METADATA_FILES = (
    "metadata.json",
    "metadata.jsonl",
    "metadata.csv",
    "metadata.tsv",
)  # a folder's, in this order
AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg", ".opus")
TRANSCRIPT_SUFFIXES = (".normalized.txt", ".txt", ".lab")  # a clip's sidecar transcript, preferred first


class InputError(ValueError):
    """An input that cannot be read at all (missing, unsupported, not JSON): a usage error."""


@dataclass
class RawRecord:
    """One source record and where it came from."""

    record: Any
    source_file: str
    source_index: int  # 0-based position among the file's records
    source_line: int | None = None  # 1-based line for line-oriented files
    base_dir: str = "."
    format_hint: str | None = None  # set when the file layout fixes the format (LJSpeech, trainer folder)
    error: str | None = None  # parse problem: the record is rejected as BAD_RECORD

    def where(self) -> str:
        if self.source_line is not None:
            return f"{self.source_file}:{self.source_line}"
        return f"{self.source_file} record {self.source_index}"


def iter_records(path: str | os.PathLike) -> Iterator[RawRecord]:
    """Yield the records of one input path (file or dataset folder).

    Raises:
        InputError: the path is missing or of an unsupported kind, naming it and the hint.
    """
    path = os.path.abspath(os.fspath(path))
    if os.path.isdir(path):
        found = [name for name in METADATA_FILES if os.path.isfile(os.path.join(path, name))]
        if len(found) > 1:
            raise InputError(
                f"{path}: folder holds several metadata files ({', '.join(found)}). "
                "Hint: pass the file to convert instead of the folder (or each of them)."
            )
        if found:
            yield from iter_records(os.path.join(path, found[0]))
            return
        records = _iter_audio_folder(path)
        first = next(records, None)
        if first is None:
            raise InputError(
                f"{path}: folder holds none of {', '.join(METADATA_FILES)}, and no audio files "
                f"({', '.join(AUDIO_EXTENSIONS)}). Hint: inputs may be {SUPPORTED}."
            )
        yield first
        yield from records
        return
    if not os.path.isfile(path):
        raise InputError(f"{path}: input file not found.")
    lower = path.lower()
    if lower.endswith((".jsonl", ".ndjson")):
        yield from _iter_jsonl(path)
    elif lower.endswith(".json"):
        yield from _iter_json(path)
    elif lower.endswith((".csv", ".tsv", ".txt")):
        yield from _iter_table(path)
    else:
        raise InputError(f"{path}: unsupported input type. Hint: inputs may be {SUPPORTED}.")


def _iter_audio_folder(root: str) -> Iterator[RawRecord]:
    """A folder of audio files with sidecar transcripts (``clip.wav`` + ``clip.txt``), searched recursively.

    Each audio file is one record ``{"file_name", "text", "transcript_file", "speaker"?}`` in the
    ``audiofolder`` format; a clip without a transcript file is still a record (the converter
    rejects it, naming the files it looked for). In nested folders (LibriTTS ``speaker/chapter/``,
    VCTK ``p225/``) the first folder level is the speaker.
    """
    index = 0
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        names = set(files)
        for name in sorted(files):
            stem, ext = os.path.splitext(name)
            if ext.lower() not in AUDIO_EXTENSIONS or name.startswith("."):
                continue
            rel = os.path.relpath(os.path.join(folder, name), root)
            parts = rel.replace(os.sep, "/").split("/")
            record: dict[str, Any] = {"file_name": rel, "text": None}
            if len(parts) > 1:
                record["speaker"] = parts[0]
            sidecar = next((stem + s for s in TRANSCRIPT_SUFFIXES if stem + s in names), None)
            error = None
            if sidecar is None:
                record["transcript_file"] = None
                record["missing_transcript"] = ", ".join(stem + s for s in TRANSCRIPT_SUFFIXES)
            else:
                record["transcript_file"] = os.path.relpath(os.path.join(folder, sidecar), root)
                try:
                    with open(os.path.join(folder, sidecar), encoding="utf-8-sig") as fh:
                        record["text"] = " ".join(fh.read().split())
                except UnicodeDecodeError as exc:
                    error = f"transcript {sidecar} is not UTF-8 ({exc.reason})"
            source = os.path.join(folder, sidecar or name)
            line = 1 if sidecar else None  # provenance: the transcript file, or the clip that has none
            yield RawRecord(
                record, source, index, line, root, format_hint=formats.audiofolder.NAME, error=error
            )
            index += 1


def _iter_jsonl(path: str) -> Iterator[RawRecord]:
    base = os.path.dirname(path)
    index = 0
    with open(path, "rb") as fh:
        for number, raw in enumerate(fh, start=1):
            if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            raw = raw.strip()
            if not raw:
                continue
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                yield RawRecord(
                    raw.decode("utf-8", "replace"),
                    path,
                    index,
                    number,
                    base,
                    error=f"not UTF-8 ({exc.reason})",
                )
            else:
                try:
                    yield RawRecord(json.loads(text), path, index, number, base)
                except json.JSONDecodeError as exc:
                    yield RawRecord(
                        text,
                        path,
                        index,
                        number,
                        base,
                        error=f"not valid JSON ({exc.msg} at column {exc.colno})",
                    )
            index += 1


def _iter_json(path: str) -> Iterator[RawRecord]:
    base = os.path.dirname(path)
    try:
        with open(path, encoding="utf-8-sig") as fh:
            data = json.load(fh)
    except json.JSONDecodeError as exc:
        raise InputError(
            f"{path}: not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}). "
            "Hint: one JSON value per file, or use .jsonl for one record per line."
        ) from None
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text ({exc.reason}).") from None
    for index, record in enumerate(_json_records(data, path)):
        yield RawRecord(record, path, index, None, base)


def _json_records(data: Any, path: str) -> list[Any]:
    if isinstance(data, list):
        return data
    if isinstance(data, dict):
        if formats.detect(data) is not None:
            return [data]
        for key in _LIST_KEYS:
            if isinstance(data.get(key), list):
                return data[key]
        lists = [
            v for v in data.values() if isinstance(v, list) and v and all(isinstance(x, dict) for x in v)
        ]
        if len(lists) == 1:
            return lists[0]
        return [data]  # a single record of unknown format: the converter explains
    raise InputError(f"{path}: expected a JSON array or object, got {type(data).__name__}.")


def _is_ljspeech_line(first: str) -> bool:
    fields = first.split("|")
    return len(fields) in (2, 3) and not (_CSV_HEADER_HINTS & {f.strip().lower() for f in fields})


def _iter_table(path: str) -> Iterator[RawRecord]:
    base = os.path.dirname(path)
    with open(path, encoding="utf-8-sig", newline="") as fh:
        first = fh.readline()
        fh.seek(0)
        if "|" in first and _is_ljspeech_line(first.rstrip("\r\n")):
            reader = csv.reader(fh, delimiter="|", quoting=csv.QUOTE_NONE)
            for index, row in enumerate(r for r in reader if r):
                record = {
                    "id": row[0],
                    "text": row[1] if len(row) > 1 else "",
                    "normalized_text": row[2] if len(row) > 2 else None,
                }
                yield RawRecord(record, path, index, reader.line_num, base, format_hint=formats.ljspeech.NAME)
            return
        delimiter = "\t" if path.lower().endswith(".tsv") or ("\t" in first and "," not in first) else ","
        if "|" in first and delimiter not in first:
            delimiter = "|"
        reader = csv.DictReader(fh, delimiter=delimiter)
        for index, row in enumerate(reader):
            if None in row:  # more cells than header columns
                extra = row.pop(None)
                yield RawRecord(
                    row,
                    path,
                    index,
                    reader.line_num,
                    base,
                    error=f"{len(extra)} more cell(s) than header columns",
                )
                continue
            record = {k.strip(): (v if v != "" else None) for k, v in row.items() if k is not None}
            yield RawRecord(record, path, index, reader.line_num, base)
