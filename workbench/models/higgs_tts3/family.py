"""Higgs TTS 3 behind the model-family seam: what the stages ask of :class:`HiggsTTS3Family`."""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from workbench.models.family import ModelFamily, NoAudioError, decoded_waveform, unwrap
from workbench.models.folder import resolve_model_path
from workbench.models.higgs_tts3 import sequence
from workbench.models.higgs_tts3.configuration import MODEL_TYPE, TRAINING_CONTEXT, HiggsTTS3Config
from workbench.models.higgs_tts3.modeling import (
    IGNORE_INDEX,
    HiggsTTS3ForConditionalGeneration,
    parameter_count,
)
from workbench.models.higgs_tts3.processing import HiggsTTS3Processor
from workbench.models.higgs_tts3.release import (
    load_processor,
    load_release,
    read_config,
    save_release,
    write_notice,
)


class HiggsTTS3Family(ModelFamily):
    """Higgs TTS 3: the v3 prompt and delay pattern, its sampler, and the release layout."""

    name = "higgs-tts-3"
    title = "Higgs TTS 3"
    model_types = (MODEL_TYPE,)
    default_lora_targets = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
    head_modules = ("audio_codebooks",)
    default_temperature = 1.0  # vLLM-Omni's, SGLang-Omni's and mlx-audio's default
    repetition_aware_sampling = False  # none of the serving stacks has it for v3

    def owns(self, obj: Any) -> bool:
        return isinstance(obj, HiggsTTS3Processor) or isinstance(
            unwrap(obj), HiggsTTS3ForConditionalGeneration
        )

    # --- loading --------------------------------------------------------------------------------
    def load(
        self, model_path: str | os.PathLike[str], dtype: Any = None, device: Any = None
    ) -> tuple[HiggsTTS3ForConditionalGeneration, HiggsTTS3Processor]:
        return load_release(model_path, dtype=dtype, device=device)

    def load_processor(self, model_path: str | os.PathLike[str]) -> HiggsTTS3Processor:
        return load_processor(model_path)

    def parameter_count(self, model_path: str | os.PathLike[str]) -> int | None:
        """Backbone + text embedding + fused audio table, counted on the meta device from ``config.json``."""
        return parameter_count(read_config(resolve_model_path(model_path)))

    def context_length(self, config: Any) -> int | None:
        """``min(max_position_embeddings, 8192)`` of a config object or ``config.json`` dict."""
        if isinstance(config, Mapping):
            positions = (config.get("text_config") or {}).get("max_position_embeddings")
            return min(int(positions), TRAINING_CONTEXT) if positions else TRAINING_CONTEXT
        if isinstance(config, HiggsTTS3Config):
            return config.context_length
        return None

    # --- sequences ------------------------------------------------------------------------------
    def encode_sample(
        self, sample: Any, processor: Any, codes_cache: Any, max_length: int | None = None
    ) -> dict[str, Any]:
        return sequence.encode_sample(sample, processor, codes_cache, max_length)

    def sequence_length(self, sample: Any, processor: Any, codes_cache: Any) -> int:
        return sequence.sequence_length(sample, processor, codes_cache)

    def estimated_length(self, sample: Any, processor: Any, seconds: Mapping[str, float]) -> int | None:
        return sequence.estimated_length(sample, processor, seconds)

    def sample_notes(self, sample: Any, seconds: Mapping[str, float] | None = None) -> list[str]:
        return sequence.sample_notes(sample, seconds)

    # --- generation -----------------------------------------------------------------------------
    def generation_inputs(self, context: Any, processor: Any, codes_cache: Any) -> dict[str, Any]:
        return sequence.generation_inputs(context, processor, codes_cache)

    def generated_codes(
        self, processor: HiggsTTS3Processor, audio_ids: torch.Tensor, prompt_rows: int | None = None
    ) -> torch.Tensor:
        """The codes ``(N, T)`` of the clip ``generate`` returned (``(1, P + R, N)``, or only its rows).

        The generated block starts after the prompt's ``prompt_rows`` reference rows (when not given:
        at the last row whose codebooks 1..N-1 are all BOC, the first sampled row). It holds T frames:
        up to codebook 0's first EOC after the N ramp-in rows (the sampler ignores an EOC during the
        ramp, so decoding does too), or as many as the rows give.

        Raises:
            NoAudioError: No generated block, or too few rows for one frame.
        """
        rows = (audio_ids[0] if audio_ids.ndim == 3 else audio_ids).detach().cpu()
        n, boc, eoc = rows.shape[-1], processor.audio_stream_bos_id, processor.audio_stream_eos_id
        if prompt_rows is None:
            starts = (rows[:, 1:] == boc).all(dim=-1).nonzero()
            if len(starts) == 0:
                raise NoAudioError(
                    "the codes have no row where generated audio starts (codebooks 1..N-1 all BOC)"
                )
            prompt_rows = int(starts[-1])
        block = rows[prompt_rows:]
        ends = (block[n:, 0] == eoc).nonzero()
        frames = min(n + int(ends[0]) if len(ends) else len(block), len(block) - n + 1)
        if frames < 1:
            raise NoAudioError(
                f"{len(block)} row(s) were generated; the delay pattern over {n} codebooks needs at least "
                f"{n} rows for one frame (raise max_new_tokens, or the model stops too early)"
            )
        return processor.undelay(block[: frames + n - 1])

    def decode_generated(
        self, processor: HiggsTTS3Processor, audio_ids: torch.Tensor, prompt_rows: int | None = None
    ) -> np.ndarray:
        """A float32 waveform (24 kHz) of the clip ``generate`` returned (see :meth:`generated_codes`).

        Raises:
            NoAudioError: No generated audio, or a degenerate decode.
        """
        codes = self.generated_codes(processor, audio_ids, prompt_rows)
        return decoded_waveform(lambda: processor.decode_codes(codes), "the codec")

    # --- training metrics and export ------------------------------------------------------------
    def codebook_hits(self, model: Any, inputs: Mapping[str, Any], logits: Any) -> tuple[Any, Any]:
        """Argmax of ``logits`` ``(B, F, N, V)`` against ``audio_labels`` ``(B, F, N)``, per codebook."""
        labels = inputs["audio_labels"].to(logits.device)
        supervised = labels != IGNORE_INDEX
        correct = ((logits.argmax(dim=-1) == labels) & supervised).sum(dim=(0, 1))
        return correct, supervised.sum(dim=(0, 1))

    def save_merged(self, model: Any, processor: Any, out_dir: str | os.PathLike[str]) -> Path:
        """Merge a copy of a PEFT model (the caller's stays as it is) and save the release layout
        with the licence notice (and the base folder's licence files, when it is known)."""
        merged = copy.deepcopy(model).merge_and_unload() if hasattr(model, "merge_and_unload") else model
        merged = unwrap(merged)
        base = getattr(merged.config, "_name_or_path", "") or ""
        base_dir = base if base and Path(base).is_dir() else None
        # The callers decide on replacing: export asks for --overwrite, a run rewrites its own merged/.
        return save_release(merged, processor, out_dir, base_dir=base_dir, overwrite=True)

    def write_notices(self, folder: str | os.PathLike[str], base_dir: str | os.PathLike[str] | None) -> None:
        """The licence ``NOTICE`` (and the base's licence files) for an adapter or model folder."""
        write_notice(folder, base_dir)


HIGGS_TTS_3 = HiggsTTS3Family()
