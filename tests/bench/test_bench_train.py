"""Tests for workbench.bench.train (`workbench bench train`) and the random-full model (shapes only)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from workbench.bench.train import BenchRefusedError, BenchTrainResult, bench_full, check_full_runnable
from workbench.bench.train_measures import OnTheFlyCodes, active_parameters, peak_bf16_tflops
from workbench.bench.train_workloads import synthetic_samples, synthetic_sequence_lengths
from workbench.cli import main
from workbench.demo import make_tiny_model
from workbench.models.model import load_model_and_processor
from workbench.models.random_full import make_random_full_model

no_gpu = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on machines without a GPU")


def test_bench_train_tiny_ratios(tmp_path: Path, capsys) -> None:
    """``workbench bench train`` on a few demo samples, through fit; a benchmark, so nothing is timed
    against a bound. The figures go to the terminal and to JSON."""
    out = tmp_path / "bench.json"
    code = main([
        "bench", "train", "--steps", "2", "--workdir", str(tmp_path / "w"), "--json", str(out),
    ])  # fmt: skip
    assert code == 0
    result = json.loads(out.read_text())
    assert result["loading"]["speedup"] > 1
    assert result["loading"]["cached_samples_per_s"] > result["loading"]["on_the_fly_samples_per_s"] > 0
    assert 0 <= result["padding"]["grouped"] < result["padding"]["random"] < 1
    tiny = result["tiny"]
    assert tiny["steps_per_s"] > 0 and tiny["tokens_per_s"] > 0 and tiny["steps"] == 2
    assert result["full"] is None
    # The figures come from the path users run: fit wrote its run record with the steps it took.
    record = json.loads((tmp_path / "w" / "tiny_run" / "run.json").read_text())
    assert record["result"]["global_step"] == 3  # one warm-up step + two timed
    text = capsys.readouterr().out
    for part in (
        "(a) data loading",
        "cache speed-up",
        "(b) padding",
        "length-grouped",
        "through fit",
        "steps/s",
    ):
        assert part in text


def test_bench_has_no_training_loop_of_its_own() -> None:
    """One training loop: the benchmark's modules never step an optimizer or call backward."""
    import inspect

    import workbench.bench.train
    import workbench.bench.train_measures
    import workbench.bench.train_workloads

    for module in (workbench.bench.train, workbench.bench.train_measures, workbench.bench.train_workloads):
        source = inspect.getsource(module)
        assert ".backward(" not in source and "optimizer.step" not in source and "AdamW" not in source, module


def test_full_path_runs_with_a_small_model_on_cpu(tmp_path: Path) -> None:
    """The full-size code path (h200x8 settings through fit: bf16, LoRA r 64, batch and checkpointing
    varied on one loaded model, codec both ways, generation) with the tiny model."""
    tiny = make_tiny_model(tmp_path / "tiny")
    full = bench_full(
        str(tiny), tmp_path / "work", steps=1, warmup_steps=1, max_seconds=1.5, batch_sizes=[1, 2],
        checkpointing=[True, False], codec_clips=3, max_new_tokens=4,
    )  # fmt: skip
    runs = full["runs"]
    assert [(r["batch_size"], r["activation_checkpointing"]) for r in runs] == [
        (1, True), (2, True), (1, False), (2, False)
    ]  # fmt: skip
    for r in runs:
        assert r["tokens_per_s"] > 0 and r["peak_memory_gib"] > 0 and r["steps"] == 1
        assert r["lora_r"] == 64 and r["dtype"] == "bf16"
        assert r["mfu"] == pytest.approx(
            6 * full["params_active"] * r["tokens_per_s"] / 1e12 / full["peak_tflops"]
        )
        assert r["mfu_4n"] == pytest.approx(r["mfu"] * 4 / 6)
        assert r["trainable"] == runs[0]["trainable"]  # LoRA removed between runs, not stacked
    # each run is a real `fit` run with its own record, at the production params
    for r in runs:
        folder = (
            tmp_path
            / "work"
            / f"full_run_b{r['batch_size']}_{'gc' if r['activation_checkpointing'] else 'nogc'}"
        )
        resolved = (folder / "params.resolved.yaml").read_text()
        assert "lora_alpha: 128" in resolved and f"batch_size: {r['batch_size']}" in resolved
    codec = full["codec"]
    assert (
        codec["clips"] == 3
        and codec["one_at_a_time"]["clips_per_s"] > 0
        and codec["batched"]["x_real_time"] > 0
    )
    assert codec["identical"]
    generation = full["generation"]
    assert (
        0 < generation["frames"] <= 4
        and generation["frames_per_s"] > 0
        and generation["real_time_factor"] > 0
    )
    text = BenchTrainResult(machine="test", full=full).format_text()
    assert "tokens/s" in text and "MFU" in text and "peak memory" in text and "codec encoding" in text
    assert "generation:" in text


@no_gpu
def test_random_full_is_refused_without_a_gpu(capsys) -> None:
    with pytest.raises(BenchRefusedError, match="allow-cpu"):
        check_full_runnable("random-full")
    check_full_runnable("random-full", allow_cpu=True)  # no error
    assert main(["bench", "train", "--model", "random-full", "--steps", "1"]) == 2
    err = capsys.readouterr().err
    assert "no GPU" in err and "--allow-cpu" in err and "5.4 B parameters" in err


def test_random_full_model_has_the_full_size_on_meta() -> None:
    model, processor = load_model_and_processor("random-full", dtype=torch.bfloat16, device="meta")
    assert model.device.type == "meta" and model.dtype == torch.bfloat16
    config = model.config
    assert (config.hidden_size, config.num_hidden_layers, config.vocab_size) == (3072, 28, 128256)
    assert config.num_codebooks == processor.audio_tokenizer.config.num_quantizers == 8
    assert config.codebook_size == 1026 and processor.audio_tokenizer.config.frame_rate == 25
    tokenizer = processor.tokenizer
    assert config.audio_token_id == tokenizer.convert_tokens_to_ids("<|AUDIO_OUT|>")
    assert config.pad_token_id == tokenizer.pad_token_id and len(tokenizer) <= config.vocab_size
    total, active = active_parameters(model)
    assert 5.3e9 < total < 5.5e9 and 2.7e9 < active < 2.9e9


def test_active_parameters_skip_embeddings_and_one_ffn_path() -> None:
    model, _ = make_random_full_model(device="meta")
    layer = model.model.layers[0]
    per_layer = sum(p.numel() for p in layer.parameters()) - sum(
        p.numel() for p in layer.audio_mlp.parameters()
    )
    expected = per_layer * len(model.model.layers) + sum(
        p.numel() for name, p in model.named_parameters() if name.startswith(("audio_lm_head", "model.norm"))
    )
    assert active_parameters(model)[1] == expected


def test_peak_bf16_by_device_name() -> None:
    assert peak_bf16_tflops("NVIDIA H100 80GB HBM3") == (989.4, "H100")
    assert peak_bf16_tflops("NVIDIA H200")[0] == 989.4
    assert peak_bf16_tflops("NVIDIA H100 PCIe")[0] == 756.0
    tflops, source = peak_bf16_tflops("Some Future GPU")
    assert tflops == 989.4 and "assumed" in source


def test_synthetic_lengths_spread_like_speech() -> None:
    lengths, durations = synthetic_sequence_lengths(500, seed=1)
    assert durations.shape == (500, 2) and durations.min() >= 1.0 and durations.max() <= 15.0
    assert 1.0 <= min(lengths) and max(lengths) > 2 * min(lengths)


def test_on_the_fly_codes_equal_cached_codes_and_store_nothing(tmp_path: Path) -> None:
    from workbench.training.codes import CodesCache

    _, processor = load_model_and_processor(make_tiny_model(tmp_path / "tiny"))
    sample = synthetic_samples(tmp_path / "wavs", 1, high=1.5)[0]
    path = sample.target_audio()[0]
    cached = CodesCache(tmp_path / "cache", processor.audio_tokenizer).get(path)
    on_the_fly = OnTheFlyCodes(tmp_path / "otf", processor.audio_tokenizer)
    assert torch.equal(on_the_fly.get(path), cached)
    assert not on_the_fly.contains(path) and on_the_fly.encode_calls == 1
