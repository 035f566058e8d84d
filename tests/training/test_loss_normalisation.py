"""Tests for workbench.training.loss and the Trainer's count of supervised audio codes.

Every supervised audio code weighs the same however a step is cut into micro-batches and ranks:
one real Trainer step (tiny model, LoRA with dropout 0, samples whose target clips have 3, 5, 9 and
17 supervised frames) gives the same LoRA gradients as 1 x 4, 2 accumulated x 2 and 2 ranks x 2
(real gloo processes). The stock Trainer's per-micro-batch mean does not, so the tests can fail.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from workbench.data.sample import Audio, Message, Sample
from workbench.demo import make_tiny_model
from workbench.models.model import SAMPLE_RATE, load_model_and_processor
from workbench.training.codes import CodesCache
from workbench.training.collate import HiggsAudioCollator
from workbench.training.loss import supervised_entries, supervised_per_codebook
from workbench.training.params import TrainParams
from workbench.training.trainer import apply_lora, trainer_class, training_arguments

TARGET_SECONDS = (0.08, 0.16, 0.32, 0.64)  # 2, 4, 8, 16 codec frames: 3, 5, 9, 17 supervised per codebook
MATCH = 1e-4  # relative gradient error of the same sum in another float summation order
MISMATCH = 1e-2  # the per-micro-batch mean is off by far more than that


# --- fixtures --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list[Sample]]:
    """The tiny model, a filled codes cache and 4 cloning samples with targets of unequal length."""
    root = tmp_path_factory.mktemp("loss")
    tiny_dir = make_tiny_model(root / "model", seed=0)

    def wav(name: str, seconds: float, freq: float) -> str:
        t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
        noise = np.random.default_rng(int(freq)).normal(0.0, 0.01, t.shape)
        sf.write(
            str(root / name), (0.3 * np.sin(2 * np.pi * freq * t) + noise).astype(np.float32), SAMPLE_RATE
        )
        return str(root / name)

    ref = wav("ref.wav", 0.2, 220)
    samples = []
    for i, seconds in enumerate(TARGET_SECONDS):
        messages = (
            Message("system", "Generate speech in the provided voice."),
            Message("user", "The quick brown fox."),
            Message("assistant", Audio(ref)),
            Message("user", "Say it" + " again" * i),
            Message("assistant", Audio(wav(f"t{i}.wav", seconds, 300 + 50 * i))),
        )
        samples.append(Sample(id=f"s{i}", messages=messages, start_index=3))
    _, processor = load_model_and_processor(tiny_dir)
    codes_dir = root / "codes"
    paths = sorted({m.audio_url for s in samples for m in s.messages if m.is_audio})
    CodesCache(codes_dir, processor.audio_tokenizer).encode_missing(paths, progress=False)
    return tiny_dir, codes_dir, samples


def step_gradients(
    setup: tuple[Path, Path, list[Sample]],
    out: Path,
    batch_size: int,
    accumulation: int,
    stock: bool = False,
    evaluate: bool = False,
) -> dict:
    """The LoRA gradients of one ``trainer.train()`` step over the 4 samples (as the optimizer sees
    them: after accumulation and the ranks' all-reduce), and, with ``evaluate``, the evaluation
    metrics and the model's own loss on the 4 samples afterwards.

    ``stock``: the stock transformers Trainer (each micro-batch's loss its own mean), else ours.
    """
    from transformers import Trainer, TrainerCallback, set_seed

    tiny_dir, codes_dir, samples = setup
    model, processor = load_model_and_processor(tiny_dir)
    params = TrainParams(
        train_data="unused.jsonl", val_data=None, model=str(tiny_dir), output_dir=str(out),
        codes_cache_dir=str(codes_dir), batch_size=batch_size, gradient_accumulation_steps=accumulation,
        max_steps=1, learning_rate=1e-3, warmup_ratio=0.0, max_grad_norm=0.0, lora_r=4, lora_alpha=8,
        lora_dropout=0.0, logging_steps=1, group_by_length=False,
    )  # fmt: skip
    set_seed(0)
    model = apply_lora(model, params)
    with torch.no_grad():  # B starts at zero, which leaves A without gradient: give B values too
        generator = torch.Generator().manual_seed(1)
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.copy_(0.05 * torch.randn(p.shape, generator=generator))

    captured: dict[str, torch.Tensor] = {}

    class CaptureGradients(TrainerCallback):
        def on_pre_optimizer_step(self, args, state, control, **kwargs):
            captured.update(
                {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
            )

    args = training_arguments(params, has_eval=evaluate)
    args.report_to = []  # no TensorBoard files from the tests
    collator = HiggsAudioCollator(processor, CodesCache(codes_dir, processor.audio_tokenizer))
    trainer = (Trainer if stock else trainer_class())(
        model=model, args=args, train_dataset=samples, eval_dataset=samples if evaluate else None,
        data_collator=collator, callbacks=[CaptureGradients()],
    )  # fmt: skip
    trainer.train()
    result = {"grads": captured, "loss": trainer.state.log_history[0]["loss"]}
    if evaluate:
        result["metrics"] = trainer.evaluate()
        model.eval()
        with torch.no_grad():
            result["model_loss"] = model(**collator(samples)).loss.item()
    return result


def relative_error(grads: dict, reference: dict) -> float:
    """max |g - r| / max |r| over every LoRA gradient."""
    assert grads.keys() == reference.keys() and grads
    assert any("lora_A" in n for n in grads) and any("lora_B" in n for n in grads)
    diff = max((grads[n] - reference[n]).abs().max().item() for n in reference)
    return diff / max(r.abs().max().item() for r in reference.values())


@pytest.fixture(scope="module")
def one_batch(setup, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The reference: all 4 samples in one micro-batch on one process."""
    return step_gradients(
        setup, tmp_path_factory.mktemp("one-batch"), batch_size=4, accumulation=1, evaluate=True
    )


# --- counting --------------------------------------------------------------------------------------
def test_count_is_the_supervised_frames_per_codebook_and_keeps_the_models_scale(setup, one_batch) -> None:
    tiny_dir, codes_dir, samples = setup
    model, processor = load_model_and_processor(tiny_dir)
    collator = HiggsAudioCollator(processor, CodesCache(codes_dir, processor.audio_tokenizer))
    halves = [collator(samples[:2]), collator(samples[2:])]
    entries, codebooks = supervised_entries(halves)
    assert codebooks == model.config.num_codebooks
    assert int(entries) == (3 + 5 + 9 + 17) * codebooks
    assert supervised_entries([{"input_ids": torch.ones(1, 3)}]) is None

    # One micro-batch divided by its own count is the model's own loss (a sum of per-codebook means).
    batch = collator(samples)
    count = supervised_per_codebook(*supervised_entries([batch]))
    with torch.no_grad():
        mean = model(**batch).loss
        summed = model(**batch, num_items_in_batch=count).loss
    torch.testing.assert_close(summed, mean)

    # Evaluation still reports the model's mean loss (and the per-codebook accuracy).
    metrics = one_batch["metrics"]
    assert metrics["eval_loss"] == pytest.approx(one_batch["model_loss"], rel=1e-5)
    assert 0 <= metrics["eval_acc_mean"] <= 1 and f"eval_acc_cb{codebooks - 1}" in metrics


# --- gradient accumulation -------------------------------------------------------------------------
def test_accumulated_micro_batches_give_the_gradients_of_one_batch(setup, one_batch, tmp_path: Path) -> None:
    accumulated = step_gradients(setup, tmp_path / "ours", batch_size=2, accumulation=2)
    stock = step_gradients(setup, tmp_path / "stock", batch_size=2, accumulation=2, stock=True)

    assert relative_error(accumulated["grads"], one_batch["grads"]) < MATCH
    assert accumulated["loss"] == pytest.approx(one_batch["loss"], rel=1e-5)  # the logged loss too
    # The old per-micro-batch mean weighs the 2 micro-batches alike however many frames they hold.
    assert relative_error(stock["grads"], one_batch["grads"]) > MISMATCH


# --- ranks -----------------------------------------------------------------------------------------
def _rank(rank: int, world_size: int, store: str, setup, out: str) -> None:
    """One of 2 CPU ranks: batch 2, no accumulation; ours then the stock Trainer; gradients to a file."""
    os.environ.update(
        RANK=str(rank), WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(world_size),
        MASTER_ADDR="127.0.0.1", OMP_NUM_THREADS="1",
    )  # fmt: skip
    torch.set_num_threads(1)
    # A file store needs no free port; accelerate then uses this process group as it is.
    torch.distributed.init_process_group(
        "gloo",
        init_method=f"file://{store}",
        rank=rank,
        world_size=world_size,
        timeout=timedelta(seconds=120),
    )
    try:
        ours = step_gradients(setup, Path(out) / "ours", batch_size=2, accumulation=1)
        stock = step_gradients(setup, Path(out) / "stock", batch_size=2, accumulation=1, stock=True)
        torch.save({"ours": ours, "stock": stock}, Path(out) / f"rank{rank}.pt")
    finally:
        torch.distributed.destroy_process_group()


def test_two_ranks_give_the_gradients_of_one_process(setup, one_batch, tmp_path: Path) -> None:
    torch.multiprocessing.spawn(_rank, args=(2, str(tmp_path / "store"), setup, str(tmp_path)), nprocs=2)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]

    for result in ranks:  # each rank holds the all-reduced gradient
        assert relative_error(result["ours"]["grads"], one_batch["grads"]) < MATCH
        assert result["ours"]["loss"] == pytest.approx(one_batch["loss"], rel=1e-5)
        assert relative_error(result["stock"]["grads"], one_batch["grads"]) > MISMATCH
