"""The sample contract, as a property over a generated corpus of source variants and broken samples.

What ``convert`` writes as trainable and ``validate`` passes without errors, the training collator
accepts; whatever the collator refuses, ``validate`` reports as an error. The corpus spans every
supported format, content as a string / one part / a list, with and without ``start_index``, system
prompt, speaker, ``misc`` transcripts, instruction prefixes and empty parts; batches are built with
the tiny Higgs model's processor and a real codes cache. Source semantics are checked on the way:
a reference from a user turn is never labelled, no target text keeps an instruction prefix, no
assistant turn holds text.
"""

from __future__ import annotations

import base64
import itertools
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import read_jsonl, write_jsonl

from workbench.data.contract import INVALID, PROMPT, TRAINABLE, SampleContractError, check_sample
from workbench.data.convert import convert
from workbench.data.findings import ERROR
from workbench.data.formats.instructions import has_instruction, strip_instruction
from workbench.data.sample import Audio, Message, Sample
from workbench.data.validate import validate
from workbench.demo import make_tiny_model
from workbench.models.higgs_audio_v2 import sample_to_conversation
from workbench.models.model import SAMPLE_RATE, load_model_and_processor
from workbench.training.codes import CodesCache
from workbench.training.collate import (
    IGNORE_INDEX,
    HiggsAudioCollator,
    NoSupervisedTokensError,
    encode_sample,
)

INSTRUCTIONS = (
    "Please generate speech for given text in reference audio's voice: ",
    "please generate speech for given text: ",
    "Generate speech for: ",
)
SYSTEM = (
    "You are a helpful assistant capable of generating speech in the voice of the provided reference audio."
)


# --- the corpus -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory):
    model_dir = make_tiny_model(tmp_path_factory.mktemp("tiny") / "model", seed=0)
    _, processor = load_model_and_processor(model_dir)
    cache = CodesCache(tmp_path_factory.mktemp("codes"), processor.audio_tokenizer)
    return processor, cache


def _clip(path: Path, seed: int, seconds: float = 0.7) -> str:
    """A distinct voiced clip (own pitch, own noise) so no two files share content."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    f0 = 110.0 + 7.0 * seed
    wave = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 5)) * np.sin(np.pi * t / seconds) ** 0.5
    wave = 0.3 * wave / np.abs(wave).max() + rng.normal(0.0, 0.01, t.shape)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), wave.astype(np.float32), SAMPLE_RATE, subtype="PCM_16")
    return str(path)


def _text(value: str, style: str):
    return {
        "string": value,
        "part": {"type": "text", "text": value},
        "list": [{"type": "text", "text": value}],
    }[style]


def _audio(url: str, style: str):
    part = {"type": "audio", "audio_url": url, "raw_audio": "", "duration": None, "offset": None}
    return [part] if style == "list" else part


SCENE = "\n\n<|scene_desc_start|>\nAudio is recorded from a quiet room.\n<|scene_desc_end|>"


def _wild_audio(data: Path, url: str, n: int) -> dict:
    """The target audio part as exporters in the wild write it, rotating with ``n``: a plain path, a
    ``file://`` URL, base64 bytes behind a "placeholder" url, or a slice of a longer recording."""
    if n % 7 == 2:
        return {"type": "audio", "audio_url": f"file://{data / url}"}
    if n % 11 == 3:
        raw = base64.b64encode((data / url).read_bytes()).decode()
        return {"type": "audio", "audio_url": "placeholder", "raw_audio": raw}
    if n % 13 == 4:
        return {"type": "audio", "audio_url": f"long_{n % 6}.wav", "offset": 0.4, "duration": 0.9}
    return {"type": "audio", "audio_url": url}


def chat_variants(data: Path) -> list[tuple[dict, str]]:
    """``(record, expected kind)`` for the chat layouts: ChatML (reference in a user turn or in an
    assistant turn) and mixed content (the original tooling's layout). Reference files are named
    ``ref_*`` when they sit in a user turn: they must never be labelled. Rotating with the variant
    number: a scene description in the system text, capitalised roles, and target audio as a
    ``file://`` URL, base64 bytes or a slice (see :func:`_wild_audio`)."""
    out = []
    axes = itertools.product(
        ("chatml-user-ref", "chatml-assistant-ref", "mixed"),
        ("string", "part", "list"),
        (None, "target-text", 0),  # start_index: none, pointing at the target's text, or 0
        (True, False),  # system prompt
        (True, False),  # target audio (trainable) or not (prompt)
        range(2),  # rotates speaker / misc transcripts / instruction prefix / empty parts
    )
    for n, (shape, style, start, system, target, flip) in enumerate(axes):
        ref_text, tgt_text = f"Reference words number {n}.", f"Target words number {n}, spoken."
        instruction = INSTRUCTIONS[n % len(INSTRUCTIONS)] if (n + flip) % 2 else ""
        ref_url = f"{'ctx' if shape == 'chatml-assistant-ref' else 'ref'}_{n % 6}.wav"
        tgt_url = f"tgt_{n % 6}.wav"
        scene = SCENE if n % 4 == 0 else ""
        messages = [{"role": "system", "content": _text(SYSTEM + scene, style)}] if system else []
        if shape == "chatml-user-ref":
            user = [{"type": "text", "text": ref_text}, _audio(ref_url, "part")]
            if flip:
                user.insert(1, {"type": "text", "text": ""})  # an empty part
            messages.append({"role": "user", "content": user})
        elif shape == "chatml-assistant-ref":
            messages.append({"role": "user", "content": _text(ref_text, style)})
            messages.append({"role": "assistant", "content": _audio(ref_url, style)})
        if shape == "mixed":
            user = [
                {"type": "text", "text": ref_text},
                _audio(ref_url, "part"),
                {"type": "text", "text": instruction + tgt_text},
            ]
            messages.append({"role": "user", "content": user})
            target_index = len(messages) - 1
            if target:
                answer = (
                    [{"type": "text", "text": tgt_text}, _wild_audio(data, tgt_url, n)]
                    if flip
                    else _audio(tgt_url, style)
                )
                messages.append({"role": "assistant", "content": answer})
            elif flip:
                messages.append({"role": "assistant", "content": [{"type": "text", "text": tgt_text},
                                                                   {"type": "audio", "audio_url": ""}]})  # fmt: skip
        else:
            messages.append({"role": "user", "content": _text(instruction + tgt_text, style)})
            target_index = len(messages) - 1
            if target:
                part = _wild_audio(data, tgt_url, n) if flip else _audio(tgt_url, style)
                messages.append({"role": "assistant", "content": [part] if style == "list" else part})
        if n % 5 == 1:  # "User", "Assistant", "System", as some exporters write them
            messages = [{**m, "role": m["role"].capitalize()} for m in messages]
        record: dict = {"id": f"chat-{n:04d}", "messages": messages}
        if start is not None:
            record["start_index"] = target_index if start == "target-text" else 0
        if (n // 2) % 2:
            record["speaker"] = f"spk{n % 3}"
        if flip and n % 3 == 0:
            record["misc"] = {"ref_transcript": ref_text, "target_transcript": tgt_text, "duration": 0.7}
        out.append((record, TRAINABLE if target else PROMPT))
    return out


def flat_variants(data: Path) -> list[tuple[dict, str]]:
    """``(record, expected kind)`` for the record-per-utterance formats."""
    out = []
    for n, (instruction, speaker, target) in enumerate(
        itertools.product(("", INSTRUCTIONS[0]), (None, "p1"), (True, False))
    ):
        record = {"id": f"paired-{n}", "reference_audio": f"ref_{n % 6}.wav", "reference_text": f"Paired reference {n}.",
                  "target_text": instruction + f"Paired target {n}."}  # fmt: skip
        if target:
            record["target_audio"] = f"tgt_{(n + 1) % 6}.wav"
        if speaker:
            record["speaker"] = speaker
        out.append((record, TRAINABLE if target else PROMPT))
    for n, audios in enumerate((["ref_1.wav"], ["ref_2.wav", "tgt_3.wav"])):
        record = {"id": f"sharegpt-{n}", "audios": audios, "conversations": [
            {"from": "human", "value": f"<audio>ShareGPT reference {n}."}, {"from": "gpt", "value": f"ShareGPT target {n}."}]}  # fmt: skip
        out.append((record, TRAINABLE if len(audios) == 2 else PROMPT))
    for n in range(4):
        text = (INSTRUCTIONS[2] if n == 1 else "") + f"Manifest line {n}."
        out.append(
            (
                {"audio_filepath": f"tgt_{n}.wav", "text": text, "speaker": "m1", "id": f"manifest-{n}"},
                TRAINABLE,
            )
        )
        out.append(
            (
                {
                    "audio_file": f"tgt_{n + 1}.wav",
                    "transcript": f"Trainer line {n}.",
                    "audio_id": f"trainer-{n}",
                },
                TRAINABLE,
            )
        )
        out.append(
            (
                {
                    "path": f"tgt_{n + 2}.wav",
                    "text": f"Folder line {n}.",
                    "speaker": "a1",
                    "id": f"folder-{n}",
                },
                TRAINABLE,
            )
        )
    return out


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory):
    """Every variant converted: ``(report, {id: expected}, trainable, prompts, rejected, folder)``."""
    root = tmp_path_factory.mktemp("corpus")
    for k in range(6):
        _clip(root / f"ref_{k}.wav", seed=k)
        _clip(root / f"ctx_{k}.wav", seed=10 + k)
        _clip(root / f"tgt_{k}.wav", seed=20 + k, seconds=0.9)
        _clip(root / f"long_{k}.wav", seed=40 + k, seconds=1.6)
    variants = chat_variants(root) + flat_variants(root)
    lj = root / "LJ"
    for k in range(3):
        _clip(lj / "wavs" / f"LJ-{k}.wav", seed=30 + k)
    (lj / "metadata.csv").write_text("".join(f"LJ-{k}|Line {k}.|Line {k}.\n" for k in range(3)))
    src = write_jsonl(root / "records.jsonl", [r for r, _ in variants])
    out = root / "out" / "data.jsonl"
    report = convert([src, lj], out, overwrite=True)
    expected = {r.get("id") or r.get("audio_id"): kind for r, kind in variants}
    expected.update({f"LJ-{k}": TRAINABLE for k in range(3)})
    return report, expected, read_jsonl(out), read_jsonl(out.with_name("data.prompts.jsonl")), \
        read_jsonl(out.with_name("data.rejected.jsonl")), out  # fmt: skip


# --- the properties -------------------------------------------------------------------------------


def _collator_refusal(sample: Sample, processor, cache, require_targets: bool = True) -> str | None:
    """Why the training collator refuses ``sample`` (None when it builds a batch)."""
    try:
        batch = HiggsAudioCollator(processor, cache, require_targets=require_targets)([sample])
    except (SampleContractError, NoSupervisedTokensError, ValueError) as exc:
        return f"{type(exc).__name__}: {exc}"
    assert batch["input_ids"].shape[0] == 1
    return None


def _errors_by_sample(samples: list[Sample]) -> dict[str, list[str]]:
    report = validate(samples)
    out: dict[str, list[str]] = {s.id: [] for s in samples}
    for f in report.findings:
        if f.severity == ERROR:
            out.setdefault(f.sample_id, []).append(f.code)
    return out


def test_every_record_lands_where_its_meaning_says(corpus) -> None:
    report, expected, train, prompts, rejected, _ = corpus
    got = {d["id"]: TRAINABLE for d in train} | {d["id"]: PROMPT for d in prompts}
    assert report.total == len(expected) == len(train) + len(prompts) + len(rejected)
    assert rejected == [], [r["reasons"] for r in rejected][:3]
    assert {k: got.get(k) for k in expected} == expected
    assert report.layouts["mixed+start_index"] > 0 and report.layouts["mixed"] > 0
    assert report.layouts["chatml+start_index"] > 0 and report.formats["chatml"] == sum(
        v for k, v in report.layouts.items() if k.startswith("chatml")
    )


def test_converted_samples_keep_the_sources_meaning(corpus) -> None:
    _, _, train, prompts, _, _ = corpus
    for d in train + prompts:
        sample = Sample.from_dict(d)
        assert not any(m.role == "assistant" and not m.is_audio for m in sample.messages), d
        assert sample.messages[0].role == "system"
        text = sample.target_text()
        assert text and not has_instruction(text), (d["id"], text)
        assert "Target words" in text or not d["id"].startswith("chat-"), (d["id"], text)
        user_refs = [
            i
            for i, m in enumerate(sample.messages)
            if m.is_audio and Path(m.audio_url).name.startswith("ref_")
        ]
        assert all(i < sample.start_index for i in user_refs), d
        if sample.target_indices():  # start_index at the first target's text
            assert sample.messages[sample.start_index].role == "user"
            assert sample.target_indices()[0] == sample.start_index + 1
        originals = [o["text"] for o in d["misc"].get("original_texts", [])]
        assert all(strip_instruction(o)[0] in {m.text for m in sample.messages} or o == "" for o in originals)


def test_records_as_written_in_the_wild_keep_their_meaning(corpus, stack) -> None:
    """Scene descriptions in the system text become a scene turn that renders as the same tokens;
    base64 and sliced target audio become plain files holding exactly those samples."""
    processor, _ = stack
    _, _, train, prompts, _, out = corpus
    by_id = {d["id"]: d for d in train + prompts}
    sources = {r["id"]: r for r in map(json.loads, (out.parents[1] / "records.jsonl").read_text().splitlines())
               if "id" in r}  # fmt: skip
    scenes = [
        i for i, r in sources.items() if i.startswith("chat-") and "<|scene_desc_start|>" in json.dumps(r)
    ]
    assert len(scenes) > 10
    for sid in scenes:
        sample = Sample.from_dict(by_id[sid])
        assert [(m.role, m.text) for m in sample.messages[:2]] == [
            ("system", SYSTEM),
            ("scene", "Audio is recorded from a quiet room."),
        ], sid
        rendered = processor.apply_chat_template(sample_to_conversation(sample), tokenize=False)
        assert rendered.startswith(
            f"<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n{SYSTEM}{SCENE}<|eot_id|>"
        )
    extracted = [(d["id"], e) for d in train for e in d["misc"].get("extracted_audio", [])]
    raw = [e for _, e in extracted if "raw_audio_bytes" in e["from"]]
    cut = [e for _, e in extracted if "offset" in e["from"]]
    assert raw and cut and len(raw) + len(cut) == len(extracted)
    for entry in raw:
        path = Path(entry["audio_url"])
        assert path.parent == out.with_name("data.jsonl.clips")
        decoded, sr = sf.read(path, dtype="int16")
        originals = [sf.read(out.parents[1] / f"tgt_{k}.wav", dtype="int16")[0] for k in range(6)]
        assert sr == SAMPLE_RATE and any(np.array_equal(decoded, o) for o in originals)
    for entry in cut:
        source, offset, duration = (
            entry["from"]["audio_url"],
            entry["from"]["offset"],
            entry["from"]["duration"],
        )
        whole, sr = sf.read(source, dtype="int16")
        piece, _ = sf.read(entry["audio_url"], dtype="int16")
        begin = round(offset * sr)
        assert np.array_equal(piece, whole[begin : begin + round(duration * sr)])
    for sid, _ in extracted:
        assert check_sample(Sample.from_dict(by_id[sid])).trainable


def test_trainable_and_valid_is_what_the_collator_accepts(corpus, stack) -> None:
    """Convert's trainable file, validated: no error means the collator takes it, and a reference
    from a user turn is never labelled (checked on the audio labels themselves)."""
    processor, cache = stack
    _, _, train, prompts, _, _ = corpus
    samples = [Sample.from_dict(d) for d in train]
    errors = _errors_by_sample(samples)
    clean = [s for s in samples if not errors[s.id]]
    assert len(clean) >= 0.8 * len(samples) and len(samples) > 100
    n = processor.audio_tokenizer.config.num_quantizers
    for sample in clean:
        assert check_sample(sample).kind == TRAINABLE
        assert _collator_refusal(sample, processor, cache) is None, sample.id
        feature = encode_sample(sample, processor, cache)
        labels, start = feature["audio_labels"], 0
        for i, m in enumerate(sample.messages):  # scenes are text: audio keeps message order
            if not m.is_audio:
                continue
            frames = cache.get(m.audio_url).shape[1] + n + 1
            segment = labels[start : start + frames]
            start += frames
            name = Path(m.audio_url).name
            if name.startswith("ref_"):
                assert (segment == IGNORE_INDEX).all(), (sample.id, name)
            if i in sample.target_indices():
                assert (segment != IGNORE_INDEX).any(), (sample.id, name)
        assert start == len(labels)
    for d in prompts:  # prompts are refused for training, taken for evaluation
        sample = Sample.from_dict(d)
        assert _collator_refusal(sample, processor, cache) is not None
        assert _collator_refusal(sample, processor, cache, require_targets=False) is None


def _broken(sample: Sample, how: str) -> Sample:
    """A canonical sample broken one way (as a hand-edited or foreign JSONL line might be)."""
    m = list(sample.messages)
    target = sample.target_indices()[-1]
    if how == "no-system":
        return sample.with_changes(messages=tuple(m[1:]), start_index=sample.start_index - 1)
    if how == "assistant-text":
        return sample.with_changes(messages=(*m[:target], Message("assistant", "Spoken words."), *m[target:]))
    if how == "audio-in-user":
        return sample.with_changes(
            messages=(*m[:target], Message("user", m[target].content), *m[target + 1 :])
        )
    if how == "untranscribed":
        return sample.with_changes(messages=(*m[: target - 1], *m[target:]), start_index=target - 1)
    if how == "template-token":
        return sample.with_changes(
            messages=(*m[: target - 1], Message("user", "Say <|AUDIO_OUT|> now."), *m[target:])
        )
    if how == "start-past-end":
        return sample.with_changes(start_index=len(m))
    if how == "no-target":
        return sample.with_changes(messages=tuple(m[:target]))
    if how == "start-after-target":
        return sample.with_changes(start_index=target + 1) if target + 1 < len(m) else sample.with_changes(
            messages=(*m, Message("user", "More.")), start_index=len(m))  # fmt: skip
    if how == "empty-target-text":
        return sample.with_changes(messages=(*m[: target - 1], Message("user", ""), *m[target:]))
    if how == "scene-audio":
        return sample.with_changes(messages=(m[0], Message("scene", Audio(m[target].audio_url)), *m[1:]),
                                   start_index=sample.start_index + 1)  # fmt: skip
    raise AssertionError(how)


BREAKS = ("no-system", "assistant-text", "audio-in-user", "untranscribed", "template-token", "start-past-end",
          "no-target", "start-after-target", "empty-target-text", "scene-audio")  # fmt: skip


def test_whatever_the_collator_refuses_validate_reports_as_an_error(corpus, stack) -> None:
    processor, cache = stack
    _, _, train, _, _, _ = corpus
    bases = [Sample.from_dict(d) for d in train[:: max(1, len(train) // 12)]]
    broken = [_broken(s, how).with_changes(id=f"{s.id}:{how}") for s, how in itertools.product(bases, BREAKS)]
    errors = _errors_by_sample(bases + broken)
    refused = 0
    for sample in bases + broken:
        refusal = _collator_refusal(sample, processor, cache)
        if refusal is not None:
            refused += 1
            assert errors[sample.id], f"the collator refuses {sample.id} but validate passes it: {refusal}"
            assert check_sample(sample).kind in (INVALID, PROMPT)
        elif not errors[sample.id]:
            assert check_sample(sample).kind == TRAINABLE
    assert refused >= 8 * len(bases)  # every break but the empty text is refused


def test_a_real_collated_batch_of_the_corpus(corpus, stack) -> None:
    processor, cache = stack
    _, _, train, _, _, _ = corpus
    samples = [Sample.from_dict(d) for d in train[:8]]
    batch = HiggsAudioCollator(processor, cache)(samples)
    assert batch["input_ids"].shape[0] == 8 and int((batch["audio_labels"] != IGNORE_INDEX).sum()) > 0
    assert torch.equal(batch["audio_input_ids_mask"].sum(1) > 0, torch.ones(8, dtype=torch.bool))


def test_the_convert_report_names_layouts(corpus) -> None:
    report, _, _, _, _, out = corpus
    data = json.loads(json.dumps(report.to_dict()))
    assert data["layouts"]["mixed+start_index"] == report.layouts["mixed+start_index"]
    assert "layouts: " in report.summary_line()
    adjusted = [f for f in report.issues if f.code == "START_INDEX_ADJUSTED"]
    assert adjusted and all(f.severity == "warning" and "reference" in f.message for f in adjusted)


def test_the_property_holds_over_the_demo_data(demo_run, stack) -> None:
    """Every canonical file the demo pipeline wrote (converted, prompts, the 03 split): validate
    without errors means the collator takes the sample; a sample the collator refuses is an error."""
    processor, cache = stack
    files = [p for p in sorted(demo_run.glob("0[23]_*/*.jsonl")) if not p.name.endswith(".rejected.jsonl")]
    samples = [Sample.from_dict(d) for p in files for d in read_jsonl(p)]
    assert len(files) >= 3 and len(samples) > 20
    samples = list({s.id: s for s in samples}.values())  # the split repeats the converted samples
    errors = _errors_by_sample(samples)
    kinds = {TRAINABLE: 0, PROMPT: 0}
    for sample in samples:
        refusal = _collator_refusal(sample, processor, cache)
        if refusal is not None:
            assert errors[sample.id], f"the collator refuses {sample.id} but validate passes it: {refusal}"
        elif not errors[sample.id]:
            assert check_sample(sample).kind == TRAINABLE
        kinds[check_sample(sample).kind] += 1
    assert kinds[TRAINABLE] > 10 and kinds[PROMPT] >= 1
