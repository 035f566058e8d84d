"""Higgs TTS 3: the tiny release folder, the full-size layout, sequences, the sampler, training and export.

Everything runs on the tiny v3 built once per module (two Qwen3 layers, the tiny 8-codebook codec)
and real audio encoded by its codec through the workbench's codes cache.
"""

from __future__ import annotations

import json
import shutil
import struct

import pytest
import soundfile as sf
import torch
from conftest import save_random_adapter, voiced

from workbench.data.sample import DEFAULT_SYSTEM_PROMPT, Audio, Message, Sample
from workbench.demo.tiny_higgs_tts3 import SPECIAL_TOKENS, make_tiny_tts3
from workbench.models.export import export
from workbench.models.family import NoAudioError, SequenceTooLongError
from workbench.models.folder import ModelNotFoundError, safetensors_keys
from workbench.models.higgs_tts3 import sequence
from workbench.models.higgs_tts3.configuration import HiggsTTS3Config, release_config
from workbench.models.higgs_tts3.family import HIGGS_TTS_3
from workbench.models.higgs_tts3.modeling import (
    AudioCodebooks,
    HiggsTTS3ForConditionalGeneration,
    parameter_count,
)
from workbench.models.higgs_tts3.processing import delay_pattern, reverse_delay_pattern
from workbench.models.higgs_tts3.release import (
    AUDIO_EMBEDDING,
    AUDIO_HEAD,
    CODEC_PREFIX,
    NOTICE_STATEMENT,
    TEXT_EMBEDDING,
    TEXT_HEAD,
    load_release,
    read_config,
    release_layout,
    save_release,
)
from workbench.models.higgs_tts3.sampler import SamplerState, sample_codes, sampler_step
from workbench.models.model import state_dict_digest
from workbench.training.codes import CodesCache

LORA_TARGETS = list(HIGGS_TTS_3.default_lora_targets)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("tts3")


@pytest.fixture(scope="module")
def tiny_dir(workdir):
    return make_tiny_tts3(workdir / "tiny")


@pytest.fixture(scope="module")
def stack(tiny_dir):
    return load_release(tiny_dir)


@pytest.fixture(scope="module")
def clips(workdir):
    paths = {}
    for name, seconds, f0 in (("old_ref", 0.8, 120.0), ("ref", 1.2, 140.0), ("target", 1.0, 190.0)):
        paths[name] = str(workdir / f"{name}.wav")
        sf.write(paths[name], voiced(seconds, f0=f0), 24_000)
    return paths


@pytest.fixture(scope="module")
def cache(stack, workdir):
    return CodesCache(workdir / "codes", stack[1].audio_tokenizer, hash_index=workdir / "hashes.sqlite")


def make_sample(clips, system=DEFAULT_SYSTEM_PROMPT, extra=()):
    messages = (
        Message("system", system),
        *extra,
        Message("user", "Hello world!"),
        Message("assistant", Audio(clips["ref"])),
        Message("user", "The quick brown fox."),
        Message("assistant", Audio(clips["target"])),
    )
    return Sample("s1", messages, len(messages) - 1)


def prompt_of(sample):
    """The generation prompt of a sample: everything before its target audio."""
    return Sample(sample.id, sample.messages[:-1], len(sample.messages) - 2)


def batch_of(encoded):
    ids = encoded["input_ids"][None]
    rows = encoded["audio_input_ids"][None]
    return {
        "input_ids": ids,
        "attention_mask": torch.ones_like(ids),
        "audio_input_ids": rows,
        "audio_input_ids_mask": torch.ones(rows.shape[:2], dtype=torch.bool),
        "audio_labels": encoded["audio_labels"][None],
    }


# --------------------------------------------------------------------------- the tiny release folder


def test_tiny_build_loads_back_bit_identical_in_the_release_layout(tiny_dir, stack):
    model, processor = stack
    marker = json.loads((tiny_dir / "workbench_model.json").read_text())
    assert (marker["kind"], marker["family"]) == ("tiny", "higgs-tts-3")
    assert state_dict_digest(model) == marker["digests"]["model"]
    assert state_dict_digest(processor.audio_tokenizer) == marker["digests"]["audio_tokenizer"]

    config = json.loads((tiny_dir / "config.json").read_text())
    assert config["model_type"] == "higgs_multimodal_qwen3"
    assert config["architectures"] == ["HiggsMultimodalQwen3ForConditionalGeneration"]
    assert config["text_config"]["rope_theta"] == 1e6
    assert config["audio_encoder_config"]["vocab_size"] == 66  # 64 tiny codes + BOC + EOC
    tokenizer_config = json.loads((tiny_dir / "tokenizer_config.json").read_text())  # as the release ships
    assert tokenizer_config["eos_token"] == tokenizer_config["pad_token"] == "<|endoftext|>"
    assert (tiny_dir / "audio_tokenizer" / "config.json").is_file()

    with open(tiny_dir / "model.safetensors", "rb") as handle:
        (size,) = struct.unpack("<Q", handle.read(8))
        header = {k: v for k, v in json.loads(handle.read(size)).items() if k != "__metadata__"}
    assert all(k.startswith(("body.", "tied.")) for k in header)
    assert {TEXT_EMBEDDING, AUDIO_EMBEDDING, "body.norm.weight"} <= set(header)
    assert not any(k.startswith("tied.head.") for k in header)  # the release has no head copies
    assert header[AUDIO_EMBEDDING]["shape"] == [8 * 66, 64]
    assert any(k.startswith(CODEC_PREFIX) for k in header)

    assert [processor.tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS] == list(
        range(len(SPECIAL_TOKENS))
    )
    assert (
        processor.tokenize("Hi <|emotion:elation|> there").count(
            processor.tokenizer.convert_tokens_to_ids("<|emotion:elation|>")
        )
        == 1
    )
    assert (processor.audio_stream_bos_id, processor.audio_stream_eos_id, processor.num_codebooks) == (
        64,
        65,
        8,
    )


def test_loads_in_bfloat16_and_names_missing_parts(tiny_dir, workdir):
    model, _ = load_release(tiny_dir, dtype=torch.bfloat16)
    assert model.dtype == torch.bfloat16
    broken = workdir / "broken"
    shutil.copytree(tiny_dir, broken)
    (broken / "tokenizer.json").unlink()
    with pytest.raises(ModelNotFoundError, match="tokenizer.json"):
        load_release(broken)
    shutil.copy(tiny_dir / "tokenizer.json", broken)
    (broken / "model.safetensors").unlink()
    with pytest.raises(ModelNotFoundError, match="model.safetensors"):
        load_release(broken)
    shutil.copy(tiny_dir / "model.safetensors", broken)
    shutil.rmtree(broken / "audio_tokenizer")  # the bundled tiny codec does not fit the released codec config
    with pytest.raises(ModelNotFoundError, match="audio_tokenizer"):
        load_release(broken)


# --------------------------------------------------------------------------- the full-size release


def test_full_size_parameter_count_and_release_layout_on_meta():
    config = release_config()
    assert parameter_count(config) == 4_043_480_576
    with torch.device("meta"):
        model = HiggsTTS3ForConditionalGeneration(config)
    layout = release_layout(model)
    hidden, q, kv, ffn = 2560, 32 * 128, 8 * 128, 9728
    per_layer = {
        "self_attn.q_proj.weight": (q, hidden),
        "self_attn.k_proj.weight": (kv, hidden),
        "self_attn.v_proj.weight": (kv, hidden),
        "self_attn.o_proj.weight": (hidden, q),
        "self_attn.q_norm.weight": (128,),
        "self_attn.k_norm.weight": (128,),
        "mlp.gate_proj.weight": (ffn, hidden),
        "mlp.up_proj.weight": (ffn, hidden),
        "mlp.down_proj.weight": (hidden, ffn),
        "input_layernorm.weight": (hidden,),
        "post_attention_layernorm.weight": (hidden,),
    }
    expected = {f"body.layers.{i}.{k}": v for i in range(36) for k, v in per_layer.items()}
    expected |= {
        "body.norm.weight": (hidden,),
        TEXT_EMBEDDING: (151936, hidden),
        AUDIO_EMBEDDING: (8 * 1026, hidden),
    }
    assert layout == expected
    with_heads = release_layout(model, heads=(AUDIO_HEAD, TEXT_HEAD))
    assert with_heads == expected | {AUDIO_HEAD: (8 * 1026, hidden), TEXT_HEAD: (151936, hidden)}
    with pytest.raises(ValueError, match="not a head"):
        release_layout(model, heads=("tied.head.other.weight",))


def test_release_config_round_trips_with_rope_theta_set():
    data = release_config().release_dict()
    assert data["text_config"]["rope_theta"] == 1e6
    data["text_config"]["rope_theta"] = None  # as the release ships it
    config = HiggsTTS3Config.from_dict(data)
    assert config.text_config.rope_parameters["rope_theta"] == 1e6
    assert (config.num_codebooks, config.boc_id, config.eoc_id, config.context_length) == (
        8,
        1024,
        1025,
        8192,
    )
    assert HIGGS_TTS_3.context_length(data) == 8192


# --------------------------------------------------------------------------- sequences


def test_delay_pattern_round_trip():
    codes = torch.arange(12).reshape(3, 4)
    rows = delay_pattern(codes, boc_id=98, eoc_id=99)
    assert rows.tolist() == [[0, 98, 98], [1, 4, 98], [2, 5, 8], [3, 6, 9], [99, 7, 10], [99, 99, 11]]
    assert torch.equal(reverse_delay_pattern(rows), codes)


def test_sequence_labels_targets_only_in_the_exact_prompt_order(stack, cache, clips):
    _, processor = stack
    sample = make_sample(clips)
    encoded = sequence.encode_sample(sample, processor, cache)
    n, bos, eos = 8, processor.audio_stream_bos_id, processor.audio_stream_eos_id
    ref, target = cache.get(clips["ref"]), cache.get(clips["target"])
    ref_rows, target_rows = ref.shape[1] + n - 1, target.shape[1] + n - 1
    ids = processor.token_ids
    expected = [
        ids["tts"],
        ids["ref_text"],
        *processor.tokenize("Hello world!"),
        ids["ref_audio"],
        *[-100] * ref_rows,
        ids["text"],
        *processor.tokenize("The quick brown fox."),
        ids["audio"],
        *[-100] * target_rows,
    ]
    assert encoded["input_ids"].tolist() == expected
    rows, labels = encoded["audio_input_ids"], encoded["audio_labels"]
    assert rows.shape == labels.shape == (ref_rows + target_rows, n)
    assert torch.equal(rows[:ref_rows], processor.delay(ref)) and torch.equal(
        rows[ref_rows:], processor.delay(target)
    )
    assert (labels[:ref_rows] == -100).all()  # the reference is context
    target_labels, target_inputs = labels[ref_rows:], rows[ref_rows:]
    assert ((target_labels == -100) == (target_inputs == bos)).all()  # BOC masked, nothing else
    assert (target_labels[target_inputs == eos] == eos).all() and (target_labels == eos).sum() == n * (
        n - 1
    ) // 2
    assert torch.equal(processor.undelay(target_labels.masked_fill(target_labels == -100, bos)), target)
    assert encoded["num_target_tokens"] == n * target.shape[1] + n * (n - 1) // 2
    assert encoded["length"] == len(expected) == sequence.sequence_length(sample, processor, cache)
    seconds = {clips["ref"]: 1.2, clips["target"]: 1.0}
    assert 0 <= sequence.estimated_length(sample, processor, seconds) - encoded["length"] <= 2

    prompt = sequence.generation_inputs(prompt_of(sample), processor, cache)
    cut = len(expected) - target_rows
    assert prompt["input_ids"][0].tolist() == expected[:cut]
    assert torch.equal(prompt["audio_input_ids"][0], processor.delay(ref))
    with pytest.raises(SequenceTooLongError):
        sequence.encode_sample(sample, processor, cache, max_length=len(expected) - 1)


def test_sample_notes_name_what_the_prompt_leaves_out(clips):
    assert sequence.sample_notes(make_sample(clips)) == []
    # A reference under 1 s: the serving stacks pad it before encoding, training does not.
    short = sequence.sample_notes(make_sample(clips), {clips["ref"]: 0.6, clips["target"]: 3.0})
    assert (
        len(short) == 1 and clips["ref"] in short[0] and "0.60 s" in short[0] and "at least 1 s" in short[0]
    )
    assert sequence.sample_notes(make_sample(clips), {clips["ref"]: 1.0, clips["target"]: 0.5}) == []
    extra = (
        Message("scene", "A quiet room."),
        Message("user", "Old words."),
        Message("assistant", Audio(clips["old_ref"])),
    )
    sample = make_sample(clips, system="Speak like a pirate.", extra=extra)
    sample = sample.with_changes(
        messages=(*sample.messages, Message("user", "More."), Message("assistant", Audio(clips["ref"])))
    )
    sample = sample.with_changes(start_index=len(sample.messages) - 3)
    notes = sequence.sample_notes(sample)
    assert len(notes) == 4
    assert "Speak like a pirate." in notes[0] and "A quiet room." in notes[1]
    assert clips["old_ref"] in notes[2] and "later target" in notes[3]


# --------------------------------------------------------------------------- forward


def test_forward_logits_align_with_labels_and_both_loss_paths_agree(stack, cache, clips):
    from workbench.training.collate import HiggsAudioCollator

    model, processor = stack
    long_sample = make_sample(clips)
    short_sample = Sample(
        "s2",
        (
            Message("system", DEFAULT_SYSTEM_PROMPT),
            Message("user", "Hi."),
            Message("assistant", Audio(clips["old_ref"])),
        ),
        2,
    )
    batch = HiggsAudioCollator(processor, cache)([long_sample, short_sample])
    assert (
        batch["input_ids"].shape[0] == 2
        and batch["audio_input_ids_mask"].sum(1).tolist()[1] < batch["audio_input_ids"].shape[1]
    )
    with torch.no_grad():
        out = model(**batch)
        entries = (batch["audio_labels"] != -100).sum()
        with_count = model(**batch, num_items_in_batch=entries / 8).loss
        alone = [
            model(**batch_of(sequence.encode_sample(s, processor, cache)))
            for s in (long_sample, short_sample)
        ]
    assert torch.isfinite(out.loss) and torch.allclose(out.loss, with_count)
    assert out.logits.shape == (*batch["audio_labels"].shape, 66)
    for b, single in enumerate(alone):  # logits[b, f] predicts row f of sample b, padding or not
        rows = int(batch["audio_input_ids_mask"][b].sum())
        torch.testing.assert_close(out.logits[b, :rows], single.logits[0], atol=1e-4, rtol=1e-4)
    correct, total = HIGGS_TTS_3.codebook_hits(model, batch, out.logits)
    assert (
        total.tolist() == (batch["audio_labels"] != -100).sum(dim=(0, 1)).tolist()
        and (correct <= total).all()
    )
    short_mask = batch["audio_input_ids_mask"].clone()
    short_mask[0, -1] = False  # one row fewer than sample 0 has placeholders
    with pytest.raises(ValueError, match="placeholders"):
        model(**{**batch, "audio_input_ids_mask": short_mask})


# --------------------------------------------------------------------------- the sampler


def run_sampler(wanted: list[list[int]], n: int, boc: int = 8, eoc: int = 9) -> list[list[int]]:
    """Feed logits whose argmax is each wanted row; return the rows output until the sampler stops."""
    state, out = SamplerState(n), []
    for row in wanted:
        logits = torch.full((n, 10), -5.0)
        logits[torch.arange(n), torch.tensor(row)] = 5.0
        out.append(sampler_step(logits, state, boc, eoc).tolist())
        if state.done:
            break
    return out


def test_sampler_ramps_in_with_boc_and_stops_n_minus_2_rows_after_codebook_0_ends():
    n, frames = 4, 5
    out = run_sampler([[1, 2, 3, 4]] * frames + [[9, 2, 3, 4]] + [[9, 9, 9, 9]] * 20, n)
    assert out[:n] == [[1, 8, 8, 8], [1, 2, 8, 8], [1, 2, 3, 8], [1, 2, 3, 4]]
    assert len(out) == frames + n - 1 and out[frames][0] == 9  # EOC on row T, done N - 2 rows later
    # codebook 0's EOC during the ramp-in is no stop
    assert len(run_sampler([[9, 2, 3, 4]] * 30, n)) == n + 1 + n - 2  # first seen on row N
    assert len(run_sampler([[1, 2]] * 3 + [[9, 2]] + [[1, 2]] * 5, 2, boc=8)) == 4  # N <= 2: done at once


def test_sampling_filters():
    logits = torch.tensor([[0.0, 3.0, 1.0], [2.0, 0.0, 1.5]])
    assert sample_codes(logits).tolist() == [1, 0]
    torch.manual_seed(0)
    for _ in range(20):
        assert sample_codes(logits, do_sample=True, temperature=1.0, top_k=1).tolist() == [1, 0]
        assert sample_codes(logits, do_sample=True, temperature=1.0, top_p=0.01).tolist() == [1, 0]
    assert sample_codes(logits, do_sample=True, temperature=1e-6).tolist() == [1, 0]


# --------------------------------------------------------------------------- training, generation, export


def test_lora_overfit_reproduces_the_target_and_the_merged_release_agrees(tiny_dir, cache, clips, workdir):
    from peft import LoraConfig, PeftModel, get_peft_model

    model, processor = load_release(tiny_dir)  # its own copy: training changes it
    sample = make_sample(clips)
    batch = batch_of(sequence.encode_sample(sample, processor, cache))
    prompt = sequence.generation_inputs(prompt_of(sample), processor, cache)
    reference_rows = prompt["audio_input_ids"].shape[1]
    target = cache.get(clips["target"])
    rows_expected = target.shape[1] + 8 - 1

    def generate(m):
        out = m.generate(**prompt, max_new_tokens=rows_expected + 20)
        assert torch.equal(out[0, :reference_rows], prompt["audio_input_ids"][0])
        return out

    def reproduces(out):
        try:
            return out.shape[1] - reference_rows == rows_expected and torch.equal(
                HIGGS_TTS_3.generated_codes(processor, out), target
            )
        except NoAudioError:
            return False

    assert not reproduces(generate(model))
    torch.manual_seed(0)
    config = LoraConfig(
        r=16,
        lora_alpha=32,
        lora_dropout=0.0,
        target_modules=LORA_TARGETS,
        modules_to_save=["audio_codebooks"],
    )
    peft_model = get_peft_model(model, config)
    optimizer = torch.optim.Adam([p for p in peft_model.parameters() if p.requires_grad], lr=1e-2)
    peft_model.train()
    for _ in range(150):
        loss = peft_model(**batch).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    peft_model.eval()
    assert loss.item() < 0.2
    assert isinstance(peft_model, PeftModel)
    trained = generate(peft_model)  # PeftModel.generate -> our generate, LoRA and the trained table active
    assert reproduces(trained), HIGGS_TTS_3.generated_codes(processor, trained).shape
    assert HIGGS_TTS_3.decode_generated(processor, trained).size == target.shape[1] * 960
    with torch.no_grad():
        logits = peft_model(**batch).logits
    correct, total = HIGGS_TTS_3.codebook_hits(peft_model, batch, logits)
    assert torch.equal(correct, total)

    out_dir = HIGGS_TTS_3.save_merged(peft_model, processor, workdir / "merged")
    assert any("lora_A" in n for n, _ in peft_model.named_parameters())  # the caller's model is not merged
    assert torch.equal(generate(peft_model), trained)
    assert NOTICE_STATEMENT in (out_dir / "NOTICE").read_text()
    merged, merged_processor = load_release(out_dir)
    assert isinstance(merged.audio_codebooks, AudioCodebooks)
    assert torch.equal(generate(merged), trained)
    assert json.loads((out_dir / "config.json").read_text())["text_config"]["rope_theta"] == 1e6


def planted_base(tiny_dir, folder, heads=False):
    """A copy of the tiny release with files and config keys of its own, and the head copies if asked."""
    shutil.copytree(tiny_dir, folder)
    (folder / "generation_config.json").write_text('{"eos_token_id": 0, "max_new_tokens": 1234}\n')
    (folder / "README.md").write_text("# The base model's card\n")
    tokenizer_config = json.loads((folder / "tokenizer_config.json").read_text())
    (folder / "tokenizer_config.json").write_text(json.dumps({**tokenizer_config, "model_max_length": 8192}))
    config = json.loads((folder / "config.json").read_text())
    config["mel_per_sample"] = 1234
    config["text_config"]["planted_text_key"] = "kept"
    config["audio_encoder_config"]["planted_audio_key"] = "kept"
    (folder / "config.json").write_text(json.dumps(config))
    if heads:
        from safetensors.torch import load_file, save_file

        tensors = load_file(folder / "model.safetensors")
        tensors |= {AUDIO_HEAD: tensors[AUDIO_EMBEDDING].clone(), TEXT_HEAD: tensors[TEXT_EMBEDDING].clone()}
        save_file(tensors, folder / "model.safetensors", metadata={"format": "pt"})
    return folder


def test_adapter_export_keeps_the_base_files_and_config_keys_and_writes_no_heads(tiny_dir, workdir):
    """``workbench export ADAPTER``: the base's tokenizer and other files as they are, its config keys."""
    from transformers import AutoTokenizer

    base = planted_base(tiny_dir, workdir / "planted")
    model, _ = load_release(base)
    out = export(
        save_random_adapter(model, ["q_proj"], workdir / "planted-adapter"), workdir / "planted-export"
    )

    merged, _ = load_release(out)
    base_model, _ = load_release(base)
    q_proj = "model.layers.0.self_attn.q_proj.weight"
    assert not torch.equal(merged.state_dict()[q_proj], base_model.state_dict()[q_proj])  # the adapter merged
    assert not any(k.startswith("tied.head.") for k in safetensors_keys(out))

    eos = AutoTokenizer.from_pretrained(out).eos_token_id  # how vLLM-Omni finds its stop token
    assert eos is not None and eos == AutoTokenizer.from_pretrained(base).eos_token_id
    for name in ("tokenizer.json", "tokenizer_config.json", "generation_config.json"):
        assert (out / name).read_bytes() == (base / name).read_bytes(), name
    assert not (out / "README.md").exists()
    assert json.loads((out / "workbench_model.json").read_text())["kind"] == "release"

    config = json.loads((out / "config.json").read_text())
    assert config["mel_per_sample"] == 1234
    assert (
        config["text_config"]["planted_text_key"]
        == config["audio_encoder_config"]["planted_audio_key"]
        == "kept"
    )
    assert config["text_config"]["rope_theta"] == 1e6 and config["torch_dtype"] == "float32"
    assert read_config(out).text_config.rope_parameters["rope_theta"] == 1e6


def test_export_writes_the_head_copies_only_when_the_base_has_them(tiny_dir, workdir):
    from safetensors.torch import load_file

    base = planted_base(tiny_dir, workdir / "with-heads", heads=True)
    config = json.loads((base / "config.json").read_text())
    config["text_config"]["torch_dtype"] = "float32"
    (base / "config.json").write_text(json.dumps(config))
    model, processor = load_release(base, dtype=torch.bfloat16)
    out = save_release(model, processor, workdir / "with-heads-export", base_dir=base)

    tensors = load_file(out / "model.safetensors")
    assert tensors[AUDIO_HEAD].dtype == torch.bfloat16
    assert torch.equal(tensors[AUDIO_HEAD], tensors[AUDIO_EMBEDDING])
    assert torch.equal(tensors[TEXT_HEAD], tensors[TEXT_EMBEDDING])
    config = json.loads((out / "config.json").read_text())
    assert config["torch_dtype"] == config["text_config"]["torch_dtype"] == "bfloat16"
    reloaded, _ = load_release(out)
    assert state_dict_digest(reloaded) == state_dict_digest(model)


def test_decode_generated_needs_a_generated_block(stack):
    _, processor = stack
    with pytest.raises(NoAudioError, match="starts"):
        HIGGS_TTS_3.decode_generated(processor, torch.zeros((1, 12, 8), dtype=torch.long))
    ramp = processor.delay(torch.zeros((8, 1), dtype=torch.long))[:5]  # 5 of the 8 rows one frame needs
    with pytest.raises(NoAudioError, match="at least 8 rows"):
        HIGGS_TTS_3.decode_generated(processor, ramp[None])


def test_generated_rows_are_told_by_count_and_an_eoc_in_the_ramp_is_no_end(stack):
    _, processor = stack
    n, boc, eoc = processor.num_codebooks, processor.audio_stream_bos_id, processor.audio_stream_eos_id
    codes = torch.arange(n * 12).reshape(n, 12) % boc  # 12 frames
    reference = processor.delay(torch.ones((n, 3), dtype=torch.long))
    generated = processor.delay(codes)
    generated[1, 1] = boc  # codebook 1 sampled BOC on its first row: a row that looks like the start
    generated[2, 0] = eoc  # codebook 0 said EOC during the ramp-in: the sampler went on, so does decoding
    out = torch.cat([reference, generated])[None]
    expected = codes.clone()
    expected[1, 0], expected[0, 2] = boc, eoc
    assert torch.equal(HIGGS_TTS_3.generated_codes(processor, out, prompt_rows=len(reference)), expected)
    assert not torch.equal(HIGGS_TTS_3.generated_codes(processor, out), expected)  # searched: a row off
    # BOC and EOC inside the frames decode as code 0 (as the serving stacks do), not as the last code.
    zeroed = expected.clone()
    zeroed[1, 0] = zeroed[0, 2] = 0
    clamped = expected.clamp(max=boc - 1)
    decoded = processor.decode_codes(expected)
    assert torch.equal(decoded, processor.decode_codes(zeroed))
    assert not torch.equal(decoded, processor.decode_codes(clamped))


def test_a_release_without_its_codec_folder_takes_the_cached_hub_codec(tiny_dir, stack, workdir, monkeypatch):
    """No ``audio_tokenizer/``: the codec comes from the local cache of ``bosonai/higgs-audio-v2-tokenizer``."""
    from huggingface_hub import constants

    from workbench.models.higgs_tts3.release import HUB_CODEC

    release = workdir / "cache-codec"
    shutil.copytree(tiny_dir, release)
    shutil.rmtree(release / "audio_tokenizer")
    cache = workdir / "hf-cache"
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))  # huggingface_hub reads it at import
    with pytest.raises(ModelNotFoundError, match=r"or the local cache \(bosonai/higgs-audio-v2-tokenizer\)"):
        load_release(
            release
        )  # the cache is empty and the tiny codec bundled in the weights is not the release's
    repo = cache / f"models--{HUB_CODEC.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("0" * 40)  # as `hf download` leaves it: refs/main names the snapshot
    shutil.copytree(tiny_dir / "audio_tokenizer", repo / "snapshots" / ("0" * 40))
    model, processor = load_release(release)
    codec = processor.audio_tokenizer
    assert state_dict_digest(codec) == state_dict_digest(stack[1].audio_tokenizer)
    assert not codec.training
