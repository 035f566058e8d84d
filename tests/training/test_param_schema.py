"""Tests for workbench.training.param_schema: the typed reader, the flags and the renderings of a schema."""

from __future__ import annotations

import argparse
import ast
from dataclasses import dataclass
from typing import Literal

import pytest

from workbench.training.param_schema import (
    add_flags,
    build_params,
    coerce,
    flag_values,
    markdown_table,
    notebook_cell,
    param,
    schema,
    type_name,
)


@dataclass
class Recipe:
    """A schema with one field of each kind the reader knows."""

    name: str | None = param(None, help="required: a name")
    steps: int = param(10, help="optimizer steps")
    rate: float = param(1e-3, help="learning rate")
    every: int | float = param(50, help="steps, or a fraction of the run")
    precision: Literal["bf16", "fp16", "no"] = param("no", help="bf16 | fp16 | no")
    merge: bool = param(False, help="also merge")
    targets: list[str] | None = param(None, help="modules; null: the family's")
    size: tuple[int, int] = param((2, 3), help="rows and columns")
    env: dict[str, str] = param(factory=dict, help="environment")


def test_schema_resolves_annotations_to_real_types():
    fields = {f.name: f for f in schema(Recipe)}
    assert fields["steps"].hint is int and fields["merge"].hint is bool
    assert fields["name"].hint == str | None and fields["targets"].hint == list[str] | None
    assert fields["env"].default == {} and fields["steps"].help == "optimizer steps"
    assert [type_name(fields[n].hint) for n in ("name", "every", "precision", "targets", "size", "env")] == [
        "str | None", "int | float", "'bf16' | 'fp16' | 'no'", "list[str] | None", "tuple[int, int]",
        "dict[str, str]",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("value", "hint", "expected"),
    [
        (3, float, 3.0),
        ("1e-4", float, 1e-4),  # YAML 1.1 leaves 1e-4 a string
        ("yes", bool, True),
        ("off", bool, False),
        (50, int | float, 50),
        (0.1, int | float, 0.1),
        (None, str | None, None),
        ("q_proj", list[str] | None, ["q_proj"]),  # one name for a list of names
        (["a", "b"], list[str], ["a", "b"]),
        ([2, 3], tuple[int, int], (2, 3)),
        (["a", "b"], tuple[str, ...], ("a", "b")),
        ("fp16", Literal["bf16", "fp16", "no"], "fp16"),
        ({"OMP_NUM_THREADS": 16, "X": "y"}, dict[str, str], {"OMP_NUM_THREADS": "16", "X": "y"}),
    ],
)
def test_coerce_takes_values_of_the_type_and_near_misses(value, hint, expected):
    result = coerce(value, hint)
    assert result == expected and type(result) is type(expected)


@pytest.mark.parametrize(
    ("value", "hint"),
    [
        (True, int),  # a bool is not a number here
        (3, bool),
        ("two", int),
        (2.5, int),
        (None, int),
        ("fp8", Literal["bf16", "fp16", "no"]),
        (1, Literal[True]),  # 1 == True, but not the same choice
        ([1, 2], list[str]),
        ([1, 2, 3], tuple[int, int]),
        ("a", dict[str, str]),
        (False, str),
    ],
)
def test_coerce_refuses_what_does_not_fit(value, hint):
    with pytest.raises(ValueError):
        coerce(value, hint)


def test_every_problem_is_gathered_with_key_expected_and_got():
    problems: list[str] = []
    built = build_params(
        Recipe,
        {"stesp": 3, "rate": "fast", "precision": False, "merge": 3, "targets": None, "name": "None"},
        problems,
        prefix="recipe.",
    )
    assert problems == [
        "recipe.stesp: unknown parameter (did you mean 'steps'?)",
        "recipe.rate: expected float, got 'fast'",
        "recipe.precision: expected 'bf16' | 'fp16' | 'no', got False",
        "recipe.merge: expected bool, got 3",
    ]
    assert built == Recipe(name="None")  # the wrong values stay at their defaults
    problems.clear()
    build_params(Recipe, {"steps": "None", "env": {"DEBUG": True}}, problems)
    assert problems == [
        "steps: expected int, got 'None'",
        "env: expected dict[str, str], got {'DEBUG': True} "
        '(YAML reads unquoted no/yes/off/on as booleans: quote the value, e.g. "no")',
    ]
    problems.clear()
    build_params(Recipe, {"targets": "None", "name": 3}, problems)
    assert problems == ["name: expected str | None, got 3"]  # "None" is a text, and a list of one name
    assert build_params(Recipe, {"targets": "None"}, []).targets == ["None"]


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_flags(parser, Recipe, "recipe")
    return parser.parse_args(argv)


def test_flags_come_from_the_fields_and_only_given_ones_count():
    assert flag_values(parse([])) == {}
    given = flag_values(
        parse(["--steps", "7", "--every", "0.1", "--merge", "--targets", "q_proj", "v_proj", "--name", "2024",
               "--env", "A=1", "B=x=y", "--size", "4", "5", "--rate", "1e-4"])
    )  # fmt: skip
    assert given == {
        "steps": 7, "every": 0.1, "merge": True, "targets": ["q_proj", "v_proj"], "name": "2024",
        "env": {"A": "1", "B": "x=y"}, "size": [4, 5], "rate": "1e-4",
    }  # fmt: skip
    problems: list[str] = []
    recipe = build_params(Recipe, given, problems)
    assert not problems and recipe.size == (4, 5) and recipe.rate == 1e-4 and recipe.name == "2024"
    assert flag_values(parse(["--no-merge", "--targets", "null", "--name", "null"])) == {
        "merge": False, "targets": None, "name": None,
    }  # fmt: skip
    assert flag_values(parse(["--precision", "no"])) == {"precision": "no"}  # a word, not a bool


def test_flag_help_shows_the_fields_help_and_default(capsys):
    with pytest.raises(SystemExit):
        parse(["--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "--steps INT optimizer steps (default: 10)" in out
    assert "--precision bf16|fp16|no bf16 | fp16 | no (default: 'no')" in out
    assert "--merge, --no-merge also merge (default: false)" in out
    assert "--targets STR [STR ...] modules; null: the family's (default: null)" in out
    assert "--env NAME=VALUE [NAME=VALUE ...] environment (default: {})" in out
    with pytest.raises(SystemExit):
        parse(["--env", "novalue"])
    assert "expected NAME=VALUE, got 'novalue'" in capsys.readouterr().err


def test_renderings_hold_every_field_once():
    table = markdown_table(Recipe).splitlines()
    assert table[0] == "| parameter | type | default | meaning |" and len(table) == 2 + len(schema(Recipe))
    assert "| `targets` | list[str] \\| None | `null` | modules; null: the family's |" in table
    assert "| `precision` | 'bf16' \\| 'fp16' \\| 'no' | `'no'` | bf16 \\| fp16 \\| no |" in table
    cell = notebook_cell(Recipe)
    assignments = [node for node in ast.parse(cell).body if isinstance(node, ast.Assign)]
    values = {node.targets[0].id: ast.literal_eval(node.value) for node in assignments}
    assert values == {f.name: f.default for f in schema(Recipe)}
    assert "targets = None  # modules; None: the family's" in cell.splitlines()


def test_a_help_with_an_equals_sign_is_refused_at_declaration():
    """papermill skips a parameters-cell line holding two '=': the field would vanish from the notebook."""
    with pytest.raises(ValueError, match="cannot hold '='"):
        param(16, help="higher = more memory")
