"""Tests for workbench.training.codes: the content-addressed audio-codes cache (tiny codec, real WAVs, no mocks)."""

from __future__ import annotations

import os
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from workbench.data.audio import default_cache_dir, load_audio
from workbench.models.model import SAMPLE_RATE, load_processor, make_tiny_model
from workbench.training.codes import (
    CodesCache,
    CodesMissingError,
    audio_tokenizer_fingerprint,
    file_content_hash,
    num_code_frames,
)

pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def processor(tmp_path_factory: pytest.TempPathFactory):
    return load_processor(make_tiny_model(tmp_path_factory.mktemp("tiny") / "model", seed=0))


def write_tone(path: Path, seconds: float, freq: float, sr: int = SAMPLE_RATE, seed: int = 0) -> Path:
    t = np.arange(int(seconds * sr)) / sr
    noise = np.random.default_rng(seed).normal(0.0, 0.01, t.shape)
    sf.write(str(path), (0.3 * np.sin(2 * np.pi * freq * t) + noise).astype(np.float32), sr, subtype="PCM_16")
    return path


@pytest.fixture
def wavs(tmp_path: Path) -> list[Path]:
    return [write_tone(tmp_path / f"a{i}.wav", 0.2 + 0.08 * i, 200 + 40 * i, seed=i) for i in range(4)]


def test_codes_match_processor_encoding_and_second_pass_hits_only(processor, wavs, tmp_path: Path) -> None:
    cache = CodesCache(tmp_path / "codes", processor.audio_tokenizer)
    codes = cache.get(wavs[0])
    assert codes.dtype == torch.long and codes.shape == (8, 5)  # 0.2 s at 25 frames/s
    assert cache.encode_calls == 1 and cache.stats.misses == 1 and cache.stats.encoded == 1

    # Same codes as the processor's own path: feature extractor + audio_tokenizer.encode.
    features = processor.feature_extractor(
        load_audio(wavs[0]), sampling_rate=SAMPLE_RATE, padding=False, return_tensors="pt"
    )
    features.pop("padding_mask", None)
    with torch.no_grad():
        expected = processor.audio_tokenizer.encode(**features).audio_codes[0]
    assert torch.equal(codes, expected)

    assert cache.encode_missing(wavs + wavs, progress=False) == 3  # duplicates encoded once
    assert cache.encode_calls == 4
    # Later epochs / a re-run in a new process: a fresh object over the same folder never encodes.
    again = CodesCache(tmp_path / "codes", processor.audio_tokenizer, encode_on_miss=False)
    assert again.encode_missing(wavs, progress=False) == 0
    for wav in wavs:
        assert torch.equal(again.get(wav), cache.get(wav))
    assert again.encode_calls == 0 and again.stats.hits == 8 and again.stats.misses == 0
    stored = list((again.directory).glob("*/*.npy"))
    assert len(stored) == 4 and all(np.load(f).dtype == np.int16 for f in stored)
    assert not list(again.directory.rglob("*.tmp"))  # atomic writes leave no temporaries
    assert (again.directory / "tokenizer.json").is_file()


def test_content_hashes_are_indexed_across_runs(processor, wavs, tmp_path: Path) -> None:
    first = CodesCache(tmp_path / "codes", processor.audio_tokenizer)
    first.encode_missing(wavs, progress=False)
    assert not (tmp_path / "codes" / "content_hashes.sqlite").exists()  # the shareable cache holds codes only
    with sqlite3.connect(default_cache_dir() / "content_hashes.sqlite") as db:  # this machine's own disk
        assert db.execute("SELECT COUNT(*) FROM content_hash").fetchone()[0] == 4

    # Same size and mtime, other bytes: a later run trusts the index instead of re-reading the file.
    stat = os.stat(wavs[0])
    original = first.content_hash(wavs[0])
    data = bytearray(wavs[0].read_bytes())
    data[-2:] = b"\x01\x02" if data[-2:] != b"\x01\x02" else b"\x03\x04"
    wavs[0].write_bytes(bytes(data))
    os.utime(wavs[0], ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert file_content_hash(wavs[0]) != original
    later = CodesCache(tmp_path / "codes", processor.audio_tokenizer)
    assert later.content_hash(wavs[0]) == original


def test_content_addressed_copy_hits_edit_misses(processor, wavs, tmp_path: Path) -> None:
    cache = CodesCache(tmp_path / "codes", processor.audio_tokenizer)
    cache.get(wavs[1])
    copy = Path(shutil.copy(wavs[1], tmp_path / "renamed copy.wav"))
    assert torch.equal(cache.get(copy), cache.get(wavs[1])) and cache.encode_calls == 1

    write_tone(copy, 0.5, 500, seed=9)  # edited in place: new content, new key
    assert file_content_hash(copy) != file_content_hash(wavs[1])
    assert cache.get(copy).shape == (8, 13) and cache.encode_calls == 2

    resampled = write_tone(tmp_path / "16k.wav", 0.4, 300, sr=16_000)  # loaded at 24 kHz like training
    assert cache.get(resampled).shape == (8, 10)

    strict = CodesCache(tmp_path / "codes", processor.audio_tokenizer, encode_on_miss=False)
    with pytest.raises(CodesMissingError, match="encode_missing"):
        strict.get(wavs[3])
    with pytest.raises(FileNotFoundError, match="missing.wav"):
        cache.get(tmp_path / "missing.wav")


def test_fingerprint_depends_on_weights_and_config_not_location(processor, tmp_path: Path) -> None:
    from transformers import HiggsAudioV2TokenizerModel

    codec = processor.audio_tokenizer
    fingerprint = audio_tokenizer_fingerprint(codec)
    assert audio_tokenizer_fingerprint(codec) == fingerprint  # memoised

    codec.save_pretrained(tmp_path / "codec")
    same = HiggsAudioV2TokenizerModel.from_pretrained(tmp_path / "codec")
    assert audio_tokenizer_fingerprint(same) == fingerprint  # another folder, same weights

    with torch.no_grad():
        same.quantizer.quantizers[0].codebook.embed.add_(0.5)
    assert audio_tokenizer_fingerprint(same) == fingerprint  # memoised until refreshed
    changed = audio_tokenizer_fingerprint(same, refresh=True)
    assert changed != fingerprint
    assert CodesCache(tmp_path / "codes", same).directory != CodesCache(tmp_path / "codes", codec).directory


def test_sharded_encoding_splits_work_across_ranks(processor, wavs, tmp_path: Path) -> None:
    world = [CodesCache(tmp_path / "codes", processor.audio_tokenizer) for _ in range(2)]
    done = [cache.encode_missing(wavs, progress=False, rank=r, world_size=2) for r, cache in enumerate(world)]
    assert done == [2, 2]
    assert [c.encode_calls for c in world] == [2, 2]
    # Rank r encoded distinct[r::2]; after the barrier every rank reads every file without encoding.
    assert all(world[0].contains(w) for w in wavs[0::2]) and all(world[1].contains(w) for w in wavs[1::2])
    reader = CodesCache(tmp_path / "codes", processor.audio_tokenizer, encode_on_miss=False)
    assert reader.encode_missing(wavs, progress=False, rank=1, world_size=2) == 0
    assert all(reader.get(w).shape[0] == 8 for w in wavs) and reader.encode_calls == 0
    assert [reader.num_frames(w) for w in wavs] == [5, 7, 9, 11]
    with pytest.raises(ValueError, match="rank"):
        reader.encode_missing(wavs, rank=2, world_size=2)


def test_another_node_finds_the_codes_without_reading_the_audio(processor, wavs, tmp_path: Path) -> None:
    # Two nodes: one shared codes folder, each its own machine-local content-hash index.
    node_a = CodesCache(
        tmp_path / "shared", processor.audio_tokenizer, hash_index=tmp_path / "a" / "hashes.sqlite"
    )
    assert node_a.encode_missing(wavs, progress=False) == 4
    assert node_a.stats.hashed == 4
    node_b = CodesCache(
        tmp_path / "shared", processor.audio_tokenizer, hash_index=tmp_path / "b" / "hashes.sqlite"
    )
    assert node_b.encode_missing(wavs, progress=False) == 0
    assert all(torch.equal(node_b.get(w), node_a.get(w)) for w in wavs)
    assert node_b.stats.hashed == 0 and node_b.encode_calls == 0 and node_b.stats.hits == 8
    assert len(list((tmp_path / "shared" / "content_hashes").glob("*.jsonl"))) == 1  # only A hashed

    # A file node B hashes while A runs is found by A at its next look (after the ranks' barrier).
    extra = write_tone(tmp_path / "extra.wav", 0.3, 330, seed=7)
    node_b.get(extra)
    node_b.flush()
    assert node_a.refresh() == 1
    assert node_a.contains(extra) and node_a.stats.hashed == 4
    # An edited file (new size or mtime) is a new key: never the old file's codes.
    write_tone(wavs[0], 0.5, 500, seed=9)
    assert not node_b.contains(wavs[0]) and node_b.stats.hashed == 2


def test_batched_encoding_gives_each_clip_its_own_frames(processor, tmp_path: Path) -> None:
    # Unequal lengths, shuffled: the batches are length-sorted; 24,017 and 961 samples are the
    # lengths where ceil(samples / hop) is off by one (the codec counts its semantic frames).
    seconds = [0.2, 24_017 / SAMPLE_RATE, 0.44, 961 / SAMPLE_RATE, 0.28, 0.6, 0.36]
    clips = [write_tone(tmp_path / f"c{i}.wav", s, 200 + 30 * i, seed=i) for i, s in enumerate(seconds)]
    one = CodesCache(tmp_path / "one", processor.audio_tokenizer)
    batched = CodesCache(tmp_path / "batched", processor.audio_tokenizer)
    assert one.encode_missing(clips, progress=False) == 7 and one.encode_calls == 7
    assert batched.encode_missing(clips, progress=False, batch_size=3) == 7 and batched.encode_calls == 3

    codec = processor.audio_tokenizer
    for clip in clips:
        alone, in_batch = one.get(clip), batched.get(clip)
        samples = len(load_audio(clip))
        assert in_batch.shape == alone.shape == (8, num_code_frames(codec, samples)), clip
    assert [one.num_frames(c) for c in clips] == [5, 25, 11, 1, 7, 15, 9]
    # The values: the longest clip of each length-sorted batch is unpadded and gets exactly its
    # own codes; a padded clip does not (the codec's HuBERT branch sees the padding), measured here.
    by_length = sorted(clips, key=lambda c: len(load_audio(c)))
    for batch in (by_length[0:3], by_length[3:6], by_length[6:]):
        assert torch.equal(batched.get(batch[-1]), one.get(batch[-1]))
    padded = [c for c in clips if c not in (by_length[2], by_length[5], by_length[6])]
    differing = [float((batched.get(c) != one.get(c)).float().mean()) for c in padded]
    assert any(d > 0 for d in differing), (
        differing
    )  # if this fails, batching became exact: say so in encode_batch

    # encode_batch directly (what a benchmark times): shapes as one at a time.
    waves = [load_audio(c) for c in clips[:3]]
    assert [c.shape for c in batched.encode_batch(waves)] == [one.get(c).shape for c in clips[:3]]
    with pytest.raises(ValueError, match="batch_size"):
        batched.encode_missing(clips, batch_size=0)


def test_code_frames_follow_the_codec_not_the_hop(processor) -> None:
    codec = processor.audio_tokenizer
    rng = np.random.default_rng(0)
    with torch.inference_mode():
        for samples in [400, 959, 960, 961, 4_800, 24_000, 24_017, *rng.integers(500, 50_000, 6).tolist()]:
            wave = torch.from_numpy(rng.normal(0, 0.1, samples).astype(np.float32))[None, None]
            assert codec.encode(wave).audio_codes.shape[2] == num_code_frames(codec, samples), samples
