"""workbench.offline: a model folder or a hub id in the local Hugging Face cache, never the network."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from workbench.models.folder import ModelNotFoundError, locate_audio_tokenizer, resolve_model_path
from workbench.offline import LocalModelMissing, MissingKind, cached_hub_folder, is_hub_id, local_model_folder
from workbench.prepare.transcribe import AsrModelError, resolve_asr_model

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty Hugging Face cache folder that this test's lookups read (and nothing else)."""
    from huggingface_hub import constants

    cache = tmp_path / "hf-cache"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))  # for anything started from here
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))  # huggingface_hub reads it at import
    return cache


def cache_repo(cache: Path, repo_id: str, files: dict[str, str]) -> Path:
    """Write ``repo_id`` into ``cache`` as ``hf download`` lays it out; return its snapshot folder."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(COMMIT)
    snapshot = repo / "snapshots" / COMMIT
    (repo / "blobs").mkdir()
    for number, (name, text) in enumerate(files.items()):
        blob = repo / "blobs" / f"{number:040x}"
        blob.write_text(text)
        (snapshot / name).parent.mkdir(parents=True, exist_ok=True)
        (snapshot / name).symlink_to(os.path.relpath(blob, (snapshot / name).parent))
    return snapshot


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Every socket connection attempt is recorded and refused."""
    attempts: list[object] = []

    def refuse(self: socket.socket, address: object) -> None:
        attempts.append(address)
        raise OSError(f"network used: {address}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    return attempts


def test_a_local_folder_with_config_is_the_model(tmp_path: Path, hub_cache: Path) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    assert local_model_folder(folder) == folder.resolve()
    assert local_model_folder(str(folder)) == folder.resolve()


@pytest.mark.parametrize(
    ("make", "kind", "reason"),
    [
        (lambda p: p.mkdir(), MissingKind.NO_CONFIG, "has no config.json"),
        (lambda p: p.write_text("{}"), MissingKind.A_FILE, "is a file, not a model folder"),
        (lambda p: None, MissingKind.NO_FOLDER, "no such folder"),
    ],
    ids=["folder-without-config", "file", "missing"],
)
def test_a_path_that_is_no_model_folder_says_why(tmp_path: Path, hub_cache: Path, make, kind, reason) -> None:
    path = tmp_path / "model"
    make(path)
    with pytest.raises(LocalModelMissing) as info:
        local_model_folder(path)
    assert info.value.kind is kind and reason in info.value.reason
    assert info.value.model == str(path) and str(path) in str(info.value)
    assert isinstance(info.value, FileNotFoundError)


def test_a_cached_hub_id_is_its_snapshot_folder(hub_cache: Path) -> None:
    snapshot = cache_repo(hub_cache, "owner/tts", {"config.json": "{}", "codec/config.json": "{}"})
    assert local_model_folder("owner/tts") == snapshot
    assert (local_model_folder("owner/tts") / "config.json").read_text() == "{}"
    assert cached_hub_folder("owner/tts") == snapshot
    assert cached_hub_folder("owner/tts", "codec/config.json") == snapshot  # the repository root
    assert cached_hub_folder("owner/tts", "tokenizer.json") is None


def test_a_hub_id_not_in_the_cache_is_not_cached(hub_cache: Path) -> None:
    cache_repo(hub_cache, "owner/weights-only", {"model.safetensors": ""})
    no_exist = hub_cache / "models--owner--known-missing" / ".no_exist" / COMMIT
    no_exist.mkdir(parents=True)
    (no_exist / "config.json").write_text("")  # the cache's record that config.json does not exist
    (hub_cache / "models--owner--known-missing" / "refs").mkdir()
    (hub_cache / "models--owner--known-missing" / "refs" / "main").write_text(COMMIT)
    for repo_id in ("nobody/not-cached", "owner/weights-only", "owner/known-missing"):
        assert cached_hub_folder(repo_id) is None
        with pytest.raises(LocalModelMissing) as info:
            local_model_folder(repo_id)
        assert info.value.kind is MissingKind.NOT_CACHED
        assert info.value.reason == f"{repo_id} is not in the local Hugging Face cache"


def test_an_existing_path_wins_over_a_hub_id_of_the_same_spelling(
    tmp_path: Path, hub_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache_repo(hub_cache, "owner/name", {"config.json": "{}"})
    monkeypatch.chdir(tmp_path)
    (tmp_path / "owner" / "name").mkdir(parents=True)
    with pytest.raises(LocalModelMissing) as info:
        local_model_folder("owner/name")  # the local folder has no config.json
    assert info.value.kind is MissingKind.NO_CONFIG
    (tmp_path / "owner" / "name" / "config.json").write_text("{}")
    assert local_model_folder("owner/name") == tmp_path / "owner" / "name"


@pytest.mark.parametrize("text", ["owner/name", "Org-1/model.v2_b", "a/b"])
def test_hub_ids(text: str) -> None:
    assert is_hub_id(text)


@pytest.mark.parametrize("text", ["gpt2", "a/b/c", "/abs/path", "./rel", "a--b/c", "owner/name.", "a/.."])
def test_not_hub_ids(text: str, hub_cache: Path) -> None:
    assert not is_hub_id(text)
    assert cached_hub_folder(text) is None  # never handed to the hub's validator, which would raise
    with pytest.raises(LocalModelMissing) as info:
        local_model_folder(text)
    assert info.value.kind is MissingKind.NO_FOLDER


def test_nothing_reaches_the_network(hub_cache: Path, no_network: list[object]) -> None:
    snapshot = cache_repo(hub_cache, "owner/tts", {"config.json": "{}"})
    assert local_model_folder("owner/tts") == snapshot
    with pytest.raises(LocalModelMissing):
        local_model_folder("nobody/not-cached")
    with pytest.raises(ModelNotFoundError):
        resolve_model_path("nobody/not-cached")
    assert no_network == []


def test_importing_workbench_keeps_hugging_face_offline() -> None:
    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_OFFLINE"}
    code = "import workbench, os, huggingface_hub.constants as c; print(os.environ['HF_HUB_OFFLINE'], c.HF_HUB_OFFLINE)"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["1", "True"]


def test_every_caller_finds_the_same_cached_snapshot(hub_cache: Path, tmp_path: Path) -> None:
    snapshot = cache_repo(hub_cache, "owner/tts", {"config.json": "{}"})
    assert resolve_model_path("owner/tts") == snapshot
    assert resolve_asr_model("owner/tts") == str(snapshot)
    model = tmp_path / "model"
    model.mkdir()
    assert locate_audio_tokenizer(model, "owner/tts") == "owner/tts"  # an id transformers loads offline
    with pytest.raises(ModelNotFoundError, match="not a hub id in the local cache"):
        locate_audio_tokenizer(model, "nobody/codec")
    with pytest.raises(AsrModelError, match=r"nobody/asr is not in the local Hugging Face cache \(nothing"):
        resolve_asr_model("nobody/asr")
