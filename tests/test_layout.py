"""The package layout holds: imports run one way, never in a circle, and never borrow a private name.

Every ``import`` in the package is read from the source (module level, inside functions, under
``if TYPE_CHECKING``), so an import that only runs later counts like any other. The stages, in the
order data flows, may import only the stages before them:

    workbench (root) <- files, offline <- audio <- prepare <- data <- models <- training <- evaluation
    <- notebook <- demo <- doctor, bench <- cli

``files`` (the one atomic writer and table writer), ``offline`` (the one lookup of a model folder
or cached hub id) and ``audio`` (the one clip reader and silence detector) are single modules under
everything; ``demo`` (tiny models, demo data, synthetic recordings, the demo pipeline) sits above the
stages, so no stage can depend on a test builder.

Inside a stage, modules import each other freely, but never in a circle.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

import workbench

PACKAGE_DIR = Path(workbench.__file__).resolve().parent
STAGES = ("prepare", "data", "models", "training", "evaluation", "notebook")
# Each unit may import the units of earlier layers (and itself), nothing else.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("workbench",),
    ("workbench.files", "workbench.offline"),
    ("workbench.audio",),
    *((f"workbench.{stage}",) for stage in STAGES),
    ("workbench.demo",),
    ("workbench.doctor", "workbench.bench"),
    ("workbench.cli",),
)


@dataclass(frozen=True)
class Edge:
    source: str  # importing module
    target: str  # imported module (an exported name resolves to the module that defines it)
    name: str | None  # the name imported from it, if any
    where: str  # file:line

    def __str__(self) -> str:
        what = f"{self.target}.{self.name}" if self.name else self.target
        return f"{self.where}: {self.source} imports {what}"


def module_files(root: Path, package: str = "workbench") -> dict[str, Path]:
    """``{module name: file}`` of every module of ``package`` under ``root`` (packages as their ``__init__``)."""
    modules = {}
    for file in sorted((root / package).rglob("*.py")):
        parts = list(file.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = file
    return modules


def package_exports(file: Path) -> dict[str, str]:
    """A package ``__init__``'s public names and their modules (its ``lazy_exports`` call), read statically."""
    for node in ast.walk(ast.parse(file.read_text())):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "lazy_exports":
            return {name: k.arg for k in node.keywords for name in ast.literal_eval(k.value)}
    return {}


def import_edges(root: Path, package: str = "workbench") -> list[Edge]:
    """Every import inside ``package`` of a module of ``package``, wherever it stands in the file."""
    modules = module_files(root, package)
    edges = []
    for module, file in modules.items():
        is_package = file.name == "__init__.py"
        for node in ast.walk(ast.parse(file.read_text(), str(file))):
            where = f"{file.relative_to(root)}:{getattr(node, 'lineno', 0)}"
            if isinstance(node, ast.Import):
                edges += [
                    Edge(module, a.name, None, where) for a in node.names if a.name.split(".")[0] == package
                ]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = module.split(".") if is_package else module.split(".")[:-1]
                    base = base[: len(base) - node.level + 1]
                    origin = ".".join(base + ([node.module] if node.module else []))
                else:
                    origin = node.module or ""
                if origin.split(".")[0] != package:
                    continue
                for alias in node.names:
                    target = f"{origin}.{alias.name}"
                    if target in modules:  # a submodule
                        edges.append(Edge(module, target, None, where))
                        continue
                    exports = package_exports(modules[origin]) if origin in modules else {}
                    if alias.name in exports:  # a stage's public name: the module that defines it
                        edges.append(Edge(module, f"{origin}.{exports[alias.name]}", alias.name, where))
                    else:
                        edges.append(Edge(module, origin, alias.name, where))
    return edges


def unit_of(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 else parts[0]


def layer_of(module: str) -> int:
    unit = unit_of(module)
    for rank, units in enumerate(LAYERS):
        if unit in units:
            return rank
    raise AssertionError(f"{module}: not in any layer of the layout; add it to LAYERS")


def upward_imports(edges: list[Edge]) -> list[Edge]:
    """Imports of a later (or a sibling) layer's unit: data must not know training, and so on."""
    return [
        e
        for e in edges
        if unit_of(e.target) != unit_of(e.source) and layer_of(e.target) >= layer_of(e.source)
    ]


def private_imports(edges: list[Edge]) -> list[Edge]:
    """A module's underscore names imported by another module."""
    return [
        e
        for e in edges
        if e.name and e.name.startswith("_") and not e.name.startswith("__") and e.target != e.source
    ]


def circles(edges: list[Edge]) -> list[list[str]]:
    """The import circles between modules: strongly connected groups of more than one module."""
    graph: dict[str, set[str]] = {}
    for e in edges:
        if e.target != e.source:
            graph.setdefault(e.source, set()).add(e.target)
            graph.setdefault(e.target, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found = []

    def visit(node: str) -> None:  # Tarjan; the package is small enough for recursion
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


EDGES = import_edges(PACKAGE_DIR.parent)


def test_the_walker_sees_imports_inside_functions_and_type_checking_blocks():
    sources = {e.source for e in EDGES}
    assert {"workbench.cli.commands", "workbench.models.model", "workbench.evaluation.eval_report"} <= sources
    inside_functions = [e for e in EDGES if e.source == "workbench.cli.commands"]
    assert any(e.target == "workbench.data.convert" for e in inside_functions)  # cli imports lazily
    assert any(  # only under TYPE_CHECKING
        e.source == "workbench.evaluation.eval_report" and e.target == "workbench.evaluation.candidates"
        for e in EDGES
    )


def test_every_import_names_a_module():
    """A moved module leaves no stale import behind (``from .validate`` inside training/ is no module)."""
    modules = module_files(PACKAGE_DIR.parent)
    missing = [e for e in EDGES if e.target not in modules]
    assert not missing, "imports of modules that do not exist:\n" + "\n".join(map(str, missing))


def test_every_module_belongs_to_a_layer():
    for module in module_files(PACKAGE_DIR.parent):
        layer_of(module)


def test_imports_run_one_way():
    upward = upward_imports(EDGES)
    assert not upward, "imports against the flow (move the code down or pass it in):\n" + "\n".join(
        map(str, upward)
    )


def test_no_import_circles():
    found = circles(EDGES)
    assert not found, "import circles:\n" + "\n".join(" <-> ".join(group) for group in found)


def test_no_module_imports_another_modules_private_names():
    private = private_imports(EDGES)
    assert not private, (
        "private names imported across modules (make them public or move them):\n"
        + "\n".join(map(str, private))
    )


def test_the_checks_fail_on_a_circle_an_upward_import_and_a_private_name(tmp_path):
    files = {
        "workbench/__init__.py": "",
        "workbench/data/__init__.py": 'lazy_exports(__name__, things=("Thing",))\n',
        "workbench/data/things.py": "def helper():\n    from workbench.training.loop import run  # upward\n",
        "workbench/data/other.py": "from workbench.data import Thing\n",
        "workbench/training/__init__.py": "",
        "workbench/training/loop.py": "from workbench.training.steps import _step\n\ndef run(): ...\n",
        "workbench/training/steps.py": "from . import loop\n\ndef _step(): ...\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    edges = import_edges(tmp_path)
    assert [(e.source, e.target) for e in upward_imports(edges)] == [
        ("workbench.data.things", "workbench.training.loop")
    ]
    assert circles(edges) == [["workbench.training.loop", "workbench.training.steps"]]
    assert [(e.source, e.name) for e in private_imports(edges)] == [("workbench.training.loop", "_step")]
    # an exported name resolves to the module that defines it
    assert (
        Edge("workbench.data.other", "workbench.data.things", "Thing", "workbench/data/other.py:1") in edges
    )


@pytest.mark.parametrize("stage", [*STAGES, "demo", "bench"])
def test_each_stage_exports_its_public_names(stage):
    import importlib

    package = importlib.import_module(f"workbench.{stage}")
    blocks = (package.__doc__ or "").strip().split("\n\n")
    assert len(blocks) == 2, "a summary line and one paragraph: what the stage takes in and gives out"
    modules = {
        m.rsplit(".", 1)[1]
        for m in module_files(PACKAGE_DIR.parent)
        if unit_of(m) == f"workbench.{stage}" and m != f"workbench.{stage}"
    }
    exports = package_exports(Path(package.__file__))
    assert exports and sorted(package.__all__) == sorted(exports)
    for name, module in exports.items():
        assert module in modules, f"workbench.{stage}.{name}: no module {module}"
        assert name not in modules, f"workbench.{stage}.{name} would be hidden by the module of that name"
        assert getattr(package, name) is getattr(importlib.import_module(f"workbench.{stage}.{module}"), name)
    assert set(package.__all__) <= set(dir(package))
    with pytest.raises(AttributeError, match="has no attribute 'nothing_here'"):
        package.nothing_here  # noqa: B018


def test_light_modules_stay_light():
    """A launched rank reads params and runs a notebook; the CLI reads samples: none of it loads torch."""
    code = (
        "import sys, workbench.data, workbench.training, workbench.training.launch, workbench.notebook.ranks, workbench.data.sample, "
        "workbench.training.params, workbench.training.context; print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
