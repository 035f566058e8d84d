"""Tests for workbench.training.codes: the content-addressed audio-codes cache (tiny codec, real WAVs, no mocks)."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from workbench.audio import AUDIO_READER, default_cache_dir, load_audio
from workbench.demo import make_tiny_model
from workbench.models.model import SAMPLE_RATE, load_processor
from workbench.training.codes import CodesCache, CodesMissingError, audio_tokenizer_fingerprint
from workbench.training.content_hashes import file_content_hash

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


def test_codes_of_a_44k_stereo_file_are_the_codes_of_transformers_reading_it(
    processor, tmp_path: Path
) -> None:
    from transformers.audio_utils import load_audio as transformers_load_audio

    t = np.arange(int(0.5 * 44_100)) / 44_100
    left, right = 0.3 * np.sin(2 * np.pi * 220 * t), 0.2 * np.sin(2 * np.pi * 330 * t + 0.5)
    path = tmp_path / "stereo44k.wav"
    sf.write(str(path), np.stack([left, right], axis=1).astype(np.float32), 44_100, subtype="PCM_16")
    cache = CodesCache(tmp_path / "codes", processor.audio_tokenizer)
    assert cache.encode_missing([path], progress=False) == 1

    waveform = transformers_load_audio(str(path), SAMPLE_RATE)
    features = processor.feature_extractor(
        waveform, sampling_rate=SAMPLE_RATE, padding=False, return_tensors="pt"
    )
    features.pop("padding_mask", None)
    with torch.no_grad():
        expected = processor.audio_tokenizer.encode(**features).audio_codes[0]
    assert torch.equal(cache.get(path), expected)
    manifest = json.loads((cache.directory / "tokenizer.json").read_text())
    assert manifest["audio_reader"] == AUDIO_READER and "soxr" in AUDIO_READER


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


def test_fingerprint_changes_with_the_audio_reader(processor) -> None:
    codec = processor.audio_tokenizer
    assert audio_tokenizer_fingerprint(codec, reader=AUDIO_READER) == audio_tokenizer_fingerprint(codec)
    other_version = AUDIO_READER.replace("soxr ", "soxr 0.0.0-", 1)
    assert audio_tokenizer_fingerprint(codec, reader=other_version) != audio_tokenizer_fingerprint(codec)
    assert audio_tokenizer_fingerprint(codec, reader="scipy resample_poly") != audio_tokenizer_fingerprint(
        codec
    )


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


def test_batched_encoding_gives_exactly_the_codes_of_one_at_a_time(processor, tmp_path: Path) -> None:
    """Batches form only from clips of equal length (padding would change the codes), so every
    clip gets exactly the codes it gets alone, which the processor gives at inference."""
    seconds = [0.4, 0.2, 0.4, 0.6, 0.4, 0.2, 0.36]  # three of 0.4 s, two of 0.2 s, two single lengths
    clips = [write_tone(tmp_path / f"c{i}.wav", s, 200 + 30 * i, seed=i) for i, s in enumerate(seconds)]
    one = CodesCache(tmp_path / "one", processor.audio_tokenizer)
    batched = CodesCache(tmp_path / "batched", processor.audio_tokenizer)
    assert one.encode_missing(clips, progress=False) == 7 and one.encode_calls == 7
    assert batched.encode_missing(clips, progress=False, batch_size=8) == 7
    assert batched.encode_calls == 4  # one call for each length: 0.2, 0.36, 0.4, 0.6 s
    for clip in clips:
        assert torch.equal(batched.get(clip), one.get(clip)), clip
    # Padding unequal clips into one call would not give these codes: measured, so the rule stays.
    waves = [load_audio(c) for c in (clips[1], clips[6])]
    padded = torch.zeros(2, 1, len(waves[1]))
    padded[0, 0, : len(waves[0])] = torch.from_numpy(waves[0])
    padded[1, 0] = torch.from_numpy(waves[1])
    with torch.inference_mode():
        codes = processor.audio_tokenizer.encode(padded).audio_codes
    frames = one.get(clips[1]).shape[1]
    assert not torch.equal(codes[0, :, :frames], one.get(clips[1]))
    with pytest.raises(ValueError, match="batch_size"):
        batched.encode_missing(clips, batch_size=0)


def test_long_encoding_logs_its_progress(processor, tmp_path: Path, monkeypatch, caplog) -> None:
    """A headless run shows no progress bar: encoding logs a line every PROGRESS_LOG_SECONDS."""
    from workbench.training import codes as codes_module

    clips = [write_tone(tmp_path / f"p{i}.wav", 0.2 + 0.04 * i, 220 + 20 * i, seed=i) for i in range(3)]
    monkeypatch.setattr(codes_module, "PROGRESS_LOG_SECONDS", 0.0)
    with caplog.at_level("INFO", logger="workbench.training.codes"):
        CodesCache(tmp_path / "cache", processor.audio_tokenizer).encode_missing(clips, progress=False)
    lines = [r.getMessage() for r in caplog.records if "files encoded" in r.getMessage()]
    assert lines[0].startswith("audio codes (rank 0/1): 1/3 files encoded") and len(lines) == 2, lines
    assert "min left" in lines[-1]
