"""The ``workbench`` commands: each parses nothing, calls one library function, prints, returns its exit code.

Exit codes: 0 success; 1 the data has problems (rejected records, error findings); 2 usage
or fatal error (message on stderr).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
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
