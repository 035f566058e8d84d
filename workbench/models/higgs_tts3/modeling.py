"""Higgs TTS 3 as a transformers model: ``Qwen3Model`` plus one fused audio table that is both the
audio embedding and the audio head.

A sequence is text tokens with one placeholder (``audio_token_id``, -100) per audio row. Each
placeholder's embedding is the sum of the row's N code embeddings, looked up in one ``(N * V, D)``
table at offset ``c * V`` for codebook ``c`` (:class:`AudioCodebooks`). The same table, as a
linear map, turns a hidden state into ``(N, V)`` logits for the next row. The row at placeholder
position ``p`` is predicted from the hidden state at ``p - 1``: the first generated row from the
``<|audio|>`` token, each later one from the row before it, in training exactly as in
:meth:`HiggsTTS3ForConditionalGeneration.generate`.

The release stores the weights under other names (``body.*``, ``tied.*``);
:data:`RELEASE_KEY_MAPPING` renames them on load, so ``from_pretrained`` reads a release folder.
"""

from __future__ import annotations

import copy
import inspect
import logging
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import DynamicCache, GenerationConfig, PreTrainedModel, Qwen3Model
from transformers import initialization as init
from transformers.utils import ModelOutput

from workbench.models.higgs_tts3.configuration import HiggsTTS3Config
from workbench.models.higgs_tts3.sampler import SamplerState, sampler_step

log = logging.getLogger(__name__)

IGNORE_INDEX = -100
# Release weight names -> this class's (regex, applied by ``from_pretrained``).
RELEASE_KEY_MAPPING = {
    r"^body\.": "model.",
    r"^tied\.embedding\.text_embedding\.": "model.embed_tokens.",
    r"^tied\.embedding\.modality_embeddings\.0\.embedding\.": "audio_codebooks.",
}
# In a checkpoint but not in the model: copies of the tied heads (when it has them) and the bundled codec.
RELEASE_IGNORED_KEYS = (r"^tied\.head\.", r"^tied\.embedding\.modality_embeddings\.0\.model\.")
DEFAULT_MAX_NEW_TOKENS = 2048  # rows; the serving stacks' default (about 82 s at 25 frames/s)
# transformers renamed Qwen3Model.forward's past_key_values to cache (5.2x); take whichever it has.
_CACHE_ARGUMENT = (
    "cache" if "cache" in inspect.signature(Qwen3Model.forward).parameters else "past_key_values"
)


class AudioCodebooks(nn.Module):
    """The fused audio table ``(N * V, D)``: row embeddings in, and (tied) code logits out.

    Always call the module (``module(codes=...)``, ``module(hidden=...)``), never read its weight
    from outside: under PEFT ``modules_to_save`` the trained copy is what the call reaches, so the
    embedding and the head stay one tensor.

    Args:
        num_codebooks: N.
        codebook_size: V (codes + BOC + EOC).
        hidden_size: D.
    """

    def __init__(self, num_codebooks: int, codebook_size: int, hidden_size: int) -> None:
        super().__init__()
        self.num_codebooks = num_codebooks
        self.codebook_size = codebook_size
        self.weight = nn.Parameter(torch.empty(num_codebooks * codebook_size, hidden_size))

    def forward(self, codes: torch.Tensor | None = None, hidden: torch.Tensor | None = None) -> torch.Tensor:
        """Embed rows of codes, or score hidden states.

        Args:
            codes: LongTensor ``(..., N)``: returns their summed embeddings ``(..., D)``.
            hidden: Float ``(..., D)``: returns logits ``(..., N, V)`` (same weight).
        """
        if (codes is None) == (hidden is None):
            raise TypeError("AudioCodebooks takes exactly one of codes= or hidden=")
        if codes is not None:
            if codes.shape[-1] != self.num_codebooks:
                raise ValueError(
                    f"expected rows of {self.num_codebooks} codes, got shape {tuple(codes.shape)}"
                )
            offsets = torch.arange(self.num_codebooks, device=codes.device) * self.codebook_size
            return F.embedding(codes + offsets, self.weight).sum(dim=-2)
        logits = F.linear(hidden, self.weight)
        return logits.unflatten(-1, (self.num_codebooks, self.codebook_size))

    def extra_repr(self) -> str:
        return f"num_codebooks={self.num_codebooks}, codebook_size={self.codebook_size}, hidden_size={self.weight.shape[1]}"


@dataclass
class HiggsTTS3Output(ModelOutput):
    """Output of :meth:`HiggsTTS3ForConditionalGeneration.forward`.

    Attributes:
        loss: Scalar: summed cross entropy of the supervised codes over ``num_items_in_batch``
            (else N x their mean); None without ``audio_labels``.
        logits: ``(B, F, N, V)``: ``logits[b, f]`` predicts audio row ``f`` of sample ``b``
            (aligned with ``audio_labels``; zeros on padding rows). None without audio rows.
        past_key_values: The backbone's cache, when ``use_cache``.
    """

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    past_key_values: Any = None


class HiggsTTS3PreTrainedModel(PreTrainedModel):
    config: HiggsTTS3Config
    config_class = HiggsTTS3Config
    base_model_prefix = "model"
    supports_gradient_checkpointing = True
    _no_split_modules = ["Qwen3DecoderLayer"]
    _supports_flash_attn = True
    _supports_sdpa = True
    _supports_flex_attn = True
    _supports_attention_backend = True
    _keys_to_ignore_on_load_unexpected = list(RELEASE_IGNORED_KEYS)

    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)
        if isinstance(module, AudioCodebooks):
            init.normal_(module.weight, mean=0.0, std=self.config.text_config.initializer_range)


class HiggsTTS3ForConditionalGeneration(HiggsTTS3PreTrainedModel):
    """Higgs TTS 3: a Qwen3 backbone with a fused, tied audio embedding and head.

    Modules: ``model`` (``transformers.Qwen3Model``; its ``embed_tokens`` is the text embedding)
    and ``audio_codebooks`` (:class:`AudioCodebooks`). The text head of the release is tied to the
    text embedding and never used for speech, so it is not built.
    """

    def __init__(self, config: HiggsTTS3Config) -> None:
        super().__init__(config)
        self.model = Qwen3Model(config.text_config)
        self.audio_codebooks = AudioCodebooks(config.num_codebooks, config.codebook_size, config.hidden_size)
        self.post_init()

    @classmethod
    def can_generate(cls) -> bool:
        return True  # our own generate(); gives the model a generation_config

    @classmethod
    def from_pretrained(cls, *args: Any, **kwargs: Any) -> HiggsTTS3ForConditionalGeneration:
        """``PreTrainedModel.from_pretrained`` reading the release's names (:data:`RELEASE_KEY_MAPPING`)."""
        kwargs.setdefault("key_mapping", RELEASE_KEY_MAPPING)
        return super().from_pretrained(*args, **kwargs)

    def get_input_embeddings(self) -> nn.Module:
        return self.model.embed_tokens

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.model.embed_tokens = value

    # --- embedding ------------------------------------------------------------------------------
    def embed(
        self,
        input_ids: torch.LongTensor,
        audio_input_ids: torch.LongTensor | None = None,
        audio_input_ids_mask: torch.BoolTensor | None = None,
    ) -> tuple[torch.Tensor, torch.BoolTensor]:
        """Input embeddings with each placeholder replaced by its audio row's fused embedding.

        Args:
            input_ids: ``(B, L)``, ``audio_token_id`` at audio rows.
            audio_input_ids: ``(B, F, N)``, each sample's real rows first, then padding.
            audio_input_ids_mask: ``(B, F)``, True on real rows (None: all rows real).

        Returns:
            ``(embeddings (B, L, D), placeholders (B, L))``.

        Raises:
            ValueError: A sample's placeholder count differs from its real row count.
        """
        placeholders = input_ids == self.config.audio_token_id
        text_ids = input_ids.masked_fill(placeholders, 0)
        embeddings = self.model.embed_tokens(text_ids)
        rows_per_sample = placeholders.sum(dim=1)
        if audio_input_ids is None:
            if bool(placeholders.any()):
                raise ValueError(
                    f"input_ids hold {rows_per_sample.tolist()} audio placeholders per sample but no audio_input_ids"
                )
            return embeddings, placeholders
        if audio_input_ids_mask is None:
            audio_input_ids_mask = torch.ones(
                audio_input_ids.shape[:2], dtype=torch.bool, device=input_ids.device
            )
        real_rows = audio_input_ids_mask.sum(dim=1)
        if not torch.equal(rows_per_sample, real_rows.to(rows_per_sample.device)):
            raise ValueError(
                f"audio placeholders per sample {rows_per_sample.tolist()} differ from the real audio rows "
                f"per sample {real_rows.tolist()} (audio_input_ids_mask): every -100 of input_ids takes one row"
            )
        rows = self.audio_codebooks(codes=audio_input_ids[audio_input_ids_mask])  # (rows, D)
        embeddings = embeddings.masked_scatter(placeholders[..., None], rows.to(embeddings.dtype))
        return embeddings, placeholders

    # --- training forward -----------------------------------------------------------------------
    def forward(
        self,
        input_ids: torch.LongTensor,
        attention_mask: torch.Tensor | None = None,
        audio_input_ids: torch.LongTensor | None = None,
        audio_input_ids_mask: torch.BoolTensor | None = None,
        audio_labels: torch.LongTensor | None = None,
        num_items_in_batch: torch.Tensor | int | None = None,
        past_key_values: Any = None,
        use_cache: bool | None = None,
        **kwargs: Any,
    ) -> HiggsTTS3Output:
        """Logits for every audio row and, with ``audio_labels``, the training loss.

        Args:
            input_ids: ``(B, L)`` (left-padded in a batch), -100 at audio rows.
            attention_mask: ``(B, L)``, 0 on padding.
            audio_input_ids: ``(B, F, N)``; see :meth:`embed`.
            audio_input_ids_mask: ``(B, F)``.
            audio_labels: ``(B, F, N)``, -100 on unsupervised entries.
            num_items_in_batch: Divisor of the summed cross entropy (the Trainer's count of
                supervised entries per codebook); None: N x the mean over supervised entries.
            past_key_values: A backbone cache (generation).
            use_cache: Build and return the cache (default False: training needs none).

        Returns:
            :class:`HiggsTTS3Output`.
        """
        embeddings, placeholders = self.embed(input_ids, audio_input_ids, audio_input_ids_mask)
        position_ids = None
        if attention_mask is not None and past_key_values is None:
            position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
        use_cache = bool(use_cache)  # no cache in training unless asked
        hidden = self._backbone(embeddings, attention_mask, past_key_values, position_ids, use_cache)
        logits = loss = None
        if audio_input_ids is not None:
            # The row at placeholder p is predicted from position p - 1.
            predictors = torch.zeros_like(placeholders)
            predictors[:, :-1] = placeholders[:, 1:]
            mask = audio_input_ids_mask
            if mask is None:
                mask = torch.ones(audio_input_ids.shape[:2], dtype=torch.bool, device=hidden.device)
            row_logits = self.audio_codebooks(hidden=hidden[predictors])  # (rows, N, V)
            logits = row_logits.new_zeros((*audio_input_ids.shape, self.config.codebook_size))
            logits[mask] = row_logits
            if audio_labels is not None:
                loss = self.loss(row_logits, audio_labels[mask], num_items_in_batch)
        return HiggsTTS3Output(
            loss=loss, logits=logits, past_key_values=past_key_values if use_cache else None
        )

    def _backbone(
        self,
        embeddings: torch.Tensor,
        attention_mask: torch.Tensor | None,
        cache: Any = None,
        position_ids: torch.Tensor | None = None,
        use_cache: bool | None = None,
    ) -> torch.Tensor:
        """The backbone's last hidden states ``(B, L, D)`` for input embeddings ``(B, L, D)``."""
        outputs = self.model(
            inputs_embeds=embeddings,
            attention_mask=attention_mask,
            position_ids=position_ids,
            use_cache=use_cache,
            **{_CACHE_ARGUMENT: cache},
        )
        return outputs.last_hidden_state

    def loss(
        self,
        logits: torch.Tensor,
        labels: torch.LongTensor,
        num_items_in_batch: torch.Tensor | int | None = None,
    ) -> torch.Tensor:
        """Cross entropy of real rows: logits ``(rows, N, V)``, labels ``(rows, N)`` (-100 ignored).

        Returns:
            The sum over supervised entries divided by ``num_items_in_batch``, or without it
            N x their mean: both comparable to Higgs Audio v2's sum of per-codebook means.
        """
        total = F.cross_entropy(
            logits.float().reshape(-1, logits.shape[-1]),
            labels.reshape(-1).to(logits.device),
            ignore_index=IGNORE_INDEX,
            reduction="sum",
        )
        if num_items_in_batch is not None:
            if torch.is_tensor(num_items_in_batch):
                num_items_in_batch = num_items_in_batch.to(total.device)
            return total / num_items_in_batch
        count = (labels != IGNORE_INDEX).sum().clamp(min=1)
        return total * self.config.num_codebooks / count.to(total.device)

    # --- generation -----------------------------------------------------------------------------
    @torch.no_grad()
    def generate(
        self,
        input_ids: torch.LongTensor,
        attention_mask: torch.Tensor | None = None,
        audio_input_ids: torch.LongTensor | None = None,
        audio_input_ids_mask: torch.BoolTensor | None = None,
        generation_config: GenerationConfig | None = None,
        **kwargs: Any,
    ) -> torch.LongTensor:
        """Generate audio rows after a prompt ending with ``<|audio|>`` (batch size 1, KV cache).

        Implements :mod:`workbench.models.higgs_tts3.sampler` exactly: ramp-in with BOC, stop
        ``N - 2`` rows after codebook 0's EOC. Each row but the last is embedded and fed back.

        Args:
            input_ids: ``(1, L)``, with one -100 per reference row.
            attention_mask: ``(1, L)`` or None.
            audio_input_ids: ``(1, P, N)`` reference rows, or None.
            audio_input_ids_mask: ``(1, P)``, or None.
            generation_config: ``max_new_tokens`` (rows), ``do_sample``, ``temperature``, ``top_k``,
                ``top_p``; None: the model's. Keyword arguments of those names override it.

        Returns:
            LongTensor ``(1, P + R, N)``: the prompt's P real rows, then the R generated rows.
        """
        if input_ids.shape[0] != 1:
            raise ValueError(f"generate takes one prompt at a time, got a batch of {input_ids.shape[0]}")
        config = copy.deepcopy(generation_config or self.generation_config or GenerationConfig())
        for key in ("max_new_tokens", "do_sample", "temperature", "top_k", "top_p"):
            if key in kwargs:
                setattr(config, key, kwargs.pop(key))
        max_new_tokens = config.max_new_tokens or DEFAULT_MAX_NEW_TOKENS
        cfg = self.config
        embeddings, _ = self.embed(input_ids, audio_input_ids, audio_input_ids_mask)
        cache = DynamicCache(config=cfg.text_config)
        mask = attention_mask
        hidden = self._backbone(embeddings, mask, cache, use_cache=True)[:, -1]
        state = SamplerState(cfg.num_codebooks)
        rows = []
        for _ in range(max_new_tokens):
            logits = self.audio_codebooks(hidden=hidden)[0].float()  # (N, V)
            row = sampler_step(
                logits,
                state,
                cfg.boc_id,
                cfg.eoc_id,
                do_sample=bool(config.do_sample),
                temperature=config.temperature,
                top_k=config.top_k,
                top_p=config.top_p,
            )
            rows.append(row)
            if state.done or len(rows) == max_new_tokens:
                break
            if mask is not None:
                mask = torch.cat([mask, mask.new_ones((1, 1))], dim=1)
            step = self.audio_codebooks(codes=row[None, None]).to(embeddings.dtype)  # (1, 1, D)
            hidden = self._backbone(step, mask, cache, use_cache=True)[:, -1]
        prompt = torch.empty((0, cfg.num_codebooks), dtype=torch.long, device=input_ids.device)
        if audio_input_ids is not None:
            real = audio_input_ids_mask[0] if audio_input_ids_mask is not None else slice(None)
            prompt = audio_input_ids[0][real].to(input_ids.device)
        generated = torch.stack(rows).to(input_ids.device) if rows else prompt[:0]
        return torch.cat([prompt, generated])[None]


def parameter_count(config: HiggsTTS3Config) -> int:
    """Parameters of the model (backbone, text embedding, fused audio table), built on the meta device."""
    with torch.device("meta"):
        model = HiggsTTS3ForConditionalGeneration(config)
    return sum(p.numel() for p in model.parameters())
