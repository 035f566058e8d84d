"""Tests for workbench.evaluation.text_metrics: WER/CER on known edits and Whisper-normalised text."""

from __future__ import annotations

import pytest

from workbench.evaluation.text_metrics import char_error_rate, is_english, normalize_text, word_error_rate


def test_word_error_rate_known_cases():
    assert word_error_rate("a b c", "a x c") == pytest.approx(1 / 3)  # substitution
    assert word_error_rate("a b c", "a b") == pytest.approx(1 / 3)  # deletion
    assert word_error_rate("a b c", "a b c d") == pytest.approx(1 / 3)  # insertion
    assert word_error_rate("a b c d", "b c d a") == pytest.approx(2 / 4)
    assert word_error_rate("a b", "x y z w") == 2.0  # can exceed 1
    assert word_error_rate("Hello, World!", "hello world") == 0.0
    assert word_error_rate("It's a well-known fact.", "it is a well known fact") == 0.0
    assert word_error_rate("Mr. Smith has twenty one apples", "mister smith has 21 apples") == 0.0
    assert word_error_rate("", "") == 0.0
    assert word_error_rate("", "anything") == 1.0
    assert word_error_rate("something", "") == 1.0
    assert word_error_rate("¡Hola, señor!", "hola señor") == 0.0  # other languages: the basic normaliser


def test_char_error_rate_and_normalisation():
    assert char_error_rate("abc", "abd") == pytest.approx(1 / 3)
    assert char_error_rate("hello", "helo") == pytest.approx(1 / 5)
    assert char_error_rate("Hello, World!", "hello world") == 0.0
    assert char_error_rate("ab cd", "abcd") == pytest.approx(1 / 5)  # the space counts
    assert char_error_rate("abc", "") == 1.0
    assert (
        normalize_text("Hello,   World!  It\u2019s ME.") == "hello world it is me"
    )  # Whisper's English rules
    assert normalize_text("\uff21\uff22") == "ab"  # NFKC folds full-width letters
    assert normalize_text("Ça va, très bien !") == "ça va très bien"  # accents kept outside English
    assert is_english("It's 5 o'clock") and not is_english("Grüße")
