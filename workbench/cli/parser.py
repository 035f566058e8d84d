"""The ``workbench`` command line: one sub-command per library step, its flags, and ``main``."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence

from workbench.cli.commands import (
    EXIT_USAGE,
    UsageError,
    cmd_bench,
    cmd_convert,
    cmd_demo,
    cmd_demo_data,
    cmd_doctor,
    cmd_evaluate,
    cmd_export,
    cmd_fix,
    cmd_generate,
    cmd_inspect,
    cmd_make_tiny_model,
    cmd_params,
    cmd_prepare,
    cmd_report,
    cmd_run,
    cmd_split,
    cmd_train,
    cmd_validate,
    param_schemas,
)


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

    parser = argparse.ArgumentParser(
        prog="workbench", description="Higgs LoRA workbench: prepare, convert, validate, train, evaluate"
    )
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
