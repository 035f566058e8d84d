"""Cut long recordings into clips at pauses: voice activity, over-long speech, clip planning.

1. :class:`SpeechDetector` finds speech with Silero VAD (the ``silero-vad`` wheel ships its model;
   it runs offline on the CPU). The recording is cut into 30 s streams that run through the model
   side by side as one batch, each starting 3 s early so its state has settled: hundreds of times
   faster than real time on two cores, and the same decisions as one sequential pass on over 99 % of
   the 32 ms frames (the rest are single frames at speech edges).
2. :func:`split_long_regions` cuts speech that runs longer than a clip without a pause: between two
   words when word times are known (from speech recognition), else at the quietest 30 ms in range.
   Such clips are flagged, since a cut inside speech may fall inside a word.
3. :func:`plan_clips` groups speech regions (or subtitle cues) into clips of ``min_clip`` to
   ``max_clip`` seconds with a small padding, choosing the cuts by dynamic programming: it cuts at
   every pause of at least half a second when the clips stay long enough, prefers longer pauses,
   never keeps a pause over ``max_pause`` inside a clip, and cuts between words only to respect
   ``max_clip``.
"""

from __future__ import annotations

import contextlib
import logging
import math
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from workbench.audio import FRAME_SECONDS, frame_rms

log = logging.getLogger(__name__)

VAD_SAMPLE_RATE = 16_000
VAD_FRAME = 512  # samples per Silero decision at 16 kHz (32 ms)
STREAM_SECONDS = 30.0
WARMUP_SECONDS = 3.0

GOOD_PAUSE = 0.5  # seconds: a cut at a pause this long costs nothing, longer pauses are preferred
SHORT_CLIP_COST = 100.0  # a clip under min_clip is dropped; only chosen when nothing else fits
CLIP_COST = 0.05  # per clip: among equally good cuts, fewer clips
QUIET_WINDOW_SECONDS = 0.03  # a cut inside speech goes to the middle of its quietest 30 ms

FLAG_SPLIT_IN_SPEECH = "split_in_speech"  # cut at the quietest point of speech without a pause
FLAG_SPLIT_AT_WORD = "split_at_word"  # cut between two recognised words, without a pause
FLAG_TOO_SHORT = "too_short"  # shorter than min_clip even with its neighbours: not written
FLAG_TOO_LONG = "too_long"  # one subtitle cue longer than max_clip: written whole


@dataclass(frozen=True)
class Region:
    """A stretch of speech (or one subtitle cue) in a recording, in seconds."""

    start: float
    end: float
    text: str | None = None
    flags: tuple[str, ...] = ()

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass
class ClipPlan:
    """One planned clip: its range in the recording (padding included) and what it holds."""

    start: float
    end: float
    regions: list[Region] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)

    @property
    def duration(self) -> float:
        return self.end - self.start

    @property
    def text(self) -> str | None:
        """The regions' texts joined (subtitle cues), or None when they have none."""
        parts = [r.text for r in self.regions if r.text]
        return " ".join(parts) if parts else None


# --------------------------------------------------------------------------- voice activity
@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """Torch on one thread: the model's steps are tiny, and threads only wait on each other."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


class SpeechDetector:
    """Silero VAD over whole recordings.

    Args:
        threshold: speech probability above which a frame is speech (Silero's default 0.5).
        min_silence: seconds of silence that end a speech region (short gaps stay inside).
        min_speech: regions shorter than this are dropped (clicks, breaths).
    """

    def __init__(self, threshold: float = 0.5, min_silence: float = 0.1, min_speech: float = 0.25):
        import torch

        threads = torch.get_num_threads()
        from silero_vad import load_silero_vad  # its import sets torch to one thread for everyone

        torch.set_num_threads(threads)
        with warnings.catch_warnings():  # the wheel's loader uses APIs its dependencies deprecate
            warnings.simplefilter("ignore", DeprecationWarning)
            self.model = load_silero_vad()
        self.threshold = threshold
        self.min_silence = min_silence
        self.min_speech = min_speech

    def probabilities(self, audio16k: np.ndarray) -> np.ndarray:
        """Speech probability per 32 ms frame of mono 16 kHz audio: ``(ceil(len / 512),)``."""
        import torch

        n = len(audio16k)
        frames = -(-n // VAD_FRAME)
        if frames == 0:
            return np.zeros(0, np.float32)
        padded = np.zeros(frames * VAD_FRAME, np.float32)
        padded[:n] = audio16k
        per_stream = int(STREAM_SECONDS * VAD_SAMPLE_RATE / VAD_FRAME)
        warm = int(WARMUP_SECONDS * VAD_SAMPLE_RATE / VAD_FRAME)
        starts = range(0, frames, per_stream)
        steps = per_stream + warm
        batch = np.zeros((len(starts), steps * VAD_FRAME), np.float32)
        for b, first in enumerate(starts):
            lead = min(warm, first)
            piece = padded[(first - lead) * VAD_FRAME : (first + per_stream) * VAD_FRAME]
            offset = (warm - lead) * VAD_FRAME
            batch[b, offset : offset + len(piece)] = piece
        probs = np.zeros((len(starts), steps), np.float32)
        x = torch.from_numpy(batch)
        self.model.reset_states()
        with torch.inference_mode(), _one_thread():
            for t in range(steps):
                probs[:, t] = self.model(x[:, t * VAD_FRAME : (t + 1) * VAD_FRAME], VAD_SAMPLE_RATE)[
                    :, 0
                ].numpy()
        return probs[:, warm:].reshape(-1)[:frames]

    def regions(self, audio16k: np.ndarray) -> list[Region]:
        """Speech regions of mono 16 kHz audio, in seconds, in order."""
        from silero_vad import get_speech_timestamps_from_probs

        probs = self.probabilities(audio16k)
        if len(probs) == 0:
            return []
        stamps = get_speech_timestamps_from_probs(
            probs.tolist(),
            sampling_rate=VAD_SAMPLE_RATE,
            threshold=self.threshold,
            min_speech_duration_ms=int(self.min_speech * 1000),
            min_silence_duration_ms=int(self.min_silence * 1000),
            speech_pad_ms=30,
            audio_length_samples=len(audio16k),
        )
        return [Region(s["start"] / VAD_SAMPLE_RATE, s["end"] / VAD_SAMPLE_RATE) for s in stamps]

    def sequential_probabilities(self, audio16k: np.ndarray) -> np.ndarray:
        """Silero's own one-stream pass (for comparison in benchmarks and tests)."""
        import torch

        self.model.reset_states()
        with torch.inference_mode(), _one_thread():
            out = self.model.audio_forward(
                torch.from_numpy(np.ascontiguousarray(audio16k))[None], VAD_SAMPLE_RATE
            )
        return out[0].numpy()


# --------------------------------------------------------------------------- over-long speech
def quietest_point(audio: np.ndarray, sample_rate: int, lo: float, hi: float) -> float:
    """The centre (seconds) of the quietest 30 ms window (every 10 ms) between ``lo`` and ``hi`` seconds."""
    a, b = int(lo * sample_rate), int(hi * sample_rate)
    piece = audio[a:b]
    if len(piece) < int(QUIET_WINDOW_SECONDS * sample_rate):
        return (lo + hi) / 2
    energy = frame_rms(piece, sample_rate, window=QUIET_WINDOW_SECONDS)
    return lo + (int(np.argmin(energy)) * FRAME_SECONDS + QUIET_WINDOW_SECONDS / 2)


def _best_word_gap(words: Sequence[tuple[float, float]], lo: float, hi: float) -> float | None:
    """The middle of the widest gap between consecutive words whose middle lies in ``[lo, hi]``."""
    best, best_width = None, -1.0
    for (_, end), (start, _) in zip(words, words[1:], strict=False):
        middle = (end + start) / 2
        if lo <= middle <= hi and start - end > best_width:
            best, best_width = middle, start - end
    return best


def split_long_regions(
    regions: Sequence[Region],
    audio: np.ndarray,
    sample_rate: int,
    min_clip: float,
    max_clip: float,
    word_times=None,
) -> list[Region]:
    """Regions no longer than ``max_clip``: longer ones are cut inside the speech, and flagged.

    Args:
        regions: speech regions in seconds.
        audio: the recording (mono) at ``sample_rate``, for finding the quietest point.
        min_clip, max_clip: clip bounds in seconds; each piece is at least ``min_clip`` when it can be.
        word_times: optional ``callable(start, end) -> [(word_start, word_end), ...] | None`` giving
            word times in seconds of the recording; a cut then falls between two words.

    Returns:
        The regions in order; pieces of a cut region carry :data:`FLAG_SPLIT_AT_WORD` or
        :data:`FLAG_SPLIT_IN_SPEECH`.
    """
    out: list[Region] = []
    for region in regions:
        if region.duration <= max_clip:
            out.append(region)
            continue
        words = word_times(region.start, region.end) if word_times is not None else None
        start, pieces = region.start, []
        while region.end - start > max_clip:
            lo = start + min_clip
            hi = min(start + max_clip, region.end - min_clip)
            if hi <= lo:  # the rest cannot give two pieces of min_clip: halve it
                lo = hi = (start + region.end) / 2
            cut = _best_word_gap(words, lo, hi) if words else None
            flag = FLAG_SPLIT_AT_WORD
            if cut is None:
                cut, flag = quietest_point(audio, sample_rate, lo, hi), FLAG_SPLIT_IN_SPEECH
            pieces.append((start, cut, flag))
            start = cut
        pieces.append((start, region.end, pieces[-1][2]))
        for a, b, flag in pieces:
            out.append(Region(a, b, region.text, (*region.flags, flag)))
        log.info(
            "speech without a pause from %.2f s to %.2f s cut into %d clips (%s)",
            region.start,
            region.end,
            len(pieces),
            pieces[0][2],
        )
    return out


# --------------------------------------------------------------------------- clip planning
def merge_overlapping(regions: Sequence[Region]) -> list[Region]:
    """Sort regions and merge the ones that overlap (overlapping cues cannot be cut apart)."""
    merged: list[Region] = []
    for r in sorted(regions, key=lambda r: (r.start, r.end)):
        if merged and r.start < merged[-1].end:
            last = merged[-1]
            text = " ".join(t for t in (last.text, r.text) if t) or None
            merged[-1] = Region(
                last.start, max(last.end, r.end), text, tuple(dict.fromkeys(last.flags + r.flags))
            )
        else:
            merged.append(r)
    return merged


def plan_clips(
    regions: Sequence[Region],
    duration: float,
    min_clip: float = 2.0,
    max_clip: float = 15.0,
    pad: float = 0.2,
    max_pause: float = 2.0,
) -> list[ClipPlan]:
    """Group regions into clips, cutting in the pauses between them.

    Each clip spans whole regions plus ``pad`` seconds each side, capped at half the pause to
    the neighbouring region and at the recording's ends, so clips never overlap. Cuts are
    chosen by dynamic programming over the pauses: a clip must not exceed ``max_clip`` (unless
    it is one region that does: a subtitle cue, flagged :data:`FLAG_TOO_LONG`), must not hold a
    pause longer than ``max_pause``, and should reach ``min_clip`` (clips that cannot are returned
    flagged :data:`FLAG_TOO_SHORT`). Among the plans that meet these, cuts at longer pauses win, a
    cut at a pause under 0.5 s costs in proportion, and fewer clips win ties.

    Args:
        regions: speech regions or subtitle cues, in seconds; overlapping ones are merged.
        duration: the recording's length in seconds.

    Returns:
        Clip plans in order; each keeps its regions (with their texts and flags).
    """
    regions = merge_overlapping(regions)
    n = len(regions)
    if n == 0:
        return []
    gaps = [regions[k + 1].start - regions[k].end for k in range(n - 1)]

    def pad_before(i: int) -> float:
        room = regions[i].start if i == 0 else gaps[i - 1] / 2
        return max(0.0, min(pad, room))

    def pad_after(j: int) -> float:
        room = duration - regions[j].end if j == n - 1 else gaps[j] / 2
        return max(0.0, min(pad, room))

    def cut_cost(g: float) -> float:
        return 1.0 - min(g, 2 * GOOD_PAUSE) / GOOD_PAUSE  # 1 at no pause, 0 at 0.5 s, -1 from 1 s

    best = [math.inf] * (n + 1)
    choice = [0] * (n + 1)
    best[0] = 0.0
    for j in range(1, n + 1):  # best plan for regions[:j], the last clip being regions[i:j]
        for i in range(j - 1, -1, -1):
            if i < j - 1 and gaps[i] > max_pause:
                break  # the clip would hold a long pause; earlier starts hold it too
            length = regions[j - 1].end + pad_after(j - 1) - regions[i].start + pad_before(i)
            if length > max_clip + 1e-9 and i < j - 1:
                break
            cost = best[i] + CLIP_COST + (SHORT_CLIP_COST if length < min_clip - 1e-9 else 0.0)
            if j < n:
                cost += cut_cost(gaps[j - 1])
            if cost < best[j]:
                best[j], choice[j] = cost, i
    clips: list[ClipPlan] = []
    j = n
    while j > 0:
        i = choice[j]
        members = list(regions[i:j])
        plan = ClipPlan(regions[i].start - pad_before(i), regions[j - 1].end + pad_after(j - 1), members)
        plan.flags = list(dict.fromkeys(f for r in members for f in r.flags))
        if plan.duration < min_clip - 1e-9:
            plan.flags.append(FLAG_TOO_SHORT)
        elif plan.duration > max_clip + 1e-9:
            plan.flags.append(FLAG_TOO_LONG)
        clips.append(plan)
        j = i
    return clips[::-1]


def trim_to_speech(regions: Sequence[Region], duration: float, pad: float = 0.2) -> tuple[float, float]:
    """The range from the first speech to the last, padded; the whole recording without speech."""
    if not regions:
        return 0.0, duration
    return max(0.0, regions[0].start - pad), min(duration, regions[-1].end + pad)
