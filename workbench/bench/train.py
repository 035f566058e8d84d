"""``workbench bench train``: training-path benchmarks whose ratios hold on any machine.

One run prints:

(a) **data loading**, samples/s of the collator reading codes from the :class:`CodesCache` vs
    encoding every audio file on the fly (load, resample to 24 kHz mono where needed, run the audio
    tokenizer, for every sample, as training without the cache would), on the demo dataset with the tiny model, in one
    process;
(b) **padding**, the fraction of padded token slots with length-grouped batches vs random batches
    (:func:`workbench.training.collate.padding_report`) over the sequence lengths of a synthetic dataset
    with a realistic spread of durations;
(c) **tiny-model training**, optimizer steps/s of LoRA training of the tiny model at the demo
    settings (batch 2, LoRA r 8, fp32), single process, through the real collator.

With ``model="random-full"`` (or a model folder) on a GPU it also measures (d) **full-size
training** at the ``params/h200x8.yaml`` per-device settings (batch 4, bf16, gradient
checkpointing, LoRA r 64 / alpha 128 on attention and both FFN paths): tokens/s, peak memory and
model FLOPs utilisation (MFU).

MFU. Model FLOPs per step = ``6 * N_active * tokens``, the usual estimate for forward (2N) plus
backward (4N) over the real (non-padding) tokens of the step. ``N_active`` is the number of
parameters one token passes through: all parameters minus the embedding tables (lookups, no
matmuls) minus one of the two FFN paths of each dual-FFN layer (a text token goes through
``mlp``, an audio token through ``audio_mlp``; both are the same size); the audio LM head is
included (it runs on every position). For the full-size model that is about 2.8 B of 5.4 B.
Assumptions: (1) 6N is an upper bound for LoRA: the weight gradients of frozen matrices are not
computed, so the backward pass costs ~2N (activation gradients) rather than 4N; the 4N figure is
printed alongside. (2) Recomputation by gradient checkpointing (another ~2N) is *not* counted:
MFU counts model FLOPs, not hardware FLOPs. (3) Attention score FLOPs (``~12 * layers * hidden *
seq`` per token, a few percent at these lengths) and LoRA's own FLOPs (r 64: ~3 % of N) are left
out. The peak is the card's dense bf16 tensor-core rate (H100 SXM / H200: 989 TFLOPS), looked up
by device name; unknown cards are assumed to be an H100 SXM.

Examples:
    >>> from workbench.bench.train import bench_train
    >>> print(bench_train("tiny", steps=5).format_text())  # doctest: +SKIP
"""

from __future__ import annotations

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

from workbench.data.audio import load_audio, write_wav
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
# params/h200x8.yaml, per device
H200X8 = {"batch_size": 4, "lora_r": 64, "lora_alpha": 128, "lora_dropout": 0.05, "mixed_precision": "bf16"}
# params/demo.yaml
DEMO = {
    "batch_size": 2,
    "lora_r": 8,
    "lora_alpha": 16,
    "lora_dropout": 0.0,
    "modules_to_save": ["audio_lm_head"],
}
CPU_PARAMETER_LIMIT = 1_000_000_000  # above this, training on a CPU needs allow_cpu
TEXT_TOKENS_PER_SECOND = 3.5  # ~14 characters of speech per second, ~4 characters per Llama-3 token
TEMPLATE_TOKENS = 40  # system prompt, headers, markers
FRAME_RATE = 25
NUM_CODEBOOKS = 8


class BenchRefusedError(ValueError):
    """The benchmark would not finish in reasonable time or memory on this machine."""


@dataclass
class BenchTrainResult:
    """What :func:`bench_train` measured; :meth:`format_text` prints it.

    Attributes:
        machine: CPU, cores, Python, torch, threads and GPU.
        loading: (a) ``samples``, ``cached_samples_per_s``, ``on_the_fly_samples_per_s``, ``speedup``.
        padding: (b) ``samples``, ``batch_size``, ``grouped``, ``random`` (fractions), ``durations``.
        tiny: (c) ``steps``, ``steps_per_s``, ``tokens_per_s``, settings.
        full: (d) throughput of the full-size model, or None when not run.
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
                f"(c) tiny model LoRA training: demo settings (batch {c['batch_size']}, LoRA r {c['lora_r']}, {c['dtype']}), "
                f"{c['device']}, single process",
                f"    {c['steps_per_s']:.2f} steps/s, {c['tokens_per_s']:,.0f} tokens/s "
                f"({c['steps']} steps after {c['warmup_steps']} warm-up, {c['seconds_per_step'] * 1000:.0f} ms/step)",
            ]
        f = self.full
        if f:
            lines += [
                f"(d) {f['model']} ({_count(f['params_total'])} parameters, {_count(f['params_active'])} active per token) "
                f"on {f['device_name']}",
                f"    settings: per-device batch {f['batch_size']}, {f['dtype']}, gradient checkpointing "
                f"{'on' if f['gradient_checkpointing'] else 'off'}, LoRA r {f['lora_r']} / alpha {f['lora_alpha']} "
                f"({_count(f['trainable'])} trainable)",
                f"    {f['tokens_per_s']:,.0f} tokens/s, {f['samples_per_s']:.2f} samples/s, {f['steps_per_s']:.3f} steps/s "
                f"({f['steps']} steps after {f['warmup_steps']} warm-up; {f['tokens_per_step']:,.0f} real tokens/step, "
                f"{f['padding']:.1%} padding)",
                f"    peak memory {f['peak_memory_gib']:.1f} GiB ({f['memory_kind']})",
                f"    model FLOPs 6 x N_active x tokens = {f['achieved_tflops']:.3g} TFLOPS; "
                f"MFU {_percent(f['mfu'])} of {f['peak_tflops']:.0f} TFLOPS dense bf16 ({f['peak_source']})",
                f"    (LoRA backward without frozen weight gradients, 4 x N_active: {_percent(f['mfu_4n'])})",
            ]
            if f.get("loading"):
                fl = f["loading"]
                lines.append(
                    f"    data loading with this codec on {f['device']}: cache {fl['cached_samples_per_s']:,.1f} vs on the fly "
                    f"{fl['on_the_fly_samples_per_s']:,.1f} samples/s ({fl['speedup']:,.1f}x)"
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
    """The demo dataset converted to canonical trainable samples."""
    from workbench.data.convert import convert
    from workbench.data.demo_data import demo_data
    from workbench.data.sample import load_samples

    info = demo_data(workdir / "demo", overwrite=True)
    out = workdir / "demo_train.jsonl"
    convert([str(workdir / "demo" / p) for p in info["inputs"]], out, overwrite=True)  # type: ignore[union-attr]
    return [s for s in load_samples(out) if check_sample(s).trainable]


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


def train_steps(
    model: torch.nn.Module,
    batches: Sequence[dict[str, torch.Tensor]],
    steps: int,
    warmup_steps: int,
    device: torch.device,
    autocast_dtype: torch.dtype | None = None,
) -> dict[str, float]:
    """Time ``warmup_steps + steps`` AdamW steps (clip 1.0) over ``batches`` (cycled).

    The model must already carry LoRA (only trainable parameters are optimised).

    Returns:
        ``steps``, ``warmup_steps``, ``seconds``, ``steps_per_s``, ``seconds_per_step``,
        ``tokens_per_s`` (real tokens), ``tokens_per_step``, ``padding`` (padded share of slots).
    """
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4)
    model.train()
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    tokens = slots = 0
    started = 0.0
    losses = []
    for step in range(warmup_steps + steps):
        if step == warmup_steps:
            sync()
            started = time.perf_counter()
        cpu_batch = batches[step % len(batches)]
        if step >= warmup_steps:  # counted on the CPU copy: no device sync inside the timed loop
            tokens += int(cpu_batch["attention_mask"].sum())
            slots += cpu_batch["attention_mask"].numel()
        batch = {k: v.to(device, non_blocking=True) for k, v in cpu_batch.items()}
        with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.detach())
    sync()
    seconds = time.perf_counter() - started
    values = torch.stack(losses).float().cpu()
    if not torch.isfinite(values).all():
        raise RuntimeError(f"non-finite training loss in the benchmark: {values.tolist()}")
    model.eval()
    return {
        "steps": steps,
        "warmup_steps": warmup_steps,
        "seconds": seconds,
        "steps_per_s": steps / seconds,
        "seconds_per_step": seconds / steps,
        "tokens_per_s": tokens / seconds,
        "tokens_per_step": tokens / steps,
        "padding": 1 - tokens / slots if slots else 0.0,
    }


def _lora(model: torch.nn.Module, settings: dict[str, Any]) -> torch.nn.Module:
    from workbench.training.params import TrainParams
    from workbench.training.train import apply_lora

    params = TrainParams(
        lora_r=settings["lora_r"],
        lora_alpha=settings["lora_alpha"],
        lora_dropout=settings["lora_dropout"],
        modules_to_save=settings.get("modules_to_save"),
    )
    return apply_lora(model, params)


def _grouped_batches(samples: list[Sample], lengths: list[int], batch_size: int, collator: Any) -> list[dict]:
    """Collated batches in length-grouped order (as the Trainer's sampler gives them)."""
    from workbench.training.collate import length_grouped_indices

    order = length_grouped_indices(lengths, batch_size, seed=0)
    return [collator([samples[i] for i in chunk]) for chunk in _batches(order, batch_size)]


# --------------------------------------------------------------------------- phases


def bench_tiny(
    workdir: Path,
    steps: int = 20,
    demo_samples: int | None = None,
    loading_samples: int = 8,
    seed: int = 0,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(a) loading rates and (c) training steps/s with the tiny model on the demo dataset (CPU).

    Args:
        workdir: Scratch folder (demo data, tiny model, codes cache).
        steps: Timed training steps (after one warm-up step).
        demo_samples: Use only the first N demo samples (None: all 26).
        loading_samples: Samples timed in (a), both modes on the same ones (encoding on the fly
            costs ~1 s per sample on a small CPU even with the tiny codec).
        seed: Seeds the tiny model and the LoRA initialisation.

    Returns:
        ``(loading, tiny)`` dicts of :class:`BenchTrainResult`.
    """
    from workbench.models.model import load_model_and_processor, make_tiny_model
    from workbench.training.collate import HiggsAudioCollator, sequence_lengths

    samples = _demo_samples(workdir)[:demo_samples]
    model, processor = load_model_and_processor(
        make_tiny_model(workdir / "tiny-model", seed=seed, overwrite=True)
    )
    loading = loading_rates(
        samples[: max(1, loading_samples)], processor, workdir / "codes", batch_size=DEMO["batch_size"]
    )
    loading["codec"] = "tiny"

    cache = CodesCache(workdir / "codes" / "cached", processor.audio_tokenizer)
    collator = HiggsAudioCollator(processor, cache)
    lengths = sequence_lengths(samples, processor, cache)
    batches = _grouped_batches(samples, lengths, DEMO["batch_size"], collator)
    torch.manual_seed(seed)
    model = _lora(model, DEMO)
    timing = train_steps(model, batches, steps=steps, warmup_steps=1, device=torch.device("cpu"))
    tiny = {
        **timing,
        "batch_size": DEMO["batch_size"],
        "lora_r": DEMO["lora_r"],
        "dtype": "fp32",
        "device": "cpu",
    }
    log.info("tiny model: %.2f steps/s", tiny["steps_per_s"])
    return loading, tiny


def bench_padding(n: int = 2000, batch_size: int = H200X8["batch_size"], seed: int = 0) -> dict[str, Any]:
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


def _parameter_count_on_meta(model: str) -> int | None:
    """Parameter count of a model without loading weights (None when it cannot be determined)."""
    from workbench.models.folder import resolve_model_path
    from workbench.models.model import RANDOM_FULL, make_random_full_model

    try:
        if model == RANDOM_FULL:
            meta_model, _ = make_random_full_model(device="meta")
        else:
            from transformers import AutoConfig, HiggsAudioV2ForConditionalGeneration

            config = AutoConfig.from_pretrained(resolve_model_path(model), local_files_only=True)
            with torch.device("meta"):
                meta_model = HiggsAudioV2ForConditionalGeneration(config)
    except Exception as exc:  # an unknown layout: decided by loading it
        log.debug("could not count the parameters of %s on meta: %s", model, exc)
        return None
    return sum(p.numel() for p in meta_model.parameters())


def check_full_runnable(model: str, allow_cpu: bool = False) -> None:
    """Refuse the full-size benchmark where it cannot run in reasonable time or memory.

    Raises:
        BenchRefusedError: No GPU and the model has over 1 B parameters (or an unknown count)
            while ``allow_cpu`` is false; or a GPU without bf16.
    """
    if not torch.cuda.is_available():
        if allow_cpu:
            return
        count = _parameter_count_on_meta(model)
        if count is not None and count <= CPU_PARAMETER_LIMIT:
            return
        size = f"{count / 1e9:.1f} B parameters" if count else "a model of unknown size"
        raise BenchRefusedError(
            f"no GPU: training {model!r} ({size}) on a CPU takes hours and more memory than most machines "
            "have, so the full-size benchmark is refused. Run it on a GPU machine, or pass --allow-cpu to run "
            "it here anyway (the data-loading, padding and tiny-model figures need no GPU: --model tiny)."
        )
    if not torch.cuda.is_bf16_supported():
        raise BenchRefusedError(
            f"{torch.cuda.get_device_name(0)} has no bf16; the h200x8 settings train in bf16"
        )


def bench_full(
    model: str,
    workdir: Path,
    steps: int = 20,
    warmup_steps: int = 2,
    allow_cpu: bool = False,
    max_seconds: float = 15.0,
    loading_samples: int = 8,
    seed: int = 0,
) -> dict[str, Any]:
    """(d) tokens/s, peak memory and MFU of ``model`` at the h200x8 per-device settings.

    Args:
        model: ``"random-full"`` or a model folder / cached hub id.
        workdir: Scratch folder (synthetic WAVs, codes cache).
        steps: Timed optimizer steps (each a per-device batch of 4).
        warmup_steps: Untimed steps first (CUDA kernels, allocator).
        allow_cpu: Run without a GPU anyway (hours and > 11 GB of memory for the full model).
        max_seconds: Longest synthetic clip (durations are 1 s to this).
        loading_samples: Samples for the cache vs on-the-fly loading comparison with this
            model's codec (0 skips it).
        seed: Seeds the synthetic data and the random weights.

    Raises:
        BenchRefusedError: No GPU (and not ``allow_cpu``) for a model over 1 B parameters, or a
            GPU without bf16.
    """
    from workbench.models.model import load_model_and_processor
    from workbench.training.collate import HiggsAudioCollator, sequence_lengths

    check_full_runnable(model, allow_cpu)
    cuda = torch.cuda.is_available()
    device = torch.device("cuda") if cuda else torch.device("cpu")
    device_name = torch.cuda.get_device_name(0) if cuda else f"CPU ({os.cpu_count()} cores)"
    settings = dict(H200X8)

    started = time.perf_counter()
    lm, processor = load_model_and_processor(model, dtype=torch.bfloat16, device=device)
    total, active = active_parameters(lm)
    build_seconds = time.perf_counter() - started

    n = settings["batch_size"] * max(1, min(steps + warmup_steps, 64))
    samples = synthetic_samples(workdir / "full_wavs", n, seed=seed, high=max_seconds)
    loading = None
    if loading_samples:
        loading = loading_rates(
            samples[:loading_samples],
            processor,
            workdir / "full_codes",
            batch_size=settings["batch_size"],
            epochs=3,
        )
    cache = CodesCache(workdir / "full_codes" / "cached", processor.audio_tokenizer)
    paths = sorted({m.audio_url for s in samples for m in s.messages if m.is_audio})
    encode_started = time.perf_counter()
    cache.encode_missing(paths, progress=False)
    encode_seconds = time.perf_counter() - encode_started
    processor.audio_tokenizer.to("cpu")  # as train.prepare does: the codec is not needed to train
    collator = HiggsAudioCollator(processor, cache)
    lengths = sequence_lengths(samples, processor, cache)
    batches = _grouped_batches(samples, lengths, settings["batch_size"], collator)

    lm.enable_input_require_grads()  # as train.fit does with gradient checkpointing
    if hasattr(lm, "activation_checkpointing_enable"):  # the newer name of the same switch
        lm.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    else:
        lm.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    lm = _lora(lm, settings)
    trainable = sum(p.numel() for p in lm.parameters() if p.requires_grad)
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    timing = train_steps(lm, batches, steps, warmup_steps, device, autocast_dtype=torch.bfloat16)
    if cuda:
        peak_gib, memory_kind = torch.cuda.max_memory_allocated() / 2**30, "torch.cuda.max_memory_allocated"
        reserved_gib = torch.cuda.max_memory_reserved() / 2**30
    else:
        peak_gib, memory_kind = (
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
            "peak RSS of the process",
        )
        reserved_gib = peak_gib
    peak_tflops, peak_source = peak_bf16_tflops(device_name if cuda else None)
    flops_per_token = 6 * active
    achieved = flops_per_token * timing["tokens_per_s"] / 1e12
    full = {
        **timing,
        "model": model,
        "device": device.type,
        "device_name": device_name,
        "dtype": "bf16",
        "gradient_checkpointing": True,
        **settings,
        "trainable": trainable,
        "params_total": total,
        "params_active": active,
        "flops_per_token": flops_per_token,
        "samples_per_s": timing["steps_per_s"] * settings["batch_size"],
        "peak_memory_gib": peak_gib,
        "peak_reserved_gib": reserved_gib,
        "memory_kind": memory_kind,
        "achieved_tflops": achieved,
        "peak_tflops": peak_tflops,
        "peak_source": peak_source if cuda else "no GPU: an H100 SXM peak, for reference only",
        "mfu": achieved / peak_tflops,
        "mfu_4n": achieved * 4 / 6 / peak_tflops,
        "build_seconds": build_seconds,
        "encode_seconds": encode_seconds,
        "audio_files": len(paths),
        "loading": loading,
    }
    log.info("%s: %.0f tokens/s, MFU %.1f%%", model, full["tokens_per_s"], 100 * full["mfu"])
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
    seed: int = 0,
) -> BenchTrainResult:
    """Run the training benchmarks (see the module docstring).

    Args:
        model: ``"tiny"`` for (a)-(c) only; ``"random-full"`` or a model folder / cached hub id
            adds (d), the full-size throughput at the h200x8 per-device settings.
        steps: Timed optimizer steps for (c) and (d).
        allow_cpu: Run (d) without a GPU anyway.
        workdir: Keep the scratch files here (default: a temporary folder, removed afterwards).
        demo_samples: Use only the first N demo samples in (a) and (c) (None: all 26).
        loading_samples: Samples timed in (a) (both modes on the same samples).
        padding_samples: Synthetic samples for (b).
        full_warmup_steps: Untimed steps before (d) is timed.
        full_max_seconds: Longest synthetic clip in (d).
        seed: Seeds data, weights and orders.

    Returns:
        A :class:`BenchTrainResult`.

    Raises:
        BenchRefusedError: (d) asked for on a machine that cannot run it (checked before (a)-(c)).
        ValueError: ``steps`` < 1.
    """
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    if model != TINY:
        check_full_runnable(model, allow_cpu)  # before minutes of (a)-(c)
    from workbench.bench.data import bench_workdir

    with bench_workdir(workdir, "workbench-bench-train-") as work:
        result = BenchTrainResult(machine=machine_description())
        result.loading, result.tiny = bench_tiny(
            work, steps=steps, demo_samples=demo_samples, loading_samples=loading_samples, seed=seed
        )
        result.padding = bench_padding(padding_samples, seed=seed)
        if model != TINY:
            result.full = bench_full(
                model,
                work,
                steps=steps,
                warmup_steps=full_warmup_steps,
                allow_cpu=allow_cpu,
                max_seconds=full_max_seconds,
                seed=seed,
            )
        return result
