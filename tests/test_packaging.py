"""Packaging: pyproject and environment.yml agree; the console script and CI entry exist."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[; ]", requirement.strip(), maxsplit=1)[0].lower()


def test_environment_yml_lists_the_same_packages_and_pins_as_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    deps = {_name(d): d.replace(" ", "") for d in project["dependencies"]}
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    conda = {_name(d): d.replace(" ", "") for d in pip_section}
    assert sorted(conda) == sorted(deps), f"only in one file: {sorted(set(conda) ^ set(deps))}"
    for name, spec in deps.items():
        assert conda[name] == spec, f"{name}: pyproject says {spec}, environment.yml says {conda[name]}"


def test_torch_and_torchaudio_are_pinned_to_the_same_release():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = {_name(d): d.split("==")[-1] for d in project["dependencies"] if "==" in d}
    assert pins["torch"] == pins["torchaudio"]


def test_console_script_runs_and_lists_commands():
    out = subprocess.run(
        [sys.executable, "-m", "workbench.cli", "--help"], capture_output=True, text=True, check=True
    )
    for command in (
        "prepare",
        "convert",
        "validate",
        "split",
        "inspect",
        "demo-data",
        "bench",
        "make-tiny-model",
    ):
        assert command in out.stdout


def test_ci_runs_the_readme_test_command():
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    readme = (ROOT / "README.md").read_text()
    assert "make test" in readme and "make demo" in readme
