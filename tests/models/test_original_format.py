"""Tests for workbench.models.original_format and original_convert: original (boson_multimodal) layout import/export (real files, no mocks)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from workbench.demo import make_tiny_model
from workbench.models.folder import AUDIO_TOKENIZER_SUBDIR, ModelNotFoundError
from workbench.models.model import load_processor
from workbench.models.original_convert import export_original, import_original
from workbench.models.original_format import (
    EXPORT_MARKER,
    IMPORT_SIDECAR,
    hf_config_from_original,
    hf_to_original_key,
    is_original_checkpoint,
    original_to_hf_key,
)

transformers = pytest.importorskip("transformers")
from transformers import HiggsAudioV2ForConditionalGeneration  # noqa: E402


def read_weights(folder: Path) -> dict[str, torch.Tensor]:
    """All tensors of a folder's safetensors files (single file or shards)."""
    state = {}
    for file in sorted(folder.glob("*.safetensors")):
        with safe_open(str(file), framework="pt") as handle:
            state.update({k: handle.get_tensor(k) for k in handle.keys()})
    return state


def assert_same_state(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert sorted(a) == sorted(b)
    for key in a:
        assert a[key].dtype == b[key].dtype, key
        assert torch.equal(a[key], b[key]), key


def small_input(config) -> dict[str, torch.Tensor]:
    """Text ids with three audio placeholders, and three random audio frames for them."""
    ids = [config.bos_token_id, 20, 30, 40, config.audio_bos_token_id, *[config.audio_token_id] * 3, 50]
    gen = torch.Generator().manual_seed(0)
    frames = torch.randint(0, config.codebook_size, (1, 3, config.num_codebooks), generator=gen)
    return {
        "input_ids": torch.tensor([ids]),
        "attention_mask": torch.ones(1, len(ids), dtype=torch.long),
        "audio_input_ids": frames,
        "audio_input_ids_mask": torch.ones(1, 3, dtype=torch.bool),
    }


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("tiny") / "model", seed=0)


@pytest.fixture(scope="module")
def tiny_model(tiny_dir: Path) -> HiggsAudioV2ForConditionalGeneration:
    return HiggsAudioV2ForConditionalGeneration.from_pretrained(tiny_dir).eval()


@pytest.fixture(scope="module")
def exported(tiny_model, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_original(tiny_model, tmp_path_factory.mktemp("export") / "original")


@pytest.fixture(scope="module")
def split_checkpoint(exported: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """A hand-made original checkpoint: partially frozen halves, a text head, an ignored key, two shards."""
    folder = tmp_path_factory.mktemp("split") / "original"
    folder.mkdir()
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        shutil.copyfile(exported / name, folder / name)
    state = read_weights(exported)
    embed, audio_head = state.pop("embed_tokens.weight"), state.pop("audio_decoder_proj.audio_lm_head.weight")
    text_head = torch.randn(embed.shape, generator=torch.Generator().manual_seed(1))
    state.update(
        {
            "embed_tokens.embedding_frozen.weight": embed[:500].clone(),
            "embed_tokens.embedding_trainable.weight": embed[500:].clone(),
            "audio_decoder_proj.audio_lm_head.linear_frozen.weight": audio_head[:400].clone(),
            "audio_decoder_proj.audio_lm_head.linear_trainable.weight": audio_head[400:].clone(),
            "audio_decoder_proj.text_lm_head.linear_frozen.weight": text_head[:256].clone(),
            "audio_decoder_proj.text_lm_head.linear_trainable.weight": text_head[256:].clone(),
            "audio_codebook_weights": torch.full((8,), 1 / 8),  # dropped, as in transformers' script
        }
    )
    keys = sorted(state)
    shards = {"model-00001-of-00002.safetensors": keys[::2], "model-00002-of-00002.safetensors": keys[1::2]}
    for name, names in shards.items():
        save_file({k: state[k] for k in names}, str(folder / name), metadata={"format": "pt"})
    index = {"metadata": {}, "weight_map": {k: name for name, names in shards.items() for k in names}}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    return folder, {"embed": embed, "audio_head": audio_head, "text_head": text_head, "state": state}


def test_key_mapping_follows_transformers_conversion_script():
    assert (
        original_to_hf_key("audio_codebook_embeddings.weight")
        == "model.embed_audio_tokens.embed_audio_tokens.weight"
    )
    assert (
        original_to_hf_key("layers.3.audio_mlp.up_proj.weight") == "model.layers.3.audio_mlp.up_proj.weight"
    )
    assert original_to_hf_key("embed_tokens.weight") == "model.embed_tokens.weight"
    assert original_to_hf_key("norm.weight") == "model.norm.weight"
    assert original_to_hf_key("audio_decoder_proj.audio_lm_head.weight") == "audio_lm_head.weight"
    assert original_to_hf_key("audio_decoder_proj.text_lm_head.weight") == "text_lm_head.weight"
    for key in ("model.layers.0.self_attn.q_proj.weight", "audio_lm_head.weight", "model.norm.weight"):
        assert original_to_hf_key(hf_to_original_key(key)) == key
    with pytest.raises(ValueError, match="merge_and_unload"):
        hf_to_original_key("base_model.model.model.layers.0.self_attn.q_proj.lora_A.default.weight")


def test_export_writes_original_names_and_config(exported: Path, tiny_model):
    keys = set(read_weights(exported))
    assert "audio_codebook_embeddings.weight" in keys
    assert "audio_decoder_proj.audio_lm_head.weight" in keys
    assert {"embed_tokens.weight", "norm.weight", "layers.1.audio_mlp.down_proj.weight"} <= keys
    assert not any(k.startswith("model.") for k in keys)
    assert not any(k.startswith("audio_lm_head") or "embed_audio_tokens" in k for k in keys)
    assert len(keys) == len(tiny_model.state_dict())

    config = json.loads((exported / "config.json").read_text())
    assert config["model_type"] == "higgs_audio" and config["architectures"] == ["HiggsAudioModel"]
    assert config["audio_codebook_size"] == tiny_model.config.codebook_size - 2 == 64
    assert config["audio_num_codebooks"] == 8
    assert config["audio_dual_ffn_layers"] == [0, 1]
    assert config["audio_out_token_idx"] == tiny_model.config.audio_token_id
    assert (
        config["text_config"]["hidden_size"] == 64
        and config["text_config"]["rope_scaling"]["rope_type"] == "llama3"
    )
    assert (exported / EXPORT_MARKER).is_file()
    assert (
        exported / AUDIO_TOKENIZER_SUBDIR / "config.json"
    ).is_file()  # taken from the folder it was loaded from
    assert (
        json.loads((exported / "tokenizer_config.json").read_text())["tokenizer_class"]
        == "PreTrainedTokenizerFast"
    )


def test_detection(exported: Path, tiny_dir: Path, split_checkpoint, tmp_path: Path):
    assert is_original_checkpoint(exported)
    assert is_original_checkpoint(split_checkpoint[0])
    assert not is_original_checkpoint(tiny_dir)  # transformers layout
    assert not is_original_checkpoint(tmp_path / "missing")
    assert not is_original_checkpoint(tmp_path)  # empty folder
    assert not is_original_checkpoint(exported / "config.json")  # a file

    keys_only = tmp_path / "keys_only"  # no model_type: decided by the key names
    keys_only.mkdir()
    shutil.copyfile(exported / "model.safetensors", keys_only / "model.safetensors")
    assert is_original_checkpoint(keys_only)
    other = tmp_path / "llama"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"model_type": "llama"}))
    assert not is_original_checkpoint(other)


def test_round_trip_is_exact(exported: Path, tiny_dir: Path, tiny_model, tmp_path: Path):
    converted = import_original(exported, tmp_path / "hf")
    assert_same_state(read_weights(converted), read_weights(tiny_dir))

    model = HiggsAudioV2ForConditionalGeneration.from_pretrained(converted).eval()
    assert_same_state(model.state_dict(), tiny_model.state_dict())
    keep = ("transformers_version", "_name_or_path")
    assert {k: v for k, v in model.config.to_dict().items() if k not in keep} == {
        k: v for k, v in tiny_model.config.to_dict().items() if k not in keep
    }
    inputs = small_input(tiny_model.config)
    with torch.no_grad():
        assert torch.equal(model(**inputs).logits, tiny_model(**inputs).logits)

    processor = load_processor(converted)  # codec found in <export>/audio_tokenizer and copied along
    assert processor.audio_token_id == tiny_model.config.audio_token_id
    assert processor.audio_delay_token_id == tiny_model.config.audio_delay_token_id
    assert processor.audio_stream_eos_id == tiny_model.config.audio_stream_eos_id
    assert model.generation_config.eos_token_id == tiny_model.generation_config.eos_token_id
    assert model.generation_config.ras_win_len == 7


def test_export_from_folder_equals_export_from_model(exported: Path, tiny_dir: Path, tmp_path: Path):
    again = export_original(tiny_dir, tmp_path / "from_dir")
    assert_same_state(read_weights(again), read_weights(exported))
    assert json.loads((again / "config.json").read_text()) == json.loads(
        (exported / "config.json").read_text()
    )


def test_frozen_trainable_halves_are_concatenated(split_checkpoint, tiny_dir: Path, tmp_path: Path):
    folder, parts = split_checkpoint
    converted = import_original(folder, tmp_path / "hf")  # no audio tokenizer: model + text tokenizer only
    weights = read_weights(converted)
    assert torch.equal(weights["model.embed_tokens.weight"], parts["embed"])
    assert torch.equal(weights["audio_lm_head.weight"], parts["audio_head"])
    assert torch.equal(weights["text_lm_head.weight"], parts["text_head"])
    assert not any("frozen" in k or "trainable" in k or "codebook_weights" in k for k in weights)
    sidecar = json.loads((converted / IMPORT_SIDECAR).read_text())
    assert sidecar["splits"]["embed_tokens.weight"] == {"kind": "embedding", "frozen_rows": 500}

    plain = HiggsAudioV2ForConditionalGeneration.from_pretrained(converted)  # text head ignored
    tiny = HiggsAudioV2ForConditionalGeneration.from_pretrained(tiny_dir)
    assert_same_state(plain.state_dict(), tiny.state_dict())
    with_text = HiggsAudioV2ForConditionalGeneration.from_pretrained(converted, use_text_head=True)
    assert torch.equal(with_text.text_lm_head.weight, parts["text_head"])

    # Exporting the model loaded from there restores the original halves and the text head exactly.
    back = export_original(plain, tmp_path / "back")
    expected = {k: v for k, v in parts["state"].items() if k != "audio_codebook_weights"}
    assert_same_state(read_weights(back), expected)


def test_conversion_is_cached_and_reused(exported: Path, isolated_cache: Path):
    first = import_original(exported)
    assert first.parent == isolated_cache / "converted"
    stamp = (first / IMPORT_SIDECAR).stat().st_mtime_ns
    assert import_original(exported) == first
    assert (first / IMPORT_SIDECAR).stat().st_mtime_ns == stamp  # not converted again
    assert not [p for p in first.parent.iterdir() if p.name.startswith(".")]  # no temporary leftovers


def test_errors(exported: Path, tiny_dir: Path, tmp_path: Path):
    missing = tmp_path / "no_such_checkpoint"
    with pytest.raises(ModelNotFoundError, match="no_such_checkpoint"):
        import_original(missing)
    with pytest.raises(ValueError, match="not an original-format"):
        import_original(tiny_dir, tmp_path / "x")

    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError):
        import_original(exported, occupied)
    with pytest.raises(FileExistsError):
        export_original(tiny_dir, occupied)
    assert (occupied / "keep.txt").read_text() == "mine"

    variant = tmp_path / "fast_forward"
    shutil.copytree(exported, variant)
    config = json.loads((variant / "config.json").read_text())
    config["audio_dual_ffn_layers"] = [0]
    (variant / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"layers \[1\] have no audio FFN"):
        import_original(variant, tmp_path / "y")


def test_audio_tokenizer_argument(split_checkpoint, tiny_dir: Path, tmp_path: Path):
    folder, _ = split_checkpoint
    converted = import_original(folder, tmp_path / "hf", audio_tokenizer=tiny_dir / AUDIO_TOKENIZER_SUBDIR)
    assert (converted / AUDIO_TOKENIZER_SUBDIR / "config.json").is_file()  # copied in: the folder is movable
    moved = shutil.move(str(converted), str(tmp_path / "moved"))
    processor = load_processor(moved)
    assert processor.audio_tokenizer.config.sample_rate == 24_000

    boson_codec = tmp_path / "boson_codec"  # the original codec format: not loadable by transformers
    boson_codec.mkdir()
    (boson_codec / "config.json").write_text(json.dumps({"n_q": 8, "sample_rate": 24000}))
    with pytest.raises(ValueError, match="not in transformers' format"):
        import_original(folder, tmp_path / "hf2", audio_tokenizer=boson_codec)
    with pytest.raises(ModelNotFoundError, match="no_codec_here"):
        import_original(folder, tmp_path / "hf3", audio_tokenizer=tmp_path / "no_codec_here")


def test_export_needs_merged_weights(tiny_dir: Path, tmp_path: Path):
    peft = pytest.importorskip("peft")
    model = HiggsAudioV2ForConditionalGeneration.from_pretrained(tiny_dir)
    reference = {k: v.clone() for k, v in model.state_dict().items()}
    lora = peft.get_peft_model(model, peft.LoraConfig(r=2, target_modules=["q_proj", "v_proj"]))
    with pytest.raises(TypeError, match="merge_and_unload"):
        export_original(lora, tmp_path / "unmerged")
    merged = lora.merge_and_unload()  # LoRA B starts at zero: merged weights equal the base
    back = import_original(export_original(merged, tmp_path / "merged"), tmp_path / "hf")
    assert_same_state(read_weights(back), reference)


def test_boson_config_without_workbench_fields(exported: Path, tiny_model, tmp_path: Path):
    """Released configs carry no delay/bos/eos ids: they come from the tokenizer's special tokens."""
    folder = tmp_path / "boson"
    shutil.copytree(exported, folder)
    config = json.loads((folder / "config.json").read_text())
    for field in ("audio_delay_token_id", "bos_token_id", "eos_token_id"):
        del config[field]
    (folder / "config.json").write_text(json.dumps(config))
    converted = import_original(folder, tmp_path / "hf")
    imported = json.loads((converted / "config.json").read_text())
    for field in ("audio_delay_token_id", "bos_token_id", "eos_token_id", "codebook_size", "audio_token_id"):
        assert imported[field] == getattr(tiny_model.config, field), field


# The released bosonai/higgs-audio-v2-generation-3B-base config.json, fields that map onto the HF config.
RELEASE_CONFIG = {
    "architectures": ["HiggsAudioModel"],
    "model_type": "higgs_audio",
    "audio_adapter_type": "dual_ffn_fast_forward",
    "audio_codebook_size": 1024,
    "audio_decoder_proj_num_layers": 0,
    "audio_dual_ffn_layers": list(range(28)),
    "audio_embed_avg": False,
    "audio_eos_token_id": 128012,
    "audio_in_token_idx": 128015,
    "audio_num_codebooks": 8,
    "audio_out_bos_token_id": 128013,
    "audio_out_token_idx": 128016,
    "audio_stream_bos_id": 1024,
    "audio_stream_eos_id": 1025,
    "encode_audio_in_tokens": True,
    "encode_whisper_embed": False,
    "pad_token_id": 128001,
    "skip_audio_tower": True,
    "use_audio_out_embed_projector": False,
    "use_audio_out_self_attention": 0,
    "use_delay_pattern": True,
    "use_rq_transformer": False,
    "text_config": {
        "model_type": "llama",
        "attention_bias": False,
        "attention_dropout": 0.0,
        "bos_token_id": 128000,
        "eos_token_id": 128001,
        "head_dim": 128,
        "hidden_act": "silu",
        "hidden_size": 3072,
        "initializer_range": 0.02,
        "intermediate_size": 8192,
        "max_position_embeddings": 131072,
        "mlp_bias": False,
        "num_attention_heads": 24,
        "num_hidden_layers": 28,
        "num_key_value_heads": 8,
        "pad_token_id": None,
        "pretraining_tp": 1,
        "rms_norm_eps": 1e-05,
        "rope_scaling": {
            "factor": 32.0,
            "high_freq_factor": 4.0,
            "low_freq_factor": 1.0,
            "original_max_position_embeddings": 8192,
            "rope_type": "llama3",
        },
        "rope_theta": 500000.0,
        "tie_word_embeddings": True,
        "use_cache": True,
        "vocab_size": 128256,
    },
}
LLAMA3_IDS = {
    "<|begin_of_text|>": 128000,
    "<|end_of_text|>": 128001,
    "<|eot_id|>": 128009,
    "<|reserved_special_token_6|>": 128014,
}


def test_release_config_maps_like_the_conversion_script():
    """Equal to HiggsAudioV2Config(codebook_size=1026), as transformers' script builds it, except
    the documented bos, max_position_embeddings and rope_parameters (same rotary frequencies)."""
    from transformers import HiggsAudioV2Config
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    ours = hf_config_from_original(RELEASE_CONFIG, LLAMA3_IDS)
    script = HiggsAudioV2Config(codebook_size=1026)
    mine, theirs = ours.to_dict(), script.to_dict()
    differs = {k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k)}
    assert differs == {"bos_token_id", "max_position_embeddings", "rope_parameters", "architectures"}
    assert (
        (ours.eos_token_id, ours.pad_token_id)
        == (script.eos_token_id, script.pad_token_id)
        == (128009, 128001)
    )
    assert ours.bos_token_id == 128000 and ours.max_position_embeddings == 131072
    assert ours.tie_word_embeddings is False  # the release's text_config says true
    inv_freq, scaling = ROPE_INIT_FUNCTIONS["llama3"](ours)
    script_inv_freq, script_scaling = ROPE_INIT_FUNCTIONS["llama3"](script)
    assert torch.equal(inv_freq, script_inv_freq) and scaling == script_scaling


@pytest.mark.parametrize(
    ("flag", "value", "says"),
    [
        ("use_delay_pattern", False, "use_delay_pattern is false"),
        ("use_delay_pattern", None, "use_delay_pattern is absent (boson_multimodal's default is false)"),
        ("encode_audio_in_tokens", False, "encode_audio_in_tokens is false"),
    ],
)
def test_variants_without_delay_pattern_or_audio_tokens_are_refused(flag, value, says):
    variant = json.loads(json.dumps(RELEASE_CONFIG))
    if value is None:
        del variant[flag]
    else:
        variant[flag] = value
    with pytest.raises(ValueError, match="cannot be represented") as info:
        hf_config_from_original(variant, LLAMA3_IDS)
    assert says in str(info.value)


def test_release_ids_import_and_generation_stops_early(exported: Path, tmp_path: Path):
    """A checkpoint with the release's ids (no top-level bos/eos, generation eos <|end_of_text|>)
    imports with one eos in both configs, so a model forced to end stops generating at once."""
    from transformers import GenerationConfig

    from workbench.bench.generate import force_ending
    from workbench.models.chat_template import BOS, EOT, PAD_EOS
    from workbench.models.model import load_model_and_processor

    folder = tmp_path / "release_like"
    shutil.copytree(exported, folder)
    ids = {t["content"]: t["id"] for t in json.loads((folder / "tokenizer.json").read_text())["added_tokens"]}
    config = json.loads((folder / "config.json").read_text())
    for field in ("bos_token_id", "eos_token_id", "audio_delay_token_id"):
        del config[field]
    config["pad_token_id"] = ids[PAD_EOS]
    config["text_config"].update(bos_token_id=ids[BOS], eos_token_id=ids[PAD_EOS], tie_word_embeddings=True)
    (folder / "config.json").write_text(json.dumps(config))
    release_generation = {
        "bos_token_id": ids[BOS],
        "eos_token_id": ids[PAD_EOS],
        "pad_token_id": ids[PAD_EOS],
    }
    (folder / "generation_config.json").write_text(
        json.dumps({"_from_model_config": True, **release_generation})
    )

    converted = import_original(folder, tmp_path / "hf")
    written = json.loads((converted / "config.json").read_text())
    generation = json.loads((converted / "generation_config.json").read_text())
    expected = {"bos_token_id": ids[BOS], "eos_token_id": ids[EOT], "pad_token_id": ids[PAD_EOS]}
    assert {k: written[k] for k in expected} == expected
    assert {k: generation[k] for k in expected} == expected
    assert written["tie_word_embeddings"] is False and generation["ras_win_len"] == 7

    model, processor = load_model_and_processor(converted)
    force_ending(model)
    conversation = [
        {"role": "system", "content": [{"type": "text", "text": "Generate audio following instruction."}]},
        {"role": "user", "content": [{"type": "text", "text": "Hello there."}]},
    ]
    inputs = processor.apply_chat_template(
        conversation, add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt"
    )
    frames = {}
    for name, gen in (
        ("imported", model.generation_config),
        ("release", GenerationConfig(**release_generation)),
    ):
        torch.manual_seed(0)
        with torch.no_grad():
            frames[name] = model.generate(
                **inputs, generation_config=gen, max_new_tokens=60, do_sample=False
            ).shape[1]
    assert frames["imported"] == model.config.num_codebooks + 1  # the earliest end the delay pattern allows
    assert frames["release"] == 60  # the release's generation eos next to the converted model's: never stops

    back = export_original(model, tmp_path / "back")  # the source's text_config values are kept
    assert json.loads((back / "config.json").read_text())["text_config"]["tie_word_embeddings"] is True
