"""Train/inference parity, for every model family, through the code users run.

A LoRA (with the audio head trained fully) memorises one sample through ``prepare`` and ``fit``.
Greedy generation with plain inference code — ``workbench generate``'s loader (base model plus
adapter), the prompt of :func:`workbench.evaluation.synthesis.generation_inputs`, the model's own
``generate`` — from the same reference and text must then give back exactly the target's codes, as
the codes cache holds them, and stop where they end. The base model does not. A sequence built for
training that differed from the prompt inference builds (an extra token, another delay, a label off
by one row) would make the memorised codes unreachable.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import soundfile as sf
import torch
from conftest import voiced

from workbench.data.formats.base import tts_sample
from workbench.data.sample import DEFAULT_SYSTEM_PROMPT, write_samples
from workbench.demo import make_tiny_model
from workbench.evaluation.generate import load_for_generation
from workbench.evaluation.synthesis import (
    Sampling,
    generation_config,
    generation_inputs,
    make_prompt,
    prompt_rows,
)
from workbench.models.families import family_for, family_named
from workbench.models.family import NoAudioError
from workbench.training.params import TrainParams
from workbench.training.preparation import prepare
from workbench.training.train import fit

FAMILIES = ("higgs-audio-v2", "higgs-tts-3")


def _generate(lm, processor, codes_cache, sample, max_new_tokens: int) -> tuple[torch.Tensor, int]:
    """Greedy codes ``(N, T)`` of the sample's prompt and the number of rows generated."""
    family = family_for(processor)
    prompt = make_prompt(sample)
    inputs = generation_inputs(prompt, processor, codes_cache)
    config = generation_config(lm, Sampling(max_new_tokens=max_new_tokens, temperature=0.0, ras_win_len=0))
    torch.manual_seed(0)
    with torch.no_grad():
        audio_ids = lm.generate(**inputs, generation_config=config)
    reference_rows = prompt_rows(inputs)
    codes = family.generated_codes(processor, audio_ids, reference_rows)
    return codes, int(audio_ids.shape[1] - reference_rows)


@pytest.mark.parametrize("family_name", FAMILIES)
def test_memorised_sample_regenerates_exactly_with_plain_inference(family_name: str, tmp_path: Path) -> None:
    family = family_named(family_name)
    model_dir = make_tiny_model(tmp_path / "model", family=family_name)
    sf.write(tmp_path / "ref.wav", voiced(1.0, f0=120.0), 24_000)
    sf.write(tmp_path / "target.wav", voiced(1.2, f0=170.0), 24_000)
    sample = tts_sample(
        sample_id="one", target_text="The quick brown fox jumps over the lazy dog.",
        target_audio=str(tmp_path / "target.wav"), references=[(str(tmp_path / "ref.wav"), "Hello world!")],
        speaker="spk", misc={}, system_prompt=DEFAULT_SYSTEM_PROMPT,
    )  # fmt: skip
    write_samples(tmp_path / "train.jsonl", [sample])
    params = TrainParams(
        model=str(model_dir), train_data=str(tmp_path / "train.jsonl"), output_dir=str(tmp_path / "run"),
        max_steps=300, batch_size=1, learning_rate=1e-2, warmup_ratio=0.0, lora_r=16, lora_alpha=32,
        lora_dropout=0.0, modules_to_save=list(family.head_modules), save_steps=1000, eval_steps=1000,
        logging_steps=50, codes_cache_dir=str(tmp_path / "codes"), resume_from_checkpoint=None,
    )  # fmt: skip
    prepared = prepare(params)
    result = fit(prepared)
    assert result is not None and result.train_loss is not None
    target = prepared.codes_cache.get(str(tmp_path / "target.wav"))  # (N, T): what training saw
    budget = target.shape[1] + 40

    tuned, processor = load_for_generation(None, tmp_path / "run" / "adapter", device="cpu")
    codes, rows = _generate(tuned, processor, prepared.codes_cache, sample, budget)
    assert codes.shape == target.shape, f"generated {tuple(codes.shape)}, target {tuple(target.shape)}"
    assert torch.equal(codes, target)
    assert rows < budget  # it stopped by itself, where the target ends

    base, processor = load_for_generation(str(model_dir), device="cpu")
    try:
        base_codes, _ = _generate(base, processor, prepared.codes_cache, sample, budget)
    except NoAudioError:  # the base model may produce no audio at all: certainly not the target
        return
    assert not (base_codes.shape == target.shape and torch.equal(base_codes, target))
