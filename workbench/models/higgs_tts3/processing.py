"""The Higgs TTS 3 processor: text tokenizer, codec, prompt ids and the delay pattern.

A prompt has no chat template and no system prompt::

    <|tts|> [<|ref_text|> tok(reference text)] [<|ref_audio|> -100 x R] <|text|> tok(text) <|audio|>

``R`` is the number of *delayed* reference rows (``T + N - 1`` for T frames); each -100 takes the
fused embedding of one row. ``<|ref_text|>`` appears only with a reference that has a transcript.
Text is tokenized without special tokens; style tags such as ``<|emotion:...|>`` are plain inline
text. Audio codes ``(N, T)`` (the codes cache's layout) become rows with the MusicGen-style delay:
codebook ``c`` holds BOC in rows ``< c``, its T codes in rows ``c .. c + T - 1``, EOC after.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from workbench.models.folder import ModelNotFoundError

AUDIO_TOKEN_ID = -100
TTS, REF_TEXT, REF_AUDIO, TEXT, AUDIO = "<|tts|>", "<|ref_text|>", "<|ref_audio|>", "<|text|>", "<|audio|>"
PROMPT_TOKENS = (TTS, REF_TEXT, REF_AUDIO, TEXT, AUDIO)
REQUIRED_TOKENS = (TTS, REF_AUDIO, TEXT, AUDIO)  # <|ref_text|> is missing from early checkpoints
END_OF_TEXT = "<|endoftext|>"


def delay_pattern(codes: torch.Tensor, boc_id: int, eoc_id: int) -> torch.Tensor:
    """Delayed rows of codes.

    Args:
        codes: LongTensor ``(N, T)``.
        boc_id: Fill before each codebook starts.
        eoc_id: Fill after each codebook ends.

    Returns:
        LongTensor ``(T + N - 1, N)``: codebook ``c`` holds ``boc_id`` in rows ``< c``, its codes in
        rows ``c .. c + T - 1`` and ``eoc_id`` after.
    """
    n, t = codes.shape
    rows = torch.full((t + n - 1, n), eoc_id, dtype=torch.long, device=codes.device)
    for c in range(n):
        rows[:c, c] = boc_id
        rows[c : c + t, c] = codes[c]
    return rows


def reverse_delay_pattern(rows: torch.Tensor) -> torch.Tensor:
    """Codes ``(N, L - N + 1)`` of delayed rows ``(L, N)``: codebook ``c``'s column from row ``c``."""
    length, n = rows.shape
    frames = length - n + 1
    if frames < 0:
        raise ValueError(f"{length} delayed rows hold no frame of {n} codebooks (need at least {n - 1})")
    return torch.stack([rows[c : c + frames, c] for c in range(n)])


def load_tokenizer(folder: str | os.PathLike[str]) -> Any:
    """The text tokenizer of a model folder: ``tokenizer.json`` with its ``tokenizer_config.json``
    (as the release ships them); without the config, ``<|endoftext|>`` is the eos and pad token.

    Raises:
        ModelNotFoundError: No ``tokenizer.json``.
    """
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    folder = Path(folder)
    file = folder / "tokenizer.json"
    if not file.is_file():
        raise ModelNotFoundError(f"{folder} has no tokenizer.json (a Higgs TTS 3 folder ships one)")
    if (folder / "tokenizer_config.json").is_file():
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    else:
        tokenizer = PreTrainedTokenizerFast(
            tokenizer_file=str(file), eos_token=END_OF_TEXT, pad_token=END_OF_TEXT
        )
    if tokenizer.pad_token is None:
        tokenizer.pad_token = END_OF_TEXT if END_OF_TEXT in tokenizer.get_vocab() else tokenizer.eos_token
    return tokenizer


class HiggsTTS3Processor:
    """Text tokenizer, audio tokenizer (codec) and prompt layout of a Higgs TTS 3 model.

    Attributes:
        tokenizer: The text tokenizer (``pad_token_id`` pads batches).
        audio_tokenizer: A ``HiggsAudioV2TokenizerModel`` (CPU, eval), whose ``config`` gives
            ``num_quantizers``, ``codebook_size``, ``frame_rate`` and ``sample_rate``.
        token_ids: ``{"tts", "ref_text", "ref_audio", "text", "audio"}`` -> id (``ref_text`` may be None).
        audio_token_id: The placeholder of an audio row (-100).
        num_codebooks: N.
        codebook_size: V = codec codes + 2.
        audio_stream_bos_id: BOC (V - 2).
        audio_stream_eos_id: EOC (V - 1); the collator pads audio rows with it.

    Args:
        tokenizer: The text tokenizer.
        audio_tokenizer: The codec.
        codebook_size: V from the model config (checked against the codec); None: codec + 2.
        source: Where the tokenizer came from, for error messages.

    Raises:
        ModelNotFoundError: The tokenizer lacks a v3 prompt token (names ``source``).
        ValueError: ``codebook_size`` does not fit the codec.
    """

    def __init__(
        self, tokenizer: Any, audio_tokenizer: Any, codebook_size: int | None = None, source: str = ""
    ) -> None:
        self.tokenizer = tokenizer
        self.audio_tokenizer = audio_tokenizer
        vocab = tokenizer.get_vocab()
        missing = [t for t in REQUIRED_TOKENS if t not in vocab]
        if missing:
            raise ModelNotFoundError(
                f"the tokenizer of {source or 'this model'} lacks the Higgs TTS 3 prompt token(s) "
                f"{', '.join(missing)}: it is not a Higgs TTS 3 tokenizer"
            )
        self.token_ids: dict[str, int | None] = {t.strip("<|>"): vocab.get(t) for t in PROMPT_TOKENS}
        self.audio_token_id = AUDIO_TOKEN_ID
        codec = audio_tokenizer.config
        self.num_codebooks = int(codec.num_quantizers)
        self.codebook_size = int(codebook_size or codec.codebook_size + 2)
        if self.codebook_size - 2 != int(codec.codebook_size):
            raise ValueError(
                f"the model's audio vocabulary ({self.codebook_size}) is not the codec's {codec.codebook_size} "
                "codes plus BOC and EOC: the codec does not belong to this model"
            )
        self.audio_stream_bos_id = self.codebook_size - 2
        self.audio_stream_eos_id = self.codebook_size - 1
        self.sampling_rate = int(codec.sample_rate)

    @property
    def frame_rate(self) -> float:
        return float(self.audio_tokenizer.config.frame_rate)

    def tokenize(self, text: str) -> list[int]:
        """Token ids of ``text`` without special tokens (tags in the text become their tokens)."""
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def prompt_ids(self, text: str, reference_text: str | None = None, reference_rows: int = 0) -> list[int]:
        """The prompt up to and including ``<|audio|>``.

        Args:
            text: What to say.
            reference_text: The reference's transcript (used only with ``reference_rows``).
            reference_rows: Delayed reference rows (``T + N - 1``), 0 without a reference.

        Returns:
            Token ids, with ``reference_rows`` placeholders (-100).
        """
        ids = self.token_ids
        prompt = [ids["tts"]]
        if reference_rows > 0 and reference_text and ids["ref_text"] is not None:
            prompt += [ids["ref_text"], *self.tokenize(reference_text)]
        if reference_rows > 0:
            prompt += [ids["ref_audio"], *[AUDIO_TOKEN_ID] * reference_rows]
        return [*prompt, ids["text"], *self.tokenize(text), ids["audio"]]  # type: ignore[list-item]

    def prompt_length(self, text: str, reference_text: str | None = None, reference_rows: int = 0) -> int:
        """``len(prompt_ids(...))`` without building the placeholder list."""
        ids = self.token_ids
        length = 3 + len(self.tokenize(text))
        if reference_rows > 0:
            length += 1 + reference_rows
            if reference_text and ids["ref_text"] is not None:
                length += 1 + len(self.tokenize(reference_text))
        return length

    def delay(self, codes: torch.Tensor) -> torch.Tensor:
        """Delayed rows ``(T + N - 1, N)`` of codes ``(N, T)`` (:func:`delay_pattern`)."""
        if codes.ndim != 2 or codes.shape[0] != self.num_codebooks:
            raise ValueError(f"expected codes ({self.num_codebooks}, frames), got shape {tuple(codes.shape)}")
        return delay_pattern(codes.long(), self.audio_stream_bos_id, self.audio_stream_eos_id)

    def undelay(self, rows: torch.Tensor) -> torch.Tensor:
        """Codes ``(N, T)`` of delayed rows ``(T + N - 1, N)`` (:func:`reverse_delay_pattern`)."""
        return reverse_delay_pattern(rows)

    @torch.no_grad()
    def decode(self, rows: torch.Tensor) -> torch.Tensor:
        """Waveform of delayed rows ``(L, N)`` (or ``(1, L, N)``): float32 ``(samples,)`` on the CPU.

        BOC/EOC left inside the decoded frames (a model that ended a codebook early) decode as code 0.
        """
        rows = rows[0] if rows.ndim == 3 else rows
        return self.decode_codes(self.undelay(rows))

    @torch.no_grad()
    def decode_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """Waveform of codes ``(N, T)``: float32 ``(samples,)`` on the CPU.

        A BOC or EOC (or any code outside the codec's range) decodes as code 0, as the serving stacks
        replace them: clamping EOC to the last code would decode a real, audible code.
        """
        outside = (codes < 0) | (codes >= self.audio_stream_bos_id)
        codes = codes.masked_fill(outside, 0)
        codec = self.audio_tokenizer
        device = next(codec.parameters()).device
        audio = codec.decode(codes[None].to(device)).audio_values
        return audio.detach().float().cpu().reshape(-1)
