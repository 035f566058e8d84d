"""The sample browser of notebook 01: a sample's texts, waveforms, spectrograms and players, as training hears them."""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

import ipywidgets as W
import numpy as np

from workbench.audio import TARGET_SAMPLE_RATE, load_audio, wav_bytes
from workbench.data.sample import Sample
from workbench.notebook.display import Listener, img_html
from workbench.notebook.plots import figure_png, waveform_and_spectrogram
from workbench.notebook.widgets.view import View, esc, shown


class SampleBrowser(View):
    """Select a sample to see its texts, waveform, spectrogram and players for reference and target.

    Audio is shown as training sees it (24 kHz mono), cut to ``max_seconds``.

    Args:
        samples: canonical samples to browse.
        listener: embeds the players of :meth:`static_html` (default: at most 4 clips).
        max_seconds: length each clip is cut to, in the widgets and the report.
    """

    ROLES = ("reference", "target")
    MAX_OPTIONS = 500  # a list of 100,000 ids would stall the browser: type to filter instead

    def __init__(
        self, samples: Iterable[Sample], listener: Listener | None = None, max_seconds: float = 10.0
    ):
        self.samples = {s.id: s for s in samples}
        self._haystack = {
            i: f"{i}\n{s.speaker or ''}\n{s.target_text() or ''}".lower() for i, s in self.samples.items()
        }
        self.max_seconds = max_seconds
        self.listener = listener or Listener(max_listen=4, max_seconds=max_seconds)
        self.selected: str | None = None
        self.filter_text = ""
        self.filter_box = W.Text(placeholder="id, speaker or text", description="filter")
        self.select_box = W.Select(options=[], rows=10, description="sample")
        self.count = W.HTML()
        self._set_options(list(self.samples))
        self.texts = W.HTML()
        self.texts.add_class("wb-sample-texts")
        self.players = {r: W.Audio(format="wav", autoplay=False, loop=False) for r in self.ROLES}
        self.images = {r: W.Image(format="png") for r in self.ROLES}
        self.notes = {r: W.HTML() for r in self.ROLES}
        self._bind(self.filter_box, self.set_filter)
        self._bind(self.select_box, self.select)
        for image in self.images.values():
            image.layout.max_width = "100%"
        panels = [
            W.VBox([self.notes[r], self.images[r], self.players[r]], layout=W.Layout(width="50%"))
            for r in self.ROLES
        ]
        self.widget = W.VBox(
            [W.HBox([W.VBox([self.filter_box, self.select_box, self.count]), self.texts]), W.HBox(panels)]
        )
        if self.samples:
            self.select(next(iter(self.samples)))

    @property
    def visible_ids(self) -> list[str]:
        """Ids whose id, speaker or target text contains the filter text (case-insensitive)."""
        needle = self.filter_text.strip().lower()
        return [i for i, text in self._haystack.items() if needle in text]

    def _set_options(self, visible: list[str]) -> None:
        """List at most :attr:`MAX_OPTIONS` of ``visible`` (the selected one always), and say how many match."""
        shown = visible[: self.MAX_OPTIONS]
        selected = getattr(self, "selected", None)
        if selected in visible and selected not in shown:
            shown.append(selected)
        self.select_box.options = shown
        more = len(visible) - len(shown)
        self.count.value = (
            f"<small>{len(visible):,} samples; {len(shown):,} listed, type to filter the other {more:,}</small>"
            if more > 0
            else f"<small>{len(visible):,} samples</small>"
        )

    def set_filter(self, text: str) -> None:
        """Show only matching samples; the first one is selected when the selection is hidden."""
        self.filter_text = text
        visible = self.visible_ids
        with self._quiet():
            self.filter_box.value = text
            self._set_options(visible)  # resets the value: set it back
            self.select_box.value = self.selected if self.selected in visible else None
        if self.selected not in visible:
            if visible:
                self.select(visible[0])
            else:
                self._clear()

    def select(self, sample_id: str) -> None:
        """Show one sample (its texts, plots and players); clears a filter that hides it."""
        if sample_id not in self.samples:
            raise KeyError(f"no sample with id {sample_id!r}")
        self.selected = sample_id
        if sample_id not in self.visible_ids:
            self.set_filter("")
        with self._quiet():
            if sample_id not in self.select_box.options:  # beyond the listed ones
                self._set_options(self.visible_ids)
            self.select_box.value = sample_id
        sample = self.samples[sample_id]
        self.texts.value = self._texts_html(sample)
        for role, (_, audio, caption, png) in self._render(sample).items():
            self.notes[role].value = f"<b>{role}</b>: {esc(caption)}"
            # an empty value renders as a broken image and a dead player: hide them instead
            self.players[role].value = wav_bytes(audio) if audio is not None else b""
            self.images[role].value = png
            shown(self.players[role], audio is not None)
            shown(self.images[role], bool(png))

    def _clear(self) -> None:
        self.selected = None
        self.texts.value = '<div class="wb-note">no sample matches the filter</div>'
        for role in self.ROLES:
            self.players[role].value, self.images[role].value, self.notes[role].value = b"", b"", ""
            shown(self.players[role], False)
            shown(self.images[role], False)

    def _render(self, sample: Sample) -> dict[str, tuple[str | None, Any, str, bytes]]:
        """Per role: the path, the clip as training sees it (cut to ``max_seconds``) or None, a caption, a plot."""
        paths = {
            "reference": (sample.reference_audio() or [None])[0],
            "target": (sample.target_audio() or [None])[-1],
        }
        out = {}
        for role, path in paths.items():
            audio, caption = self._clip(path) if path else (None, f"no {role} audio")
            png = b""
            if audio is not None:
                with np.errstate(divide="ignore"):  # digital silence: log10(0) in the spectrogram
                    png = figure_png(waveform_and_spectrogram(audio, title=f"{role}: {caption}"))
            out[role] = (path, audio, caption, png)
        return out

    @staticmethod
    def _texts_html(sample: Sample) -> str:
        refs = sample.reference_indices()
        rows = [
            ("id", sample.id),
            ("speaker", sample.speaker),
            ("source", sample.provenance()),
            ("reference text", sample.text_for_audio(refs[0]) if refs else None),
            ("target text", sample.target_text()),
        ]
        body = "".join(
            f"<tr><th style='text-align:left'>{k}</th><td style='text-align:left'>{esc(v or '—')}</td></tr>"
            for k, v in rows
        )
        return f'<table class="wb-sample">{body}</table>'

    def _clip(self, path: str) -> tuple[Any, str]:
        """The clip as training sees it, cut to ``max_seconds``, and a caption (or None and why not)."""
        try:
            audio = load_audio(path)
        except (FileNotFoundError, ValueError) as exc:
            return None, f"cannot play: {exc}"
        limit = int(self.max_seconds * TARGET_SAMPLE_RATE)
        cut = f" (first {self.max_seconds:g} s)" if len(audio) > limit else ""
        return audio[:limit], f"{os.path.basename(path)}{cut}"

    def report_html(self) -> str:
        """The report's stand-in for the browser: the first samples, as many as it takes to embed the
        listener's ``max_listen`` clips (a sample without a reference brings one clip, not two)."""
        ids, clips = [], 0
        room = self.listener.max_listen - self.listener.embedded
        for sample_id, sample in self.samples.items():
            if clips >= room:
                break
            ids.append(sample_id)
            clips += bool(sample.reference_audio()) + bool(sample.target_audio())
        return self.static_html(ids) if ids else self.static_html()

    def static_html(self, sample_ids: Iterable[str] | None = None) -> str:
        """Texts, embedded plots and players of the selected sample (or of ``sample_ids``)."""
        ids = list(sample_ids) if sample_ids is not None else [self.selected] if self.selected else []
        parts = []
        for sample_id in ids:
            sample = self.samples[sample_id]
            cells = []
            for role, (path, audio, caption, png) in self._render(sample).items():
                if audio is None:
                    cells.append(f'<div class="wb-note">{role}: {esc(caption)}</div>')
                else:  # the listener caps how many clips a report embeds
                    player = self.listener.player(path, f"{role}: {caption}")
                    cells.append(f"<div style='flex:1'>{img_html(png, role)}{player}</div>")
            parts.append(
                f"{self._texts_html(sample)}<div style='display:flex;gap:1em'>{''.join(cells)}</div>"
            )
        return "".join(parts) or '<div class="wb-note">no sample selected</div>'
