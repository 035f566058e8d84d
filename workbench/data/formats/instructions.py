"""Instruction prefixes that source datasets put in front of the text to be spoken.

Datasets written for the original Higgs Audio tooling and its community trainers often phrase
the target turn as a request: ``"Please generate speech for given text in reference audio's
voice: Hello there."``. The model must learn to speak ``"Hello there."``; at inference the
workbench (like the original generation scripts) passes the plain text, so the prefix would be
a train/inference mismatch and, worse, spoken words the audio does not contain.

:func:`strip_instruction` removes one leading prefix of the forms below (case-insensitive; a
colon ends the prefix; "reference audio's voice", "the reference voice" and "the voice of the
reference audio" are interchangeable). The converter keeps the original text in the sample's
``misc.original_texts``, so nothing is lost.

- ``Please generate speech for given text in reference audio's voice:``
- ``Please generate speech for (the) given/following text:``, ``Generate speech for:``
- ``Generate/Synthesize/Produce/Create (the) speech/audio for/of/from (the) given/following text:``
- ``Please read/say/speak (the following text / this text / this) (in the reference voice):``
- ``Convert/Turn the following text into speech:``, ``Text to speech:``, ``TTS:``
"""

from __future__ import annotations

import re

_VOICE = r"(?:\s+(?:in|with|using)\s+(?:the\s+)?(?:reference\s+audio'?s?|reference|provided|given|same)\s+voice" \
         r"|\s+in\s+the\s+voice\s+of\s+the\s+(?:reference|provided|given)(?:\s+audio)?)?"  # fmt: skip
_TEXT = r"(?:\s+(?:the\s+)?(?:given|following|this|below)(?:\s+text)?|\s+(?:the\s+)?text(?:\s+below)?)?"
_PLEASE = r"(?:please\s+|kindly\s+)?"
_COLON = r"\s*[:：]\s*"

INSTRUCTION_PATTERNS: tuple[str, ...] = (
    # "Please generate speech for given text in reference audio's voice:", "Generate speech for:"
    _PLEASE + r"(?:generate|synthesi[sz]e|produce|create|make)\s+(?:the\s+)?(?:speech|audio|voice)"
    r"(?:\s+(?:for|of|from))?" + _TEXT + _VOICE + _COLON,
    # "Please read the following text in the reference voice:", "Say this:"
    _PLEASE + r"(?:read|say|speak)(?:\s+(?:aloud|out\s+loud))?" + _TEXT + _VOICE + _COLON,
    # "Convert the following text into speech:", "Text to speech:", "TTS:"
    _PLEASE + r"(?:convert|turn)" + _TEXT + r"\s+(?:in)?to\s+(?:speech|audio)" + _VOICE + _COLON,
    r"(?:text[\s-]+to[\s-]+speech|tts)" + _COLON,
)
_PREFIX = re.compile(r"^\s*(?:" + "|".join(f"(?:{p})" for p in INSTRUCTION_PATTERNS) + ")", re.IGNORECASE)


def strip_instruction(text: str) -> tuple[str, str | None]:
    """Remove one leading instruction prefix.

    Args:
        text: A target text as the source wrote it.

    Returns:
        ``(text without the prefix, the prefix as written)``, or ``(text, None)`` when it has
        none. A text that is nothing but an instruction keeps its words (an empty target text
        would lose them; the validator reports what is left).

    Examples:
        >>> strip_instruction("Please generate speech for given text in reference audio's voice: Hi.")
        ('Hi.', "Please generate speech for given text in reference audio's voice: ")
        >>> strip_instruction("Say hello to Anna: she is here.")
        ('Say hello to Anna: she is here.', None)
    """
    match = _PREFIX.match(text)
    if match is None or not text[match.end() :].strip():
        return text, None
    return text[match.end() :].strip(), text[: match.end()]


def has_instruction(text: str) -> bool:
    """True when ``text`` starts with an instruction prefix (see :func:`strip_instruction`)."""
    return strip_instruction(text)[1] is not None
