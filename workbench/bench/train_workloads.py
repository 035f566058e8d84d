"""The workloads of ``workbench bench train``: the samples and sequence lengths it trains and measures on.

The demo dataset converted and validated as a user would (:func:`trainable_demo_samples`); voice-cloning
samples over freshly written WAVs with the durations of a read-speech corpus
(:func:`synthetic_samples`: log-normal, median ~5 s); and the token counts such samples take once
collated (:func:`synthetic_sequence_lengths`), for the padding figures without any audio.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from workbench.audio import write_wav
from workbench.data.contract import check_sample
from workbench.data.sample import Audio, Message, Sample

TEXT_TOKENS_PER_SECOND = 3.5  # ~14 characters of speech per second, ~4 characters per Llama-3 token
TEMPLATE_TOKENS = 40  # system prompt, headers, markers
FRAME_RATE = 25
NUM_CODEBOOKS = 8


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


def trainable_demo_samples(workdir: Path) -> list[Sample]:
    """The demo dataset converted to canonical trainable samples, less those with error findings
    (the demo plants defects; training would refuse them)."""
    from workbench.data.convert import convert
    from workbench.data.sample import load_samples
    from workbench.data.validate import validate
    from workbench.demo import demo_data

    info = demo_data(workdir / "demo", overwrite=True)
    out = workdir / "demo_train.jsonl"
    convert([str(workdir / "demo" / p) for p in info["inputs"]], out, overwrite=True)  # type: ignore[union-attr]
    refused = {f.sample_id for f in validate(out).errors}
    return [s for s in load_samples(out) if check_sample(s).trainable and s.id not in refused]


def write_voice(path: Path, seconds: float, seed: int) -> None:
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
    from workbench.demo.dataset import SENTENCES

    folder.mkdir(parents=True, exist_ok=True)
    words = " ".join(SENTENCES).split()
    durations = sample_durations(2 * n, seed, low, high).reshape(n, 2)

    def text_for(seconds: float, offset: int) -> str:
        count = max(2, int(seconds * 14 / 5.5))  # ~14 characters per second, ~5.5 per word
        return " ".join(words[(offset + i) % len(words)] for i in range(count))

    samples = []
    for i, (ref_s, target_s) in enumerate(durations):
        ref, target = folder / f"ref_{i:04d}.wav", folder / f"target_{i:04d}.wav"
        write_voice(ref, ref_s, seed * 100_003 + 2 * i)
        write_voice(target, target_s, seed * 100_003 + 2 * i + 1)
        messages = (
            Message("system", "Generate speech in the provided voice."),
            Message("user", text_for(ref_s, i)),
            Message("assistant", Audio(str(ref))),
            Message("user", text_for(target_s, 7 * i)),
            Message("assistant", Audio(str(target))),
        )
        samples.append(Sample(id=f"bench_{i:04d}", messages=messages, start_index=3))
    return samples


def write_jsonl(samples: Sequence[Sample], path: Path) -> Path:
    from workbench.data.sample import write_samples

    write_samples(path, samples, overwrite=True)
    return path
