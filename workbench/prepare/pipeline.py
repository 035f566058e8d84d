"""``workbench prepare``: long recordings in, a folder of clips with transcripts out.

For each input recording (wav/flac/mp3/ogg/opus, any rate, any number of channels) the text of
each clip comes from, in this order:

1. ``subtitle``: a sidecar ``.srt`` or ``.vtt`` with the same stem; clips follow the cue times,
   neighbouring cues merged into clips of ``min_clip`` to ``max_clip`` seconds;
2. ``given``: a sidecar ``.txt`` with the whole file's transcript. A file no longer than
   ``max_clip`` becomes one clip (trimmed to its speech); a longer one is cut at pauses and the
   transcript is spread over the clips by matching it to what ``asr_model`` hears;
3. ``asr``: cut at pauses (Silero VAD) and transcribed with ``asr_model`` (a local Whisper).

The output is ``DATASET_DIR/<speaker>/clip_0001.wav`` + ``.txt`` at 24 kHz mono (the folder
layout ``workbench convert`` reads, the speaker from the folder) and ``DATASET_DIR/prepare.csv``.
Runs resume: clips already written are skipped (see :mod:`workbench.prepare.store`).

Examples:
    >>> report = prepare(["talk.mp3"], "dataset", speaker="anna", asr_model="/models/whisper-small")  # doctest: +SKIP
    >>> print(report.summary_line())  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from workbench.audio import TARGET_SAMPLE_RATE, load_audio, resample
from workbench.prepare.inputs import (
    ASR,
    AUDIO_SUFFIXES,
    GIVEN,
    SUBTITLE,
    PrepareInput,
    find_inputs,
)
from workbench.prepare.segment import (
    FLAG_TOO_SHORT,
    ClipPlan,
    Region,
    SpeechDetector,
    plan_clips,
    split_long_regions,
    trim_to_speech,
)
from workbench.prepare.store import CSV_NAME, Store, input_key, read_prepare_csv, write_clip
from workbench.prepare.subtitles import read_subtitles
from workbench.prepare.transcribe import (
    ASR_SAMPLE_RATE,
    AsrModelError,
    Transcriber,
    align_transcript,
    resolve_asr_model,
)

__all__ = ["PrepareReport", "prepare", "find_inputs", "read_prepare_csv", "CSV_NAME"]

log = logging.getLogger(__name__)

PREPARE_VERSION = 1  # bump when the same settings would cut differently, so old state is not resumed
FLAG_LOW_CONFIDENCE = "low_confidence"
FLAG_WEAK_ALIGNMENT = "weak_alignment"  # under half of the clip's given words were heard by the model
FLAG_NO_TEXT = "no_text"  # the model heard nothing: not written
FLAG_NO_SPEECH_DETECTED = "no_speech_detected"  # a short file with a transcript but no speech found
FLAG_OUTSIDE_AUDIO = "cue_outside_audio"  # a subtitle cue after the end of the audio: not written
DROPPED = {FLAG_TOO_SHORT, FLAG_NO_TEXT, FLAG_OUTSIDE_AUDIO}
WEAK_ALIGNMENT = 0.5
FADE_SECONDS = 0.005  # at each clip edge, so a cut inside speech does not click


@dataclass
class InputResult:
    """What happened to one input."""

    source: str
    speaker: str
    text_source: str
    seconds: float = 0.0
    clips: int = 0
    kept_seconds: float = 0.0
    flagged: int = 0
    dropped: int = 0
    already_done: int = 0  # clips found from an earlier run
    error: str | None = None


@dataclass
class PrepareReport:
    """The outcome of :func:`prepare`; ``rows`` are all of ``prepare.csv`` (earlier inputs too)."""

    dataset_dir: str
    inputs: list[InputResult] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)

    @property
    def failed(self) -> list[InputResult]:
        return [r for r in self.inputs if r.error]

    def summary_line(self) -> str:
        """Hours in, clips out, hours kept, flagged, dropped (this run's inputs), failures."""
        ok = [r for r in self.inputs if not r.error]
        seconds_in = sum(r.seconds for r in ok)
        clips = sum(r.clips for r in ok)
        kept = sum(r.kept_seconds for r in ok)
        line = (
            f"{len(self.inputs)} input(s), {_hours(seconds_in)} in -> {clips} clips, {_hours(kept)} kept "
            f"({kept / seconds_in:.0%}), {sum(r.flagged for r in ok)} flagged, "
            f"{sum(r.dropped for r in ok)} dropped"
            if seconds_in
            else f"{len(self.inputs)} input(s), nothing readable in"
        )
        done = sum(r.already_done for r in ok)
        if done:
            line += f"; {done} clips were already done"
        if self.failed:
            line += f"; {len(self.failed)} input(s) failed"
        return line

    def to_dict(self) -> dict[str, Any]:
        return {
            "dataset_dir": self.dataset_dir,
            "inputs": [asdict(r) for r in self.inputs],
            "rows": self.rows,
        }


def _bar(progress: bool, **kwargs: Any):
    """A tqdm bar; without ``progress`` a silent one. Otherwise tqdm's own defaults apply, so
    ``TQDM_DISABLE=1`` (set for headless notebook runs) still turns it off."""
    from tqdm.auto import tqdm

    return tqdm(**kwargs) if progress else tqdm(disable=True, **kwargs)


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.2f} h ({seconds / 60:.1f} min)"


# --------------------------------------------------------------------------- the run
@dataclass
class _Settings:
    min_clip: float
    max_clip: float
    pad: float
    max_pause: float
    asr_model: str | None
    language: str | None

    def check(self) -> list[str]:
        problems = []
        if not 0.5 <= self.min_clip:
            problems.append(f"min_clip: must be at least 0.5 s, got {self.min_clip}")
        if not self.min_clip < self.max_clip <= 30:
            problems.append(
                f"max_clip: must be above min_clip ({self.min_clip}) and at most 30 s, got {self.max_clip}"
            )
        if self.pad < 0:
            problems.append(f"pad: must be >= 0, got {self.pad}")
        if self.max_pause <= 0:
            problems.append(f"max_pause: must be > 0, got {self.max_pause}")
        return problems

    def for_input(self, item: PrepareInput) -> dict[str, Any]:
        """What decides an input's clips: a change means its clips must be made again."""
        st = os.stat(item.path)
        sidecar = item.subtitles or item.transcript
        out: dict[str, Any] = {
            "version": PREPARE_VERSION,
            "source": [st.st_size, st.st_mtime_ns],
            "speaker": item.speaker,
            "text_source": item.text_source,
            "min_clip": self.min_clip,
            "max_clip": self.max_clip,
            "pad": self.pad,
            "max_pause": self.max_pause,
        }
        if sidecar:
            sst = os.stat(sidecar)
            out["sidecar"] = [sidecar, sst.st_size, sst.st_mtime_ns]
        if item.needs_asr(self.max_clip):
            out["asr_model"], out["language"] = self.asr_model, self.language
        return out


def _changes(old: dict[str, Any], new: dict[str, Any]) -> str:
    keys = sorted(set(old) | set(new))
    return ", ".join(f"{k} {old.get(k)!r} -> {new.get(k)!r}" for k in keys if old.get(k) != new.get(k))


def prepare(
    inputs: str | os.PathLike | Iterable[str | os.PathLike],
    dataset_dir: str | os.PathLike,
    *,
    speaker: str | None = None,
    asr_model: str | None = None,
    language: str | None = None,
    min_clip: float = 2.0,
    max_clip: float = 15.0,
    overwrite: bool = False,
    pad: float = 0.2,
    max_pause: float = 2.0,
    device: str | None = None,
    progress: bool = True,
) -> PrepareReport:
    """Cut recordings into clips with transcripts under ``dataset_dir`` (see the module docstring).

    Args:
        inputs: recordings or folders of them (sidecar ``.srt``/``.vtt``/``.txt`` beside each).
        dataset_dir: the output folder (new, empty, or made by an earlier run, which is resumed).
        speaker: the speaker folder for every clip (default: from the input's folder).
        asr_model: a local speech-recognition model folder or cached hub id; needed for inputs
            without subtitles, and for transcripts of files longer than ``max_clip``.
        language: the spoken language for multilingual Whisper models (default: detected).
        min_clip, max_clip: clip length bounds in seconds (padding included).
        overwrite: make the given inputs' clips again even when an earlier run made them.
        pad: seconds of the pause kept before and after the speech of each clip.
        max_pause: a pause longer than this is never kept inside a clip.
        device: for the speech-recognition model (default: CUDA when available).
        progress: show progress bars.

    Returns:
        A :class:`PrepareReport` (per input, and all rows of ``prepare.csv``).

    Raises:
        ValueError: bad settings (all named at once).
        AsrModelError: an input needs ``asr_model`` and none (or a missing one) was given.
        FileNotFoundError, FileExistsError: a missing input; a DATASET_DIR holding other files.
    """
    settings = _Settings(float(min_clip), float(max_clip), float(pad), float(max_pause), asr_model, language)
    problems = settings.check()
    if problems:
        raise ValueError("prepare: " + "; ".join(problems))
    items = find_inputs([inputs] if isinstance(inputs, (str, os.PathLike)) else inputs, dataset_dir, speaker)
    if not items:
        raise FileNotFoundError(f"no audio files ({', '.join(AUDIO_SUFFIXES)}) in the inputs")
    needing = [i.path for i in items if i.needs_asr(settings.max_clip)]
    if needing and not asr_model:
        names = ", ".join(needing[:5]) + (f" and {len(needing) - 5} more" if len(needing) > 5 else "")
        raise AsrModelError(
            f"{len(needing)} input(s) need a speech-recognition model for their text ({names}): they have no "
            "subtitles (.srt/.vtt) beside them, or only a whole-file .txt transcript while longer than "
            f"max_clip ({settings.max_clip:g} s). Pass --asr-model with a local Whisper folder or a hub id "
            "already in the Hugging Face cache, or put subtitles beside them."
        )
    if asr_model:
        resolve_asr_model(asr_model)  # a typo fails now, not after the first inputs
    store = Store(dataset_dir)
    store.check_ownership()
    store.root.mkdir(parents=True, exist_ok=True)
    store.state_dir.mkdir(exist_ok=True)
    states = store.load_all()
    removed = store.remove_orphans(states.values())
    if removed:
        log.info("removed %d clip file(s) left by an interrupted run", removed)
    run = _Run(store, states, settings, device, progress)
    report = PrepareReport(str(store.root))
    bar = _bar(progress and len(items) > 1, total=len(items), desc="recordings", unit="file")
    for item in items:
        report.inputs.append(run.one(item, overwrite))
        store.write_csv(states.values())
        bar.update(1)
    bar.close()
    store.write_csv(states.values())
    report.rows = read_prepare_csv(store.root)
    return report


class _Run:
    """State shared across the inputs of one :func:`prepare` call (models load once, when needed)."""

    def __init__(self, store: Store, states: dict, settings: _Settings, device: str | None, progress: bool):
        self.store, self.states, self.settings = store, states, settings
        self.device, self.progress = device, progress
        self.numbers = store.next_numbers(states.values())
        self._vad: SpeechDetector | None = None
        self._asr: Transcriber | None = None

    @property
    def vad(self) -> SpeechDetector:
        if self._vad is None:
            self._vad = SpeechDetector()
        return self._vad

    @property
    def asr(self) -> Transcriber:
        if self._asr is None:
            if not self.settings.asr_model:
                raise AsrModelError("this input needs --asr-model")
            self._asr = Transcriber(self.settings.asr_model, self.settings.language, self.device)
        return self._asr

    def one(self, item: PrepareInput, overwrite: bool) -> InputResult:
        result = InputResult(item.path, item.speaker, item.text_source)
        key = input_key(item.path)
        wanted = self.settings.for_input(item)
        state = self.states.get(key)
        if state is not None and (overwrite or state["settings"] != wanted):
            if not overwrite:
                result.error = (
                    f"{item.path}: its clips in {self.store.root} were made with other settings or from "
                    f"another version of the file ({_changes(state['settings'], wanted)}); pass --overwrite "
                    "to make them again, or use a new DATASET_DIR"
                )
                return result
            self.store.forget(state)
            state = None
        if state is None:
            state = {
                "source": item.path,
                "settings": wanted,
                "complete": False,
                "plan": None,
                "heard": {},
                "rows": {},
            }
            self.states[key] = state
        result.already_done = sum(1 for r in state["rows"].values() if r.get("file_name"))
        try:
            if not state["complete"]:
                self._make(item, state)
        except AsrModelError:
            raise
        except (ValueError, OSError) as exc:
            result.error = str(exc) if item.path in str(exc) else f"{item.path}: {exc}"
            log.error("%s", result.error)
            return result
        rows = list(state["rows"].values())
        result.seconds = state.get("seconds", 0.0)
        written = [r for r in rows if r.get("file_name")]
        result.clips, result.kept_seconds = len(written), sum(r["duration"] for r in written)
        result.flagged = sum(1 for r in written if r["flags"])
        result.dropped = len(rows) - len(written)
        return result

    # -- one input ---------------------------------------------------------------------------
    def _make(self, item: PrepareInput, state: dict[str, Any]) -> None:
        audio = load_audio(item.path)
        if len(audio) == 0:
            raise ValueError(f"{item.path}: the file holds no audio samples")
        duration = len(audio) / TARGET_SAMPLE_RATE
        state["seconds"] = duration
        audio16: np.ndarray | None = None
        source = item.text_source
        outside: list[Region] = []
        if source == SUBTITLE:
            cues = read_subtitles(item.subtitles)
            regions = [Region(c.start, min(c.end, duration), c.text) for c in cues if c.start < duration]
            outside = [
                Region(c.start, c.end, c.text, (FLAG_OUTSIDE_AUDIO,)) for c in cues if c.start >= duration
            ]
            plans = plan_clips(regions, duration, **self._bounds())
        else:
            audio16 = resample(audio, TARGET_SAMPLE_RATE, ASR_SAMPLE_RATE)
            speech = self.vad.regions(audio16)
            if source == GIVEN and duration <= self.settings.max_clip:
                start, end = trim_to_speech(speech, duration, self.settings.pad)
                flags = [] if speech else [FLAG_NO_SPEECH_DETECTED]
                if end - start < self.settings.min_clip:
                    flags.append(FLAG_TOO_SHORT)
                plans = [ClipPlan(start, end, [Region(start, end)], flags)]
            else:
                words = None
                if self.settings.asr_model:
                    a16 = audio16

                    def words(s: float, e: float) -> list[tuple[float, float]] | None:
                        piece = a16[int(s * ASR_SAMPLE_RATE) : int(e * ASR_SAMPLE_RATE)]
                        return self.asr.word_times(piece, offset=s)

                pieces = split_long_regions(
                    speech, audio, TARGET_SAMPLE_RATE, self.settings.min_clip, self.settings.max_clip, words
                )
                plans = plan_clips(pieces, duration, **self._bounds())
        signature = [[round(p.start, 3), round(p.end, 3)] for p in plans]
        if state["plan"] is not None and state["plan"] != signature:  # not the same cuts: start over
            self.store.forget(state)
            state.update(plan=None, heard={}, rows={})
        state["plan"] = signature
        texts = self._texts(item, plans, audio16, state)
        self._write(item, plans, texts, audio, state)
        for k, region in enumerate(outside):
            state["rows"][f"outside{k}"] = self._row(
                item, None, region.start, region.end, region.text, SUBTITLE, None, list(region.flags)
            )
        state["complete"] = True
        self.store.save(state)

    def _bounds(self) -> dict[str, float]:
        s = self.settings
        return {"min_clip": s.min_clip, "max_clip": s.max_clip, "pad": s.pad, "max_pause": s.max_pause}

    def _texts(
        self, item: PrepareInput, plans: list[ClipPlan], audio16: np.ndarray | None, state: dict[str, Any]
    ) -> list[tuple[str, str, dict[str, Any], list[str]]]:
        """Per plan: (text, text source, {"confidence", "no_speech"}, flags)."""
        source = item.text_source
        if source == SUBTITLE:
            return [(p.text or "", SUBTITLE, {}, []) for p in plans]
        if source == GIVEN and not item.needs_asr(self.settings.max_clip):
            text = " ".join(Path(item.transcript).read_text(encoding="utf-8-sig").split())
            return [(text, GIVEN, {}, []) for _ in plans]
        heard = self._transcribe(plans, audio16, state)
        if source == ASR:
            return [(h["text"], ASR, h, [FLAG_LOW_CONFIDENCE] if h["low"] else []) for h in heard]
        transcript = " ".join(Path(item.transcript).read_text(encoding="utf-8-sig").split())
        durations = [p.duration for p in plans]
        aligned = align_transcript(transcript, [h["text"] for h in heard], durations)
        out = []
        for (text, share), h in zip(aligned, heard, strict=True):
            flags = [FLAG_LOW_CONFIDENCE] if h["low"] else []
            if share < WEAK_ALIGNMENT:
                flags.append(FLAG_WEAK_ALIGNMENT)
            out.append((text, GIVEN, {**h, "alignment": share}, flags))
        return out

    def _transcribe(
        self, plans: list[ClipPlan], audio16: np.ndarray | None, state: dict[str, Any]
    ) -> list[dict]:
        """What the model hears in each kept clip; earlier results come from the state."""
        assert audio16 is not None
        todo = [
            k for k, p in enumerate(plans) if str(k) not in state["heard"] and FLAG_TOO_SHORT not in p.flags
        ]
        bar = _bar(
            self.progress and bool(todo), total=len(todo), desc="transcribing", unit="clip", leave=False
        )
        batch = self.asr.batch_size
        for n in range(0, len(todo), batch):
            chunk = todo[n : n + batch]
            pieces = [
                audio16[int(plans[k].start * ASR_SAMPLE_RATE) : int(plans[k].end * ASR_SAMPLE_RATE)]
                for k in chunk
            ]
            for k, t in zip(chunk, self.asr.transcribe(pieces), strict=True):
                state["heard"][str(k)] = {
                    "text": t.text, "confidence": t.confidence, "no_speech": t.no_speech, "low": t.low_confidence()
                }  # fmt: skip
            self.store.save(state)
            bar.update(len(chunk))
        bar.close()
        empty = {"text": "", "confidence": None, "no_speech": None, "low": False}
        return [state["heard"].get(str(k), empty) for k in range(len(plans))]

    def _write(self, item, plans, texts, audio: np.ndarray, state: dict[str, Any]) -> None:
        folder = self.store.root / item.speaker
        fade = np.linspace(0.0, 1.0, int(FADE_SECONDS * TARGET_SAMPLE_RATE), dtype=np.float32)
        bar = _bar(self.progress, total=len(plans), desc="writing clips", unit="clip", leave=False)
        for k, (plan, (text, source, scores, extra)) in enumerate(zip(plans, texts, strict=True)):
            bar.update(1)
            key = str(k)
            flags = list(dict.fromkeys(plan.flags + extra))
            if not text.strip() and FLAG_TOO_SHORT not in flags:
                flags.append(FLAG_NO_TEXT)
            row = state["rows"].get(key)
            if row is not None and (not row["file_name"] or (self.store.root / row["file_name"]).is_file()):
                continue  # done in an earlier run
            file_name = None
            a, b = (
                round(plan.start * TARGET_SAMPLE_RATE),
                min(len(audio), round(plan.end * TARGET_SAMPLE_RATE)),
            )
            if not DROPPED & set(flags):
                number = self.numbers.get(item.speaker, 1)
                self.numbers[item.speaker] = number + 1
                name = f"clip_{number:04d}"
                clip = audio[a:b].copy()
                if len(clip) > 2 * len(fade):
                    clip[: len(fade)] *= fade
                    clip[-len(fade) :] *= fade[::-1]
                write_clip(folder, name, clip, text)
                file_name = f"{item.speaker}/{name}.wav"
            start, end = a / TARGET_SAMPLE_RATE, b / TARGET_SAMPLE_RATE  # exactly the clip's samples
            state["rows"][key] = self._row(item, file_name, start, end, text, source, scores, flags)
            self.store.save(state)
        bar.close()

    def _row(self, item, file_name, start, end, text, source, scores, flags) -> dict[str, Any]:
        scores = scores or {}
        return {
            "file_name": file_name,
            "speaker": item.speaker,
            "source_file": item.path,
            "start": round(start, 6),
            "end": round(end, 6),
            "duration": round(end - start, 6),
            "text": text,
            "text_source": source,
            "confidence": scores.get("confidence"),
            "no_speech": scores.get("no_speech"),
            "flags": flags,
        }
