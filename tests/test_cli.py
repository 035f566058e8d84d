"""The ``workbench`` command line: convert and demo-data (exit codes, stderr, files written); the
parameter flags of train and evaluate and ``workbench params``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from workbench.cli import main


def write_jsonl(path: Path, records: list) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records), encoding="utf-8"
    )
    return path


@pytest.fixture
def good_input(tmp_path, make_wav):
    make_wav("a.wav")
    make_wav("b.wav")
    return write_jsonl(
        tmp_path / "in.jsonl",
        [
            {"audio_filepath": "a.wav", "text": "one", "speaker": "s"},
            {"audio_filepath": "b.wav", "text": "two", "speaker": "s"},
        ],
    )


@pytest.fixture
def bad_input(tmp_path, make_wav):
    make_wav("a.wav")
    return write_jsonl(
        tmp_path / "bad.jsonl",
        [{"audio_filepath": "a.wav", "text": "one"}, "{oops", {"audio_filepath": "zzz.wav", "text": "x"}],
    )


def test_cli_convert_exit_0_creates_output_folder(tmp_path, good_input, capsys):
    out = tmp_path / "new" / "deeper" / "o.jsonl"
    code = main(["convert", str(good_input), "-o", str(out)])
    captured = capsys.readouterr()
    assert code == 0
    assert out.exists() and len(out.read_text().splitlines()) == 2
    assert "2 records -> 2 trainable, 0 prompt-only, 0 rejected" in captured.out
    assert "error" not in captured.err


def test_cli_convert_exit_1_when_rejected_and_report_written(tmp_path, bad_input, capsys):
    out = tmp_path / "o.jsonl"
    report = tmp_path / "rep" / "report.json"
    code = main(["convert", str(bad_input), "-o", str(out), "--report", str(report)])
    captured = capsys.readouterr()
    assert code == 1
    data = json.loads(report.read_text(encoding="utf-8"))
    assert (data["total"], data["converted"], data["prompts"], data["rejected"]) == (3, 1, 0, 2)
    assert data["formats"] == {"manifest": 2}
    assert [i["code"] for i in data["issues"]] == ["BAD_RECORD", "AUDIO_NOT_FOUND"]
    assert "ERROR   BAD_RECORD" in captured.out and f"{bad_input}:2" in captured.out
    assert len((tmp_path / "o.rejected.jsonl").read_text().splitlines()) == 2


def test_cli_convert_prompt_only_is_exit_0(tmp_path, make_wav, capsys):
    make_wav("r.wav")
    src = write_jsonl(
        tmp_path / "p.jsonl", [{"reference_audio": "r.wav", "reference_text": "r", "target_text": "t"}]
    )
    code = main(["convert", str(src), "-o", str(tmp_path / "o.jsonl")])
    assert code == 0
    assert "WARNING MISSING_TARGET_AUDIO" in capsys.readouterr().out
    assert (tmp_path / "o.prompts.jsonl").exists()


def test_cli_convert_unknown_format_is_usage_error(tmp_path, good_input, capsys):
    with pytest.raises(SystemExit) as info:
        main(["convert", str(good_input), "-o", str(tmp_path / "o.jsonl"), "--format", "parquet"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "--format" in err and "parquet" in err
    assert not (tmp_path / "o.jsonl").exists()


def test_cli_convert_missing_input_is_usage_error(tmp_path, capsys):
    code = main(["convert", str(tmp_path / "nope.jsonl"), "-o", str(tmp_path / "o.jsonl")])
    captured = capsys.readouterr()
    assert code == 2
    assert "nope.jsonl" in captured.err and "not found" in captured.err
    assert captured.out == ""


def test_cli_convert_existing_output_needs_overwrite(tmp_path, good_input, capsys):
    out = tmp_path / "o.jsonl"
    out.write_text("keep me\n", encoding="utf-8")
    code = main(["convert", str(good_input), "-o", str(out)])
    captured = capsys.readouterr()
    assert code == 2
    assert "already exists" in captured.err and "--overwrite" in captured.err
    assert out.read_text() == "keep me\n"
    assert main(["convert", str(good_input), "-o", str(out), "--overwrite"]) == 0
    assert len(out.read_text().splitlines()) == 2


def test_cli_convert_bad_map_and_remap_are_usage_errors(tmp_path, good_input, capsys):
    out = tmp_path / "o.jsonl"
    assert main(["convert", str(good_input), "-o", str(out), "--map", "speaker=target_text"]) == 2
    assert "unknown slot 'speaker'" in capsys.readouterr().err
    assert main(["convert", str(good_input), "-o", str(out), "--remap", "no-equals"]) == 2
    assert "OLD=NEW" in capsys.readouterr().err
    assert not out.exists()


def test_cli_convert_options_reach_the_library(tmp_path, make_wav, capsys):
    make_wav("moved/x/a.wav")
    make_wav("moved/x/b.wav")
    src = write_jsonl(
        tmp_path / "in.jsonl",
        [
            {"audio_filepath": "/old/x/a.wav", "text": "one", "speaker": "s"},
            {"audio_filepath": "/old/x/b.wav", "text": "two", "speaker": "s"},
        ],
    )
    out = tmp_path / "o.jsonl"
    code = main(
        ["convert", str(src), "-o", str(out), "--remap", f"/old={tmp_path}/moved", "--reference", "none"]
    )
    assert code == 0
    samples = [json.loads(line) for line in out.read_text().splitlines()]
    assert [len(s["messages"]) for s in samples] == [3, 3]  # no references with --reference none
    assert samples[0]["messages"][2]["content"]["audio_url"] == str(tmp_path / "moved" / "x" / "a.wav")


def test_cli_convert_missing_audio_placeholder(tmp_path, capsys):
    src = write_jsonl(tmp_path / "d" / "in.jsonl", [{"audio_filepath": "../../x.wav", "text": "t"}])
    out = tmp_path / "out" / "o.jsonl"
    code = main(["convert", str(src), "-o", str(out), "--missing-audio", "placeholder"])
    assert code == 0
    assert not (tmp_path.parent / "x.wav").exists()
    sample = json.loads(out.read_text().splitlines()[0])
    assert sample["misc"]["placeholder_audio"] == [str(tmp_path.parent / "x.wav")]
    assert "PLACEHOLDER_AUDIO" in capsys.readouterr().out


def test_cli_convert_subprocess_console_entry(tmp_path, bad_input):
    out = tmp_path / "sub" / "o.jsonl"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "workbench.cli",
            "convert",
            str(bad_input),
            "-o",
            str(out),
            "--report",
            str(tmp_path / "r.json"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1, proc.stderr
    assert json.loads((tmp_path / "r.json").read_text())["rejected"] == 2
    proc = subprocess.run(
        [sys.executable, "-m", "workbench.cli", "convert", str(bad_input), "-o", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "already exists" in proc.stderr


def test_cli_convert_demo_data_end_to_end(tmp_path, capsys):
    demo = tmp_path / "demo"
    assert main(["demo-data", str(demo)]) == 0
    printed = capsys.readouterr().out
    assert str(demo) in printed
    info = json.loads((demo / "demo.json").read_text())
    inputs = [str(demo / p) for p in info["inputs"]]
    report = tmp_path / "report.json"
    code = main(["convert", *inputs, "-o", str(tmp_path / "conv" / "demo.jsonl"), "--report", str(report)])
    assert code == 1  # the demo seeds a malformed line and a missing file
    data = json.loads(report.read_text())
    assert {k: data[k] for k in ("total", "converted", "prompts", "rejected")} == info["expected"]
    # demo-data refuses a non-empty folder without --overwrite
    assert main(["demo-data", str(demo)]) == 2
    assert "not empty" in capsys.readouterr().err
    assert main(["demo-data", str(demo), "--overwrite"]) == 0


def test_cli_make_tiny_model_builds_the_family_named_and_keeps_an_existing_folder(tmp_path, capsys):
    from workbench.models.families import detect_family
    from workbench.models.model import read_marker

    folder = tmp_path / "tiny_tts3"
    assert main(["make-tiny-model", str(folder), "--family", "higgs-tts-3", "--seed", "3"]) == 0
    assert f"tiny Higgs TTS 3 model written to {folder}" in capsys.readouterr().out
    assert detect_family(folder).name == "higgs-tts-3" and read_marker(folder)["seed"] == 3
    assert main(["make-tiny-model", str(folder), "--family", "higgs-tts-3"]) == 2
    assert "already exists" in capsys.readouterr().err
    assert read_marker(folder)["seed"] == 3  # left as it was


def test_cli_convert_output_is_a_folder_is_fatal_exit_2(tmp_path, good_input, capsys):
    folder = tmp_path / "already_a_folder.jsonl"
    folder.mkdir()
    assert main(["convert", str(good_input), "-o", str(folder)]) == 2
    assert "is a folder" in capsys.readouterr().err
    assert main(["convert", str(good_input), "-o", str(folder), "--overwrite"]) == 2
    assert "is a folder" in capsys.readouterr().err
    assert folder.is_dir() and list(folder.iterdir()) == []
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp files left


def test_cli_convert_groups_many_findings_by_code(tmp_path, make_wav, capsys):
    """The original tooling's layout (start_index 0, reference in the user turn): one warning per record,
    printed as a grouped summary; the report file keeps every finding."""
    records = []
    for i in range(25):
        make_wav(f"r{i}.wav", f0=100.0 + i)
        make_wav(f"t{i}.wav", f0=160.0 + i)
        records.append({"start_index": 0, "messages": [
            {"role": "system", "content": "Clone the voice."},
            {"role": "user", "content": [{"type": "text", "text": f"ref {i}"}, {"type": "audio", "audio_url": f"r{i}.wav"},
                                         {"type": "text", "text": f"Generate speech for: target {i}"}]},
            {"role": "assistant", "content": [{"type": "text", "text": f"target {i}"}, {"type": "audio", "audio_url": f"t{i}.wav"}]}]})  # fmt: skip
    src = write_jsonl(tmp_path / "orig.jsonl", records)
    report = tmp_path / "report.json"
    code = main(["convert", str(src), "-o", str(tmp_path / "o.jsonl"), "--report", str(report)])
    out = capsys.readouterr().out
    assert code == 0
    assert "WARNING START_INDEX_ADJUSTED: 25 findings" in out and "... and 22 more" in out
    assert out.count("hint: ") == 1 and f"every one is in {report}" in out
    assert (
        "25 records -> 25 trainable, 0 prompt-only, 0 rejected (formats: mixed: 25; layouts: mixed+start_index: 25)"
        in out
    )
    assert len(json.loads(report.read_text())["issues"]) == 25


# --- train and evaluate: flags from the parameter dataclasses ---------------------------------------
PARAMS_DIR = Path(__file__).resolve().parents[1] / "params"


def test_cli_train_flags_win_over_the_params_file_and_the_defaults():
    from workbench.cli import build_parser, overrides_from
    from workbench.training.params import TrainParams, load_train_params

    args = build_parser().parse_args(
        ["train", "--params", str(PARAMS_DIR / "demo.yaml"), "--lora-r", "4", "--no-merge",
         "--modules-to-save", "audio_lm_head", "lm_head", "-p", "max_steps", "7", "--num-processes", "1"]
    )  # fmt: skip
    overrides = overrides_from(args)
    assert overrides == {"max_steps": 7, "lora_r": 4, "merge": False, "modules_to_save": ["audio_lm_head", "lm_head"],
                         "num_processes": 1}  # fmt: skip
    params, launch = load_train_params(args.params, overrides)
    assert (params.lora_r, params.merge, params.max_steps, launch.num_processes) == (4, False, 7, 1)  # flags
    assert params.modules_to_save == ["audio_lm_head", "lm_head"]
    assert params.learning_rate == 0.005 and params.lora_alpha == 16  # the file's
    assert params.weight_decay == TrainParams.weight_decay == 0.0  # the default
    assert launch.env == {"OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}  # the file's


def test_cli_train_dry_run_launches_with_the_flags(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["train", "--params", str(PARAMS_DIR / "demo.yaml"), "--output-dir", str(out), "--dry-run"]
    assert main([*argv, "--num-processes", "3", "--main-process-port", "29511"]) == 0
    printed = capsys.readouterr().out
    assert "--num_processes 3" in printed and "--main_process_port 29511" in printed
    assert not out.exists()  # a dry run writes nothing


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--lora-r", "two"], "lora_r: expected int, got 'two'"),
        (["--lora-rank", "8"], "unrecognized arguments: --lora-rank 8"),
        (["--lora-r", "4", "-p", "lora_r", "8"], "lora_r: given both as -p NAME VALUE and as a --flag"),
        (["--env", "OMP_NUM_THREADS"], "expected NAME=VALUE, got 'OMP_NUM_THREADS'"),
    ],
)
def test_cli_train_bad_flags_are_usage_errors(flags, message, tmp_path, capsys):
    argv = [
        "train",
        "--params",
        str(PARAMS_DIR / "demo.yaml"),
        "--output-dir",
        str(tmp_path / "run"),
        "--dry-run",
    ]
    try:
        code = main([*argv, *flags])
    except SystemExit as exc:  # argparse refuses what it cannot parse
        code = exc.code
    assert code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_cli_evaluate_flags_reach_the_parameters(tmp_path, capsys):
    from workbench.cli import build_parser, overrides_from
    from workbench.evaluation.params import load_eval_params
    from workbench.notebook.report import load_notebook_params

    file = PARAMS_DIR / "evaluate_demo.yaml"
    args = build_parser().parse_args(
        [
            "evaluate",
            "--params",
            str(file),
            "--adapters",
            "runs/a",
            "runs/b",
            "--top-k",
            "null",
            "--max-samples",
            "2",
        ]
    )
    params = load_eval_params(None, load_notebook_params("05_evaluate", args.params, overrides_from(args)))
    assert (
        params.adapters == ["runs/a", "runs/b"] and params.top_k is None and params.max_samples == 2
    )  # flags
    assert params.max_new_tokens == 75 and params.max_listen == 4  # the file's; the default

    code = main(["evaluate", "--params", str(file), "--max-samples", "0", "--out", str(tmp_path / "report")])
    assert code == 2
    assert "max_samples: must be at least 1" in capsys.readouterr().err
    assert not (tmp_path / "report").exists()


def test_cli_params_prints_the_notebook_cell_and_the_table(capsys):
    from workbench.evaluation.params import EvalParams
    from workbench.training.param_schema import markdown_table, notebook_cell
    from workbench.training.params import TrainParams

    assert main(["params", "train", "--format", "cell"]) == 0
    assert capsys.readouterr().out == notebook_cell(TrainParams) + "\n"
    assert main(["params", "evaluate"]) == 0
    assert capsys.readouterr().out == markdown_table(EvalParams) + "\n"
