"""The format picker of notebook 01: the source format per input file and the ShareGPT field mapping, with a live preview."""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

import ipywidgets as W

from workbench.data import formats
from workbench.data.convert import Outcome
from workbench.data.formats.sharegpt import DEFAULT_MAP, ROLES, SLOTS, parse_map
from workbench.data.survey import preview, survey_formats
from workbench.notebook.display import side_by_side, table_html
from workbench.notebook.widgets.view import View, esc, readable, scrolling

AUTO = "auto"


class FormatPicker(View):
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
        self.previews = {f: W.HTML(layout=scrolling("480px")) for f in self.files}
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
            return f'<div class="wb-note">preview failed: {esc(exc)}</div>'
        parts = []
        for o in outcomes:
            head = f"<b>{esc(o.raw.where())}</b>: {esc(o.kind)} (format {esc(o.format or 'none')})"
            reasons = "".join(
                f"<li>{esc(f.severity)} {esc(f.code)}: {esc(f.message)}</li>" for f in o.findings
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
            f'<b title="{esc(file)}">{esc(os.path.basename(file))}</b>: {survey.total}{more} records, '
            f"{survey.bad} unreadable; detected {esc(counts)}"
        )

    def _refresh(self, files: Iterable[str]) -> None:
        for f in files:
            self.previews[f].value = readable(self.preview_html(f))
        self.map_box.layout.display = "" if self.uses_sharegpt() else "none"

    def static_html(self) -> str:
        """Choices, detected formats and previews as plain HTML (for reports)."""
        parts = [
            f"<h4>{self._file_header(f)}; chosen format: {esc(self.choices[f])}</h4>{self.preview_html(f)}"
            for f in self.files
        ]
        if self.uses_sharegpt():
            rows = [{"slot": s, "role": r} for s, r in self.sharegpt_map.items()]
            parts.append(f"<b>ShareGPT field mapping</b>{table_html(rows)}")
        return "".join(parts)
