"""The inputs of ``workbench prepare``: recordings, their speakers and their text sidecars.

A recording (wav/flac/mp3/ogg/opus) may have, with the same stem, subtitles (``.srt``/``.vtt``)
or a whole-file transcript (``.txt``); subtitles win. Recordings are read by
:func:`workbench.audio.load_audio`, as the model hears them, so any channel count and rate works.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import soundfile as sf

from workbench.prepare.store import speaker_folder_name
from workbench.prepare.subtitles import SUBTITLE_SUFFIXES

AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg", ".opus")
SUBTITLE, GIVEN, ASR = "subtitle", "given", "asr"


@dataclass
class PrepareInput:
    """One recording and where its text comes from."""

    path: str
    speaker: str
    subtitles: str | None = None
    transcript: str | None = None
    duration: float | None = None  # from the header; None when it cannot be read

    @property
    def text_source(self) -> str:
        return SUBTITLE if self.subtitles else GIVEN if self.transcript else ASR

    def needs_asr(self, max_clip: float) -> bool:
        if self.text_source == ASR:
            return True
        return self.text_source == GIVEN and self.duration is not None and self.duration > max_clip


def _sidecar(audio: Path, suffixes: Sequence[str]) -> str | None:
    for suffix in suffixes:
        for candidate in (audio.with_suffix(suffix), audio.with_suffix(suffix.upper())):
            if candidate.is_file():
                return str(candidate)
    return None


def find_inputs(
    inputs: Iterable[str | os.PathLike], dataset_dir: str | os.PathLike, speaker: str | None = None
) -> list[PrepareInput]:
    """The recordings named by ``inputs`` (files, or folders searched recursively), with sidecars.

    The speaker is ``speaker`` when given; else, in a folder given as input, the first subfolder
    level (or the folder's own name for files directly in it); for a file given directly, the
    name of the folder it is in. Anything inside ``dataset_dir`` is skipped.

    Raises:
        FileNotFoundError: an input does not exist (all missing ones named).
    """
    items = [Path(p).absolute() for p in inputs]
    missing = [str(p) for p in items if not p.exists()]
    if missing:
        raise FileNotFoundError(f"input not found: {', '.join(missing)} (working directory {os.getcwd()})")
    out_root = Path(dataset_dir).absolute()
    found: dict[str, PrepareInput] = {}
    for item in items:
        if item.is_dir():
            for folder, dirs, files in os.walk(item):
                dirs[:] = sorted(d for d in dirs if not d.startswith(".") and Path(folder, d) != out_root)
                for name in sorted(files):
                    path = Path(folder, name)
                    if name.startswith(".") or path.suffix.lower() not in AUDIO_SUFFIXES:
                        continue
                    parts = path.relative_to(item).parts
                    who = speaker or (parts[0] if len(parts) > 1 else item.name)
                    found.setdefault(str(path), _input(path, who))
        elif out_root not in item.parents:
            found.setdefault(str(item), _input(item, speaker or item.parent.name))
    return list(found.values())


def _input(path: Path, speaker: str) -> PrepareInput:
    try:
        info = sf.info(str(path))
        duration = info.frames / info.samplerate if info.samplerate and info.frames > 0 else None
    except Exception:  # reported when the input is read
        duration = None
    return PrepareInput(
        str(path),
        speaker_folder_name(speaker),
        _sidecar(path, SUBTITLE_SUFFIXES),
        _sidecar(path, (".txt",)),
        duration,
    )
