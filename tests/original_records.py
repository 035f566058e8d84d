"""Records as the original Higgs tooling writes them, shared by the format and convert tests."""

from __future__ import annotations

from typing import Any


def voice_cloning_record(**misc: Any) -> dict[str, Any]:
    """A voice-cloning record: ``[text, reference audio]`` from the user, empty assistant audio, ``misc`` extras.

    Its reference file is ``ref.wav``; the text to speak, if any, is in ``misc`` (``target_text``).
    """
    return {
        "id": "vc",
        "messages": [
            {"role": "system", "content": "Generate audio following instruction."},
            {"role": "user", "content": [{"type": "text", "text": "ref words"}, {"type": "audio", "audio_url": "ref.wav"}]},
            {"role": "assistant", "content": [{"type": "audio", "audio_url": ""}]},
        ],
        **({"misc": misc} if misc else {}),
    }  # fmt: skip
