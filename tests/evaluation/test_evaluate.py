"""Tests for workbench.evaluation.evaluate: base vs a trained adapter vs its checkpoint, on the tiny model (real, no mocks)."""

from __future__ import annotations

import copy
import csv
import html
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import voiced
from tiny_audio_models import build_tiny_whisper, build_tiny_xvector

from workbench.data import probe as probe_module
from workbench.data.sample import Audio, Message, Sample, write_samples
from workbench.evaluation import eval_report as er
from workbench.evaluation import evaluate as ev
from workbench.notebook import eval_view
from workbench.training.checkpoints import COMPLETE_MARKER

SYSTEM = "Generate speech in the provided voice."
TEXTS = (
    "The quick brown fox jumps over the lazy dog.",
    "Hello world, this is a short test.",
    "She sells sea shells by the sea shore.",
    "How are you today? I am fine.",
    "Remember to water the plants.",
)


def _sample(sample_id: str, ref: Path, text: str, target: Path | None) -> Sample:
    messages = [
        Message("system", SYSTEM),
        Message("user", "A reference sentence."),
        Message("assistant", Audio(str(ref))),
        Message("user", text),
    ]
    if target is not None:
        messages.append(Message("assistant", Audio(str(target))))
    return Sample(sample_id, tuple(messages), 3, "spk")


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """Tiny model, voiced clips, a 3-step training run (checkpoint-2, adapter at step 3), a zero adapter."""
    from peft import LoraConfig, get_peft_model

    from workbench.demo import make_tiny_model
    from workbench.models.model import load_model_and_processor
    from workbench.training import train
    from workbench.training.params import TrainParams

    root = tmp_path_factory.mktemp("evaluate")
    with pytest.MonkeyPatch.context() as mp:  # module scope: keep the probe cache out of ~/.cache
        mp.setenv("WORKBENCH_CACHE_DIR", str(root / "cache"))
        mp.setattr(probe_module, "_default_cache", None)
        tiny = make_tiny_model(root / "tiny")
        samples = []
        for i, text in enumerate(TEXTS):
            ref, target = root / f"ref{i}.wav", root / f"target{i}.wav"
            sf.write(ref, voiced(1.2, f0=140 + 10 * i), 24_000)
            sf.write(target, voiced(1.0, f0=150 + 10 * i), 24_000)
            samples.append(_sample(f"s{i}", ref, text, target))
        write_samples(root / "train.jsonl", samples[:4])
        prompt_only = _sample("prompt_only", root / "ref0.wav", "A prompt without target audio.", None)
        broken = Sample(
            "no_text", (Message("system", SYSTEM), Message("assistant", Audio(str(root / "ref1.wav")))), 2
        )
        write_samples(root / "eval.jsonl", [samples[4], samples[0], prompt_only, broken])

        params = TrainParams(
            train_data=str(root / "train.jsonl"), val_data=None, model=str(tiny), output_dir=str(root / "run"),
            max_steps=3, save_steps=2, batch_size=2, learning_rate=5e-3, warmup_ratio=0.0, lora_r=4, lora_alpha=8,
            lora_dropout=0.0, modules_to_save=["audio_lm_head"], codes_cache_dir=str(root / "codes"), logging_steps=1,
        )  # fmt: skip
        result = train.fit(train.prepare(params))
        assert result is not None and result.global_step == 3

        model, _ = load_model_and_processor(tiny)
        zero = get_peft_model(
            copy.deepcopy(model),
            LoraConfig(
                r=4,
                lora_alpha=8,
                target_modules=["q_proj", "v_proj", "audio_mlp.down_proj"],
                modules_to_save=["audio_lm_head"],
            ),
        )
        zero.save_pretrained(root / "zero_adapter")  # LoRA B starts at zero: the adapter changes nothing
    return root


def _params(root: Path, out: str, **changes) -> ev.EvalParams:
    values = dict(
        base_model=str(root / "tiny"), adapters=[str(root / "run"), str(root / "zero_adapter")],
        eval_data=str(root / "eval.jsonl"), output_dir=str(root / out), max_new_tokens=30,
        codes_cache_dir=str(root / "codes"), max_listen=2,
    )  # fmt: skip
    values.update(changes)
    return ev.EvalParams(**values)


@pytest.fixture(scope="module")
def evaluation(workspace):
    return ev.evaluate(_params(workspace, "eval"), progress=False)


def test_resolve_candidates_orders_checkpoints_then_adapter(workspace, tmp_path):
    run = workspace / "run"
    candidates = ev.resolve_candidates("tiny", [str(run), str(workspace / "zero_adapter")])
    assert [(c.name, c.step) for c in candidates] == [
        ("base", None),
        ("checkpoint-2", 2),
        ("adapter", 3),
        ("zero_adapter", None),
    ]
    assert candidates[0].is_base and candidates[1].run == candidates[2].run == str(run.absolute())
    # checkpoint-3 holds the same weights as adapter/ and is evaluated once
    assert (run / "checkpoint-3").is_dir()

    explicit = ev.resolve_candidates("tiny", [str(run / "checkpoint-2")])
    assert [(c.name, c.step) for c in explicit] == [("base", None), ("checkpoint-2", 2)]

    # Without the completion marker a checkpoint is skipped; two runs get prefixed names.
    import shutil

    other = Path(shutil.copytree(run, tmp_path / "other_run"))
    (other / "checkpoint-2" / COMPLETE_MARKER).unlink()
    names = [c.name for c in ev.resolve_candidates("tiny", [str(run), str(other)])]
    assert names == ["base", "run/checkpoint-2", "run/adapter", "other_run/adapter"]

    with pytest.raises(FileNotFoundError, match="not a folder"):
        ev.resolve_candidates("tiny", [str(tmp_path / "missing")])
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="holds no adapter"):
        ev.resolve_candidates("tiny", [str(tmp_path / "empty")])


def test_generation_inputs_match_the_processor(workspace):
    from workbench.audio import load_audio
    from workbench.data.sample import read_samples
    from workbench.models.higgs_audio_v2 import sample_to_conversation
    from workbench.models.model import load_processor
    from workbench.training.codes import CodesCache

    processor = load_processor(workspace / "tiny")
    cache = CodesCache(workspace / "codes", processor.audio_tokenizer)
    sample = next(read_samples(workspace / "eval.jsonl"))
    prompt = ev.make_prompt(sample, seed=0)
    assert prompt.target == sample.target_audio()[-1] and prompt.text == TEXTS[4]
    assert prompt.reference == sample.reference_audio()[0]
    ours = ev.generation_inputs(prompt, processor, cache)
    waveforms = {url: load_audio(url) for url in prompt.context.reference_audio()}
    theirs = processor.apply_chat_template(
        sample_to_conversation(prompt.context, waveforms), add_generation_prompt=True, tokenize=True,
        return_dict=True, return_tensors="pt", processor_kwargs={"sampling_rate": 24_000},
    )  # fmt: skip
    for key in ("input_ids", "attention_mask", "audio_input_ids", "audio_input_ids_mask"):
        assert torch.equal(ours[key], theirs[key].to(ours[key].dtype)), key


def test_evaluate_writes_metrics_audio_and_failures(evaluation, workspace):
    out = workspace / "eval"
    names = ["base", "checkpoint-2", "adapter", "zero_adapter"]
    assert [c.name for c in evaluation.candidates] == names
    data = json.loads((out / "metrics.json").read_text())
    with open(out / "metrics.csv", newline="") as fh:
        table = list(csv.DictReader(fh))
    assert len(data["rows"]) == len(table) == 4 * 4
    assert sorted({r["candidate"] for r in table}) == sorted(names)
    assert [s["candidate"] for s in data["summary"]] == names

    rows = {(r["candidate"], r["sample_id"]): r for r in evaluation.rows}
    for name in names:
        for sid in ("s4", "s0", "prompt_only"):
            row = rows[name, sid]
            assert row["status"] == "ok", row["error"]
            wav = Path(row["audio"])
            assert wav == out / "audio" / name / f"{sid}.wav"
            audio, sr = sf.read(wav)
            assert sr == 24_000 and len(audio) > 0 and np.isfinite(audio).all()
            assert row["duration"] == pytest.approx(len(audio) / sr, abs=1e-3)
        # teacher-forced loss and reference metrics only where there is target audio
        assert rows[name, "s4"]["loss"] > 0 and 0 <= rows[name, "s4"]["acc_mean"] <= 1
        assert "acc_cb7" in rows[name, "s0"] and rows[name, "s0"]["mcd"] >= 0
        assert "loss" not in rows[name, "prompt_only"] and "mcd" not in rows[name, "prompt_only"]
        # the pitch distance to the reference voice needs no target (NaN when the clip has no voiced frame)
        assert "pitch_ref" in rows[name, "prompt_only"] and "pitch_target" not in rows[name, "prompt_only"]
        assert "pitch_target" in rows[name, "s0"]
        failed = rows[name, "no_text"]
        assert failed["status"] == "failed" and "user text message" in failed["error"]

    # training lowered the teacher-forced loss; the zero adapter did not change it
    summary = {s["candidate"]: s for s in evaluation.summary}
    assert summary["adapter"]["loss_mean"] < summary["base"]["loss_mean"]
    assert summary["zero_adapter"]["loss_mean"] == pytest.approx(summary["base"]["loss_mean"])
    assert summary["base"]["failed"] == 1 and summary["base"]["prompts"] == 4

    # no model folder: speaker similarity (GE2E), DNSMOS and English WER/CER (Whisper tiny.en) from the
    # bundled models; no x-vector columns without speaker_model
    assert {"speaker_sim_ref", "speaker_sim_target", "dnsmos_ovrl", "dnsmos_sig", "dnsmos_bak"} <= set(
        table[0]
    )
    assert {"wer", "cer", "transcript"} <= set(table[0])
    assert not {"xvector_sim_ref", "xvector_sim_target"} & set(table[0])
    for sid in ("s4", "s0", "prompt_only"):
        row = rows["adapter", sid]
        assert 1 <= row["dnsmos_ovrl"] <= 5 and row["hit_max_new_tokens"] in (True, False)
        assert row["wer"] >= 0 and 0 <= row["cer"] and isinstance(row["transcript"], str)
    for sid in ("s4", "s0"):
        row = rows["adapter", sid]
        assert 0 <= row["speaker_sim_ref"] <= 1 and 0 <= row["speaker_sim_target"] <= 1
    assert "speaker_sim_target" not in rows["adapter", "prompt_only"]  # no target to compare with
    assert any("Whisper tiny.en" in n and "English prompts only" in n for n in evaluation.notes)
    assert any("GE2E" in n for n in evaluation.notes) and any("DNSMOS" in n for n in evaluation.notes)

    # the best checkpoint by speaker similarity (ties: DNSMOS, ...), its reason in words
    best = evaluation.best
    assert best["candidate"] != "base" and best["rule"] == "auto"
    assert best["metric"] in {m for m, _ in er.AUTO_SELECT_RULE}
    sentence = evaluation.best_sentence()
    assert sentence.startswith(f"best: {best['candidate']}: speaker similarity ") and " vs base " in sentence
    assert "DNSMOS " in sentence
    assert data["best_sentence"] == evaluation.best_sentence()


def test_ab_check_tells_active_from_inactive_adapters(evaluation):
    checks = {a["candidate"]: a for a in evaluation.ab}
    for name in ("checkpoint-2", "adapter"):
        assert not checks[name]["no_effect"] and checks[name]["max_dlogit"] > 1e-3
        assert checks[name]["frames_differ"] > 0 and "is active" in checks[name]["verdict"]
    zero = checks["zero_adapter"]
    assert zero["no_effect"] and zero["max_dlogit"] == 0.0 and zero["frames_differ"] == 0.0
    assert zero["lora_b_norm"] == 0.0 and "every LoRA B matrix is zero" in zero["verdict"]
    # same seed per prompt: the inactive adapter generated exactly the base model's audio
    rows = {(r["candidate"], r["sample_id"]): r for r in evaluation.rows}
    base, same = sf.read(rows["base", "s0"]["audio"])[0], sf.read(rows["zero_adapter", "s0"]["audio"])[0]
    assert np.array_equal(base, same)
    assert "no effect: zero_adapter" in evaluation.summary_line()


def test_presentation_helpers(evaluation):
    table = eval_view.summary_rows(evaluation)
    assert [r["model"] for r in table] == ["base", "checkpoint-2", "adapter", "zero_adapter"]
    assert "±" in table[0]["loss"] and "acc_cb0" not in table[0]
    assert "acc_cb0" in eval_view.summary_rows(evaluation, per_codebook=True)[0]
    figure = eval_view.metric_plots(evaluation)
    assert figure is not None and any(
        ax.get_title().startswith("mel-cepstral distortion") for ax in figure.axes
    )
    page = eval_view.listening_html(evaluation)
    # two prompts embedded (max_listen=2): reference, target and four models each
    assert page.count("<audio") == page.count("<img") == 2 * (2 + 4)
    assert "not embedded (max_listen reached)" in page and "failed: ValueError" in page
    # what the recogniser heard, under each clip that has a WER
    heard = [r for r in evaluation.rows if isinstance(r.get("transcript"), str)]
    assert heard and page.count('class="wb-heard"') == len(heard)
    assert f"heard: “{html.escape(heard[0]['transcript'])}”" in page


def test_optional_models_add_columns_and_drive_selection(workspace):
    whisper = build_tiny_whisper(workspace / "whisper")
    xvector = build_tiny_xvector(workspace / "xvector")
    params = _params(
        workspace, "eval_models", adapters=[str(workspace / "run" / "checkpoint-2")], max_samples=2,
        asr_model=str(whisper), speaker_model=str(xvector), temperature=0.0, ras_win_len=0,
    )  # fmt: skip
    result = ev.evaluate(params, progress=False)
    row = next(r for r in result.rows if r["candidate"] == "checkpoint-2" and r["sample_id"] == "s4")
    assert row["status"] == "ok" and "metrics_error" not in row, row
    assert 0 <= row["cer"] and 0 <= row["wer"] and isinstance(row["transcript"], str)
    assert -1 <= row["xvector_sim_ref"] <= 1 and -1 <= row["xvector_sim_target"] <= 1  # in addition to GE2E
    assert 0 <= row["speaker_sim_ref"] <= 1 and "dnsmos_ovrl" in row
    assert not any("left out" in n for n in result.notes), result.notes
    assert any(str(whisper) in n for n in result.notes) and any(str(xvector) in n for n in result.notes)
    assert not any(
        "Whisper tiny.en" in n for n in result.notes
    )  # asr_model scores in place of the bundled one
    assert result.best["candidate"] == "checkpoint-2" and "WER " in result.best_sentence()

    with pytest.raises(Exception, match="asr_model") as info:
        ev.evaluate(_params(workspace, "eval_bad", asr_model=str(workspace / "no_such_asr")), progress=False)
    from workbench.evaluation.model_scorers import OptionalModelError

    assert isinstance(info.value, OptionalModelError)


def test_too_short_generation_is_a_no_audio_row(workspace):
    params = _params(
        workspace, "eval_short", adapters=[str(workspace / "zero_adapter")], max_samples=1, max_new_tokens=4
    )
    result = ev.evaluate(params, progress=False)
    assert [r["status"] for r in result.rows] == ["no_audio", "no_audio"]
    assert (
        "audio frame(s) were generated" in result.rows[0]["error"]
        and "max_new_tokens" in result.rows[0]["error"]
    )
    assert [(s["failed"], s["no_audio"]) for s in result.summary] == [(0, 1), (0, 1)]
    assert "2 generation(s) ended before any audio" in result.summary_line()
    assert "failed" not in result.summary_line()
    assert [r["no audio"] for r in eval_view.summary_rows(result)] == [1, 1]
    assert eval_view.listening_html(result).count("no audio: only") == 2
    # no audio, so no voice scores: the adapter is chosen by the teacher-forced loss, its silence said
    assert result.best["metric"] == "loss" and "1 silent clip of 1" in result.best_sentence()
    assert er.best_sentence(None).startswith("best: none")


def test_a_checkpoint_that_falls_silent_is_never_chosen():
    from workbench.evaluation.candidates import Candidate

    cands = [Candidate("base"), Candidate("checkpoint-2", step=2), Candidate("checkpoint-4", step=4)]

    def row(name, sid, status, mcd):
        return {"candidate": name, "sample_id": sid, "status": status, "mcd": mcd}

    rows = [row("base", "a", "ok", 9.0), row("base", "b", "ok", 9.0)]
    rows += [row("checkpoint-2", "a", "ok", 8.0), row("checkpoint-2", "b", "ok", 8.5)]
    rows += [row("checkpoint-4", "a", "ok", 5.0), row("checkpoint-4", "b", "no_audio", None)]
    summary = er.summarize(rows, cands)
    assert [(s["failed"], s["no_audio"]) for s in summary] == [(0, 0), (0, 0), (0, 1)]
    assert summary[2]["mcd_mean"] == 5.0  # the best mean, from one clip of two
    best = er.select_best(summary)
    assert best["candidate"] == "checkpoint-2" and best["value"] == 8.25
    # all silent somewhere: the fewest silent prompts win, then the metric
    rows[2]["status"], rows[2]["mcd"] = "failed", None
    best = er.select_best(er.summarize(rows, cands))
    assert best["candidate"] == "checkpoint-4"


def test_cli_evaluate_runs_notebook_05_headless(workspace, tmp_path, capsys):
    from workbench.cli import main

    params = _params(workspace, "eval_cli", adapters=[str(workspace / "run")], max_samples=2)
    file = tmp_path / "evaluate.yaml"
    file.write_text(json.dumps(params.to_dict()))  # JSON is YAML
    code = main(
        ["evaluate", "--params", str(file), "-p", "max_listen", "1", "--out", str(tmp_path / "report")]
    )
    assert code == 0, capsys.readouterr().err
    page = (tmp_path / "report" / "05_evaluate.html").read_text()
    assert "<audio" in page and "<img" in page
    assert "best: " in page and "is active" in page
    assert (workspace / "eval_cli" / "metrics.json").is_file()
    from workbench.notebook.report import notebook_status

    status = notebook_status(tmp_path / "report" / "05_evaluate.ipynb")
    assert status["ok"] and status["summary"].startswith("3 models x 2 prompts")

    assert main(["evaluate", "--params", str(file), "-p", "temprature", "0"]) == 2
    assert "did you mean 'temperature'" in capsys.readouterr().err


def test_prompts_split_across_ranks(monkeypatch):
    items = list(range(7))
    shares = [ev.shard(items, rank, 3) for rank in range(3)]
    assert sorted(x for share in shares for x in share) == items and shares[0] == [0, 3, 6]
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert ev._rank_and_world(None, None) == (1, 2)
    with pytest.raises(ValueError, match="rank must be in"):
        ev._rank_and_world(2, 2)


@pytest.mark.slow
def test_evaluate_on_two_ranks_gives_the_rows_of_one_process(workspace, tmp_path, monkeypatch):
    """`workbench evaluate` with num_processes 2: accelerate launch, prompts split, rank 0 merges and reports."""
    from workbench.cli import main
    from workbench.notebook.report import notebook_status

    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the same float reductions in both runs
    runs = {}
    for procs in (1, 2):
        params = _params(workspace, f"eval_ranks{procs}", adapters=[str(workspace / "run")], max_listen=1)
        file = tmp_path / f"evaluate{procs}.yaml"
        file.write_text(
            json.dumps({**params.to_dict(), "num_processes": procs, "env": {"OMP_NUM_THREADS": 1}})
        )
        assert main(["evaluate", "--params", str(file)]) == 0
        runs[procs] = Path(params.output_dir)

    one, two = (json.loads((runs[n] / "metrics.json").read_text()) for n in (1, 2))
    assert len(two["rows"]) == len(one["rows"]) == 3 * 4  # base, checkpoint-2, adapter x 4 prompts
    keys = ("candidate", "sample_id", "status", "gen_frames", "seed")
    assert [{k: r.get(k) for k in keys} for r in two["rows"]] == [
        {k: r.get(k) for k in keys} for r in one["rows"]
    ]
    for a, b in zip(one["rows"], two["rows"], strict=True):
        if a.get("loss") is not None:
            assert b["loss"] == pytest.approx(a["loss"], rel=1e-4)
    one_codes = sorted(p.relative_to(runs[1]) for p in runs[1].glob("audio/*/*.codes.npy"))
    assert one_codes and one_codes == sorted(
        p.relative_to(runs[2]) for p in runs[2].glob("audio/*/*.codes.npy")
    )
    for rel in one_codes:
        np.testing.assert_array_equal(np.load(runs[1] / rel), np.load(runs[2] / rel), err_msg=str(rel))
    assert two["best"] == one["best"]
    # Rank 0 wrote the report; rank 1 its log notebook; both ranks wrote their shard of rows.
    status = notebook_status(runs[2] / "05_evaluate.ipynb")
    assert status["ok"] and status["summary"].startswith("3 models x 4 prompts"), status
    assert (runs[2] / "05_evaluate.html").is_file()
    assert notebook_status(runs[2] / "logs" / "05_evaluate.rank1.ipynb")["ok"]
    shards = {p.name: json.loads(p.read_text()) for p in (runs[2] / "shards").glob("*.json")}
    assert sorted(shards) == ["rows.rank0.json", "rows.rank1.json"]
    assert {r["sample_id"] for r in shards["rows.rank1.json"]} == {
        "s0",
        "no_text",
    }  # round-robin: prompts 1 and 3


# --- workbench generate ----------------------------------------------------------------------------
def test_generate_speaks_with_base_adapter_and_is_repeatable(workspace, tmp_path, capsys):
    """`workbench generate`: the adapter's base is found, clips are 24 kHz WAVs, a seed repeats a clip,
    a zero adapter sounds exactly like the base model and the trained adapter does not."""
    from workbench.cli import main

    ref = str(workspace / "ref0.wav")
    common = ["--reference", ref, "--reference-text", "A reference sentence.", "--text", TEXTS[1]]
    common += ["--max-new-tokens", "40", "--codes-cache-dir", str(workspace / "codes")]
    clips = {}
    for name, source in {
        "base": ["--model", str(workspace / "tiny")],
        "base_again": ["--model", str(workspace / "tiny")],
        "zero": ["--model", str(workspace / "tiny"), "--adapter", str(workspace / "zero_adapter")],
        "trained": ["--adapter", str(workspace / "run" / "adapter")],  # base from adapter_config.json
    }.items():
        out = tmp_path / f"{name}.wav"
        assert main(["generate", *source, *common, "-o", str(out)]) == 0, capsys.readouterr().err
        assert f"{out}  " in capsys.readouterr().out
        audio, sr = sf.read(out)
        assert sr == 24_000 and len(audio) > 0 and np.isfinite(audio).all()
        clips[name] = audio
    np.testing.assert_array_equal(clips["base"], clips["base_again"])
    np.testing.assert_array_equal(clips["base"], clips["zero"])
    assert len(clips["trained"]) != len(clips["base"]) or not np.array_equal(clips["trained"], clips["base"])

    # Several texts go to a folder, one numbered file each.
    texts = tmp_path / "texts.txt"
    texts.write_text(f"{TEXTS[0]}\n\n{TEXTS[2]}\n", encoding="utf-8")
    folder = tmp_path / "many"
    code = main(["generate", "--model", str(workspace / "tiny"), "--text-file", str(texts), "-o", str(folder),
                 "--max-new-tokens", "40", "--codes-cache-dir", str(workspace / "codes")])  # fmt: skip
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert sorted(p.name for p in folder.glob("*.wav")) == [
        "000_The_quick_brown_fox_jumps_over_the_lazy.wav",
        "001_She_sells_sea_shells_by_the_sea_shore.wav",
    ]
    assert printed.count("real-time factor") == 2


def test_generate_errors_name_the_problem(workspace, tmp_path, capsys):
    from workbench.cli import main

    tiny = str(workspace / "tiny")
    cases = [
        (["--model", tiny, "--reference", str(workspace / "ref0.wav"), "--text", "x"], "--reference-text is missing"),
        (["--model", tiny, "--reference", str(tmp_path / "nope.wav"), "--reference-text", "r", "--text", "x"],
         "--reference: file not found"),
        (["--adapter", tiny, "--text", "x"], "not a LoRA adapter folder (no adapter_config.json)"),
        (["--text", "x"], "give --model"),
        (["--model", tiny, "--text", "  "], "no empty one"),
        (["--model", tiny, "--text", "x", "--temperature", "-1"], "temperature: must be >= 0"),
        (["--model", tiny, "--text", "x", "--text", "y"], "2 texts make 2 clips; give a folder instead"),
    ]  # fmt: skip
    for args, message in cases:
        assert main(["generate", *args, "-o", str(tmp_path / "x.wav")]) == 2, args
        assert message in capsys.readouterr().err, args
    assert not (tmp_path / "x.wav").exists()
    (tmp_path / "x.wav").write_bytes(b"mine")
    assert main(["generate", "--model", tiny, "--text", "x", "-o", str(tmp_path / "x.wav")]) == 2
    assert "output already exists" in capsys.readouterr().err and (tmp_path / "x.wav").read_bytes() == b"mine"
