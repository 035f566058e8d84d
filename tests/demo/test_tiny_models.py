"""Tests for the tiny model builders of workbench.demo: complete, deterministic stacks of both families.

Each builder's folder loads with plain transformers classes (Higgs Audio v2) or the release loader
(Higgs TTS 3); the same seed gives the same bits, another seed other bits; a folder the user made
is never replaced; ``make_tiny_model`` picks the builder by family name.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import AutoProcessor, HiggsAudioV2ForConditionalGeneration, HiggsAudioV2TokenizerModel

from workbench.demo import make_tiny_model, make_tiny_tts3
from workbench.models.chat_template import SPECIAL_TOKENS
from workbench.models.families import detect_family
from workbench.models.folder import AUDIO_TOKENIZER_SUBDIR
from workbench.models.model import SAMPLE_RATE, read_marker, state_dict_digest


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("tiny") / "model", seed=0)


def tensors_equal(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def load_plain(path: Path):
    return (
        HiggsAudioV2ForConditionalGeneration.from_pretrained(path),
        HiggsAudioV2TokenizerModel.from_pretrained(path / AUDIO_TOKENIZER_SUBDIR),
    )


# --------------------------------------------------------------------------- Higgs Audio v2


def test_loads_with_plain_transformers_classes(tiny_dir: Path) -> None:
    processor = AutoProcessor.from_pretrained(tiny_dir)
    model = HiggsAudioV2ForConditionalGeneration.from_pretrained(tiny_dir)
    cfg = model.config
    codec = processor.audio_tokenizer

    assert type(processor).__name__ == "HiggsAudioV2Processor"
    assert cfg.num_hidden_layers == 2 and cfg.hidden_size == 64
    assert all(hasattr(layer, "audio_mlp") for layer in model.model.layers)  # dual FFN kept
    assert codec.config.sample_rate == SAMPLE_RATE and codec.config.frame_rate == 25
    assert cfg.num_codebooks == codec.config.num_quantizers == 8
    assert cfg.codebook_size == codec.config.codebook_size + 2
    assert (processor.audio_stream_bos_id, processor.audio_stream_eos_id) == (
        cfg.audio_stream_bos_id,
        cfg.audio_stream_eos_id,
    )
    tok = processor.tokenizer
    assert len(tok) <= cfg.vocab_size
    ids = tok.convert_tokens_to_ids(list(SPECIAL_TOKENS))
    assert len(set(ids)) == len(SPECIAL_TOKENS) and tok.unk_token_id not in ids
    assert processor.audio_token_id == cfg.audio_token_id
    assert processor.audio_delay_token_id == cfg.audio_delay_token_id
    assert tok.convert_tokens_to_ids("<|audio_out_bos|>") == cfg.audio_bos_token_id
    assert model.generation_config.eos_token_id == tok.convert_tokens_to_ids("<|eot_id|>")

    marker = read_marker(tiny_dir)
    assert marker["kind"] == "tiny" and marker["seed"] == 0
    assert marker["digests"]["model"] == state_dict_digest(model)
    assert marker["digests"]["audio_tokenizer"] == state_dict_digest(codec)


def test_same_seed_is_bit_identical_and_other_seed_differs(tiny_dir: Path, tmp_path: Path) -> None:
    reference_model, reference_codec = load_plain(tiny_dir)

    again = make_tiny_model(tmp_path / "again", seed=0)
    model, codec = load_plain(again)
    assert tensors_equal(model, reference_model) and tensors_equal(codec, reference_codec)
    assert (again / "tokenizer.json").read_bytes() == (tiny_dir / "tokenizer.json").read_bytes()

    with pytest.raises(FileExistsError):
        make_tiny_model(again, seed=1)
    other = make_tiny_model(again, seed=1, overwrite=True)
    model, codec = load_plain(other)
    assert not tensors_equal(model, reference_model)
    assert not tensors_equal(codec, reference_codec)
    assert read_marker(other)["seed"] == 1


def test_refuses_to_overwrite_foreign_folder(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError):
        make_tiny_model(tmp_path, overwrite=True)
    assert (tmp_path / "notes.txt").read_text() == "keep me"


# --------------------------------------------------------------------------- Higgs TTS 3


def test_the_tts3_build_is_a_pure_function_of_the_seed(tmp_path: Path) -> None:
    tiny_dir = make_tiny_model(tmp_path / "tiny", family="higgs-tts-3")
    assert detect_family(tiny_dir).name == "higgs-tts-3"
    state = torch.get_rng_state()
    again = make_tiny_tts3(tmp_path / "again")
    assert torch.equal(torch.get_rng_state(), state)
    digests = [json.loads((d / "workbench_model.json").read_text())["digests"] for d in (tiny_dir, again)]
    assert digests[0] == digests[1]
    with pytest.raises(FileExistsError):
        make_tiny_tts3(again)


def test_an_unknown_family_is_named_with_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="'higgs-audio-v9'.*higgs-audio-v2, higgs-tts-3"):
        make_tiny_model(tmp_path / "nothing", family="higgs-audio-v9")
    assert not (tmp_path / "nothing").exists()
