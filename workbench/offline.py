"""Models on this machine only: a local model folder, or a hub id already in the Hugging Face cache.

Every model the workbench loads (the TTS model, its audio tokenizer, a speech-recognition or speaker
model) is found here and never downloaded: :func:`local_model_folder` returns the folder or raises
:class:`LocalModelMissing`, whose :class:`MissingKind` lets each caller word its own message and
fix. The cache is read with ``huggingface_hub.try_to_load_from_cache``, which only looks at files.
"""

from __future__ import annotations

import enum
import os
import re
from pathlib import Path, PurePosixPath

HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")  # owner/name; a bare name is a local path


class MissingKind(enum.StrEnum):
    """Why a model has no local folder."""

    NO_CONFIG = "no config.json"  # a folder without config.json
    A_FILE = "a file"  # the path is a file, not a folder
    NOT_CACHED = "not in the cache"  # a hub id that is not in the local Hugging Face cache
    NO_FOLDER = "no such folder"  # neither a path that exists nor a hub id


class LocalModelMissing(FileNotFoundError):
    """A model has no folder on this machine (nothing is downloaded).

    Attributes:
        model: The folder or hub id as given.
        kind: Why, for callers that word their own message.
        reason: The plain reason, e.g. ``"/models/x has no config.json"``.
    """

    def __init__(self, model: str | os.PathLike[str], kind: MissingKind, reason: str):
        super().__init__(f"model {str(model)!r} has no local folder: {reason}")
        self.model = str(model)
        self.kind = kind
        self.reason = reason


def is_hub_id(text: str | os.PathLike[str]) -> bool:
    """Whether ``text`` has the shape of a hub id (``owner/name``) that the hub accepts."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    if not HUB_ID.fullmatch(str(text)):
        return False
    try:  # the hub's own rules ("--" and ".." are refused, names up to 96 characters)
        validate_repo_id(str(text))
    except HFValidationError:
        return False
    return True


def cached_hub_folder(repo_id: str, filename: str = "config.json") -> Path | None:
    """The snapshot folder of ``repo_id`` in the local Hugging Face cache, when it holds ``filename``.

    Reads the cache's files only (``HF_HUB_CACHE``, at its ``main`` revision); never the network.

    Args:
        repo_id: A hub id, ``owner/name``.
        filename: A file the snapshot must hold, relative to the repository root.

    Returns:
        The snapshot folder (the repository root), or None when ``repo_id`` is not a hub id or the
        file is not cached.
    """
    from huggingface_hub import try_to_load_from_cache

    if not is_hub_id(repo_id):
        return None
    cached = try_to_load_from_cache(repo_id, filename)
    if not isinstance(cached, str):  # None (not cached) or the cache's "known to be missing" marker
        return None
    return Path(cached).parents[len(PurePosixPath(filename).parts) - 1]


def local_model_folder(model: str | os.PathLike[str]) -> Path:
    """The folder of ``model``: a local folder with ``config.json``, or a cached hub id's snapshot.

    A path that exists wins over a hub id of the same spelling.

    Args:
        model: A folder, or a hub id (``owner/name``) already in the local Hugging Face cache.

    Returns:
        The absolute folder (for a hub id, its snapshot folder in the cache).

    Raises:
        LocalModelMissing: Nothing usable exists locally; ``kind`` says why.
    """
    path = Path(model).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise LocalModelMissing(model, MissingKind.NO_CONFIG, f"{path} has no config.json")
        return path.resolve()
    if path.exists():
        raise LocalModelMissing(model, MissingKind.A_FILE, f"{path} is a file, not a model folder")
    if not is_hub_id(model):
        raise LocalModelMissing(model, MissingKind.NO_FOLDER, "no such folder")
    cached = cached_hub_folder(str(model))
    if cached is None:
        raise LocalModelMissing(
            model, MissingKind.NOT_CACHED, f"{model} is not in the local Hugging Face cache"
        )
    return cached
