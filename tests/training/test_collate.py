"""Tests for workbench.training.collate: sequences equal the processor's, labels mask all but target audio."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from workbench.audio import load_audio
from workbench.data.contract import check_sample
from workbench.data.sample import Audio, Message, Sample
from workbench.demo import make_tiny_model
from workbench.models.higgs_audio_v2 import sample_to_conversation
from workbench.models.model import SAMPLE_RATE, load_model_and_processor
from workbench.training.codes import CodesCache
from workbench.training.collate import (
    IGNORE_INDEX,
    MODEL_INPUT_KEYS,
    HiggsAudioCollator,
    NoSupervisedTokensError,
    SequenceTooLongError,
    encode_sample,
    length_grouped_indices,
    padding_fraction,
    padding_report,
    sequence_length,
    sequence_lengths,
)

pytest.importorskip("transformers")

SYSTEM = "Generate speech in the provided voice."
N = 8  # tiny codec codebooks


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory):
    return load_model_and_processor(make_tiny_model(tmp_path_factory.mktemp("tiny") / "model", seed=0))


@pytest.fixture(scope="module")
def processor(tiny):
    return tiny[1]


@pytest.fixture(scope="module")
def audio_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("audio")
    for name, seconds, freq in [
        ("ref", 0.4, 220),
        ("target", 0.24, 330),
        ("ref2", 0.2, 180),
        ("t2", 0.32, 410),
    ]:
        t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
        noise = np.random.default_rng(int(freq)).normal(0.0, 0.01, t.shape)
        wav = (0.3 * np.sin(2 * np.pi * freq * t) + noise).astype(np.float32)
        sf.write(str(folder / f"{name}.wav"), wav, SAMPLE_RATE, subtype="PCM_16")
    return folder


@pytest.fixture(scope="module")
def codes_cache(processor, tmp_path_factory: pytest.TempPathFactory) -> CodesCache:
    return CodesCache(tmp_path_factory.mktemp("codes"), processor.audio_tokenizer)


def cloning_sample(
    audio_dir: Path,
    sample_id: str = "s1",
    ref: str = "ref",
    target: str | None = "target",
    scene: str | None = None,
    target_text: str = "Hello world, this is a test.",
) -> Sample:
    messages = [Message("system", SYSTEM)]
    if scene:
        messages.append(Message("scene", scene))
    messages += [
        Message("user", "The quick brown fox jumps over the lazy dog."),
        Message("assistant", Audio(str(audio_dir / f"{ref}.wav"))),
        Message("user", target_text),
    ]
    start_index = len(messages) - 1
    if target:
        messages.append(Message("assistant", Audio(str(audio_dir / f"{target}.wav"))))
    return Sample(id=sample_id, messages=tuple(messages), start_index=start_index)


def processor_inputs(processor, samples: list[Sample]):
    """What inference builds: apply_chat_template on the same conversations and waveforms."""
    conversations = []
    for sample in samples:
        waveforms = {url: load_audio(url) for url in sample.reference_audio() + sample.target_audio()}
        conversations.append(sample_to_conversation(sample, audio=waveforms))
    return processor.apply_chat_template(
        conversations if len(conversations) > 1 else conversations[0],
        tokenize=True,
        return_dict=True,
        return_tensors="pt",
        processor_kwargs={"output_labels": True, "sampling_rate": SAMPLE_RATE},
    )


@pytest.mark.parametrize("batch", ["single", "padded pair"])
def test_collator_equals_processor(processor, codes_cache, audio_dir: Path, batch: str) -> None:
    samples = [cloning_sample(audio_dir, scene="Audio is recorded from a quiet room.")]
    if batch == "padded pair":  # different text and audio lengths: exercises both paddings
        samples.append(cloning_sample(audio_dir, "s2", ref="ref2", target="t2", target_text="Hi."))
    expected = processor_inputs(processor, samples)
    collated = HiggsAudioCollator(processor, codes_cache)(samples)

    assert set(collated) == set(MODEL_INPUT_KEYS)
    for key in ("input_ids", "attention_mask", "audio_input_ids", "audio_input_ids_mask"):
        assert collated[key].dtype == expected[key].dtype, key
        assert torch.equal(collated[key], expected[key]), key
    assert collated["audio_labels"].shape == expected["audio_labels"].shape
    if batch == "padded pair":
        mask = collated["attention_mask"][1]
        assert mask[0] == 0 and mask[-1] == 1  # text is left-padded
        assert not collated["audio_input_ids_mask"][1].all()  # right-padded frames
        pad = ~collated["audio_input_ids_mask"][1]
        assert (collated["audio_input_ids"][1][pad] == processor.audio_stream_eos_id).all()
        assert (collated["audio_labels"][1][pad] == IGNORE_INDEX).all()


def test_labels_supervise_only_target_audio_with_first_eos(processor, codes_cache, audio_dir: Path) -> None:
    sample = cloning_sample(audio_dir)
    expected = processor_inputs(processor, [sample])
    feature = encode_sample(sample, processor, codes_cache)
    labels = feature["audio_labels"]
    ref_frames = 10 + N + 1  # 0.4 s -> 10 codec frames, + bos + eos + (N - 1) delay frames
    target_frames = 6 + N + 1
    assert labels.shape == feature["audio_input_ids"].shape == (ref_frames + target_frames, N)

    assert (labels[:ref_frames] == IGNORE_INDEX).all()  # reference audio is context
    target = labels[ref_frames:]
    codes = codes_cache.get(audio_dir / "target.wav")
    eos = processor.audio_stream_eos_id
    for k in range(N):  # codebook k: k delay slots and the bos column masked, codes, first eos, then masked
        column = target[:, k]
        assert (column[: k + 1] == IGNORE_INDEX).all()
        assert torch.equal(column[k + 1 : k + 7], codes[k])
        assert column[k + 7] == eos
        assert (column[k + 8 :] == IGNORE_INDEX).all()
    assert feature["num_target_tokens"] == N * (6 + 1)
    # The processor labels the same target codes but masks every eos (and also labels the reference).
    processor_target = expected["audio_labels"][0, ref_frames:]
    differs = processor_target != target
    assert torch.equal(target[differs], torch.full((N,), eos))
    assert (processor_target[differs] == IGNORE_INDEX).all()
    assert (expected["audio_labels"][0, :ref_frames] != IGNORE_INDEX).any()

    # Text is context: the model gets no text labels at all (the tiny model has no text head).
    batch = HiggsAudioCollator(processor, codes_cache)([sample])
    assert "labels" not in batch
    assert torch.equal(batch["audio_labels"][0], labels)


def test_prompt_only_batch_raises(processor, codes_cache, audio_dir: Path) -> None:
    prompt = cloning_sample(audio_dir, "prompt-7", target=None)
    assert not check_sample(prompt).trainable
    collator = HiggsAudioCollator(processor, codes_cache)
    with pytest.raises(NoSupervisedTokensError, match=r"every label is masked.*prompt-7.*workbench validate"):
        collator([prompt, cloning_sample(audio_dir, "prompt-8", target=None)])
    assert issubclass(NoSupervisedTokensError, ValueError)
    # The sample contract is the collator's last guard: a prompt is refused by name even beside a target.
    with pytest.raises(NoSupervisedTokensError, match=r"'prompt-7'.*MISSING_TARGET_AUDIO"):
        collator([cloning_sample(audio_dir), prompt])
    # Pre-encoded features skip the per-sample guard; the batch-level check still catches them.
    encoded = [encode_sample(prompt, processor, codes_cache)] * 2
    with pytest.raises(NoSupervisedTokensError, match=r"every label is masked.*prompt-7, prompt-7"):
        collator(encoded)
    mixed = collator([encoded[0], cloning_sample(audio_dir)])
    assert (mixed["audio_labels"][0] == IGNORE_INDEX).all()
    assert (mixed["audio_labels"][1] != IGNORE_INDEX).any()
    evaluation = HiggsAudioCollator(processor, codes_cache, require_targets=False)([prompt])
    assert (evaluation["audio_labels"] == IGNORE_INDEX).all()


def test_max_length_error_names_the_sample(processor, codes_cache, audio_dir: Path) -> None:
    sample = cloning_sample(audio_dir, "too-long-42")
    length = sequence_length(sample, processor, codes_cache)
    feature = encode_sample(sample, processor, codes_cache)
    assert length == feature["length"] == len(feature["input_ids"])
    lengths = sequence_lengths([sample, cloning_sample(audio_dir, target=None)], processor, codes_cache)
    assert lengths[0] == length

    limit = length - 1
    with pytest.raises(SequenceTooLongError, match=rf"'too-long-42' is {length} tokens.*max_length={limit}"):
        HiggsAudioCollator(processor, codes_cache, max_length=limit)([sample])
    with pytest.raises(SequenceTooLongError) as info:
        HiggsAudioCollator(processor, codes_cache, max_length=limit)([feature])
    assert (info.value.sample_id, info.value.length, info.value.max_length) == ("too-long-42", length, limit)
    fits = HiggsAudioCollator(processor, codes_cache, max_length=length)([sample])
    assert fits["input_ids"].shape == (1, length)


def test_structure_errors_name_the_sample(processor, codes_cache, audio_dir: Path) -> None:
    good = cloning_sample(audio_dir)
    no_system = good.with_changes(messages=good.messages[1:], start_index=good.start_index - 1)
    with pytest.raises(ValueError, match="'s1'.*system"):
        encode_sample(no_system, processor, codes_cache)
    # A scene message anywhere is moved to the template's scene slot right after the system turn.
    moved = good.with_changes(messages=(*good.messages, Message("scene", "A quiet room.")))
    text = processor.apply_chat_template(sample_to_conversation(moved), tokenize=False)
    header = "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
    assert text.startswith(f"{header}{SYSTEM}\n\n<|scene_desc_start|>\nA quiet room.\n<|scene_desc_end|>")


def test_collator_pickles_for_spawned_workers(processor, codes_cache, audio_dir: Path) -> None:
    samples = [cloning_sample(audio_dir), cloning_sample(audio_dir, "s2", ref="ref2", target="t2")]
    collator = HiggsAudioCollator(processor, codes_cache)
    copy = pickle.loads(pickle.dumps(collator))  # the codec itself does not pickle (weight norm)
    assert copy.codes_cache.audio_tokenizer is None and not copy.codes_cache.encode_on_miss
    expected, got = collator(samples), copy(samples)
    assert all(torch.equal(expected[key], got[key]) for key in MODEL_INPUT_KEYS)


def test_overfitting_one_batch_lowers_the_loss(tiny, codes_cache, audio_dir: Path) -> None:
    model, processor = tiny
    samples = [
        cloning_sample(audio_dir),
        cloning_sample(audio_dir, "s2", ref="ref2", target="t2", target_text="Hi."),
    ]
    batch = HiggsAudioCollator(processor, codes_cache)(samples)
    torch.manual_seed(0)
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(20):
        loss = model(**batch).loss
        assert torch.isfinite(loss)
        losses.append(loss.item())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    assert losses[0] > 20  # ~ sum over 8 codebooks of ln(66) at random init
    assert losses[-1] < 0.7 * losses[0], losses


def test_padding_fraction_is_lower_with_length_grouping() -> None:
    rng = np.random.default_rng(0)
    lengths = rng.integers(50, 2000, size=512).tolist()
    grouped = padding_fraction(lengths, batch_size=8, grouped=True, seed=0)
    random = padding_fraction(lengths, batch_size=8, grouped=False, seed=0)
    assert 0 <= grouped < random < 1 and grouped < 0.1
    assert padding_report(lengths, 8) == {"grouped": grouped, "random": random}
    assert padding_fraction([100] * 10, 4, grouped=False) == 0.0
    assert padding_fraction([], 4, grouped=True) == 0.0
    order = length_grouped_indices(lengths, 8, seed=3)
    assert sorted(order) == list(range(512)) and order == length_grouped_indices(lengths, 8, seed=3)
