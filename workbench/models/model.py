"""Higgs Audio v2 folders: offline loaders, the workbench marker, and merged saves.

A Higgs Audio v2 checkpoint in Hugging Face format is a folder with the language model
(``config.json``, ``model.safetensors``, ``generation_config.json``), the text tokenizer
(``tokenizer.json``, ``chat_template.jinja``) and ``processor_config.json``. The processor also
needs the *audio tokenizer* (a ``HiggsAudioV2TokenizerModel`` codec), but
``HiggsAudioV2Processor.save_pretrained`` stores only a reference to it (a hub id or a path).

Moving a model folder: a folder the workbench writes (the tiny model, a merged export) keeps its
audio tokenizer in ``<dir>/audio_tokenizer/`` and ``processor_config.json`` records that folder's
*absolute* path, because transformers resolves the reference against the current working
directory, not against the model folder. Plain ``AutoProcessor.from_pretrained(dir)`` therefore
works where the model was built but fails once the folder is moved (the recorded path is gone) and
silently loads the old copy after a copy. :func:`load_processor` (and
:func:`load_model_and_processor`) always prefer the ``audio_tokenizer/`` folder that travels with
the model, so they work after a move or copy and never write to the model folder. Such a folder
carries a ``workbench_model.json`` marker (:func:`read_marker`) saying what built it.

``load_model_and_processor("random-full")`` builds the full-size stack with random weights in
memory (:func:`workbench.models.random_full.make_random_full_model`), for benchmarks.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from workbench.files import write_json
from workbench.models.folder import (
    AUDIO_TOKENIZER_SUBDIR,
    HINT,
    ModelNotFoundError,
    audio_tokenizer_reference,
    locate_audio_tokenizer,
    resolve_model_path,
)
from workbench.models.random_full import RANDOM_FULL, make_random_full_model
from workbench.models.random_full import SAMPLE_RATE as SAMPLE_RATE  # the codec's rate, for callers

if TYPE_CHECKING:
    from transformers import HiggsAudioV2ForConditionalGeneration, HiggsAudioV2Processor

log = logging.getLogger(__name__)

MARKER_FILE = "workbench_model.json"
MARKER_FORMAT = 1
# Ending generation. transformers' Higgs generation appends ``config.eos_token_id`` once every
# codebook has emitted its stream eos, but stops only on ``generation_config.eos_token_id``. When
# the two differ, every clip runs to max_new_tokens and nothing sounds wrong (decoding cuts the
# audio at the first all-eos frame): only the time shows it (`workbench bench generate`). The
# released checkpoint's generation_config.json has eos 128001 (<|end_of_text|>, Llama's), the
# converted config 128009 (<|eot_id|>): every model built or imported here carries the model
# config's bos/eos/pad ids in its generation config too, and loading warns when they disagree.
END_IDS_HINT = (
    "set eos_token_id in generation_config.json to config.json's eos_token_id (<|eot_id|> for Higgs "
    "Audio v2); importing an original-layout checkpoint with the workbench does this"
)


def generation_stop_problem(config_eos: Any, generation_eos: Any) -> str | None:
    """Why generation would not stop when the audio ends, or None when it does.

    Args:
        config_eos: ``eos_token_id`` of the model config: the id appended once every codebook ended.
        generation_eos: ``eos_token_id`` of the generation config: the id(s) generation stops on.

    Returns:
        A sentence naming both ids, or None.
    """
    if config_eos is None:
        return "config.json has no eos_token_id: nothing marks the end of audio, so every generation runs to max_new_tokens"
    if isinstance(config_eos, (list, tuple)):
        return f"config.json's eos_token_id is a list {list(config_eos)}: the end of audio is marked by one id; give one"
    stops = generation_eos if isinstance(generation_eos, (list, tuple)) else [generation_eos]
    if config_eos in stops:
        return None
    return (
        f"generation will not stop before max_new_tokens: when every codebook has ended, transformers "
        f"appends the model config's eos_token_id {config_eos}, but stops only on the generation config's "
        f"eos_token_id {generation_eos}"
    )


def read_end_ids(model_dir: str | os.PathLike[str]) -> tuple[Any, Any]:
    """``(config eos, generation config eos)`` of a Hugging Face model folder, from its JSON files.

    Without ``generation_config.json``, transformers derives the generation config from the model
    config, so both are the config's.
    """
    folder = Path(model_dir)
    config_eos = json.loads((folder / "config.json").read_text()).get("eos_token_id")
    gen_file = folder / "generation_config.json"
    if not gen_file.is_file():
        return config_eos, config_eos
    return config_eos, json.loads(gen_file.read_text()).get("eos_token_id")


def state_dict_digest(module: torch.nn.Module) -> str:
    """SHA-256 over a module's state dict (names, dtypes, shapes and raw bytes).

    Args:
        module: Any torch module.

    Returns:
        A hex digest; equal digests mean bit-identical weights.
    """
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def read_marker(model_path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """Return the ``workbench_model.json`` marker of a local model folder, or None."""
    path = Path(model_path) / MARKER_FILE
    return json.loads(path.read_text()) if path.is_file() else None


# --------------------------------------------------------------------------- loading

_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf", ".ckpt")


def load_processor(model_path: str | os.PathLike[str]) -> HiggsAudioV2Processor:
    """Load the processor (text tokenizer, feature extractor, audio tokenizer) offline.

    Works after the model folder was moved or copied: when the audio tokenizer recorded in the
    processor config is not the one to use (typically ``<dir>/audio_tokenizer``), the small config
    files are copied to a temporary folder with the reference rewritten and loaded from there with
    transformers' own ``AutoProcessor``. The model folder is never modified.

    Args:
        model_path: A local model folder or a hub id in the local cache.

    Returns:
        The processor, with its audio tokenizer on the CPU in eval mode.

    Raises:
        ModelNotFoundError: The model, its processor files or its audio tokenizer are missing.
    """
    from transformers import AutoProcessor

    model_dir = resolve_model_path(model_path)
    reference = audio_tokenizer_reference(model_dir)
    if reference is None:
        raise ModelNotFoundError(f"{model_dir} has no processor_config.json with an audio tokenizer. {HINT}")
    config_name, recorded = reference
    location = locate_audio_tokenizer(model_dir, recorded)
    try:
        if location == recorded or Path(location) == Path(recorded).expanduser():
            processor = AutoProcessor.from_pretrained(model_dir, local_files_only=True)
        else:
            log.debug("audio tokenizer of %s: using %s instead of recorded %s", model_dir, location, recorded)
            with tempfile.TemporaryDirectory(prefix="workbench-processor-") as tmp:
                for file in model_dir.iterdir():
                    if file.is_file() and not file.name.endswith(_WEIGHT_SUFFIXES):
                        shutil.copyfile(file, Path(tmp) / file.name)
                config_file = Path(tmp) / config_name
                data = json.loads(config_file.read_text())
                (data if config_name.startswith("audio_") else data["audio_tokenizer"])[
                    "audio_tokenizer_name_or_path"
                ] = location
                write_json(config_file, data)
                processor = AutoProcessor.from_pretrained(tmp, local_files_only=True)
            processor.tokenizer.name_or_path = str(model_dir)
    except OSError as err:
        raise ModelNotFoundError(f"could not load the processor of {model_dir}: {err}. {HINT}") from err
    processor.audio_tokenizer.eval()
    return processor


def local_model_dir(model_path: str | os.PathLike[str]) -> Path:
    """The local Hugging Face folder of a model: :func:`resolve_model_path`, and an original-layout
    (``boson_multimodal``) checkpoint converted once, offline, and cached.

    Raises:
        ModelNotFoundError: Nothing usable exists locally.
    """
    from filelock import FileLock

    from workbench.audio import default_cache_dir
    from workbench.models.original_convert import import_original
    from workbench.models.original_format import is_original_checkpoint

    model_dir = resolve_model_path(model_path)
    if is_original_checkpoint(model_dir):
        # Every rank of a launch gets here at once: one process per machine converts, under a lock
        # (in the cache's locks/ folder); the others wait, then reuse its result (import_original finds it).
        locks = default_cache_dir() / "locks"
        locks.mkdir(parents=True, exist_ok=True)
        name = hashlib.sha256(str(model_dir).encode()).hexdigest()[:16]
        with FileLock(locks / f"converted-{name}.lock"):
            converted = import_original(model_dir)
        log.info(
            "%s is an original-layout Higgs Audio checkpoint; using its conversion %s", model_dir, converted
        )
        return converted
    return model_dir


def load_model_and_processor(
    model_path: str | os.PathLike[str],
    dtype: torch.dtype | str | None = None,
    device: torch.device | str | None = None,
) -> tuple[HiggsAudioV2ForConditionalGeneration, HiggsAudioV2Processor]:
    """Load a Higgs Audio v2 model and its processor, offline.

    Args:
        model_path: A local model folder, a hub id in the local cache, an original-layout
            (``boson_multimodal``) checkpoint folder (converted offline on first use and cached), or
            ``"random-full"`` (:func:`make_random_full_model`: full-size, random weights, in memory).
        dtype: Weight dtype for the LM (e.g. ``torch.bfloat16`` or ``"auto"``); None keeps the
            transformers default.
        device: Where to put the LM and the processor's audio tokenizer; None leaves them on CPU.

    Returns:
        ``(model, processor)``, the model in eval mode. A warning is logged when its config and
        generation config end ids disagree (:func:`generation_stop_problem`).

    Raises:
        ModelNotFoundError: The model or a part of it is missing locally.
    """
    from transformers import HiggsAudioV2ForConditionalGeneration

    if str(model_path) == RANDOM_FULL:
        return make_random_full_model(dtype=dtype, device=device)
    model_dir = local_model_dir(model_path)
    processor = load_processor(model_dir)
    kwargs: dict[str, Any] = {"local_files_only": True}
    if dtype is not None:
        kwargs["dtype"] = dtype
    try:
        model = HiggsAudioV2ForConditionalGeneration.from_pretrained(model_dir, **kwargs)
    except OSError as err:
        raise ModelNotFoundError(f"could not load the model weights of {model_dir}: {err}. {HINT}") from err
    if device is not None:
        model.to(device)
        processor.audio_tokenizer.to(device)
    model.eval()
    problem = generation_stop_problem(model.config.eos_token_id, model.generation_config.eos_token_id)
    if problem:
        log.warning("%s: %s. Fix: %s.", model_dir, problem, END_IDS_HINT)
    log.info(
        "loaded %s (%s, %d codebooks) on %s", model_dir, model.dtype, model.config.num_codebooks, model.device
    )
    return model, processor


def save_processor(processor: HiggsAudioV2Processor, out_dir: str | os.PathLike[str]) -> Path:
    """Save a processor with its audio tokenizer inside ``out_dir/audio_tokenizer`` (relocatable).

    ``HiggsAudioV2Processor.save_pretrained`` stores only a path to its audio tokenizer, so the
    codec is saved first and the processor records that copy.
    """
    out = Path(out_dir).expanduser().resolve()
    out.mkdir(parents=True, exist_ok=True)
    codec = processor.audio_tokenizer
    codec.save_pretrained(out / AUDIO_TOKENIZER_SUBDIR)
    previous = codec.name_or_path
    codec.name_or_path = str(out / AUDIO_TOKENIZER_SUBDIR)
    try:
        processor.save_pretrained(out)
    finally:
        codec.name_or_path = previous
    return out


def save_merged(
    model: torch.nn.Module, processor: HiggsAudioV2Processor, out_dir: str | os.PathLike[str]
) -> Path:
    """Merge a PEFT LoRA model into plain weights and save them with the processor.

    The folder loads with ``HiggsAudioV2ForConditionalGeneration.from_pretrained`` (no peft) and
    :func:`load_model_and_processor`. The PEFT model passed in is left unmerged.
    """
    import copy

    out = Path(out_dir).expanduser().resolve()
    merged = model
    if hasattr(model, "merge_and_unload"):  # a copy: merging in place would change the caller's model
        merged = copy.deepcopy(model).merge_and_unload()
    merged.save_pretrained(out)
    save_processor(processor, out)
    write_json(
        out / MARKER_FILE,
        {"format": MARKER_FORMAT, "kind": "merged", "audio_tokenizer": AUDIO_TOKENIZER_SUBDIR},
    )
    return out
