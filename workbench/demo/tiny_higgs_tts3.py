"""A tiny random Higgs TTS 3 in the release layout, for tests and the CPU demo.

Two Qwen3 layers (hidden 64, 4/2 heads of 16, FFN 128), a byte-level BPE tokenizer trained on the
workbench's small corpus with v3's prompt tokens and a few style tags, and the tiny 25 frames/s,
8-codebook codec of the tiny Higgs Audio v2 (64 codes, so the fused table has 8 x 66 rows). The
folder is what :func:`workbench.models.higgs_tts3.release.save_release` writes (``config.json``,
``model.safetensors`` under the release's names, without ``tied.head.*`` copies as in the release,
``tokenizer.json``, ``tokenizer_config.json``, ``audio_tokenizer/``) plus the ``workbench_model.json``
marker. Weights are a pure function of ``seed``; the caller's RNG is left untouched.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import torch

from workbench.demo.tiny_higgs_audio_v2 import TINY_LM, build_tiny_codec, built_with, check_overwritable
from workbench.models.higgs_tts3.configuration import HiggsTTS3Config
from workbench.models.higgs_tts3.modeling import HiggsTTS3ForConditionalGeneration
from workbench.models.higgs_tts3.processing import END_OF_TEXT, PROMPT_TOKENS, HiggsTTS3Processor
from workbench.models.higgs_tts3.release import save_release
from workbench.models.random_full import train_tiny_bpe

log = logging.getLogger(__name__)

TINY_TEXT_CONFIG: dict[str, Any] = {
    **TINY_LM,  # the tiny Higgs Audio v2's layer sizes
    "max_position_embeddings": 4096,
    "tie_word_embeddings": True,
}
STYLE_TAGS = (
    "<|emotion:elation|>",
    "<|emotion:sadness|>",
    "<|emotion:anger|>",
    "<|style:whispering|>",
    "<|sfx:laughter|>",
    "<|sfx:cough|>",
    "<|prosody:pause|>",
)
SPECIAL_TOKENS = (END_OF_TEXT, *PROMPT_TOKENS, *STYLE_TAGS)


def train_tiny_tokenizer() -> Any:
    """A small byte-level BPE tokenizer with v3's special tokens (deterministic; no BOS is added).

    Returns:
        A transformers fast tokenizer; the special tokens have ids ``0..len(SPECIAL_TOKENS) - 1``.
    """
    from transformers import PreTrainedTokenizerFast

    backend = train_tiny_bpe(SPECIAL_TOKENS)
    return PreTrainedTokenizerFast(tokenizer_object=backend, eos_token=END_OF_TEXT, pad_token=END_OF_TEXT)


def tiny_config(tokenizer: Any, num_codebooks: int, codec_codebook_size: int) -> HiggsTTS3Config:
    """The tiny model's config for ``tokenizer`` and a codec of ``num_codebooks`` x ``codec_codebook_size``."""
    return HiggsTTS3Config(
        text_config={
            **TINY_TEXT_CONFIG,
            "vocab_size": -(-len(tokenizer) // 64) * 64,
            "eos_token_id": tokenizer.eos_token_id,
            "pad_token_id": tokenizer.pad_token_id,
        },
        audio_encoder_config={"num_codebooks": num_codebooks, "vocab_size": codec_codebook_size + 2},
    )


def make_tiny_tts3(out_dir: str | os.PathLike[str], seed: int = 0, overwrite: bool = False) -> Path:
    """Build and save a tiny random Higgs TTS 3 in the release layout.

    Args:
        out_dir: Destination folder (built in a temporary sibling, then renamed).
        seed: Seeds every weight; the same seed gives bit-identical weights.
        overwrite: Replace an existing folder, only one built here (with the marker) or an empty one.

    Returns:
        The absolute folder.

    Raises:
        FileExistsError: ``out_dir`` is not empty and ``overwrite`` is false or it is not a tiny model.
    """

    out = Path(out_dir).expanduser().resolve()
    check_overwritable(out, overwrite)
    tokenizer = train_tiny_tokenizer()
    with torch.random.fork_rng(devices=[]):  # leave the caller's RNG state untouched
        torch.manual_seed(seed)
        codec = build_tiny_codec()
        config = tiny_config(tokenizer, codec.config.num_quantizers, codec.config.codebook_size)
        model = HiggsTTS3ForConditionalGeneration(config).eval()
    processor = HiggsTTS3Processor(tokenizer, codec, config.codebook_size, source="the tiny tokenizer")
    marker = {
        "kind": "tiny",
        "seed": seed,
        "sample_rate": int(codec.config.sample_rate),
        "frame_rate": codec.config.frame_rate,
        "num_codebooks": config.num_codebooks,
        "codebook_size": config.codebook_size,
        "hidden_size": config.hidden_size,
        "num_hidden_layers": config.text_config.num_hidden_layers,
        "vocab_size": config.text_config.vocab_size,
        "tokenizer_size": len(tokenizer),
        **built_with(model, codec),
    }
    save_release(model, processor, out, overwrite=overwrite, notice=False, marker=marker)
    log.info("built tiny Higgs TTS 3 (seed %d) in %s", seed, out)
    return out
