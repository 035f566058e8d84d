"""Import and export of original-format (``boson_multimodal``) Higgs Audio v2 checkpoints.

:func:`import_original` converts an original checkpoint folder to the Hugging Face layout, once,
offline, into a content-addressed cache folder; :func:`export_original` writes merged weights back
in the original layout. The key, config and partially-frozen-weight mappings they apply, and the
detection of the layout, are in :mod:`workbench.models.original_format`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from workbench.audio import default_cache_dir
from workbench.files import atomic_folder, write_json
from workbench.models.chat_template import CHAT_TEMPLATE
from workbench.models.folder import (
    AUDIO_TOKENIZER_SUBDIR,
    WEIGHTS_INDEX,
    ModelNotFoundError,
    read_json,
    resolve_model_path,
    safetensors_header,
    safetensors_keys,
    special_token_ids,
    weight_files,
)
from workbench.models.original_format import (  # the mapping this module applies
    CONVERTER_VERSION,
    DROPPED_PREFIXES,
    EXPORT_MARKER,
    GENERATION_TOKEN_FIELDS,
    HF_MODEL_TYPE,
    IGNORED_SUFFIXES,
    IMPORT_SIDECAR,
    ORIGINAL_ARCHITECTURE,
    ORIGINAL_MODEL_TYPE,
    TOKENIZER_FILES,
    hf_config_from_original,
    hf_to_original_key,
    is_original_checkpoint,
    merge_partially_frozen,
    original_config_from_hf,
    original_to_hf_key,
    split_partially_frozen,
)

if TYPE_CHECKING:
    from transformers import HiggsAudioV2Config, HiggsAudioV2ForConditionalGeneration

log = logging.getLogger(__name__)


_MAX_SHARD_BYTES = 4 << 30


# --------------------------------------------------------------------------- files


def _read_state_dict(folder: Path, only: set[str] | None = None) -> dict[str, torch.Tensor]:
    from safetensors import safe_open

    files = weight_files(folder)
    if not files:
        raise ModelNotFoundError(f"no *.safetensors weights in {folder}")
    state: dict[str, torch.Tensor] = {}
    for file in files:
        if not file.is_file():
            raise ModelNotFoundError(f"weight file {file} listed in {folder / WEIGHTS_INDEX} is missing")
        with safe_open(str(file), framework="pt", device="cpu") as handle:
            for key in handle.keys():
                if only is None or key in only:
                    state[key] = handle.get_tensor(key)
    return state


def _save_state_dict(
    state: dict[str, torch.Tensor], folder: Path, max_shard_bytes: int = _MAX_SHARD_BYTES
) -> None:
    """Write ``model.safetensors`` (or numbered shards plus an index), names sorted."""
    from safetensors.torch import save_file

    seen: set[int] = set()
    tensors: dict[str, torch.Tensor] = {}
    for key in sorted(state):
        tensor = state[key].detach().cpu().contiguous()
        if tensor.untyped_storage().data_ptr() in seen:  # safetensors refuses shared storage
            tensor = tensor.clone()
        seen.add(tensor.untyped_storage().data_ptr())
        tensors[key] = tensor
    shards: list[dict[str, torch.Tensor]] = [{}]
    size = 0
    for key, tensor in tensors.items():
        nbytes = tensor.numel() * tensor.element_size()
        if shards[-1] and size + nbytes > max_shard_bytes:
            shards.append({})
            size = 0
        shards[-1][key] = tensor
        size += nbytes
    metadata = {"format": "pt"}
    if len(shards) == 1:
        save_file(shards[0], str(folder / "model.safetensors"), metadata=metadata)
        return
    weight_map = {}
    for i, shard in enumerate(shards, 1):
        name = f"model-{i:05d}-of-{len(shards):05d}.safetensors"
        save_file(shard, str(folder / name), metadata=metadata)
        weight_map.update(dict.fromkeys(shard, name))
    total = sum(t.numel() * t.element_size() for t in tensors.values())
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    write_json(folder / WEIGHTS_INDEX, index)


def _link_or_copy_tree(src: Path, dst: Path) -> None:
    """Copy a folder, hard-linking files where the filesystem allows (codec weights are large)."""

    def link_or_copy(source: str, target: str) -> str:
        try:
            os.link(source, target)
        except OSError:
            shutil.copy2(source, target)
        return target

    shutil.copytree(src, dst, copy_function=link_or_copy)


def _copy_tokenizer_files(src: Path, dst: Path, for_original: bool) -> list[str]:
    copied = []
    for name in TOKENIZER_FILES:
        if not (src / name).is_file():
            continue
        if name == "tokenizer_config.json" and for_original:
            # Older transformers (as pinned by boson_multimodal) know neither the v5 tokenizer
            # backend class nor HiggsAudioV2Processor; tokenizer.json itself is version-neutral.
            data = json.loads((src / name).read_text())
            if data.get("tokenizer_class") in (None, "TokenizersBackend"):
                data["tokenizer_class"] = "PreTrainedTokenizerFast"
            data.pop("backend", None)
            data.pop("processor_class", None)
            write_json(dst / name, data)
        else:
            shutil.copyfile(src / name, dst / name)
        copied.append(name)
    return copied


def _occupied(path: Path) -> bool:
    """True for a file or a non-empty folder."""
    return path.exists() and (not path.is_dir() or any(path.iterdir()))


def _is_hf_audio_tokenizer(folder: Path) -> bool:
    config = read_json(folder / "config.json")
    return bool(config) and config.get("model_type") == "higgs_audio_v2_tokenizer"


# --------------------------------------------------------------------------- import


def _resolve_audio_tokenizer(src: Path, audio_tokenizer: str | os.PathLike[str] | None) -> Path | None:
    if audio_tokenizer is None:
        bundled = src / AUDIO_TOKENIZER_SUBDIR
        return bundled.resolve() if _is_hf_audio_tokenizer(bundled) else None
    folder = resolve_model_path(audio_tokenizer)  # local folder or cached hub id; clear error otherwise
    if not _is_hf_audio_tokenizer(folder):
        raise ValueError(
            f"audio tokenizer {folder} is not in transformers' format (config.json model_type "
            "'higgs_audio_v2_tokenizer'). The original boson codec (bosonai/higgs-audio-v2-tokenizer) must be "
            "converted first, or use an already converted copy such as eustlb/higgs-audio-v2-tokenizer."
        )
    return folder


def source_fingerprint(src_dir: str | os.PathLike[str], audio_tokenizer: Path | None = None) -> str:
    """Fingerprint of an original checkpoint (and codec) that names its cached conversion.

    Hashes the config, tokenizer and index files, and each weight file's name, size, modification
    time and safetensors header (names, dtypes, shapes, offsets); weight bytes are not read, so
    re-writing a file in place (new mtime) gives a new fingerprint.
    """
    src = Path(src_dir)
    digest = hashlib.sha256(f"workbench-original-import/{CONVERTER_VERSION}".encode())
    for name in ("config.json", WEIGHTS_INDEX, "generation_config.json", *TOKENIZER_FILES):
        if (src / name).is_file():
            digest.update(f"\0{name}\0".encode() + (src / name).read_bytes())
    for file in weight_files(src):
        stat = file.stat()
        digest.update(
            f"\0{file.name}|{stat.st_size}|{stat.st_mtime_ns}\0".encode() + safetensors_header(file)
        )
    if audio_tokenizer is not None:
        digest.update(
            f"\0codec:{audio_tokenizer}\0".encode() + (audio_tokenizer / "config.json").read_bytes()
        )
        for file in sorted(audio_tokenizer.rglob("*")):
            if file.is_file():
                stat = file.stat()
                digest.update(
                    f"\0{file.relative_to(audio_tokenizer)}|{stat.st_size}|{stat.st_mtime_ns}".encode()
                )
    return digest.hexdigest()


def _complete_conversion(folder: Path, fingerprint: str) -> bool:
    sidecar = read_json(folder / IMPORT_SIDECAR)
    return bool(sidecar) and sidecar.get("fingerprint") == fingerprint and (folder / "config.json").is_file()


def _validate_against_model(state: dict[str, torch.Tensor], config: HiggsAudioV2Config, src: Path) -> None:
    """Check names and shapes against an empty (meta) HiggsAudioV2ForConditionalGeneration."""
    from transformers import HiggsAudioV2ForConditionalGeneration

    with torch.device("meta"):
        model = HiggsAudioV2ForConditionalGeneration(config, use_text_head="text_lm_head.weight" in state)
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = [
        f"{k}: {tuple(state[k].shape)} vs {expected[k]}"
        for k in sorted(set(state) & set(expected))
        if tuple(state[k].shape) != expected[k]
    ]
    if missing or unexpected or wrong:
        parts = [
            f"{label} ({len(items)}): {', '.join(items[:8])}{' ...' if len(items) > 8 else ''}"
            for label, items in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", wrong))
            if items
        ]
        raise ValueError(
            f"converted weights of {src} do not fit HiggsAudioV2ForConditionalGeneration: " + "; ".join(parts)
        )


def _write_processor(
    src: Path, dst_final: Path, tmp: Path, codec_dir: Path, config: HiggsAudioV2Config, original: dict
) -> None:
    from transformers import (
        AutoTokenizer,
        DacFeatureExtractor,
        HiggsAudioV2Processor,
        HiggsAudioV2TokenizerModel,
    )

    _link_or_copy_tree(codec_dir, tmp / AUDIO_TOKENIZER_SUBDIR)
    # Load the text tokenizer next to the HF config already in tmp (the original config.json's
    # model_type is unknown to transformers); processor.save_pretrained rewrites these files.
    _copy_tokenizer_files(src, tmp, for_original=False)
    tokenizer = AutoTokenizer.from_pretrained(tmp, local_files_only=True)
    if config.pad_token_id is not None and config.pad_token_id < len(tokenizer):
        # The conversion script sets pad = eos, i.e. <|end_of_text|> = config.pad_token_id (128001).
        tokenizer.pad_token = tokenizer.convert_ids_to_tokens(config.pad_token_id)
    codec = HiggsAudioV2TokenizerModel.from_pretrained(tmp / AUDIO_TOKENIZER_SUBDIR, local_files_only=True)
    codec.name_or_path = str(dst_final / AUDIO_TOKENIZER_SUBDIR)  # what processor_config.json records
    template_file = src / "chat_template.jinja"
    template = (
        template_file.read_text() if template_file.is_file() else tokenizer.chat_template or CHAT_TEMPLATE
    )

    def token(token_id: int | None, default: str) -> str:
        if token_id is None or not 0 <= token_id < len(tokenizer):
            return default
        return tokenizer.convert_ids_to_tokens(token_id)

    processor = HiggsAudioV2Processor(
        feature_extractor=DacFeatureExtractor(
            feature_size=1,
            hop_length=1,
            padding_side="right",
            padding_value=0.0,
            sampling_rate=codec.config.sample_rate,
            return_attention_mask=True,
        ),
        tokenizer=tokenizer,
        audio_tokenizer=codec,
        chat_template=template,
        audio_token=token(config.audio_token_id, "<|AUDIO_OUT|>"),
        audio_bos_token=token(config.audio_bos_token_id, "<|audio_out_bos|>"),
        audio_eos_token=token(original.get("audio_eos_token_id"), "<|audio_eos|>"),
        audio_delay_token=token(config.audio_delay_token_id, "<|reserved_special_token_6|>"),
        audio_stream_bos_id=config.audio_stream_bos_id,
        audio_stream_eos_id=config.audio_stream_eos_id,
    )
    processor.save_pretrained(tmp)


def _generation_config(src: Path, config: HiggsAudioV2Config) -> Any:
    """The source's generation config (or a new one) with the model config's bos/eos/pad ids.

    transformers' Higgs generation appends ``config.eos_token_id`` when every codebook has ended
    and stops only on ``generation_config.eos_token_id``; the release's ``generation_config.json``
    says 128001 (``<|end_of_text|>``), so it is replaced, or generation never stops early.
    """
    from transformers import GenerationConfig

    source = src / "generation_config.json"
    gen = (
        GenerationConfig.from_pretrained(src, local_files_only=True)
        if source.is_file()
        else GenerationConfig()
    )
    replaced = {}
    for field in GENERATION_TOKEN_FIELDS:
        value = getattr(config, field)
        if getattr(gen, field, None) != value:
            if source.is_file():
                replaced[field] = f"{getattr(gen, field, None)} -> {value}"
            setattr(gen, field, value)
    if replaced:
        log.info(
            "%s: ids set to the model config's so generation stops at the end of audio: %s", source, replaced
        )
    gen._from_model_config = False
    if getattr(gen, "ras_win_len", None) is None and getattr(gen, "ras_win_max_num_repeat", None) is None:
        gen.ras_win_len, gen.ras_win_max_num_repeat = 7, 2
    return gen


def default_conversion_dir(fingerprint: str) -> Path:
    """``<WORKBENCH_CACHE_DIR or ~/.cache/workbench>/converted/<fingerprint[:16]>``."""
    return default_cache_dir() / "converted" / fingerprint[:16]


def import_original(
    src_dir: str | os.PathLike[str],
    dst_dir: str | os.PathLike[str] | None = None,
    *,
    audio_tokenizer: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
) -> Path:
    """Convert an original-format checkpoint to a transformers Higgs Audio v2 folder, offline.

    A finished conversion with the same source fingerprint (see :func:`source_fingerprint`) is
    reused. The folder is built next to its destination and renamed into place, and its
    ``original_format.json`` (source config, frozen/trainable split sizes, fingerprint) is what
    marks it complete, so an interrupted or concurrent conversion is never picked up half-written.
    ``generation_config.json`` is the source's (or a new one) with the model config's bos/eos/pad
    ids, so generation stops when the audio ends (see :mod:`workbench.models.original_format`).

    Args:
        src_dir: The original checkpoint folder (``config.json`` with ``model_type: "higgs_audio"``,
            ``*.safetensors``, and usually the text tokenizer files).
        dst_dir: Destination; default :func:`default_conversion_dir` (under ``$WORKBENCH_CACHE_DIR``).
        audio_tokenizer: A transformers-format ``HiggsAudioV2TokenizerModel`` folder or cached hub id.
            Default: ``<src_dir>/audio_tokenizer`` when it exists (folders written by
            :func:`export_original`). Without a codec (or without tokenizer files) no processor is written.
        overwrite: Replace an existing ``dst_dir`` that is not this conversion.

    Returns:
        The converted folder; ``HiggsAudioV2ForConditionalGeneration.from_pretrained`` loads it and,
        with a codec, ``workbench.models.model.load_model_and_processor`` too.

    Raises:
        ModelNotFoundError: ``src_dir`` (or a weight file, or the audio tokenizer) does not exist.
        ValueError: ``src_dir`` is not an original checkpoint, or a variant transformers cannot represent.
        FileExistsError: ``dst_dir`` holds something else and ``overwrite`` is false.
    """
    src = Path(src_dir).expanduser()
    if not src.is_dir():
        raise ModelNotFoundError(f"original-format checkpoint folder not found: {src}")
    src = src.resolve()
    if not is_original_checkpoint(src):
        raise ValueError(
            f"{src} is not an original-format Higgs Audio checkpoint (expected config.json with model_type "
            f"{ORIGINAL_MODEL_TYPE!r} or architectures [{ORIGINAL_ARCHITECTURE!r}], and original key names)"
        )
    original = read_json(src / "config.json")
    if original is None:
        raise ModelNotFoundError(f"{src} has original-format weights but no readable config.json")
    codec_dir = _resolve_audio_tokenizer(src, audio_tokenizer)
    fingerprint = source_fingerprint(src, codec_dir)
    dst = Path(dst_dir).expanduser().resolve() if dst_dir is not None else default_conversion_dir(fingerprint)
    if _complete_conversion(dst, fingerprint):
        log.info("reusing converted checkpoint %s for %s", dst, src)
        return dst
    if _occupied(dst) and not overwrite and dst_dir is not None:
        raise FileExistsError(
            f"{dst} already exists and does not hold this conversion of {src} (no or another fingerprint "
            f"in {IMPORT_SIDECAR}); pass overwrite=True to replace it"
        )

    token_ids = special_token_ids(src)
    config = hf_config_from_original(original, token_ids)
    state = _read_state_dict(src)
    dropped = sorted(k for k in state if k.startswith(DROPPED_PREFIXES))
    if dropped:
        log.warning(
            "dropping %d weights of the Whisper audio tower (%s...): not part of the HF model",
            len(dropped),
            dropped[0],
        )
    state = {
        k: v
        for k, v in state.items()
        if not k.endswith(IGNORED_SUFFIXES) and not k.startswith(DROPPED_PREFIXES)
    }
    state, splits = merge_partially_frozen(state)
    state = {original_to_hf_key(k): v for k, v in state.items()}
    if "model.embed_tokens.weight" in state:
        config.dtype = state["model.embed_tokens.weight"].dtype
    _validate_against_model(state, config, src)

    try:
        with atomic_folder(
            dst, keep_existing=lambda existing: _complete_conversion(existing, fingerprint)
        ) as tmp:
            _save_state_dict(state, tmp)
            config.save_pretrained(tmp)
            _generation_config(src, config).save_pretrained(tmp)
            has_tokenizer = (src / "tokenizer.json").is_file() or (src / "tokenizer.model").is_file()
            if codec_dir is not None and has_tokenizer:
                _write_processor(src, dst, tmp, codec_dir, config, original)
            else:
                _copy_tokenizer_files(src, tmp, for_original=False)
                log.warning(
                    "converted %s without a processor: %s. Pass audio_tokenizer=<transformers-format codec> to add one.",
                    src,
                    "no audio tokenizer given"
                    if codec_dir is None
                    else "no text tokenizer files in the checkpoint",
                )
            sidecar = {
                "format": CONVERTER_VERSION,
                "source": str(src),
                "fingerprint": fingerprint,
                "audio_tokenizer": str(codec_dir) if codec_dir else None,
                "splits": splits,
                "dropped": dropped,
                "original_config": original,
            }
            write_json(tmp / IMPORT_SIDECAR, sidecar)
    except BaseException:
        if _complete_conversion(dst, fingerprint):
            return dst
        raise
    log.info(
        "converted original checkpoint %s -> %s (%d weights, splits merged: %s)",
        src,
        dst,
        len(state),
        list(splits),
    )
    return dst


# --------------------------------------------------------------------------- export


def _export_source(model_or_dir: Any, source_dir: str | os.PathLike[str] | None):
    """``(HF state dict, HF config, generation config or None, source folder or None)``."""
    from transformers import GenerationConfig, HiggsAudioV2Config

    if isinstance(model_or_dir, (str, os.PathLike)):
        folder = resolve_model_path(model_or_dir)
        if is_original_checkpoint(folder):
            raise ValueError(f"{folder} is already in the original format")
        raw = read_json(folder / "config.json") or {}
        if raw.get("model_type") != HF_MODEL_TYPE:
            raise ValueError(
                f"{folder} is not a Higgs Audio v2 model (config.json model_type {raw.get('model_type')!r})"
            )
        state = _read_state_dict(folder)
        config = HiggsAudioV2Config.from_pretrained(folder, local_files_only=True)
        gen_file = folder / "generation_config.json"
        gen = GenerationConfig.from_pretrained(folder, local_files_only=True) if gen_file.is_file() else None
        source = Path(source_dir).expanduser().resolve() if source_dir is not None else folder
        return state, config, gen, source

    if not isinstance(model_or_dir, torch.nn.Module) or (
        getattr(getattr(model_or_dir, "config", None), "model_type", None) != HF_MODEL_TYPE
    ):
        raise TypeError(
            f"expected a HiggsAudioV2ForConditionalGeneration or a folder, got {type(model_or_dir).__name__}"
        )
    state = {k: v.detach().cpu() for k, v in model_or_dir.state_dict().items()}
    if type(model_or_dir).__name__.startswith("Peft") or any(
        ".lora_" in k or ".base_layer." in k for k in state
    ):
        raise TypeError("export_original needs merged weights: call model.merge_and_unload() first")
    source = None
    if source_dir is not None:
        source = Path(source_dir).expanduser().resolve()
    elif getattr(model_or_dir, "name_or_path", "") and Path(model_or_dir.name_or_path).is_dir():
        source = Path(model_or_dir.name_or_path).resolve()  # the folder it was loaded from
        log.info("export: taking tokenizer files and split layout from %s", source)
    return state, model_or_dir.config, getattr(model_or_dir, "generation_config", None), source


def export_original(
    model_or_dir: HiggsAudioV2ForConditionalGeneration | str | os.PathLike[str],
    dst_dir: str | os.PathLike[str],
    *,
    source_dir: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a Higgs Audio v2 model in the original (``boson_multimodal``) layout.

    Weights are renamed (inverse of the table in this module's docstring); weights that the source
    checkpoint stored as ``*_frozen``/``*_trainable`` halves (recorded by :func:`import_original`)
    are split again at the same row, others are written whole, which :func:`import_original` and
    the original loader accept. The config is an original ``HiggsAudioConfig`` (the source's, when
    the model was imported, with the HF values written over it). Text tokenizer files, the HF
    generation config and the transformers-format codec (``audio_tokenizer/``) are copied along
    so :func:`import_original` restores the model exactly.

    Args:
        model_or_dir: A merged ``HiggsAudioV2ForConditionalGeneration`` (for PEFT: ``merge_and_unload()``
            first) or a Hugging Face model folder.
        dst_dir: Destination folder (built next to it, then renamed into place).
        source_dir: Folder to take tokenizer files, codec, split layout and a missing ``text_lm_head``
            from. Default: the folder itself, or the folder the model was loaded from.
        overwrite: Replace an existing ``dst_dir`` that an earlier export wrote.

    Returns:
        The absolute export folder.

    Raises:
        TypeError: Not a Higgs Audio v2 model, or an unmerged PEFT model.
        ValueError: A weight has no original name (e.g. LoRA weights).
        FileExistsError: ``dst_dir`` exists, is not empty, and is not an overwritable export.
    """
    dst = Path(dst_dir).expanduser().resolve()
    if _occupied(dst) and not (overwrite and (dst / EXPORT_MARKER).is_file()):
        raise FileExistsError(
            f"{dst} already exists; pass overwrite=True to replace an earlier export (other folders are never deleted)"
        )
    state, config, gen, source = _export_source(model_or_dir, source_dir)
    sidecar = read_json(source / IMPORT_SIDECAR) if source else None
    if (
        "text_lm_head.weight" not in state
        and source is not None
        and "text_lm_head.weight" in safetensors_keys(source)
    ):
        state["text_lm_head.weight"] = _read_state_dict(source, only={"text_lm_head.weight"})[
            "text_lm_head.weight"
        ]
    if "text_lm_head.weight" not in state:
        log.warning(
            "exporting without a text head: the original HiggsAudioModel will initialise "
            "audio_decoder_proj.text_lm_head randomly (it predicts the text tokens around audio segments)"
        )
    original_state = {hf_to_original_key(k): v for k, v in state.items()}
    splits = (sidecar or {}).get("splits") or {}
    original_state = split_partially_frozen(original_state, splits)
    applied = {k: v for k, v in splits.items() if k not in original_state}
    token_ids = special_token_ids(source) if source else {}
    dtype = state["model.embed_tokens.weight"].dtype if "model.embed_tokens.weight" in state else None
    original_config = original_config_from_hf(
        config, (sidecar or {}).get("original_config"), token_ids, dtype
    )
    if (sidecar or {}).get("dropped") and not original_config.get("skip_audio_tower"):
        # The Whisper tower was dropped on import, so the original loader must not expect it.
        log.warning(
            "source had a Whisper audio tower that the HF model lacks: exporting with skip_audio_tower"
        )
        original_config.update(skip_audio_tower=True, encode_whisper_embed=False)

    with atomic_folder(dst) as tmp:
        _save_state_dict(original_state, tmp)
        write_json(tmp / "config.json", original_config, sort_keys=True)
        if gen is not None:
            gen.save_pretrained(tmp)
        copied = _copy_tokenizer_files(source, tmp, for_original=True) if source else []
        codec = source / AUDIO_TOKENIZER_SUBDIR if source else None
        if codec is not None and _is_hf_audio_tokenizer(codec):
            _link_or_copy_tree(codec, tmp / AUDIO_TOKENIZER_SUBDIR)
        marker = {
            "format": CONVERTER_VERSION,
            "exported_from": str(source) if source else None,
            "splits": applied,
            "tokenizer_files": copied,
            "audio_tokenizer": AUDIO_TOKENIZER_SUBDIR if (tmp / AUDIO_TOKENIZER_SUBDIR).is_dir() else None,
            "note": "audio_tokenizer/ (if present) is in transformers' format; the original scripts use "
            "bosonai/higgs-audio-v2-tokenizer, which LoRA fine-tuning does not change.",
        }
        write_json(tmp / EXPORT_MARKER, marker)
    log.info("exported %d weights in the original layout to %s", len(original_state), dst)
    return dst
