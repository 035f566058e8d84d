"""Merge and export: a LoRA adapter (or checkpoint) becomes a model other tools can load.

``workbench export ADAPTER -o OUT`` merges the adapter into its base model and writes plain
transformers weights plus the processor (``--format hf``, loadable by
``HiggsAudioV2ForConditionalGeneration.from_pretrained`` without peft), or the original
``boson_multimodal`` layout (``--format original``) for people on the original inference scripts.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

EXPORT_FORMATS = ("hf", "original")


def is_adapter_dir(path: str | os.PathLike) -> bool:
    return (Path(path) / "adapter_config.json").is_file()


def adapter_base_model(adapter_dir: str | os.PathLike) -> str | None:
    """The base model recorded in a PEFT adapter's config (``base_model_name_or_path``)."""
    config = json.loads((Path(adapter_dir) / "adapter_config.json").read_text())
    return config.get("base_model_name_or_path")


def export_dtype(model: str) -> Any:
    """The weight dtype an export keeps: the base's own (``"auto"``); bf16 for ``random-full``,
    which has no stored dtype and trains in bf16 at full size."""
    import torch

    from workbench.models.model import RANDOM_FULL

    return torch.bfloat16 if model == RANDOM_FULL else "auto"


def export_memory_need(model: str) -> int | None:
    """Bytes of memory merging ``model`` takes: its weights in :func:`export_dtype` plus headroom
    (None: unknown)."""
    import torch

    from workbench.models.memory import HEADROOM_BYTES, parameter_count

    count = parameter_count(model)
    if count is None:
        return None
    dtype = export_dtype(model)
    if dtype == "auto":
        from transformers import AutoConfig

        from workbench.models.folder import resolve_model_path

        stored = getattr(
            AutoConfig.from_pretrained(resolve_model_path(model), local_files_only=True), "dtype", None
        )
        dtype = getattr(torch, str(stored).replace("torch.", ""), torch.float32) if stored else torch.float32
    return count * torch.empty((), dtype=dtype).element_size() + HEADROOM_BYTES


def load_merged(source: str | os.PathLike, base_model: str | None = None) -> tuple[Any, Any, str]:
    """Load ``source`` (an adapter/checkpoint folder, or a full model folder) as one merged model.

    Weights keep the base's dtype (:func:`export_dtype`). Before anything is loaded, the memory
    it takes is checked against what this machine has available.

    Returns:
        ``(model, processor, base_path)``; ``base_path`` is where tokenizer files come from.

    Raises:
        FileNotFoundError: ``source`` or the base model cannot be found (named, with a hint).
        workbench.models.memory.InsufficientMemoryError: the merge would not fit in memory here.
    """
    from workbench.models.memory import check_fits
    from workbench.models.model import load_model_and_processor

    source = str(source)
    if not os.path.exists(source):
        raise FileNotFoundError(f"export: {source} not found (an adapter/, checkpoint-N/ or model folder)")
    base = source
    if is_adapter_dir(source):
        base = base_model or adapter_base_model(source) or ""
        if not base:
            raise FileNotFoundError(
                f"export: {source} does not record its base model. Hint: pass --base MODEL."
            )
    check_fits(
        export_memory_need(base),
        f"export: merging {source} into {base}",
        "run `workbench export` on a machine with more memory (a GPU node has it); the adapter itself "
        "needs no export to be used: `workbench generate --adapter` and notebook 05 load it onto the base model.",
    )
    model, processor = load_model_and_processor(base, dtype=export_dtype(base))
    if base == source:
        return model, processor, source
    from peft import PeftModel

    merged = PeftModel.from_pretrained(model, source).merge_and_unload()
    return merged, processor, base


def export(
    source: str | os.PathLike,
    output: str | os.PathLike,
    *,
    format: str = "hf",
    base_model: str | None = None,
    overwrite: bool = False,
) -> Path:
    """Merge ``source`` into its base model and write it to ``output`` in ``format``.

    Raises:
        ValueError: an unknown format.
        FileExistsError: ``output`` exists and is not empty, unless ``overwrite``.
    """
    if format not in EXPORT_FORMATS:
        raise ValueError(f"export format {format!r} is unknown; expected one of {', '.join(EXPORT_FORMATS)}")
    out = Path(output)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise FileExistsError(
            f"{out} exists and is not empty. Hint: pass --overwrite or choose another folder."
        )
    model, processor, base = load_merged(source, base_model)
    if format == "hf":
        from workbench.models.model import save_merged

        path = save_merged(model, processor, out)
    else:
        from workbench.models.original_convert import export_original

        path = export_original(model, out, source_dir=base if os.path.isdir(base) else None, overwrite=True)
    log.info("exported %s (%s) to %s", source, format, path)
    return Path(path)
