"""Notebook 00's view of a prepared clip folder: a clip browser and its static stand-in.

:class:`ClipBrowser` lists the rows of ``prepare.csv``; picking a flag filter or a clip calls
:meth:`ClipBrowser.set_filter` / :meth:`ClipBrowser.select`, which tests and papermill runs call
directly. Widgets do not render in HTML reports, so :meth:`ClipBrowser.static_html` shows the
same thing as a table and embedded players (flagged clips first, capped in number and length).
"""

from __future__ import annotations

import html
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import ipywidgets as W
import numpy as np

from workbench.audio import TARGET_SAMPLE_RATE, load_audio, wav_bytes
from workbench.notebook.display import Listener, img_html, table_html
from workbench.notebook.plots import figure_png, waveform_and_spectrogram

ALL, FLAGGED, UNFLAGGED = "(all)", "(flagged)", "(not flagged)"
TABLE_COLUMNS = ("file_name", "start", "end", "duration", "text_source", "confidence", "flags", "text")


def flag_counts(rows: Sequence[dict[str, Any]]) -> dict[str, int]:
    """How many rows carry each flag, most common first."""
    return dict(Counter(f for r in rows for f in r["flags"]).most_common())


def table_rows(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows for display: flags joined, dropped ranges marked."""
    return [
        {**r, "flags": ", ".join(r["flags"]), "file_name": r["file_name"] or "(not written)"} for r in rows
    ]


class ClipBrowser:
    """Browse prepared clips: filter by flag, select one, see its text and flags, hear it.

    Args:
        dataset_dir: the folder ``workbench prepare`` wrote (its ``prepare.csv`` is read).
        rows: the rows to show (default: all of ``prepare.csv``).
        max_listen: players :meth:`static_html` embeds at most.
        max_seconds: each embedded clip is cut to this length.
    """

    def __init__(
        self,
        dataset_dir: str,
        rows: Sequence[dict[str, Any]] | None = None,
        max_listen: int = 6,
        max_seconds: float = 15.0,
    ):
        from workbench.prepare.store import read_prepare_csv

        self.root = Path(dataset_dir)
        self.rows = list(rows if rows is not None else read_prepare_csv(dataset_dir))
        self.clips = {r["file_name"]: r for r in self.rows if r["file_name"]}
        self.max_listen, self.max_seconds = max_listen, max_seconds
        self.filter = ALL
        self.selected: str | None = None
        options = [ALL, FLAGGED, UNFLAGGED, *flag_counts(self.clips.values())]
        self.filter_box = W.Dropdown(options=options, value=ALL, description="flags")
        self.select_box = W.Select(options=list(self.clips), rows=12, description="clip")
        self.info = W.HTML()
        self.image = W.Image(format="png", layout=W.Layout(max_width="100%"))
        self.player = W.Audio(format="wav", autoplay=False, loop=False)
        self.filter_box.observe(lambda ch: self.set_filter(ch["new"]), names="value")
        self.select_box.observe(lambda ch: ch["new"] and self.select(ch["new"]), names="value")
        self.widget = W.VBox(
            [W.HBox([W.VBox([self.filter_box, self.select_box]), self.info]), self.image, self.player]
        )
        if self.clips:
            self.select(next(iter(self.clips)))

    def visible(self) -> list[str]:
        """The clips the current filter shows."""

        def keep(row: dict[str, Any]) -> bool:
            if self.filter == ALL:
                return True
            if self.filter == FLAGGED:
                return bool(row["flags"])
            if self.filter == UNFLAGGED:
                return not row["flags"]
            return self.filter in row["flags"]

        return [name for name, row in self.clips.items() if keep(row)]

    def set_filter(self, value: str) -> None:
        """Show only clips with this flag (or ``(all)``, ``(flagged)``, ``(not flagged)``)."""
        self.filter = value
        names = self.visible()
        if self.filter_box.value != value:
            self.filter_box.value = value
        self.select_box.options = names
        if self.selected in names:
            self.select_box.value = self.selected
        elif names:
            self.select(names[0])

    def select(self, file_name: str) -> None:
        """Show one clip: its row, waveform and spectrogram, and a player."""
        if file_name not in self.clips:
            raise KeyError(f"no clip {file_name!r} in {self.root / 'prepare.csv'}")
        self.selected = file_name
        if self.select_box.value != file_name and file_name in self.select_box.options:
            self.select_box.value = file_name
        row = self.clips[file_name]
        self.info.value = self._row_html(row)
        audio = self._audio(file_name)
        self.player.value = wav_bytes(audio) if audio is not None else b""
        self.image.value = self._plot(audio, file_name) if audio is not None else b""

    def _audio(self, file_name: str) -> np.ndarray | None:
        try:
            audio = load_audio(self.root / file_name)
        except (FileNotFoundError, ValueError):
            return None
        return audio[: int(self.max_seconds * TARGET_SAMPLE_RATE)]

    @staticmethod
    def _plot(audio: np.ndarray, title: str) -> bytes:
        with np.errstate(divide="ignore"):
            return figure_png(waveform_and_spectrogram(audio, title=title))

    @staticmethod
    def _row_html(row: dict[str, Any]) -> str:
        fields = [
            ("clip", row["file_name"]),
            ("from", f"{Path(row['source_file']).name} {row['start']:.2f}–{row['end']:.2f} s"),
            ("text", row["text"]),
            ("text from", row["text_source"]),
            ("confidence", f"{row['confidence']:.3f}" if row["confidence"] is not None else "—"),
            ("flags", ", ".join(row["flags"]) or "—"),
        ]
        body = "".join(
            f"<tr><th style='text-align:left'>{k}</th><td style='text-align:left'>{html.escape(str(v))}</td></tr>"
            for k, v in fields
        )
        return f'<table class="wb-clip">{body}</table>'

    def static_html(self) -> str:
        """The stand-in for reports: the rows as a table, then players (flagged clips first)."""
        listener = Listener(self.max_listen, self.max_seconds)
        order = sorted(self.clips, key=lambda name: not self.clips[name]["flags"])
        players = []
        for name in order[: self.max_listen]:
            row = self.clips[name]
            audio = self._audio(name)
            plot = (
                img_html(self._plot(audio, name), f"waveform and spectrogram of {name}")
                if audio is not None
                else ""
            )
            flags = f" [{', '.join(row['flags'])}]" if row["flags"] else ""
            players.append(
                f"<div><b>{html.escape(name)}</b>{html.escape(flags)}: {html.escape(row['text'])}</div>"
                f"{plot}{listener.player(self.root / name, name)}"
            )
        more = len(order) - len(players)
        note = f"<p>{more} more clips not embedded (max_listen={self.max_listen}).</p>" if more > 0 else ""
        return table_html(table_rows(self.rows), TABLE_COLUMNS) + "".join(players) + note
