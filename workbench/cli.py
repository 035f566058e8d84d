"""The ``workbench`` command: parse, call one library function, print, exit code.

Exit codes: 0 success; 1 the data has problems (rejected records, error findings); 2 usage
or fatal error (message on stderr).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

EXIT_OK, EXIT_DATA, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """A problem with how the command was called."""


def _print_json(data: object) -> None:
    print(json.dumps(data, indent=2, ensure_ascii=False))


# --- commands ------------------------------------------------------------------------
MAX_LISTED_FINDINGS = 20  # more than this print grouped by code


def print_findings(findings: list, report_path: str | None) -> None:
    """Every finding on its own line, or, when there are many, grouped by code (count, examples, hint)."""
    from workbench.data.findings import grouped_summary

    if len(findings) <= MAX_LISTED_FINDINGS:
        for f in findings:
            print(f.format_line())
        return
    for line in grouped_summary(findings):
        print(line)
    where = report_path or "a file: pass --report FILE.json"
    print(f"({len(findings):,} findings, grouped; every one is in {where})")


def cmd_convert(args: argparse.Namespace) -> int:
    from workbench.data.convert import convert

    report = convert(
        args.inputs,
        args.output,
        format=args.format,
        audio_root=args.audio_root,
        remap=args.remap or (),
        reference=args.reference,
        missing_audio=args.missing_audio,
        sharegpt_map=args.map or None,
        report=args.report,
        overwrite=args.overwrite,
        progress=args.progress,
    )
    print_findings(report.issues, args.report)
    print(report.summary_line())
    for kind, path in report.outputs.items():
        print(f"  {kind}: {path}")
    return EXIT_DATA if report.rejected else EXIT_OK


def cmd_prepare(args: argparse.Namespace) -> int:
    from workbench.prepare.pipeline import prepare

    report = prepare(
        args.inputs,
        args.output,
        speaker=args.speaker,
        asr_model=args.asr_model,
        language=args.language,
        min_clip=args.min_clip,
        max_clip=args.max_clip,
        overwrite=args.overwrite,
        device=args.device,
        progress=not args.no_progress,
    )
    for item in report.inputs:
        if item.error:
            print(f"FAILED  {item.error}")
    print(report.summary_line())
    print(f"  clips: {report.dataset_dir}/<speaker>/clip_NNNN.wav + .txt")
    print(f"  table: {report.dataset_dir}/prepare.csv")
    print(f"  next:  workbench convert {report.dataset_dir} -o converted.jsonl")
    return EXIT_DATA if report.failed else EXIT_OK


def cmd_validate(args: argparse.Namespace) -> int:
    from workbench.data.validate import validate
    from workbench.training.context import length_check

    report = validate(
        args.data,
        val=args.val,
        min_duration=args.min_duration,
        max_duration=args.max_duration,
        allow_placeholder=args.allow_placeholder,
        length=length_check(args.model, args.max_tokens) if args.model else None,
        progress=args.progress,
    )
    for line in report.format_lines():
        print(line)
    if args.report:
        report.write_json(args.report)
    print(report.go_no_go())
    return EXIT_OK if report.ok else EXIT_DATA


def cmd_split(args: argparse.Namespace) -> int:
    from workbench.data.split import split

    result = split(
        args.data,
        args.output,
        args.val_out,
        val_fraction=args.val_fraction,
        by=args.by,
        seed=args.seed,
        overwrite=args.overwrite,
    )
    _print_json(result.to_dict())
    return EXIT_OK


def cmd_inspect(args: argparse.Namespace) -> int:
    from workbench.data.inspection import inspect

    stats = inspect(args.data)
    if args.json:
        _print_json(stats.to_dict())
    else:
        print(stats.format_text())
    return EXIT_OK


def cmd_demo_data(args: argparse.Namespace) -> int:
    from workbench.demo import demo_data

    info = demo_data(args.dir, overwrite=args.overwrite)
    print(f"demo dataset written to {os.path.abspath(args.dir)}")
    print("inputs: " + " ".join(os.path.join(args.dir, p) for p in info["inputs"]))  # type: ignore[union-attr]
    return EXIT_OK


def cmd_bench(args: argparse.Namespace) -> int:
    from workbench.files import write_json

    if args.what == "train":
        from workbench.bench.train import bench_train

        checkpointing = {"on": [True], "off": [False], "both": [True, False], None: None}[args.checkpointing]
        result = bench_train(
            model=args.model, steps=args.steps or (20 if args.model == "tiny" else 10), allow_cpu=args.allow_cpu,
            workdir=args.workdir, batch_sizes=args.batch_sizes, checkpointing=checkpointing,
        )  # fmt: skip
        print(result.format_text())
        if args.json:
            write_json(args.json, result.to_dict())
            print(f"figures: {args.json}")
        return EXIT_OK
    if args.what == "generate":
        from workbench.bench.generate import bench_generate

        if args.max_new_tokens < 1:
            raise UsageError(f"--max-new-tokens: must be at least 1, got {args.max_new_tokens}")
        print(bench_generate(max_new_tokens=args.max_new_tokens, workdir=args.workdir).format_text())
        return EXIT_OK
    if args.what == "rehearsal":
        from workbench.bench.rehearsal import bench_rehearsal

        model = "random-full" if args.model == "tiny" else args.model
        result = bench_rehearsal(
            model=model,
            steps=args.steps or 2,
            workdir=args.workdir,
            stages=args.stages or ("train", "generate", "export"),
        )
        print(result.format_text())
        if args.json:
            write_json(args.json, result.to_dict())
        return EXIT_OK if result.stages and result.stages[0].ok else EXIT_DATA
    if args.what == "prepare":
        from workbench.bench.prepare import bench_prepare

        print(bench_prepare(minutes=args.minutes, asr_model=args.model, workdir=args.workdir).format_text())
        return EXIT_OK
    from workbench.bench.data import bench_data

    if args.what != "data":
        raise UsageError(
            f"unknown benchmark {args.what!r}; available: data, train, generate, prepare, rehearsal"
        )
    result = bench_data(n=args.n, pool=args.pool, workdir=args.workdir)
    print(result.format_text())
    return EXIT_OK


def cmd_doctor(args: argparse.Namespace) -> int:
    from workbench.doctor import all_passed, doctor, format_checks

    checks = doctor(
        model=args.model, data=args.data or (), output_dir=args.output_dir, params_file=args.params
    )
    print(format_checks(checks))
    return EXIT_OK if all_passed(checks) else EXIT_DATA


def cmd_make_tiny_model(args: argparse.Namespace) -> int:
    from workbench.demo import make_tiny_model
    from workbench.models.families import family_named

    family = family_named(args.family)
    path = make_tiny_model(args.dir, seed=args.seed, overwrite=args.overwrite, family=family.name)
    print(f"tiny {family.title} model written to {path}")
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    from workbench.notebook.report import find_notebook, load_notebook_params, run_notebook

    notebook = find_notebook(args.notebook)
    overrides = overrides_from(args)
    params = load_notebook_params(notebook, args.params_file, overrides)
    result = run_notebook(notebook, args.out, params, kernel_name=args.kernel, log_output=args.log_output)
    return _notebook_exit(result, "run")


def _notebook_exit(result, command: str) -> int:
    """Print where an executed notebook and its report are; exit 1 when a cell failed."""
    print(f"executed notebook: {result.ipynb}")
    print(f"report:            {result.html}")
    if not result.ok:
        print(f"workbench {command}: {result.notebook} failed at {result.error}", file=sys.stderr)
        return EXIT_DATA
    return EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    from workbench.notebook.report import write_index

    print(write_index(args.run_dir, title=args.title))
    return EXIT_OK


def cmd_fix(args: argparse.Namespace) -> int:
    from workbench.data.fixes import fix

    result = fix(args.data, args.recipe, args.output, output_dir=args.output_dir, overwrite=args.overwrite)
    for line in result.log:
        print(line)
    print(result.summary_line())
    return EXIT_OK


def cmd_train(args: argparse.Namespace) -> int:
    from workbench.training.launch import train_launch

    overrides = overrides_from(args)
    code = train_launch(args.params, overrides, dry_run=args.dry_run)
    return EXIT_OK if code == 0 else EXIT_DATA


def cmd_export(args: argparse.Namespace) -> int:
    from workbench.models.export import export

    path = export(
        args.source, args.output, format=args.format, base_model=args.base, overwrite=args.overwrite
    )
    print(f"exported ({args.format}) to {path}")
    return EXIT_OK


def sampling_from(args: argparse.Namespace) -> Any:
    """The :class:`~workbench.evaluation.params.Sampling` of ``workbench generate``'s flags (defaults: notebook 05's)."""
    from workbench.evaluation.params import Sampling
    from workbench.training.param_schema import build_params, flag_values

    problems: list[str] = []
    sampling = build_params(Sampling, flag_values(args), problems)
    problems += sampling.check()
    if problems:
        raise UsageError("; ".join(problems))
    return sampling


def cmd_generate(args: argparse.Namespace) -> int:
    from workbench.evaluation.generate import speak

    texts = list(args.text or [])
    if args.text_file:
        with open(args.text_file, encoding="utf-8-sig") as fh:
            texts += [line.strip() for line in fh if line.strip()]
    sampling = sampling_from(args)
    spoken = speak(
        texts,
        args.output,
        model=args.model,
        adapter=args.adapter,
        reference_audio=args.reference,
        reference_text=args.reference_text,
        seed=args.seed,
        temperature=sampling.temperature,
        top_k=sampling.top_k,
        top_p=sampling.top_p,
        max_new_tokens=sampling.max_new_tokens,
        ras_win_len=sampling.ras_win_len,
        codes_cache_dir=args.codes_cache_dir,
        overwrite=args.overwrite,
    )
    for clip in spoken:
        if clip.path is None:
            print(f"NO AUDIO  {clip.text!r}: {clip.error}")
        else:
            rtf = clip.real_time_factor
            print(
                f"{clip.path}  {clip.seconds:.2f} s audio in {clip.gen_seconds:.2f} s (real-time factor {rtf:.2f})"
            )
    return EXIT_DATA if any(c.path is None for c in spoken) else EXIT_OK


def cmd_evaluate(args: argparse.Namespace) -> int:
    from workbench.notebook.ranks import run_evaluation_notebook
    from workbench.notebook.report import load_notebook_params

    overrides = overrides_from(args)
    params = load_notebook_params("05_evaluate", args.params, overrides)
    result = run_evaluation_notebook(params, args.out, log_output=args.log_output, params_file=args.params)
    return _notebook_exit(result, "evaluate")


def cmd_demo(args: argparse.Namespace) -> int:
    from workbench.demo import run_demo

    result = run_demo(args.out, overwrite=True)
    print(result.format_text())
    return EXIT_OK if result.ok else EXIT_DATA


# --- parser ----------------------------------------------------------------------------
def add_param_overrides(parser: argparse.ArgumentParser) -> None:
    """``-p NAME VALUE`` (repeatable), papermill style; VALUE is read as YAML."""
    parser.add_argument(
        "-p",
        "--param",
        nargs=2,
        action="append",
        metavar=("NAME", "VALUE"),
        help="override (VALUE read as YAML)",
    )


def overrides_from(args: argparse.Namespace) -> dict[str, object]:
    """The ``-p NAME VALUE`` pairs (VALUE read as YAML) and the parameter flags given (``--lora-r 8``)."""
    from workbench.training.param_schema import flag_values, parse_cli_value

    pairs = {name: parse_cli_value(value) for name, value in args.param or []}
    flags = flag_values(args)
    twice = sorted(pairs.keys() & flags.keys())
    if twice:
        raise UsageError(
            f"{', '.join(twice)}: given both as -p NAME VALUE and as a --flag; give each parameter once"
        )
    return {**pairs, **flags}


def param_schemas() -> dict[str, type]:
    """The parameter dataclasses the ``train`` and ``evaluate`` flags and ``workbench params`` come from."""
    from workbench.evaluation.params import EvalParams, Sampling
    from workbench.training.params import LaunchParams, TrainParams

    return {"train": TrainParams, "launch": LaunchParams, "evaluate": EvalParams, "sampling": Sampling}


def cmd_params(args: argparse.Namespace) -> int:
    from workbench.training.param_schema import render

    print(render(param_schemas()[args.schema], args.format))
    return EXIT_OK


PARAMS_EPILOG = (
    "Each parameter is taken from, last one winning: its default, the --params file, then a --flag or "
    "-p NAME VALUE (not both). A flag's value is read as YAML like -p's (a text parameter keeps its text; "
    "null is None); lists take several values, env takes NAME=VALUE pairs, booleans are --flag / --no-flag."
)


def build_parser() -> argparse.ArgumentParser:
    from workbench.data.convert import MISSING_AUDIO_POLICIES, REFERENCE_POLICIES
    from workbench.data.formats import FORMAT_NAMES
    from workbench.training.param_schema import add_flags

    schemas = param_schemas()

    parser = argparse.ArgumentParser(prog="workbench", description="Higgs Audio v2 LoRA workbench")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name: str, fn: Callable[[argparse.Namespace], int], help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help)
        p.set_defaults(func=fn)
        return p

    p = add(
        "convert", cmd_convert, "convert source records to canonical JSONL (trainable / prompts / rejected)"
    )
    p.add_argument("inputs", nargs="+", help="input files or dataset folders")
    p.add_argument("-o", "--output", required=True, help="OUT.jsonl for trainable samples")
    p.add_argument("--format", default="auto", choices=("auto", *FORMAT_NAMES))
    p.add_argument(
        "--audio-root", help="folder relative audio paths resolve against (default: the input's folder)"
    )
    p.add_argument(
        "--remap", action="append", metavar="OLD=NEW", help="rewrite an audio path prefix (repeatable)"
    )
    p.add_argument("--reference", default="same-speaker", choices=REFERENCE_POLICIES)
    p.add_argument("--missing-audio", default="error", choices=MISSING_AUDIO_POLICIES)
    p.add_argument(
        "--map", action="append", metavar="SLOT=ROLE", help="ShareGPT mapping, e.g. human=target_text"
    )
    p.add_argument("--report", help="write the report JSON here")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--progress", action="store_true", help="show a progress bar")

    p = add(
        "prepare",
        cmd_prepare,
        "long recordings to a clip folder: cut at pauses, text from subtitles, a transcript or local ASR",
    )
    p.add_argument("inputs", nargs="+", help="recordings or folders (sidecars: same-stem .srt/.vtt or .txt)")
    p.add_argument(
        "-o", "--output", required=True, metavar="DATASET_DIR", help="clip folder (resumed if it exists)"
    )
    p.add_argument("--speaker", help="speaker folder for every clip (default: the input's folder name)")
    p.add_argument(
        "--asr-model", help="local Whisper folder or cached hub id, for inputs without subtitles (offline)"
    )
    p.add_argument("--language", help="spoken language for multilingual Whisper models, e.g. en")
    p.add_argument("--min-clip", type=float, default=2.0, metavar="S", help="shortest clip, seconds")
    p.add_argument(
        "--max-clip", type=float, default=15.0, metavar="S", help="longest clip, seconds (at most 30)"
    )
    p.add_argument("--device", help="for the ASR model: cpu, cuda, cuda:1 (default: CUDA when available)")
    p.add_argument("--overwrite", action="store_true", help="make the given inputs' clips again")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")

    p = add("validate", cmd_validate, "check canonical JSONL files; one line per finding")
    p.add_argument("data")
    p.add_argument("--val", help="validation file: also checked, and for leakage against DATA")
    p.add_argument("--report", help="write the report JSON here")
    p.add_argument("--min-duration", type=float, default=0.5, metavar="S")
    p.add_argument("--max-duration", type=float, default=30.0, metavar="S")
    p.add_argument("--allow-placeholder", action="store_true")
    p.add_argument("--model", help="also check each sample's token length against this model's context")
    p.add_argument(
        "--max-tokens", type=int, help="with --model: the context to check against (default: the model's)"
    )
    p.add_argument("--progress", action="store_true")

    p = add("split", cmd_split, "deterministic train/validation split with no shared target audio")
    p.add_argument("data")
    p.add_argument("-o", "--output", required=True, help="TRAIN.jsonl")
    p.add_argument("--val-out", required=True, help="VAL.jsonl")
    p.add_argument("--val-fraction", type=float, default=0.05)
    p.add_argument("--by", choices=("speaker", "sample"), default="speaker")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--overwrite", action="store_true")

    p = add("inspect", cmd_inspect, "dataset statistics")
    p.add_argument("data")
    p.add_argument("--json", action="store_true")

    p = add("demo-data", cmd_demo_data, "write the embedded synthetic demo dataset")
    p.add_argument("dir")
    p.add_argument("--overwrite", action="store_true")

    p = add("bench", cmd_bench, "benchmarks that print throughput and ratios")
    p.add_argument("what", choices=("data", "train", "generate", "prepare", "rehearsal"))
    p.add_argument("--json", help="also write the figures to this JSON file (train, rehearsal)")
    p.add_argument(
        "--stages",
        nargs="+",
        choices=("train", "generate", "export"),
        help="rehearsal: commands to run (all)",
    )
    p.add_argument("--n", type=int, default=100_000, help="data: records")
    p.add_argument("--pool", type=int, default=1000, help="data: distinct WAV files")
    p.add_argument("--workdir", help="keep the benchmark files here (default: a temporary folder)")
    p.add_argument(
        "--model",
        default="tiny",
        help="train: tiny, random-full (GPU) or a model folder / cached hub id; "
        "rehearsal: random-full (the default) or a model folder; "
        "prepare: tiny (a random tiny Whisper) or a local Whisper folder",
    )
    p.add_argument(
        "--steps",
        type=int,
        default=None,
        help="train: timed optimizer steps (20); rehearsal: optimizer steps (2)",
    )
    p.add_argument(
        "--allow-cpu", action="store_true", help="train: run a full-size model without a GPU anyway"
    )
    p.add_argument(
        "--batch-sizes",
        type=int,
        nargs="+",
        help="train, full size: per-device batches (default 4 8 16 on a GPU)",
    )
    p.add_argument(
        "--checkpointing", choices=("on", "off", "both"), help="train, full size: activation checkpointing "
        "(default both on a GPU, on on a CPU)",
    )  # fmt: skip
    p.add_argument("--minutes", type=float, default=10.0, help="prepare: minutes of synthetic speech")
    p.add_argument(
        "--max-new-tokens", type=int, default=200, help="generate: audio frames to generate at most"
    )

    p = add(
        "doctor",
        cmd_doctor,
        "check versions, GPUs, bf16, NCCL, disk, model and data: one PASS/WARN/FAIL line each",
    )
    p.add_argument("--model", help="model folder, cached hub id, original-layout folder or random-full")
    p.add_argument(
        "--data",
        nargs="+",
        action="extend",
        metavar="FILE",
        help="canonical JSONL files (first lines checked)",
    )
    p.add_argument("--output-dir", default=".", help="where training writes (free disk is checked there)")
    p.add_argument(
        "--params",
        help="a training params file: validity, launch vs this machine's GPUs, precision, its paths",
    )

    p = add("make-tiny-model", cmd_make_tiny_model, "build a tiny random model stack (tests, demo)")
    p.add_argument("dir")
    p.add_argument(
        "--family", choices=("higgs-audio-v2", "higgs-tts-3"), default="higgs-audio-v2",
        help="model family: Higgs Audio v2 (default) or Higgs TTS 3 (release layout)",
    )  # fmt: skip
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--overwrite", action="store_true")

    p = add("fix", cmd_fix, "replay a fix recipe (YAML) on a canonical JSONL file")
    p.add_argument("data")
    p.add_argument("--recipe", required=True, help="fix recipe YAML (notebook 03 writes one)")
    p.add_argument("-o", "--output", required=True, help="FIXED.jsonl")
    p.add_argument("--output-dir", help="where new audio (trimmed copies) goes (default: FIXED's folder)")
    p.add_argument("--overwrite", action="store_true")

    p = add("run", cmd_run, "execute a notebook headless (papermill) and export its HTML report")
    p.add_argument("notebook", help="a notebook path or a short name such as 01 or 03_validate")
    p.add_argument(
        "-f",
        "--params-file",
        help="parameters YAML (a section named after the notebook is used when present)",
    )
    add_param_overrides(p)
    p.add_argument("--out", required=True, help="run folder for the executed notebook and its HTML")
    p.add_argument("--kernel", help="Jupyter kernel name (default: the notebook's kernelspec)")
    p.add_argument("--log-output", action="store_true", help="stream cell output to the terminal")

    p = add("train", cmd_train, "LoRA training: notebook 04 on every rank under accelerate launch")
    p.add_argument("--params", help="training parameters YAML (params/demo.yaml, params/h200x8.yaml, ...)")
    add_param_overrides(p)
    p.add_argument(
        "--dry-run", action="store_true", help="check the parameters and print the launch command only"
    )
    add_flags(p, schemas["train"], "training parameters (notebook 04's)")
    add_flags(p, schemas["launch"], "launch parameters")
    p.epilog = PARAMS_EPILOG

    p = add("export", cmd_export, "merge an adapter into its base model and save it (hf or original layout)")
    p.add_argument("source", help="an adapter/ or checkpoint-N/ folder (or a merged model folder)")
    p.add_argument("-o", "--output", required=True, help="output folder")
    p.add_argument("--format", choices=("hf", "original"), default="hf")
    p.add_argument("--base", help="base model (default: the one recorded in the adapter)")
    p.add_argument("--overwrite", action="store_true")

    p = add(
        "evaluate",
        cmd_evaluate,
        "base model vs adapters and checkpoints: notebook 05 headless, metrics and report",
    )
    p.add_argument(
        "--params",
        help="evaluation parameters YAML (params/evaluate_demo.yaml; a 05_evaluate section is used when present)",
    )
    add_param_overrides(p)
    p.add_argument("--out", help="folder for the executed notebook and its HTML report (default: output_dir)")
    p.add_argument("--log-output", action="store_true", help="stream cell output to the terminal")
    add_flags(p, schemas["evaluate"], "evaluation parameters (notebook 05's)")
    add_flags(p, schemas["launch"], "launch parameters (several ranks split the prompts)")
    p.epilog = PARAMS_EPILOG

    p = add(
        "params",
        cmd_params,
        "the parameters of train, launch, evaluate or sampling: name, type, default, meaning",
    )
    p.add_argument("schema", choices=tuple(schemas))
    p.add_argument(
        "--format",
        choices=("markdown", "cell"),
        default="markdown",
        help="markdown: the README's table (default); cell: a notebook's parameters cell",
    )

    p = add("generate", cmd_generate, "speak text in a voice: base model, a LoRA adapter or a merged model")
    p.add_argument("--model", help="model folder or cached hub id (default: the adapter's base model)")
    p.add_argument("--adapter", help="a LoRA adapter/ or checkpoint-N/ folder to apply")
    p.add_argument("--text", action="append", help="text to speak (repeat for several clips)")
    p.add_argument("--text-file", help="a UTF-8 file with one text per line")
    p.add_argument("--reference", help="a clip of the voice to clone (any format and rate)")
    p.add_argument("--reference-text", help="the transcript of --reference")
    p.add_argument("-o", "--output", required=True, help="OUT.wav for one text, else a folder")
    p.add_argument("--seed", type=int, default=0, help="same seed, model and prompt: same clip")
    add_flags(p, schemas["sampling"], "sampling parameters (notebook 05's)")
    p.add_argument("--codes-cache-dir", help="audio codes cache (default: the workbench cache)")
    p.add_argument("--overwrite", action="store_true", help="replace clips that already exist")

    p = add("report", cmd_report, "rebuild RUN_DIR/index.html linking every step report")
    p.add_argument("run_dir")
    p.add_argument("--title")

    p = add("demo", cmd_demo, "run the pipeline on the embedded demo dataset")
    p.add_argument("--out", default="runs/demo")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    from workbench.data.readers import InputError
    from workbench.data.sample import CanonicalFormatError
    from workbench.models.memory import InsufficientMemoryError

    try:
        return args.func(args)
    except (
        UsageError,
        InsufficientMemoryError,
        InputError,
        CanonicalFormatError,
        ValueError,
        FileExistsError,
        FileNotFoundError,
        OSError,
    ) as exc:
        print(f"workbench {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
