"""Typed parameter schemas: one declaration per parameter gives its reader, its flag and its docs.

A parameter dataclass (:class:`workbench.training.params.TrainParams`,
:class:`workbench.evaluation.params.EvalParams`, ...) declares each field once, with :func:`param`:
its type annotation, its default and one line of help. From that declaration :func:`build_params`
reads YAML and command-line values into the field's real type (no ``eval``: the annotations are
resolved by :func:`typing.get_type_hints`), :func:`add_flags` gives the ``--field-name`` flags of
``workbench train`` and ``workbench evaluate``, and :func:`render` writes the README's parameter
tables and the notebooks' ``parameters`` cells (``workbench params``).

Hand-written rather than transformers' ``HfArgumentParser``: that one refuses ``int | float`` fields,
has no form for dict fields, and fills every default in, which would hide a params file's values.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import functools
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import yaml

HELP = "help"  # the metadata key of a field's help, as in HfArgumentParser

# Words YAML 1.1 reads as booleans. On the command line they stay words (``-p mixed_precision no``
# means the string "no"); a boolean parameter still takes them (:func:`as_flag`).
FLAG_WORDS = {
    "true": True,
    "false": False,
    "yes": True,
    "no": False,
    "on": True,
    "off": False,
    "y": True,
    "n": False,
}


def param(default: Any = dataclasses.MISSING, *, help: str, factory: Callable[[], Any] | None = None) -> Any:
    """A parameter field: its default (or ``factory`` for a list or dict) and its one line of help.

    Examples:
        >>> @dataclass
        ... class Recipe:
        ...     lora_r: int = param(16, help="LoRA rank: higher gives more capacity and takes more memory")
    """
    if "=" in help:  # papermill skips a parameters-cell line holding two "="
        raise ValueError(
            f"a parameter's help cannot hold '=' (papermill would not read its notebook line): {help!r}"
        )
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata={HELP: help})
    return dataclasses.field(default=default, metadata={HELP: help})


def same_param(cls: type, name: str) -> Any:
    """A field with the default and help of field ``name`` of ``cls`` (two schemas sharing one parameter)."""
    [source] = [f for f in schema(cls) if f.name == name]
    return param(source.default, help=source.help)


@dataclass(frozen=True)
class ParamField:
    """One parameter of a schema, its annotation resolved to a real type."""

    name: str
    hint: Any
    default: Any
    help: str

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


@functools.cache
def schema(cls: type) -> tuple[ParamField, ...]:
    """The parameters of dataclass ``cls``, in declaration order."""
    hints = typing.get_type_hints(cls)
    return tuple(
        ParamField(
            f.name,
            hints[f.name],
            f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default,
            f.metadata.get(HELP, ""),
        )
        for f in dataclasses.fields(cls)
    )


def type_name(hint: Any) -> str:
    """How a type reads in messages and tables: ``int``, ``str | None``, ``list[str] | None``."""
    if hint is type(None):
        return "None"
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):
        return " | ".join(type_name(a) for a in args)
    if origin is Literal:
        return " | ".join(repr(a) for a in args)
    if origin is not None:
        return f"{origin.__name__}[{', '.join('...' if a is Ellipsis else type_name(a) for a in args)}]"
    return getattr(hint, "__name__", str(hint))


def as_flag(value: Any) -> Any:
    """``value`` as a bool when it is a yes/no/on/off/true/false word, else unchanged."""
    if isinstance(value, str) and value.strip().lower() in FLAG_WORDS:
        return FLAG_WORDS[value.strip().lower()]
    return value


def coerce(value: Any, hint: Any) -> Any:
    """``value`` as type ``hint``, or ``ValueError`` when it does not fit.

    Near misses of YAML and the command line are taken: an int where a float goes, a string YAML 1.1
    left unread (``1e-4``), a yes/no word for a bool, one item for a list, a number for a string
    inside a mapping (``OMP_NUM_THREADS: 16`` in ``env``).
    """
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return value
    if hint is type(None) and value is None:
        return None
    if origin in (types.UnionType, typing.Union):
        if value is None and type(None) in args:
            return None
        for arm in (a for a in args if a is not type(None)):  # in declared order: 50 stays int in int | float
            try:
                return coerce(value, arm)
            except ValueError:
                continue
    elif origin is Literal:
        for choice in args:
            if type(choice) is type(value) and choice == value:
                return choice
    elif origin in (list, tuple) or hint in (list, tuple):
        items = [value] if isinstance(value, str) else value  # one name for a list of names
        if isinstance(items, (list, tuple)):
            if origin is tuple and args and args[-1] is not Ellipsis:
                if len(items) != len(args):
                    raise ValueError(f"expected {len(args)} items, got {len(items)}")
                return tuple(coerce(v, a) for v, a in zip(items, args, strict=True))
            coerced = [coerce(v, args[0]) for v in items] if args else list(items)
            return tuple(coerced) if origin is tuple or hint is tuple else coerced
    elif origin is dict or hint is dict:
        if isinstance(value, dict):
            key_hint, value_hint = args or (Any, Any)
            return {
                coerce(k, key_hint): coerce(
                    str(v) if value_hint is str and type(v) in (int, float) else v, value_hint
                )
                for k, v in value.items()
            }
    elif hint is bool:
        if isinstance(as_flag(value), bool):
            return as_flag(value)
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads 1e-4 (no dot) as a string
            return float(value)
    elif isinstance(hint, type):
        if isinstance(value, hint):
            return value
    raise ValueError(f"expected {type_name(hint)}, got {value!r}")


def _holds_bool(value: Any) -> bool:
    return isinstance(value, bool) or (
        isinstance(value, (list, tuple, dict))
        and any(isinstance(v, bool) for v in (value.values() if isinstance(value, dict) else value))
    )


def build_params(cls: type, data: dict[str, Any], problems: list[str], prefix: str = "") -> Any:
    """A parameter dataclass ``cls`` from ``data``, each value read into its field's type.

    Unknown keys and values of the wrong type are appended to ``problems`` (each naming the key and
    what was expected and got, with a "did you mean" when a parameter is close) and left at their
    defaults, so a caller reports every problem at once.
    """
    fields = {f.name: f for f in schema(cls)}
    kwargs = {}
    for key, value in data.items():
        if key not in fields:
            close = difflib.get_close_matches(key, fields, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            problems.append(f"{prefix}{key}: unknown parameter{hint}")
            continue
        expected = fields[key].hint
        try:
            kwargs[key] = coerce(value, expected)
        except ValueError:
            hint = ""
            if _holds_bool(value) and "str" in type_name(expected):
                hint = ' (YAML reads unquoted no/yes/off/on as booleans: quote the value, e.g. "no")'
            elif value in ("None", "none") and type(None) in typing.get_args(expected):
                hint = " (write null for None)"
            problems.append(f"{prefix}{key}: expected {type_name(expected)}, got {value!r}{hint}")
    return cls(**kwargs)


# --- command-line flags ------------------------------------------------------------------------------
def parse_cli_value(text: str) -> Any:
    """``-p NAME VALUE``: VALUE is read as YAML (numbers, lists, true/false), else kept as text.

    yes/no/on/off stay text: YAML 1.1 would read them as booleans, and on a command line there is
    no way to quote them (the shell strips the quotes).
    """
    if text.strip().lower() in FLAG_WORDS.keys() - {"true", "false"}:
        return text.strip()
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def _arms(hint: Any) -> tuple[Any, ...]:
    """The types a value may have besides None."""
    if typing.get_origin(hint) in (types.UnionType, typing.Union):
        return tuple(a for a in typing.get_args(hint) if a is not type(None))
    return (hint,)


def _is_many(hint: Any) -> bool:
    return any(typing.get_origin(a) in (list, tuple) or a in (list, tuple) for a in _arms(hint))


def _is_mapping(hint: Any) -> bool:
    return any(typing.get_origin(a) is dict or a is dict for a in _arms(hint))


def _metavar(hint: Any, many: bool) -> str:
    """``INT|FLOAT``, ``STR`` (a list's items), ``bf16|fp16|no``: no spaces, which argparse's usage wrap trips on."""
    names = []
    for arm in _arms(hint):
        arm = typing.get_args(arm)[0] if many else arm
        literal = typing.get_origin(arm) is Literal
        names.append("|".join(map(str, typing.get_args(arm))) if literal else type_name(arm).upper())
    return "|".join(names)


def _name_value(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name, value


def add_flags(parser: argparse.ArgumentParser, cls: type, title: str) -> None:
    """One ``--field-name`` flag per field of ``cls``, in an argument group ``title``, help and
    default from the field.

    A flag's value is read as ``-p NAME VALUE`` reads it (YAML), except that a text parameter keeps
    its text (``--output-dir 2024`` is a folder); ``null`` gives None. A list takes several values
    (``--adapters runs/a runs/b``), a mapping ``NAME=VALUE`` pairs (``--env OMP_NUM_THREADS=4``), a
    bool is ``--merge`` / ``--no-merge``. A flag not given leaves its parameter to the params file,
    then the default (:func:`flag_values`).
    """
    group = parser.add_argument_group(title)
    for f in schema(cls):
        help_text = f"{f.help} (default: {yaml_text(f.default)})".replace("%", "%%")
        common = {"dest": f.name, "default": argparse.SUPPRESS, "help": help_text}
        if f.hint is bool:
            group.add_argument(f.flag, action=argparse.BooleanOptionalAction, **common)
        elif _is_mapping(f.hint):
            group.add_argument(f.flag, nargs="+", type=_name_value, metavar="NAME=VALUE", **common)
        else:
            many = _is_many(f.hint)
            group.add_argument(f.flag, nargs="+" if many else None, metavar=_metavar(f.hint, many), **common)
    parser.set_defaults(param_schemas=(*(parser.get_default("param_schemas") or ()), cls))


def _flag_value(given: Any, hint: Any) -> Any:
    """A flag's text as the parameter's value (before :func:`coerce`)."""
    if isinstance(given, bool):
        return given
    if given in ("null", "~", ["null"], ["~"]) and type(None) in typing.get_args(hint):
        return None
    if _is_mapping(hint):
        return dict(given)
    if isinstance(given, list):
        texts_only = all(typing.get_args(a) in ((str,), (str, Ellipsis)) for a in _arms(hint))
        return list(given) if texts_only else [parse_cli_value(v) for v in given]
    if all(a is str for a in _arms(hint)):  # a folder named 2024 or no stays text
        return given
    return parse_cli_value(given)


def flag_values(namespace: argparse.Namespace) -> dict[str, Any]:
    """The parameters given as flags (of the schemas :func:`add_flags` added), by name."""
    given = vars(namespace)
    return {
        f.name: _flag_value(given[f.name], f.hint)
        for cls in given.get("param_schemas") or ()
        for f in schema(cls)
        if f.name in given
    }


# --- documentation -----------------------------------------------------------------------------------
def yaml_text(value: Any) -> str:
    """``value`` as it is written in a params file (``null``, ``'no'``, ``[a, b]``)."""
    return yaml.safe_dump(value, default_flow_style=True, width=10**6).removesuffix("\n...\n").strip()


def markdown_table(cls: type) -> str:
    """The README's table of ``cls``: parameter, type, default, meaning."""

    def cell(text: str) -> str:
        return text.replace("|", "\\|")  # a pipe inside a table cell, code spans too, must be escaped

    rows = [
        f"| `{f.name}` | {cell(type_name(f.hint))} | `{cell(yaml_text(f.default))}` | {cell(f.help)} |"
        for f in schema(cls)
    ]
    return "\n".join(["| parameter | type | default | meaning |", "| --- | --- | --- | --- |", *rows])


def notebook_cell(cls: type) -> str:
    """A notebook's ``parameters`` cell for ``cls``: one ``name = default  # help`` line per field."""
    # The cell is Python: the help's YAML null reads None there.
    return "\n".join(f"{f.name} = {f.default!r}  # {f.help.replace('null', 'None')}" for f in schema(cls))


def render(cls: type, form: str = "markdown") -> str:
    """``cls``'s parameters as a README table (``markdown``) or a notebook parameters cell (``cell``)."""
    if form == "cell":
        return notebook_cell(cls)
    if form == "markdown":
        return markdown_table(cls)
    raise ValueError(f"unknown form {form!r}; expected markdown or cell")
