"""Source formats: detection, each format's variants, and what the canonical sample looks like."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import read_jsonl, write_jsonl
from original_records import voice_cloning_record

from workbench.data import formats
from workbench.data.contract import PROMPT, check_sample
from workbench.data.convert import convert
from workbench.data.formats.base import ConvertContext, RecordError
from workbench.data.formats.sharegpt import DEFAULT_MAP, parse_map
from workbench.data.sample import DEFAULT_SYSTEM_PROMPT, Audio, Message, Sample

SYS = DEFAULT_SYSTEM_PROMPT


def ctx_for(tmp_path: Path, **kw) -> ConvertContext:
    return ConvertContext(
        source_file=str(tmp_path / "src.jsonl"), source_index=0, base_dir=str(tmp_path), **kw
    )


def to_convert(name: str, record: dict, tmp_path: Path, **kw) -> Sample:
    return formats.FORMATS[name].convert(record, ctx_for(tmp_path, **kw))


def layout(sample: Sample) -> list[tuple[str, str]]:
    """Messages as (role, text-or-audio-basename) for compact assertions."""
    return [(m.role, Path(m.audio_url).name if m.is_audio else m.text) for m in sample.messages]


def run(tmp_path: Path, records: list, name: str = "in.jsonl", **kw):
    """Convert ``records`` (written as JSONL) and return (report, trainable, prompts, rejected)."""
    src = write_jsonl(tmp_path / name, records)
    out = tmp_path / "out" / "data.jsonl"
    report = convert(src, out, overwrite=True, **kw)
    return (
        report,
        read_jsonl(out),
        read_jsonl(out.with_name("data.prompts.jsonl")),
        read_jsonl(out.with_name("data.rejected.jsonl")),
    )


def audio_urls(d: dict) -> list[str]:
    return [m["content"]["audio_url"] for m in d["messages"] if isinstance(m["content"], dict)]


# --- detection --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("record", "expected"),
    [
        ({"audio_filepath": "a.wav", "text": "t"}, "manifest"),
        ({"reference_audio": "r.wav", "reference_text": "r", "target_text": "t"}, "paired"),
        ({"conversations": [{"from": "human", "value": "x"}], "audio": "a.wav"}, "sharegpt"),
        ({"messages": [{"role": "user", "content": "<audio>x"}], "audios": ["a.wav"]}, "sharegpt"),
        (
            {"messages": [{"role": "user", "content": [{"type": "text", "text": "x"}]}], "audios": ["a.wav"]},
            "chatml",
        ),
        ({"audio_file": "a.wav", "transcript_file": "a.txt"}, "higgs-trainer"),
        ({"file_name": "a.wav", "transcription": "t"}, "audiofolder"),
        ({"audio": {"path": "a.wav"}, "sentence": "t"}, "audiofolder"),
        ({"path": "a.wav", "text": "t", "speaker": "s"}, "audiofolder"),
        ({"file_name": "a.wav"}, None),  # no transcript column: not a TTS table
        (
            {
                "messages": [
                    {"role": "user", "content": "t"},
                    {"role": "assistant", "content": {"type": "audio", "audio_url": "a"}},
                ]
            },
            "chatml",
        ),
        (
            {"messages": [{"role": "user", "content": ["r", {"type": "audio", "audio_url": "r.wav"}, "t"]}]},
            "mixed",
        ),
        ({"id": "LJ001", "text": "t"}, None),
        ({}, None),
    ],
)
def test_detect(record, expected):
    assert formats.detect(record) == expected


def test_multi_turn_chatml_with_user_audio_is_not_mixed():
    record = {
        "messages": [
            {"role": "user", "content": ["t1", {"type": "audio", "audio_url": "a1.wav"}]},
            {"role": "user", "content": ["t2", {"type": "audio", "audio_url": "a2.wav"}]},
            {"role": "user", "content": "t3"},
            {"role": "assistant", "content": {"type": "audio", "audio_url": "a3.wav"}},
        ]
    }
    assert formats.detect(record) == "chatml"


def test_mixed_shape_with_explicit_start_index_is_mixed_and_a_prompt(tmp_path):
    """A user turn [reference text, reference audio, target text] with a start_index and no assistant
    turn is an evaluation prompt: its only audio is the reference, whatever start_index says."""
    record = {
        "start_index": 1,
        "messages": [
            {"role": "system", "content": SYS},
            {"role": "user", "content": ["r", {"type": "audio", "audio_url": "r.wav"}, "t"]},
        ],
    }
    assert formats.detect(record) == "mixed"
    assert formats.FORMATS["mixed"].layout(record) == "mixed+start_index"
    s = to_convert("mixed", record, tmp_path)
    assert layout(s) == [("system", SYS), ("user", "r"), ("assistant", "r.wav"), ("user", "t")]
    assert s.start_index == 3 and s.target_audio() == [] and not check_sample(s).trainable


# --- chatml --------------------------------------------------------------------------------
def test_chatml_string_content_and_single_audio_object(tmp_path):
    record = {
        "id": "c1",
        "speaker": "spk",
        "start_index": 3,
        "messages": [
            {"role": "system", "content": "Custom system."},
            {"role": "user", "content": "ref text"},
            {"role": "assistant", "content": {"type": "audio", "audio_url": "ref.wav"}},
            {"role": "user", "content": "target text"},
            {"role": "assistant", "content": {"type": "audio", "audio_url": "sub/tgt.wav"}},
        ],
    }
    s = to_convert("chatml", record, tmp_path)
    assert layout(s) == [
        ("system", "Custom system."),
        ("user", "ref text"),
        ("assistant", "ref.wav"),
        ("user", "target text"),
        ("assistant", "tgt.wav"),
    ]
    assert s.id == "c1" and s.speaker == "spk" and s.start_index == 3
    assert s.target_audio() == [str(tmp_path / "sub" / "tgt.wav")]
    assert s.reference_audio() == [str(tmp_path / "ref.wav")]
    assert s.misc["source_format"] == "chatml"
    assert s.misc["source_file"] == str(tmp_path / "src.jsonl") and s.misc["source_index"] == 0


@pytest.mark.parametrize("key", ["audio_url", "url", "path"])
def test_chatml_list_of_parts_and_audio_keys(tmp_path, key):
    record = {
        "messages": [
            {"role": "system", "content": [{"type": "text", "text": "S."}]},
            {"role": "user", "content": [{"type": "text", "text": "hello"}]},
            {"role": "assistant", "content": [{"type": "audio", key: "/abs/a.wav"}]},
        ]
    }
    s = to_convert("chatml", record, tmp_path)
    assert s.messages[-1] == Message("assistant", Audio("/abs/a.wav"))
    assert s.start_index == 1  # inferred: the user text before the last assistant audio
    assert s.target_audio() == ["/abs/a.wav"]
    assert s.target_text() == "hello"


def test_chatml_default_system_prompt_added_and_start_index_shifted(tmp_path):
    record = {
        "start_index": 2,
        "messages": [
            {"role": "user", "content": "r"},
            {"role": "assistant", "content": {"type": "audio", "audio_url": "r.wav"}},
            {"role": "user", "content": "t"},
            {"role": "assistant", "content": {"type": "audio", "audio_url": "t.wav"}},
        ],
    }
    s = to_convert("chatml", record, tmp_path)
    assert s.messages[0] == Message("system", SYS)
    assert s.start_index == 3
    assert s.messages[s.start_index] == Message("user", "t")
    assert [Path(p).name for p in s.target_audio()] == ["t.wav"]


def test_chatml_user_audio_moved_after_its_transcript_and_start_index_remapped(tmp_path):
    record = {
        "start_index": 2,
        "messages": [
            {"role": "system", "content": "S."},
            {"role": "user", "content": ["ref text", {"type": "audio", "audio_url": "ref.wav"}]},
            {"role": "user", "content": "target"},
            {"role": "assistant", "content": {"type": "audio", "audio_url": "t.wav"}},
        ],
    }
    s = to_convert("chatml", record, tmp_path)
    assert layout(s) == [
        ("system", "S."),
        ("user", "ref text"),
        ("assistant", "ref.wav"),
        ("user", "target"),
        ("assistant", "t.wav"),
    ]
    assert s.start_index == 3  # original message 2 now starts at index 3
    assert all(m.role == "assistant" for m in s.messages if m.is_audio)
    assert [Path(p).name for p in s.reference_audio()] == ["ref.wav"]
    assert [Path(p).name for p in s.target_audio()] == ["t.wav"]


def test_chatml_multi_turn_keeps_every_audio(tmp_path):
    record = {
        "messages": [
            {"role": "user", "content": ["t1", {"type": "audio", "audio_url": "a1.wav"}]},
            {"role": "user", "content": ["t2", {"type": "audio", "audio_url": "a2.wav"}]},
            {"role": "user", "content": "t3"},
            {"role": "assistant", "content": {"type": "audio", "audio_url": "a3.wav"}},
        ]
    }
    s = to_convert("chatml", record, tmp_path)
    assert [Path(p).name for p in s.reference_audio()] == ["a1.wav", "a2.wav"]
    assert [Path(p).name for p in s.target_audio()] == ["a3.wav"]
    assert s.target_text() == "t3"


def test_chatml_empty_audio_url_is_absent_and_role_aliases(tmp_path):
    record = {
        "messages": [
            {"role": "human", "content": "only text"},
            {"role": "gpt", "content": {"type": "audio", "audio_url": ""}},
        ]
    }
    s = to_convert("chatml", record, tmp_path)
    assert layout(s) == [("system", SYS), ("user", "only text")]
    assert not check_sample(s).trainable


@pytest.mark.parametrize("given", [5, -1, "3", True])
def test_chatml_bad_start_index_is_rejected(tmp_path, given):
    record = {"start_index": given, "messages": [{"role": "user", "content": "t"}]}
    with pytest.raises(RecordError) as info:
        to_convert("chatml", record, tmp_path)
    assert info.value.code == "BAD_START_INDEX"


def test_chatml_bad_role_is_bad_field(tmp_path):
    with pytest.raises(RecordError) as info:
        to_convert("chatml", {"messages": [{"role": "narrator", "content": "x"}]}, tmp_path)
    assert info.value.code == "BAD_FIELD" and "messages[0].role" in info.value.message


def test_chatml_keeps_source_misc_under_provenance(tmp_path):
    record = {"misc": {"duration": 2.0, "source_index": 99}, "messages": [{"role": "user", "content": "t"}]}
    s = to_convert("chatml", record, tmp_path)
    assert s.misc["duration"] == 2.0
    assert s.misc["source_index"] == 0  # provenance is ours, not the record's


# --- manifest ----------------------------------------------------------------------------------
def _manifest_records(make_wav, speaker="spk", n=4, prefix="m"):
    out = []
    for i in range(n):
        make_wav(f"wavs/{prefix}{i}.wav", seconds=0.6)
        out.append(
            {
                "audio_filepath": f"wavs/{prefix}{i}.wav",
                "text": f"text {prefix}{i}",
                "speaker": speaker,
                "id": f"{prefix}{i}",
            }
        )
    return out


def test_manifest_same_speaker_reference_never_the_target(tmp_path, make_wav):
    records = _manifest_records(make_wav, n=4)
    report, train, prompts, rejected = run(tmp_path, records)
    assert (report.converted, report.prompts, report.rejected) == (4, 0, 0)
    assert report.formats == {"manifest": 4}
    for d in train:
        refs = audio_urls(d)[:-1]
        target = audio_urls(d)[-1]
        assert len(refs) == 1
        assert refs[0] != target
        assert Path(target).name == f"{d['id']}.wav"
        assert d["start_index"] == 3
        assert d["messages"][3]["content"] == f"text {d['id']}"
        ref_name = Path(refs[0]).stem
        assert d["messages"][1]["content"] == f"text {ref_name}"  # the reference's own transcript
        assert d["misc"]["reference_id"] == ref_name
        assert d["speaker"] == "spk"


def test_manifest_reference_choice_is_deterministic(tmp_path, make_wav):
    records = _manifest_records(make_wav, n=6)
    _, first, _, _ = run(tmp_path, records)
    _, second, _, _ = run(tmp_path, records)
    assert [audio_urls(d) for d in first] == [audio_urls(d) for d in second]


def test_manifest_reference_stays_within_speaker(tmp_path, make_wav):
    records = _manifest_records(make_wav, "a", 3, "a") + _manifest_records(make_wav, "b", 3, "b")
    _, train, _, _ = run(tmp_path, records)
    for d in train:
        ref = Path(audio_urls(d)[0]).name
        assert ref[0] == d["speaker"], (d["id"], ref)


def test_manifest_single_utterance_or_no_speaker_is_plain_tts(tmp_path, make_wav):
    make_wav("solo.wav")
    make_wav("anon1.wav")
    make_wav("anon2.wav")
    records = [
        {"audio_filepath": "solo.wav", "text": "alone", "speaker_id": 7},
        {"audio_filepath": "anon1.wav", "text": "one"},
        {"audio_filepath": "anon2.wav", "text": "two"},
    ]
    _, train, _, _ = run(tmp_path, records)
    assert len(train) == 3
    for d in train:
        assert len(d["messages"]) == 3
        assert d["start_index"] == 1
        assert [m["role"] for m in d["messages"]] == ["system", "user", "assistant"]
    assert train[0]["speaker"] == "7"
    assert train[1]["speaker"] is None


def test_manifest_reference_none(tmp_path, make_wav):
    _, train, _, _ = run(tmp_path, _manifest_records(make_wav, n=3), reference="none")
    assert [len(audio_urls(d)) for d in train] == [1, 1, 1]
    assert all("reference_id" not in d["misc"] for d in train)


def test_manifest_never_uses_missing_audio_as_reference(tmp_path, make_wav):
    records = _manifest_records(make_wav, n=2)
    records.append({"audio_filepath": "wavs/gone.wav", "text": "gone", "speaker": "spk", "id": "gone"})
    report, train, _, rejected = run(tmp_path, records)
    assert report.rejected == 1 and rejected[0]["record"]["id"] == "gone"
    assert all("gone.wav" not in u for d in train for u in audio_urls(d))


def test_manifest_reference_length_bounds_and_preference(tmp_path, make_wav):
    """References are 0.5-30 s (a 40 s one would cost 1,000 tokens in every sample); 2-15 s ones come first."""
    lengths = {"tiny": 0.3, "short": 1.0, "good": 5.0, "long": 40.0, "target": 3.0}
    records = []
    for name, seconds in lengths.items():
        make_wav(f"wavs/{name}.wav", seconds=seconds)
        records.append({"audio_filepath": f"wavs/{name}.wav", "text": name, "speaker": "spk", "id": name})
    _, train, _, _ = run(tmp_path, records)
    refs = {d["id"]: Path(audio_urls(d)[0]).stem for d in train if len(audio_urls(d)) == 2}
    assert refs == {"tiny": "good", "short": "good", "long": "good", "target": "good", "good": "target"}


def test_manifest_duration_kept_and_bad_duration_rejected(tmp_path):
    s = to_convert("manifest", {"audio_filepath": "a.wav", "text": "t", "duration": "1.5"}, tmp_path)
    assert s.misc["duration"] == 1.5
    with pytest.raises(RecordError) as info:
        to_convert("manifest", {"audio_filepath": "a.wav", "text": "t", "duration": "long"}, tmp_path)
    assert info.value.code == "BAD_FIELD" and info.value.field == "duration"


def test_manifest_missing_text_is_bad_field(tmp_path):
    with pytest.raises(RecordError) as info:
        to_convert("manifest", {"audio_filepath": "a.wav"}, tmp_path)
    assert info.value.code == "BAD_FIELD" and info.value.field == "text"


# --- paired -------------------------------------------------------------------------------------
def test_paired_with_target_audio_is_trainable(tmp_path):
    record = {
        "id": "p1",
        "reference_audio": "r.wav",
        "reference_text": "ref",
        "target_text": "tgt",
        "target_audio": "t.wav",
    }
    s = to_convert("paired", record, tmp_path)
    assert layout(s) == [
        ("system", SYS),
        ("user", "ref"),
        ("assistant", "r.wav"),
        ("user", "tgt"),
        ("assistant", "t.wav"),
    ]
    assert s.start_index == 3 and check_sample(s).trainable and s.id == "p1"
    assert s.misc["source_format"] == "paired"


@pytest.mark.parametrize("target", [None, ""])
def test_paired_without_target_audio_is_prompt(tmp_path, target):
    record = {"reference_audio": "r.wav", "reference_text": "ref", "target_text": "tgt"}
    if target is not None:
        record["target_audio"] = target
    s = to_convert("paired", record, tmp_path)
    assert layout(s) == [("system", SYS), ("user", "ref"), ("assistant", "r.wav"), ("user", "tgt")]
    assert not check_sample(s).trainable and s.target_text() == "tgt"
    assert s.id == "src-000000"


def test_paired_missing_reference_text_is_bad_field(tmp_path):
    with pytest.raises(RecordError) as info:
        to_convert("paired", {"reference_audio": "r.wav", "target_text": "t"}, tmp_path)
    assert info.value.field == "reference_text"


# --- sharegpt --------------------------------------------------------------------------------
def _sharegpt(**extra):
    return {
        "conversations": [
            {"from": "human", "value": "<audio>reference words"},
            {"from": "gpt", "value": "target words <audio>"},
        ],
        **extra,
    }


def test_sharegpt_default_mapping_is_a_prompt(tmp_path):
    s = to_convert("sharegpt", _sharegpt(audio="ref.wav"), tmp_path, sharegpt_map=dict(DEFAULT_MAP))
    assert layout(s) == [
        ("system", SYS),
        ("user", "reference words"),
        ("assistant", "ref.wav"),
        ("user", "target words"),
    ]
    assert not check_sample(s).trainable


def test_sharegpt_two_audios_second_is_target(tmp_path):
    s = to_convert("sharegpt", _sharegpt(audios=["ref.wav", "tgt.wav"]), tmp_path)
    assert layout(s) == [
        ("system", SYS),
        ("user", "reference words"),
        ("assistant", "ref.wav"),
        ("user", "target words"),
        ("assistant", "tgt.wav"),
    ]
    assert check_sample(s).trainable and s.start_index == 3


def test_sharegpt_audio_markers_stripped(tmp_path):
    record = {
        "conversations": [
            {"from": "user", "value": "<AUDIO> a <|audio|>b"},
            {"from": "assistant", "value": "c"},
        ],
        "audio": "r.wav",
    }
    s = to_convert("sharegpt", record, tmp_path)
    assert s.messages[1].text == "a b"
    assert s.messages[3].text == "c"


def test_sharegpt_map_override(tmp_path):
    mapping = parse_map(["human=target_text", "gpt=ignore", "audio0=target_audio"])
    s = to_convert("sharegpt", _sharegpt(audio="t.wav"), tmp_path, sharegpt_map=mapping)
    assert layout(s) == [("system", SYS), ("user", "reference words"), ("assistant", "t.wav")]
    assert check_sample(s).trainable and s.target_text() == "reference words"


def test_sharegpt_map_through_convert(tmp_path, make_wav):
    make_wav("t.wav")
    report, train, prompts, _ = run(
        tmp_path, [_sharegpt(audio="t.wav")], sharegpt_map=["human=ignore", "audio0=target_audio"]
    )
    assert (report.converted, report.prompts) == (1, 0)
    assert [m["role"] for m in train[0]["messages"]] == ["system", "user", "assistant"]
    assert train[0]["messages"][1]["content"] == "target words"


@pytest.mark.parametrize(
    ("items", "needle"),
    [
        (["speaker=target_text"], "unknown slot 'speaker'"),
        (["human=target"], "unknown role 'target'"),
        (["human"], "unknown role ''"),
    ],
)
def test_sharegpt_bad_map_rejected(items, needle):
    with pytest.raises(ValueError) as info:
        parse_map(items)
    assert needle in str(info.value)
    assert "expected one of" in str(info.value)


def test_sharegpt_bad_map_rejected_by_convert_before_writing(tmp_path):
    src = write_jsonl(tmp_path / "in.jsonl", [_sharegpt(audio="x.wav")])
    out = tmp_path / "out" / "o.jsonl"
    with pytest.raises(ValueError, match="unknown slot 'voice'"):
        convert(src, out, sharegpt_map=["voice=target_audio"])
    assert not out.exists()


def test_sharegpt_reference_audio_without_transcript_is_bad_field(tmp_path):
    mapping = parse_map(["human=ignore"])
    with pytest.raises(RecordError) as info:
        to_convert("sharegpt", _sharegpt(audio="r.wav"), tmp_path, sharegpt_map=mapping)
    assert info.value.code == "BAD_FIELD"


# --- mixed --------------------------------------------------------------------------------------
INSTRUCTION = "Please generate speech for given text in reference audio's voice: "


def _mixed(assistant=None, misc=None, target="the target"):
    messages = [
        {
            "role": "user",
            "content": ["ref words", {"type": "audio", "audio_url": "ref.wav"}, INSTRUCTION + target],
        }
    ]
    if assistant is not None:
        messages.append({"role": "assistant", "content": assistant})
    record = {"id": "mx", "messages": messages}
    if misc is not None:
        record["misc"] = misc
    return record


def test_mixed_assistant_text_wins_over_instruction_prefixed_user_text(tmp_path):
    record = _mixed([{"type": "text", "text": "the target"}, {"type": "audio", "audio_url": "t.wav"}])
    assert formats.detect(record) == "mixed"
    s = to_convert("mixed", record, tmp_path)
    assert layout(s) == [
        ("system", SYS),
        ("user", "ref words"),
        ("assistant", "ref.wav"),
        ("user", "the target"),
        ("assistant", "t.wav"),
    ]
    assert s.start_index == 3 and check_sample(s).trainable
    assert s.misc["instruction"] == INSTRUCTION.strip()
    assert s.misc["original_texts"] == [{"message": 3, "text": INSTRUCTION + "the target"}]


def test_mixed_misc_transcript_wins(tmp_path):
    record = _mixed({"type": "audio", "audio_url": "t.wav"}, misc={"target_text": "From misc."})
    s = to_convert("mixed", record, tmp_path)
    assert s.target_text() == "From misc."
    assert s.misc["target_text"] == "From misc."  # the source misc is kept


def test_mixed_without_transcript_elsewhere_uses_user_text_without_its_instruction(tmp_path):
    s = to_convert("mixed", _mixed({"type": "audio", "audio_url": "t.wav"}), tmp_path)
    assert s.target_text() == "the target"
    assert s.misc["original_texts"] == [{"message": 3, "text": INSTRUCTION + "the target"}]


@pytest.mark.parametrize(
    "assistant",
    [
        {"type": "audio", "audio_url": ""},
        [{"type": "text", "text": "the target"}, {"type": "audio", "audio_url": ""}],
        None,
    ],
)
def test_mixed_empty_assistant_audio_is_absent_prompt(tmp_path, assistant):
    s = to_convert("mixed", _mixed(assistant), tmp_path)
    assert not check_sample(s).trainable
    assert s.reference_audio() == [str(tmp_path / "ref.wav")]
    assert s.messages[-1].role == "user"


def test_mixed_several_user_audios_are_all_references(tmp_path):
    record = {
        "messages": [
            {
                "role": "user",
                "content": [
                    "r1",
                    {"type": "audio", "audio_url": "r1.wav"},
                    "r2",
                    {"type": "audio", "audio_url": "r2.wav"},
                    "tgt",
                ],
            },
            {"role": "assistant", "content": {"type": "audio", "audio_url": "t.wav"}},
        ]
    }
    s = to_convert("mixed", record, tmp_path)
    assert layout(s) == [
        ("system", SYS),
        ("user", "r1"),
        ("assistant", "r1.wav"),
        ("user", "r2"),
        ("assistant", "r2.wav"),
        ("user", "tgt"),
        ("assistant", "t.wav"),
    ]
    assert s.start_index == 5


def test_mixed_two_assistant_audios_rejected_not_dropped(tmp_path):
    record = _mixed([{"type": "audio", "audio_url": "a.wav"}, {"type": "audio", "audio_url": "b.wav"}])
    with pytest.raises(RecordError) as info:
        to_convert("mixed", record, tmp_path)
    assert info.value.code == "BAD_FIELD" and "2 audio parts" in info.value.message


def test_mixed_through_convert_counts_format(tmp_path, make_wav):
    make_wav("ref.wav")
    make_wav("t.wav")
    records = [_mixed({"type": "audio", "audio_url": "t.wav"}), _mixed({"type": "audio", "audio_url": ""})]
    report, train, prompts, _ = run(tmp_path, records)
    assert report.formats == {"mixed": 2}
    assert (len(train), len(prompts)) == (1, 1)


@pytest.mark.parametrize("key", ["target_text", "target_transcript"])
def test_voice_cloning_record_speaks_misc_target_text_after_its_reference(tmp_path, key):
    record = voice_cloning_record(**{key: "Say this, please."})
    s = to_convert(formats.detect(record), record, tmp_path)
    assert layout(s) == [
        ("system", "Generate audio following instruction."),
        ("user", "ref words"),
        ("assistant", "ref.wav"),
        ("user", "Say this, please."),
    ]
    assert s.start_index == 3 and check_sample(s).kind == PROMPT
    assert s.misc[key] == "Say this, please."  # the source misc is kept


def test_voice_cloning_record_without_text_to_speak_is_still_rejected(tmp_path):
    with pytest.raises(RecordError) as info:
        to_convert("mixed", voice_cloning_record(ref_transcript="ref words"), tmp_path)
    assert info.value.code == "BAD_STRUCTURE" and "misc.target_text" in info.value.hint


# --- ljspeech ------------------------------------------------------------------------------------
def test_ljspeech_folder_uses_normalized_text_and_wavs(tmp_path, make_wav):
    lj = tmp_path / "LJSpeech"
    lj.mkdir()
    make_wav("LJSpeech/wavs/LJ001-0001.wav")
    make_wav("LJSpeech/wavs/LJ001-0002.wav")
    (lj / "metadata.csv").write_text(
        "LJ001-0001|Printing, in 1455.|Printing, in fourteen fifty-five.\nLJ001-0002|Only text\n",
        encoding="utf-8",
    )
    out = tmp_path / "out.jsonl"
    report = convert(lj, out)
    assert report.formats == {"ljspeech": 2} and report.converted == 2
    train = read_jsonl(out)
    assert train[0]["id"] == "LJ001-0001"
    assert train[0]["speaker"] == "LJSpeech"
    texts = {d["id"]: d["messages"][d["start_index"]]["content"] for d in train}
    assert texts == {"LJ001-0001": "Printing, in fourteen fifty-five.", "LJ001-0002": "Only text"}
    assert audio_urls(train[0])[-1] == str(lj / "wavs" / "LJ001-0001.wav")
    assert audio_urls(train[0])[0] == str(lj / "wavs" / "LJ001-0002.wav")  # same-speaker reference


def test_ljspeech_forced_on_json_records(tmp_path, make_wav):
    make_wav("wavs/X1.wav")
    report, train, _, _ = run(
        tmp_path, [{"id": "X1", "text": "raw", "normalized_text": "norm"}], format="ljspeech"
    )
    assert report.formats == {"ljspeech": 1}
    assert train[0]["messages"][train[0]["start_index"]]["content"] == "norm"


# --- higgs-trainer -----------------------------------------------------------------------------
def _trainer_folder(tmp_path, make_wav, entries_extra=()):
    folder = tmp_path / "trainer"
    entries = []
    for i in range(3):
        make_wav(f"trainer/clip{i}.wav")
        (folder / f"clip{i}.txt").write_text(f"\ufeffTranscript {i}.\n", encoding="utf-8")
        entries.append(
            {
                "audio_file": f"clip{i}.wav",
                "transcript_file": f"clip{i}.txt",
                "audio_id": f"c{i}",
                "speaker": "s",
            }
        )
    entries.extend(entries_extra)
    (folder / "metadata.json").write_text(
        json.dumps({"dataset_info": {"n": len(entries)}, "samples": entries}), encoding="utf-8"
    )
    return folder


def test_higgs_trainer_folder_reads_txt_transcripts(tmp_path, make_wav):
    folder = _trainer_folder(tmp_path, make_wav)
    out = tmp_path / "out.jsonl"
    report = convert(folder, out)
    assert report.formats == {"higgs-trainer": 3} and report.converted == 3 and report.rejected == 0
    train = {d["id"]: d for d in read_jsonl(out)}
    assert set(train) == {"c0", "c1", "c2"}
    d = train["c1"]
    assert d["messages"][d["start_index"]]["content"] == "Transcript 1."
    assert audio_urls(d)[-1] == str(folder / "clip1.wav")
    assert len(audio_urls(d)) == 2  # a same-speaker reference
    assert audio_urls(d)[0] != audio_urls(d)[-1]


def test_higgs_trainer_missing_transcript_file_rejected(tmp_path, make_wav):
    make_wav("trainer/clip9.wav")
    extra = [{"audio_file": "clip9.wav", "transcript_file": "clip9.txt", "audio_id": "c9"}]
    folder = _trainer_folder(tmp_path, make_wav, extra)
    out = tmp_path / "out.jsonl"
    report = convert(folder, out)
    assert (report.converted, report.rejected) == (3, 1)
    rejected = read_jsonl(tmp_path / "out.rejected.jsonl")
    assert rejected[0]["record"] == extra[0]
    reason = rejected[0]["reasons"][0]
    assert reason["code"] == "BAD_FIELD"
    assert str(folder / "clip9.txt") in reason["message"]
    assert reason["field"] == "transcript_file"


def test_higgs_trainer_inline_transcript(tmp_path):
    s = to_convert("higgs-trainer", {"audio_file": "a.wav", "transcript": " inline "}, tmp_path)
    assert s.target_text() == "inline"


# --- audiofolder (folder + metadata table) ---------------------------------------------------------
def test_audiofolder_folder_with_metadata_csv(tmp_path, make_wav):
    """The Hugging Face AudioFolder layout: file_name + transcription columns, paths relative to the table."""
    folder = tmp_path / "voices"
    for i in range(3):
        make_wav(f"voices/clips/{i:04d}.wav", f0=140 + 20 * i)
    (folder / "metadata.csv").write_text(
        "file_name,transcription,speaker_id\n"
        "clips/0000.wav,First line.,anna\n"
        'clips/0001.wav,"Second, with a comma.",anna\n'
        "clips/0002.wav,Third line.,ben\n"
        "clips/0003.wav,No such file.,ben\n"
        "clips/0002.wav,,ben\n",
        encoding="utf-8",
    )
    out = tmp_path / "out.jsonl"
    report = convert(folder, out)
    assert report.formats == {"audiofolder": 5}
    assert (report.converted, report.rejected) == (3, 2)
    train = {d["id"]: d for d in read_jsonl(out)}
    assert set(train) == {"clips/0000", "clips/0001", "clips/0002"}
    d = train["clips/0001"]
    assert d["messages"][d["start_index"]]["content"] == "Second, with a comma."
    assert d["speaker"] == "anna"
    assert audio_urls(d) == [
        str(folder / "clips/0000.wav"),
        str(folder / "clips/0001.wav"),
    ]  # reference, target
    assert audio_urls(train["clips/0002"]) == [str(folder / "clips/0002.wav")]  # ben has one usable clip
    rejected = read_jsonl(tmp_path / "out.rejected.jsonl")
    reasons = {r["record"]["transcription"] or "": r["reasons"][0] for r in rejected}
    assert reasons["No such file."]["code"] == "AUDIO_NOT_FOUND"
    assert reasons[""]["code"] == "BAD_FIELD" and "transcript" in reasons[""]["message"]
    assert reasons[""]["field"] == "transcription"
    assert all(r["source_file"] == str(folder / "metadata.csv") for r in rejected)


def test_audiofolder_jsonl_with_datasets_audio_dicts(tmp_path, make_wav):
    make_wav("a.wav")
    records = [
        {
            "audio": {"path": "a.wav", "sampling_rate": 24000},
            "text": "raw 1",
            "normalized_text": "one",
            "id": "u1",
        },
        {"audio": "a.wav", "sentence": "Plain path."},
    ]
    report, train, _, rejected = run(tmp_path, records)
    assert report.formats == {"audiofolder": 2} and not rejected
    by_id = {d["id"]: d for d in train}
    assert by_id["u1"]["messages"][by_id["u1"]["start_index"]]["content"] == "one"  # the spoken form wins
    assert audio_urls(by_id["a"]) == [str(tmp_path / "a.wav")]  # no id: named after the audio path


def test_folder_of_clips_with_sidecar_transcripts(tmp_path, make_wav):
    """LibriTTS-like folders: speaker/chapter/clip.wav + clip.normalized.txt (or .txt/.lab); nothing dropped."""
    root = tmp_path / "corpus"
    for speaker in ("anna", "ben"):
        for i in range(2):
            make_wav(f"corpus/{speaker}/ch1/{speaker}_{i}.wav", f0=140 if speaker == "anna" else 220)
            (root / speaker / "ch1" / f"{speaker}_{i}.original.txt").write_text("Original, NOT this.")
            (root / speaker / "ch1" / f"{speaker}_{i}.normalized.txt").write_text(
                f"\ufeff {speaker} says {i}.\n"
            )
    make_wav("corpus/ben/ch1/ben_lab.wav")
    (root / "ben" / "ch1" / "ben_lab.lab").write_text("From a lab file.")
    make_wav("corpus/ben/ch1/orphan.wav")  # no transcript: rejected with the files looked for
    make_wav("corpus/.hidden/x.wav")  # hidden folders are skipped
    (root / "README.md").write_text("not a clip")
    (root / "ben" / "ch1" / "latin1.wav").write_bytes((root / "ben" / "ch1" / "ben_0.wav").read_bytes())
    (root / "ben" / "ch1" / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))

    out = tmp_path / "out.jsonl"
    report = convert(root, out)
    assert report.formats == {"audiofolder": 6}  # the unreadable transcript is a BAD_RECORD, before detection
    assert (report.converted, report.rejected) == (5, 2)
    train = {d["id"]: d for d in read_jsonl(out)}
    assert set(train) == {
        "anna/ch1/anna_0",
        "anna/ch1/anna_1",
        "ben/ch1/ben_0",
        "ben/ch1/ben_1",
        "ben/ch1/ben_lab",
    }
    anna = train["anna/ch1/anna_1"]
    assert anna["speaker"] == "anna"
    assert (
        anna["messages"][anna["start_index"]]["content"] == "anna says 1."
    )  # normalized wins, whitespace tidied
    assert audio_urls(anna) == [str(root / "anna/ch1/anna_0.wav"), str(root / "anna/ch1/anna_1.wav")]
    assert train["ben/ch1/ben_lab"]["messages"][1:][-2]["content"] == "From a lab file."
    assert train["anna/ch1/anna_0"]["misc"]["source_file"] == str(root / "anna/ch1/anna_0.normalized.txt")
    rejected = {Path(r["record"]["file_name"]).stem: r for r in read_jsonl(tmp_path / "out.rejected.jsonl")}
    assert set(rejected) == {"orphan", "latin1"}
    assert rejected["orphan"]["reasons"][0]["code"] == "BAD_FIELD"
    assert "orphan.normalized.txt, orphan.txt, orphan.lab" in rejected["orphan"]["reasons"][0]["message"]
    assert rejected["latin1"]["reasons"][0]["code"] == "BAD_RECORD"
    assert "latin1.txt is not UTF-8" in rejected["latin1"]["reasons"][0]["message"]

    from workbench.notebook.steps import examples_by_format

    [(fmt, original, sample)] = examples_by_format(out)  # notebook 02's "original beside canonical"
    assert fmt == "audiofolder" and sample.id == "anna/ch1/anna_0"
    assert original == {
        "transcript_file": str(root / "anna/ch1/anna_0.normalized.txt"),
        "text": " anna says 0.\n",
    }


def test_flat_folder_of_clips_has_no_speaker(tmp_path, make_wav):
    for name in ("a", "b"):
        make_wav(f"flat/{name}.wav")
        (tmp_path / "flat" / f"{name}.txt").write_text(f"Clip {name}.")
    report, train = convert(tmp_path / "flat", tmp_path / "out.jsonl"), read_jsonl(tmp_path / "out.jsonl")
    assert report.converted == 2
    assert all(
        d["speaker"] is None and len(audio_urls(d)) == 1 for d in train
    )  # never another voice as reference


def test_folder_with_several_metadata_files_is_an_error(tmp_path):
    from workbench.data.readers import InputError

    folder = tmp_path / "ds"
    folder.mkdir()
    (folder / "metadata.csv").write_text("file_name,text\na.wav,a\n")
    (folder / "metadata.jsonl").write_text('{"file_name": "a.wav", "text": "a"}\n')
    with pytest.raises(InputError, match=r"several metadata files \(metadata.jsonl, metadata.csv\)"):
        convert(folder, tmp_path / "out.jsonl")
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no audio here")
    with pytest.raises(InputError, match="holds none of metadata.json, metadata.jsonl.*and no audio files"):
        convert(empty, tmp_path / "out2.jsonl")


# --- forced format -----------------------------------------------------------------------------
def test_forced_format_applies_to_every_record(tmp_path, make_wav):
    make_wav("a.wav")
    make_wav("r.wav")
    records = [
        {"audio_filepath": "a.wav", "text": "manifest one"},
        {"reference_audio": "r.wav", "reference_text": "r", "target_text": "t", "target_audio": "a.wav"},
    ]
    report, train, _, rejected = run(tmp_path, records, format="manifest")
    assert report.formats == {"manifest": 2}
    assert (report.converted, report.rejected) == (1, 1)
    assert rejected[0]["detected_format"] == "manifest"
    assert rejected[0]["reasons"][0]["code"] == "BAD_FIELD"
    assert "audio_filepath" in rejected[0]["reasons"][0]["message"]

    report, train, _, _ = run(tmp_path, records)
    assert report.formats == {"manifest": 1, "paired": 1}


def test_auto_unknown_record_is_rejected_with_unknown_format(tmp_path):
    report, _, _, rejected = run(tmp_path, [{"foo": 1, "bar": 2}])
    assert report.rejected == 1 and report.formats == {}
    assert rejected[0]["reasons"][0]["code"] == "UNKNOWN_FORMAT"
    assert "bar, foo" in rejected[0]["reasons"][0]["message"]


def test_sharegpt_explicit_map_wins_over_default_slot_with_same_role(tmp_path):
    mapping = parse_map(["human=target_text", "audio0=target_audio"])
    assert mapping == {"human": "target_text", "gpt": "ignore", "audio0": "target_audio", "audio1": "ignore"}
    s = to_convert("sharegpt", _sharegpt(audios=["t.wav", "other.wav"]), tmp_path, sharegpt_map=mapping)
    assert layout(s) == [("system", SYS), ("user", "reference words"), ("assistant", "t.wav")]


def test_sharegpt_two_explicit_slots_with_same_role_rejected():
    with pytest.raises(ValueError, match="'human' and 'gpt' are both mapped to 'target_text'"):
        parse_map(["human=target_text", "gpt=target_text"])


# --- records as exporters in the wild write them ---------------------------------------------------
def _chat(audio_part, system: str = SYS, user_role: str = "user", assistant_role: str = "assistant"):
    return {
        "messages": [
            {"role": "system", "content": system},
            {"role": user_role, "content": "Words to say."},
            {"role": assistant_role, "content": [audio_part]},
        ]
    }


def test_scene_description_in_the_system_text_becomes_a_scene_turn(tmp_path, make_wav):
    make_wav("t.wav")
    system = (
        "Generate audio following instruction.\n\n<|scene_desc_start|>\nA quiet room.\n<|scene_desc_end|>"
    )
    unclosed = "Generate audio.\n\n<|scene_desc_start|>\nA quiet room."
    report, train, _, rejected = run(
        tmp_path, [_chat({"type": "audio", "audio_url": "t.wav"}, s) for s in (system, unclosed)]
    )
    sample = Sample.from_dict(train[0])
    assert layout(sample)[:3] == [
        ("system", "Generate audio following instruction."),
        ("scene", "A quiet room."),
        ("user", "Words to say."),
    ]
    assert sample.start_index == 2 and check_sample(sample).trainable
    # a block that does not close is left as written: the contract names the token and the fix
    assert len(rejected) == 1 and rejected[0]["reasons"][0]["code"] == "BAD_STRUCTURE"
    assert "'scene' turn" in rejected[0]["reasons"][0]["hint"]


def test_roles_are_read_case_insensitively(tmp_path, make_wav):
    make_wav("t.wav")
    record = _chat({"type": "audio", "audio_url": "t.wav"}, user_role="User", assistant_role=" ASSISTANT")
    sample = to_convert("chatml", record, tmp_path)
    assert [m.role for m in sample.messages] == ["system", "user", "assistant"]


def test_file_urls_and_placeholders(tmp_path, make_wav):
    path = make_wav("my clips/t 1.wav")
    url = "file://" + str(path).replace(" ", "%20")
    sample = to_convert("chatml", _chat({"type": "audio", "audio_url": url}), tmp_path)
    assert sample.messages[-1].audio_url == str(path)
    # "placeholder" with no raw_audio is no audio (NO_AUDIO), not a missing file named "placeholder"
    _, train, _, rejected = run(tmp_path, [_chat({"type": "audio", "audio_url": "placeholder"})])
    assert train == [] and [r["code"] for r in rejected[0]["reasons"]] == ["NO_AUDIO"]


def test_raw_audio_is_decoded_into_the_outputs_clips_folder(tmp_path, make_wav):
    import base64

    import soundfile as sf

    flac = make_wav("t.flac", seconds=0.8, sr=22_050)
    raw = base64.b64encode(flac.read_bytes()).decode()
    records = [
        _chat({"type": "audio", "audio_url": "", "raw_audio": raw}),
        _chat({"type": "audio", "audio_url": "placeholder", "raw_audio": raw}),  # the same bytes: one file
        _chat({"type": "audio", "raw_audio": "not base64 !"}),
        _chat({"type": "audio", "raw_audio": base64.b64encode(b"not audio").decode()}),
    ]
    report, train, _, rejected = run(tmp_path, records)
    assert len(train) == 2
    # the source keeps its bytes: nothing the user gave is modified
    assert [json.loads(line) for line in (tmp_path / "in.jsonl").read_text().splitlines()] == records
    urls = {Sample.from_dict(d).messages[-1].audio_url for d in train}
    assert len(urls) == 1
    (url,) = urls
    assert Path(url).parent == tmp_path / "out" / "data.jsonl.clips"
    decoded, sr = sf.read(url, dtype="int16")
    original, sr0 = sf.read(flac, dtype="int16")
    assert sr == sr0 == 22_050 and np.array_equal(decoded, original)
    assert train[0]["misc"]["extracted_audio"] == [
        {"audio_url": url, "from": {"raw_audio_bytes": len(flac.read_bytes())}}
    ]
    assert [r["reasons"][0]["code"] for r in rejected] == ["BAD_FIELD", "AUDIO_UNREADABLE"]
    assert "raw_audio is not base64" in rejected[0]["reasons"][0]["message"]
    assert rejected[1]["reasons"][0]["message"] == (
        "messages[2].content: cannot decode the audio bytes: Format not recognised."
    )


def test_an_offset_makes_a_slice_and_a_duration_alone_does_not(tmp_path, make_wav):
    import soundfile as sf

    long = make_wav("long.wav", seconds=3.0)
    whole, sr = sf.read(long, dtype="int16")
    records = [
        _chat({"type": "audio", "audio_url": "long.wav", "offset": 1.0, "duration": 1.5}),
        _chat({"type": "audio", "audio_url": "long.wav", "offset": 2.5}),  # to the end
        _chat(
            {"type": "audio", "audio_url": "long.wav", "duration": 2.0}
        ),  # metadata, as the original tooling reads it
        _chat({"type": "audio", "audio_url": "long.wav", "offset": 3.5}),  # past the end
        _chat({"type": "audio", "audio_url": "gone.wav", "offset": 1.0}),
        _chat({"type": "audio", "audio_url": "long.wav", "offset": "soon"}),
    ]
    _, train, _, rejected = run(tmp_path, records)
    urls = [Sample.from_dict(d).messages[-1].audio_url for d in train]
    assert urls[2] == str(long) and "extracted_audio" not in train[2]["misc"]
    assert np.array_equal(sf.read(urls[0], dtype="int16")[0], whole[sr : sr + int(1.5 * sr)])
    assert np.array_equal(sf.read(urls[1], dtype="int16")[0], whole[int(2.5 * sr) :])
    assert train[0]["misc"]["extracted_audio"][0]["from"] == {
        "audio_url": str(long),
        "offset": 1.0,
        "duration": 1.5,
    }
    reasons = [r["reasons"][0] for r in rejected]
    assert [r["code"] for r in reasons] == ["AUDIO_UNREADABLE", "AUDIO_NOT_FOUND", "BAD_FIELD"]
    assert "past the end" in reasons[0]["message"] and "gone.wav" in reasons[1]["message"]
    assert "offset" in reasons[2]["message"]


def test_manifest_offset_is_a_slice_of_a_long_recording(tmp_path, make_wav):
    import soundfile as sf

    long = make_wav("book.wav", seconds=4.0)
    whole, sr = sf.read(long, dtype="int16")
    records = [
        {"audio_filepath": "book.wav", "offset": 0.5, "duration": 1.2, "text": "First line.", "speaker": "b"},
        {
            "audio_filepath": "book.wav",
            "offset": 2.0,
            "duration": 1.5,
            "text": "Second line.",
            "speaker": "b",
        },
    ]
    _, train, _, _ = run(tmp_path, records)
    samples = [Sample.from_dict(d) for d in train]
    targets = [s.messages[s.target_indices()[0]].audio_url for s in samples]
    assert np.array_equal(sf.read(targets[0], dtype="int16")[0], whole[sr // 2 : sr // 2 + int(1.2 * sr)])
    # the same-speaker reference of one line is the other line's slice, never the whole book
    refs = [m.audio_url for s in samples for m in s.messages[: s.start_index] if m.is_audio]
    assert sorted(refs) == sorted(targets)


def test_relative_paths_written_on_windows_resolve(tmp_path, make_wav):
    make_wav("wavs/sub/a.wav")
    sample = to_convert("manifest", {"audio_filepath": "wavs\\sub\\a.wav", "text": "Hi."}, tmp_path)
    assert sample.messages[-1].audio_url == str(tmp_path / "wavs" / "sub" / "a.wav")
    # no such file either way: the path stays as written, and validation reports it missing
    sample = to_convert("manifest", {"audio_filepath": "wavs\\none.wav", "text": "Hi."}, tmp_path)
    assert sample.messages[-1].audio_url == str(tmp_path / "wavs\\none.wav")


def test_start_index_written_as_text(tmp_path, make_wav):
    make_wav("r.wav")
    make_wav("t.wav")
    messages = [
        {"role": "system", "content": SYS},
        {"role": "user", "content": "Reference words."},
        {"role": "assistant", "content": {"type": "audio", "audio_url": "r.wav"}},
        {"role": "user", "content": "Target words."},
        {"role": "assistant", "content": {"type": "audio", "audio_url": "t.wav"}},
    ]
    sample = to_convert("chatml", {"messages": messages, "start_index": "3"}, tmp_path)
    assert sample.start_index == 3 and sample.target_audio() == [str(tmp_path / "t.wav")]
    with pytest.raises(RecordError, match="start_index should be a message index"):
        to_convert("chatml", {"messages": messages, "start_index": "three"}, tmp_path)


def test_llama_factory_messages_with_top_level_audios(tmp_path, make_wav):
    """LLaMA-Factory's ShareGPT variant: role/content messages, the audio in "audios"."""
    make_wav("r.wav")
    make_wav("t.wav")
    record = {
        "messages": [
            {"role": "system", "content": "Be a voice."},
            {"role": "user", "content": "<audio>Reference words."},
            {"role": "assistant", "content": "Target words to say."},
        ],
        "audios": ["r.wav", "t.wav"],
    }
    _, train, _, rejected = run(tmp_path, [record, {**record, "audios": ["r.wav"]}])
    assert rejected == [] and len(train) == 1 and train[0]["misc"]["source_format"] == "sharegpt"
    assert layout(Sample.from_dict(train[0]))[1:] == [
        ("user", "Reference words."),
        ("assistant", "r.wav"),
        ("user", "Target words to say."),
        ("assistant", "t.wav"),
    ]
