"""Which models an evaluation compares: the base model, adapters, checkpoints and training runs.

:func:`resolve_candidates` turns the ``adapters`` parameter (adapter folders, ``checkpoint-N``
folders, or a training ``output_dir`` standing for its complete checkpoints and final adapter)
into an ordered list of :class:`Candidate`, the base model first.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workbench.training.checkpoints import (
    COMPLETE_MARKER,  # written into a checkpoint once it is completely saved
)

log = logging.getLogger(__name__)

ADAPTER_CONFIG = "adapter_config.json"


@dataclass(frozen=True)
class Candidate:
    """A model to evaluate: the base (``path`` None) or one adapter folder.

    Attributes:
        name: Unique display name (``base``, ``adapter``, ``checkpoint-40``; prefixed by the run
            folder when several runs are compared).
        path: The adapter folder (with ``adapter_config.json``), None for the base model.
        step: Training step of the weights, when known.
        run: The training output folder it belongs to, when known (one line per run in plots).
    """

    name: str
    path: str | None = None
    step: int | None = None
    run: str | None = None

    @property
    def is_base(self) -> bool:
        return self.path is None

    @property
    def slug(self) -> str:
        """The name as a folder name."""
        return re.sub(r"[^A-Za-z0-9._-]+", "_", self.name)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _checkpoint_step(folder: Path) -> int | None:
    match = re.fullmatch(r"checkpoint-(\d+)", folder.name)
    return int(match.group(1)) if match else None


def _final_step(run_dir: Path) -> int | None:
    """The step of ``run_dir/adapter`` from ``run.json`` written by :mod:`workbench.training.train`."""
    record = run_dir / "run.json"
    if not record.is_file():
        return None
    try:
        step = json.loads(record.read_text()).get("result", {}).get("global_step")
    except (json.JSONDecodeError, AttributeError):
        return None
    return int(step) if isinstance(step, int) else None


def _file_digest(folder: Path) -> str | None:
    weights = folder / "adapter_model.safetensors"
    if not weights.is_file():
        return None
    return hashlib.sha256(weights.read_bytes()).hexdigest()


def resolve_candidates(base_model: str, adapters: Sequence[str]) -> list[Candidate]:
    """The base model followed by every adapter to evaluate, in order.

    Args:
        base_model: The base model (only named here; loading happens in :func:`evaluate`).
        adapters: Each entry is an adapter folder (``adapter_config.json``), a ``checkpoint-N``
            folder, or a training ``output_dir``, which stands for its complete ``checkpoint-N``
            folders (those with ``workbench_complete.json``), ordered by step, then ``adapter/``.
            A checkpoint whose weights are byte-identical to the run's ``adapter/`` is evaluated
            once, as ``adapter``.

    Returns:
        ``[Candidate("base"), ...]``; names are unique.

    Raises:
        FileNotFoundError: an entry that does not exist or holds no adapter (names it).
    """
    found: list[Candidate] = []
    for entry in adapters:
        folder = Path(entry).expanduser()
        if not folder.is_dir():
            raise FileNotFoundError(f"adapters: {entry} is not a folder (working directory {os.getcwd()})")
        if (folder / ADAPTER_CONFIG).is_file():
            step = _checkpoint_step(folder)
            run = folder.parent if step is not None or folder.name == "adapter" else None
            if step is None and folder.name == "adapter":
                step = _final_step(folder.parent)
            if (
                step is not None
                and folder.name.startswith("checkpoint-")
                and not (folder / COMPLETE_MARKER).is_file()
            ):
                log.warning("%s has no %s: it may be incomplete", folder, COMPLETE_MARKER)
            found.append(
                Candidate(folder.name, str(folder.absolute()), step, str(run.absolute()) if run else None)
            )
            continue
        checkpoints = sorted(
            (s, d)
            for d in folder.glob("checkpoint-*")
            if (s := _checkpoint_step(d)) is not None and d.is_dir()
        )
        complete = [
            (s, d)
            for s, d in checkpoints
            if (d / COMPLETE_MARKER).is_file() and (d / ADAPTER_CONFIG).is_file()
        ]
        for s, d in checkpoints:
            if (s, d) not in complete:
                log.warning(
                    "skipping incomplete checkpoint %s (no %s or %s)", d, COMPLETE_MARKER, ADAPTER_CONFIG
                )
        final = folder / "adapter"
        has_final = (final / ADAPTER_CONFIG).is_file()
        if not complete and not has_final:
            raise FileNotFoundError(
                f"adapters: {entry} holds no adapter: no {ADAPTER_CONFIG}, no adapter/ and no complete checkpoint-N "
                "folder. Hint: give an adapter folder, a checkpoint-N folder or a training output_dir"
            )
        final_digest = _file_digest(final) if has_final else None
        run = str(folder.absolute())
        for s, d in complete:
            if final_digest is not None and _file_digest(d) == final_digest:
                log.info("%s has the same weights as %s: evaluated once, as adapter", d, final)
                continue
            found.append(Candidate(d.name, str(d.absolute()), s, run))
        if has_final:
            found.append(Candidate("adapter", str(final.absolute()), _final_step(folder), run))
    # Unique names: with several training runs every run's candidates carry its folder name; other
    # clashes (two folders named "adapter") get their parent folder's name.
    if len({c.run for c in found if c.run}) > 1:
        found = [dataclasses.replace(c, name=f"{Path(c.run).name}/{c.name}") if c.run else c for c in found]
    counts: dict[str, int] = {}
    for c in found:
        counts[c.name] = counts.get(c.name, 0) + 1
    named = []
    for c in found:
        name = c.name
        if counts[name] > 1 or name == "base":
            name = f"{Path(c.path).parent.name}/{c.name}"  # type: ignore[arg-type]
        named.append(dataclasses.replace(c, name=name))
    seen: set[str] = set()
    for c in named:
        if c.name in seen:
            raise ValueError(f"adapters: {c.path} is listed twice (or two runs share the name {c.name!r})")
        seen.add(c.name)
    return [Candidate("base", None, None, None), *named]
