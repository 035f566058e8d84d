"""A tiny random Whisper, built and saved locally (nothing is downloaded).

``transformers.pipeline("automatic-speech-recognition", model=folder)`` loads and runs it,
producing some (random) text: enough to exercise speech-recognition code paths (``workbench
prepare``, evaluation's WER) in tests and benchmarks. It takes well under a second to build and
is about 200 KB on disk.
"""

from __future__ import annotations

import re
from pathlib import Path

# Whisper's special tokens, in Whisper's order. They must come after every text token, with
# <|notimestamps|> last: Whisper's generation treats every id above <|notimestamps|> as a timestamp.
WHISPER_SPECIAL_TOKENS = (
    "<|endoftext|>",
    "<|startoftranscript|>",
    "<|en|>",
    "<|transcribe|>",
    "<|translate|>",
    "<|startoflm|>",
    "<|startofprev|>",
    "<|nospeech|>",
    "<|notimestamps|>",
)
_LETTERS = re.compile("[a-z\u0120]+")  # byte-level BPE shows a leading space as \u0120 ("Ġ")
_CORPUS = (
    "the quick brown fox jumps over the lazy dog",
    "hello world this is a tiny speech recognition model",
    "she sells sea shells by the sea shore",
)


def _whisper_tokenizer():
    """A byte-level BPE trained on a few sentences, wrapped as ``WhisperTokenizerFast``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import AddedToken, WhisperTokenizerFast

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=320, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    backend.train_from_iterator(list(_CORPUS), trainer=trainer)
    tokenizer = WhisperTokenizerFast(tokenizer_object=backend)
    tokenizer.add_tokens(
        [AddedToken(t, special=True, normalized=False) for t in WHISPER_SPECIAL_TOKENS], special_tokens=True
    )
    eot = WHISPER_SPECIAL_TOKENS[0]
    tokenizer.unk_token = tokenizer.bos_token = tokenizer.eos_token = tokenizer.pad_token = eot
    return tokenizer


def build_tiny_whisper(out: str | Path, seed: int = 0) -> Path:
    """Build a random tiny Whisper (1 encoder and 1 decoder layer, width 16) into ``out``.

    Its generation config lets it emit only lower-case letters, spaces and the end of text (not at
    first), so a transcript is a non-empty string of letters; generation stops after 16 new tokens.

    Returns:
        ``out`` as a Path (model, tokenizer, feature extractor and generation config inside).
    """
    import torch
    from transformers import (
        GenerationConfig,
        WhisperConfig,
        WhisperFeatureExtractor,
        WhisperForConditionalGeneration,
        WhisperProcessor,
    )

    out = Path(out)
    tokenizer = _whisper_tokenizer()
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in WHISPER_SPECIAL_TOKENS}
    eot, start = ids["<|endoftext|>"], ids["<|startoftranscript|>"]
    config = WhisperConfig(
        vocab_size=len(tokenizer),
        num_mel_bins=80,
        d_model=16,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=32,
        decoder_ffn_dim=32,
        max_source_positions=1500,  # 30 s of 10 ms mel frames after the stride-2 convolution
        max_target_positions=32,
        pad_token_id=eot,
        bos_token_id=eot,
        eos_token_id=eot,
        decoder_start_token_id=start,
        suppress_tokens=None,
        begin_suppress_tokens=None,
    )
    torch.manual_seed(seed)
    model = WhisperForConditionalGeneration(config).eval()
    model.generation_config = GenerationConfig(
        decoder_start_token_id=start,
        bos_token_id=eot,
        eos_token_id=eot,
        pad_token_id=eot,
        max_length=20,
        is_multilingual=True,
        lang_to_id={"<|en|>": ids["<|en|>"]},
        task_to_id={"transcribe": ids["<|transcribe|>"], "translate": ids["<|translate|>"]},
        no_timestamps_token_id=ids["<|notimestamps|>"],
        suppress_tokens=[
            i for token, i in tokenizer.get_vocab().items() if i != eot and not _LETTERS.fullmatch(token)
        ],
        begin_suppress_tokens=[eot],
    )
    processor = WhisperProcessor(
        feature_extractor=WhisperFeatureExtractor(feature_size=80), tokenizer=tokenizer
    )
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out
