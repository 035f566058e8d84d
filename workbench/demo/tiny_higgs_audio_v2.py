"""A tiny random Higgs Audio v2 stack, complete and saved like a released one, for tests and the CPU demo.

:func:`make_tiny_higgs_audio_v2` builds it with transformers' own classes (2-layer dual-FFN LM,
byte-level BPE tokenizer with every Higgs special token, the Higgs chat template, a 24 kHz / 25
frames-per-second codec with 8 codebooks) so that the whole pipeline (processor, training loss,
generation, decoding) runs on a CPU in seconds. Weights are a pure function of ``seed``: every
distributed rank and every later evaluation gets the same bits. The folder keeps its codec in
``audio_tokenizer/``; :func:`workbench.models.model.load_model_and_processor` loads it wherever it is
moved or copied to.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import torch

from workbench.files import atomic_folder, write_json
from workbench.models.folder import AUDIO_TOKENIZER_SUBDIR
from workbench.models.model import MARKER_FILE, MARKER_FORMAT, state_dict_digest
from workbench.models.random_full import (
    SAMPLE_RATE,
    build_processor,
    lm_config,
    randomize_codebooks,
    set_generation_config,
    train_text_tokenizer,
)

log = logging.getLogger(__name__)

# Tiny stack sizes. Codec: hop 8*5*4*2*3 = 960 samples -> 25 frames/s at 24 kHz; codebooks =
# 1000 * 1.2 kbps // (25 * log2(64)) = 8, like the real model. The LM adds stream bos/eos ids.
TINY_LM = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 16,
}
TINY_CODEC_CODEBOOK_SIZE = 64


def build_tiny_codec() -> Any:
    """Build a tiny random ``HiggsAudioV2TokenizerModel`` from the global torch RNG."""
    from transformers import HiggsAudioV2TokenizerConfig, HiggsAudioV2TokenizerModel

    ratios = [8, 5, 4, 2, 3]  # hop 960 at 24 kHz -> 25 frames/s
    config = HiggsAudioV2TokenizerConfig(
        sample_rate=SAMPLE_RATE,
        target_bandwidths=[0.5, 1, 1.2],  # last one -> 8 codebooks of 64 entries
        codebook_size=TINY_CODEC_CODEBOOK_SIZE,
        codebook_dim=16,
        acoustic_model_config={
            "model_type": "dac",
            "sampling_rate": SAMPLE_RATE,
            "encoder_hidden_size": 8,
            "downsampling_ratios": ratios,
            "upsampling_ratios": ratios,
            "decoder_hidden_size": 64,  # halves per decoder block: must stay >= 2**5
            "hidden_size": 32,
            "n_codebooks": 1,  # DAC's own quantizer is built but unused by Higgs
            "codebook_size": 16,
            "codebook_dim": 4,
        },
        semantic_model_config={
            "model_type": "hubert",  # default conv strides: 320x at 16 kHz, then 2x downsample
            "hidden_size": 32,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "intermediate_size": 64,
            "conv_dim": [16] * 7,
            "num_conv_pos_embeddings": 16,
            "num_conv_pos_embedding_groups": 4,
        },
    )
    model = HiggsAudioV2TokenizerModel(config)
    randomize_codebooks(model)
    return model.eval()


def build_tiny_lm(tokenizer: Any, num_codebooks: int, codec_codebook_size: int) -> Any:
    """Build the tiny 2-layer dual-FFN ``HiggsAudioV2ForConditionalGeneration``."""
    from transformers import HiggsAudioV2ForConditionalGeneration

    vocab_size = -(-len(tokenizer) // 64) * 64
    config = lm_config(
        tokenizer,
        num_codebooks,
        codec_codebook_size,
        vocab_size=vocab_size,
        max_position_embeddings=4096,
        **TINY_LM,
    )
    model = HiggsAudioV2ForConditionalGeneration(config)
    set_generation_config(model)
    return model.eval()


def make_tiny_higgs_audio_v2(out_dir: str | os.PathLike[str], seed: int = 0, overwrite: bool = False) -> Path:
    """Build and save a tiny random, complete Higgs Audio v2 stack.

    The folder holds the LM, tokenizer, chat template, processor config, the codec in
    ``audio_tokenizer/`` and a ``workbench_model.json`` marker. It loads with
    ``AutoProcessor.from_pretrained`` / ``HiggsAudioV2ForConditionalGeneration.from_pretrained``
    in place, and with :func:`workbench.models.model.load_model_and_processor` anywhere it is moved
    or copied to.

    Args:
        out_dir: Destination folder (created; built in a temporary sibling, then renamed).
        seed: Seeds all weights; the same seed gives bit-identical weights.
        overwrite: Replace an existing folder. Only folders built by this function (with the
            marker) or empty folders are ever deleted.

    Returns:
        The absolute path of the saved model folder.

    Raises:
        FileExistsError: ``out_dir`` exists and is not empty, and ``overwrite`` is false or the
            folder is not a workbench tiny model.
    """
    from transformers import HiggsAudioV2TokenizerModel

    out = Path(out_dir).expanduser().resolve()
    check_overwritable(out, overwrite)
    # re-checked before the move: another process may have built it meanwhile
    with atomic_folder(out, keep_existing=lambda existing: check_overwritable(existing, overwrite)) as tmp:
        tokenizer = train_text_tokenizer()
        with torch.random.fork_rng(devices=[]):  # leave the caller's RNG state untouched
            torch.manual_seed(seed)
            codec = build_tiny_codec()
            model = build_tiny_lm(tokenizer, codec.config.num_quantizers, codec.config.codebook_size)

        codec.save_pretrained(tmp / AUDIO_TOKENIZER_SUBDIR)
        codec = HiggsAudioV2TokenizerModel.from_pretrained(tmp / AUDIO_TOKENIZER_SUBDIR).eval()
        codec.name_or_path = str(out / AUDIO_TOKENIZER_SUBDIR)  # what processor_config.json records
        processor = build_processor(tokenizer, codec, model.config)
        model.save_pretrained(tmp)
        processor.save_pretrained(tmp)

        cfg = model.config
        marker = {
            "format": MARKER_FORMAT,
            "kind": "tiny",
            "seed": seed,
            "audio_tokenizer": AUDIO_TOKENIZER_SUBDIR,
            "sample_rate": SAMPLE_RATE,
            "frame_rate": codec.config.frame_rate,
            "num_codebooks": cfg.num_codebooks,
            "codebook_size": cfg.codebook_size,
            "hidden_size": cfg.hidden_size,
            "num_hidden_layers": cfg.num_hidden_layers,
            "vocab_size": cfg.vocab_size,
            "tokenizer_size": len(tokenizer),
            **built_with(model, codec),
        }
        write_json(tmp / MARKER_FILE, marker)
    log.info("built tiny Higgs Audio v2 model (seed %d) in %s", seed, out)
    return out


def built_with(model: Any, codec: Any) -> dict[str, Any]:
    """The marker entries that pin a tiny stack's bits: weight digests and the library versions that built it."""
    import tokenizers
    import transformers

    return {
        "digests": {"model": state_dict_digest(model), "audio_tokenizer": state_dict_digest(codec)},
        "versions": {
            "transformers": transformers.__version__,
            "torch": torch.__version__,
            "tokenizers": tokenizers.__version__,
        },
    }


def check_overwritable(out: Path, overwrite: bool) -> None:
    """Refuse to build into ``out`` unless it is missing, empty, or (with ``overwrite``) a tiny model.

    Raises:
        FileExistsError: ``out`` holds files and ``overwrite`` is false, or it is not a tiny model
            (no ``workbench_model.json``): nothing the user made is ever deleted.
    """
    if not out.exists() or (out.is_dir() and not any(out.iterdir())):
        return
    if not overwrite:
        raise FileExistsError(f"{out} already exists; pass overwrite=True to replace it")
    if not (out / MARKER_FILE).is_file():
        raise FileExistsError(
            f"refusing to overwrite {out}: it is not a workbench tiny model (no {MARKER_FILE})"
        )
