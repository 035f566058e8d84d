"""``workbench bench prepare``: how many times faster than real time ``prepare`` cuts and transcribes.

A synthetic recording of ``--minutes`` of ``espeak-ng`` speech with pauses and noise is written
once (not timed); then, on this machine's CPU:

- segmentation alone: decode, Silero VAD (batched streams), clip planning;
- Silero's own sequential loop on the same audio, for comparison;
- ``prepare`` end to end with a speech-recognition model (default: the tiny random Whisper),
  clips written;
- ``prepare`` end to end with subtitles (no VAD, no ASR), clips written.

Each figure is audio seconds divided by wall seconds ("× real time"); the goal for
segmentation is 100× on a CPU.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, field

from workbench.audio import load_audio, resample
from workbench.bench.data import bench_workdir, machine_description

SEGMENTATION_GOAL = 100.0


@dataclass
class PrepareBench:
    """Real-time factors per stage (audio seconds / wall seconds)."""

    audio_seconds: float
    machine: str
    stages: dict[str, dict[str, float]] = field(default_factory=dict)
    asr_model: str = "tiny"

    def format_text(self) -> str:
        minutes = self.audio_seconds / 60
        lines = [f"workbench bench prepare: {minutes:.1f} min of espeak-ng speech ({self.machine})"]
        for name, s in self.stages.items():
            extra = f", {int(s['clips'])} clips" if "clips" in s else ""
            lines.append(f"  {name:44s} {s['x_real_time']:8.1f}x real time  ({s['seconds']:.2f} s{extra})")
        seg = self.stages.get("segmentation (decode + Silero VAD + plan)")
        if seg:
            verdict = "met" if seg["x_real_time"] >= SEGMENTATION_GOAL else "NOT met"
            lines.append(
                f"  goal: segmentation >= {SEGMENTATION_GOAL:.0f}x real time: {verdict} "
                f"({seg['x_real_time'] / SEGMENTATION_GOAL:.2f}x the goal)"
            )
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {"audio_seconds": self.audio_seconds, "machine": self.machine, "stages": self.stages}


def _stage(seconds: float, audio_seconds: float, **extra: float) -> dict[str, float]:
    return {"seconds": seconds, "x_real_time": audio_seconds / seconds, **extra}


def bench_prepare(
    minutes: float = 10.0, asr_model: str = "tiny", workdir: str | os.PathLike | None = None
) -> PrepareBench:
    """Measure segmentation and end-to-end ``prepare`` speed on ``minutes`` of synthetic speech.

    Args:
        minutes: length of the synthetic recording.
        asr_model: ``"tiny"`` (a random tiny Whisper built locally) or a local Whisper folder.
        workdir: keep the recording, models and outputs here (default: a temporary folder).

    Raises:
        ValueError: ``espeak-ng`` is not installed, or ``minutes`` is not positive.
    """
    from workbench.demo.recordings import espeak_available, recording_of_length
    from workbench.prepare.pipeline import prepare
    from workbench.prepare.segment import SpeechDetector, plan_clips, split_long_regions
    from workbench.prepare.subtitles import write_srt

    if minutes <= 0:
        raise ValueError(f"--minutes: must be positive, got {minutes}")
    if not espeak_available():
        raise ValueError("bench prepare speaks its recording with espeak-ng: apt-get install espeak-ng")
    with bench_workdir(workdir, "workbench-bench-prepare-") as work:
        recording = recording_of_length(work / "speech" / "talk.wav", minutes)
        subtitled = work / "subtitled" / "talk.wav"
        subtitled.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(recording.path, subtitled)
        write_srt([(u.start, u.end, u.text) for u in recording.utterances], subtitled.with_suffix(".srt"))
        if asr_model == "tiny":
            from workbench.demo import build_tiny_whisper

            asr_model = str(build_tiny_whisper(work / "tiny-whisper"))
        import transformers.pipelines  # noqa: F401  (importing is once per process, not per hour of audio)

        result = PrepareBench(recording.duration, machine_description(), asr_model=asr_model)
        seconds = recording.duration

        detector = SpeechDetector()  # loading the model is not timed
        started = time.perf_counter()
        audio = load_audio(recording.path)
        speech = detector.regions(resample(audio, 24_000, 16_000))
        plans = plan_clips(split_long_regions(speech, audio, 24_000, 2.0, 15.0), seconds)
        result.stages["segmentation (decode + Silero VAD + plan)"] = _stage(
            time.perf_counter() - started, seconds, clips=len(plans)
        )
        audio16 = resample(audio, 24_000, 16_000)
        started = time.perf_counter()
        detector.sequential_probabilities(audio16)
        result.stages["VAD only, Silero's sequential loop"] = _stage(time.perf_counter() - started, seconds)

        for name, inputs, model in (
            ("prepare with ASR (model load included)", recording.path.parent, asr_model),
            ("prepare with subtitles", subtitled.parent, None),
        ):
            out = work / f"dataset-{'asr' if model else 'subtitles'}"
            shutil.rmtree(out, ignore_errors=True)
            started = time.perf_counter()
            report = prepare([inputs], out, speaker="bench", asr_model=model, progress=False)
            elapsed = time.perf_counter() - started
            result.stages[name] = _stage(elapsed, seconds, clips=sum(r.clips for r in report.inputs))
        return result
