"""End-to-end tests of ``workbench train``: notebook 04 on 2 CPU ranks under ``accelerate launch``.

Real launches (no mocks) of the tiny model on the demo split: a full run with its report, a rank
that fails inside the notebook, and a launch killed mid-run and started again.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from workbench.cli import EXIT_DATA
from workbench.demo import make_tiny_model
from workbench.training.checkpoints import COMPLETE_MARKER
from workbench.training.launch import NOTEBOOK

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
DEMO_PARAMS = ROOT / "params" / "demo.yaml"
LAUNCH_TIMEOUT_S = 300


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("tiny") / "model", seed=0)


@pytest.fixture(scope="module")
def launch_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PYTHONUNBUFFERED": "1",
        "WORKBENCH_CACHE_DIR": str(tmp_path_factory.mktemp("cache")),
    }


@pytest.fixture(scope="module")
def train_command(demo_run: Path, tiny_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """``workbench train --params params/demo.yaml -p ...`` on the demo split into ``out``."""
    codes = tmp_path_factory.getbasetemp() / "codes-cache"  # shared with test_train: same codec

    def command(out: Path, *overrides: str) -> list[str]:
        cmd = [sys.executable, "-m", "workbench.cli", "train", "--params", str(DEMO_PARAMS)]
        values = {
            "train_data": demo_run / "03_validate" / "train.jsonl",
            "val_data": demo_run / "03_validate" / "val.jsonl",
            "model": tiny_dir,
            "output_dir": out,
            "codes_cache_dir": codes,
        }
        for name, value in values.items():
            cmd += ["-p", name, str(value)]
        for name, value in zip(overrides[::2], overrides[1::2], strict=True):
            cmd += ["-p", name, value]
        return cmd

    return command


def run(cmd: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        cmd,
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=LAUNCH_TIMEOUT_S,
    )


def run_steps(cli: list[str], steps: list[list[str]], env: dict[str, str], cwd: Path) -> dict[str, str]:
    """Run each CLI step in turn, each must succeed; what each printed, by its first two words."""
    printed = {}
    for step in steps:
        proc = run(cli + step, env, cwd)
        assert proc.returncode == 0, (step[:2], proc.stdout[-4000:])
        printed[" ".join(step[:2])] = proc.stdout
    return printed


# What the terminal of a launch never shows (the notebooks keep all of it).
NOISE = (
    "Input Notebook", "Working directory", "Executing notebook with kernel", "Kernel is running over TCP",
    "<IPython.core.display.", "FutureWarning", "it/s]",
)  # fmt: skip
PROGRESS_LINE = re.compile(
    r"step (\d+)/(\d+) \| loss [\d.e+-]+ \| lr [\d.e+-]+ \| [\d,]+ tokens/s \| elapsed \d+:\d\d:\d\d \| ETA \d+:\d\d:\d\d"
)


def progress_steps(terminal: str) -> list[int]:
    """The steps of the progress lines in a launch's output; every line that starts like one must be one."""
    lines = [line for line in terminal.splitlines() if line.startswith("step ")]
    matches = [PROGRESS_LINE.fullmatch(line) for line in lines]
    assert all(matches), [line for line, m in zip(lines, matches, strict=True) if not m]
    return [int(m.group(1)) for m in matches]


def notebook_text(ipynb: Path) -> str:
    """The stream output (prints, logs) of an executed notebook."""
    nb = json.loads(ipynb.read_text())
    return "".join(
        "".join(o.get("text", ""))
        for cell in nb["cells"]
        for o in cell.get("outputs", [])
        if o["output_type"] == "stream"
    )


def training_losses(out: Path) -> list[tuple[int, float]]:
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return [(r["step"], r["loss"]) for r in rows if "loss" in r]


def notebook_errors(ipynb: Path) -> list[str]:
    nb = json.loads(ipynb.read_text())
    return [
        f"{o['ename']}: {o['evalue']}"
        for cell in nb["cells"]
        for o in cell.get("outputs", [])
        if o.get("output_type") == "error"
    ]


def test_demo_params_train_on_two_ranks(train_command, launch_env, tmp_path: Path) -> None:
    out = tmp_path / "train"
    proc = run(train_command(out), launch_env, tmp_path)
    assert proc.returncode == 0, proc.stdout[-6000:]
    assert "--num_processes 2" in proc.stdout

    report = out / f"{NOTEBOOK}.ipynb"
    assert report.is_file() and notebook_errors(report) == []
    html = (out / f"{NOTEBOOK}.html").read_text()
    assert "<img" in html  # the training curves, embedded
    rank1 = out / "logs" / f"{NOTEBOOK}.rank1.ipynb"
    assert rank1.is_file() and notebook_errors(rank1) == []
    assert not (out / "logs" / f"{NOTEBOOK}.html").exists()  # only rank 0 writes the report

    run_record = json.loads((out / "run.json").read_text())
    assert run_record["world_size"] == 2
    assert run_record["result"]["global_step"] == 40  # max_steps in params/demo.yaml
    losses = [loss for _, loss in training_losses(out)]
    assert len(losses) == 8 and losses[-1] < 0.7 * losses[0], losses
    assert (out / "adapter" / "adapter_model.safetensors").is_file()
    assert (out / "merged" / "config.json").is_file()  # merge: true in demo.yaml

    # The terminal is rank 0's: a line per logging step (max_steps 40 / logging_steps 5), one per
    # evaluation (eval_steps 20), every other message once, no notebook or library chatter.
    terminal = proc.stdout
    assert progress_steps(terminal) == list(range(5, 41, 5)), terminal[-6000:]
    assert "tokens/s: non-padding input tokens over 2 ranks" in terminal
    evals = [line for line in terminal.splitlines() if line.startswith("eval at step")]
    assert [line.split(" |")[0] for line in evals] == ["eval at step 20/40", "eval at step 40/40"], evals
    assert all(re.search(r"\| loss [\d.e+-]+ \| codebook accuracy [\d.]+%", line) for line in evals), evals
    assert len(re.findall(r"\d+ train / \d+ val samples", terminal)) == 1
    assert terminal.count("schedule: effective batch") == 1 and terminal.count("Output Notebook") == 1
    for noise in NOISE:
        assert noise not in terminal, noise
    # The executed notebooks keep everything: the progress lines and the HTML tables in rank 0's,
    # and rank 1 printed no progress of its own.
    assert "step 40/40 |" in notebook_text(report) and "text/html" in report.read_text()
    assert "step 40/40 |" not in notebook_text(rank1)
    # No progress-bar widgets (blank boxes in the HTML report): the progress lines stand in for them.
    assert "application/vnd.jupyter.widget-view+json" not in report.read_text()


def test_a_failing_rank_fails_the_launch(train_command, launch_env, tmp_path: Path) -> None:
    out = tmp_path / "train"
    # Valid parameters; the data check inside the notebook refuses sequences over 64 tokens.
    proc = run(train_command(out, "max_length", "64"), launch_env, tmp_path)
    assert proc.returncode != 0
    assert "rank 0 failed" in proc.stdout and "DataCheckError" in proc.stdout
    assert "longer than the model's context of 64 tokens" in proc.stdout
    # One line per failing rank, naming its notebook: the error is not repeated by the notebook runner.
    assert proc.stdout.count("longer than the model's context of 64 tokens") <= 2, proc.stdout[-6000:]
    assert "failed at cell" not in proc.stdout
    assert "the launch of 04_train failed" in proc.stdout
    # Rank 0 leaves its partial report, even when torchrun stops it because rank 1 failed first
    # (then the report shows the kernel it killed, unless its own DataCheckError came first).
    errors = notebook_errors(out / f"{NOTEBOOK}.ipynb")
    assert len(errors) == 1 and errors[0].startswith(("DataCheckError", "DeadKernelError")), errors
    assert (out / f"{NOTEBOOK}.html").is_file()
    assert not (out / "adapter").exists() and not list(out.glob("checkpoint-*"))


def complete_checkpoints(out: Path) -> list[Path]:
    found = [d for d in out.glob("checkpoint-*") if (d / COMPLETE_MARKER).is_file()]
    return sorted(found, key=lambda d: int(d.name.split("-")[1]))


def launch_until_checkpoint(
    cmd: list[str], env: dict[str, str], cwd: Path, log: Path, out: Path
) -> tuple[subprocess.Popen, list[psutil.Process]]:
    """Start a launch in a session of its own, its output to ``log``; return once a checkpoint is
    complete, with the launch and its processes (launcher, ranks, kernels). A launch that ends
    first, or no checkpoint within the deadline, fails the test (the launch is killed)."""
    with open(log, "w") as fh:
        proc = subprocess.Popen(
            cmd, env=env, cwd=cwd, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        deadline = time.monotonic() + LAUNCH_TIMEOUT_S
        while not complete_checkpoints(out):
            assert proc.poll() is None, (
                f"the launch ended before its first checkpoint:\n{log.read_text()[-6000:]}"
            )
            assert time.monotonic() < deadline, "no complete checkpoint in time"
            time.sleep(0.1)
        return proc, psutil.Process(proc.pid).children(recursive=True)
    except BaseException:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise


def test_killed_launch_resumes_from_the_last_complete_checkpoint(
    train_command, launch_env, tmp_path: Path
) -> None:
    out = tmp_path / "train"
    # Gradient accumulation slows each step down, so that the kill lands mid-run.
    cmd = train_command(
        out, "max_steps", "30", "save_steps", "5", "gradient_accumulation_steps", "4", "merge", "false"
    )
    proc, processes = launch_until_checkpoint(cmd, launch_env, tmp_path, tmp_path / "killed.log", out)
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    # Ranks and kernels live in sessions of their own: they must stop with the launch, not train on.
    _, alive = psutil.wait_procs(processes, timeout=15)
    for p in alive:
        p.kill()
    assert alive == [], f"still running after the launch was killed: {[p.pid for p in alive]}"

    assert not (out / "run.json").exists(), "the run finished before the kill; nothing to resume"
    last = complete_checkpoints(out)[-1]
    assert int(last.name.split("-")[1]) < 30
    fake = out / "checkpoint-999"  # a save cut short: no marker, must never be picked
    fake.mkdir()
    (fake / "trainer_state.json").write_text(json.dumps({"global_step": 999}))

    proc = run(cmd, launch_env, tmp_path)
    assert proc.returncode == 0, proc.stdout[-6000:]
    assert f"resuming from {last}" in proc.stdout
    assert "removing incomplete checkpoint" in proc.stdout and not fake.exists()
    result = json.loads((out / "run.json").read_text())["result"]
    assert result["resumed_from"] == str(last)
    assert result["global_step"] == 30
    state = json.loads((out / "checkpoint-30" / "trainer_state.json").read_text())
    assert state["global_step"] == 30 and (out / "checkpoint-30" / COMPLETE_MARKER).is_file()
    steps = [step for step, _ in training_losses(out)]
    assert steps == sorted(set(steps)) and steps[-1] == 30  # one curve: no rows repeated after the resume


def test_ctrl_c_stops_every_rank_and_the_same_command_resumes(
    train_command, launch_env, tmp_path: Path
) -> None:
    """Ctrl-C in the terminal (SIGINT to the launch's process group): every rank and kernel stops, rank
    0's partial report is written, the launcher says once where the run stands; the same command resumes."""
    out = tmp_path / "train"
    cmd = train_command(
        out, "max_steps", "30", "save_steps", "5", "gradient_accumulation_steps", "4", "merge", "false"
    )
    log = tmp_path / "interrupted.log"
    proc, processes = launch_until_checkpoint(cmd, launch_env, tmp_path, log, out)
    try:
        assert len(processes) >= 5, processes
        os.killpg(proc.pid, signal.SIGINT)  # what a terminal sends on Ctrl-C
        code = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    _, alive = psutil.wait_procs(processes, timeout=30)
    for p in alive:
        p.kill()
    assert alive == [], f"still running after Ctrl-C: {[p.pid for p in alive]}"
    printed = log.read_text()
    assert code == 130, printed[-6000:]
    assert not (out / "run.json").exists(), "the run finished before Ctrl-C; nothing to resume"
    last = complete_checkpoints(out)[-1]
    assert printed.count(f"04_train stopped; partial report: {out / (NOTEBOOK + '.ipynb')}") == 1, printed[
        -3000:
    ]
    assert f"the same command resumes from {last.name}" in printed
    assert "Traceback" not in printed and "rank 1" not in printed, printed[-6000:]
    assert (out / f"{NOTEBOOK}.html").is_file() and (out / "logs" / f"{NOTEBOOK}.rank1.ipynb").is_file()

    proc = run(cmd, launch_env, tmp_path)
    assert proc.returncode == 0, proc.stdout[-6000:]
    step = int(last.name.split("-")[1])
    assert f"resuming from {last}" in proc.stdout
    assert f"training 30 steps from step {step}" in proc.stdout
    assert progress_steps(proc.stdout) == list(range(step + 5, 31, 5)), proc.stdout[-6000:]
    assert json.loads((out / "run.json").read_text())["result"]["global_step"] == 30


def test_own_voice_flow_from_a_folder_of_clips(tiny_dir: Path, launch_env, tmp_path: Path) -> None:
    """The README's "your own voice" commands, run from the data's folder: a folder of clips with
    transcripts -> convert -> validate against the model -> split -> train with params/single_gpu.yaml
    (one process, its accelerate config found beside the params file) -> generate with the adapter."""
    import numpy as np
    import soundfile as sf
    from conftest import voiced

    me = tmp_path / "data" / "me"
    me.mkdir(parents=True)
    texts = ["The first line I read.", "A second, longer sentence.", "Number three.", "And the fourth one."]
    for i, text in enumerate(texts):
        sf.write(me / f"{i:04d}.wav", voiced(1.2 + 0.2 * i, f0=130.0 + 5 * i), 24_000)
        (me / f"{i:04d}.txt").write_text(text + "\n")
    cli = [sys.executable, "-m", "workbench.cli"]
    steps = [
        ["convert", "data", "-o", "work/converted.jsonl"],
        ["validate", "work/converted.jsonl", "--model", str(tiny_dir)],
        ["split", "work/converted.jsonl", "-o", "work/train.jsonl", "--val-out", "work/val.jsonl", "--by", "sample",
         "--val-fraction", "0.25"],
        ["train", "--params", str(ROOT / "params" / "single_gpu.yaml"), "-p", "model", str(tiny_dir),
         "-p", "train_data", "work/train.jsonl", "-p", "val_data", "work/val.jsonl", "-p", "output_dir", "runs/me",
         "-p", "max_steps", "4", "-p", "save_steps", "2", "-p", "eval_steps", "2", "-p", "batch_size", "1",
         "-p", "gradient_accumulation_steps", "1", "-p", "dataloader_num_workers", "0",
         "-p", "mixed_precision", "no", "-p", "activation_checkpointing", "false"],
        ["generate", "--adapter", "runs/me/adapter", "--reference", "data/me/0000.wav", "--reference-text", texts[0],
         "--text", "Hello, this is my voice.", "-o", "hello.wav", "--max-new-tokens", "40"],
    ]  # fmt: skip
    printed = {}
    for step in steps:
        proc = run(cli + step, launch_env, tmp_path)
        assert proc.returncode == 0, (step[0], proc.stdout[-4000:])
        printed[step[0]] = proc.stdout
        if step[0] == "validate":
            assert "GO: 4 trainable samples" in proc.stdout and "-token context." in proc.stdout
    # The launcher ends with the next commands; the comparison it prints runs as printed.
    lines = printed["train"].splitlines()
    assert "next:" in lines
    listen = shlex.split(
        next(line.split(":  ", 1)[1] for line in lines if line.strip().startswith("listen:"))
    )
    # a clip of the trained voice and its own transcript, ready to paste
    reference = listen[listen.index("--reference") + 1]
    assert listen[:3] == ["workbench", "generate", "--adapter"] and Path(reference).parent == me
    assert listen[listen.index("--reference-text") + 1] == texts[int(Path(reference).stem)]
    evaluate = next(line.split(":  ", 1)[1] for line in lines if "compare every checkpoint" in line)
    proc = run(cli + shlex.split(evaluate)[1:], launch_env, tmp_path)
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert (tmp_path / "runs" / "me" / "05_evaluate" / "metrics.json").is_file()
    converted = [
        json.loads(line) for line in (tmp_path / "work" / "converted.jsonl").read_text().splitlines()
    ]
    assert sorted(d["id"] for d in converted) == [f"me/{i:04d}" for i in range(4)]
    assert all(d["speaker"] == "me" for d in converted)
    run_json = json.loads((tmp_path / "runs" / "me" / "run.json").read_text())
    assert run_json["world_size"] == 1 and run_json["result"]["global_step"] == 4
    audio, sr = sf.read(tmp_path / "hello.wav")
    assert sr == 24_000 and len(audio) > 0 and np.isfinite(audio).all()


def _original_tooling_dataset(root: Path, n: int, split: str, seed: int) -> Path:
    """Records as the original Higgs Audio tooling's training files write them: reference audio in
    the user turn, the assistant turn holding [text, audio], start_index 0, instruction-prefixed
    target text, transcripts in misc; audio paths relative to the JSON file."""
    import numpy as np
    import soundfile as sf
    from conftest import voiced

    (root / "data").mkdir(parents=True, exist_ok=True)
    records = []
    for i in range(n):
        k = seed + i
        ref, target = f"ref_{k:04d}.wav", f"target_{k:04d}.wav"
        noise = (
            np.random.default_rng(k).normal(0.0, 0.005, 2 * 24_000).astype(np.float32)
        )  # every clip its own
        ref_wave = voiced(1.0 + 0.05 * (k % 4), f0=120.0 + 3 * (k % 9))
        target_wave = voiced(1.2 + 0.1 * (k % 3), f0=140.0 + 4 * (k % 7))
        sf.write(root / "data" / ref, ref_wave + noise[: len(ref_wave)], 24_000)
        sf.write(root / "data" / target, target_wave + noise[-len(target_wave) :], 24_000)
        ref_text, target_text = f"Reference sentence number {k}.", f"The target sentence {k} is spoken here."
        records.append({
            "messages": [
                {"role": "system", "content": "You are a helpful assistant capable of generating speech in the "
                 "voice of the provided reference audio."},
                {"role": "user", "content": [
                    {"type": "text", "text": ref_text},
                    {"type": "audio", "audio_url": f"../data/{ref}", "raw_audio": "", "duration": None, "offset": None},
                    {"type": "text", "text": f"Please generate speech for given text in reference audio's voice: {target_text}"}]},
                {"role": "assistant", "content": [
                    {"type": "text", "text": target_text},
                    {"type": "audio", "audio_url": f"../data/{target}", "duration": 1.2}]}],
            "start_index": 0, "speaker": f"sample_{k:04d}",
            "misc": {"ref_transcript": ref_text, "target_transcript": target_text, "duration": 1.2},
        })  # fmt: skip
    path = root / "json" / f"{split}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(records, indent=1))
    return path


def test_original_tooling_layout_trains_end_to_end(tiny_dir: Path, launch_env, tmp_path: Path) -> None:
    """convert -> validate -> train (2 ranks) -> evaluate -> generate on the original tooling's own
    mixed-content layout, and what training sees: no instruction prefix, no text-only assistant turn,
    start_index at the target, reference audio never labelled."""
    import torch

    from workbench.data.formats.instructions import has_instruction
    from workbench.data.sample import load_samples
    from workbench.models.model import load_processor
    from workbench.training.codes import CodesCache
    from workbench.training.collate import IGNORE_INDEX, encode_sample

    _original_tooling_dataset(tmp_path / "dataset", 24, "train", seed=0)
    _original_tooling_dataset(tmp_path / "dataset", 6, "val", seed=100)
    cli = [sys.executable, "-m", "workbench.cli"]
    steps = [
        ["convert", "dataset/json/train.json", "-o", "work/train.jsonl"],
        ["convert", "dataset/json/val.json", "-o", "work/val.jsonl"],
        ["validate", "work/train.jsonl", "--val", "work/val.jsonl", "--model", str(tiny_dir)],
        ["train", "--params", str(DEMO_PARAMS), "-p", "model", str(tiny_dir), "-p", "train_data", "work/train.jsonl",
         "-p", "val_data", "work/val.jsonl", "-p", "output_dir", "runs/orig", "-p", "codes_cache_dir", "codes",
         "-p", "max_steps", "6", "-p", "save_steps", "3", "-p", "eval_steps", "3", "-p", "merge", "false"],
    ]  # fmt: skip
    printed = run_steps(cli, steps, launch_env, tmp_path)
    convert_out = printed["convert dataset/json/train.json"]
    assert "24 records -> 24 trainable, 0 prompt-only, 0 rejected" in convert_out
    assert "layouts: mixed+start_index: 24" in convert_out
    assert "GO: 30 trainable samples, no errors" in printed["validate work/train.jsonl"]
    run_json = json.loads((tmp_path / "runs" / "orig" / "run.json").read_text())
    assert run_json["world_size"] == 2 and run_json["result"]["global_step"] == 6

    lines = printed["train --params"].splitlines()
    evaluate = next(line.split(":  ", 1)[1] for line in lines if "compare every checkpoint" in line)
    proc = run(cli + shlex.split(evaluate)[1:], launch_env, tmp_path)
    assert proc.returncode == 0, proc.stdout[-4000:]
    rows = json.loads((tmp_path / "runs" / "orig" / "05_evaluate" / "metrics.json").read_text())["rows"]
    # The base model's generations do not depend on training: all of them give audio. A trained
    # random model may end a clip at once; that is a no_audio row with its reason, never a failure.
    odd = [(r["candidate"], r["sample_id"], r["status"], r["error"]) for r in rows if r["status"] != "ok"]
    assert rows and all(r["status"] == "ok" for r in rows if r["candidate"] == "base"), odd
    assert all(
        r["status"] == "no_audio" and "generated before the end" in r["error"]
        for r in rows
        if r["status"] != "ok"
    ), odd
    assert {r["candidate"] for r in rows} >= {"base", "adapter", "checkpoint-3"}
    proc = run(cli + ["generate", "--adapter", "runs/orig/adapter", "--reference", "dataset/data/ref_0000.wav",
                      "--reference-text", "Reference sentence number 0.", "--text", "Hello from the original layout.",
                      "-o", "hello.wav", "--max-new-tokens", "30"], launch_env, tmp_path)  # fmt: skip
    if proc.returncode == 0:
        assert (tmp_path / "hello.wav").stat().st_size > 44
    else:  # the trained random model ended the clip at once: said plainly, no file written
        assert proc.returncode == EXIT_DATA and "NO AUDIO" in proc.stdout, proc.stdout[-4000:]
        assert not (tmp_path / "hello.wav").exists()

    # What training saw, checked on the samples and on the collated labels themselves.
    processor = load_processor(tiny_dir)
    cache = CodesCache(tmp_path / "codes", processor.audio_tokenizer)
    n = processor.audio_tokenizer.config.num_quantizers
    for sample in load_samples(tmp_path / "work" / "train.jsonl") + load_samples(
        tmp_path / "work" / "val.jsonl"
    ):
        assert not any(m.role == "assistant" and not m.is_audio for m in sample.messages), sample.id
        assert not has_instruction(sample.target_text()) and sample.target_text().startswith(
            "The target sentence"
        )
        assert sample.messages[sample.start_index].text == sample.target_text()
        assert [Path(p).name[:7] for p in sample.target_audio()] == ["target_"]
        assert [Path(p).name[:4] for p in sample.reference_audio()] == ["ref_"]
        labels = encode_sample(sample, processor, cache)["audio_labels"]
        ref_frames = cache.get(sample.reference_audio()[0]).shape[1] + n + 1
        assert (labels[:ref_frames] == IGNORE_INDEX).all(), sample.id  # the reference: never a target
        assert (labels[ref_frames:] != IGNORE_INDEX).any() and len(labels) > ref_frames
        assert torch.is_tensor(labels)


def test_higgs_tts3_converts_validates_trains_on_two_ranks_evaluates_generates_and_exports(
    launch_env, tmp_path: Path
) -> None:
    """The same commands on a tiny Higgs TTS 3: the family comes from the model folder alone.

    The original tooling's records carry a system prompt of their own: validation says, per sample,
    that the v3 prompt has no place for it (a warning, still GO). Training runs on 2 ranks; the
    printed evaluate command compares every checkpoint; ``generate`` speaks with the adapter; ``export``
    writes the release layout with the licence notice, and that folder loads and generates again.
    """
    import torch

    from workbench.models.families import detect_family, load_model_and_processor
    from workbench.models.folder import safetensors_keys

    cli = [sys.executable, "-m", "workbench.cli"]
    proc = run(cli + ["make-tiny-model", "tts3", "--family", "higgs-tts-3"], launch_env, tmp_path)
    assert proc.returncode == 0 and "tiny Higgs TTS 3 model" in proc.stdout, proc.stdout[-2000:]
    model = tmp_path / "tts3"
    assert detect_family(model).name == "higgs-tts-3"
    assert json.loads((model / "config.json").read_text())["model_type"] == "higgs_multimodal_qwen3"

    _original_tooling_dataset(tmp_path / "dataset", 12, "train", seed=0)
    _original_tooling_dataset(tmp_path / "dataset", 3, "val", seed=100)
    steps = [
        ["convert", "dataset/json/train.json", "-o", "work/train.jsonl"],
        ["convert", "dataset/json/val.json", "-o", "work/val.jsonl"],
        ["validate", "work/train.jsonl", "--val", "work/val.jsonl", "--model", str(model)],
        ["train", "--params", str(DEMO_PARAMS), "-p", "model", str(model), "-p", "train_data", "work/train.jsonl",
         "-p", "val_data", "work/val.jsonl", "-p", "output_dir", "runs/tts3", "-p", "codes_cache_dir", "codes",
         "-p", "modules_to_save", "audio_codebooks", "-p", "max_steps", "4", "-p", "save_steps", "2",
         "-p", "eval_steps", "2", "-p", "merge", "false"],
    ]  # fmt: skip
    printed = run_steps(cli, steps, launch_env, tmp_path)
    validated = printed["validate work/train.jsonl"]
    assert "GO: 15 trainable samples" in validated, validated[-3000:]
    assert "NOT_IN_MODEL_PROMPT" in validated and "system" in validated, validated[-3000:]
    run_json = json.loads((tmp_path / "runs" / "tts3" / "run.json").read_text())
    assert run_json["world_size"] == 2 and run_json["result"]["global_step"] == 4
    adapter = tmp_path / "runs" / "tts3" / "adapter"
    assert "Derived from Higgs TTS 3, licensed from Boson AI USA, Inc." in (adapter / "NOTICE").read_text()
    targets = set(json.loads((adapter / "adapter_config.json").read_text())["target_modules"])
    assert targets == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}

    lines = printed["train --params"].splitlines()
    evaluate = next(line.split(":  ", 1)[1] for line in lines if "compare every checkpoint" in line)
    proc = run(cli + shlex.split(evaluate)[1:], launch_env, tmp_path)
    assert proc.returncode == 0, proc.stdout[-4000:]
    rows = json.loads((tmp_path / "runs" / "tts3" / "05_evaluate" / "metrics.json").read_text())["rows"]
    assert {r["candidate"] for r in rows} >= {"base", "adapter", "checkpoint-2"}
    assert not [r for r in rows if r["status"] == "failed"], [
        r["error"] for r in rows if r["status"] == "failed"
    ]

    proc = run(cli + ["generate", "--adapter", "runs/tts3/adapter", "--reference", "dataset/data/ref_0000.wav",
                      "--reference-text", "Reference sentence number 0.", "--text", "Hello from Higgs TTS 3.",
                      "-o", "hello.wav", "--max-new-tokens", "30"], launch_env, tmp_path)  # fmt: skip
    assert proc.returncode in (0, EXIT_DATA), proc.stdout[-4000:]
    if proc.returncode == 0:
        assert (tmp_path / "hello.wav").stat().st_size > 44
    else:  # the trained random model ended the clip at once: said plainly
        assert "NO AUDIO" in proc.stdout, proc.stdout[-4000:]

    proc = run(cli + ["export", "runs/tts3/adapter", "-o", "exported"], launch_env, tmp_path)
    assert proc.returncode == 0, proc.stdout[-4000:]
    exported = tmp_path / "exported"
    assert json.loads((exported / "config.json").read_text())["model_type"] == "higgs_multimodal_qwen3"
    keys = set(safetensors_keys(exported))
    assert "tied.embedding.modality_embeddings.0.embedding.weight" in keys and "body.norm.weight" in keys
    assert any(k.startswith("tied.embedding.modality_embeddings.0.model.") for k in keys)
    assert "Derived from Higgs TTS 3" in (exported / "NOTICE").read_text()
    merged, processor = load_model_and_processor(exported)
    assert detect_family(exported).name == "higgs-tts-3"
    assert torch.isfinite(next(merged.parameters())).all()
