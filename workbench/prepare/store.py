"""What ``workbench prepare`` keeps in DATASET_DIR: clips, ``prepare.csv`` and its resume state.

Layout::

    DATASET_DIR/<speaker>/clip_0001.wav    24 kHz mono 16-bit PCM
    DATASET_DIR/<speaker>/clip_0001.txt    its transcript (one line, UTF-8)
    DATASET_DIR/prepare.csv                one row per clip (and per dropped range)
    DATASET_DIR/.prepare/<key>.json        per input: its settings, transcripts so far, rows written

Every file is written atomically (:mod:`workbench.files`: a hidden temporary sibling moved into
place), so a killed run leaves whole files only; ``convert`` skips hidden names. A clip's ``.txt``
is written before its ``.wav`` and the state after both, so a clip is either recorded in the state
or removed as an orphan when the next run starts.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from workbench.audio import write_wav
from workbench.files import json_text, write_table, write_text

STATE_DIR = ".prepare"
CSV_NAME = "prepare.csv"
CSV_COLUMNS = (
    "file_name",
    "speaker",
    "source_file",
    "start",
    "end",
    "duration",
    "text",
    "text_source",
    "confidence",
    "no_speech",
    "flags",
)
CLIP_NAME = re.compile(r"^clip_(\d{4,})\.(wav|txt)$")
STATE_NAME = re.compile(r"^[0-9a-f]{16}\.json$")  # input_key(source) + ".json"
_SPEAKER_BAD = re.compile(r"[^\w.\-]+")


def speaker_folder_name(name: str) -> str:
    """``name`` usable as one folder name (other characters become ``_``; no leading dot)."""
    cleaned = _SPEAKER_BAD.sub("_", name.strip()).lstrip(".")
    return cleaned or "speaker"


def write_clip(folder: Path, name: str, audio: np.ndarray, text: str) -> None:
    """``folder/name.txt`` then ``folder/name.wav`` (24 kHz mono PCM 16), each atomically."""
    write_text(folder / f"{name}.txt", text.strip() + "\n")
    write_wav(folder / f"{name}.wav", np.asarray(audio, np.float32))


def input_key(source: str) -> str:
    """A stable file name for one input's state."""
    return hashlib.sha1(source.encode("utf-8")).hexdigest()[:16]


class Store:
    """The resume state of a dataset folder: one JSON file per input, rewritten atomically."""

    def __init__(self, dataset_dir: str | os.PathLike):
        self.root = Path(dataset_dir).absolute()
        self.state_dir = self.root / STATE_DIR

    def check_ownership(self) -> None:
        """Refuse a folder with content that ``prepare`` did not make.

        Raises:
            FileExistsError: DATASET_DIR holds other files and no prepare state.
        """
        if self.root.is_file():
            raise FileExistsError(f"{self.root} is a file; DATASET_DIR must be a folder")
        if self.root.is_dir() and not self.state_dir.is_dir() and any(self.root.iterdir()):
            raise FileExistsError(
                f"{self.root} already holds files that `workbench prepare` did not write; "
                "choose a new or empty DATASET_DIR (nothing there is changed)"
            )

    def load_all(self) -> dict[str, dict[str, Any]]:
        """Every input's state, by input key.

        Only the states themselves: a temporary sibling left by a run killed before moving it into
        place may be complete, and read as a state it would keep clips the real state does not record
        and move the clip numbering on.
        """
        states = {}
        if self.state_dir.is_dir():
            for path in sorted(self.state_dir.iterdir()):
                if not STATE_NAME.match(path.name):
                    continue
                try:
                    states[path.stem] = json.loads(path.read_text(encoding="utf-8"))
                except (OSError, json.JSONDecodeError):  # written atomically, so only a hand edit gets here
                    continue
        return states

    def save(self, state: dict[str, Any]) -> None:
        write_text(self.state_dir / f"{input_key(state['source'])}.json", json_text(state, indent=0))

    def forget(self, state: dict[str, Any]) -> None:
        """Remove an input's clips and its state (``--overwrite``, or a changed input)."""
        for row in state.get("rows", {}).values():
            if row.get("file_name"):
                clip = self.root / row["file_name"]
                clip.unlink(missing_ok=True)
                clip.with_suffix(".txt").unlink(missing_ok=True)
        (self.state_dir / f"{input_key(state['source'])}.json").unlink(missing_ok=True)

    def referenced(self, states: Iterable[dict[str, Any]]) -> set[str]:
        return {
            row["file_name"] for s in states for row in s.get("rows", {}).values() if row.get("file_name")
        }

    def remove_orphans(self, states: Iterable[dict[str, Any]]) -> int:
        """Delete clips and temporaries that no state records (left by a killed run). Returns the count."""
        keep = self.referenced(states)
        removed = 0
        if not self.root.is_dir():
            return 0
        for folder in self.root.iterdir():
            if not folder.is_dir() or folder.name.startswith("."):
                continue
            for path in folder.iterdir():
                match = CLIP_NAME.match(path.name)
                stray = path.name.startswith(".clip_")  # a temporary sibling of a clip or transcript
                if stray or (match and f"{folder.name}/clip_{match.group(1)}.wav" not in keep):
                    path.unlink(missing_ok=True)
                    removed += 1
        for path in self.state_dir.glob(".*.tmp*") if self.state_dir.is_dir() else ():
            path.unlink(missing_ok=True)
        for path in self.root.glob(".*.tmp*"):
            path.unlink(missing_ok=True)
        return removed

    def next_numbers(self, states: Iterable[dict[str, Any]]) -> dict[str, int]:
        """Per speaker folder, the next free clip number after every recorded clip."""
        top: dict[str, int] = {}
        for name in self.referenced(states):
            folder, file = name.split("/", 1)
            match = CLIP_NAME.match(file)
            if match:
                top[folder] = max(top.get(folder, 0), int(match.group(1)))
        return {folder: n + 1 for folder, n in top.items()}

    def write_csv(self, states: Iterable[dict[str, Any]]) -> Path:
        """``prepare.csv``: every input's rows, by source then start time."""
        rows = [row for s in states for row in s.get("rows", {}).values()]
        rows.sort(key=lambda r: (r["source_file"], float(r["start"])))
        cells = [{k: _csv_value(row.get(k)) for k in CSV_COLUMNS} for row in rows]
        return write_table(cells, self.root / CSV_NAME, CSV_COLUMNS)


def _csv_value(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) >= 1e-3 or value == 0 else f"{value:.2e}"
    if isinstance(value, (list, tuple)):
        return ";".join(value)
    return value


def read_prepare_csv(dataset_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """The rows of ``DATASET_DIR/prepare.csv`` (numbers as floats, flags as a list)."""
    rows = []
    with open(Path(dataset_dir) / CSV_NAME, encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh):
            for key in ("start", "end", "duration", "confidence", "no_speech"):
                row[key] = float(row[key]) if row.get(key) else None
            row["flags"] = [f for f in (row.get("flags") or "").split(";") if f]
            rows.append(row)
    return rows
