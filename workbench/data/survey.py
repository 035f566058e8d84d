"""Look at source files before converting them: detected formats per file, and previews.

Backs notebook 01's format picker: ``survey_formats`` counts records per detected format in each
file, and ``preview`` converts the first few records under a chosen format and mapping, so a
person sees the effect of a choice before running the whole conversion.
"""

from __future__ import annotations

import itertools
import os
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from workbench.data import formats
from workbench.data.convert import Converter, ConvertOptions, Outcome, parse_remap
from workbench.data.readers import iter_records


@dataclass
class FileSurvey:
    """Records per detected format in one input (``None`` = no format matched, ``bad`` = unparseable)."""

    path: str
    formats: Counter = field(default_factory=Counter)
    total: int = 0
    bad: int = 0
    truncated: bool = False

    @property
    def main_format(self) -> str | None:
        known = [(n, k) for k, n in self.formats.items() if k is not None]
        return max(known)[1] if known else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "total": self.total,
            "bad": self.bad,
            "formats": {str(k): v for k, v in self.formats.items()},
            "truncated": self.truncated,
        }


def survey_formats(
    inputs: str | os.PathLike | Iterable[str | os.PathLike], limit: int | None = None
) -> list[FileSurvey]:
    """Count records per detected format in each input (the first ``limit`` records when given)."""
    paths = [inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs)
    surveys = []
    for path in paths:
        survey = FileSurvey(path=os.path.abspath(path))
        records = iter_records(path)
        for raw in itertools.islice(records, limit) if limit else records:
            survey.total += 1
            if raw.error is not None or not isinstance(raw.record, dict):
                survey.bad += 1
                continue
            survey.formats[raw.format_hint or formats.detect(raw.record)] += 1
        if limit and survey.total == limit:
            survey.truncated = next(records, None) is not None
        surveys.append(survey)
    return surveys


def preview(
    path: str | os.PathLike,
    *,
    format: str = "auto",
    n: int = 3,
    audio_root: str | None = None,
    remap: Iterable[str] = (),
    reference: str = "same-speaker",
    sharegpt_map: dict[str, str] | list[str] | None = None,
) -> list[Outcome]:
    """Convert the first ``n`` records of ``path`` under the given choices (nothing is written).

    Same-speaker references are chosen among the first few hundred records only, so a preview
    may pick a different reference than the full conversion.
    """
    from workbench.data.formats.sharegpt import parse_map

    options = ConvertOptions(
        format, audio_root, parse_remap(remap), reference, "error", parse_map(sharegpt_map)
    )
    converter = Converter(options)
    converter.collect_references(itertools.islice(iter_records(path), 500))
    return [converter.convert_one(raw) for raw in itertools.islice(iter_records(path), n)]
