"""Higgs LoRA workbench: prepare, inspect, convert, validate, train and evaluate voice datasets.

The package is cut by stage, in the order data flows; a stage imports only the stages before it::

    workbench.files       the one atomic file writer and table writer, under everything
    workbench.offline     the one lookup of a model folder or cached hub id (never the network)
    workbench.audio       the one clip reader (as transformers reads audio) and silence detector
    workbench.prepare     long recordings -> clip folders with transcripts (stage 00)
    workbench.data        source files and clip folders -> canonical samples, findings, fixes, split
    workbench.models      model folders -> loaded models (original layout, exported, random full-size)
    workbench.training    samples + model -> audio codes, batches, a LoRA adapter; the launcher
    workbench.evaluation  model + adapters -> generated audio, metrics, the best checkpoint
    workbench.notebook    the notebooks' views and runs (papermill, each launched rank, reports)
    workbench.demo        tiny random models, the demo dataset and recordings, the demo pipeline
    workbench.cli, workbench.doctor, workbench.bench   on top

One module per step, each with a function of the same name as its CLI command::

    from workbench.prepare.pipeline import prepare          # workbench prepare
    from workbench.data.convert import convert              # workbench convert
    from workbench.data.validate import validate            # workbench validate
    from workbench.data.split import split                  # workbench split
    from workbench.data.inspection import inspect           # workbench inspect
    from workbench.data.fixes import fix                    # workbench fix
    from workbench.training.launch import train_launch      # workbench train
    from workbench.evaluation.evaluate import evaluate      # workbench evaluate
    from workbench.models.export import export              # workbench export
    from workbench.evaluation.generate import speak         # workbench generate

    report = convert(["data/train.jsonl"], "work/converted.jsonl")
    checked = validate("work/converted.jsonl")
    split("work/converted.jsonl", "work/train.jsonl", "work/val.jsonl", by="speaker")

``import workbench`` itself loads nothing heavy (no torch), and neither does importing a stage:
its public names load their modules on first use (:func:`lazy_exports`).
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable
from typing import Any

__version__ = "0.1.0"

# Nothing reaches the network at run time: Hugging Face libraries stay offline (PEFT would otherwise
# look a base model's config.json up on the hub at every adapter save). HF_HUB_OFFLINE=0 opts out.
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def lazy_exports(
    package: str, **modules: tuple[str, ...]
) -> tuple[list[str], Callable[[str], Any], Callable[[], list[str]]]:
    """``__all__``, ``__getattr__`` and ``__dir__`` of a stage's ``__init__``: its public names, loaded on first use.

    A stage's light modules (``workbench.training.params``, read by every launched rank) must not
    pull in its heavy ones (torch, transformers) through the package. An export never has the
    name of one of the stage's modules: importing that module would set the package attribute to
    the module and hide the exported name.

    Args:
        package: the stage, ``__name__`` of its ``__init__``.
        modules: each module of ``package`` with the public names it defines.

    Returns:
        ``(__all__, __getattr__, __dir__)`` for the package module.

    Examples:
        >>> __all__, __getattr__, __dir__ = lazy_exports(__name__, codes=("CodesCache",))  # doctest: +SKIP
    """
    exports = {name: module for module, names in modules.items() for name in names}

    def __getattr__(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{exports[name]}"), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(exports))

    return sorted(exports), __getattr__, __dir__
