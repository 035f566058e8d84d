"""Fix recipes: validation, YAML round trip, every operation on real audio, and `fix` on files."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from workbench.data.contract import check_sample
from workbench.data.fixes import FixRecipe, Operation, RecipeError, apply_recipe, fix, trim_file
from workbench.data.probe import probe
from workbench.data.sample import Audio, Message, Sample, read_samples, write_samples


def make_sample(
    sample_id: str, target: str, reference: str | None = None, speaker: str | None = "spk1"
) -> Sample:
    messages = [Message("system", "Generate speech in the provided voice.")]
    if reference:
        messages += [Message("user", "reference words"), Message("assistant", Audio(reference))]
    start = len(messages)
    messages += [Message("user", f"text of {sample_id}"), Message("assistant", Audio(target))]
    return Sample(id=sample_id, messages=tuple(messages), start_index=start, speaker=speaker)


def silence_then_voice(sr: int = 24_000, lead: float = 1.0) -> np.ndarray:
    """``lead`` seconds of digital silence, then 1.5 s of a harmonic tone under a syllable envelope."""
    t = np.arange(int(1.5 * sr)) / sr
    tone = sum(np.sin(2 * np.pi * 150 * k * t) / k for k in range(1, 6)) * np.sin(np.pi * t / 1.5) ** 0.5
    return np.concatenate([np.zeros(int(lead * sr)), 0.4 * tone / np.abs(tone).max()]).astype(np.float32)


@pytest.fixture
def samples() -> list[Sample]:
    return [make_sample(name, f"/mnt/old/{name}.wav", speaker=spk) for name, spk in
            [("a", "spkA"), ("b", "spk_a"), ("c", "spkB"), ("d", "spkB"), ("e", "spkA")]]  # fmt: skip


# --- validation --------------------------------------------------------------------------
def test_all_problems_are_gathered_into_one_error():
    text = """
- op: drop_samples
  ids: [a]
- op: trim_silence
  treshold_db: 40
- op: set_speaker
  ids: [d]
- op: drop_sample
  ids: [x]
"""
    with pytest.raises(RecipeError) as info:
        FixRecipe.from_yaml(text, source="fixes.yaml")
    message = str(info.value)
    assert message.startswith("fixes.yaml: fix recipe has 3 problems")
    assert "step 2 (trim_silence): unknown argument 'treshold_db' (did you mean 'threshold_db'?)" in message
    assert "step 3 (set_speaker): missing required argument 'speaker'" in message
    assert "step 4 (drop_sample): unknown op (did you mean 'drop_samples'?)" in message
    assert len(info.value.problems) == 3


@pytest.mark.parametrize(
    ("op", "args", "expected"),
    [
        ("trim_silence", {"threshold_db": -3}, "argument 'threshold_db' must be a number > 0"),
        ("trim_silence", {"audio": "both"}, "argument 'audio' must be one of target, reference, all"),
        ("drop_samples", {"ids": "a"}, "argument 'ids' must be a non-empty list of sample ids"),
        ("drop_samples", {"ids": ["a", True]}, "argument 'ids' must be a non-empty list of sample ids"),
        ("trim_silence", {"ids": "a"}, "argument 'ids' must be 'all' or a non-empty list of sample ids"),
        ("merge_speakers", {"speakers": [], "into": "x"}, "argument 'speakers' must be a non-empty list"),
        ("remap_prefix", {"old": "", "new": "/x"}, "argument 'old' must be a non-empty string"),
    ],
)
def test_add_rejects_bad_arguments_naming_step_op_and_argument(op, args, expected):
    recipe = FixRecipe()
    recipe.add("set_speaker", ids=["a"], speaker="s")
    with pytest.raises(RecipeError, match=expected) as info:
        recipe.add(op, **args)
    assert f"step 2 ({op})" in str(info.value)
    assert len(recipe) == 1  # nothing appended


def test_recipe_must_be_a_list_of_mappings():
    with pytest.raises(RecipeError, match="expected a list of steps"):
        FixRecipe.from_yaml("op: drop_samples\n")
    with pytest.raises(RecipeError, match="step 1: expected a mapping with an 'op' key"):
        FixRecipe.from_yaml("- drop_samples\n")
    with pytest.raises(RecipeError, match="step 1 \\(\\['x'\\]\\): unknown op"):
        FixRecipe.from_yaml("- op: [x]\n")
    assert len(FixRecipe.from_yaml("# nothing yet\n")) == 0


def test_trim_without_output_dir_fails_before_any_work(samples):
    recipe = FixRecipe()
    recipe.add("trim_silence")
    with pytest.raises(RecipeError, match=r"step 1 \(trim_silence\): needs an output_dir"):
        apply_recipe(samples, recipe)


# --- YAML --------------------------------------------------------------------------------
def full_recipe() -> FixRecipe:
    recipe = FixRecipe()
    recipe.add("drop_samples", ids=["a", "b"], reason="wrong speaker")
    recipe.add("remap_prefix", old="/mnt/old/", new="/data/new/")
    recipe.add("trim_silence", ids=["c"], threshold_db=40, keep_ms=100)
    recipe.add("set_speaker", ids=["d"], speaker="spk2")
    recipe.add("merge_speakers", speakers=["spkA", "spk_a"], into="spkA")
    recipe.add("move_to_prompts", ids=["e"])
    return recipe


def test_yaml_round_trip_and_describe(tmp_path):
    recipe = full_recipe()
    text = recipe.to_yaml()
    assert text.startswith("# workbench fix recipe")
    assert "ids: [a, b]" in text and "- op: remap_prefix" in text
    assert FixRecipe.from_yaml(text) == recipe
    path = recipe.save(tmp_path / "fixes.yaml")
    assert FixRecipe.load(path) == recipe
    lines = recipe.describe().splitlines()
    assert len(lines) == 6
    assert lines[0] == "1. drop a, b (wrong speaker)"
    assert lines[4] == "5. merge speakers spkA, spk_a into spkA"
    # Defaults are written out, so a replay does not depend on today's defaults.
    assert recipe.ops[2] == Operation(
        "trim_silence", {"ids": ["c"], "audio": "all", "threshold_db": 40, "keep_ms": 100}
    )


# --- operations --------------------------------------------------------------------------
def test_drop_and_unknown_ids_are_reported(samples):
    recipe = FixRecipe()
    recipe.add("drop_samples", ids=["a", "zz"], reason="noisy")
    recipe.add("set_speaker", ids=["a", "b"], speaker="spk9")
    result = apply_recipe(samples, recipe)
    assert [s.id for s in result.samples] == ["b", "c", "d", "e"]
    assert result.dropped == [{"id": "a", "step": 1, "reason": "noisy"}]
    assert "step 1 drop_samples a: dropped (noisy)" in result.log
    assert "WARNING step 1 drop_samples: id 'zz' matches no sample" in result.warnings
    assert "WARNING step 2 set_speaker: id 'a' was dropped in step 1" in result.warnings
    assert set(result.warnings) <= set(result.log)
    assert result.to_dict()["kept"] == 4


def test_remap_prefix_and_speakers(samples):
    recipe = FixRecipe()
    recipe.add("remap_prefix", old="/mnt/old/", new="/data/new/")
    recipe.add("remap_prefix", old="/nowhere/", new="/x/")
    recipe.add("set_speaker", ids=["d"], speaker="spk2")
    recipe.add("merge_speakers", speakers=["spkA", "spk_a", "ghost"], into="spkA")
    result = apply_recipe(samples, recipe)
    by_id = {s.id: s for s in result.samples}
    assert by_id["c"].target_audio() == ["/data/new/c.wav"]
    assert "step 1 remap_prefix c: /mnt/old/c.wav -> /data/new/c.wav" in result.log
    assert "WARNING step 2 remap_prefix: no audio path starts with '/nowhere/'" in result.warnings
    assert {i: s.speaker for i, s in by_id.items()} == {
        "a": "spkA",
        "b": "spkA",
        "c": "spkB",
        "d": "spk2",
        "e": "spkA",
    }
    assert "step 4 merge_speakers b: speaker 'spk_a' -> 'spkA'" in result.log
    assert result.warnings[-1] == "WARNING step 4 merge_speakers: speaker 'ghost' matches no sample"
    assert samples[1].speaker == "spk_a"  # inputs are not mutated


def test_move_to_prompts_removes_target_audio(samples):
    recipe = FixRecipe()
    recipe.add("move_to_prompts", ids=["e"], reason="held out")
    recipe.add("set_speaker", ids=["e"], speaker="spkZ")  # later steps still apply to prompts
    result = apply_recipe(samples, recipe)
    assert [s.id for s in result.samples] == ["a", "b", "c", "d"]
    (prompt,) = result.prompts
    assert not check_sample(prompt).trainable and check_sample(samples[4]).trainable
    assert prompt.target_text() == "text of e"
    assert prompt.speaker == "spkZ"
    assert prompt.misc["removed_target_audio"] == ["/mnt/old/e.wav"]
    assert (
        "step 1 move_to_prompts e: moved to prompts (held out); removed target audio /mnt/old/e.wav"
        in result.log
    )


def test_trim_silence_writes_a_shorter_copy_and_keeps_the_source(make_wav, tmp_path):
    src = make_wav("lead.wav", sr=16_000, channels=2, data=silence_then_voice(16_000))
    ref = make_wav("ref.wav", data=silence_then_voice())
    before = src.read_bytes()
    sample = make_sample("c", str(src), reference=str(ref))
    recipe = FixRecipe()
    recipe.add("trim_silence", ids=["c"], audio="target", threshold_db=40, keep_ms=100)
    out = tmp_path / "out"
    result = apply_recipe([sample], recipe, out)
    (fixed,) = result.samples
    new = fixed.target_audio()[0]
    assert new.startswith(str(out / "trimmed")) and new.endswith(".wav")
    assert fixed.reference_audio() == [str(ref)]  # audio="target" leaves the reference alone
    assert fixed.misc["trimmed_from"] == {new: str(src)}
    old_info, new_info = sf.info(str(src)), sf.info(new)
    assert (new_info.samplerate, new_info.channels) == (16_000, 2)
    assert old_info.duration - new_info.duration == pytest.approx(0.9, abs=0.03)
    assert src.read_bytes() == before
    assert any("cut 0.9" in line for line in result.log)
    # A replay reuses the same content-derived file.
    again = apply_recipe([sample], recipe, out)
    assert again.samples == result.samples
    assert len(list((out / "trimmed").iterdir())) == 1


def test_trim_cuts_where_the_probe_finds_the_edge_silence(make_wav, tmp_path):
    sr = 44_100
    tail = np.zeros(int(0.3 * sr) + 17, np.float32)  # + 17 samples: a partial last 10 ms frame
    src = make_wav("edges.wav", sr=sr, channels=2, data=np.concatenate([silence_then_voice(sr, 0.55), tail]))
    info = probe(str(src))
    lead, trail = round(info.leading_silence * sr), round(info.trailing_silence * sr)
    assert info.leading_silence == pytest.approx(0.55, abs=0.02) and trail >= len(tail)

    new, note = trim_file(str(src), tmp_path / "out", keep_ms=0)
    source, _ = sf.read(str(src), dtype="int16")
    trimmed, rate = sf.read(new, dtype="int16")
    assert rate == sr and np.array_equal(trimmed, source[lead : len(source) - trail])
    assert f"cut {lead / sr:.2f} s at start, {trail / sr:.2f} s at end" in note


def test_trim_skips_clean_missing_and_silent_audio(make_wav, tmp_path):
    clean = make_wav("clean.wav")
    silent = make_wav("silent.wav", data=np.zeros(24_000, np.float32))
    samples = [
        make_sample("clean", str(clean)),
        make_sample("gone", str(tmp_path / "gone.wav")),
        make_sample("silent", str(silent)),
    ]
    recipe = FixRecipe()
    recipe.add("trim_silence")  # every sample, all audio
    result = apply_recipe(samples, recipe, tmp_path / "out")
    assert result.samples == samples
    assert not (tmp_path / "out" / "trimmed").exists()
    assert "unchanged" in result.log[0] and "file not found" in result.log[1] and "silent" in result.log[2]
    assert trim_file(str(clean), tmp_path / "out")[0] is None


# --- fix() on files ----------------------------------------------------------------------
def test_fix_writes_outputs_replays_identically_and_refuses_overwrite(samples, make_wav, tmp_path):
    src = make_wav("lead.wav", data=silence_then_voice())
    samples[2] = make_sample("c", str(src), speaker="spkB")
    data = tmp_path / "data.jsonl"
    write_samples(data, samples)
    recipe_path = full_recipe().save(tmp_path / "fixes.yaml")

    first = fix(data, recipe_path, tmp_path / "run1" / "fixed.jsonl")
    second = fix(data, recipe_path, tmp_path / "run2" / "fixed.jsonl", output_dir=tmp_path / "run1")
    assert first.outputs == {
        "samples": str(tmp_path / "run1" / "fixed.jsonl"),
        "prompts": str(tmp_path / "run1" / "fixed.prompts.jsonl"),
    }
    kept = list(read_samples(first.outputs["samples"]))
    assert [s.id for s in kept] == ["c", "d"]
    assert kept[0].target_audio()[0].startswith(str(tmp_path / "run1" / "trimmed"))
    assert [s.id for s in read_samples(first.outputs["prompts"])] == ["e"]
    assert (tmp_path / "run1" / "fixed.jsonl").read_bytes() == (
        tmp_path / "run2" / "fixed.jsonl"
    ).read_bytes()
    assert first.log == second.log
    json.dumps(first.to_dict())  # the report is plain JSON

    with pytest.raises(FileExistsError, match="--overwrite"):
        fix(data, recipe_path, tmp_path / "run1" / "fixed.jsonl")
    # Overwriting with a recipe that makes no prompts removes the stale prompts file.
    plain = FixRecipe()
    plain.add("drop_samples", ids=["a"])
    result = fix(data, plain, tmp_path / "run1" / "fixed.jsonl", overwrite=True)
    assert "prompts" not in result.outputs
    assert not (tmp_path / "run1" / "fixed.prompts.jsonl").exists()
    assert len(list(read_samples(tmp_path / "run1" / "fixed.jsonl"))) == 4


def test_fix_checks_the_recipe_before_touching_outputs(tmp_path, samples):
    data = tmp_path / "data.jsonl"
    write_samples(data, samples)
    (tmp_path / "bad.yaml").write_text("- op: drop_samples\n- op: nope\n", encoding="utf-8")
    with pytest.raises(RecipeError, match=r"2 problems") as info:
        fix(data, tmp_path / "bad.yaml", tmp_path / "out.jsonl")
    assert "step 1 (drop_samples): missing required argument 'ids'" in str(info.value)
    assert "step 2 (nope): unknown op" in str(info.value)
    assert not (tmp_path / "out.jsonl").exists()
