"""The Higgs TTS 3 release layout: load a folder (or cached hub id) and write one.

A release folder (``bosonai/higgs-tts-3-4b``) holds ``config.json``, ``tokenizer.json``,
``tokenizer_config.json`` and ``model.safetensors`` (or shards with ``model.safetensors.index.json``).
Its weights are named::

    body.layers.N.*, body.norm.weight                     Qwen3 layers and final norm
    tied.embedding.text_embedding.weight                  text embedding (also the text head)
    tied.embedding.modality_embeddings.0.embedding.weight fused audio table (N * V, D), also the audio head
    tied.embedding.modality_embeddings.0.model.*          the codec (HiggsAudioV2TokenizerModel)

A checkpoint may also hold copies of the tied tables as ``tied.head.modality_heads.0.weight`` and
``tied.head.text_head.weight``; the release has none, and loading skips them.

:func:`load_release` renames the weights onto :class:`HiggsTTS3ForConditionalGeneration` and finds
the codec in ``<dir>/audio_tokenizer/``, else a cached ``bosonai/higgs-audio-v2-tokenizer``, else the
bundled ``...model.*`` weights with the released codec config. :func:`save_release` writes the same
layout (the tokenizer with ``save_pretrained``, the codec both bundled and in ``audio_tokenizer/``)
with the licence notice (:func:`write_notice`), atomically. Given the base model's folder, it starts
``config.json`` from the base's, writes the ``tied.head.*`` copies only when the base's weights have
them, and copies the base's other non-weight files as they are (:func:`copy_base_files`).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from workbench.files import atomic_folder, write_json, write_text
from workbench.models.folder import (
    AUDIO_TOKENIZER_SUBDIR,
    HINT,
    ModelNotFoundError,
    resolve_model_path,
    safetensors_keys,
    weight_files,
)
from workbench.models.higgs_tts3.configuration import MODEL_TYPE, HiggsTTS3Config
from workbench.models.higgs_tts3.modeling import HiggsTTS3ForConditionalGeneration
from workbench.models.higgs_tts3.processing import HiggsTTS3Processor, load_tokenizer
from workbench.offline import cached_hub_folder

log = logging.getLogger(__name__)

HUB_ID = "bosonai/higgs-tts-3-4b"
HUB_CODEC = "bosonai/higgs-audio-v2-tokenizer"
MARKER_FILE = "workbench_model.json"  # as workbench.models.model writes it
TEXT_EMBEDDING = "tied.embedding.text_embedding.weight"
AUDIO_EMBEDDING = "tied.embedding.modality_embeddings.0.embedding.weight"
AUDIO_HEAD = "tied.head.modality_heads.0.weight"
TEXT_HEAD = "tied.head.text_head.weight"
HEAD_TABLES = {AUDIO_HEAD: AUDIO_EMBEDDING, TEXT_HEAD: TEXT_EMBEDDING}  # head copy -> its tied table
CODEC_PREFIX = "tied.embedding.modality_embeddings.0.model."
# In the release's bundled codec but not in transformers' module (HuBERT's unused mask embedding).
CODEC_IGNORED_KEYS = ("semantic_model.masked_spec_embed",)
LICENSE_NAME = "Boson Higgs TTS 3 Research and Non-Commercial License"
NOTICE_STATEMENT = "Derived from Higgs TTS 3, licensed from Boson AI USA, Inc."
NOTICE_FILE = "NOTICE"
# Base-folder files the export does not copy: it writes them from the model (config, weights,
# marker), write_notice handles the licence files, and the model card describes the base.
BASE_SKIPPED_FILES = ("config.json", MARKER_FILE)
BASE_SKIPPED_PREFIXES = ("LICENSE", "NOTICE", "README")
WEIGHT_SUFFIXES = (
    ".safetensors",
    ".index.json",
    ".bin",
    ".pt",
    ".pth",
    ".ckpt",
    ".h5",
    ".msgpack",
    ".gguf",
    ".onnx",
)


# --------------------------------------------------------------------------- names


def release_state_dict(
    model: HiggsTTS3ForConditionalGeneration, codec: Any = None, heads: Iterable[str] = ()
) -> dict[str, torch.Tensor]:
    """The model's (and codec's) tensors under the release's names.

    Works on the meta device, for a key-and-shape table without memory.

    Args:
        model: A plain (merged, unwrapped) model.
        codec: The ``HiggsAudioV2TokenizerModel`` to bundle, or None.
        heads: ``tied.head.*`` names (:data:`HEAD_TABLES`) to add, each a separate copy of its tied
            table (safetensors stores no shared tensors).

    Returns:
        ``{release name: tensor}``.

    Raises:
        ValueError: A weight the release has no name for, or an unknown head name.
    """
    tensors: dict[str, torch.Tensor] = {}
    for name, tensor in model.state_dict().items():
        if name.startswith("model.embed_tokens."):
            tensors["tied.embedding.text_embedding." + name.removeprefix("model.embed_tokens.")] = tensor
        elif name.startswith("model."):
            tensors["body." + name.removeprefix("model.")] = tensor
        elif name.startswith("audio_codebooks."):
            tensors[
                "tied.embedding.modality_embeddings.0.embedding." + name.removeprefix("audio_codebooks.")
            ] = tensor
        else:
            raise ValueError(
                f"{name}: a weight the Higgs TTS 3 release has no name for (is the model merged?)"
            )
    for head in heads:
        if head not in HEAD_TABLES:
            raise ValueError(f"{head}: not a head of the Higgs TTS 3 release ({', '.join(HEAD_TABLES)})")
        tensors[head] = tensors[HEAD_TABLES[head]].clone()
    if codec is not None:
        tensors.update({CODEC_PREFIX + k: v for k, v in codec.state_dict().items()})
    return tensors


def release_layout(
    model: HiggsTTS3ForConditionalGeneration, codec: Any = None, heads: Iterable[str] = ()
) -> dict[str, tuple[int, ...]]:
    """``{release name: shape}`` of :func:`release_state_dict` (use a meta-device model at full size)."""
    return {name: tuple(t.shape) for name, t in release_state_dict(model, codec, heads).items()}


# --------------------------------------------------------------------------- loading


def read_config(folder: Path) -> HiggsTTS3Config:
    """The :class:`HiggsTTS3Config` of a release folder's ``config.json``.

    Raises:
        ModelNotFoundError: The config is not Higgs TTS 3's.
    """
    data = json.loads((folder / "config.json").read_text())
    if data.get("model_type") != MODEL_TYPE:
        raise ModelNotFoundError(
            f"{folder / 'config.json'}: model_type {data.get('model_type')!r} is not Higgs TTS 3 ({MODEL_TYPE!r})"
        )
    return HiggsTTS3Config.from_dict(data)


def _bundled_codec(folder: Path) -> Any:
    """The codec from the ``tied.embedding.modality_embeddings.0.model.*`` weights, or None."""
    from safetensors import safe_open
    from transformers import HiggsAudioV2TokenizerConfig, HiggsAudioV2TokenizerModel

    from workbench.models.random_full import FULL_CODEC_OVERRIDES

    state = {}
    for file in weight_files(folder):
        with safe_open(str(file), framework="pt") as handle:
            for key in handle.keys():  # noqa: SIM118 (safe_open is not a dict)
                if key.startswith(CODEC_PREFIX):
                    state[key.removeprefix(CODEC_PREFIX)] = handle.get_tensor(key)
    if not state:
        return None
    for key in CODEC_IGNORED_KEYS:
        state.pop(key, None)
    config = HiggsAudioV2TokenizerConfig(**FULL_CODEC_OVERRIDES)
    codebook = state.get("quantizer.quantizers.0.codebook.embed")
    expected = (config.codebook_size, config.codebook_dim)
    if codebook is None or tuple(codebook.shape) != expected:
        raise ModelNotFoundError(
            f"the codec bundled in {folder} is not the released codec (first codebook "
            f"{None if codebook is None else tuple(codebook.shape)}, expected {expected}). Hint: put its codec in "
            f"{folder / AUDIO_TOKENIZER_SUBDIR} or the local cache ({HUB_CODEC})"
        )
    codec = HiggsAudioV2TokenizerModel(config)
    try:
        missing, unexpected = codec.load_state_dict(state, strict=False)
    except RuntimeError as err:  # shape mismatches
        raise ModelNotFoundError(
            f"the codec bundled in {folder} does not fit the released codec config: {err}"
        ) from err
    if missing:
        raise ModelNotFoundError(
            f"the codec bundled in {folder} does not fit the released codec config: {len(missing)} of its weights "
            f"are missing (e.g. {sorted(missing)[:3]}). Hint: put the codec in {folder / AUDIO_TOKENIZER_SUBDIR} "
            f"or the local cache ({HUB_CODEC})"
        )
    if unexpected:
        log.warning(
            "%s: %d bundled codec weights unused, e.g. %s", folder, len(unexpected), sorted(unexpected)[:3]
        )
    return codec


def load_codec(folder: Path) -> Any:
    """The codec of a release folder: ``audio_tokenizer/``, else the cached hub codec, else bundled.

    Raises:
        ModelNotFoundError: None of the three exists.
    """
    from transformers import HiggsAudioV2TokenizerModel

    bundled = folder / AUDIO_TOKENIZER_SUBDIR
    if (bundled / "config.json").is_file():
        return HiggsAudioV2TokenizerModel.from_pretrained(bundled, local_files_only=True).eval()
    cached = cached_hub_folder(HUB_CODEC)
    if cached is not None:
        return HiggsAudioV2TokenizerModel.from_pretrained(cached, local_files_only=True).eval()
    codec = _bundled_codec(folder)
    if codec is None:
        raise ModelNotFoundError(
            f"no codec for {folder}: no {bundled}, {HUB_CODEC} is not in the local cache, and the weights bundle "
            f"no {CODEC_PREFIX}* tensors. {HINT}"
        )
    return codec.eval()


def load_processor(model_path: str | os.PathLike[str]) -> HiggsTTS3Processor:
    """The processor (tokenizer, codec on the CPU in eval mode) of a release folder or cached hub id.

    Raises:
        ModelNotFoundError: A missing folder, tokenizer or codec, or a tokenizer without v3's tokens.
    """
    folder = resolve_model_path(model_path)
    config = read_config(folder)
    codec = load_codec(folder)
    if int(codec.config.num_quantizers) != config.num_codebooks:
        raise ModelNotFoundError(
            f"the codec of {folder} has {codec.config.num_quantizers} codebooks, the model {config.num_codebooks}"
        )
    return HiggsTTS3Processor(load_tokenizer(folder), codec, config.codebook_size, source=str(folder))


def load_release(
    model_path: str | os.PathLike[str],
    dtype: torch.dtype | str | None = None,
    device: torch.device | str | None = None,
) -> tuple[HiggsTTS3ForConditionalGeneration, HiggsTTS3Processor]:
    """Load a Higgs TTS 3 release folder (or cached hub id) offline: ``(model in eval mode, processor)``.

    Args:
        model_path: A folder in the release layout, or a hub id in the local cache.
        dtype: Weight dtype of the model (``"auto"``: the checkpoint's); the codec stays float32.
        device: Where to put the model and the codec; None: the CPU.

    Raises:
        ModelNotFoundError: A missing part (config, tokenizer, weights, codec), named with a hint.
    """
    folder = resolve_model_path(model_path)
    processor = load_processor(folder)
    if not weight_files(folder):
        raise ModelNotFoundError(f"{folder} has no model.safetensors (or shards with their index). {HINT}")
    kwargs: dict[str, Any] = {"local_files_only": True, "output_loading_info": True}
    if dtype is not None:
        kwargs["dtype"] = getattr(torch, dtype) if isinstance(dtype, str) and dtype != "auto" else dtype
    try:
        model, info = HiggsTTS3ForConditionalGeneration.from_pretrained(
            folder, config=read_config(folder), **kwargs
        )
    except OSError as err:
        raise ModelNotFoundError(f"could not load the weights of {folder}: {err}. {HINT}") from err
    if info.get("missing_keys"):
        missing = sorted(info["missing_keys"])
        raise ModelNotFoundError(
            f"{folder}: {len(missing)} weights missing from its checkpoint, e.g. {missing[:3]}"
        )
    if device is not None:
        model.to(device)
        processor.audio_tokenizer.to(device)
    log.info("loaded Higgs TTS 3 %s (%s) on %s", folder, model.dtype, model.device)
    return model.eval(), processor


# --------------------------------------------------------------------------- saving


def write_notice(folder: str | os.PathLike[str], base_dir: str | os.PathLike[str] | None = None) -> Path:
    """Write the licence ``NOTICE`` a derived model or adapter must carry, and copy the base's licence.

    Args:
        folder: Where to write (an adapter or model folder).
        base_dir: The base model's folder: its ``LICENSE*`` files are copied as they are, its
            ``NOTICE*`` texts are appended to ours.

    Returns:
        The ``NOTICE`` file.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    text = [
        NOTICE_STATEMENT,
        "",
        f"Licence: {LICENSE_NAME}. Use, fine-tuning and redistribution are allowed for research and",
        "non-commercial use only; a redistributed adapter or merged model must carry the licence and this",
        "notice. The licence text is the one published with the base model (bosonai/higgs-tts-3-4b).",
    ]
    if base_dir is not None and Path(base_dir).is_dir():
        for file in sorted(Path(base_dir).iterdir()):
            if not file.is_file():
                continue
            if file.name.upper().startswith("LICENSE"):
                shutil.copyfile(file, folder / file.name)
            elif file.name.upper().startswith("NOTICE"):
                text += [
                    "",
                    f"--- {file.name} of the base model ---",
                    file.read_text(errors="replace").rstrip(),
                ]
    return write_text(folder / NOTICE_FILE, "\n".join(text) + "\n")


def base_heads(base_dir: str | os.PathLike[str] | None) -> tuple[str, ...]:
    """The ``tied.head.*`` names the base folder's weights hold, read from the safetensors headers.

    Args:
        base_dir: The base model's folder, or None (then no heads).
    """
    if base_dir is None or not Path(base_dir).is_dir():
        return ()
    keys = set(safetensors_keys(Path(base_dir)))
    return tuple(head for head in HEAD_TABLES if head in keys)


def base_config(base_dir: str | os.PathLike[str] | None) -> dict[str, Any] | None:
    """The base folder's ``config.json`` as a dict, or None (no folder, no file, not Higgs TTS 3)."""
    if base_dir is None or not (Path(base_dir) / "config.json").is_file():
        return None
    data = json.loads((Path(base_dir) / "config.json").read_text())
    return data if isinstance(data, dict) and data.get("model_type") == MODEL_TYPE else None


def release_config_dict(
    model: HiggsTTS3ForConditionalGeneration, base_dir: str | os.PathLike[str] | None = None
) -> dict[str, Any]:
    """The exported ``config.json``: :meth:`HiggsTTS3Config.release_dict` over the base's, with the model's dtype.

    ``torch_dtype`` is set at the top, and every ``torch_dtype`` or ``dtype`` key of the result
    (top level and ``text_config``) names the model's dtype.

    Args:
        model: The model to export.
        base_dir: The base model's folder: the keys of its ``config.json`` are kept (:func:`base_config`).
    """
    config = model.config.release_dict(base_config(base_dir))
    dtype = str(model.dtype).removeprefix("torch.")
    config["torch_dtype"] = dtype
    for section in (config, config["text_config"]):
        for key in ("torch_dtype", "dtype"):
            if key in section:
                section[key] = dtype
    return config


def copy_base_files(base_dir: str | os.PathLike[str] | None, folder: Path) -> list[str]:
    """Copy the base folder's top-level files the export does not make from the model, as they are.

    Tokenizer files, ``generation_config.json``, chat templates and the like keep the base's exact
    bytes, replacing what the export wrote. Not copied: weights and their indexes, ``config.json``,
    ``workbench_model.json``, sub-folders, hidden files, ``LICENSE*`` and ``NOTICE*``
    (:func:`write_notice` handles them) and ``README*`` (the base's model card).

    Args:
        base_dir: The base model's folder, or None (nothing is copied).
        folder: The folder being written.

    Returns:
        The names copied.
    """
    if base_dir is None or not Path(base_dir).is_dir():
        return []
    copied = []
    for file in sorted(Path(base_dir).iterdir()):
        name = file.name
        if (
            not file.is_file()
            or name.startswith(".")
            or name in BASE_SKIPPED_FILES
            or name.upper().startswith(BASE_SKIPPED_PREFIXES)
            or name.endswith(WEIGHT_SUFFIXES)
        ):
            continue
        shutil.copyfile(file, folder / name)
        copied.append(name)
    return copied


def write_release_files(
    model: HiggsTTS3ForConditionalGeneration,
    processor: HiggsTTS3Processor,
    folder: Path,
    marker: dict[str, Any] | None = None,
    base_dir: str | os.PathLike[str] | None = None,
) -> None:
    """Write the release layout into an existing (empty) folder, without the notice.

    Args:
        model: A plain model.
        processor: Its processor (the tokenizer is written with ``save_pretrained``, the codec too).
        folder: Where to write.
        marker: Extra fields of ``workbench_model.json``.
        base_dir: The base model's folder: ``config.json`` keeps the keys of the base's
            (:func:`release_config_dict`), the heads its weights have are written
            (:func:`base_heads`) and its other files are copied (:func:`copy_base_files`).
    """
    from safetensors.torch import save_file

    write_json(folder / "config.json", release_config_dict(model, base_dir))
    codec = processor.audio_tokenizer
    tensors = release_state_dict(model, codec, heads=base_heads(base_dir))
    tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})
    processor.tokenizer.save_pretrained(folder)
    codec.save_pretrained(folder / AUDIO_TOKENIZER_SUBDIR)
    copy_base_files(base_dir, folder)
    entry = {
        "format": 1,
        "family": "higgs-tts-3",
        "kind": "release",
        "audio_tokenizer": AUDIO_TOKENIZER_SUBDIR,
    }
    write_json(folder / MARKER_FILE, {**entry, **(marker or {})})


def check_writable(out: Path, overwrite: bool) -> None:
    """Refuse to replace a non-empty folder unless asked (``FileExistsError`` names it)."""
    if out.exists() and not (out.is_dir() and not any(out.iterdir())) and not overwrite:
        raise FileExistsError(f"{out} already exists and is not empty; pass overwrite=True to replace it")


def save_release(
    model: HiggsTTS3ForConditionalGeneration,
    processor: HiggsTTS3Processor,
    out_dir: str | os.PathLike[str],
    base_dir: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
    notice: bool = True,
    marker: dict[str, Any] | None = None,
) -> Path:
    """Save a plain model in the release layout, atomically (a temporary sibling, then a rename).

    The folder loads with :func:`load_release`, vLLM-Omni, SGLang-Omni and mlx-audio. Merging is
    the caller's business (:meth:`HiggsTTS3Family.save_merged` merges a copy of a PEFT model).

    Args:
        model: A plain model (no PEFT wrapper).
        processor: Its processor (tokenizer and codec are written).
        out_dir: The folder to create.
        base_dir: The base model's folder: ``config.json`` keeps the keys of the base's,
            ``tied.head.*`` copies are written only if its weights have them, its other non-weight
            files are copied (:func:`write_release_files`), and its licence files (:func:`write_notice`).
        overwrite: Replace an existing non-empty folder.
        notice: Write the licence ``NOTICE`` (False only for models not derived from Higgs TTS 3).
        marker: Extra fields of ``workbench_model.json``.

    Returns:
        The absolute folder.

    Raises:
        FileExistsError: ``out_dir`` is not empty and ``overwrite`` is false.
        ValueError: ``model`` still holds LoRA or other weights the release has no name for.
    """
    out = Path(out_dir).expanduser().resolve()
    check_writable(out, overwrite)
    with atomic_folder(out, keep_existing=lambda existing: check_writable(existing, overwrite)) as tmp:
        write_release_files(model, processor, tmp, marker, base_dir)
        if notice:
            write_notice(tmp, base_dir)
    log.info("saved Higgs TTS 3 release layout to %s", out)
    return out
