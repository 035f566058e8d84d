"""Prepare (stage 00): long recordings in, a clip dataset that the data stage reads out.

Takes in recordings or folders of them, with optional subtitles (``.srt``/``.vtt``) or
transcripts (``inputs``: finding and pairing them; ``subtitles``). Gives out 24 kHz mono clips with
their text and a ``prepare.csv`` of every clip and every skipped stretch with its reason, written
into a resumable store (``store``): speech found by voice activity and cut at pauses
(``segment``), text from subtitles or a local Whisper model (``transcribe``), all driven by
``pipeline.prepare``, which is ``workbench prepare``.
"""

from workbench import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    pipeline=("prepare", "PrepareReport"),
)
