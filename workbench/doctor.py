"""``workbench doctor``: is this machine ready to train? One PASS / WARN / FAIL line per check.

Checks, in order: Python; torch and torchaudio (same release); transformers with Higgs Audio v2;
peft; accelerate; GPUs (count, names, memory); bf16 support; NCCL; free disk for the output folder;
and, when given, the model (resolvable offline; whether its generation stops when the audio ends)
and the data files (canonical JSONL); the evaluation's bundled voice scorers (speaker encoder, DNSMOS, Whisper tiny.en);
finally the ``HF_HUB_OFFLINE`` setting. A machine without a GPU gets WARN lines ("no GPU: CPU only"), not
FAIL: the tiny model and the demo train on CPUs.

Examples:
    >>> from workbench.doctor import doctor, format_checks
    >>> print(format_checks(doctor(model="runs/demo/tiny-model")))  # doctest: +SKIP
    PASS  python         3.11.7 (/usr/bin/python3)
    ...
"""

from __future__ import annotations

import importlib
import logging
import os
import platform
import shutil
import sys
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

PASS, WARN, FAIL = "PASS", "WARN", "FAIL"
MIN_PYTHON = (3, 10)
# Keep in step with pyproject.toml's dependencies.
MIN_VERSIONS = {"transformers": "5.17", "peft": "0.17", "accelerate": "1.10"}
MIN_FREE_DISK_GB = 20.0
DATA_LINES_CHECKED = 50
NO_GPU = "no GPU: CPU only"


@dataclass(frozen=True)
class Check:
    """The outcome of one check.

    Attributes:
        name: What was checked (``"torch"``, ``"gpu"``, ``"data train.jsonl"``...).
        status: ``"PASS"``, ``"WARN"`` or ``"FAIL"``.
        detail: What was found (versions, paths, sizes).
        hint: How to fix a WARN or FAIL (None when there is nothing to do).
    """

    name: str
    status: str
    detail: str
    hint: str | None = None

    def format_line(self) -> str:
        """``STATUS  name  detail`` plus ``(hint: ...)`` when there is one."""
        line = f"{self.status:<4}  {self.name:<14} {self.detail}"
        return f"{line}  (hint: {self.hint})" if self.hint else line

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def format_checks(checks: Iterable[Check]) -> str:
    """All checks, one line each, then a summary line."""
    checks = list(checks)
    counts = {status: sum(c.status == status for c in checks) for status in (PASS, WARN, FAIL)}
    lines = [c.format_line() for c in checks]
    verdict = "not ready: fix the FAIL lines" if counts[FAIL] else "ready"
    lines.append(f"{counts[PASS]} passed, {counts[WARN]} warnings, {counts[FAIL]} failed: {verdict}")
    return "\n".join(lines)


def all_passed(checks: Iterable[Check]) -> bool:
    """True when no check failed (warnings are fine)."""
    return all(c.status != FAIL for c in checks)


# --------------------------------------------------------------------------- versions


def _version_tuple(version: str) -> tuple[int, ...]:
    """``"2.11.0+cu130"`` -> ``(2, 11, 0)`` (pre-release and local parts ignored)."""
    from packaging.version import Version

    return Version(version).release


def check_python() -> Check:
    version = platform.python_version()
    if sys.version_info[:2] < MIN_PYTHON:
        need = ".".join(map(str, MIN_PYTHON))
        return Check("python", FAIL, f"{version} is older than {need}", f"use Python >= {need}")
    return Check("python", PASS, f"{version} ({sys.executable})")


def check_torch() -> list[Check]:
    """torch, and torchaudio from the same release (mismatched pairs fail at import or at load)."""
    try:
        import torch
    except ImportError as exc:
        return [
            Check("torch", FAIL, f"not importable: {exc}", "pip install -e . (pins torch and torchaudio)")
        ]
    checks = [Check("torch", PASS, f"{torch.__version__} (CUDA build {torch.version.cuda or 'none'})")]
    try:
        import torchaudio
    except Exception as exc:  # a mismatched torchaudio raises OSError/RuntimeError, not ImportError
        checks.append(
            Check(
                "torchaudio",
                FAIL,
                f"not importable: {exc}",
                f"pip install torchaudio=={torch.__version__.split('+')[0]}",
            )
        )
        return checks
    if _version_tuple(torchaudio.__version__)[:2] != _version_tuple(torch.__version__)[:2]:
        checks.append(
            Check(
                "torchaudio",
                FAIL,
                f"{torchaudio.__version__} does not match torch {torch.__version__}",
                f"pip install torchaudio=={torch.__version__.split('+')[0]}",
            )
        )
    else:
        checks.append(Check("torchaudio", PASS, f"{torchaudio.__version__} (matches torch)"))
    return checks


def _check_min_version(name: str, extra: str = "") -> Check:
    minimum = MIN_VERSIONS[name]
    try:
        module = importlib.import_module(name)
    except Exception as exc:
        return Check(name, FAIL, f"not importable: {exc}", f"pip install '{name}>={minimum}'")
    version = getattr(module, "__version__", "unknown")
    if version == "unknown" or _version_tuple(version) < _version_tuple(minimum):
        return Check(name, FAIL, f"{version} is older than {minimum}", f"pip install -U '{name}>={minimum}'")
    return Check(name, PASS, f"{version}{extra}")


def check_transformers() -> Check:
    """transformers new enough and shipping the Higgs Audio v2 model, processor and codec."""
    check = _check_min_version("transformers")
    if check.status == FAIL:
        return check
    try:
        from transformers import (  # noqa: F401
            HiggsAudioV2ForConditionalGeneration,
            HiggsAudioV2Processor,
            HiggsAudioV2TokenizerModel,
        )
    except ImportError as exc:
        return Check(
            "transformers",
            FAIL,
            f"{check.detail} has no Higgs Audio v2 ({exc})",
            f"pip install -U 'transformers>={MIN_VERSIONS['transformers']}'",
        )
    return Check("transformers", PASS, f"{check.detail} with higgs_audio_v2")


# --------------------------------------------------------------------------- hardware


def check_gpus() -> list[Check]:
    """GPU count, names and memory; bf16 support; NCCL (WARN, not FAIL, on a CPU-only machine)."""
    import torch
    import torch.distributed as dist

    nccl = dist.is_available() and dist.is_nccl_available()
    if not torch.cuda.is_available():
        cpus = os.cpu_count() or 1
        return [
            Check(
                "gpu",
                WARN,
                f"{NO_GPU} ({cpus} cores)",
                "fine for the tiny model and the demo; train the full model on GPUs",
            ),
            Check("bf16", WARN, f"{NO_GPU}: train with mixed_precision: no"),
            Check(
                "nccl",
                WARN,
                f"{NO_GPU}: multi-process runs use gloo (NCCL {'built in' if nccl else 'not built in'})",
            ),
        ]
    names: dict[str, list[float]] = {}
    for index in range(torch.cuda.device_count()):
        props = torch.cuda.get_device_properties(index)
        names.setdefault(props.name, []).append(props.total_memory / 2**30)
    listing = ", ".join(f"{len(mem)} x {name} ({min(mem):.1f} GiB)" for name, mem in names.items())
    checks = [Check("gpu", PASS, f"{torch.cuda.device_count()} GPU(s): {listing}")]
    if torch.cuda.is_bf16_supported():
        checks.append(Check("bf16", PASS, "supported"))
    else:
        checks.append(Check("bf16", WARN, "not supported by this GPU", "use mixed_precision: fp16"))
    if nccl:
        version = ".".join(map(str, torch.cuda.nccl.version())) if hasattr(torch.cuda, "nccl") else "?"
        checks.append(Check("nccl", PASS, f"available (NCCL {version})"))
    else:
        status = FAIL if torch.cuda.device_count() > 1 else WARN
        checks.append(
            Check(
                "nccl",
                status,
                "not available: multi-GPU training cannot use NCCL",
                "install a CUDA build of torch",
            )
        )
    return checks


def _existing_ancestor(path: Path) -> Path:
    path = path.expanduser().absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_disk(output_dir: str | os.PathLike[str], min_free_gb: float = MIN_FREE_DISK_GB) -> Check:
    """Free space (and write permission) where ``output_dir`` is or will be created."""
    target = Path(output_dir).expanduser().absolute()
    existing = _existing_ancestor(target)
    free_gb = shutil.disk_usage(existing).free / 1e9
    detail = f"{free_gb:,.1f} GB free for {target}"
    if not os.access(existing, os.W_OK):
        return Check("disk", FAIL, f"{detail}, but {existing} is not writable", "choose another --output-dir")
    if free_gb < min_free_gb:
        return Check(
            "disk",
            WARN,
            f"{detail} (under {min_free_gb:.0f} GB)",
            "checkpoints and merged weights of the full model take tens of GB; free space or use another --output-dir",
        )
    return Check("disk", PASS, detail)


# --------------------------------------------------------------------------- model and data


def _without(text: str, part: str) -> str:
    return text.replace(part, "").strip()


def check_model(model: str) -> Check:
    """The model resolves offline: a HF folder, a cached hub id, an original-layout folder or random-full."""
    from workbench.models import folder as model_folder
    from workbench.models.model import RANDOM_FULL

    if model == RANDOM_FULL:
        return Check(
            "model", PASS, f"{RANDOM_FULL}: full-size random weights built in memory (benchmarks only)"
        )
    try:
        from workbench.models.original_format import is_original_checkpoint

        if is_original_checkpoint(model):
            return _check_original(Path(model).expanduser())
    except ImportError:  # original-layout support is optional here
        pass
    try:
        folder = model_folder.resolve_model_path(model)
    except model_folder.ModelNotFoundError as exc:
        return Check("model", FAIL, _without(str(exc), f" {model_folder.HINT}"), model_folder.HINT)
    weights = [p.name for p in folder.iterdir() if p.name.endswith((".safetensors", ".bin"))]
    if not weights:
        return Check(
            "model", FAIL, f"{folder}: no weight files (*.safetensors)", "copy the complete model folder"
        )
    import json

    from workbench.models.families import family_of_config
    from workbench.models.family import UnknownModelFamilyError

    try:
        family = family_of_config(
            json.loads((folder / "config.json").read_text()), str(folder / "config.json")
        )
    except (UnknownModelFamilyError, ValueError) as exc:
        return Check("model", FAIL, str(exc), "pass a Higgs Audio v2 or Higgs TTS 3 model folder")
    if (
        family.name != "higgs-audio-v2"
    ):  # its own folder layout: loading its processor checks tokenizer and codec
        try:
            family.load_processor(folder)
        except (model_folder.ModelNotFoundError, OSError, ValueError) as exc:
            return Check("model", FAIL, f"{family.title}: {exc}", model_folder.HINT)
        return Check("model", PASS, f"{folder} ({family.title}; tokenizer and audio tokenizer load offline)")
    reference = model_folder.audio_tokenizer_reference(folder)
    if reference is None:
        return Check(
            "model",
            FAIL,
            f"{folder}: no processor_config.json naming an audio tokenizer",
            f"save the processor with workbench.models.model.save_processor (it bundles {model_folder.AUDIO_TOKENIZER_SUBDIR}/)",
        )
    try:
        codec = model_folder.locate_audio_tokenizer(folder, reference[1])
    except model_folder.ModelNotFoundError as exc:
        return Check(
            "model",
            FAIL,
            _without(str(exc), f" {model_folder.HINT}"),
            "put the audio tokenizer in the local HF cache or the model folder",
        )
    source = "local folder" if Path(model).expanduser().is_dir() else "hub cache"
    return Check("model", PASS, f"{folder} ({source}; audio tokenizer {codec})")


def _check_original(folder: Path) -> Check:
    """An original-layout folder: its config maps onto transformers' model (nothing is converted here)."""
    from workbench.models.folder import read_json, special_token_ids
    from workbench.models.original_format import hf_config_from_original

    where = folder.absolute()
    original = read_json(folder / "config.json")
    if original is None:
        return Check("model", FAIL, f"{where}: original-format weights but no readable config.json", None)
    try:
        hf_config_from_original(original, special_token_ids(folder))
    except ValueError as exc:
        return Check("model", FAIL, f"{where}: {exc}", "use a checkpoint of the released dual-FFN variant")
    return Check("model", PASS, f"{where}: original-layout checkpoint (converted offline on load)")


def check_end_ids(model: str) -> Check | None:
    """Whether generation stops when the audio ends: config and generation config eos agree.

    Returns:
        A Check for a Hugging Face model folder or cached hub id (WARN when they disagree), a PASS
        for an original-layout folder (the import writes one id into both), None for
        ``random-full`` or a model that does not resolve (the model check says why).
    """
    from workbench.models.folder import ModelNotFoundError, read_json, resolve_model_path, special_token_ids
    from workbench.models.model import END_IDS_HINT, RANDOM_FULL, generation_stop_problem, read_end_ids
    from workbench.models.original_format import hf_config_from_original, is_original_checkpoint

    if model == RANDOM_FULL:
        return None
    if is_original_checkpoint(model):
        folder = Path(model).expanduser()
        try:
            config = hf_config_from_original(
                read_json(folder / "config.json") or {}, special_token_ids(folder)
            )
        except ValueError:
            return None  # the model check fails with the reason
        return Check(
            "end ids", PASS, f"eos {config.eos_token_id} in config and generation config after import"
        )
    try:
        folder = resolve_model_path(model)
        if (read_json(folder / "config.json") or {}).get("model_type") != "higgs_audio_v2":
            return None  # Higgs TTS 3 stops by its sampler (codebook 0's end), not by an end id
        config_eos, generation_eos = read_end_ids(folder)
    except (ModelNotFoundError, OSError, ValueError):
        return None
    problem = generation_stop_problem(config_eos, generation_eos)
    if problem:
        return Check("end ids", WARN, f"{folder}: {problem}", END_IDS_HINT)
    return Check(
        "end ids",
        PASS,
        f"eos {config_eos} in config.json and generation_config.json: generation stops at the end of audio",
    )


def check_data(path: str | os.PathLike[str], lines: int = DATA_LINES_CHECKED) -> Check:
    """A data file exists and its first ``lines`` records parse as canonical samples."""
    from workbench.data.sample import CanonicalFormatError, read_samples_with_lines

    name = "data"
    absolute = Path(path).expanduser().absolute()
    if not absolute.is_file():
        kind = "is a folder, not a JSONL file" if absolute.is_dir() else "not found"
        return Check(name, FAIL, f"{absolute}: {kind}", "run notebook 03 or `workbench convert` to write it")
    read = 0
    try:
        for _, _sample in read_samples_with_lines(absolute):
            read += 1
            if read >= lines:
                break
    except CanonicalFormatError as exc:
        detail, _, hint = str(exc).partition(" Hint: ")
        return Check(name, FAIL, detail, hint or "convert source data first with `workbench convert`")
    except (OSError, UnicodeDecodeError) as exc:
        return Check(name, FAIL, f"{absolute}: unreadable ({exc})")
    if read == 0:
        return Check(name, FAIL, f"{absolute}: no samples", "the file is empty")
    return Check(name, PASS, f"{absolute}: first {read} sample(s) are canonical")


def check_offline() -> Check:
    """Whether ``HF_HUB_OFFLINE`` keeps every library off the network."""
    value = os.environ.get("HF_HUB_OFFLINE", "")
    if value.strip().lower() in ("1", "true", "yes", "on"):
        return Check("hf offline", PASS, f"HF_HUB_OFFLINE={value}")
    return Check(
        "hf offline",
        WARN,
        "HF_HUB_OFFLINE is not set (the workbench loads local files only; other libraries may try the hub)",
        "export HF_HUB_OFFLINE=1 on machines without network so nothing waits on a download",
    )


def check_voice_scorers() -> list[Check]:
    """The scorers evaluation uses by default, loaded from the files inside their wheels.

    A missing one is a WARN: training does not need it, and evaluation leaves its columns out.
    """
    from workbench.evaluation import voice

    checks = []
    for name, load, model in (
        ("speaker score", voice.speaker_encoder, voice.SPEAKER_MODEL),
        ("naturalness", voice.dnsmos, voice.NATURALNESS_MODEL),
        ("intelligibility", voice.bundled_asr, voice.INTELLIGIBILITY_MODEL),
    ):
        try:
            load()
        except voice.BundledModelError as exc:
            message = str(exc)
            detail, _, fix = message.partition(" Fix: ")
            checks.append(Check(name, WARN, f"{detail} (evaluation leaves it out)", fix or None))
        else:
            checks.append(Check(name, PASS, f"{model}: loaded from its wheel"))
    return checks


def check_params(params_file: str | os.PathLike[str]) -> tuple[list[Check], Any]:
    """A training params file: valid, its launch fits this machine, its precision runs here.

    Returns:
        The checks, and the :class:`workbench.training.params.TrainParams` (None when the file is invalid).
    """
    import torch

    from workbench.training.launch import check_gpu_fit, processes_per_machine, visible_gpus
    from workbench.training.params import ParamsError, load_train_params

    try:
        params, launch = load_train_params(params_file)
    except ParamsError as exc:
        return [Check("params", FAIL, "; ".join(exc.problems), f"fix {params_file}")], None
    except (OSError, ValueError) as exc:
        return [Check("params", FAIL, f"{params_file}: {exc}", "give a readable YAML params file")], None
    checks = [Check("params", PASS, f"{params_file}: every parameter valid")]
    if launch.accelerate_config and not os.path.isfile(launch.accelerate_config):
        checks.append(
            Check("launch", FAIL, f"accelerate_config not found: {launch.accelerate_config}", "fix the path")
        )
    else:
        gpus = visible_gpus(launch.env)
        ranks = processes_per_machine(launch)
        problems = check_gpu_fit(launch, gpus)
        where = "GPU(s)" if gpus else "GPUs: ranks run on the CPU"
        detail = f"{ranks or launch.num_processes} rank(s) on this machine, {gpus} {where}"
        checks.append(Check("launch", FAIL, problems[0], None) if problems else Check("launch", PASS, detail))
    if params.mixed_precision != "no":
        if not torch.cuda.is_available():
            checks.append(
                Check(
                    "precision",
                    WARN,
                    f"mixed_precision: {params.mixed_precision} without a GPU runs slowly on the CPU",
                    'use mixed_precision: "no" on the CPU',
                )  # fmt: skip
            )
        elif params.mixed_precision == "bf16" and not torch.cuda.is_bf16_supported():
            checks.append(
                Check("precision", FAIL, "bf16 is not supported by this GPU", "use mixed_precision: fp16")
            )
        else:
            checks.append(Check("precision", PASS, f"{params.mixed_precision} on this GPU"))
    return checks, params


def doctor(
    model: str | None = None,
    data: Sequence[str | os.PathLike[str]] = (),
    output_dir: str | os.PathLike[str] = ".",
    min_free_gb: float = MIN_FREE_DISK_GB,
    params_file: str | os.PathLike[str] | None = None,
) -> list[Check]:
    """Run every check; never raises for a failed check (it becomes a FAIL line).

    Args:
        model: A model folder, a cached hub id, an original-layout folder or ``"random-full"``;
            None skips the model check.
        data: Canonical JSONL files to check (first lines only).
        output_dir: Where training will write (free disk is measured there or at its nearest
            existing parent).
        min_free_gb: Free disk below which the disk check warns.
        params_file: A training params file (:func:`check_params`); its ``model``, ``train_data``,
            ``val_data`` and ``output_dir`` are checked unless given here.

    Returns:
        The checks in display order.
    """
    checks = [check_python(), *check_torch(), check_transformers()]
    if params_file is not None:
        params_checks, params = check_params(params_file)
        checks += params_checks
        if params is not None:
            model = model if model is not None else params.model
            data = list(data) or [p for p in (params.train_data, params.val_data) if p]
            output_dir = params.output_dir if output_dir == "." else output_dir
    checks += [_check_min_version("peft"), _check_min_version("accelerate")]
    try:
        checks += check_gpus()
    except Exception as exc:  # a broken driver must not hide the other checks
        checks.append(Check("gpu", FAIL, f"CUDA query failed: {exc}", "check the NVIDIA driver (nvidia-smi)"))
    checks.append(check_disk(output_dir, min_free_gb))
    if model is not None:
        checks.append(check_model(str(model)))
        end_ids = check_end_ids(str(model))
        if end_ids is not None:
            checks.append(end_ids)
    checks += [check_data(path) for path in data]
    checks += check_voice_scorers()
    checks.append(check_offline())
    for check in checks:
        log.debug("doctor: %s", check.format_line())
    return checks
