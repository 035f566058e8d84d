"""``workbench bench train``: the training path users run, measured; ratios that hold on any machine.

Every training figure comes from :func:`workbench.training.train.fit`: the Trainer, the collator,
the length-grouped sampler, PEFT LoRA and accelerate, exactly as ``workbench train`` runs them,
with a callback that times the optimizer steps after a warm-up. One run prints:

(a) **data loading**, samples/s of the collator reading codes from the codes cache vs
    encoding every audio file on the fly (load, resample, run the audio tokenizer for every
    sample, as training without the cache would), on the demo dataset with the tiny model;
(b) **padding**, the fraction of padded token slots with length-grouped batches vs random batches
    (:func:`workbench.training.collate.padding_report`) over synthetic sequence lengths with a
    realistic spread of durations;
(c) **tiny-model training** through ``fit`` at the demo settings (batch 2, LoRA r 8, fp32).

With ``model="random-full"`` (or a model folder) it measures (d) **full-size training** through
``fit`` at the ``params/h200x8.yaml`` settings per device (bf16, LoRA r 64 / alpha 128 on attention
and both FFN paths; batch and activation checkpointing varied: on a GPU per-device batch 4, 8 and 16,
each with and without checkpointing): tokens/s, peak memory and model FLOPs utilisation (MFU);
then **codec encoding** (clips/s and x real time, one clip at a time vs length-sorted batches, as
``CodesCache.encode_missing`` does them) and **generation** (audio frames/s and real-time factor).
``--json`` writes every figure as JSON too.

Examples:
    >>> from workbench.bench.train import bench_train
    >>> print(bench_train("tiny", steps=5).format_text())  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from workbench.bench.train_measures import (
    ASSUMED_PEAK,
    active_parameters,
    codec_throughput,
    generation_speed,
    loading_rates,
    machine_description,
    measure_fit,
    peak_bf16_tflops,
    peak_memory,
)
from workbench.bench.train_workloads import (
    synthetic_samples,
    synthetic_sequence_lengths,
    trainable_demo_samples,
    write_jsonl,
)

log = logging.getLogger(__name__)

TINY = "tiny"
PRODUCTION_PARAMS = Path(__file__).resolve().parents[2] / "params" / "h200x8.yaml"
GPU_BATCH_SIZES = (4, 8, 16)  # per device
# params/demo.yaml
DEMO = {
    "batch_size": 2,
    "lora_r": 8,
    "lora_alpha": 16,
    "lora_dropout": 0.0,
    "modules_to_save": ["audio_lm_head"],
    "learning_rate": 0.005,
}
CPU_PARAMETER_LIMIT = 1_000_000_000  # above this, training on a CPU needs allow_cpu


class BenchRefusedError(ValueError):
    """The benchmark would not finish in reasonable time or memory on this machine."""


@dataclass
class BenchTrainResult:
    """What :func:`bench_train` measured; :meth:`format_text` prints it.

    Attributes:
        machine: CPU, cores, Python, torch, threads and GPU.
        loading: (a) ``samples``, ``cached_samples_per_s``, ``on_the_fly_samples_per_s``, ``speedup``.
        padding: (b) ``samples``, ``batch_size``, ``grouped``, ``random`` (fractions), ``durations``.
        tiny: (c) one :func:`measure_fit` run at the demo settings.
        full: (d) ``model``, ``device_name``, ``params_total``, ``params_active``, ``peak_tflops``,
            ``runs`` (one :func:`measure_fit` dict per batch size and checkpointing setting),
            ``codec`` (:func:`codec_throughput`), ``generation`` (:func:`generation_speed`); None
            when not run.
    """

    machine: str
    loading: dict[str, Any] = field(default_factory=dict)
    padding: dict[str, Any] = field(default_factory=dict)
    tiny: dict[str, Any] = field(default_factory=dict)
    full: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def format_text(self) -> str:
        """The report, one figure per line, ratios last in each block."""
        lines = [f"workbench bench train ({self.machine})"]
        a = self.loading
        if a:
            lines += [
                f"(a) data loading: demo dataset, {a['samples']} samples, {a['codec']} codec, one process, batch {a['batch_size']}",
                f"    codes cache     {a['cached_samples_per_s']:>10,.1f} samples/s",
                f"    on the fly      {a['on_the_fly_samples_per_s']:>10,.1f} samples/s  (load, resample if needed, encode every audio file)",
                f"    cache speed-up  {a['speedup']:>10,.1f}x",
            ]
        b = self.padding
        if b:
            d = b["durations"]
            lines += [
                f"(b) padding: {b['samples']:,} synthetic samples, reference + target clips of {d['min']:.0f}-{d['max']:.0f} s "
                f"(median {d['median']:.1f} s), {b['min_length']}-{b['max_length']} tokens, batch {b['batch_size']}",
                f"    length-grouped  {b['grouped']:>10.1%} padded slots",
                f"    random          {b['random']:>10.1%} padded slots",
                f"    real tokens per batch slot: {1 - b['grouped']:.3f} vs {1 - b['random']:.3f} "
                f"({(1 - b['grouped']) / (1 - b['random']):.2f}x more useful work per step with grouping)",
            ]
        c = self.tiny
        if c:
            lines += [
                f"(c) tiny model LoRA training through fit: demo settings (batch {c['batch_size']}, LoRA r {c['lora_r']}, "
                f"{c['dtype']}), {c['device']}, single process",
                f"    {c['steps_per_s']:.2f} steps/s, {c['tokens_per_s']:,.0f} tokens/s "
                f"({c['steps']} steps after {c['warmup_steps']} warm-up, {c['seconds_per_step'] * 1000:.0f} ms/step)",
            ]
        f = self.full
        if f:
            lines += [
                f"(d) {f['model']} ({_count(f['params_total'])} parameters, {_count(f['params_active'])} active per token) "
                f"on {f['device_name']}, through fit at params/h200x8.yaml per device: {f['dtype']}, LoRA r {f['lora_r']} / "
                f"alpha {f['lora_alpha']} ({_count(f['trainable'])} trainable); MFU against {f['peak_tflops']:.0f} TFLOPS "
                f"dense bf16 ({f['peak_source']})",
                "    batch  checkpointing   tokens/s   steps/s   MFU (6N)   MFU (4N)   peak memory",
            ]
            for r in f["runs"]:
                checkpointing = "on" if r["activation_checkpointing"] else "off"
                if r.get("error"):
                    lines.append(f"    {r['batch_size']:>5}  {checkpointing:<13}  {r['error']}")
                    continue
                lines.append(
                    f"    {r['batch_size']:>5}  {checkpointing:<13} {r['tokens_per_s']:>9,.0f} {r['steps_per_s']:>9.3f} "
                    f"{_percent(r['mfu']):>10} {_percent(r['mfu_4n']):>10}   {r['peak_memory_gib']:.1f} GiB"
                )
            lines.append(
                f"    peak memory: {f['memory_kind']}; {f['steps']} timed steps after {f['warmup_steps']} warm-up"
            )
            k = f.get("codec")
            if k:
                lines.append(
                    f"    codec encoding ({k['clips']} clips of {k['clip_seconds']:.0f} s on {k['device']}): one at a time "
                    f"{k['one_at_a_time']['clips_per_s']:.2f} clips/s ({k['one_at_a_time']['x_real_time']:.1f}x real time); "
                    f"batches of {k['batch_size']} {k['batched']['clips_per_s']:.2f} clips/s "
                    f"({k['batched']['x_real_time']:.1f}x real time): {k['speedup']:.2f}x, faster: {k['faster']}; "
                    f"codes {'identical' if k['identical'] else 'DIFFERENT'}"
                )
            g = f.get("generation")
            if g:
                lines.append(
                    f"    generation: {g['frames']} frames in {g['seconds']:.2f} s = {g['frames_per_s']:.1f} frames/s, "
                    f"real-time factor {g['real_time_factor']:.2f} (under 1: faster than real time)"
                )
        return "\n".join(lines)


# --------------------------------------------------------------------------- helpers


def _percent(x: float) -> str:
    """``38.2%``; small values (a CPU against a GPU peak) keep their digits: ``6.8e-03%``."""
    return f"{x:.1%}" if x >= 0.001 else f"{100 * x:.1e}%"


def _count(n: float) -> str:
    """``5.38 B``, ``96.5 M``, ``12.3 k``."""
    for scale, unit in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if n >= scale:
            return f"{n / scale:.2f} {unit}" if unit == "B" else f"{n / scale:.1f} {unit}"
    return f"{n:.0f}"


def _prepare(
    model: str, train_data: Path, workdir: Path, production: bool = False, **overrides: Any
) -> tuple[Any, Any]:
    """``(TrainParams, Prepared)`` of ``workbench train`` for ``model`` on ``train_data``: with
    ``production``, ``params/h200x8.yaml`` under ``overrides``, else the defaults under them."""
    from workbench.training.params import TrainParams, load_train_params
    from workbench.training.preparation import prepare

    base = {
        "model": model,
        "train_data": str(train_data),
        "val_data": None,
        "codes_cache_dir": str(workdir / "codes"),
        "resume_from_checkpoint": None,
        "merge": False,
        "save_steps": 10_000,  # no checkpoint inside the timed steps
        "logging_steps": 10_000,
        "gradient_accumulation_steps": 1,  # per device, per step
        **overrides,
    }
    if production:
        params, _ = load_train_params(PRODUCTION_PARAMS, base)
    else:
        params = TrainParams(**base)
    return params, prepare(params)


def bench_tiny(
    workdir: Path, steps: int = 20, demo_samples: int | None = None, loading_samples: int = 8, seed: int = 0
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(a) loading rates and (c) training through ``fit`` with the tiny model on the demo dataset (CPU).

    Returns:
        ``(loading, tiny)`` dicts of :class:`BenchTrainResult`.
    """
    from workbench.demo import make_tiny_model
    from workbench.models.model import load_model_and_processor

    samples = trainable_demo_samples(workdir)[:demo_samples]
    tiny = make_tiny_model(workdir / "tiny-model", seed=seed, overwrite=True)
    _, processor = load_model_and_processor(tiny)
    loading = loading_rates(
        samples[: max(1, loading_samples)], processor, workdir / "codes", batch_size=DEMO["batch_size"]
    )
    loading["codec"] = "tiny"
    train_data = write_jsonl(samples, workdir / "tiny_train.jsonl")
    settings = {k: v for k, v in DEMO.items()}
    params, prepared = _prepare(
        str(tiny), train_data, workdir, output_dir=str(workdir / "tiny_run"), max_steps=steps + 1, seed=seed,
        **settings,
    )  # fmt: skip
    total, active = active_parameters(prepared.model)
    run = measure_fit(prepared, params, warmup_steps=1, active=active, peak_tflops=ASSUMED_PEAK[1])
    log.info("tiny model: %.2f steps/s", run["steps_per_s"])
    return loading, run


def bench_padding(n: int = 2000, batch_size: int = 4, seed: int = 0) -> dict[str, Any]:
    """(b) padding fraction with length grouping vs random batches on synthetic lengths."""
    from workbench.training.collate import padding_report

    lengths, durations = synthetic_sequence_lengths(n, seed)
    report = padding_report(lengths, batch_size, seed=seed)
    return {
        "samples": n,
        "batch_size": batch_size,
        "grouped": report["grouped"],
        "random": report["random"],
        "min_length": min(lengths),
        "max_length": max(lengths),
        "durations": {
            "min": float(durations.min()),
            "max": float(durations.max()),
            "median": float(np.median(durations)),
        },
    }


def check_full_runnable(model: str, allow_cpu: bool = False) -> None:
    """Refuse the full-size benchmark where it cannot run in reasonable time or memory.

    Raises:
        BenchRefusedError: No GPU and the model has over 1 B parameters (or an unknown count)
            while ``allow_cpu`` is false; or a GPU without bf16.
    """
    from workbench.models.memory import parameter_count

    if not torch.cuda.is_available():
        if allow_cpu:
            return
        count = parameter_count(model)
        if count is not None and count <= CPU_PARAMETER_LIMIT:
            return
        size = f"{count / 1e9:.1f} B parameters" if count else "a model of unknown size"
        raise BenchRefusedError(
            f"no GPU: training {model!r} ({size}) on a CPU takes hours and more memory than most machines "
            "have, so the full-size benchmark is refused. Run it on a GPU machine, or pass --allow-cpu to run "
            "it here anyway (the data-loading, padding and tiny-model figures need no GPU: --model tiny). "
            "`workbench bench rehearsal` runs the full-size production path here at batch 1."
        )
    if not torch.cuda.is_bf16_supported():
        raise BenchRefusedError(
            f"{torch.cuda.get_device_name(0)} has no bf16; the h200x8 settings train in bf16"
        )


def bench_full(
    model: str,
    workdir: Path,
    steps: int = 10,
    warmup_steps: int = 2,
    allow_cpu: bool = False,
    max_seconds: float = 15.0,
    batch_sizes: Sequence[int] | None = None,
    checkpointing: Sequence[bool] | None = None,
    codec_clips: int | None = None,
    max_new_tokens: int | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """(d) full-size training through ``fit`` at the h200x8 per-device settings, codec and generation speed.

    The model is loaded once by :func:`workbench.training.preparation.prepare` (data check, codes cache)
    and trained once per batch size and checkpointing setting.

    Args:
        model: ``"random-full"`` or a model folder / cached hub id.
        workdir: Scratch folder (synthetic WAVs, codes cache, run folders).
        steps: Timed optimizer steps per run.
        warmup_steps: Untimed steps first (kernels, allocator).
        allow_cpu: Run without a GPU anyway (a 5.4 B model: minutes per step, ~15 GB of memory).
        max_seconds: Longest synthetic clip (durations are 1 s to this).
        batch_sizes: Per-device batches (default: 4, 8, 16 on a GPU; 4 on a CPU).
        checkpointing: Activation checkpointing settings (default: on and off on a GPU; on on a CPU).
        codec_clips: Clips for the codec throughput (default: 32 on a GPU, 4 on a CPU; 0 skips it).
        max_new_tokens: Frames for the generation speed (default: 250 on a GPU, 10 on a CPU; 0 skips).
        seed: Seeds the synthetic data and the random weights.

    Raises:
        BenchRefusedError: No GPU (and not ``allow_cpu``) for a model over 1 B parameters, or a
            GPU without bf16.
    """
    check_full_runnable(model, allow_cpu)
    cuda = torch.cuda.is_available()
    device_name = torch.cuda.get_device_name(0) if cuda else f"CPU ({os.cpu_count()} cores)"
    batch_sizes = list(batch_sizes or (GPU_BATCH_SIZES if cuda else (4,)))
    checkpointing = list(checkpointing if checkpointing is not None else ((True, False) if cuda else (True,)))
    codec_clips = (32 if cuda else 4) if codec_clips is None else codec_clips
    max_new_tokens = (250 if cuda else 10) if max_new_tokens is None else max_new_tokens

    n = max(batch_sizes) * (steps + warmup_steps)
    samples = synthetic_samples(workdir / "full_wavs", n, seed=seed, high=max_seconds)
    train_data = write_jsonl(samples, workdir / "full_train.jsonl")
    started = time.perf_counter()
    params, prepared = _prepare(
        model, train_data, workdir, production=True, output_dir=str(workdir / "full_run"),
        max_steps=steps + warmup_steps, batch_size=max(batch_sizes), seed=seed,
        dataloader_num_workers=min(4, os.cpu_count() or 1) if cuda else 0,
    )  # fmt: skip
    prepare_seconds = time.perf_counter() - started
    total, active = active_parameters(prepared.model)
    peak_tflops, peak_source = peak_bf16_tflops(device_name if cuda else None)
    runs = []
    for gc_on in checkpointing:
        for batch in batch_sizes:
            run_params = dataclasses.replace(
                params, batch_size=batch, activation_checkpointing=gc_on,
                output_dir=str(workdir / f"full_run_b{batch}_{'gc' if gc_on else 'nogc'}"),
            )  # fmt: skip
            runs.append(measure_fit(prepared, run_params, warmup_steps, active, peak_tflops))
            log.info("batch %d, checkpointing %s: %s", batch, gc_on, runs[-1])
    full: dict[str, Any] = {
        "model": model, "device_name": device_name, "dtype": params.mixed_precision, "lora_r": params.lora_r,
        "lora_alpha": params.lora_alpha, "trainable": next((r["trainable"] for r in runs if "trainable" in r), 0),
        "params_total": total, "params_active": active, "flops_per_token": 6 * active,
        "peak_tflops": peak_tflops, "peak_source": peak_source if cuda else "no GPU: an H100 SXM peak, for reference only",
        "steps": steps, "warmup_steps": warmup_steps, "memory_kind": peak_memory(cuda)[1],
        "prepare_seconds": prepare_seconds, "runs": runs, "codec": None, "generation": None,
    }  # fmt: skip
    codec = prepared.processor.audio_tokenizer
    if codec_clips:
        codec.to("cuda" if cuda else "cpu")
        full["codec"] = codec_throughput(codec, workdir, codec_clips)
    if max_new_tokens:
        lm = prepared.model.to("cuda" if cuda else "cpu")
        full["generation"] = generation_speed(
            lm, prepared.processor, prepared.codes_cache, samples[0], max_new_tokens
        )
    return full


def bench_train(
    model: str = TINY,
    steps: int = 20,
    allow_cpu: bool = False,
    workdir: str | os.PathLike[str] | None = None,
    demo_samples: int | None = None,
    loading_samples: int = 8,
    padding_samples: int = 2000,
    full_warmup_steps: int = 2,
    full_max_seconds: float = 15.0,
    batch_sizes: Sequence[int] | None = None,
    checkpointing: Sequence[bool] | None = None,
    codec_clips: int | None = None,
    max_new_tokens: int | None = None,
    seed: int = 0,
) -> BenchTrainResult:
    """Run the training benchmarks (see the module docstring).

    Args:
        model: ``"tiny"`` for (a)-(c) only; ``"random-full"`` or a model folder / cached hub id
            for (d), the full-size figures at the h200x8 per-device settings (then (a)-(c) are
            skipped: they do not depend on the model).
        steps: Timed optimizer steps per training run.
        allow_cpu: Run (d) without a GPU anyway.
        workdir: Keep the scratch files here (default: a temporary folder, removed afterwards).
        demo_samples: Use only the first N demo samples in (a) and (c) (None: all).
        loading_samples: Samples timed in (a) (both modes on the same samples).
        padding_samples: Synthetic samples for (b).
        full_warmup_steps: Untimed steps before each (d) run is timed.
        full_max_seconds: Longest synthetic clip in (d).
        batch_sizes, checkpointing, codec_clips, max_new_tokens: see :func:`bench_full`.
        seed: Seeds data, weights and orders.

    Returns:
        A :class:`BenchTrainResult`.

    Raises:
        BenchRefusedError: (d) asked for on a machine that cannot run it (checked first).
        ValueError: ``steps`` < 1.
    """
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    if model != TINY:
        check_full_runnable(model, allow_cpu)
    from workbench.bench.data import bench_workdir

    with bench_workdir(workdir, "workbench-bench-train-") as work:
        result = BenchTrainResult(machine=machine_description())
        if model == TINY:
            result.loading, result.tiny = bench_tiny(
                work, steps=steps, demo_samples=demo_samples, loading_samples=loading_samples, seed=seed
            )
            result.padding = bench_padding(padding_samples, seed=seed)
        else:
            result.full = bench_full(
                model, work, steps=steps, warmup_steps=full_warmup_steps, allow_cpu=allow_cpu,
                max_seconds=full_max_seconds, batch_sizes=batch_sizes, checkpointing=checkpointing,
                codec_clips=codec_clips, max_new_tokens=max_new_tokens, seed=seed,
            )  # fmt: skip
        return result
