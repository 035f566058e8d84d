"""The step notebooks: committed clean, executed headless by papermill, exported as stand-alone HTML."""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import soundfile as sf
import yaml

from workbench.notebook.report import NOTEBOOK_DIR, notebook_status

NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))


def test_committed_notebooks_are_clean_and_parameterised():
    assert [p.name[:2] for p in NOTEBOOKS][:4] == ["00", "01", "02", "03"]
    for path in NOTEBOOKS:
        nb = json.loads(path.read_text())
        assert nb["metadata"]["kernelspec"]["name"] == "python3", path.name
        code = [c for c in nb["cells"] if c["cell_type"] == "code"]
        assert all(not c.get("outputs") and c.get("execution_count") is None for c in code), (
            f"{path.name} has outputs"
        )
        tagged = [c for c in code if "parameters" in c.get("metadata", {}).get("tags", [])]
        assert len(tagged) == 1, f"{path.name}: expected exactly one 'parameters' cell"
        assert code.index(tagged[0]) == 0, f"{path.name}: the parameters cell comes first"


def test_notebook_parameter_names_are_shared_between_steps():
    from workbench.notebook.report import notebook_parameters

    params = {p.stem: set(notebook_parameters(p)) for p in NOTEBOOKS}
    for stem in ("01_inspect_data", "02_convert_and_listen", "03_validate"):
        assert {"input_data", "output_dir", "max_listen"} <= params[stem]
    for stem in ("01_inspect_data", "02_convert_and_listen"):
        assert {"audio_root", "format"} <= params[stem]
    assert {"fix_recipe", "val_fraction", "split_by", "seed"} <= params["03_validate"]


def _outputs_text(ipynb: Path) -> str:
    nb = json.loads(ipynb.read_text())
    chunks = []
    for cell in nb["cells"]:
        for out in cell.get("outputs", []):
            chunks.append("".join(out.get("text", "")))
            for value in (out.get("data") or {}).values():
                chunks.append(
                    value if isinstance(value, str) else "".join(value) if isinstance(value, list) else ""
                )
    return "\n".join(chunks)


def _embedded_wavs(html: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r'src="data:audio/wav;base64,([A-Za-z0-9+/=]+)"', html)]


STEPS = (
    "00_prepare",
    "01_inspect_data",
    "02_convert_and_listen",
    "03_validate",
    "04_train/04_train",
    "05_evaluate/05_evaluate",
)


def test_demo_runs_the_whole_pipeline_and_indexes_every_report(demo_run):
    for step in STEPS:
        assert (demo_run / f"{step}.ipynb").exists() and (demo_run / f"{step}.html").exists(), step
        status = notebook_status(demo_run / f"{step}.ipynb")
        assert status["ok"] and status["summary"], step
    index = (demo_run / "index.html").read_text()
    positions = [index.index(f'href="{s}.html"') for s in STEPS]
    assert positions == sorted(positions)
    assert '<td class="failed">' not in index  # every step ok (a result sentence may say "failed")
    # training ran on two ranks and left its artefacts; evaluation compared base and adapter
    run = json.loads((demo_run / "04_train" / "run.json").read_text())
    assert run["world_size"] == 2
    assert (demo_run / "04_train" / "adapter" / "adapter_config.json").exists()
    assert (demo_run / "04_train" / "merged" / "model.safetensors").exists()
    metrics = json.loads((demo_run / "05_evaluate" / "metrics.json").read_text())
    assert "base" in json.dumps(metrics) and "adapter" in json.dumps(metrics)


def test_convert_notebook_shows_the_library_counts(demo_run):
    report = json.loads((demo_run / "02_convert_and_listen" / "convert_report.json").read_text())
    text = _outputs_text(demo_run / "02_convert_and_listen.ipynb")
    line = (
        f"{report['total']} records -> {report['converted']} trainable, {report['prompts']} prompt-only, "
        f"{report['rejected']} rejected"
    )
    assert line in text
    assert report["rejected"] == 3 and report["prompts"] == 1
    # The rejected table names the planted defects.
    assert "AUDIO_NOT_FOUND" in text and "BAD_RECORD" in text


def test_reports_embed_playable_audio_and_plots(demo_run):
    for stem, min_clips in (("01_inspect_data", 1), ("02_convert_and_listen", 2), ("03_validate", 1)):
        html = (demo_run / f"{stem}.html").read_text()
        wavs = _embedded_wavs(html)
        assert len(wavs) >= min_clips, stem
        assert len(wavs) <= 4 * 2, f"{stem}: max_listen=4 should cap the embedded clips"
        audio, rate = sf.read(io.BytesIO(wavs[0]))
        assert rate == 24_000 and audio.ndim == 1 and len(audio) > 0
    assert "<img" in (demo_run / "01_inspect_data.html").read_text()
    # The pipeline asks 01 for max_listen=4: the browser's stand-in embeds four clips, not fewer.
    assert len(_embedded_wavs((demo_run / "01_inspect_data.html").read_text())) == 4
    # Every image of every report has a text alternative (nbconvert's placeholder means it had none).
    for page in [*demo_run.glob("*.html"), *demo_run.glob("*/*.html")]:
        text = page.read_text()
        images = re.findall(r"<img\b[^>]*>", text)
        assert all(re.search(r'\balt="[^"]+"', tag) for tag in images), page.name
        assert "No description has been provided" not in text, page.name
    assert re.search(r'<img alt="[^"]*training loss', (demo_run / "04_train" / "04_train.html").read_text())


def test_validate_notebook_writes_split_report_and_recipe(demo_run):
    out = demo_run / "03_validate"
    for name in ("train.jsonl", "val.jsonl", "validate_report.json", "fixes.yaml", "issues.csv"):
        assert (out / name).exists(), name
    report = json.loads((out / "validate_report.json").read_text())
    assert report["summary"]["errors"] == 0  # error samples were kept out of train/val
    assert isinstance(yaml.safe_load((out / "fixes.yaml").read_text()) or [], list)
    text = _outputs_text(demo_run / "03_validate.ipynb")
    assert "AUDIO_EMPTY" in text and "EMPTY_TEXT" in text  # the planted silent clip and empty transcript
    assert "GO:" in text
    # The demo passes its model: every sample's tokens were checked against the model's context.
    assert (
        report["summary"]["context"]["limit"] == 4096 and 0 < report["summary"]["context"]["longest"] < 4096
    )
    assert "tokens of the 4,096-token context" in text


def test_workbench_run_fails_loudly_and_still_writes_the_report(tmp_path):
    out = tmp_path / "run"
    cmd = [
        sys.executable,
        "-m",
        "workbench.cli",
        "run",
        "03_validate",
        "--out",
        str(out),
        "-p",
        "input_data",
        str(tmp_path / "nope.jsonl"),
        "-p",
        "output_dir",
        str(tmp_path / "o"),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 1, proc.stderr
    assert "03_validate.ipynb failed" in proc.stderr
    html = (out / "03_validate.html").read_text()
    assert "nope.jsonl" in html  # the error is visible in the report


def test_workbench_run_rejects_unknown_parameters(tmp_path):
    cmd = [sys.executable, "-m", "workbench.cli", "run", "02", "--out", str(tmp_path), "-p", "max_lisen", "3"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 2
    assert "max_lisen" in proc.stderr and "max_listen" in proc.stderr


def test_workbench_run_reads_yes_no_as_flags_only_for_boolean_parameters(tmp_path):
    """`-p flag no` is False for a boolean parameter and the text "no" for any other."""
    import nbformat

    nb = nbformat.v4.new_notebook(
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}
    )
    nb.cells = [
        nbformat.v4.new_code_cell('flag = True\nword = "auto"', metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell('assert flag is False and word == "no", (flag, word)'),
    ]
    source = tmp_path / "flags.ipynb"
    nbformat.write(nb, str(source))
    cmd = [sys.executable, "-m", "workbench.cli", "run", str(source), "--out", str(tmp_path / "out"), "-p", "flag", "no",
           "-p", "word", "no"]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_report_command_rebuilds_the_index(demo_run, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(demo_run, copy, ignore=shutil.ignore_patterns("data", "0*_*"))
    for p in demo_run.glob("*.ipynb"):
        shutil.copy(p, copy / p.name)
    (copy / "index.html").unlink(missing_ok=True)
    proc = subprocess.run(
        [sys.executable, "-m", "workbench.cli", "report", str(copy)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    assert "02_convert_and_listen" in (copy / "index.html").read_text()


def test_prepare_notebook_cuts_a_recording_and_its_report_shows_clips_flags_and_players(demo_run):
    """Notebook 00 on its default input (a demo recording with subtitles), as the demo runs it."""
    out = demo_run
    status = notebook_status(out / "00_prepare.ipynb")
    assert status["summary"] and "clips" in status["summary"]
    rows = (out / "00_prepare" / "dataset" / "prepare.csv").read_text().splitlines()
    clips = len(rows) - 1
    assert clips >= 5 and f"-> {clips} clips" in status["summary"]
    text = _outputs_text(out / "00_prepare.ipynb")
    assert f"{clips} records -> {clips} trainable, 0 prompt-only, 0 rejected" in text  # converts as it is
    html = (out / "00_prepare.html").read_text()
    wavs = _embedded_wavs(html)
    assert len(wavs) == 3  # max_listen caps the players; the table lists every clip
    assert html.count("demo/clip_0") >= clips
    assert 'alt="waveform and spectrogram of demo/clip_0001.wav"' in html
    audio, rate = sf.read(io.BytesIO(wavs[0]))
    assert rate == 24_000 and audio.ndim == 1 and len(audio) > 2 * 24_000


def test_every_report_opens_with_its_answer_and_folds_code_parameters_and_logs(demo_run):
    """Answer first, then one collapsed parameter table, then the details, then one collapsed log;
    the executed notebooks keep everything in the order it ran."""
    headlines = {
        "00_prepare": r"\d+ clips made from 1 recording",
        "01_inspect_data": r"\d+ trainable samples, \d+ speakers",
        "02_convert_and_listen": r"\d+ of \d+ records trainable",
        "03_validate": r"GO: \d+ train / \d+ val samples",
        "04_train/04_train": r"Trained 40 steps",
        "05_evaluate/05_evaluate": r"(Yes|No|No verdict|Best adapter)\b",
    }
    for step in STEPS:
        page = (demo_run / f"{step}.html").read_text()
        body = page[page.index("<body") :]
        answer = body.index('class="wb-answer')
        assert answer < body.index('<details class="wb-parameters"') < body.index("<h2"), step
        verdict = re.search(r'class="wb-verdict"[^>]*>([^<]*)<', body[answer:]).group(1)
        assert re.match(headlines[step], verdict), (step, verdict)
        assert (
            body.count('<details class="wb-parameters"') == 1
            and '<details class="wb-parameters" open' not in body
        )
        assert "jp-CodeMirrorEditor jp-Editor" not in body, f"{step}: code input in the report"
        assert 'data-mime-type="application/vnd.jupyter.stderr"' not in body, f"{step}: a red box"
        assert 'type="application/vnd.jupyter.widget-view+json"' not in body, f"{step}: an empty widget view"
        assert body.count('<details class="wb-log"') <= 1 and '<details class="wb-log" open' not in body
        nb = json.loads((demo_run / f"{step}.ipynb").read_text())
        tags = [t for c in nb["cells"] for t in c["metadata"].get("tags", [])]
        assert {"parameters", "injected-parameters", "answer"} <= set(tags), step  # the record is complete
        assert nb["cells"][-1]["metadata"].get("tags") == ["answer"], step  # and in the order it ran
    # The training log went into 04's log section, not between its results.
    train_page = (demo_run / "04_train" / "04_train.html").read_text()
    log = train_page[train_page.index('<details class="wb-log"') :]
    assert (
        "step 40/40 |" in log
        and "step 40/40 |" not in train_page[: train_page.index('<details class="wb-log"')]
    )
