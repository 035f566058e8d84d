"""Interactive views for the notebooks: format picker, sample browser, issue table and fix actions.

Each class keeps plain Python state and has methods that its widgets' callbacks call, so tests
and papermill runs drive it without a browser: ``picker.choose(file, "manifest")`` does what
picking ``manifest`` in the dropdown does, and picking in the dropdown calls ``choose``.
``.widget`` is the ipywidgets container to display; ``static_html()`` is the stand-in for HTML
reports, where widgets do not render (tables, embedded images and ``<audio>`` players).
"""

from __future__ import annotations

import html
import os
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import ipywidgets as W
import numpy as np

from workbench.audio import TARGET_SAMPLE_RATE, load_audio, wav_bytes
from workbench.data import formats
from workbench.data.convert import Outcome
from workbench.data.findings import Finding
from workbench.data.fixes import TRIM_AUDIO_CHOICES, FixRecipe
from workbench.data.formats.sharegpt import DEFAULT_MAP, ROLES, SLOTS, parse_map
from workbench.data.sample import Sample
from workbench.data.survey import preview, survey_formats
from workbench.data.tables import finding_rows, write_csv
from workbench.notebook.display import Listener, img_html, side_by_side, table_html
from workbench.notebook.plots import figure_png, waveform_and_spectrogram

AUTO = "auto"
ALL = "(all)"
COLUMNS = ("severity", "code", "sample_id", "speaker", "message", "hint", "source_file", "source_index")
CSV_COLUMNS = (*COLUMNS, "source_line", "field")


def _esc(value: Any) -> str:
    return html.escape(str(value))


def _readable(markup: str) -> str:
    """Normal line spacing for multi-line HTML in an ``HTML`` widget (its default is one widget row per line)."""
    return f'<div style="line-height:1.4">{markup}</div>'


def _scrolling(max_height: str | None = None) -> W.Layout:
    """A layout that scrolls content wider (or taller) than the output area instead of clipping it."""
    return W.Layout(width="100%", overflow="auto", max_height=max_height)


def _shown(widget: W.DOMWidget, visible: bool) -> None:
    widget.layout.display = "" if visible else "none"


class _View:
    """Two-way binding: widget edits call the public methods, which update widgets without echo."""

    _syncing = False

    def _bind(self, box: W.ValueWidget, handler: Callable[[Any], Any]) -> None:
        box.observe(lambda ch: self._syncing or ch["new"] is None or handler(ch["new"]), names="value")

    @contextmanager
    def _quiet(self) -> Iterator[None]:
        self._syncing = True
        try:
            yield
        finally:
            self._syncing = False


# --- format picker ------------------------------------------------------------------------------


class FormatPicker(_View):
    """Pick the source format per input file, and the ShareGPT field mapping, with a live preview.

    Args:
        inputs: one source file or several.
        format: the initial choice: ``"auto"``, one format name for every file, or ``{file: format}``.
        sharegpt_map: slot→role overrides (dict or ``["slot=role", ...]``) over the default mapping.
        audio_root: folder that relative audio paths resolve against (as in ``convert``).
        n_preview: records per file converted in the preview.

    Raises:
        ValueError: an unknown format, slot or role.

    Examples:
        >>> picker = FormatPicker(["a.jsonl"])  # doctest: +SKIP
        >>> picker.choose("a.jsonl", "manifest")  # doctest: +SKIP
        >>> convert(picker.files, "out/converted.jsonl", **picker.options())  # doctest: +SKIP
    """

    def __init__(
        self,
        inputs: str | os.PathLike | Iterable[str | os.PathLike],
        format: str | dict[str, str] = AUTO,
        sharegpt_map: dict[str, str] | list[str] | None = None,
        audio_root: str | None = None,
        n_preview: int = 3,
    ):
        paths = [inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs)
        self.files = [str(p) for p in paths]
        if not self.files:
            raise ValueError("FormatPicker needs at least one input file")
        initial = format if isinstance(format, dict) else dict.fromkeys(self.files, format)
        self.choices = {f: self._checked(initial.get(f, AUTO)) for f in self.files}
        self.sharegpt_map = parse_map(sharegpt_map)
        self.audio_root = audio_root
        self.n_preview = n_preview
        self.surveys = dict(zip(self.files, survey_formats(self.files, limit=1000), strict=True))
        self._cache: dict[tuple, list[Outcome]] = {}

        names = [AUTO, *formats.FORMAT_NAMES]
        self.dropdowns = {
            f: W.Dropdown(options=names, value=self.choices[f], description="format") for f in self.files
        }
        self.previews = {f: W.HTML(layout=_scrolling("480px")) for f in self.files}
        for f, box in self.dropdowns.items():
            self._bind(box, lambda value, f=f: self.choose(f, value))
        self.map_dropdowns = {
            s: W.Dropdown(options=ROLES, value=self.sharegpt_map[s], description=s) for s in SLOTS
        }
        for slot, box in self.map_dropdowns.items():
            self._bind(box, lambda value, slot=slot: self.set_map(slot, value))
        self.map_box = W.VBox(
            [W.HTML("<b>ShareGPT field mapping</b> (slot → role)"), W.HBox(list(self.map_dropdowns.values()))]
        )
        files = [
            W.VBox([W.HTML(self._file_header(f)), self.dropdowns[f], self.previews[f]]) for f in self.files
        ]
        self.widget = W.VBox([*files, self.map_box])
        self._refresh(self.files)

    @staticmethod
    def _checked(name: str) -> str:
        if name != AUTO and name not in formats.FORMATS:
            raise ValueError(
                f"format {name!r} is unknown; expected auto or one of {', '.join(formats.FORMAT_NAMES)}"
            )
        return name

    def choose(self, file: str | os.PathLike, format: str) -> None:
        """Set the format of one input file (``auto`` or a format name); updates widget and preview."""
        file = str(file)
        if file not in self.choices:
            raise KeyError(f"{file} is not one of this picker's inputs: {', '.join(self.files)}")
        self.choices[file] = self._checked(format)
        with self._quiet():
            self.dropdowns[file].value = format
        self._refresh([file])

    def set_map(self, slot: str, role: str) -> None:
        """Map a ShareGPT slot (human, gpt, audio0, audio1) to a role; updates widgets and previews.

        The newest choice wins: another slot that held ``role`` becomes ``ignore``.

        Raises:
            ValueError: an unknown slot or role.
        """
        wanted = {s: r for s, r in self.sharegpt_map.items() if r != DEFAULT_MAP[s]}
        if role != "ignore":
            wanted.update({s: "ignore" for s, r in self.sharegpt_map.items() if r == role})
        self.sharegpt_map = parse_map({**wanted, slot: role})
        with self._quiet():
            for s, box in self.map_dropdowns.items():
                box.value = self.sharegpt_map[s]
        self._refresh(self.files)

    def uses_sharegpt(self) -> bool:
        """True when some file is (or, under ``auto``, was detected as) ShareGPT-style data."""
        return any(
            c == "sharegpt" or (c == AUTO and self.surveys[f].formats.get("sharegpt"))
            for f, c in self.choices.items()
        )

    def preview_outcomes(self, file: str | os.PathLike) -> list[Outcome]:
        """The first ``n_preview`` records of ``file`` converted under the current choices."""
        file = str(file)
        key = (file, self.choices[file], tuple(sorted(self.sharegpt_map.items())))
        if key not in self._cache:
            self._cache[key] = preview(
                file,
                format=self.choices[file],
                n=self.n_preview,
                audio_root=self.audio_root,
                sharegpt_map=self.sharegpt_map,
            )
        return self._cache[key]

    def preview_html(self, file: str | os.PathLike) -> str:
        """Each previewed record beside its canonical sample, or with the reasons it was rejected."""
        try:
            outcomes = self.preview_outcomes(file)
        except (ValueError, OSError) as exc:
            return f'<div class="wb-note">preview failed: {_esc(exc)}</div>'
        parts = []
        for o in outcomes:
            head = f"<b>{_esc(o.raw.where())}</b>: {_esc(o.kind)} (format {_esc(o.format or 'none')})"
            reasons = "".join(
                f"<li>{_esc(f.severity)} {_esc(f.code)}: {_esc(f.message)}</li>" for f in o.findings
            )
            right = o.sample.to_dict() if o.sample is not None else None
            title = "canonical sample" if o.kind != "rejected" else "rejected (no trainable sample)"
            parts.append(
                f"<div>{head}<ul>{reasons}</ul>{side_by_side(o.raw.record, right, right_title=title)}</div>"
            )
        return "".join(parts) or '<div class="wb-note">no records</div>'

    def options(self) -> dict[str, Any]:
        """Keyword arguments for :func:`workbench.data.convert.convert` under the current choices.

        Returns:
            ``{"format": ..., "audio_root": ..., "sharegpt_map": {slot: role overrides}}``. ``format``
            is one name when every file has the same choice. When files need different formats it
            is a list of ``(file, format)`` pairs instead, which ``convert`` does not take: convert
            those files one at a time (``convert(file, out, format=fmt, ...)`` per pair).
        """
        chosen = set(self.choices.values())
        fmt: str | list[tuple[str, str]] = chosen.pop() if len(chosen) == 1 else list(self.choices.items())
        overrides = {s: r for s, r in self.sharegpt_map.items() if DEFAULT_MAP.get(s) != r}
        return {"format": fmt, "audio_root": self.audio_root, "sharegpt_map": overrides}

    def _file_header(self, file: str) -> str:
        survey = self.surveys[file]
        counts = ", ".join(f"{k or 'unknown'}: {n}" for k, n in survey.formats.most_common()) or "none"
        more = "+" if survey.truncated else ""
        return (
            f'<b title="{_esc(file)}">{_esc(os.path.basename(file))}</b>: {survey.total}{more} records, '
            f"{survey.bad} unreadable; detected {_esc(counts)}"
        )

    def _refresh(self, files: Iterable[str]) -> None:
        for f in files:
            self.previews[f].value = _readable(self.preview_html(f))
        self.map_box.layout.display = "" if self.uses_sharegpt() else "none"

    def static_html(self) -> str:
        """Choices, detected formats and previews as plain HTML (for reports)."""
        parts = [
            f"<h4>{self._file_header(f)}; chosen format: {_esc(self.choices[f])}</h4>{self.preview_html(f)}"
            for f in self.files
        ]
        if self.uses_sharegpt():
            rows = [{"slot": s, "role": r} for s, r in self.sharegpt_map.items()]
            parts.append(f"<b>ShareGPT field mapping</b>{table_html(rows)}")
        return "".join(parts)


# --- sample browser -----------------------------------------------------------------------------


class SampleBrowser(_View):
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
            self.notes[role].value = f"<b>{role}</b>: {_esc(caption)}"
            # an empty value renders as a broken image and a dead player: hide them instead
            self.players[role].value = wav_bytes(audio) if audio is not None else b""
            self.images[role].value = png
            _shown(self.players[role], audio is not None)
            _shown(self.images[role], bool(png))

    def _clear(self) -> None:
        self.selected = None
        self.texts.value = '<div class="wb-note">no sample matches the filter</div>'
        for role in self.ROLES:
            self.players[role].value, self.images[role].value, self.notes[role].value = b"", b"", ""
            _shown(self.players[role], False)
            _shown(self.images[role], False)

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
            f"<tr><th style='text-align:left'>{k}</th><td style='text-align:left'>{_esc(v or '—')}</td></tr>"
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
                    cells.append(f'<div class="wb-note">{role}: {_esc(caption)}</div>')
                else:  # the listener caps how many clips a report embeds
                    player = self.listener.player(path, f"{role}: {caption}")
                    cells.append(f"<div style='flex:1'>{img_html(png, role)}{player}</div>")
            parts.append(
                f"{self._texts_html(sample)}<div style='display:flex;gap:1em'>{''.join(cells)}</div>"
            )
        return "".join(parts) or '<div class="wb-note">no sample selected</div>'


# --- issue table --------------------------------------------------------------------------------


def _filter_options(values: Iterable[str | None]) -> list[tuple[str, str]]:
    counts = Counter(v for v in values if v)
    return [(ALL, ALL)] + [(f"{v} ({n})", v) for v, n in sorted(counts.items())]


class IssueTable(_View):
    """Findings filterable by code, severity and speaker, with a count and CSV export.

    Args:
        findings: findings, or a :class:`workbench.data.validate.ValidationReport`.
        samples: the samples the findings are about; gives each finding its speaker.
        csv_path: the export button's default file.
    """

    def __init__(
        self,
        findings: Iterable[Finding] | Any,
        samples: Iterable[Sample] | None = None,
        csv_path: str = "flagged.csv",
    ):
        self.findings: list[Finding] = list(getattr(findings, "findings", findings))
        self.speakers = {s.id: s.speaker for s in samples or ()}
        self.filters: dict[str, str | None] = {"code": None, "severity": None, "speaker": None}
        self.filtered: list[Finding] = list(self.findings)
        self._callbacks: list[Callable[[IssueTable], None]] = []
        values = {
            "code": [f.code for f in self.findings],
            "severity": [f.severity for f in self.findings],
            "speaker": [self.speakers.get(f.sample_id or "") for f in self.findings],
        }
        self.dropdowns = {
            k: W.Dropdown(options=_filter_options(v), value=ALL, description=k) for k, v in values.items()
        }
        for key, box in self.dropdowns.items():
            self._bind(box, lambda value, key=key: self._pick(key, value))
        self.count = W.HTML()
        self.table = W.HTML(layout=_scrolling("600px"))
        self.csv_box = W.Text(value=str(csv_path), description="CSV file")
        self.export_button = W.Button(description="export CSV", icon="download")
        self.export_status = W.HTML()
        self.export_button.on_click(lambda _: self._export_clicked())
        self.widget = W.VBox(
            [
                W.HBox(list(self.dropdowns.values())),
                self.count,
                self.table,
                W.HBox([self.csv_box, self.export_button, self.export_status]),
            ]
        )
        self._refresh()

    def set_filter(
        self, code: str | None = None, severity: str | None = None, speaker: str | None = None
    ) -> None:
        """Show findings matching every given value (``None``: any); updates the dropdowns too."""
        wanted = {"code": code, "severity": severity, "speaker": speaker}
        for key, value in wanted.items():
            allowed = [v for _, v in self.dropdowns[key].options if v != ALL]
            if value is not None and value not in allowed:
                raise ValueError(
                    f"{key} {value!r} is not among the findings; expected one of {', '.join(allowed) or 'none'}"
                )
        self.filters = wanted
        with self._quiet():
            for key, value in wanted.items():
                self.dropdowns[key].value = ALL if value is None else value
        self._refresh()

    def on_change(self, callback: Callable[[IssueTable], None]) -> None:
        """Call ``callback(table)`` after every filter change."""
        self._callbacks.append(callback)

    @property
    def filtered_rows(self) -> list[dict[str, Any]]:
        return finding_rows(self.filtered, self.speakers)

    @property
    def sample_ids(self) -> list[str]:
        """Ids of the samples with a shown finding, in table order, each once."""
        return list(dict.fromkeys(f.sample_id for f in self.filtered if f.sample_id))

    def export_csv(self, path: str | os.PathLike) -> Path:
        """Write the shown findings to CSV (folder created); returns the path."""
        return write_csv(self.filtered_rows, path, columns=CSV_COLUMNS)

    def _pick(self, key: str, value: str) -> None:
        self.set_filter(**{**self.filters, key: None if value == ALL else value})

    def _export_clicked(self) -> None:
        path = self.export_csv(self.csv_box.value)
        self.export_status.value = f"wrote {len(self.filtered)} rows to {_esc(Path(path).resolve())}"

    def _matches(self, f: Finding) -> bool:
        got = {"code": f.code, "severity": f.severity, "speaker": self.speakers.get(f.sample_id or "")}
        return all(want is None or got[key] == want for key, want in self.filters.items())

    def count_text(self) -> str:
        shown = {k: v for k, v in self.filters.items() if v is not None}
        where = " where " + ", ".join(f"{k} = {v}" for k, v in shown.items()) if shown else ""
        return (
            f"{len(self.filtered)} of {len(self.findings)} findings in {len(self.sample_ids)} samples{where}"
        )

    def _refresh(self) -> None:
        self.filtered = [f for f in self.findings if self._matches(f)]
        self.count.value = f"<b>{_esc(self.count_text())}</b>"
        self.table.value = _readable(table_html(self.filtered_rows, columns=COLUMNS))
        for callback in self._callbacks:
            callback(self)

    def static_html(self) -> str:
        """The count and the table of shown findings (for reports)."""
        return f"<p><b>{_esc(self.count_text())}</b></p>{table_html(self.filtered_rows, columns=COLUMNS)}"


# --- fix actions --------------------------------------------------------------------------------


class FixActions:
    """Buttons that record fixes in a :class:`workbench.data.fixes.FixRecipe` instead of applying them.

    Buttons act on the samples picked in the ``samples`` list, or, when none is picked, on the
    samples with a finding shown in ``issue_table``. Nothing is changed until the recipe is
    replayed (``workbench fix DATA.jsonl --recipe fixes.yaml -o FIXED.jsonl``).

    Args:
        recipe: the recipe to append to.
        samples: the samples that can be picked (ids and speakers).
        issue_table: the table whose filtered samples the buttons act on by default.
        output_dir: where :meth:`save` and the save button write ``fixes.yaml`` by default.
    """

    def __init__(
        self,
        recipe: FixRecipe,
        samples: Iterable[Sample],
        issue_table: IssueTable | None = None,
        output_dir: str | os.PathLike | None = None,
    ):
        self.recipe = recipe
        self.samples = list(samples)
        self.issue_table = issue_table
        self.output_dir = output_dir
        speakers = sorted({s.speaker for s in self.samples if s.speaker})
        self.ids_box = W.SelectMultiple(options=[s.id for s in self.samples], rows=6, description="samples")
        self.targets = W.HTML()
        self.reason_box = W.Text(placeholder="why (default: the issue table's code)", description="reason")
        self.threshold_box = W.BoundedFloatText(value=40, min=1, max=120, description="thresh. dB")
        self.keep_box = W.BoundedFloatText(value=100, min=0, max=5000, description="keep ms")
        self.trim_audio_box = W.Dropdown(options=TRIM_AUDIO_CHOICES, value="all", description="audio")
        self.speaker_box = W.Text(description="speaker")
        self.merge_box = W.SelectMultiple(options=speakers, rows=4, description="speakers")
        self.into_box = W.Text(description="into")
        self.old_box = W.Text(description="old prefix")
        self.new_box = W.Text(description="new prefix")
        actions: dict[str, Callable[[], Any]] = {
            "drop samples": lambda: self.drop(
                self.target_ids(), self.reason_box.value.strip() or self._default_reason()
            ),
            "move to prompts": lambda: self.move_to_prompts(self.target_ids()),
            "trim silence": lambda: self.trim(
                self.target_ids(), self.threshold_box.value, self.keep_box.value, self.trim_audio_box.value
            ),
            "set speaker": lambda: self.set_speaker(self.target_ids(), self.speaker_box.value.strip()),
            "merge speakers": lambda: self.merge_speakers(
                list(self.merge_box.value), self.into_box.value.strip()
            ),
            "remap prefix": lambda: self.remap(self.old_box.value, self.new_box.value),
            "save recipe": lambda: self._saved(self.save()),
        }
        self.buttons = {name: W.Button(description=name) for name in actions}
        for name, action in actions.items():
            self.buttons[name].on_click(lambda _, action=action: self._clicked(action))
        self.status = W.HTML()
        self.view = W.HTML()
        b = self.buttons
        self.widget = W.VBox(
            [
                W.HBox([self.ids_box, self.targets]),
                W.HBox([b["drop samples"], self.reason_box, b["move to prompts"]]),
                W.HBox([b["trim silence"], self.threshold_box, self.keep_box, self.trim_audio_box]),
                W.HBox([b["set speaker"], self.speaker_box]),
                W.HBox([b["merge speakers"], self.merge_box, self.into_box]),
                W.HBox([b["remap prefix"], self.old_box, self.new_box]),
                W.HBox([b["save recipe"], self.status]),
                self.view,
            ]
        )
        self.ids_box.observe(lambda _: self._show_targets(), names="value")
        if issue_table is not None:
            issue_table.on_change(lambda _: self._show_targets())
        self._show_targets()
        self._show_recipe()

    def target_ids(self) -> list[str]:
        """The picked sample ids, or else those of the issue table's shown findings."""
        if self.ids_box.value:
            return list(self.ids_box.value)
        return self.issue_table.sample_ids if self.issue_table is not None else []

    def drop(self, ids: Iterable[str], reason: str = "dropped in review") -> None:
        """Record dropping these samples."""
        self._add("drop_samples", ids=list(ids), reason=reason)

    def move_to_prompts(self, ids: Iterable[str], reason: str = "") -> None:
        """Record removing these samples' target audio, keeping them as evaluation prompts."""
        self._add("move_to_prompts", ids=list(ids), reason=reason)

    def trim(
        self, ids: Iterable[str], threshold_db: float = 40, keep_ms: float = 100, audio: str = "all"
    ) -> None:
        """Record trimming edge silence of these samples' audio into new files (sources untouched)."""
        self._add("trim_silence", ids=list(ids), audio=audio, threshold_db=threshold_db, keep_ms=keep_ms)

    def set_speaker(self, ids: Iterable[str], speaker: str) -> None:
        """Record setting these samples' speaker."""
        self._add("set_speaker", ids=list(ids), speaker=speaker)

    def merge_speakers(self, speakers: Iterable[str], into: str) -> None:
        """Record renaming several speaker names to one."""
        self._add("merge_speakers", speakers=list(speakers), into=into)

    def remap(self, old: str, new: str) -> None:
        """Record rewriting audio paths that start with ``old`` to start with ``new``."""
        self._add("remap_prefix", old=old, new=new)

    def save(self, path: str | os.PathLike | None = None) -> Path:
        """Write the recipe YAML (default ``output_dir/fixes.yaml``); returns the path.

        Raises:
            ValueError: no path given and no ``output_dir``.
        """
        if path is None:
            if self.output_dir is None:
                raise ValueError("save() needs a path when FixActions has no output_dir")
            path = Path(self.output_dir) / "fixes.yaml"
        return self.recipe.save(path)

    def _add(self, op: str, **args: Any) -> None:
        # RecipeError (a ValueError) names the bad argument, e.g. an empty id list.
        step = self.recipe.add(op, **args)
        self.status.value = f"added step {len(self.recipe)}: {_esc(step.describe())}"
        self._show_recipe()

    def _clicked(self, action: Callable[[], Any]) -> None:
        try:
            action()
        except ValueError as exc:  # shown next to the buttons instead of lost in the widget log
            self.status.value = f'<span style="color:#b00">{_esc(exc)}</span>'

    def _saved(self, path: Path) -> None:
        self.status.value = f"saved {len(self.recipe)} steps to {_esc(path)}"

    def _default_reason(self) -> str:
        code = self.issue_table.filters.get("code") if self.issue_table is not None else None
        return f"flagged {code}" if code else "dropped in review"

    def _show_targets(self) -> None:
        ids = self.target_ids()
        source = (
            "picked" if self.ids_box.value else "issue table filter" if self.issue_table else "none picked"
        )
        shown = ", ".join(ids[:8]) + (f" and {len(ids) - 8} more" if len(ids) > 8 else "")
        self.targets.value = f"buttons act on {len(ids)} samples ({source}): {_esc(shown or 'none')}"

    def _show_recipe(self) -> None:
        self.view.value = self.static_html()

    def static_html(self) -> str:
        """The recipe as YAML in a ``<pre>`` (for reports)."""
        return f"<b>fix recipe</b> ({len(self.recipe)} steps)<pre>{_esc(self.recipe.to_yaml())}</pre>"
