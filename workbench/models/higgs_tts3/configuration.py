"""The Higgs TTS 3 configuration: a Qwen3 ``text_config`` and an ``audio_encoder_config``.

The release's ``config.json`` (``bosonai/higgs-tts-3-4b``) reads::

    {"model_type": "higgs_multimodal_qwen3",
     "architectures": ["HiggsMultimodalQwen3ForConditionalGeneration"],
     "audio_token_id": -100,
     "text_config": {"model_type": "qwen3", "hidden_size": 2560, ..., "rope_theta": null},
     "audio_encoder_config": {"num_codebooks": 8, "vocab_size": 1026, "use_delay_pattern": true,
                              "tie_word_embeddings": true, ...}}

``rope_theta`` ships as null; every serving implementation (vLLM-Omni, SGLang-Omni, mlx-audio)
uses Qwen3's 1e6, and so does :class:`HiggsTTS3Config`. ``vocab_size`` of the audio config counts
the codec's codes plus two markers: BOC (``vocab_size - 2``, before a codebook starts in the delay
pattern) and EOC (``vocab_size - 1``, after it ends).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from transformers import PreTrainedConfig, Qwen3Config
from transformers.configuration_utils import SubConfigSpec

MODEL_TYPE = "higgs_multimodal_qwen3"
ARCHITECTURE = "HiggsMultimodalQwen3ForConditionalGeneration"
AUDIO_TOKEN_ID = -100
QWEN3_ROPE_THETA = 1_000_000.0
TRAINING_CONTEXT = 8192  # the model card's training sequence length
DEFAULT_AUDIO_ENCODER_CONFIG: dict[str, Any] = {
    "encoder_type": "discrete",
    "num_codebooks": 8,
    "vocab_size": 1026,
    "use_delay_pattern": True,
    "tie_word_embeddings": True,
}
# The released backbone (Qwen3-4B shape). max_position_embeddings is Qwen3-4B's; the release's
# config.json is the authority (:func:`release_config` is for shapes and parameter counts).
RELEASE_TEXT_CONFIG: dict[str, Any] = {
    "model_type": "qwen3",
    "vocab_size": 151936,
    "hidden_size": 2560,
    "intermediate_size": 9728,
    "num_hidden_layers": 36,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "head_dim": 128,
    "hidden_act": "silu",
    "max_position_embeddings": 40960,
    "rms_norm_eps": 1e-6,
    "tie_word_embeddings": True,
    "attention_bias": False,
    "rope_theta": None,
}


def _with_rope_theta(text_config: dict[str, Any]) -> dict[str, Any]:
    """A copy of a Qwen3 config dict whose null ``rope_theta`` is Qwen3's 1e6."""
    config = copy.deepcopy(text_config)
    config.setdefault("model_type", "qwen3")
    rope = config.get("rope_parameters") or config.get("rope_scaling")
    if isinstance(rope, dict) and "rope_theta" in rope and rope["rope_theta"] is None:
        rope["rope_theta"] = QWEN3_ROPE_THETA
    if config.get("rope_theta") is None and not (isinstance(rope, dict) and rope.get("rope_theta")):
        config["rope_theta"] = QWEN3_ROPE_THETA
    return config


class HiggsTTS3Config(PreTrainedConfig):
    """Configuration of :class:`~workbench.models.higgs_tts3.modeling.HiggsTTS3ForConditionalGeneration`.

    Args:
        text_config: The Qwen3 backbone (a ``Qwen3Config`` or its dict; ``rope_theta`` None -> 1e6).
        audio_encoder_config: ``num_codebooks`` (N), ``vocab_size`` (V, codes + BOC + EOC),
            ``use_delay_pattern``, ``tie_word_embeddings``; missing keys take the release's values.
        audio_token_id: The placeholder id of an audio row in ``input_ids`` (-100 in the release).
        tie_word_embeddings: The text head is the text embedding (always, in the release).

    Examples:
        >>> config = HiggsTTS3Config(text_config={"hidden_size": 64, "num_hidden_layers": 2})
        >>> config.num_codebooks, config.codebook_size, config.boc_id, config.eoc_id
        (8, 1026, 1024, 1025)
    """

    model_type = MODEL_TYPE
    sub_configs_defaults = {"text_config": SubConfigSpec(config_class=Qwen3Config)}

    text_config: dict | PreTrainedConfig | None = None
    audio_encoder_config: dict | None = None
    audio_token_id: int = AUDIO_TOKEN_ID
    tie_word_embeddings: bool = True

    def __post_init__(self, **kwargs: Any) -> None:
        if isinstance(self.text_config, dict):
            self.text_config = _with_rope_theta(self.text_config)
        super().__post_init__(**kwargs)
        rope = getattr(self.text_config, "rope_parameters", None)
        if isinstance(rope, dict) and rope.get("rope_theta") is None:
            rope["rope_theta"] = QWEN3_ROPE_THETA
        self.audio_encoder_config = {**DEFAULT_AUDIO_ENCODER_CONFIG, **(self.audio_encoder_config or {})}
        if not self.audio_encoder_config.get("use_delay_pattern", True):
            raise ValueError(
                "audio_encoder_config.use_delay_pattern is false; Higgs TTS 3 always uses the delay"
            )
        if self.num_codebooks < 1 or self.codebook_size < 3:
            raise ValueError(
                f"audio_encoder_config: expected num_codebooks >= 1 and vocab_size >= 3, got "
                f"{self.num_codebooks} and {self.codebook_size}"
            )

    # --- audio ----------------------------------------------------------------------------------
    @property
    def num_codebooks(self) -> int:
        """N: codebooks per audio row."""
        return int(self.audio_encoder_config["num_codebooks"])

    @property
    def codebook_size(self) -> int:
        """V: entries per codebook, the codec's codes plus BOC and EOC."""
        return int(self.audio_encoder_config["vocab_size"])

    @property
    def boc_id(self) -> int:
        """BOC: fills codebook ``c``'s first ``c`` rows of the delay pattern."""
        return self.codebook_size - 2

    @property
    def eoc_id(self) -> int:
        """EOC: follows each codebook's last code in the delay pattern."""
        return self.codebook_size - 1

    # --- backbone -------------------------------------------------------------------------------
    @property
    def hidden_size(self) -> int:
        return int(self.text_config.hidden_size)

    @property
    def max_position_embeddings(self) -> int:
        return int(self.text_config.max_position_embeddings)

    @property
    def context_length(self) -> int:
        """Longest sequence to train or generate: ``min(max_position_embeddings, 8192)``."""
        return min(self.max_position_embeddings, TRAINING_CONTEXT)

    def get_text_config(self, *args: Any, **kwargs: Any) -> PreTrainedConfig:
        return self.text_config

    # --- the release's config.json --------------------------------------------------------------
    def release_dict(self, base: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """``config.json`` as the release writes it, with ``rope_theta`` set to its real value.

        The text config is flattened to the keys Qwen3 loaders of transformers 4 and 5, vLLM and
        mlx-audio read (``rope_theta`` at the top of ``text_config``, ``rope_scaling`` null).

        Args:
            base: The base model's ``config.json``: its keys are kept (top level, ``text_config`` and
                ``audio_encoder_config`` alike) and only the ones this config writes are replaced.
        """
        text = self.text_config.to_dict()
        rope = text.pop("rope_parameters", None) or {}
        text["rope_theta"] = float(rope.get("rope_theta") or QWEN3_ROPE_THETA)
        extra = {k: v for k, v in rope.items() if k not in ("rope_theta", "rope_type")}
        text["rope_scaling"] = {**rope} if extra or rope.get("rope_type", "default") != "default" else None
        for key in (
            "transformers_version",
            "_name_or_path",
            "architectures",
            "id2label",
            "label2id",
            "dtype",
        ):
            text.pop(key, None)
        own = {
            "model_type": MODEL_TYPE,
            "architectures": [ARCHITECTURE],
            "audio_token_id": self.audio_token_id,
            "tie_word_embeddings": bool(self.tie_word_embeddings),
            "text_config": text,
            "audio_encoder_config": dict(self.audio_encoder_config),
        }
        if base is None:
            return own
        merged = copy.deepcopy(dict(base))
        for key, value in own.items():
            if key in ("text_config", "audio_encoder_config") and isinstance(merged.get(key), Mapping):
                merged[key] = {**merged[key], **value}
            else:
                merged[key] = value
        return merged


def release_config(**text_overrides: Any) -> HiggsTTS3Config:
    """The full-size release configuration (Qwen3-4B backbone, 8 codebooks of 1026 entries).

    Args:
        **text_overrides: Backbone fields to change (e.g. ``num_hidden_layers=2`` for a quick test).
    """
    return HiggsTTS3Config(
        text_config={**RELEASE_TEXT_CONFIG, **text_overrides},
        audio_encoder_config=dict(DEFAULT_AUDIO_ENCODER_CONFIG),
    )
