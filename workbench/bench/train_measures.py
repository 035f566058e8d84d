"""The measurements of ``workbench bench train``: steps timed through ``fit``, loading, codec and generation rates.

MFU. Model FLOPs per step = ``6 * N_active * tokens``, the usual estimate for forward (2N) plus
backward (4N) over the real (non-padding) tokens of the step, as the Trainer counts them
(``include_num_input_tokens_seen="non_padding"``). ``N_active`` is the number of parameters one
token passes through: all parameters minus the embedding tables (lookups, no matmuls) minus one of
the two FFN paths of each dual-FFN layer (a text token goes through ``mlp``, an audio token through
``audio_mlp``; both are the same size); the audio LM head is included. For the full-size model that
is about 2.8 B of 5.4 B. Assumptions: (1) 6N is an upper bound for LoRA: the weight gradients of
frozen matrices are not computed, so the backward pass costs ~2N rather than 4N; the 4N figure is
printed alongside. (2) Recomputation by activation checkpointing (another ~2N) is *not* counted: MFU
counts model FLOPs, not hardware FLOPs. (3) Attention score FLOPs and LoRA's own FLOPs (r 64: ~3 %
of N) are left out. The peak is the card's dense bf16 tensor-core rate, looked up by device name;
unknown cards are assumed to be an H100 SXM.
"""

from __future__ import annotations

import dataclasses
import gc
import logging
import os
import platform
import resource
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from workbench.audio import load_audio
from workbench.bench.train_workloads import FRAME_RATE, write_voice
from workbench.data.sample import Sample
from workbench.training.codes import CodesCache

log = logging.getLogger(__name__)

# Dense bf16 tensor-core peaks in TFLOPS (no sparsity), matched by substring of the device name,
# most specific first.
PEAK_BF16_TFLOPS: tuple[tuple[str, float], ...] = (
    ("H200", 989.4),
    ("GH200", 989.4),
    ("H100 PCIe", 756.0),
    ("H100 NVL", 835.0),
    ("H100", 989.4),
    ("H800", 989.4),
    ("A100", 312.0),
    ("A800", 312.0),
    ("L40S", 362.0),
)
ASSUMED_PEAK = ("H100 SXM (assumed)", 989.4)
CODEC_CLIP_SECONDS = 5.0
CODEC_BATCH = 16


def machine_description() -> str:
    """CPU, cores, Python, torch and its thread count, and the GPU if any."""
    gpu = (
        f"{torch.cuda.device_count()} x {torch.cuda.get_device_name(0)}"
        if torch.cuda.is_available()
        else "no GPU"
    )
    return (
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"torch {torch.__version__} ({torch.get_num_threads()} threads), {gpu}"
    )


def peak_bf16_tflops(device_name: str | None) -> tuple[float, str]:
    """Dense bf16 peak of a GPU by name.

    Returns:
        ``(TFLOPS, source)``; unknown names give the H100 SXM figure with source ``"... (assumed)"``.
    """
    for key, tflops in PEAK_BF16_TFLOPS:
        if device_name and key.lower() in device_name.lower():
            return tflops, key
    return ASSUMED_PEAK[1], ASSUMED_PEAK[0]


def active_parameters(model: torch.nn.Module) -> tuple[int, int]:
    """Total parameters and parameters one token passes through (see the module docstring).

    Returns:
        ``(total, active)`` where active = total - embedding tables - the ``audio_mlp`` path
        (each token uses one of the two equally sized FFN paths).
    """
    total = sum(p.numel() for p in model.parameters())
    embeddings = sum(
        p.numel()
        for m in model.modules()
        if isinstance(m, torch.nn.Embedding)
        for p in m.parameters(recurse=False)
    )
    second_ffn = sum(
        p.numel() for name, m in model.named_modules() if name.endswith("audio_mlp") for p in m.parameters()
    )
    return total, total - embeddings - second_ffn


class OnTheFlyCodes(CodesCache):
    """A codes source that loads and encodes every audio file on every request (stores nothing).

    What training without the codes cache does; used as the baseline of the loading benchmark.
    """

    def get(self, path: str | os.PathLike[str]) -> torch.LongTensor:  # noqa: D102 - see CodesCache.get
        self.stats.misses += 1
        return self.encode_waveform(load_audio(path, self.sample_rate))


def _batches(items: Sequence[Any], batch_size: int) -> list[list[Any]]:
    return [list(items[i : i + batch_size]) for i in range(0, len(items), batch_size)]


def loading_rates(
    samples: Sequence[Sample],
    processor: Any,
    cache_dir: str | os.PathLike[str],
    batch_size: int = 2,
    epochs: int = 3,
) -> dict[str, Any]:
    """Samples/s of the collator with the codes cache vs with encoding on the fly.

    The cache is filled first (not timed: it happens once per dataset, before training). Both
    modes get one untimed warm-up batch; the cached mode runs ``epochs`` passes, the on-the-fly
    mode one.

    Returns:
        ``samples``, ``batch_size``, ``cached_samples_per_s``, ``on_the_fly_samples_per_s``, ``speedup``.
    """
    from workbench.training.collate import HiggsAudioCollator

    codec = processor.audio_tokenizer
    paths = sorted({m.audio_url for s in samples for m in s.messages if m.is_audio})
    cache = CodesCache(Path(cache_dir) / "cached", codec)
    cache.encode_missing(paths, progress=False)
    batches = _batches(samples, batch_size)

    def rate(codes: CodesCache, passes: int) -> float:
        collator = HiggsAudioCollator(processor, codes)
        collator(batches[0])  # warm-up: tokenizer and allocator caches
        started = time.perf_counter()
        for _ in range(passes):
            for batch in batches:
                collator(batch)
        return passes * len(samples) / (time.perf_counter() - started)

    cached = rate(cache, epochs)
    on_the_fly = rate(OnTheFlyCodes(Path(cache_dir) / "unused", codec), 1)
    result = {
        "samples": len(samples),
        "audio_files": len(paths),
        "batch_size": batch_size,
        "cached_samples_per_s": cached,
        "on_the_fly_samples_per_s": on_the_fly,
        "speedup": cached / on_the_fly,
    }
    log.info("data loading: %.1f samples/s cached, %.1f on the fly", cached, on_the_fly)
    return result


# --------------------------------------------------------------------------- the measured path


class StepTimer:
    """A Trainer callback that times optimizer steps ``warmup_steps + 1 ..`` and counts their tokens.

    Tokens are the Trainer's own ``state.num_input_tokens_seen`` (real, non-padding tokens). Built
    lazily on ``TrainerCallback`` so that importing this module does not import transformers.
    """

    def __new__(cls, warmup_steps: int, cuda: bool) -> Any:
        from transformers import TrainerCallback

        class _StepTimer(TrainerCallback):
            def __init__(self) -> None:
                self.warmup_steps, self.cuda = warmup_steps, cuda
                self.started = self.ended = None
                self.tokens_start = self.tokens_end = 0
                self.steps = 0

            def _mark(self, state: Any) -> tuple[float, int]:
                if self.cuda:
                    torch.cuda.synchronize()
                return time.perf_counter(), int(state.num_input_tokens_seen)

            def on_train_begin(self, args, state, control, **kwargs):  # noqa: D102
                if self.warmup_steps == 0:
                    self.started, self.tokens_start = self._mark(state)

            def on_step_end(self, args, state, control, **kwargs):  # noqa: D102
                if state.global_step == self.warmup_steps:
                    self.started, self.tokens_start = self._mark(state)
                elif state.global_step > self.warmup_steps:
                    self.ended, self.tokens_end = self._mark(state)
                    self.steps = state.global_step - self.warmup_steps

        return _StepTimer()


def peak_memory(cuda: bool) -> tuple[float, str]:
    if cuda:
        return torch.cuda.max_memory_allocated() / 2**30, "torch.cuda.max_memory_allocated"
    return resource.getrusage(
        resource.RUSAGE_SELF
    ).ru_maxrss / 2**20, "peak RSS of the process (since it started)"


def measure_fit(
    prepared: Any, params: Any, warmup_steps: int, active: int, peak_tflops: float
) -> dict[str, Any]:
    """Train ``params`` on ``prepared`` (its model, codes and samples) with :func:`fit`; time the steps.

    The LoRA layers are removed again afterwards (``prepared.model`` is the base model once more),
    so the same loaded model serves several runs. Out of memory is a result (``error``), not a failure.

    Returns:
        ``batch_size``, ``activation_checkpointing``, ``steps``, ``warmup_steps``, ``seconds``,
        ``steps_per_s``, ``seconds_per_step``, ``tokens_per_s``, ``tokens_per_step``, ``mfu``,
        ``mfu_4n``, ``peak_memory_gib``, ``trainable``, ``train_loss``; or ``error``.
    """
    from workbench.training.preparation import training_schedule
    from workbench.training.train import fit

    cuda = torch.cuda.is_available()
    timer = StepTimer(warmup_steps, cuda)
    model = prepared.model
    if not params.activation_checkpointing and getattr(model, "is_activation_checkpointing", False):
        model.activation_checkpointing_disable()  # the Trainer only ever turns it on
    run = dataclasses.replace(
        prepared, params=params, schedule=training_schedule(params, len(prepared.train_samples), 1)
    )
    result: dict[str, Any] = {
        "batch_size": params.batch_size,
        "activation_checkpointing": params.activation_checkpointing,
        "lora_r": params.lora_r,
        "dtype": params.mixed_precision if params.mixed_precision != "no" else "fp32",
        "device": "cuda" if cuda else "cpu",
    }
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    try:
        outcome = fit(run, callbacks=[timer])
    except (RuntimeError, torch.OutOfMemoryError) as exc:
        if "out of memory" not in str(exc):
            raise
        result["error"] = "out of memory"
    finally:
        lora = run.lora_model
        if lora is not None:
            result["trainable"] = sum(p.numel() for p in lora.parameters() if p.requires_grad)
            prepared.model = lora.unload()  # the base model, LoRA layers removed
        gc.collect()
        if cuda:
            torch.cuda.empty_cache()
    if "error" in result:
        return result
    if timer.ended is None or timer.started is None:
        raise RuntimeError(f"no step was timed: max_steps {params.max_steps} <= warm-up {warmup_steps}")
    seconds = timer.ended - timer.started
    tokens = timer.tokens_end - timer.tokens_start
    achieved = 6 * active * tokens / seconds / 1e12
    peak_gib, kind = peak_memory(cuda)
    result.update(
        steps=timer.steps, warmup_steps=warmup_steps, seconds=seconds, steps_per_s=timer.steps / seconds,
        seconds_per_step=seconds / timer.steps, tokens_per_s=tokens / seconds, tokens_per_step=tokens / timer.steps,
        achieved_tflops=achieved, mfu=achieved / peak_tflops, mfu_4n=achieved * 4 / 6 / peak_tflops,
        peak_memory_gib=peak_gib, memory_kind=kind, train_loss=outcome.train_loss if outcome else None,
    )  # fmt: skip
    return result


def codec_throughput(
    codec: torch.nn.Module, workdir: Path, clips: int, clip_seconds: float = CODEC_CLIP_SECONDS,
    batch_size: int = CODEC_BATCH,
) -> dict[str, Any]:  # fmt: skip
    """Clips/s and x real time of ``CodesCache.encode_missing``, one clip at a time vs batches of
    ``batch_size``, each into an empty cache, on the codec's device (one untimed clip first).

    The clips all last ``clip_seconds``: only clips of equal length share a codec call (padding
    would change the codes), so this is what batching gains where it applies. ``identical`` checks
    that both ways stored the same codes.

    Returns:
        ``clips``, ``clip_seconds``, ``device``, ``batch_size``, ``one_at_a_time`` and ``batched``
        (``seconds``, ``clips_per_s``, ``x_real_time``), ``speedup`` (batched over one at a time),
        ``faster``, ``identical``.
    """
    folder = workdir / "codec_clips"
    folder.mkdir(parents=True, exist_ok=True)
    lengths = np.full(clips, clip_seconds)
    paths = []
    for i, seconds in enumerate(lengths):
        path = folder / f"clip_{i:03d}.wav"
        write_voice(path, float(seconds), seed=10_000 + i)
        paths.append(str(path))
    audio_seconds = float(lengths.sum())
    CodesCache(workdir / "codec_warmup", codec).encode_missing(paths[:1], progress=False)
    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    timings, caches = {}, {}
    for name, size in (("one_at_a_time", 1), ("batched", batch_size)):
        cache = caches[name] = CodesCache(workdir / f"codec_{name}", codec)
        sync()
        started = time.perf_counter()
        cache.encode_missing(paths, progress=False, batch_size=size)
        sync()
        seconds = time.perf_counter() - started
        timings[name] = {
            "seconds": seconds,
            "clips_per_s": clips / seconds,
            "x_real_time": audio_seconds / seconds,
        }
    speedup = timings["one_at_a_time"]["seconds"] / timings["batched"]["seconds"]
    return {
        "clips": clips, "clip_seconds": clip_seconds, "audio_seconds": audio_seconds,
        "device": str(next(codec.parameters()).device), "batch_size": batch_size, **timings, "speedup": speedup,
        "faster": "batched" if speedup > 1 else "one at a time",
        "identical": all(torch.equal(caches["one_at_a_time"].get(p), caches["batched"].get(p)) for p in paths),
    }  # fmt: skip


def generation_speed(
    model: torch.nn.Module, processor: Any, codes_cache: CodesCache, sample: Sample, max_new_tokens: int
) -> dict[str, Any]:
    """Audio frames/s and real-time factor of ``model.generate`` on a voice-cloning prompt of ``sample``
    (sampling at temperature 1, one untimed 8-frame generation first).

    Returns:
        ``frames``, ``seconds``, ``frames_per_s``, ``real_time_factor`` (generation seconds per
        second of audio), ``max_new_tokens``.
    """
    from workbench.evaluation.synthesis import Sampling, generation_config, generation_inputs, make_prompt

    device = next(model.parameters()).device
    inputs = {
        k: v.to(device) for k, v in generation_inputs(make_prompt(sample), processor, codes_cache).items()
    }
    prompt_frames = inputs["audio_input_ids"].shape[1] if "audio_input_ids" in inputs else 0
    model.eval()
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    frames = seconds = 0.0
    for budget in (8, max_new_tokens):
        config = generation_config(model, Sampling(max_new_tokens=budget, temperature=1.0))
        torch.manual_seed(0)
        sync()
        started = time.perf_counter()
        with torch.no_grad():
            audio_ids = model.generate(**inputs, generation_config=config)
        sync()
        seconds = time.perf_counter() - started
        frames = int(audio_ids.shape[1] - prompt_frames)
    return {
        "frames": frames, "seconds": seconds, "frames_per_s": frames / seconds,
        "real_time_factor": seconds / (frames / FRAME_RATE) if frames else float("inf"),
        "max_new_tokens": max_new_tokens,
    }  # fmt: skip
