"""Trim edge silence from an audio file into a new file: the audio operation of the ``trim_silence`` fix.

The voiced span is the one the probe reports (:func:`workbench.audio.voiced_span` over the file's
own samples), so a clip the validator flags for long edge silence is cut where the finding says.
The source is only read; the copy keeps its rate, channels and sample format.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import soundfile as sf

from workbench.audio import SILENCE_DB_BELOW_PEAK, voiced_span
from workbench.files import atomic_path

# Source subtype -> (dtype read and written unchanged, WAV subtype written); others become 16-bit PCM.
_NATIVE = {
    "PCM_16": ("int16", "PCM_16"),
    "PCM_24": ("int32", "PCM_24"),
    "PCM_32": ("int32", "PCM_32"),
    "FLOAT": ("float32", "FLOAT"),
    "DOUBLE": ("float64", "DOUBLE"),
}


def trim_file(
    src: str, folder: str | os.PathLike, threshold_db: float = SILENCE_DB_BELOW_PEAK, keep_ms: float = 100
) -> tuple[str | None, str]:
    """Write ``src`` without its edge silence into ``folder``; the source is only read.

    The copy keeps the sample rate, channels and (for PCM/float WAV-compatible data) the sample
    format; its name derives from the audio content and the parameters, so replays reuse it.

    Args:
        src: the audio file.
        folder: where the trimmed copy goes.
        threshold_db: a 10 ms frame this far below the loudest is silence.
        keep_ms: silence kept at each edge.

    Returns:
        ``(new_path, note)``; ``new_path`` is None when nothing was written (the note says why).
    """
    if not os.path.isfile(src):
        return None, f"{src}: file not found; not trimmed"
    try:
        # The file's own samples, not the model's view: the copy must keep them bit for bit.
        with sf.SoundFile(src) as fh:
            dtype, subtype = _NATIVE.get(fh.subtype, ("float32", "PCM_16"))
            sr = fh.samplerate
            data = fh.read(dtype=dtype, always_2d=True)
    except Exception as exc:  # libsndfile raises several types for corrupt files
        return None, f"{src}: cannot read ({type(exc).__name__}: {exc}); not trimmed"
    span = voiced_span(data, sr, threshold_db)
    if span is None:
        return None, f"{src}: silent; not trimmed"
    frames = len(data)
    keep = int(round(keep_ms * sr / 1000))
    start, end = max(0, span[0] - keep), min(frames, span[1] + keep)
    if start == 0 and end == frames:
        return None, f"{src}: no edge silence beyond {keep_ms:g} ms; unchanged"
    digest = hashlib.blake2b(data.tobytes(), digest_size=8)
    digest.update(f"{sr}:{data.shape[1]}:{subtype}:{threshold_db}:{keep_ms}".encode())
    out = Path(folder).absolute() / f"{Path(src).stem}.{digest.hexdigest()}.wav"
    if not out.exists():  # same name = same content and parameters: a replay reuses the file
        with atomic_path(out, suffix=".wav") as tmp:
            sf.write(str(tmp), data[start:end], sr, subtype=subtype, format="WAV")
    cut = f"cut {start / sr:.2f} s at start, {(frames - end) / sr:.2f} s at end"
    return str(out), f"{src} -> {out} ({cut})"
