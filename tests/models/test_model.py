"""Tests for workbench.models.model: the offline loaders, on the tiny Higgs Audio v2 stack (real, no mocks)."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from workbench.demo import make_tiny_model
from workbench.models.folder import AUDIO_TOKENIZER_SUBDIR, ModelNotFoundError
from workbench.models.model import (
    MARKER_FILE,
    SAMPLE_RATE,
    generation_stop_problem,
    load_model_and_processor,
    load_processor,
    read_end_ids,
    read_marker,
    state_dict_digest,
)

transformers = pytest.importorskip("transformers")

SYSTEM = "Generate audio following instruction."


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("tiny") / "model", seed=0)


@pytest.fixture(scope="module")
def tiny(tiny_dir: Path):
    return load_model_and_processor(tiny_dir)


def tone(seconds: float, freq: float, seed: int = 0) -> np.ndarray:
    """A 24 kHz float32 test waveform: a tone with a little noise."""
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    noise = np.random.default_rng(seed).normal(0.0, 0.01, t.shape)
    return (0.3 * np.sin(2 * np.pi * freq * t) + noise).astype(np.float32)


def text(role: str, value: str) -> dict:
    return {"role": role, "content": [{"type": "text", "text": value}]}


def audio(wav: np.ndarray) -> dict:
    return {"role": "assistant", "content": [{"type": "audio", "audio": wav}]}


def test_chat_template_renders_higgs_format(tiny) -> None:
    _, processor = tiny
    conversation = [
        text("system", SYSTEM),
        {"role": "scene", "content": "Audio is recorded from a quiet room."},
        text("user", "Hello there."),
        audio(tone(0.2, 220)),
        text("user", "Say it again."),
    ]
    rendered = processor.apply_chat_template(conversation, add_generation_prompt=True)
    assert rendered == (
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
        f"{SYSTEM}\n\n<|scene_desc_start|>\nAudio is recorded from a quiet room.\n<|scene_desc_end|><|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nHello there.<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n<|audio_out_bos|><|AUDIO_OUT|><|audio_eos|><|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nSay it again.<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n<|audio_out_bos|>"
    )
    with pytest.raises(Exception, match="system message is required"):
        processor.apply_chat_template([text("user", "hi")])
    with pytest.raises(Exception, match="audio content only"):
        processor.apply_chat_template([text("system", SYSTEM), text("assistant", "hi")])


def test_loads_after_move_and_copy(tiny_dir: Path, tmp_path: Path) -> None:
    expected = read_marker(tiny_dir)["digests"]
    source = make_tiny_model(tmp_path / "source", seed=0)
    (tmp_path / "elsewhere").mkdir()
    moved = Path(shutil.move(source, tmp_path / "elsewhere" / "moved"))
    assert not source.exists()  # the absolute path recorded in processor_config.json is gone

    model, processor = load_model_and_processor(moved)
    assert Path(processor.audio_tokenizer.name_or_path) == moved / AUDIO_TOKENIZER_SUBDIR
    assert state_dict_digest(model) == expected["model"]
    assert state_dict_digest(processor.audio_tokenizer) == expected["audio_tokenizer"]
    recorded = json.loads((moved / "processor_config.json").read_text())["audio_tokenizer"]
    assert not Path(recorded["audio_tokenizer_name_or_path"]).is_relative_to(moved)  # folder untouched

    copied = Path(shutil.copytree(moved, tmp_path / "copied"))
    shutil.rmtree(moved)
    processor = load_processor(copied)
    assert Path(processor.audio_tokenizer.name_or_path) == copied / AUDIO_TOKENIZER_SUBDIR
    assert state_dict_digest(processor.audio_tokenizer) == expected["audio_tokenizer"]
    assert (copied / MARKER_FILE).is_file()


def test_voice_cloning_conversation_gives_finite_loss(tiny) -> None:
    model, processor = tiny
    ref, target = tone(1.0, 220, seed=1), tone(0.6, 330, seed=2)
    conversation = [
        text("system", SYSTEM),
        text("user", "The quick brown fox jumps over the lazy dog."),
        audio(ref),
        text("user", "Hello world, this is a test of speech."),
        audio(target),
    ]
    inputs = processor.apply_chat_template(
        conversation,
        tokenize=True,
        return_dict=True,
        return_tensors="pt",
        processor_kwargs={"output_labels": True, "sampling_rate": SAMPLE_RATE},
    )
    n_codebooks = model.config.num_codebooks
    frames = inputs["audio_input_ids"].shape[1]
    # Each segment: T codec frames + stream bos + stream eos, plus (codebooks - 1) delay frames.
    assert frames == (25 + 2 + n_codebooks - 1) + (15 + 2 + n_codebooks - 1)
    assert inputs["audio_input_ids"].shape == inputs["audio_labels"].shape == (1, frames, n_codebooks)
    placeholders = model.model.get_placeholder_mask(inputs["input_ids"], None, None)
    assert int(placeholders.sum()) == frames
    assert (inputs["audio_labels"] != -100).any()

    batch = {k: v for k, v in inputs.items() if k != "labels"}  # text labels need use_text_head=True
    with torch.no_grad():
        out = model(**batch)
    assert out.loss is not None and torch.isfinite(out.loss)
    assert out.logits.shape == (*inputs["input_ids"].shape, n_codebooks * model.config.codebook_size)


def test_audio_tokenizer_round_trip(tiny) -> None:
    _, processor = tiny
    codec = processor.audio_tokenizer
    wav = torch.from_numpy(tone(1.0, 440))[None, None]
    with torch.no_grad():
        codes = codec.encode(wav).audio_codes
        decoded = codec.decode(codes).audio_values
    assert codes.shape == (1, 8, 25)
    assert codes.min() >= 0 and codes.max() < codec.config.codebook_size
    assert len(codes.unique()) > 1  # codebooks are random, not all-zero
    assert decoded.shape == (1, 1, 25 * 960) and torch.isfinite(decoded).all()


def test_missing_model_raises_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "no" / "such-model"
    for loader in (load_model_and_processor, load_processor):
        with pytest.raises(ModelNotFoundError, match=str(missing)) as info:
            loader(missing)
        assert "make-tiny-model" in str(info.value)
    assert issubclass(ModelNotFoundError, FileNotFoundError)

    with pytest.raises(ModelNotFoundError, match="not a Hugging Face model folder"):
        load_processor(tmp_path)
    with pytest.raises(ModelNotFoundError, match="nobody-xyz/not-cached-model"):
        load_model_and_processor("nobody-xyz/not-cached-model")  # not cached: no download attempted


def test_generate_and_decode(tiny) -> None:
    model, processor = tiny
    conversation = [
        text("system", SYSTEM),
        text("user", "She sells sea shells by the sea shore."),
        audio(tone(0.8, 200, seed=3)),
        text("user", "How are you today?"),
    ]
    inputs = processor.apply_chat_template(
        conversation,
        add_generation_prompt=True,
        tokenize=True,
        return_dict=True,
        return_tensors="pt",
        processor_kwargs={"sampling_rate": SAMPLE_RATE},
    )
    prompt_frames = inputs["audio_input_ids"].shape[1]
    torch.manual_seed(0)  # repetition-aware sampling (ras_win_len) resamples even when greedy
    with torch.no_grad():
        audio_ids = model.generate(**inputs, max_new_tokens=24, do_sample=False)
    # Without return_dict_in_generate, generate returns the audio codes (prompt + generated frames).
    assert audio_ids.ndim == 3 and audio_ids.shape[2] == model.config.num_codebooks
    generated = audio_ids[0, prompt_frames:]
    assert 0 < len(generated) <= 24
    assert (generated[0] == model.config.audio_stream_bos_id).all()  # delay pattern starts all-bos

    waveform = processor.decode(audio_ids)
    assert waveform.ndim == 1 and len(waveform) > 0 and len(waveform) % 960 == 0
    assert torch.isfinite(waveform).all()


def test_generation_stop_problem_names_both_ids() -> None:
    assert generation_stop_problem(4, 4) is None
    assert generation_stop_problem(4, [1, 4]) is None
    problem = generation_stop_problem(128009, 128001)
    assert "128009" in problem and "128001" in problem and "max_new_tokens" in problem
    assert "no eos_token_id" in generation_stop_problem(None, 4)
    assert "list" in generation_stop_problem([4, 1], 4)


def test_loading_warns_when_end_ids_disagree(tiny_dir: Path, tmp_path: Path, caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="workbench.models.model"):
        load_model_and_processor(tiny_dir)
    assert "max_new_tokens" not in caplog.text  # the tiny model's ids agree

    copy = Path(shutil.copytree(tiny_dir, tmp_path / "copy"))
    config = json.loads((copy / "config.json").read_text())
    generation = json.loads((copy / "generation_config.json").read_text())
    assert generation["eos_token_id"] == config["eos_token_id"]
    generation["eos_token_id"] = config["pad_token_id"]  # as in the release's generation_config.json
    (copy / "generation_config.json").write_text(json.dumps(generation))
    assert read_end_ids(copy) == (config["eos_token_id"], config["pad_token_id"])
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="workbench.models.model"):
        model, _ = load_model_and_processor(copy)
    assert model.generation_config.eos_token_id == config["pad_token_id"]  # loaded as written, not changed
    assert str(copy) in caplog.text and "will not stop before max_new_tokens" in caplog.text
    assert f"eos_token_id {config['eos_token_id']}" in caplog.text
    assert f"eos_token_id {config['pad_token_id']}" in caplog.text
    assert "generation_config.json" in caplog.text  # the fix
