"""What every source format shares: the record error, the conversion context, sample builders."""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..sample import DEFAULT_SYSTEM_PROMPT, Audio, Message, Sample
from .instructions import strip_instruction


class RecordError(Exception):
    """A record that cannot be converted; carries a finding code, the field and a hint."""

    def __init__(self, code: str, message: str, field: str | None = None, hint: str | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field
        self.hint = hint


@dataclass(frozen=True)
class Utterance:
    """One (audio, transcript) of a speaker, a candidate reference for other samples."""

    audio: str
    text: str
    key: str  # identifies the utterance so a sample never uses itself as reference


class ReferencePool:
    """Per-speaker candidate references, bounded in size, chosen deterministically.

    Filled in a first pass over the inputs; :meth:`choose` picks, for a target utterance,
    another utterance of the same speaker by a stable hash of the target's key, never the
    target itself (nor another utterance with the same audio file).
    """

    def __init__(self, per_speaker: int = 16):
        self.per_speaker = per_speaker
        self._pool: dict[str, list[Utterance]] = {}
        self._preferred: set[str] | None = None  # audio paths to choose first (None: no preference)

    def full(self, speaker: str | None) -> bool:
        """True when ``speaker`` already has enough candidates (the first pass can skip it)."""
        return speaker is not None and len(self._pool.get(speaker, ())) >= self.per_speaker

    def add(self, speaker: str, utterance: Utterance) -> None:
        bucket = self._pool.setdefault(speaker, [])
        if len(bucket) < self.per_speaker and all(u.audio != utterance.audio for u in bucket):
            bucket.append(utterance)

    def audio_paths(self) -> list[str]:
        return [u.audio for bucket in self._pool.values() for u in bucket]

    def keep_only(self, usable: Callable[[str], bool]) -> list[str]:
        """Drop candidates whose audio fails ``usable`` (silent, unreadable...); returns the dropped paths."""
        dropped = []
        for speaker, bucket in self._pool.items():
            kept = [u for u in bucket if usable(u.audio)]
            dropped += [u.audio for u in bucket if u not in kept]
            self._pool[speaker] = kept
        return dropped

    def prefer(self, preferred: Callable[[str], bool]) -> None:
        """Choose candidates whose audio passes ``preferred`` first (e.g. a comfortable length)."""
        self._preferred = {u.audio for bucket in self._pool.values() for u in bucket if preferred(u.audio)}

    def choose(self, speaker: str | None, target: Utterance) -> Utterance | None:
        if speaker is None:
            return None
        candidates = [
            u for u in self._pool.get(speaker, ()) if u.key != target.key and u.audio != target.audio
        ]
        if self._preferred is not None:
            candidates = [u for u in candidates if u.audio in self._preferred] or candidates
        if not candidates:
            return None
        digest = hashlib.blake2b(target.key.encode(), digest_size=8).digest()
        return candidates[int.from_bytes(digest, "little") % len(candidates)]


def is_sharegpt_messages(record: dict[str, Any]) -> bool:
    """LLaMA-Factory's ShareGPT variant: ``"messages"`` of ``{"role", "content": str}`` with the audio
    in a top-level ``"audios"`` list (or ``"audio"``), marked ``<audio>`` in the texts."""
    messages = record.get("messages")
    has_audio = isinstance(record.get("audios"), list) or isinstance(record.get("audio"), str)
    return (
        has_audio
        and isinstance(messages, list)
        and all(isinstance(m, dict) and isinstance(m.get("content"), str) for m in messages)
    )


@dataclass(frozen=True)
class AudioPart:
    """An audio part as a source writes it: a file (``url``) or base64 bytes (``raw``), whole or a slice."""

    url: str | None = None
    raw: str | None = None
    offset: float | None = None
    duration: float | None = None

    @property
    def is_slice(self) -> bool:
        """A part that starts inside its file; a ``duration`` alone is taken as the file's length,
        as the original Higgs Audio tooling takes it."""
        return bool(self.offset)


def seconds_field(value: Any, name: str) -> float | None:
    """An optional, non-negative number of seconds (``offset``, ``duration``), or a BAD_FIELD error."""
    if value in (None, ""):
        return None
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = float("nan")
    if isinstance(value, bool) or not seconds >= 0 or seconds == float("inf"):
        raise RecordError(
            "BAD_FIELD", f"field '{name}' should be a number of seconds >= 0, got {value!r}", name
        )
    return seconds


@dataclass
class ConvertContext:
    """Where a record came from and the options that shape its conversion."""

    source_file: str
    source_index: int
    source_line: int | None = None
    base_dir: str = "."
    audio_root: str | None = None
    remap: tuple[tuple[str, str], ...] = ()
    reference: str = "same-speaker"  # or "none"
    pool: ReferencePool | None = None
    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    sharegpt_map: dict[str, str] = field(default_factory=dict)
    path_exists: Callable[[str], bool] = os.path.isfile
    resolved: dict[tuple[str, str], str] = field(default_factory=dict)  # memo shared across records
    id_prefix: str | None = None  # default-id prefix; the converter makes it unique per input file
    notes: list[tuple[str, str, str | None]] | None = None  # (code, message, field) warnings, when any
    clips_dir: str | None = None  # where audio cut from a slice or decoded from base64 goes (None: the cache)
    extracted: list[dict[str, Any]] | None = None  # what was written there for this record
    audio_files: dict[str, str] | None = None  # resolved audio path -> the record's field naming it

    def audio_path(self, part: AudioPart, field_name: str) -> str:
        """The audio file of ``part``: its resolved path, or a file cut or decoded into :attr:`clips_dir`.

        A slice (``offset`` > 0, optional ``duration``) is copied out of its file and base64 bytes
        are decoded, so that every sample names a plain audio file; :attr:`extracted` records each
        (the source keeps the original). A slice of a missing file is AUDIO_NOT_FOUND.
        """
        from workbench.audio import default_cache_dir, write_segment  # soundfile: only when needed

        if part.url is None and part.raw is None:
            raise RecordError("BAD_FIELD", f"{field_name}: the audio part names no file", field_name)
        source: str | io.BytesIO
        origin: dict[str, Any]
        if part.url is not None:
            path = self.resolve(part.url, field_name)
            if not part.is_slice:
                return path
            if not self.path_exists(path):
                raise RecordError("AUDIO_NOT_FOUND", f"{field_name}: audio to cut a slice from not found: {path}",
                                  field_name, hint="Check the path; use --audio-root DIR or --remap OLD=NEW.")  # fmt: skip
            source, origin = path, {"audio_url": path}
            key = f"{path}\0{os.path.getmtime(path)}\0{os.path.getsize(path)}"
        else:
            try:
                data = base64.b64decode(part.raw or "", validate=True)
            except (binascii.Error, ValueError):
                raise RecordError(
                    "BAD_FIELD", f"{field_name}: raw_audio is not base64 text", field_name
                ) from None
            source, origin = io.BytesIO(data), {"raw_audio_bytes": len(data)}
            key = hashlib.blake2b(data, digest_size=16).hexdigest()
        clips_dir = self.clips_dir or str(default_cache_dir() / "clips")  # a preview without an output
        span = (part.offset or 0.0, part.duration)
        name = hashlib.blake2b(f"{key}\0{span}".encode(), digest_size=12).hexdigest()
        try:
            out = str(write_segment(source, clips_dir, name, *span))
        except ValueError as exc:
            raise RecordError("AUDIO_UNREADABLE", f"{field_name}: {exc}", field_name) from None
        if part.is_slice:
            origin.update(offset=part.offset, duration=part.duration)
        if self.extracted is None:
            self.extracted = []
        self.extracted.append({"audio_url": out, "from": origin})
        return out

    def note(self, code: str, message: str, field_name: str | None = None) -> None:
        """A warning about this record that does not stop its conversion (e.g. a re-pointed start_index)."""
        if self.notes is None:
            self.notes = []
        self.notes.append((code, message, field_name))

    def resolve(self, path: Any, field_name: str) -> str:
        """An absolute, normalised audio path: ``--remap`` first, then relative to the audio root.

        Every path resolved is kept in :attr:`audio_files` with its field, so the converter reports
        each missing file of a record together with the record's other problems.
        """
        if not isinstance(path, str) or not path.strip():
            raise RecordError(
                "BAD_FIELD", f"field '{field_name}' should be an audio path, got {path!r}", field_name
            )
        base = self.audio_root or self.base_dir
        hit = self.resolved.get((path, base))
        if hit is not None:
            return self._named_by(field_name, hit)
        original = path
        path = path.strip()
        if path.startswith("file://"):  # file:///abs/x.wav, file://localhost/abs/x.wav
            from urllib.parse import unquote, urlparse

            path = unquote(urlparse(path).path)
        for old, new in self.remap:
            if _has_prefix(path, old):
                rest = path[len(old) :]
                if "\\" in old and os.sep == "/":  # a Windows prefix: its remainder uses backslashes too
                    rest = rest.replace("\\", "/")
                path = new + rest
                break
        path = os.path.expanduser(path)
        if not os.path.isabs(path):
            path = os.path.join(base, path)
        path = os.path.normpath(os.path.abspath(path))
        if "\\" in path and os.sep == "/" and not self.path_exists(path):
            # a relative path written on Windows (``wavs\\a.wav``): its separators, when that file exists
            forward = path.replace("\\", "/")
            if self.path_exists(forward):
                path = forward
        if len(self.resolved) < 1_000_000:
            self.resolved[(original, base)] = path
        return self._named_by(field_name, path)

    def _named_by(self, field_name: str, path: str) -> str:
        """Remember which field named ``path``, so a missing file is reported with its field."""
        if self.audio_files is None:
            self.audio_files = {}
        self.audio_files.setdefault(path, field_name)
        return path

    def misc(self, source_format: str, **extra: Any) -> dict[str, Any]:
        out: dict[str, Any] = {
            "source_format": source_format,
            "source_file": self.source_file,
            "source_index": self.source_index,
        }
        if self.source_line is not None:
            out["source_line"] = self.source_line
        out.update({k: v for k, v in extra.items() if v is not None})
        if self.extracted:
            out["extracted_audio"] = list(self.extracted)
        return out

    def default_id(self) -> str:
        """``<file stem>-<index>`` for records without an id of their own."""
        stem = self.id_prefix or os.path.splitext(os.path.basename(self.source_file))[0]
        return f"{stem}-{self.source_index:06d}"


def _has_prefix(path: str, prefix: str) -> bool:
    """``prefix`` starts ``path`` at a folder boundary (``/data`` is not a prefix of ``/data2/x``)."""
    if not path.startswith(prefix):
        return False
    return len(path) == len(prefix) or prefix.endswith(("/", "\\")) or path[len(prefix)] in "/\\"


def text_field(record: dict[str, Any], name: str, *, required: bool = True) -> str | None:
    """A text field as a stripped string; numbers are accepted, other types are a BAD_FIELD."""
    value = record.get(name)
    if value is None:
        if required:
            raise RecordError("BAD_FIELD", f"field '{name}' is missing", name)
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise RecordError("BAD_FIELD", f"field '{name}' should be text, got {type(value).__name__}", name)
    return value.strip()


def record_id(record: dict[str, Any], keys: tuple[str, ...] = ("id", "utt_id", "audio_id")) -> str | None:
    """The record's own id: the first of ``keys`` with a non-empty value, or None."""
    for key in keys:
        if record.get(key) is not None and str(record[key]).strip():
            return str(record[key]).strip()
    return None


def speaker_of(record: dict[str, Any]) -> str | None:
    for key in ("speaker", "speaker_id", "spk", "speaker_name"):
        value = record.get(key)
        if value is not None and str(value).strip():
            return str(value).strip()
    return None


def tts_sample(
    *,
    sample_id: str,
    target_text: str | None,
    target_audio: str | None,
    references: list[tuple[str, str]],
    speaker: str | None,
    misc: dict[str, Any],
    system_prompt: str,
    scene: str | None = None,
) -> Sample:
    """The canonical layout: system, [scene], (ref text, ref audio)*, target text, [target audio].

    ``start_index`` points at the target text, so the target audio (when present) is supervised
    and the references are context. Without target audio the sample is a prompt. An instruction
    prefix on the target text is removed (:func:`~workbench.data.formats.instructions.strip_instruction`);
    the text as written is kept in ``misc.original_texts``.
    """
    messages = [Message("system", system_prompt)]
    if target_text:
        cleaned, prefix = strip_instruction(target_text)
        if prefix is not None:
            index = 1 + (1 if scene else 0) + 2 * len(references)
            misc = {
                **misc,
                "instruction": prefix.strip(),
                "original_texts": [{"message": index, "text": target_text}],
            }
            target_text = cleaned
    if scene:
        messages.append(Message("scene", scene))
    for ref_audio, ref_text in references:
        messages.append(Message("user", ref_text))
        messages.append(Message("assistant", Audio(ref_audio)))
    start_index = len(messages)
    messages.append(Message("user", target_text or ""))
    if target_audio:
        messages.append(Message("assistant", Audio(target_audio)))
    return Sample(id=sample_id, messages=tuple(messages), start_index=start_index, speaker=speaker, misc=misc)


def reference_candidate(
    ctx: ConvertContext,
    speaker: str | None,
    fields: Callable[[], tuple[str, str, str]],
) -> tuple[str, Utterance] | None:
    """A record as a same-speaker reference candidate (first pass), or None when it cannot be one.

    Args:
        ctx: the record's context (its pool says when the speaker has enough candidates).
        speaker: the record's speaker; records without one are never references.
        fields: returns ``(audio path, transcript, key)``; a :class:`RecordError` means "not a candidate".
    """
    if speaker is None or (ctx.pool is not None and ctx.pool.full(speaker)):
        return None
    try:
        audio, text, key = fields()
    except RecordError:
        return None
    if not text or not ctx.path_exists(audio):
        return None
    return speaker, Utterance(audio=audio, text=text, key=key)


def single_utterance_sample(
    record_id: str | None,
    audio: str,
    text: str,
    speaker: str | None,
    ctx: ConvertContext,
    source_format: str,
    **misc_extra: Any,
) -> Sample:
    """A target utterance, with a same-speaker reference from the pool when asked for."""
    sample_id = record_id or ctx.default_id()
    references: list[tuple[str, str]] = []
    ref = None
    if ctx.reference == "same-speaker" and ctx.pool is not None:
        ref = ctx.pool.choose(speaker, Utterance(audio=audio, text=text, key=sample_id))
        if ref is not None:
            references.append((ref.audio, ref.text))
    misc = ctx.misc(source_format, reference_id=ref.key if ref else None, **misc_extra)
    return tts_sample(
        sample_id=sample_id,
        target_text=text,
        target_audio=audio,
        references=references,
        speaker=speaker,
        misc=misc,
        system_prompt=ctx.system_prompt,
    )
