"""``workbench generate``: speak text in a voice with the base model, an adapter or a merged model.

The prompt is built as training and evaluation build it (the canonical layout of
:func:`workbench.data.formats.base.tts_sample`: system prompt, the reference transcript and clip,
then the text), encoded by :func:`workbench.evaluation.synthesis.generation_inputs` and decoded by
:func:`workbench.evaluation.synthesis.decode_audio`, so what you hear here is what notebook 05 measures.

    workbench generate --adapter runs/demo/04_train/adapter --reference me.wav \\
        --reference-text "What I say in me.wav." --text "Hello there." -o hello.wav

Without ``--model``, the base model is the one the adapter names (its ``adapter_config.json``).
A seed makes a generation repeatable: the same model, prompt and seed give the same codes.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from workbench.data.sample import DEFAULT_SYSTEM_PROMPT
from workbench.evaluation.params import Sampling

log = logging.getLogger(__name__)

SAMPLE_RATE = 24_000


class GenerateError(ValueError):
    """A problem with what was asked for (missing files, a bad adapter): a usage error."""


@dataclass
class Spoken:
    """One generated clip."""

    text: str
    path: str | None  # the WAV file; None when the generation yielded no audio
    seconds: float  # audio duration
    gen_seconds: float  # wall time of the generation
    frames: int  # generated audio frames (25 per second)
    error: str | None = None

    @property
    def real_time_factor(self) -> float | None:
        """Generation time per second of audio (below 1: faster than real time)."""
        return self.gen_seconds / self.seconds if self.seconds else None


def adapter_base(adapter: str | os.PathLike) -> str:
    """The base model an adapter was trained on (``base_model_name_or_path`` of its config).

    Raises:
        GenerateError: the folder is not a PEFT adapter, or names no base model.
    """
    config = Path(adapter) / "adapter_config.json"
    if not config.is_file():
        raise GenerateError(
            f"{adapter}: not a LoRA adapter folder (no adapter_config.json). Hint: give a training run's "
            "adapter/ or checkpoint-N/ folder; a merged/ folder is a whole model: pass it as --model."
        )
    base = json.loads(config.read_text()).get("base_model_name_or_path")
    if not base:
        raise GenerateError(f"{config}: names no base model. Hint: pass --model BASE.")
    return str(base)


def load_for_generation(
    model: str | None, adapter: str | os.PathLike | None = None, device: str | None = None
) -> tuple[torch.nn.Module, Any]:
    """The model (with the adapter applied when given) and processor, on ``device``.

    ``device`` None picks the first GPU (weights in bf16) or the CPU (float32, or bf16 when the
    float32 weights would take over half the available memory).

    Raises:
        GenerateError: neither a model nor an adapter, or an adapter that does not fit the model.
        workbench.models.folder.ModelNotFoundError: the model is not available locally.
    """
    from workbench.models.families import load_model_and_processor

    if model is None:
        if adapter is None:
            raise GenerateError("give --model (a model folder), --adapter (a LoRA adapter folder), or both")
        model = adapter_base(adapter)
    elif adapter is not None:
        adapter_base(adapter)  # a clear error when it is not an adapter folder
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda"):
        dtype = torch.bfloat16
    else:  # float32 where it fits; a full-size model on a small machine in bf16
        from workbench.models.memory import cpu_weight_dtype

        dtype = cpu_weight_dtype(model)
    lm, processor = load_model_and_processor(model, dtype=dtype, device=device if device != "cpu" else None)
    if adapter is not None:
        from peft import PeftModel

        from workbench.models.peft_wrapping import peft_wrapping

        try:
            with peft_wrapping():
                lm = PeftModel.from_pretrained(lm, str(adapter))
        except (RuntimeError, ValueError, KeyError, OSError) as exc:
            raise GenerateError(
                f"cannot load adapter {adapter} onto {model}: {type(exc).__name__}: {exc}. "
                "Hint: was it trained on this base model? (its adapter_config.json names the base)"
            ) from exc
    return lm.eval(), processor


def _file_name(index: int, text: str) -> str:
    words = re.sub(r"[^A-Za-z0-9]+", "_", text)[:40].strip("_") or "clip"
    return f"{index:03d}_{words}.wav"


def speak(
    texts: list[str],
    output: str | os.PathLike,
    *,
    model: str | None = None,
    adapter: str | os.PathLike | None = None,
    reference_audio: str | os.PathLike | None = None,
    reference_text: str | None = None,
    system_prompt: str = DEFAULT_SYSTEM_PROMPT,
    seed: int = 0,
    temperature: float | None = Sampling.temperature,
    top_k: int | None = Sampling.top_k,
    top_p: float | None = Sampling.top_p,
    max_new_tokens: int = Sampling.max_new_tokens,
    ras_win_len: int | None = Sampling.ras_win_len,
    codes_cache_dir: str | os.PathLike | None = None,
    overwrite: bool = False,
    loaded: tuple[torch.nn.Module, Any] | None = None,
) -> list[Spoken]:
    """Generate one clip per text.

    Args:
        texts: What to say, one clip each.
        output: A ``.wav`` file for a single text, else a folder (``NNN_<words>.wav`` per text).
        model: The model folder (or cached hub id); None: the adapter's base model.
        adapter: A LoRA adapter or ``checkpoint-N`` folder applied on top of ``model``.
        reference_audio: A clip of the voice to clone; with ``reference_text``, its transcript.
        system_prompt: The system message (training used the same default).
        seed: Generation seed; the same seed, model and prompt give the same clip.
        temperature: Sampling temperature; 0 is greedy; None: the model family's serving default.
        top_k: Top-k sampling (None: off).
        top_p: Nucleus sampling (None: off).
        max_new_tokens: Audio frames to generate at most (25 per second).
        ras_win_len: Repetition-aware sampling window (None: the model's setting, 0: off).
        codes_cache_dir: Where the reference's audio codes are cached (default: the workbench cache).
        overwrite: Replace clips that already exist (otherwise they are an error, before generating).
        loaded: An already loaded ``(model, processor)`` (skips loading).

    Returns:
        One :class:`Spoken` per text; a text that yielded no audio has ``path`` None and ``error``.

    Raises:
        GenerateError: no text, a missing or unreadable reference, a reference without its
            transcript, bad sampling settings, or an adapter that does not fit the model.
    """
    from workbench.data.formats.base import tts_sample
    from workbench.evaluation.synthesis import (
        NoAudioError,
        decode_audio,
        generation_config,
        generation_inputs,
        make_prompt,
        prompt_rows,
    )
    from workbench.training.codes import CodesCache
    from workbench.training.preparation import default_codes_cache_dir

    texts = [t.strip() for t in texts]
    if not texts or not all(texts):
        raise GenerateError("give at least one text to speak, and no empty one (--text or --text-file)")
    references: list[tuple[str, str]] = []
    if reference_audio is not None:
        reference_audio = os.path.abspath(reference_audio)
        if not os.path.isfile(reference_audio):
            raise GenerateError(f"--reference: file not found: {reference_audio}")
        if not (reference_text or "").strip():
            raise GenerateError(
                "--reference-text is missing: the model clones a voice from a clip and its transcript. "
                "Hint: type what is said in the reference clip."
            )
        references.append((reference_audio, reference_text.strip()))  # type: ignore[union-attr]
    elif reference_text:
        raise GenerateError("--reference-text without --reference: give the clip it transcribes")
    sampling = Sampling(max_new_tokens, temperature, top_k, top_p, ras_win_len)
    problems = sampling.check()
    if problems:
        raise GenerateError("; ".join(problems))
    output = Path(output)
    single = len(texts) == 1 and output.suffix.lower() == ".wav"
    if output.suffix.lower() == ".wav" and not single:
        raise GenerateError(f"-o {output}: {len(texts)} texts make {len(texts)} clips; give a folder instead")
    paths = [output] if single else [output / _file_name(i, t) for i, t in enumerate(texts)]
    existing = [str(p) for p in paths if p.exists()]
    if existing and not overwrite:
        raise GenerateError(
            f"output already exists: {', '.join(existing[:3])}. Hint: pass --overwrite to replace it."
        )

    lm, processor = loaded or load_for_generation(model, adapter)
    codes_cache = CodesCache(
        Path(codes_cache_dir) if codes_cache_dir else default_codes_cache_dir(), processor.audio_tokenizer
    )
    if references:
        from workbench.data.probe import probe

        info = probe(references[0][0])
        if info.error:
            raise GenerateError(f"--reference: cannot read {references[0][0]}: {info.error}")
        codes_cache.encode_missing([references[0][0]], progress=False)
    config = generation_config(lm, sampling)
    device = next(lm.parameters()).device

    if not single:
        output.mkdir(parents=True, exist_ok=True)
    results = []
    for index, text in enumerate(texts):
        sample = tts_sample(
            sample_id=f"text{index:03d}", target_text=text, target_audio=None, references=references,
            speaker=None, misc={}, system_prompt=system_prompt,
        )  # fmt: skip
        inputs = generation_inputs(make_prompt(sample), processor, codes_cache)
        torch.manual_seed(seed)
        started = time.perf_counter()
        with torch.no_grad():
            audio_ids = lm.generate(**{k: v.to(device) for k, v in inputs.items()}, generation_config=config)
        gen_seconds = time.perf_counter() - started
        prompt_frames = prompt_rows(inputs)
        frames = int(audio_ids.shape[1] - prompt_frames)
        try:
            audio = decode_audio(processor, audio_ids, inputs)
        except NoAudioError as exc:
            log.warning("no audio for %r: %s", text, exc)
            results.append(Spoken(text, None, 0.0, gen_seconds, frames, str(exc)))
            continue
        from workbench.audio import write_wav

        path = paths[index]
        write_wav(path, audio.clip(-1, 1), SAMPLE_RATE)
        results.append(Spoken(text, str(path), len(audio) / SAMPLE_RATE, gen_seconds, frames))
    codes_cache.flush()
    return results
