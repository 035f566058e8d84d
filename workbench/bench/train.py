"""``workbench bench train``: the training path users run, measured; ratios that hold on any machine.

Every training figure comes from :func:`workbench.training.train.fit`: the Trainer, the collator,
the length-grouped sampler, PEFT LoRA and accelerate, exactly as ``workbench train`` runs them,
with a callback that times the optimizer steps after a warm-up. One run prints:

(a) **data loading**, samples/s of the collator reading codes from the :class:`CodesCache` vs
    encoding every audio file on the fly (load, resample, run the audio tokenizer for every
    sample, as training without the cache would), on the demo dataset with the tiny model;
(b) **padding**, the fraction of padded token slots with length-grouped batches vs random batches
    (:func:`workbench.training.collate.padding_report`) over synthetic sequence lengths with a
    realistic spread of durations;
(c) **tiny-model training** through ``fit`` at the demo settings (batch 2, LoRA r 8, fp32).

With ``model="random-full"`` (or a model folder) it measures (d) **full-size training** through
``fit`` at the ``params/h200x8.yaml`` settings per device (bf16, LoRA r 64 / alpha 128 on attention
and both FFN paths; batch and gradient checkpointing varied: on a GPU per-device batch 4, 8 and 16,
each with and without checkpointing): tokens/s, peak memory and model FLOPs utilisation (MFU);
then **codec encoding** (clips/s and x real time, one clip at a time vs length-sorted batches, as
``CodesCache.encode_missing`` does them) and **generation** (audio frames/s and real-time factor).
``--json`` writes every figure as JSON too.

MFU. Model FLOPs per step = ``6 * N_active * tokens``, the usual estimate for forward (2N) plus
backward (4N) over the real (non-padding) tokens of the step, as the Trainer counts them
(``include_num_input_tokens_seen="non_padding"``). ``N_active`` is the number of parameters one
token passes through: all parameters minus the embedding tables (lookups, no matmuls) minus one of
the two FFN paths of each dual-FFN layer (a text token goes through ``mlp``, an audio token through
``audio_mlp``; both are the same size); the audio LM head is included. For the full-size model that
is about 2.8 B of 5.4 B. Assumptions: (1) 6N is an upper bound for LoRA: the weight gradients of
frozen matrices are not computed, so the backward pass costs ~2N rather than 4N; the 4N figure is
printed alongside. (2) Recomputation by gradient checkpointing (another ~2N) is *not* counted: MFU
counts model FLOPs, not hardware FLOPs. (3) Attention score FLOPs and LoRA's own FLOPs (r 64: ~3 %
of N) are left out. The peak is the card's dense bf16 tensor-core rate, looked up by device name;
unknown cards are assumed to be an H100 SXM.

Examples:
    >>> from workbench.bench.train import bench_train
    >>> print(bench_train("tiny", steps=5).format_text())  # doctest: +SKIP
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
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from workbench.audio import load_audio, write_wav
from workbench.data.contract import check_sample
from workbench.data.sample import Audio, Message, Sample
from workbench.training.codes import CodesCache

log = logging.getLogger(__name__)

TINY = "tiny"
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
TEXT_TOKENS_PER_SECOND = 3.5  # ~14 characters of speech per second, ~4 characters per Llama-3 token
TEMPLATE_TOKENS = 40  # system prompt, headers, markers
FRAME_RATE = 25
NUM_CODEBOOKS = 8
CODEC_CLIP_SECONDS = 5.0
CODEC_BATCH = 16


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
                checkpointing = "on" if r["gradient_checkpointing"] else "off"
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


def sample_durations(n: int, seed: int = 0, low: float = 1.0, high: float = 15.0) -> np.ndarray:
    """Clip durations like a read-speech TTS corpus: log-normal, median ~5 s, clipped to [low, high]."""
    rng = np.random.default_rng(seed)
    return np.clip(rng.lognormal(mean=np.log(5.0), sigma=0.6, size=n), low, high)


def synthetic_sequence_lengths(
    n: int, seed: int = 0, low: float = 1.0, high: float = 15.0
) -> tuple[list[int], np.ndarray]:
    """Token counts of ``n`` voice-cloning samples (reference clip + target clip), as collated.

    Each audio segment of ``T = 25 * seconds`` frames takes ``T + N + 1`` positions (stream bos,
    eos, delay pattern with ``N = 8`` codebooks); text takes ~3.5 tokens per second of speech plus
    ~40 tokens of template.

    Returns:
        ``(lengths, durations)``; durations has shape ``(n, 2)`` (reference, target).
    """
    durations = sample_durations(2 * n, seed, low, high).reshape(n, 2)
    frames = np.round(durations * FRAME_RATE) + NUM_CODEBOOKS + 1
    text = TEMPLATE_TOKENS + np.round(durations.sum(axis=1) * TEXT_TOKENS_PER_SECOND)
    return (text + frames.sum(axis=1)).astype(int).tolist(), durations


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


def _demo_samples(workdir: Path) -> list[Sample]:
    """The demo dataset converted to canonical trainable samples, less those with error findings
    (the demo plants defects; training would refuse them)."""
    from workbench.data.convert import convert
    from workbench.data.demo_data import demo_data
    from workbench.data.sample import load_samples
    from workbench.data.validate import validate

    info = demo_data(workdir / "demo", overwrite=True)
    out = workdir / "demo_train.jsonl"
    convert([str(workdir / "demo" / p) for p in info["inputs"]], out, overwrite=True)  # type: ignore[union-attr]
    refused = {f.sample_id for f in validate(out).errors}
    return [s for s in load_samples(out) if check_sample(s).trainable and s.id not in refused]


def _write_voice(path: Path, seconds: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * 24_000)) / 24_000
    f0 = rng.uniform(90, 250)
    signal = sum(np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 6)) / k for k in range(1, 6))
    envelope = np.clip(np.sin(np.pi * 4 * t) ** 2 * 1.2, 0, 1) ** 0.6
    noise = 0.01 * rng.standard_normal(len(t))
    write_wav(path, (0.3 * signal * envelope / 2.3 + noise).astype(np.float32))


def synthetic_samples(
    folder: Path, n: int, seed: int = 0, low: float = 1.0, high: float = 15.0
) -> list[Sample]:
    """``n`` voice-cloning samples over freshly written WAVs with :func:`sample_durations` lengths."""
    from workbench.data.demo_data import SENTENCES

    folder.mkdir(parents=True, exist_ok=True)
    words = " ".join(SENTENCES).split()
    durations = sample_durations(2 * n, seed, low, high).reshape(n, 2)

    def text_for(seconds: float, offset: int) -> str:
        count = max(2, int(seconds * 14 / 5.5))  # ~14 characters per second, ~5.5 per word
        return " ".join(words[(offset + i) % len(words)] for i in range(count))

    samples = []
    for i, (ref_s, target_s) in enumerate(durations):
        ref, target = folder / f"ref_{i:04d}.wav", folder / f"target_{i:04d}.wav"
        _write_voice(ref, ref_s, seed * 100_003 + 2 * i)
        _write_voice(target, target_s, seed * 100_003 + 2 * i + 1)
        messages = (
            Message("system", "Generate speech in the provided voice."),
            Message("user", text_for(ref_s, i)),
            Message("assistant", Audio(str(ref))),
            Message("user", text_for(target_s, 7 * i)),
            Message("assistant", Audio(str(target))),
        )
        samples.append(Sample(id=f"bench_{i:04d}", messages=messages, start_index=3))
    return samples


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


def _peak_memory(cuda: bool) -> tuple[float, str]:
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
        ``batch_size``, ``gradient_checkpointing``, ``steps``, ``warmup_steps``, ``seconds``,
        ``steps_per_s``, ``seconds_per_step``, ``tokens_per_s``, ``tokens_per_step``, ``mfu``,
        ``mfu_4n``, ``peak_memory_gib``, ``trainable``, ``train_loss``; or ``error``.
    """
    from workbench.training.train import fit, training_schedule

    cuda = torch.cuda.is_available()
    timer = StepTimer(warmup_steps, cuda)
    model = prepared.model
    if not params.use_gradient_checkpointing and getattr(model, "is_activation_checkpointing", False):
        model.activation_checkpointing_disable()  # the Trainer only ever turns it on
    run = dataclasses.replace(
        prepared, params=params, schedule=training_schedule(params, len(prepared.train_samples), 1)
    )
    result: dict[str, Any] = {
        "batch_size": params.batch_size,
        "gradient_checkpointing": params.use_gradient_checkpointing,
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
    peak_gib, kind = _peak_memory(cuda)
    result.update(
        steps=timer.steps, warmup_steps=warmup_steps, seconds=seconds, steps_per_s=timer.steps / seconds,
        seconds_per_step=seconds / timer.steps, tokens_per_s=tokens / seconds, tokens_per_step=tokens / timer.steps,
        achieved_tflops=achieved, mfu=achieved / peak_tflops, mfu_4n=achieved * 4 / 6 / peak_tflops,
        peak_memory_gib=peak_gib, memory_kind=kind, train_loss=outcome.train_loss if outcome else None,
    )  # fmt: skip
    return result


def _write_jsonl(samples: Sequence[Sample], path: Path) -> Path:
    from workbench.data.sample import write_samples

    write_samples(path, samples, overwrite=True)
    return path


def _prepare(
    model: str, train_data: Path, workdir: Path, production: bool = False, **overrides: Any
) -> tuple[Any, Any]:
    """``(TrainParams, Prepared)`` of ``workbench train`` for ``model`` on ``train_data``: with
    ``production``, ``params/h200x8.yaml`` under ``overrides``, else the defaults under them."""
    from workbench.training.params import TrainParams, load_train_params
    from workbench.training.train import prepare

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
    from workbench.models.model import load_model_and_processor, make_tiny_model

    samples = _demo_samples(workdir)[:demo_samples]
    tiny = make_tiny_model(workdir / "tiny-model", seed=seed, overwrite=True)
    _, processor = load_model_and_processor(tiny)
    loading = loading_rates(
        samples[: max(1, loading_samples)], processor, workdir / "codes", batch_size=DEMO["batch_size"]
    )
    loading["codec"] = "tiny"
    train_data = _write_jsonl(samples, workdir / "tiny_train.jsonl")
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
        _write_voice(path, float(seconds), seed=10_000 + i)
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

    The model is loaded once by :func:`workbench.training.train.prepare` (data check, codes cache)
    and trained once per batch size and checkpointing setting.

    Args:
        model: ``"random-full"`` or a model folder / cached hub id.
        workdir: Scratch folder (synthetic WAVs, codes cache, run folders).
        steps: Timed optimizer steps per run.
        warmup_steps: Untimed steps first (kernels, allocator).
        allow_cpu: Run without a GPU anyway (a 5.4 B model: minutes per step, ~15 GB of memory).
        max_seconds: Longest synthetic clip (durations are 1 s to this).
        batch_sizes: Per-device batches (default: 4, 8, 16 on a GPU; 4 on a CPU).
        checkpointing: Gradient checkpointing settings (default: on and off on a GPU; on on a CPU).
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
    train_data = _write_jsonl(samples, workdir / "full_train.jsonl")
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
                params, batch_size=batch, use_gradient_checkpointing=gc_on,
                output_dir=str(workdir / f"full_run_b{batch}_{'gc' if gc_on else 'nogc'}"),
            )  # fmt: skip
            runs.append(measure_fit(prepared, run_params, warmup_steps, active, peak_tflops))
            log.info("batch %d, checkpointing %s: %s", batch, gc_on, runs[-1])
    full: dict[str, Any] = {
        "model": model, "device_name": device_name, "dtype": params.mixed_precision, "lora_r": params.lora_r,
        "lora_alpha": params.lora_alpha, "trainable": next((r["trainable"] for r in runs if "trainable" in r), 0),
        "params_total": total, "params_active": active, "flops_per_token": 6 * active,
        "peak_tflops": peak_tflops, "peak_source": peak_source if cuda else "no GPU: an H100 SXM peak, for reference only",
        "steps": steps, "warmup_steps": warmup_steps, "memory_kind": _peak_memory(cuda)[1],
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
