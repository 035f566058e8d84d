"""Per-sample rows: the sortable, filterable table behind the notebooks' views and CSV exports.

Rows are written with :func:`workbench.files.write_table` (CSV, JSON or JSON Lines by suffix).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from workbench.data.contract import check_sample
from workbench.data.findings import Finding
from workbench.data.probe import probe_many
from workbench.data.sample import Sample

ROW_COLUMNS = (
    "id",
    "speaker",
    "format",
    "kind",
    "text",
    "duration",
    "sample_rate",
    "channels",
    "chars_per_second",
    "target_audio",
    "reference_audio",
    "source",
)


def sample_rows(samples: Iterable[Sample], probe: bool = True) -> list[dict[str, Any]]:
    """One dict per sample (columns :data:`ROW_COLUMNS`); audio facts come from the cached probe."""
    samples = list(samples)
    targets = {s.id: (s.target_audio() or [None])[-1] for s in samples}
    infos = probe_many([p for p in targets.values() if p]) if probe else {}
    rows = []
    for s in samples:
        target = targets[s.id]
        info = infos.get(target) if target else None
        text = s.target_text() or ""
        duration = info.duration if info is not None and info.readable else None
        rows.append(
            {
                "id": s.id,
                "speaker": s.speaker,
                "format": s.misc.get("source_format"),
                "kind": "trainable" if check_sample(s).trainable else "prompt",
                "text": text,
                "duration": duration,
                "sample_rate": info.sample_rate if info is not None else None,
                "channels": info.channels if info is not None else None,
                "chars_per_second": len(text) / duration if duration else None,
                "target_audio": target,
                "reference_audio": (s.reference_audio() or [None])[0],
                "source": s.provenance(),
            }
        )
    return rows


def finding_rows(
    findings: Iterable[Finding], speakers: dict[str, str | None] | None = None
) -> list[dict[str, Any]]:
    """Findings as table rows, with the sample's speaker when known (for filtering)."""
    rows = []
    for f in findings:
        row = f.to_dict()
        row["speaker"] = (speakers or {}).get(f.sample_id or "")
        rows.append(row)
    return rows
