"""The one-time conversion of an original-layout checkpoint when every rank of a node loads it at once
(workbench.models.model.local_model_dir): one process converts under a lock, the others wait and reuse
it. Real processes, real tiny checkpoint, no mocks."""

from __future__ import annotations

import logging
import multiprocessing
import os
import traceback
from pathlib import Path

import pytest

from workbench.demo import make_tiny_model
from workbench.models.original_format import IMPORT_SIDECAR

PROCESSES = 4


def load_once(model_dir: str, start, results) -> None:
    """One rank: wait for the others, then resolve the model folder (converting it if needed)."""
    try:
        messages: list[str] = []

        class Collect(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                messages.append(record.getMessage())

        logger = logging.getLogger("workbench.models.original_convert")
        logger.addHandler(Collect())
        logger.setLevel(logging.INFO)
        from workbench.models.model import local_model_dir

        start.wait()
        folder = local_model_dir(model_dir)
        sidecar = os.stat(folder / IMPORT_SIDECAR)
        results.put(
            (
                str(folder),
                sum(m.startswith("converted original checkpoint") for m in messages),
                sum(m.startswith("reusing converted checkpoint") for m in messages),
                (sidecar.st_ino, sidecar.st_mtime_ns),
                None,
            )
        )
    except BaseException:
        results.put(("", 0, 0, None, traceback.format_exc()))


@pytest.fixture
def original_checkpoint(tmp_path: Path) -> Path:
    from transformers import HiggsAudioV2ForConditionalGeneration

    from workbench.models.original_convert import export_original

    tiny = make_tiny_model(tmp_path / "tiny", seed=0)
    return export_original(HiggsAudioV2ForConditionalGeneration.from_pretrained(tiny), tmp_path / "original")


def test_ranks_loading_an_original_checkpoint_convert_it_once(
    original_checkpoint: Path, isolated_cache: Path
) -> None:
    # Spawned (not forked) processes: the parent has used torch's thread pools. They inherit
    # WORKBENCH_CACHE_DIR=isolated_cache, the machine's cache folder where conversions go.
    context = multiprocessing.get_context("spawn")
    start, results = context.Barrier(PROCESSES), context.Queue()
    ranks = [
        context.Process(target=load_once, args=(str(original_checkpoint), start, results))
        for _ in range(PROCESSES)
    ]
    for rank in ranks:
        rank.start()
    outcomes = [results.get(timeout=300) for _ in ranks]
    for rank in ranks:
        rank.join(timeout=60)
    assert [o[4] for o in outcomes] == [None] * PROCESSES, [o[4] for o in outcomes if o[4]]
    folders = {o[0] for o in outcomes}
    assert len(folders) == 1 and Path(folders.pop()).parent == isolated_cache / "converted"
    # One process converted; the others waited at the lock and found its finished conversion.
    assert sum(o[1] for o in outcomes) == 1 and sum(o[2] for o in outcomes) == PROCESSES - 1, outcomes
    assert len({o[3] for o in outcomes}) == 1  # the same files, written once
    converted = [p for p in (isolated_cache / "converted").iterdir() if p.is_dir()]
    assert len(converted) == 1 and not [p for p in converted if p.name.startswith(".")]  # no leftovers
