"""A Higgs Audio v2 model folder on this machine: finding one offline and reading its files.

A model is a local folder with ``config.json`` or a hub id already in the local Hugging Face cache,
found by :func:`workbench.offline.local_model_folder` (nothing is ever downloaded); a missing model
is a :class:`ModelNotFoundError` that names the path. Its audio tokenizer is the ``audio_tokenizer/`` folder that travels with it, else the
path or cached hub id its processor config records. The small readers here (JSON files, safetensors
weight files and their key names, the tokenizer's special-token ids) look at a folder without
loading a model, so the loaders, the original-layout conversion and ``workbench doctor`` share them.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

from workbench.offline import LocalModelMissing, MissingKind, cached_hub_folder, local_model_folder

AUDIO_TOKENIZER_SUBDIR = "audio_tokenizer"
WEIGHTS_INDEX = "model.safetensors.index.json"
HINT = (
    "Pass a local Hugging Face model folder or a hub id that is already in the local cache "
    "(nothing is downloaded). For a small test model run `workbench make-tiny-model DIR`."
)


class ModelNotFoundError(FileNotFoundError):
    """A model path or hub id could not be found locally (nothing is ever downloaded)."""


def resolve_model_path(model_path: str | os.PathLike[str]) -> Path:
    """Resolve a local model folder or a locally cached hub id to a folder.

    Args:
        model_path: A folder with ``config.json``, or a hub id (``owner/name``) in the HF cache.

    Returns:
        The absolute model folder.

    Raises:
        ModelNotFoundError: Nothing usable exists locally; the message names the path.
    """
    try:
        return local_model_folder(model_path)
    except LocalModelMissing as missing:
        path = Path(model_path).expanduser()
        message = {
            MissingKind.NO_CONFIG: f"{path} is not a Hugging Face model folder (no config.json)",
            MissingKind.A_FILE: f"{path} is a file, not a model folder",
            MissingKind.NO_FOLDER: f"model folder not found: {path}",
            MissingKind.NOT_CACHED: f"model not found: {str(model_path)!r} is neither a local folder "
            "nor a hub id in the local cache",
        }[missing.kind]
        raise ModelNotFoundError(f"{message}. {HINT}") from None


def audio_tokenizer_reference(model_dir: Path) -> tuple[str, str] | None:
    """Return ``(config file name, recorded audio tokenizer path or id)``, if any."""
    for name in ("audio_tokenizer_config.json", "processor_config.json"):
        file = model_dir / name
        if file.is_file():
            data = json.loads(file.read_text())
            entry = data if name.startswith("audio_") else data.get("audio_tokenizer")
            if isinstance(entry, dict) and entry.get("audio_tokenizer_name_or_path"):
                return name, str(entry["audio_tokenizer_name_or_path"])
    return None


def locate_audio_tokenizer(model_dir: Path, recorded: str) -> str:
    """Find the audio tokenizer: bundled folder first, then the recorded path or cached hub id."""
    bundled = model_dir / AUDIO_TOKENIZER_SUBDIR
    if (bundled / "config.json").is_file():
        return str(bundled)
    recorded_path = Path(recorded).expanduser()
    for candidate in (model_dir / recorded_path, recorded_path):
        if (candidate / "config.json").is_file():
            return str(candidate.resolve())
    if cached_hub_folder(recorded) is not None:
        return recorded
    raise ModelNotFoundError(
        f"audio tokenizer of {model_dir} not found: {recorded!r} (recorded in its processor config) is not "
        f"a folder, {bundled} does not exist, and it is not a hub id in the local cache. {HINT}"
    )


# --------------------------------------------------------------------------- files


def read_json(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def weight_files(folder: Path) -> list[Path]:
    index = read_json(folder / WEIGHTS_INDEX)
    if index and isinstance(index.get("weight_map"), dict):
        return [folder / name for name in sorted(set(index["weight_map"].values()))]
    return sorted(folder.glob("*.safetensors"))


def safetensors_header(path: Path) -> bytes:
    with open(path, "rb") as handle:
        (length,) = struct.unpack("<Q", handle.read(8))
        return handle.read(length)


def safetensors_keys(folder: Path) -> list[str]:
    keys: list[str] = []
    for file in weight_files(folder):
        try:
            header = json.loads(safetensors_header(file))
        except (OSError, ValueError, struct.error):
            continue
        keys.extend(k for k in header if k != "__metadata__")
    return keys


def special_token_ids(folder: Path) -> dict[str, int]:
    """``{token text: id}`` of the added tokens in ``tokenizer.json`` (empty when absent)."""
    data = read_json(folder / "tokenizer.json") or {}
    return {t["content"]: int(t["id"]) for t in data.get("added_tokens", []) if "content" in t and "id" in t}
