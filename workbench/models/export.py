"""Merge and export: a LoRA adapter (or checkpoint) becomes a model other tools can load.

``workbench export ADAPTER -o OUT`` merges the adapter into its base model and writes the model
family's own layout (``--format hf``): for Higgs Audio v2 plain transformers weights plus the
processor (loadable by ``HiggsAudioV2ForConditionalGeneration.from_pretrained`` without peft), for
Higgs TTS 3 the release layout that vLLM-Omni and SGLang-Omni load, with its licence notice. For
Higgs Audio v2, ``--format original`` writes the original ``boson_multimodal`` layout for people on
the original inference scripts.
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
        from workbench.models.folder import resolve_model_path

        config = json.loads((resolve_model_path(model) / "config.json").read_text())
        stored = next(
            (
                c.get(k)
                for c in (config, config.get("text_config") or {})
                for k in ("dtype", "torch_dtype")
                if c.get(k)
            ),
            None,
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
    from workbench.models.families import load_model_and_processor
    from workbench.models.memory import check_fits

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

    from workbench.models.peft_wrapping import peft_wrapping

    with peft_wrapping():
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
    from workbench.models.families import detect_family, family_for

    named_base = base_model or (adapter_base_model(source) if is_adapter_dir(source) else None) or str(source)
    if (
        format == "original"
        and os.path.exists(str(source))
        and detect_family(named_base).name != "higgs-audio-v2"
    ):
        raise ValueError(
            "export format 'original' is the boson_multimodal layout of Higgs Audio v2; a Higgs TTS 3 model "
            "exports its release layout (--format hf), which vLLM-Omni and SGLang-Omni load"
        )
    model, processor, base = load_merged(source, base_model)
    if format == "hf":
        family = family_for(model)
        path = family.save_merged(model, processor, out)
        family.write_notices(path, base if os.path.isdir(base) else None)
    else:
        from workbench.models.original_convert import export_original

        path = export_original(model, out, source_dir=base if os.path.isdir(base) else None, overwrite=True)
    log.info("exported %s (%s) to %s", source, format, path)
    return Path(path)
