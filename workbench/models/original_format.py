"""Original-format (``boson_multimodal``) Higgs Audio v2 checkpoints: detect, import, export.

The original Higgs Audio v2 release (``bosonai/higgs-audio-v2-generation-3B-base``, loaded by the
``boson_multimodal`` package as ``HiggsAudioModel``) stores the language model with its own key
names and a ``HiggsAudioConfig`` (``model_type: "higgs_audio"``, Llama ``text_config`` nested
inside). transformers' ``HiggsAudioV2ForConditionalGeneration`` uses another layout. This module
converts between the two, offline, following transformers' own conversion script
(``src/transformers/models/higgs_audio_v2/convert_higgs_audio_v2_to_hf.py``; it does not ship in
the installed wheel) for everything it covers.

Weights (original -> Hugging Face; :func:`export_original` applies the inverse):

- ``audio_codebook_embeddings.*`` -> ``model.embed_audio_tokens.embed_audio_tokens.*``
- ``embed_tokens.*``, ``layers.*``, ``norm.*`` -> ``model.embed_tokens.*``, ``model.layers.*``, ``model.norm.*``
- ``audio_decoder_proj.audio_lm_head.*`` -> ``audio_lm_head.*``
- ``audio_decoder_proj.text_lm_head.*`` -> ``text_lm_head.*`` (kept in the file; transformers loads it
  only with ``use_text_head=True`` and otherwise ignores it)
- ``X.embedding_frozen.weight`` + ``X.embedding_trainable.weight`` (``PartiallyFrozenEmbedding``) and
  ``X.linear_frozen.weight`` + ``X.linear_trainable.weight`` (``PartiallyFrozenLinear``) ->
  ``X.weight`` = ``cat([frozen, trainable], dim=0)``, then renamed as above; the split row is
  recorded so an export splits it again
- ``*audio_codebook_weights``, ``*rotary_emb.inv_freq``, ``*rotary_emb.original_inv_freq`` -> dropped
- ``audio_tower.*``, ``audio_encoder_proj.*`` (Whisper understanding path, absent from the HF model)
  -> dropped with a warning

Config (original ``HiggsAudioConfig`` -> ``HiggsAudioV2Config``): the Llama ``text_config`` fields
keep their names (``rope_theta`` + ``rope_scaling`` become ``rope_parameters``);
``audio_num_codebooks`` -> ``num_codebooks``; ``audio_codebook_size`` (1024) -> ``codebook_size`` =
size + 2 (1026, stream bos/eos included); ``audio_out_token_idx`` -> ``audio_token_id``;
``audio_out_bos_token_id`` -> ``audio_bos_token_id``; ``audio_stream_bos_id`` / ``_eos_id``
unchanged. The HF-only ``audio_delay_token_id`` is read from the same-named field (written by
:func:`export_original`) or the tokenizer's ``<|reserved_special_token_6|>``. Only the dual-FFN
adapter with an audio FFN in *every* layer (as released), with the delay pattern and audio codes
in the token stream (``use_delay_pattern`` and ``encode_audio_in_tokens`` true; both default to
false in ``boson_multimodal``), maps onto the HF model; other variants are refused with a message
that says why.

Special-token ids. A converted model carries the same ``eos_token_id``, ``pad_token_id`` and
``bos_token_id`` in ``config.json`` and ``generation_config.json``: eos = ``<|eot_id|>`` (128009),
pad = ``<|end_of_text|>`` (128001), bos = ``<|begin_of_text|>`` (128000), each from the top-level
field of the original config when present (:func:`export_original` writes them; the release has
only ``pad_token_id``), else the tokenizer's token, else transformers' default. Why: transformers'
Higgs generation appends ``config.eos_token_id`` once every codebook has emitted its stream eos,
but stops only on ``generation_config.eos_token_id``. The release's ``generation_config.json``
copies Llama's ``<|end_of_text|>`` (128001) as eos, so keeping it next to the conversion script's
model eos (128009) makes every clip run to ``max_new_tokens`` (the audio is still cut right at
decode, so nothing sounds wrong). The generation config's other settings are kept.

Where the result differs from transformers' conversion script (which builds
``HiggsAudioV2Config(codebook_size=1026)`` and sets the generation config to bos 1, eos 128009,
pad 128001, ``ras_win_len`` 7, ``ras_win_max_num_repeat`` 2):

- eos and pad (in both configs), ``tie_word_embeddings`` (false; the HF model ties no weights)
  and repetition-aware sampling: the same.
- bos: ``<|begin_of_text|>`` (128000, the release's value) instead of the script's 1, which is
  transformers' default and the token ``"`` in Llama 3's vocabulary. Generation never reads it:
  every prompt starts with the chat template's own ``<|begin_of_text|>``.
- ``max_position_embeddings``: the release's 131072 instead of the script's default 2048. Rotary
  frequencies do not depend on it, but training and validation take it as the context limit, and
  2048 would refuse samples the released model reads.
- ``rope_parameters``: the release's llama3 scaling (factor 32, low/high frequency factors 1/4,
  original context 8192, theta 500000) instead of the script's default (factor 32, 0.125/0.5,
  1024). Both give the same rotary frequencies (the thresholds are 8192/1 = 1024/0.125 and
  8192/4 = 1024/0.5, and the smoothing is the same ratio); a test checks it.

Audio tokenizer: the original release keeps its codec in a separate repository
(``bosonai/higgs-audio-v2-tokenizer``) in its own format. :func:`import_original` needs the codec in
transformers' format (a ``HiggsAudioV2TokenizerModel`` folder or cached hub id such as
``eustlb/higgs-audio-v2-tokenizer``, as in the conversion script) to write a processor; it is
copied (hard-linked where possible) into ``<converted>/audio_tokenizer``. Without one the converted
folder holds the model, text tokenizer and generation config only. LoRA never changes the codec,
so people on the original scripts keep using the stock ``bosonai/higgs-audio-v2-tokenizer``.

The conversions themselves (:func:`~workbench.models.original_convert.import_original`,
:func:`~workbench.models.original_convert.export_original`) are in :mod:`workbench.models.original_convert`.

Examples:
    >>> from workbench.models.original_convert import export_original, import_original
    >>> hf_dir = import_original("/models/higgs-original", audio_tokenizer="/models/hf-codec")  # doctest: +SKIP
    >>> export_original(merged_model, "/exports/my-voice-original")  # doctest: +SKIP
"""

from __future__ import annotations

import copy
import logging
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from workbench.models.folder import read_json, safetensors_keys

if TYPE_CHECKING:
    from transformers import HiggsAudioV2Config

log = logging.getLogger(__name__)

CONVERTER_VERSION = 2  # 2: config and generation config carry the same special-token ids
IMPORT_SIDECAR = "original_format.json"  # in a converted HF folder; written last = conversion complete
EXPORT_MARKER = "workbench_export.json"  # in an exported original-format folder
ORIGINAL_MODEL_TYPE = "higgs_audio"
ORIGINAL_ARCHITECTURE = "HiggsAudioModel"
HF_MODEL_TYPE = "higgs_audio_v2"
HF_ARCHITECTURE = "HiggsAudioV2ForConditionalGeneration"
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "tokenizer.model",
    "added_tokens.json",
    "chat_template.jinja",
)

# transformers' conversion script: KEYS_TO_IGNORE and ORIGINAL_TO_CONVERTED_KEY_MAPPING (applied in order).
IGNORED_SUFFIXES = ("audio_codebook_weights", "rotary_emb.inv_freq", "rotary_emb.original_inv_freq")
DROPPED_PREFIXES = ("audio_tower.", "audio_encoder_proj.")  # Whisper understanding path (not in HF v2)
_ORIGINAL_TO_HF = (
    (re.compile(r"^audio_codebook_embeddings\."), "model.embed_audio_tokens.embed_audio_tokens."),
    (re.compile(r"^(embed_tokens|layers|norm)\."), r"model.\1."),
    (re.compile(r"^audio_decoder_proj\."), ""),
)
_HF_TO_ORIGINAL = (
    (re.compile(r"^model\.embed_audio_tokens\.embed_audio_tokens\."), "audio_codebook_embeddings."),
    (re.compile(r"^model\.(embed_tokens|layers|norm)\."), r"\1."),
    (re.compile(r"^(audio_lm_head|text_lm_head)\."), r"audio_decoder_proj.\1."),
)
# PartiallyFrozenEmbedding / PartiallyFrozenLinear halves (boson_multimodal custom_modules.py).
_SPLIT_KEY = re.compile(r"^(?P<prefix>.+)\.(?P<kind>embedding|linear)_(?P<half>frozen|trainable)\.weight$")

# Llama text_config fields that HiggsAudioV2Config carries under the same name.
_TEXT_FIELDS = (
    "vocab_size",
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "head_dim",
    "hidden_act",
    "max_position_embeddings",
    "rms_norm_eps",
    "attention_bias",
    "attention_dropout",
    "mlp_bias",
    "initializer_range",
    "pretraining_tp",
    "use_cache",
)
# Special-token ids a converted model carries in config.json and generation_config.json alike:
# field -> tokenizer token taken when the original config has no top-level value (see the module
# docstring for why eos is <|eot_id|> and never the text_config's or the release generation config's
# <|end_of_text|>).
_TOKEN_FIELDS = {
    "audio_delay_token_id": "<|reserved_special_token_6|>",
    "bos_token_id": "<|begin_of_text|>",
    "eos_token_id": "<|eot_id|>",
    "pad_token_id": "<|end_of_text|>",
}
GENERATION_TOKEN_FIELDS = ("bos_token_id", "eos_token_id", "pad_token_id")
# Original-config flags of variants HiggsAudioV2ForConditionalGeneration cannot represent.
_UNSUPPORTED_FLAGS = (
    "audio_embed_avg",
    "use_audio_out_embed_projector",
    "use_audio_out_self_attention",
    "use_rq_transformer",
)
# Defaults for an original config written from scratch: the generation-only v2 variant.
_ORIGINAL_DEFAULTS: dict[str, Any] = {
    "audio_adapter_type": "dual_ffn_fast_forward",
    "audio_decoder_proj_num_layers": 0,
    "audio_embed_avg": False,
    "encode_whisper_embed": False,
    "encode_audio_in_tokens": True,
    "skip_audio_tower": True,
    "use_delay_pattern": True,
    "use_audio_out_embed_projector": False,
    "use_audio_out_self_attention": False,
    "use_rq_transformer": False,
    "audio_bos_token": "<|audio_bos|>",
    "audio_eos_token": "<|audio_eos|>",
    "audio_out_bos_token": "<|audio_out_bos|>",
    "audio_in_token": "<|AUDIO|>",
    "audio_out_token": "<|AUDIO_OUT|>",
    "audio_in_token_idx": 128015,
    "audio_eos_token_id": 128012,
}


# --------------------------------------------------------------------------- keys


def original_to_hf_key(key: str) -> str:
    """Map one original checkpoint key to its ``HiggsAudioV2ForConditionalGeneration`` name."""
    for pattern, replacement in _ORIGINAL_TO_HF:
        key = pattern.sub(replacement, key)
    return key


def hf_to_original_key(key: str) -> str:
    """Map one ``HiggsAudioV2ForConditionalGeneration`` key to its original name.

    Raises:
        ValueError: The key has no original counterpart (e.g. an unmerged LoRA weight).
    """
    for pattern, replacement in _HF_TO_ORIGINAL:
        new, count = pattern.subn(replacement, key)
        if count:
            return new
    hint = (
        " Merge the adapter first (model.merge_and_unload())."
        if "lora_" in key or "base_layer" in key
        else ""
    )
    raise ValueError(f"no original-format name for weight {key!r}.{hint}")


def merge_partially_frozen(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, dict]]:
    """Concatenate ``*_frozen`` / ``*_trainable`` halves (frozen rows first) into one weight.

    Args:
        state: Original-format tensors (not modified).

    Returns:
        ``(new state, splits)``; ``splits`` maps the merged key (e.g. ``embed_tokens.weight``) to
        ``{"kind": "embedding"|"linear", "frozen_rows": n}`` so :func:`split_partially_frozen` can undo it.

    Raises:
        ValueError: One half is missing or the halves do not line up.
    """
    out = dict(state)
    splits: dict[str, dict] = {}
    halves: dict[tuple[str, str], dict[str, str]] = {}
    for key in state:
        match = _SPLIT_KEY.match(key)
        if match:
            halves.setdefault((match["prefix"], match["kind"]), {})[match["half"]] = key
    for (prefix, kind), found in sorted(halves.items()):
        if set(found) != {"frozen", "trainable"}:
            raise ValueError(
                f"partially frozen {kind} {prefix!r} has only its {'/'.join(found)} half in the checkpoint"
            )
        frozen, trainable = out.pop(found["frozen"]), out.pop(found["trainable"])
        if frozen.shape[1:] != trainable.shape[1:] or frozen.dtype != trainable.dtype:
            raise ValueError(
                f"halves of {prefix!r} do not match: frozen {tuple(frozen.shape)} {frozen.dtype}, "
                f"trainable {tuple(trainable.shape)} {trainable.dtype}"
            )
        merged = f"{prefix}.weight"
        if merged in out:
            raise ValueError(f"checkpoint has both {merged!r} and its frozen/trainable halves")
        out[merged] = torch.cat([frozen, trainable], dim=0)
        splits[merged] = {"kind": kind, "frozen_rows": int(frozen.shape[0])}
    return out, splits


def split_partially_frozen(
    state: dict[str, torch.Tensor], splits: dict[str, dict]
) -> dict[str, torch.Tensor]:
    """Inverse of :func:`merge_partially_frozen` for the weights listed in ``splits``.

    A weight whose row count no longer fits its recorded split (or that is absent) stays whole.
    """
    out = dict(state)
    for key, info in splits.items():
        tensor = out.get(key)
        rows = int(info["frozen_rows"])
        if tensor is None or not 0 < rows < tensor.shape[0]:
            log.warning("not splitting %s: recorded frozen rows %d do not fit its shape", key, rows)
            continue
        prefix = key[: -len(".weight")]
        del out[key]
        out[f"{prefix}.{info['kind']}_frozen.weight"] = tensor[:rows].clone()
        out[f"{prefix}.{info['kind']}_trainable.weight"] = tensor[rows:].clone()
    return out


# --------------------------------------------------------------------------- files


# --------------------------------------------------------------------------- detection


def _keys_look_original(keys: list[str]) -> bool:
    if not keys or any(k.startswith("model.") for k in keys):
        return False
    return any(
        k.startswith(("audio_codebook_embeddings.", "audio_decoder_proj.")) or _SPLIT_KEY.match(k)
        for k in keys
    )


def is_original_checkpoint(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is an original-format (``boson_multimodal``) Higgs Audio checkpoint folder.

    True when ``config.json`` says ``model_type: "higgs_audio"`` or ``HiggsAudioModel``; without a
    ``model_type``, when the safetensors key names are original ones (``audio_codebook_embeddings.*``,
    ``audio_decoder_proj.*``, ``*_frozen``/``*_trainable`` halves, no ``model.`` prefix).
    A missing path, a file, or any other model (a transformers ``higgs_audio_v2`` folder included) is False.
    """
    folder = Path(path).expanduser()
    if not folder.is_dir():
        return False
    config = read_json(folder / "config.json")
    if config is not None:
        if config.get("model_type") == ORIGINAL_MODEL_TYPE or ORIGINAL_ARCHITECTURE in (
            config.get("architectures") or []
        ):
            return True
        if config.get("model_type"):
            return False
    return _keys_look_original(safetensors_keys(folder))


# --------------------------------------------------------------------------- config


def _rope_parameters(text: dict) -> dict:
    if isinstance(text.get("rope_parameters"), dict):
        return dict(text["rope_parameters"])
    params = dict(text.get("rope_scaling") or {})
    if "type" in params and "rope_type" not in params:
        params["rope_type"] = params.pop("type")
    params.setdefault("rope_type", "default")
    params["rope_theta"] = float(text.get("rope_theta", 10000.0))  # Llama's default
    return params


def _check_supported(original: dict, num_layers: int) -> None:
    problems = []
    adapter = original.get("audio_adapter_type", "stack")
    if adapter not in ("dual_ffn", "dual_ffn_fast_forward"):
        problems.append(
            f"audio_adapter_type is {adapter!r} (only the dual-FFN adapter exists in transformers)"
        )
    else:
        plain = sorted(set(range(num_layers)) - set(original.get("audio_dual_ffn_layers") or []))
        if plain:
            problems.append(f"layers {plain} have no audio FFN (audio_dual_ffn_layers must list every layer)")
    if original.get("audio_decoder_proj_num_layers"):
        problems.append(
            f"audio_decoder_proj_num_layers is {original['audio_decoder_proj_num_layers']} (must be 0)"
        )
    problems += [f"{flag} is set" for flag in _UNSUPPORTED_FLAGS if original.get(flag)]
    for flag, why in (
        ("use_delay_pattern", "transformers always generates with the delay pattern"),
        ("encode_audio_in_tokens", "transformers always feeds audio codes back as input tokens"),
    ):
        if not original.get(flag):
            state = "absent (boson_multimodal's default is false)" if flag not in original else "false"
            problems.append(f"{flag} is {state}: {why}")
    if problems:
        raise ValueError(
            "this original Higgs Audio variant cannot be represented by transformers' "
            "HiggsAudioV2ForConditionalGeneration: " + "; ".join(problems)
        )


def hf_config_from_original(original: dict, token_ids: dict[str, int] | None = None) -> HiggsAudioV2Config:
    """Build the ``HiggsAudioV2Config`` for an original ``HiggsAudioConfig`` dict.

    Args:
        original: The original ``config.json`` contents.
        token_ids: ``{token text: id}`` of the text tokenizer's special tokens, for the fields the
            original config does not carry (delay token, bos/eos/pad; see the module docstring).

    Raises:
        ValueError: The variant is not representable (see :func:`_check_supported`).
    """
    from transformers import HiggsAudioV2Config

    token_ids = token_ids or {}
    text = original.get("text_config") or {}
    kwargs: dict[str, Any] = {k: text[k] for k in _TEXT_FIELDS if text.get(k) is not None}
    # The release's text_config ties (Llama 3.2's lm_head); the HF model has no tied weights and the
    # original's text head is a weight of its own, so false, as in the conversion script.
    kwargs["tie_word_embeddings"] = False
    if "hidden_size" in kwargs and "num_attention_heads" in kwargs:
        kwargs.setdefault("head_dim", kwargs["hidden_size"] // kwargs["num_attention_heads"])
        kwargs.setdefault("num_key_value_heads", kwargs["num_attention_heads"])  # Llama's default
    if any(k in text for k in ("rope_parameters", "rope_theta", "rope_scaling")):
        kwargs["rope_parameters"] = _rope_parameters(text)
    _check_supported(original, int(kwargs.get("num_hidden_layers", HiggsAudioV2Config.num_hidden_layers)))

    renamed = {
        "audio_num_codebooks": "num_codebooks",
        "audio_stream_bos_id": "audio_stream_bos_id",
        "audio_stream_eos_id": "audio_stream_eos_id",
        "audio_out_token_idx": "audio_token_id",
        "audio_out_bos_token_id": "audio_bos_token_id",
    }
    kwargs.update({new: original[old] for old, new in renamed.items() if original.get(old) is not None})
    if original.get("audio_codebook_size") is not None:
        kwargs["codebook_size"] = int(original["audio_codebook_size"]) + 2  # + stream bos / eos
    for field, token in _TOKEN_FIELDS.items():
        # Top-level fields: pad in the release; all four in configs written by export_original.
        if original.get(field) is not None:
            kwargs[field] = original[field]
        elif token in token_ids:
            kwargs[field] = token_ids[token]
    if "bos_token_id" not in kwargs and text.get("bos_token_id") is not None:
        kwargs["bos_token_id"] = text["bos_token_id"]  # <|begin_of_text|> in the release
    config = HiggsAudioV2Config(**kwargs)
    config.architectures = [HF_ARCHITECTURE]
    # transformers' script converts the released checkpoint with HiggsAudioV2Config(codebook_size=1026);
    # say where this mapping differs from that, so a surprise on a real checkpoint is visible.
    script = HiggsAudioV2Config(codebook_size=1026).to_dict()
    differs = {
        k: v for k, v in config.to_dict().items() if k in script and script[k] != v and k != "architectures"
    }
    if differs:
        log.info("config fields that differ from the conversion script's defaults: %s", differs)
    return config


def original_config_from_hf(
    config: HiggsAudioV2Config,
    base: dict | None = None,
    token_ids: dict[str, int] | None = None,
    dtype: torch.dtype | None = None,
) -> dict:
    """Build an original ``HiggsAudioConfig`` dict for a ``HiggsAudioV2Config``.

    Args:
        config: The HF config.
        base: The original config this model was imported from; fields the HF config does not
            describe (Whisper encoder, collator flags) are kept from it.
        token_ids: Special-token ids of the text tokenizer (``<|AUDIO|>``, ``<|audio_eos|>``).
        dtype: Dtype of the written weights (``torch_dtype``).
    """
    out = copy.deepcopy(base) if base else copy.deepcopy(_ORIGINAL_DEFAULTS)
    token_ids = token_ids or {}
    text = dict(out.get("text_config") or {})
    text.pop("rope_parameters", None)
    text["model_type"] = "llama"
    text.setdefault("architectures", ["LlamaForCausalLM"])
    for field in _TEXT_FIELDS:
        text[field] = getattr(config, field)
    text.setdefault("tie_word_embeddings", config.tie_word_embeddings)  # the source's value, if any
    rope = dict(config.rope_parameters or {})
    text["rope_theta"] = rope.pop("rope_theta", 10000.0)
    text["rope_scaling"] = rope if rope.get("rope_type", "default") != "default" else None
    text["bos_token_id"], text["eos_token_id"], text["pad_token_id"] = (
        config.bos_token_id,
        config.eos_token_id,
        config.pad_token_id,
    )
    out.update(
        architectures=[ORIGINAL_ARCHITECTURE],
        model_type=ORIGINAL_MODEL_TYPE,
        text_config=text,
        audio_num_codebooks=config.num_codebooks,
        audio_codebook_size=config.codebook_size - 2,
        audio_stream_bos_id=config.audio_stream_bos_id,
        audio_stream_eos_id=config.audio_stream_eos_id,
        audio_out_token_idx=config.audio_token_id,
        audio_out_bos_token_id=config.audio_bos_token_id,
        audio_delay_token_id=config.audio_delay_token_id,
        pad_token_id=config.pad_token_id,
        bos_token_id=config.bos_token_id,
        eos_token_id=config.eos_token_id,
        audio_dual_ffn_layers=list(range(config.num_hidden_layers)),
        audio_ffn_hidden_size=config.hidden_size,
        audio_ffn_intermediate_size=config.intermediate_size,
    )
    if out.get("audio_adapter_type") not in ("dual_ffn", "dual_ffn_fast_forward"):
        out["audio_adapter_type"] = "dual_ffn_fast_forward"
    for field, token in (("audio_in_token_idx", "<|AUDIO|>"), ("audio_eos_token_id", "<|audio_eos|>")):
        if token in token_ids:
            out[field] = token_ids[token]
    if dtype is not None:
        out["torch_dtype"] = text["torch_dtype"] = str(dtype).removeprefix("torch.")
    return out
