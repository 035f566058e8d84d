"""Tests for workbench.data.validate: one test per finding code (it fires, a clean sample does not)."""

from __future__ import annotations

import json
import shutil
import time

import numpy as np
import pytest
import soundfile as sf

from workbench.data import probe as probe_module
from workbench.data import validate as validate_module
from workbench.data.sample import Audio, Message, Sample
from workbench.data.validate import ValidationReport, validate

SR = 24_000


@pytest.fixture(autouse=True)
def _private_probe_cache(tmp_path, monkeypatch):
    """Probe cache in a temporary folder, and a fresh process-wide cache per test."""
    monkeypatch.setenv("WORKBENCH_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(probe_module, "_default_cache", None)


def voiced(seconds: float, sr: int = SR, f0: float = 140.0, channels: int = 1) -> np.ndarray:
    """A vowel-like signal: harmonics of ``f0`` under a smooth envelope that never falls silent."""
    t = np.arange(int(seconds * sr)) / sr
    x = sum(np.sin(2 * np.pi * f0 * h * t) / h for h in range(1, 8))
    env = 0.3 + 0.7 * np.sin(np.pi * t / max(seconds, 1e-9))
    x = (0.5 * x / np.abs(x).max() * env).astype(np.float32)
    return np.stack([x] * channels, axis=1) if channels > 1 else x


def write(path, data, sr: int = SR, subtype: str = "PCM_16") -> str:
    sf.write(str(path), data, sr, subtype=subtype)
    return str(path)


@pytest.fixture(scope="module")
def wavs(tmp_path_factory):
    """A small library of real audio files, good and bad."""
    d = tmp_path_factory.mktemp("wavs")
    rng = np.random.default_rng(0)
    files = {
        "a": write(d / "a.wav", voiced(2.0, f0=120)),
        "b": write(d / "b.wav", voiced(2.5, f0=150)),
        "c": write(d / "c.wav", voiced(1.5, f0=180)),
        "short": write(d / "short.wav", voiced(0.2)),
        "long": write(d / "long.wav", voiced(3.0, f0=100)),
        "silence": write(d / "silence.wav", np.zeros(SR, np.float32)),
        "clipped": write(d / "clipped.wav", np.clip(voiced(1.5) * 4, -1, 1)),
        "stereo44": write(d / "stereo44.wav", voiced(1.5, sr=44_100, channels=2), sr=44_100),
        "empty": write(d / "empty.wav", np.zeros(0, np.float32)),
        "padded": write(
            d / "padded.wav",
            np.concatenate([np.zeros(2 * SR, np.float32), voiced(1.0), np.zeros(SR // 2, np.float32)]),
        ),
    }
    nan = voiced(1.0)
    nan[100:200] = np.nan
    files["nan"] = write(d / "nan.wav", nan, subtype="FLOAT")
    corrupt = d / "corrupt.wav"
    corrupt.write_bytes(rng.bytes(4000))
    files["corrupt"] = str(corrupt)
    files["missing"] = str(d / "missing.wav")
    shutil.copy(files["a"], d / "a_copy.wav")
    files["a_copy"] = str(d / "a_copy.wav")
    for k in range(12):
        files[f"v{k}"] = write(d / f"v{k}.wav", voiced(2.0, f0=100 + 7 * k))
    return files


def make(
    sample_id: str,
    target: str | None,
    ref: str | None = None,
    text: str = "The quick brown fox jumps over it.",
    ref_text: str = "A reference sentence.",
    **kw,
) -> Sample:
    """A canonical sample: system, optional (ref text, ref audio), target text, optional target audio."""
    msgs = [Message("system", "Generate speech in the provided voice.")]
    if ref is not None:
        msgs += [Message("user", ref_text), Message("assistant", Audio(ref))]
    msgs.append(Message("user", text))
    start = len(msgs) - 1
    if target is not None:
        msgs.append(Message("assistant", Audio(target)))
    kw.setdefault("speaker", "spk1")
    return Sample(id=sample_id, messages=tuple(msgs), start_index=kw.pop("start_index", start), **kw)


def write_jsonl(path, items) -> str:
    with open(path, "w", encoding="utf-8") as fh:
        for item in items:
            fh.write((item.to_json() if isinstance(item, Sample) else item) + "\n")
    return str(path)


def codes(report: ValidationReport) -> list[str]:
    return [f.code for f in report.findings]


def only(report: ValidationReport, code: str):
    hits = [f for f in report.findings if f.code == code]
    assert len(hits) == 1, report.format_lines()
    return hits[0]


# --- clean data -----------------------------------------------------------------------------------


def test_clean_samples_have_no_findings(wavs, tmp_path):
    samples = [make("s1", wavs["a"], ref=wavs["b"]), make("s2", wavs["b"], ref=wavs["a"])]
    report = validate(write_jsonl(tmp_path / "d.jsonl", samples))
    assert report.findings == [], report.format_lines()
    assert (report.ok, report.samples, report.trainable, report.prompts) == (True, 2, 2, 0)
    assert report.go_no_go().startswith("GO: 2 trainable samples")


def test_in_memory_samples_are_validated(wavs):
    report = validate([make("s1", wavs["a"]), make("s2", wavs["missing"])])
    assert codes(report) == ["AUDIO_NOT_FOUND"]
    assert report.files == []
    assert only(report, "AUDIO_NOT_FOUND").source_file is None


def test_probes_every_distinct_path_once(wavs, monkeypatch):
    calls = []
    real = validate_module.probe_many

    def counting(paths, progress=False):
        calls.append(list(paths))
        return real(calls[-1], progress=progress)

    monkeypatch.setattr(validate_module, "probe_many", counting)
    validate([make(f"s{i}", wavs["a"] if i % 2 else wavs["b"], ref=wavs["c"]) for i in range(50)])
    assert len(calls) == 1 and sorted(calls[0]) == sorted({wavs["a"], wavs["b"], wavs["c"]})


# --- errors ---------------------------------------------------------------------------------------


def test_missing_target_audio_explains_the_higgs_error(wavs):
    report = validate([make("p1", None, ref=wavs["a"]), make("ok", wavs["b"])])
    f = only(report, "MISSING_TARGET_AUDIO")
    assert f.severity == "error" and f.sample_id == "p1"
    assert "start_index=3" in f.message and "Missing required message types" in f.message
    assert "evaluation prompt" in f.message and f.hint
    assert (report.trainable, report.prompts) == (1, 1)


def test_no_audio(wavs):
    report = validate([make("z1", None), make("ok", wavs["a"])])
    assert codes(report) == ["NO_AUDIO"] and report.samples_with("NO_AUDIO") == ["z1"]


def test_audio_not_found_reported_once_per_sample_and_file(wavs):
    missing = wavs["missing"]
    msgs = (
        Message("system", "sys"),
        Message("user", "one"),
        Message("assistant", Audio(missing)),
        Message("user", "two"),
        Message("assistant", Audio(missing)),
    )
    report = validate([Sample("m1", msgs, start_index=1), make("ok", wavs["a"])])
    f = only(report, "AUDIO_NOT_FOUND")
    assert missing in f.message and "target audio" in f.message


def test_audio_unreadable(wavs):
    report = validate([make("u1", wavs["corrupt"]), make("ok", wavs["a"])])
    assert codes(report) == ["AUDIO_UNREADABLE"] and wavs["corrupt"] in report.findings[0].message


@pytest.mark.parametrize(
    ("name", "words"), [("empty", "no samples"), ("silence", "all zeros"), ("nan", "NaN")]
)
def test_audio_empty(wavs, name, words):
    report = validate([make("e1", wavs[name]), make("ok", wavs["a"])])
    f = only(report, "AUDIO_EMPTY")
    assert words in f.message and f.sample_id == "e1"
    assert codes(report) == ["AUDIO_EMPTY"]  # no duration or rate findings on top


def test_duration_out_of_range(wavs):
    report = validate(
        [make("long", wavs["long"]), make("short", wavs["short"]), make("ok", wavs["a"])], max_duration=2.5
    )
    assert report.samples_with("DURATION_OUT_OF_RANGE") == ["long", "short"]
    messages = [f.message for f in report.findings]
    assert f"target audio {wavs['long']} lasts 3.0 s, above the 2.5 s maximum" in messages
    assert f"target audio {wavs['short']} lasts 0.20 s, below the 0.50 s minimum" in messages
    # References are not held to the target duration limits.
    assert validate([make("r", wavs["a"], ref=wavs["long"])], max_duration=2.5).ok


def test_empty_text(wavs):
    report = validate(
        [
            make("t1", wavs["a"], text="   "),
            make("t2", wavs["a_copy"], ref=wavs["b"], ref_text=""),
            make("ok", wavs["c"]),
        ]
    )
    assert report.samples_with("EMPTY_TEXT") == ["t1", "t2"]
    assert (
        "target text" in report.findings[0].message
        and "transcript of reference audio" in report.findings[1].message
    )


def test_ref_is_target_by_path_and_by_content(wavs):
    report = validate([make("r1", wavs["a"], ref=wavs["a"]), make("r2", wavs["b"], ref=wavs["b"])])
    assert report.samples_with("REF_IS_TARGET") == ["r1", "r2"]
    report = validate([make("r3", wavs["a"], ref=wavs["a_copy"])])
    f = only(report, "REF_IS_TARGET")
    assert "same content" in f.message and wavs["a_copy"] in f.message


def test_duplicate_id(wavs):
    report = validate([make("s1", wavs["a"]), make("s1", wavs["b"]), make("s2", wavs["c"])])
    f = only(report, "DUPLICATE_ID")
    assert "'s1'" in f.message and f.severity == "error"


def test_bad_start_index(wavs, tmp_path):
    out_of_range = make("b1", wavs["a"], start_index=9)
    not_int = json.dumps(dict(make("b2", wavs["b"]).to_dict(), start_index="three"))
    report = validate(write_jsonl(tmp_path / "d.jsonl", [out_of_range, not_int, make("ok", wavs["c"])]))
    assert report.samples_with("BAD_START_INDEX") == ["b1", "b2"]
    assert "outside the sample's 3 messages" in report.findings[0].message
    assert "'three' is not an integer" in report.findings[1].message
    assert report.trainable == 1


def test_bad_structure(wavs):
    no_system = Sample("x1", (Message("user", "hi"), Message("assistant", Audio(wavs["a"]))), start_index=0)
    audio_in_user = Sample(
        "x2",
        (Message("system", "s"), Message("user", Audio(wavs["b"])), Message("assistant", Audio(wavs["c"]))),
        2,
    )
    report = validate([no_system, audio_in_user, make("ok", wavs["v0"])])
    assert report.samples_with("BAD_STRUCTURE") == ["x1", "x2"]
    text = " ".join(f.message for f in report.findings if f.code == "BAD_STRUCTURE")
    assert "expected 'system'" in text and "in a 'user' turn" in text and "no user text" in text


def test_placeholder_audio_error_or_warning(wavs):
    samples = [make("ph", wavs["a"], misc={"placeholder_audio": [wavs["a"]]}), make("ok", wavs["b"])]
    f = only(validate(samples), "PLACEHOLDER_AUDIO")
    assert f.severity == "error" and wavs["a"] in f.message
    report = validate(samples, allow_placeholder=True)
    assert only(report, "PLACEHOLDER_AUDIO").severity == "warning" and report.ok


def test_placeholder_files_get_no_second_opinion(wavs, tmp_path):
    """Converter placeholders are silent and identical; only PLACEHOLDER_AUDIO speaks about them."""
    ph = [write(tmp_path / f"ph{k}.wav", np.zeros(SR, np.float32)) for k in range(3)]
    misc = {"placeholder_audio": ["/gone/ref.wav", "/gone/target.wav"]}
    samples = [make("p1", ph[0], ref=ph[1], misc=misc), make("p2", ph[2], misc=misc), make("ok", wavs["a"])]
    report = validate(samples, allow_placeholder=True)
    assert codes(report) == ["PLACEHOLDER_AUDIO", "PLACEHOLDER_AUDIO"] and report.ok
    assert "/gone/ref.wav, /gone/target.wav" in report.findings[0].message
    assert sorted(codes(validate([make("silent", ph[0])]))) == ["AUDIO_EMPTY"]


def test_split_leakage_by_path_and_content(wavs, tmp_path):
    train = write_jsonl(tmp_path / "train.jsonl", [make("t1", wavs["a"]), make("t2", wavs["b"])])
    val = write_jsonl(
        tmp_path / "val.jsonl",
        [
            make("v1", wavs["b"]),
            make("v2", wavs["a_copy"]),
            make("v3", wavs["c"]),
            make("v4", wavs["missing"]),
        ],
    )
    report = validate(train, val)
    assert report.samples_with("SPLIT_LEAKAGE") == ["v1", "v2"]
    assert report.files == [train, val] and report.samples == 6
    # The validation file's own samples are validated too, located in the validation file.
    f = only(report, "AUDIO_NOT_FOUND")
    assert (f.sample_id, f.source_file, f.source_index, f.source_line) == ("v4", val, 3, 4)
    assert "SPLIT_LEAKAGE" not in codes(
        validate(train, write_jsonl(tmp_path / "v2.jsonl", [make("v", wavs["c"])]))
    )
    assert "SPLIT_LEAKAGE" not in codes(validate(train))


def test_bad_lines_are_findings_not_crashes(wavs, tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", ["{not json", "[1, 2]", '{"id": "x"}', make("ok", wavs["a"])])
    report = validate(path)
    assert codes(report) == ["BAD_RECORD", "BAD_RECORD", "BAD_FIELD"]
    assert [(f.source_index, f.source_line) for f in report.findings] == [(0, 1), (1, 2), (2, 3)]
    assert (report.samples, report.trainable) == (4, 1)


def test_location_from_misc_or_canonical_line(wavs, tmp_path):
    samples = [
        make("m", wavs["missing"], misc={"source_file": "/src/x.csv", "source_index": 7, "source_line": 9}),
        make("n", wavs["missing"] + "2"),
    ]
    canonical = write_jsonl(tmp_path / "d.jsonl", samples)
    report = validate(canonical)
    assert [(f.source_file, f.source_index, f.source_line) for f in report.findings] == [
        ("/src/x.csv", 7, 9),
        (canonical, 1, 2),
    ]
    assert report.format_lines()[1].split()[3] == f"{canonical}:2:"


# --- warnings -------------------------------------------------------------------------------------


def test_sample_rate_and_channels(wavs):
    report = validate([make("s", wavs["stereo44"])])
    assert sorted(codes(report)) == ["MULTI_CHANNEL", "SAMPLE_RATE_MISMATCH"] and report.ok
    assert "44100 Hz" in report.findings[0].message and "2 channels" in report.findings[1].message


def test_clipping(wavs):
    report = validate([make("c", wavs["clipped"]), make("ok", wavs["a"])])
    f = only(report, "CLIPPING")
    assert f.severity == "warning" and f.sample_id == "c" and "clipped samples" in f.message


def test_long_silence_threshold_is_configurable(wavs):
    f = only(validate([make("p", wavs["padded"])]), "LONG_SILENCE")
    assert "s of silence at the start" in f.message and "at the end" not in f.message
    assert validate([make("p", wavs["padded"])], max_silence=3.0).findings == []


def test_speaking_rate_outlier(wavs):
    text = "About thirty characters here."  # 29 chars over 2 s
    samples = [make(f"n{k}", wavs[f"v{k}"], text=text + "x" * (k % 3)) for k in range(10)]
    samples.append(
        make("fast", wavs["v10"], text="This transcript is far too long for two seconds of speech. " * 3)
    )
    report = validate(samples)
    f = only(report, "SPEAKING_RATE_OUTLIER")
    assert f.sample_id == "fast" and "too fast" in f.message and f.severity == "warning"
    # Too few samples for a distribution: nothing is reported.
    assert validate(samples[:3] + samples[-1:]).findings == []


def test_duplicate_audio_by_path_and_content(wavs):
    report = validate(
        [make("d1", wavs["a"]), make("d2", wavs["a"]), make("d3", wavs["a_copy"]), make("ok", wavs["b"])]
    )
    assert report.samples_with("DUPLICATE_AUDIO") == ["d2", "d3"]
    assert "same content" in report.findings[1].message and report.ok


# --- report ---------------------------------------------------------------------------------------


def test_report_shapes(wavs, tmp_path):
    report = validate(
        [make("ok", wavs["a"]), make("bad", wavs["missing"]), make("w", wavs["clipped"]), make("p", None)]
    )
    data = report.to_dict()
    summary = data["summary"]
    assert summary["samples"] == 4 and summary["trainable"] == 3 and summary["prompts"] == 1
    assert summary["by_code"] == {"AUDIO_NOT_FOUND": 1, "CLIPPING": 1, "NO_AUDIO": 1}
    assert (summary["errors"], summary["warnings"]) == (2, 1)
    assert summary["by_severity"] == {"error": 2, "warning": 1}
    keys = {"code", "severity", "sample_id", "message", "hint", "source_file", "source_index"}
    assert all(keys <= set(issue) for issue in data["issues"])
    assert json.loads(report.write_json(tmp_path / "r" / "report.json").read_text()) == data
    lines = report.format_lines()
    assert len(lines) == 3 and lines[0].startswith("ERROR   AUDIO_NOT_FOUND [bad]")
    assert not report.ok and report.go_no_go().startswith("NO-GO: 2 errors in 2 samples")
    assert validate([make("p", None)]).go_no_go().startswith("NO-GO: no trainable samples")


def test_speed_many_samples_over_few_files(wavs, tmp_path):
    pool = [wavs[f"v{k}"] for k in range(12)]
    samples = [make(f"s{i}", pool[i % 12], ref=pool[(i + 5) % 12]) for i in range(6000)]
    path = write_jsonl(tmp_path / "big.jsonl", samples)
    validate(path)  # warm the probe cache
    start = time.perf_counter()
    report = validate(path)
    rate = report.samples / (time.perf_counter() - start)
    assert report.trainable == 6000
    assert rate > 2000, f"{rate:.0f} records/s"  # loose: catches quadratic slips, not noise


# --- token length against a model's context --------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from workbench.demo import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


def test_token_length_estimate_is_within_a_frame_per_clip_of_the_exact_count(wavs, tiny_model, tmp_path):
    """What validation estimates from durations vs what training counts from the audio codes."""
    from workbench.models.model import load_processor
    from workbench.training.codes import CodesCache
    from workbench.training.collate import estimated_length, sequence_length

    processor = load_processor(tiny_model)
    cache = CodesCache(tmp_path / "codes", processor.audio_tokenizer)
    samples = [
        make("s1", wavs["a"]),
        make("s2", wavs["long"], ref=wavs["b"]),
        make("s3", wavs["stereo44"], ref=wavs["c"]),
    ]
    for sample in samples:
        paths = [m.audio_url for m in sample.messages if m.is_audio]
        estimate = estimated_length(sample, processor, {p: probe_module.probe(p).duration for p in paths})
        exact = sequence_length(sample, processor, cache)
        assert exact <= estimate <= exact + len(paths), (sample.id, exact, estimate)
    assert estimated_length(samples[1], processor, {wavs["long"]: 3.0}) is None  # a clip without a duration


def test_too_long_for_context_with_a_model(wavs, tiny_model, tmp_path):
    short, long = make("short", wavs["c"]), make("long", wavs["long"], ref=wavs["b"])  # 1.5 s vs 3.0 + 2.5 s
    from workbench.training.context import length_check

    report = validate([short, long], length=length_check(str(tiny_model), max_tokens=150))
    finding = only(report, "TOO_LONG_FOR_CONTEXT")
    assert finding.sample_id == "long" and finding.severity == "error"
    assert "over the 150-token context of" in finding.message and "2 clip(s)" in finding.message
    assert report.context["limit"] == 150 and report.context["longest_id"] == "long"
    assert report.context["longest"] > 25 * 5.5  # 25 tokens per second of audio, plus text

    fits = validate(
        [short, long], length=length_check(str(tiny_model))
    )  # the model's own context: 4,096 tokens
    assert "TOO_LONG_FOR_CONTEXT" not in codes(fits)
    assert fits.go_no_go().endswith(
        f"Longest sample about {fits.context['longest']:,} tokens of the 4,096-token context."
    )
    assert fits.to_dict()["summary"]["context"]["limit"] == 4096
    assert validate([short]).context is None  # without a model nothing is estimated

    from workbench.cli import main

    data = write_jsonl(tmp_path / "data.jsonl", [short, long])
    assert main(["validate", data, "--model", str(tiny_model), "--max-tokens", "150"]) == 1
    with pytest.raises(Exception, match="model folder not found"):
        length_check(str(tmp_path / "nope"))


def test_a_reference_under_a_second_is_a_warning_for_higgs_tts_3(wavs, tiny_model, tmp_path):
    from workbench.demo import make_tiny_model
    from workbench.training.context import length_check

    reference = write(tmp_path / "ref_0.8s.wav", voiced(0.8, f0=140))
    sample = make("s", wavs["c"], ref=reference)
    tts3 = validate(
        [sample], length=length_check(str(make_tiny_model(tmp_path / "v3", family="higgs-tts-3")))
    )
    finding = only(tts3, "NOT_IN_MODEL_PROMPT")
    assert finding.severity == "warning" and finding.sample_id == "s"
    assert reference in finding.message and "0.80 s" in finding.message
    v2 = validate([sample], length=length_check(str(tiny_model)))  # transformers' v2 encodes it as it is
    assert "NOT_IN_MODEL_PROMPT" not in codes(v2)
    longer = make("s", wavs["c"], ref=wavs["a"])
    assert "NOT_IN_MODEL_PROMPT" not in codes(validate([longer], length=length_check(str(tmp_path / "v3"))))
