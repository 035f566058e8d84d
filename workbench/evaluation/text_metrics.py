"""Text metrics for generated speech: word and character error rates on normalised text.

:func:`normalize_text` puts a reference and a transcript on equal terms as speech-recognition papers
do (Whisper's normalisers, from ``transformers``); :func:`word_error_rate` and :func:`char_error_rate`
count edits with ``jiwer``. The transcripts come from :class:`workbench.evaluation.model_scorers.AsrScorer`.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from typing import Any

_APOSTROPHES = re.compile(r"[\u2019\u02bc`]")  # typographic apostrophes, as Whisper's rules expect "'"


@functools.lru_cache(maxsize=1)
def _normalizers() -> tuple[Any, Any]:
    """Whisper's English and basic text normalisers (transformers; no file needed: an empty spelling map)."""
    from transformers.models.whisper.english_normalizer import BasicTextNormalizer, EnglishTextNormalizer

    return EnglishTextNormalizer({}), BasicTextNormalizer()


def is_english(text: str) -> bool:
    """True when every letter of ``text`` is an ASCII letter (the rule that picks Whisper's English normaliser)."""
    return all(ch.isascii() for ch in text if ch.isalpha())


def normalize_text(text: str) -> str:
    """Text as WER/CER compare it: Whisper's normalisers, as speech-recognition papers score.

    After NFKC (full-width letters fold): Whisper's ``EnglishTextNormalizer`` when every letter is ASCII
    (case-folded, punctuation dropped, contractions and spelled numbers standardised, "mr" -> "mister"),
    else its ``BasicTextNormalizer`` (case-folded, punctuation and symbols as spaces, other scripts kept).
    Whisper's British-to-American spelling map ships with each Whisper model, not with transformers,
    so spellings are compared as written.

    Examples:
        >>> normalize_text("Hello, World!  It's   me.")
        'hello world it is me'
    """
    text = _APOSTROPHES.sub("'", unicodedata.normalize("NFKC", text))
    english, basic = _normalizers()
    return " ".join((english if is_english(text) else basic)(text).split())


def _error_rate(reference: str, hypothesis: str, measure: str) -> float:
    import jiwer

    if not reference:  # undefined in general; here: nothing expected, anything said is all wrong
        return 0.0 if not hypothesis else 1.0
    if not hypothesis:
        return 1.0  # every reference word (character) deleted
    return float(getattr(jiwer, measure)(reference, hypothesis))


def word_error_rate(reference: str, hypothesis: str) -> float:
    """Word edit distance over the reference's word count (jiwer), on :func:`normalize_text` output.

    Can exceed 1.0 (many insertions). An empty reference gives 0.0 for an empty hypothesis, else 1.0.

    Examples:
        >>> word_error_rate("a b c", "a x c")
        0.3333333333333333
    """
    return _error_rate(normalize_text(reference), normalize_text(hypothesis), "wer")


def char_error_rate(reference: str, hypothesis: str) -> float:
    """Character edit distance over the reference's length (jiwer), on :func:`normalize_text` output (single spaces count)."""
    return _error_rate(normalize_text(reference), normalize_text(hypothesis), "cer")


def transcript_scores(text: str, transcript: str) -> dict[str, Any]:
    """``{"wer", "cer", "transcript"}``: a recogniser's ``transcript`` of a clip scored against its ``text``."""
    return {
        "wer": word_error_rate(text, transcript),
        "cer": char_error_rate(text, transcript),
        "transcript": transcript,
    }
