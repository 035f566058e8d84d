"""The full-size Higgs Audio v2 stack with random weights (benchmarks), and the parts any built stack shares.

:func:`make_random_full_model` (``load_model_and_processor("random-full")``) builds the full-size
stack (3B-class dual-FFN LM, 25 frames/s 8-codebook codec) with random weights, in memory, for
throughput benchmarks on machines that cannot download the released checkpoint. The parts it is
made of serve every stack built from scratch (the tiny test model too): a small byte-level BPE text
tokenizer trained on :data:`CORPUS` with every Higgs special token (:func:`train_text_tokenizer`),
an LM config whose special-token and stream ids match that tokenizer and the codec
(:func:`lm_config`), the released checkpoint's generation defaults (:func:`set_generation_config`)
and the processor over both (:func:`build_processor`).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import torch

from workbench.models.chat_template import BOS, CHAT_TEMPLATE, EOT, PAD_EOS, SPECIAL_TOKENS

if TYPE_CHECKING:
    from transformers import HiggsAudioV2ForConditionalGeneration, HiggsAudioV2Processor

log = logging.getLogger(__name__)

SAMPLE_RATE = 24_000  # the Higgs Audio v2 codec's
TEXT_VOCAB_SIZE = 512  # of the BPE tokenizer trained on CORPUS
RANDOM_FULL = "random-full"
# The released codec (bosonai/higgs-audio-v2-tokenizer): hop 8*5*4*2*3 = 960 -> 25 frames/s at
# 24 kHz, 2 kbps -> 8 codebooks of 1024 codes. transformers' default HiggsAudioV2TokenizerConfig
# (hop 320, 4 kbps: 75 frames/s, 5 codebooks) matches neither the LM's 8 codebooks nor its own
# semantic downsampling (its encode fails), so these few settings override the defaults.
FULL_CODEC_OVERRIDES: dict[str, Any] = {
    "target_bandwidths": [0.5, 1, 1.5, 2],
    "acoustic_model_config": {"downsampling_ratios": [8, 5, 4, 2, 3], "upsampling_ratios": [8, 5, 4, 2, 3]},
}

CORPUS = (  # the training text of the small tokenizers built here and by the tiny models
    "Generate audio following instruction.",
    "You are an AI assistant designed to convert text into speech.",
    "Audio is recorded from a quiet room.",
    "The quick brown fox jumps over the lazy dog, and the dog does not mind at all.",
    "It was the night before the festival, and the whole town was awake with lanterns.",
    "Please read the following sentence slowly and clearly, with a calm and friendly voice.",
    "The sun rises in the east and sets in the west; people have watched it for thousands of years.",
    "She sells sea shells by the sea shore, where the waves are cold and grey in winter.",
    "How are you today? I am fine, thank you. What time is it? It is half past seven.",
    "Numbers like one, two, three, four, five, six, seven, eight, nine and ten are easy to say.",
    "A good speaker pauses at commas, breathes at full stops, and rises at question marks?",
    "The train to the north leaves at noon; the train to the south leaves in the evening.",
    "Remember to water the plants, feed the cat, and lock the door before you leave.",
    "Music, laughter and the smell of fresh bread filled the narrow street that morning.",
    "We recorded every voice twice, once in the studio and once in the open air.",
    "Hello world! This is a short test of speech synthesis with a small model.",
    "[SPEAKER0] I can't believe it is already Friday. [SPEAKER1] Neither can I, honestly.",
    "Whether the weather is warm or whether the weather is cold, we will walk together.",
)


def train_tiny_bpe(special_tokens: tuple[str, ...] | list[str]) -> Any:
    """A small byte-level BPE ``tokenizers.Tokenizer`` trained on :data:`CORPUS` (deterministic).

    Args:
        special_tokens: Added first, in order: they get ids ``0..len(special_tokens)-1``.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=TEXT_VOCAB_SIZE,
        special_tokens=list(special_tokens),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(list(CORPUS), trainer=trainer)
    return backend


def train_text_tokenizer(chat_template: str = CHAT_TEMPLATE) -> Any:
    """Train a small byte-level BPE tokenizer with all Higgs special tokens (deterministic).

    Returns:
        A transformers fast tokenizer; special tokens get ids ``0..len(SPECIAL_TOKENS)-1``.
    """
    from tokenizers import processors
    from transformers import PreTrainedTokenizerFast

    backend = train_tiny_bpe(SPECIAL_TOKENS)
    # Like Llama 3, prepend <|begin_of_text|> when add_special_tokens=True.
    backend.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B", special_tokens=[(BOS, backend.token_to_id(BOS))]
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token=BOS, eos_token=PAD_EOS, pad_token=PAD_EOS
    )
    tokenizer.chat_template = chat_template
    return tokenizer


def lm_config(tokenizer: Any, num_codebooks: int, codec_codebook_size: int, **sizes: Any) -> Any:
    """A ``HiggsAudioV2Config`` whose special-token and stream ids match ``tokenizer`` and the codec.

    Args:
        tokenizer: The text tokenizer (its special-token ids go into the config).
        num_codebooks: Codebooks of the audio tokenizer.
        codec_codebook_size: Codes per codebook of the audio tokenizer (the LM adds stream bos/eos).
        **sizes: Other config fields (layer sizes, ``vocab_size``...); unset ones keep the defaults.
    """
    from transformers import HiggsAudioV2Config

    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in SPECIAL_TOKENS}
    return HiggsAudioV2Config(
        num_codebooks=num_codebooks,
        codebook_size=codec_codebook_size + 2,  # + stream bos / eos
        audio_stream_bos_id=codec_codebook_size,
        audio_stream_eos_id=codec_codebook_size + 1,
        audio_token_id=ids["<|AUDIO_OUT|>"],
        audio_bos_token_id=ids["<|audio_out_bos|>"],
        audio_delay_token_id=ids["<|reserved_special_token_6|>"],
        bos_token_id=ids[BOS],
        pad_token_id=ids[PAD_EOS],
        eos_token_id=ids[EOT],
        **sizes,
    )


def set_generation_config(model: Any) -> None:
    """Generation defaults of the converted bosonai checkpoint (ids from the model config)."""
    config = model.config
    gen = model.generation_config
    gen._from_model_config = False
    gen.bos_token_id = config.bos_token_id
    gen.pad_token_id = config.pad_token_id
    gen.eos_token_id = config.eos_token_id  # must equal config's: see model.END_IDS_HINT
    gen.ras_win_len, gen.ras_win_max_num_repeat = 7, 2  # as in the converted bosonai checkpoint


def build_processor(tokenizer: Any, codec: Any, config: Any) -> HiggsAudioV2Processor:
    """A ``HiggsAudioV2Processor`` over ``tokenizer`` and ``codec`` with the LM config's stream ids."""
    from transformers import DacFeatureExtractor, HiggsAudioV2Processor

    return HiggsAudioV2Processor(
        feature_extractor=DacFeatureExtractor(
            feature_size=1,
            hop_length=1,
            padding_side="right",
            padding_value=0.0,
            sampling_rate=SAMPLE_RATE,
            return_attention_mask=True,
        ),
        tokenizer=tokenizer,
        audio_tokenizer=codec,
        chat_template=CHAT_TEMPLATE,
        audio_stream_bos_id=config.audio_stream_bos_id,
        audio_stream_eos_id=config.audio_stream_eos_id,
    )


def randomize_codebooks(codec: Any) -> None:
    """Fill a ``HiggsAudioV2TokenizerModel``'s RVQ codebooks from the global torch RNG, in place.

    transformers initialises them to zeros, so every frame would encode to code 0.
    """
    with torch.no_grad():
        for quantizer in codec.quantizer.quantizers:
            quantizer.codebook.embed.normal_()
            quantizer.codebook.embed_avg.copy_(quantizer.codebook.embed)


def make_random_full_model(
    dtype: torch.dtype | str | None = None,
    device: torch.device | str | None = None,
    seed: int = 0,
) -> tuple[HiggsAudioV2ForConditionalGeneration, HiggsAudioV2Processor]:
    """Build the full-size Higgs Audio v2 stack with random weights, in memory (benchmarks only).

    The LM is transformers' default ``HiggsAudioV2Config`` (28 dual-FFN layers, hidden 3072, GQA
    24/8 heads, vocabulary 128256: about 5.4 B parameters, 2.8 B active per token) with the
    released checkpoint's ``codebook_size=1026`` (1024 codes + stream bos/eos). The codec is the
    default ``HiggsAudioV2TokenizerConfig`` (DAC acoustic + HuBERT-base semantic encoder, ~200 M
    parameters) with :data:`FULL_CODEC_OVERRIDES` (25 frames/s, 8 codebooks, like the release).
    The text tokenizer is the small byte-level BPE of :func:`train_text_tokenizer`: the config keeps
    the full vocabulary size (so embedding memory is realistic) and takes the tokenizer's
    special-token ids, so sequences come out somewhat longer in text tokens than with Llama 3's
    tokenizer; audio, which dominates training sequences, is unaffected.

    Weights are built directly on ``device`` in ``dtype`` (no full-precision CPU copy): about
    11 GB in bf16, 22 GB in float32. ``device="meta"`` builds shapes only (parameter counts).

    Args:
        dtype: LM weight dtype (e.g. ``torch.bfloat16``); None keeps float32. The codec stays
            float32, as :func:`load_model_and_processor` leaves it.
        device: Where to build the LM and the codec (``"cuda"``, ``"cpu"``, ``"meta"``); None: CPU.
        seed: Seeds the random weights.

    Returns:
        ``(model, processor)``, the model in eval mode.
    """
    from transformers import (
        HiggsAudioV2ForConditionalGeneration,
        HiggsAudioV2TokenizerConfig,
        HiggsAudioV2TokenizerModel,
    )

    target = torch.device(device) if device is not None else torch.device("cpu")
    if isinstance(dtype, str) and dtype != "auto":
        dtype = getattr(torch, dtype)
    tokenizer = train_text_tokenizer()
    fork_devices = [target.index or 0] if target.type == "cuda" else []
    with torch.random.fork_rng(devices=fork_devices), target:
        torch.manual_seed(seed)
        if target.type == "cuda":
            torch.cuda.manual_seed(seed)
        codec = HiggsAudioV2TokenizerModel(HiggsAudioV2TokenizerConfig(**FULL_CODEC_OVERRIDES))
        randomize_codebooks(codec)
        config = lm_config(tokenizer, codec.config.num_quantizers, codec.config.codebook_size)
        model = HiggsAudioV2ForConditionalGeneration._from_config(
            config, dtype=None if dtype == "auto" else dtype
        )
    set_generation_config(model)
    codec.name_or_path = RANDOM_FULL
    model.name_or_path = RANDOM_FULL
    processor = build_processor(tokenizer, codec.eval(), config)
    log.log(
        logging.DEBUG if target.type == "meta" else logging.INFO,
        "built random full-size Higgs Audio v2 (%.2f B parameters, %s) on %s",
        sum(p.numel() for p in model.parameters()) / 1e9,
        model.dtype,
        target,
    )
    return model.eval(), processor
