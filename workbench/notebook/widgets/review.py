"""The review of notebook 03: findings filterable by code, severity and speaker, and the fix buttons that act on them.

:class:`IssueTable` shows and exports the findings (CSV); :class:`FixActions` records fixes for
the shown (or picked) samples in a :class:`workbench.data.fixes.FixRecipe`, which ``workbench fix``
replays; nothing is changed before.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import ipywidgets as W

from workbench.data.findings import Finding
from workbench.data.fixes import TRIM_AUDIO_CHOICES, FixRecipe
from workbench.data.sample import Sample
from workbench.data.tables import finding_rows
from workbench.files import csv_text, write_text
from workbench.notebook.display import table_html
from workbench.notebook.widgets.view import View, esc, readable, scrolling

ALL = "(all)"
COLUMNS = ("severity", "code", "sample_id", "speaker", "message", "hint", "source_file", "source_index")
CSV_COLUMNS = (*COLUMNS, "source_line", "field")


def _filter_options(values: Iterable[str | None]) -> list[tuple[str, str]]:
    counts = Counter(v for v in values if v)
    return [(ALL, ALL)] + [(f"{v} ({n})", v) for v, n in sorted(counts.items())]


class IssueTable(View):
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
        self.table = W.HTML(layout=scrolling("600px"))
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
        return write_text(path, csv_text(self.filtered_rows, CSV_COLUMNS))  # CSV whatever the name

    def _pick(self, key: str, value: str) -> None:
        self.set_filter(**{**self.filters, key: None if value == ALL else value})

    def _export_clicked(self) -> None:
        path = self.export_csv(self.csv_box.value)
        self.export_status.value = f"wrote {len(self.filtered)} rows to {esc(Path(path).resolve())}"

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
        self.count.value = f"<b>{esc(self.count_text())}</b>"
        self.table.value = readable(table_html(self.filtered_rows, columns=COLUMNS))
        for callback in self._callbacks:
            callback(self)

    def static_html(self) -> str:
        """The count and the table of shown findings (for reports)."""
        return f"<p><b>{esc(self.count_text())}</b></p>{table_html(self.filtered_rows, columns=COLUMNS)}"


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
        self.status.value = f"added step {len(self.recipe)}: {esc(step.describe())}"
        self._show_recipe()

    def _clicked(self, action: Callable[[], Any]) -> None:
        try:
            action()
        except ValueError as exc:  # shown next to the buttons instead of lost in the widget log
            self.status.value = f'<span style="color:#b00">{esc(exc)}</span>'

    def _saved(self, path: Path) -> None:
        self.status.value = f"saved {len(self.recipe)} steps to {esc(path)}"

    def _default_reason(self) -> str:
        code = self.issue_table.filters.get("code") if self.issue_table is not None else None
        return f"flagged {code}" if code else "dropped in review"

    def _show_targets(self) -> None:
        ids = self.target_ids()
        source = (
            "picked" if self.ids_box.value else "issue table filter" if self.issue_table else "none picked"
        )
        shown = ", ".join(ids[:8]) + (f" and {len(ids) - 8} more" if len(ids) > 8 else "")
        self.targets.value = f"buttons act on {len(ids)} samples ({source}): {esc(shown or 'none')}"

    def _show_recipe(self) -> None:
        self.view.value = self.static_html()

    def static_html(self) -> str:
        """The recipe as YAML in a ``<pre>`` (for reports)."""
        return f"<b>fix recipe</b> ({len(self.recipe)} steps)<pre>{esc(self.recipe.to_yaml())}</pre>"
