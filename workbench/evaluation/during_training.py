"""Listening during training: at each evaluation, speak a few validation prompts and score the voice.

With ``eval_generate: N`` (:class:`workbench.training.params.TrainParams`), :class:`GenerateAndScore`
generates the first N validation prompts with fixed seeds, using the model being trained, and scores
each clip's speaker similarity (GE2E, to the target recording, else to the reference), naturalness
(DNSMOS P.835) and, for English prompts, word error rate (Whisper tiny.en) with
:mod:`workbench.evaluation.voice`. A run that starts to fall silent or drift from
the voice shows it while it runs, not only in notebook 05.

The scores join the evaluation's metrics (``eval_speaker_similarity``, ``eval_dnsmos_ovrl``, ...): the
dict the Trainer's ``evaluate()`` returns, its ``log_history`` entry of that evaluation, a line of the
run's ``metrics.jsonl`` and TensorBoard scalars in the run's ``tensorboard`` folder (the Trainer logs
its evaluation before callbacks hear of it, so this callback writes those itself). The clips are kept
under ``output_dir/eval_audio/step-<N>/``. Only rank 0 generates; the other ranks wait at their next step.

Wire it in with ``fit(prepared, callbacks=eval_generate_callbacks(prepared))``.
"""

from __future__ import annotations

import logging
import math
import os
import re
import time
from pathlib import Path
from typing import Any

import numpy as np
from transformers import TrainerCallback

from workbench.evaluation.eval_report import RUNAWAY_DURATION_RATIO, SAMPLE_RATE, SILENT_CLIP_RATIO
from workbench.evaluation.synthesis import (
    EvalPrompt,
    NoAudioError,
    Sampling,
    decode_audio,
    generation_config,
    generation_inputs,
    make_prompt,
    prompt_rows,
)
from workbench.training.callbacks import append_metrics

log = logging.getLogger(__name__)

METRIC_KEYS = (
    "eval_speaker_similarity",  # to the target recording when the sample has one, else to the reference
    "eval_speaker_sim_ref",
    "eval_dnsmos_ovrl",
    "eval_dnsmos_sig",
    "eval_dnsmos_bak",
    "eval_wer",  # English prompts, bundled Whisper tiny.en: a run that turns to babble shows it here
    "eval_duration_ratio",
    "eval_silent_clips",  # fraction of the prompts: no audio, or a silence ratio >= SILENT_CLIP_RATIO
    "eval_runaway_clips",  # fraction: hit max_new_tokens, or longer than RUNAWAY_DURATION_RATIO x target
)


def eval_generate_callbacks(prepared: Any, sampling: Sampling | None = None) -> list[Any]:
    """``[GenerateAndScore]`` for ``prepared.params.eval_generate`` > 0 with validation samples, else ``[]``.

    Args:
        prepared: What :func:`workbench.training.preparation.prepare` built (params, model, processor,
            codes cache, validation samples).
        sampling: How to generate; default :class:`Sampling` (at most 500 frames, 20 s).
    """
    count = getattr(prepared.params, "eval_generate", 0)
    if count <= 0 or prepared.stop:
        return []
    prompts = [
        p for p in (make_prompt(s, prepared.params.seed) for s in prepared.val_samples) if not p.problem
    ]
    if not prompts:
        log.warning(
            "eval_generate %d: no validation prompt to speak (val_data is empty or unset); off", count
        )
        return []
    return [
        GenerateAndScore(prompts[:count], prepared.processor, prepared.codes_cache, sampling or Sampling())
    ]


class GenerateAndScore(TrainerCallback):
    """Generate fixed-seed prompts at each evaluation and log their speaker similarity and DNSMOS.

    Args:
        prompts: The prompts to speak (each with its own seed).
        processor: The model's processor (encodes the prompts, decodes the codes).
        codes_cache: The codes cache holding the prompts' reference audio codes.
        sampling: How to generate.
    """

    def __init__(self, prompts: list[EvalPrompt], processor: Any, codes_cache: Any, sampling: Sampling):
        self.prompts, self.processor, self.codes_cache, self.sampling = (
            prompts,
            processor,
            codes_cache,
            sampling,
        )
        self._inputs: dict[str, Any] = {}
        self._scorer: Any = None
        self._writer: Any = None

    # --- the Trainer's events ---------------------------------------------------------------------
    def on_evaluate(self, args, state, control, model=None, metrics=None, **kwargs):
        if not state.is_world_process_zero or model is None:
            return
        started = time.perf_counter()
        scores = self.generate_and_score(
            model, Path(args.output_dir) / "eval_audio" / f"step-{state.global_step}"
        )
        if metrics is not None:
            metrics.update(scores)
        for entry in reversed(state.log_history):  # the entry the Trainer logged for this evaluation
            if entry.get("step") == state.global_step and any(k.startswith("eval_") for k in entry):
                entry.update(scores)
                break
        else:
            state.log_history.append({**scores, "step": state.global_step})
        self._write_tensorboard(args, state, scores)
        append_metrics(args.output_dir, state, scores)
        shown = ", ".join(f"{k[5:]} {v:.3g}" for k, v in scores.items() if not math.isnan(v))
        log.info("step %d: %d prompts spoken in %.0f s: %s", state.global_step, len(self.prompts),
                 time.perf_counter() - started, shown)  # fmt: skip

    def on_train_end(self, args, state, control, **kwargs):
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    # --- the work -----------------------------------------------------------------------------------
    def generate_and_score(self, model: Any, audio_dir: Path | None = None) -> dict[str, float]:
        """Speak every prompt with ``model`` and return the means of :data:`METRIC_KEYS` (NaN when none)."""
        import torch

        from workbench.audio import load_audio, write_wav
        from workbench.evaluation import quality, voice

        if self._scorer is None:
            self._scorer = voice.VoiceScorer(SAMPLE_RATE)
        was_training = model.training
        model.eval()
        device = next(model.parameters()).device
        config = generation_config(model, self.sampling)
        values: dict[str, list[float]] = {k: [] for k in METRIC_KEYS}
        try:
            for prompt in self.prompts:
                sid = prompt.sample.id
                if sid not in self._inputs:
                    self._inputs[sid] = generation_inputs(prompt, self.processor, self.codes_cache)
                inputs = {k: v.to(device) for k, v in self._inputs[sid].items()}
                torch.manual_seed(prompt.seed)
                with torch.no_grad():
                    audio_ids = model.generate(**inputs, generation_config=config)
                prompt_frames = prompt_rows(inputs)
                runaway = audio_ids.shape[1] - prompt_frames >= self.sampling.max_new_tokens
                try:
                    audio = decode_audio(self.processor, audio_ids, inputs)
                except NoAudioError as exc:
                    log.info("eval_generate: %s: no audio: %s", sid, exc)
                    values["eval_silent_clips"].append(1.0)
                    values["eval_runaway_clips"].append(0.0)
                    continue
                if audio_dir is not None:
                    write_wav(
                        audio_dir / f"{re.sub(r'[^A-Za-z0-9._-]+', '_', sid)[:120]}.wav",
                        np.clip(audio, -1, 1),
                    )
                row = self._scorer.scores(audio, prompt.reference, prompt.target, text=prompt.text)
                similarity = row.get("speaker_sim_target", row.get("speaker_sim_ref"))
                values["eval_speaker_similarity"].append(similarity if similarity is not None else math.nan)
                values["eval_speaker_sim_ref"].append(row.get("speaker_sim_ref", math.nan))
                for name in ("ovrl", "sig", "bak"):
                    values[f"eval_dnsmos_{name}"].append(row.get(f"dnsmos_{name}", math.nan))
                values["eval_wer"].append(row.get("wer", math.nan))
                ratio = math.nan
                if prompt.target and os.path.isfile(prompt.target):
                    target_seconds = quality.duration(load_audio(prompt.target, SAMPLE_RATE), SAMPLE_RATE)
                    ratio = (
                        quality.duration(audio, SAMPLE_RATE) / target_seconds
                        if target_seconds > 0
                        else math.nan
                    )
                values["eval_duration_ratio"].append(ratio)
                silent = quality.silence_ratio(audio, SAMPLE_RATE) >= SILENT_CLIP_RATIO
                values["eval_silent_clips"].append(float(silent))
                values["eval_runaway_clips"].append(float(runaway or ratio > RUNAWAY_DURATION_RATIO))
        finally:
            if was_training:
                model.train()
        return {k: _mean(v) for k, v in values.items()}

    def _write_tensorboard(self, args: Any, state: Any, scores: dict[str, float]) -> None:
        """Scalars beside the Trainer's (fit's folder rule: TENSORBOARD_LOGGING_DIR, else output_dir/tensorboard)."""
        if "tensorboard" not in (args.report_to or []):
            return
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter

            folder = os.environ.get("TENSORBOARD_LOGGING_DIR") or str(Path(args.output_dir) / "tensorboard")
            self._writer = SummaryWriter(log_dir=os.path.expanduser(folder))
        for key, value in scores.items():
            if not math.isnan(value):
                self._writer.add_scalar(
                    f"eval/{key[5:]}", value, state.global_step
                )  # the Trainer's eval/ group
        self._writer.flush()


def _mean(values: list[float]) -> float:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(finite)) if finite else math.nan
