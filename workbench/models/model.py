"""Higgs Audio v2 model stack: a tiny random test model, and offline loaders.

A Higgs Audio v2 checkpoint in Hugging Face format is a folder with the language model
(``config.json``, ``model.safetensors``, ``generation_config.json``), the text tokenizer
(``tokenizer.json``, ``chat_template.jinja``) and ``processor_config.json``. The processor also
needs the *audio tokenizer* (a ``HiggsAudioV2TokenizerModel`` codec), but
``HiggsAudioV2Processor.save_pretrained`` stores only a reference to it (a hub id or a path).

:func:`make_tiny_model` builds a small, random but complete stack with transformers' own classes
(2-layer dual-FFN LM, byte-level BPE tokenizer with every Higgs special token, the Higgs chat
template, a 24 kHz / 25 frames-per-second codec with 8 codebooks) so that the whole pipeline
(processor, training loss, generation, decoding) can run on a CPU in seconds. Weights are a pure
function of ``seed``: every distributed rank and every later evaluation gets the same bits.

Moving a model folder: the tiny model keeps its audio tokenizer in ``<dir>/audio_tokenizer/`` and
``processor_config.json`` records that folder's *absolute* path, because transformers resolves the
reference against the current working directory, not against the model folder. Plain
``AutoProcessor.from_pretrained(dir)`` therefore works where the model was built but fails once the
folder is moved (the recorded path is gone) and silently loads the old copy after a copy.
:func:`load_processor` (and :func:`load_model_and_processor`) always prefer the
``audio_tokenizer/`` folder that travels with the model, so they work after a move or copy and never
write to the model folder.

:func:`make_random_full_model` (``load_model_and_processor("random-full")``) builds the full-size
stack (3B-class dual-FFN LM, 25 frames/s 8-codebook codec) with random weights, in memory, for
throughput benchmarks on machines that cannot download the released checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from workbench.models.chat_template import BOS, CHAT_TEMPLATE, EOT, PAD_EOS, SPECIAL_TOKENS
from workbench.models.folder import (
    AUDIO_TOKENIZER_SUBDIR,
    HINT,
    ModelNotFoundError,
    audio_tokenizer_reference,
    locate_audio_tokenizer,
    resolve_model_path,
)

if TYPE_CHECKING:
    from transformers import HiggsAudioV2ForConditionalGeneration, HiggsAudioV2Processor

log = logging.getLogger(__name__)

SAMPLE_RATE = 24_000
MARKER_FILE = "workbench_model.json"
MARKER_FORMAT = 1
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
TINY_TEXT_VOCAB = 512

RANDOM_FULL = "random-full"
# The released codec (bosonai/higgs-audio-v2-tokenizer): hop 8*5*4*2*3 = 960 -> 25 frames/s at
# 24 kHz, 2 kbps -> 8 codebooks of 1024 codes. transformers' default HiggsAudioV2TokenizerConfig
# (hop 320, 4 kbps: 75 frames/s, 5 codebooks) matches neither the LM's 8 codebooks nor its own
# semantic downsampling (its encode fails), so these few settings override the defaults.
FULL_CODEC_OVERRIDES: dict[str, Any] = {
    "target_bandwidths": [0.5, 1, 1.5, 2],
    "acoustic_model_config": {"downsampling_ratios": [8, 5, 4, 2, 3], "upsampling_ratios": [8, 5, 4, 2, 3]},
}

CORPUS = (  # the tiny tokenizers' training text (both families)
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


# --------------------------------------------------------------------------- building


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
        vocab_size=TINY_TEXT_VOCAB,
        special_tokens=list(special_tokens),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(list(CORPUS), trainer=trainer)
    return backend


def _train_text_tokenizer(chat_template: str = CHAT_TEMPLATE) -> Any:
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
    # transformers initialises the RVQ codebooks to zeros (every frame would encode to code 0).
    with torch.no_grad():
        for quantizer in model.quantizer.quantizers:
            quantizer.codebook.embed.normal_()
            quantizer.codebook.embed_avg.copy_(quantizer.codebook.embed)
    return model.eval()


def _lm_config(tokenizer: Any, num_codebooks: int, codec_codebook_size: int, **sizes: Any) -> Any:
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


# Ending generation. transformers' Higgs generation appends ``config.eos_token_id`` once every
# codebook has emitted its stream eos, but stops only on ``generation_config.eos_token_id``. When
# the two differ, every clip runs to max_new_tokens and nothing sounds wrong (decoding cuts the
# audio at the first all-eos frame): only the time shows it (`workbench bench generate`). The
# released checkpoint's generation_config.json has eos 128001 (<|end_of_text|>, Llama's), the
# converted config 128009 (<|eot_id|>): every model built or imported here carries the model
# config's bos/eos/pad ids in its generation config too, and loading warns when they disagree.
END_IDS_HINT = (
    "set eos_token_id in generation_config.json to config.json's eos_token_id (<|eot_id|> for Higgs "
    "Audio v2); importing an original-layout checkpoint with the workbench does this"
)


def generation_stop_problem(config_eos: Any, generation_eos: Any) -> str | None:
    """Why generation would not stop when the audio ends, or None when it does.

    Args:
        config_eos: ``eos_token_id`` of the model config: the id appended once every codebook ended.
        generation_eos: ``eos_token_id`` of the generation config: the id(s) generation stops on.

    Returns:
        A sentence naming both ids, or None.
    """
    if config_eos is None:
        return "config.json has no eos_token_id: nothing marks the end of audio, so every generation runs to max_new_tokens"
    if isinstance(config_eos, (list, tuple)):
        return f"config.json's eos_token_id is a list {list(config_eos)}: the end of audio is marked by one id; give one"
    stops = generation_eos if isinstance(generation_eos, (list, tuple)) else [generation_eos]
    if config_eos in stops:
        return None
    return (
        f"generation will not stop before max_new_tokens: when every codebook has ended, transformers "
        f"appends the model config's eos_token_id {config_eos}, but stops only on the generation config's "
        f"eos_token_id {generation_eos}"
    )


def read_end_ids(model_dir: str | os.PathLike[str]) -> tuple[Any, Any]:
    """``(config eos, generation config eos)`` of a Hugging Face model folder, from its JSON files.

    Without ``generation_config.json``, transformers derives the generation config from the model
    config, so both are the config's.
    """
    folder = Path(model_dir)
    config_eos = json.loads((folder / "config.json").read_text()).get("eos_token_id")
    gen_file = folder / "generation_config.json"
    if not gen_file.is_file():
        return config_eos, config_eos
    return config_eos, json.loads(gen_file.read_text()).get("eos_token_id")


def _set_generation_config(model: Any) -> None:
    """Generation defaults of the converted bosonai checkpoint (ids from the model config)."""
    config = model.config
    gen = model.generation_config
    gen._from_model_config = False
    gen.bos_token_id = config.bos_token_id
    gen.pad_token_id = config.pad_token_id
    gen.eos_token_id = config.eos_token_id  # must equal config's: see "Ending generation" above
    gen.ras_win_len, gen.ras_win_max_num_repeat = 7, 2  # as in the converted bosonai checkpoint


def _build_lm(tokenizer: Any, num_codebooks: int, codec_codebook_size: int) -> Any:
    """Build the tiny 2-layer dual-FFN ``HiggsAudioV2ForConditionalGeneration``."""
    from transformers import HiggsAudioV2ForConditionalGeneration

    vocab_size = -(-len(tokenizer) // 64) * 64
    config = _lm_config(
        tokenizer,
        num_codebooks,
        codec_codebook_size,
        vocab_size=vocab_size,
        max_position_embeddings=4096,
        **TINY_LM,
    )
    model = HiggsAudioV2ForConditionalGeneration(config)
    _set_generation_config(model)
    return model.eval()


def _build_processor(tokenizer: Any, codec: Any, config: Any) -> HiggsAudioV2Processor:
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


def state_dict_digest(module: torch.nn.Module) -> str:
    """SHA-256 over a module's state dict (names, dtypes, shapes and raw bytes).

    Args:
        module: Any torch module.

    Returns:
        A hex digest; equal digests mean bit-identical weights.
    """
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def make_tiny_model(out_dir: str | os.PathLike[str], seed: int = 0, overwrite: bool = False) -> Path:
    """Build and save a tiny random, complete Higgs Audio v2 stack.

    The folder holds the LM, tokenizer, chat template, processor config, the codec in
    ``audio_tokenizer/`` and a ``workbench_model.json`` marker. It loads with
    ``AutoProcessor.from_pretrained`` / ``HiggsAudioV2ForConditionalGeneration.from_pretrained``
    in place, and with :func:`load_model_and_processor` anywhere it is moved or copied to.

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
    import tokenizers
    import transformers
    from transformers import HiggsAudioV2TokenizerModel

    out = Path(out_dir).expanduser().resolve()
    _check_overwritable(out, overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        tokenizer = _train_text_tokenizer()
        with torch.random.fork_rng(devices=[]):  # leave the caller's RNG state untouched
            torch.manual_seed(seed)
            codec = build_tiny_codec()
            model = _build_lm(tokenizer, codec.config.num_quantizers, codec.config.codebook_size)

        codec.save_pretrained(tmp / AUDIO_TOKENIZER_SUBDIR)
        codec = HiggsAudioV2TokenizerModel.from_pretrained(tmp / AUDIO_TOKENIZER_SUBDIR).eval()
        codec.name_or_path = str(out / AUDIO_TOKENIZER_SUBDIR)  # what processor_config.json records
        processor = _build_processor(tokenizer, codec, model.config)
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
            "digests": {"model": state_dict_digest(model), "audio_tokenizer": state_dict_digest(codec)},
            "versions": {
                "transformers": transformers.__version__,
                "torch": torch.__version__,
                "tokenizers": tokenizers.__version__,
            },
        }
        (tmp / MARKER_FILE).write_text(json.dumps(marker, indent=2) + "\n")

        if out.exists():
            _check_overwritable(out, overwrite)  # re-check: another process may have built it
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("built tiny Higgs Audio v2 model (seed %d) in %s", seed, out)
    return out


def _check_overwritable(out: Path, overwrite: bool) -> None:
    if not out.exists() or (out.is_dir() and not any(out.iterdir())):
        return
    if not overwrite:
        raise FileExistsError(f"{out} already exists; pass overwrite=True to replace it")
    if not (out / MARKER_FILE).is_file():
        raise FileExistsError(
            f"refusing to overwrite {out}: it is not a workbench tiny model (no {MARKER_FILE})"
        )


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
    The text tokenizer is the tiny byte-level BPE of :func:`make_tiny_model`: the config keeps
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
    tokenizer = _train_text_tokenizer()
    fork_devices = [target.index or 0] if target.type == "cuda" else []
    with torch.random.fork_rng(devices=fork_devices), target:
        torch.manual_seed(seed)
        if target.type == "cuda":
            torch.cuda.manual_seed(seed)
        codec = HiggsAudioV2TokenizerModel(HiggsAudioV2TokenizerConfig(**FULL_CODEC_OVERRIDES))
        with torch.no_grad():  # transformers initialises the RVQ codebooks to zeros
            for quantizer in codec.quantizer.quantizers:
                quantizer.codebook.embed.normal_()
                quantizer.codebook.embed_avg.copy_(quantizer.codebook.embed)
        config = _lm_config(tokenizer, codec.config.num_quantizers, codec.config.codebook_size)
        model = HiggsAudioV2ForConditionalGeneration._from_config(
            config, dtype=None if dtype == "auto" else dtype
        )
    _set_generation_config(model)
    codec.name_or_path = RANDOM_FULL
    model.name_or_path = RANDOM_FULL
    processor = _build_processor(tokenizer, codec.eval(), config)
    log.log(
        logging.DEBUG if target.type == "meta" else logging.INFO,
        "built random full-size Higgs Audio v2 (%.2f B parameters, %s) on %s",
        sum(p.numel() for p in model.parameters()) / 1e9,
        model.dtype,
        target,
    )
    return model.eval(), processor


def read_marker(model_path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """Return the ``workbench_model.json`` marker of a local model folder, or None."""
    path = Path(model_path) / MARKER_FILE
    return json.loads(path.read_text()) if path.is_file() else None


# --------------------------------------------------------------------------- loading

_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf", ".ckpt")


def load_processor(model_path: str | os.PathLike[str]) -> HiggsAudioV2Processor:
    """Load the processor (text tokenizer, feature extractor, audio tokenizer) offline.

    Works after the model folder was moved or copied: when the audio tokenizer recorded in the
    processor config is not the one to use (typically ``<dir>/audio_tokenizer``), the small config
    files are copied to a temporary folder with the reference rewritten and loaded from there with
    transformers' own ``AutoProcessor``. The model folder is never modified.

    Args:
        model_path: A local model folder or a hub id in the local cache.

    Returns:
        The processor, with its audio tokenizer on the CPU in eval mode.

    Raises:
        ModelNotFoundError: The model, its processor files or its audio tokenizer are missing.
    """
    from transformers import AutoProcessor

    model_dir = resolve_model_path(model_path)
    reference = audio_tokenizer_reference(model_dir)
    if reference is None:
        raise ModelNotFoundError(f"{model_dir} has no processor_config.json with an audio tokenizer. {HINT}")
    config_name, recorded = reference
    location = locate_audio_tokenizer(model_dir, recorded)
    try:
        if location == recorded or Path(location) == Path(recorded).expanduser():
            processor = AutoProcessor.from_pretrained(model_dir, local_files_only=True)
        else:
            log.debug("audio tokenizer of %s: using %s instead of recorded %s", model_dir, location, recorded)
            with tempfile.TemporaryDirectory(prefix="workbench-processor-") as tmp:
                for file in model_dir.iterdir():
                    if file.is_file() and not file.name.endswith(_WEIGHT_SUFFIXES):
                        shutil.copyfile(file, Path(tmp) / file.name)
                config_file = Path(tmp) / config_name
                data = json.loads(config_file.read_text())
                (data if config_name.startswith("audio_") else data["audio_tokenizer"])[
                    "audio_tokenizer_name_or_path"
                ] = location
                config_file.write_text(json.dumps(data, indent=2))
                processor = AutoProcessor.from_pretrained(tmp, local_files_only=True)
            processor.tokenizer.name_or_path = str(model_dir)
    except OSError as err:
        raise ModelNotFoundError(f"could not load the processor of {model_dir}: {err}. {HINT}") from err
    processor.audio_tokenizer.eval()
    return processor


def local_model_dir(model_path: str | os.PathLike[str]) -> Path:
    """The local Hugging Face folder of a model: :func:`resolve_model_path`, and an original-layout
    (``boson_multimodal``) checkpoint converted once, offline, and cached.

    Raises:
        ModelNotFoundError: Nothing usable exists locally.
    """
    from filelock import FileLock

    from workbench.audio import default_cache_dir
    from workbench.models.original_convert import import_original
    from workbench.models.original_format import is_original_checkpoint

    model_dir = resolve_model_path(model_path)
    if is_original_checkpoint(model_dir):
        # Every rank of a launch gets here at once: one process per machine converts, under a lock
        # (in the cache's locks/ folder); the others wait, then reuse its result (import_original finds it).
        locks = default_cache_dir() / "locks"
        locks.mkdir(parents=True, exist_ok=True)
        name = hashlib.sha256(str(model_dir).encode()).hexdigest()[:16]
        with FileLock(locks / f"converted-{name}.lock"):
            converted = import_original(model_dir)
        log.info(
            "%s is an original-layout Higgs Audio checkpoint; using its conversion %s", model_dir, converted
        )
        return converted
    return model_dir


def load_model_and_processor(
    model_path: str | os.PathLike[str],
    dtype: torch.dtype | str | None = None,
    device: torch.device | str | None = None,
) -> tuple[HiggsAudioV2ForConditionalGeneration, HiggsAudioV2Processor]:
    """Load a Higgs Audio v2 model and its processor, offline.

    Args:
        model_path: A local model folder, a hub id in the local cache, an original-layout
            (``boson_multimodal``) checkpoint folder (converted offline on first use and cached), or
            ``"random-full"`` (:func:`make_random_full_model`: full-size, random weights, in memory).
        dtype: Weight dtype for the LM (e.g. ``torch.bfloat16`` or ``"auto"``); None keeps the
            transformers default.
        device: Where to put the LM and the processor's audio tokenizer; None leaves them on CPU.

    Returns:
        ``(model, processor)``, the model in eval mode. A warning is logged when its config and
        generation config end ids disagree (:func:`generation_stop_problem`).

    Raises:
        ModelNotFoundError: The model or a part of it is missing locally.
    """
    from transformers import HiggsAudioV2ForConditionalGeneration

    if str(model_path) == RANDOM_FULL:
        return make_random_full_model(dtype=dtype, device=device)
    model_dir = local_model_dir(model_path)
    processor = load_processor(model_dir)
    kwargs: dict[str, Any] = {"local_files_only": True}
    if dtype is not None:
        kwargs["dtype"] = dtype
    try:
        model = HiggsAudioV2ForConditionalGeneration.from_pretrained(model_dir, **kwargs)
    except OSError as err:
        raise ModelNotFoundError(f"could not load the model weights of {model_dir}: {err}. {HINT}") from err
    if device is not None:
        model.to(device)
        processor.audio_tokenizer.to(device)
    model.eval()
    problem = generation_stop_problem(model.config.eos_token_id, model.generation_config.eos_token_id)
    if problem:
        log.warning("%s: %s. Fix: %s.", model_dir, problem, END_IDS_HINT)
    log.info(
        "loaded %s (%s, %d codebooks) on %s", model_dir, model.dtype, model.config.num_codebooks, model.device
    )
    return model, processor


def save_processor(processor: HiggsAudioV2Processor, out_dir: str | os.PathLike[str]) -> Path:
    """Save a processor with its audio tokenizer inside ``out_dir/audio_tokenizer`` (relocatable).

    ``HiggsAudioV2Processor.save_pretrained`` stores only a path to its audio tokenizer, so the
    codec is saved first and the processor records that copy.
    """
    out = Path(out_dir).expanduser().resolve()
    out.mkdir(parents=True, exist_ok=True)
    codec = processor.audio_tokenizer
    codec.save_pretrained(out / AUDIO_TOKENIZER_SUBDIR)
    previous = codec.name_or_path
    codec.name_or_path = str(out / AUDIO_TOKENIZER_SUBDIR)
    try:
        processor.save_pretrained(out)
    finally:
        codec.name_or_path = previous
    return out


def save_merged(
    model: torch.nn.Module, processor: HiggsAudioV2Processor, out_dir: str | os.PathLike[str]
) -> Path:
    """Merge a PEFT LoRA model into plain weights and save them with the processor.

    The folder loads with ``HiggsAudioV2ForConditionalGeneration.from_pretrained`` (no peft) and
    :func:`load_model_and_processor`. The PEFT model passed in is left unmerged.
    """
    import copy

    out = Path(out_dir).expanduser().resolve()
    merged = model
    if hasattr(model, "merge_and_unload"):  # a copy: merging in place would change the caller's model
        merged = copy.deepcopy(model).merge_and_unload()
    merged.save_pretrained(out)
    save_processor(processor, out)
    (out / MARKER_FILE).write_text(
        json.dumps(
            {"format": MARKER_FORMAT, "kind": "merged", "audio_tokenizer": AUDIO_TOKENIZER_SUBDIR}, indent=2
        )
        + "\n"
    )
    return out
