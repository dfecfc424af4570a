"""Flags generated from a dataclass config: one ``--flag`` per field, typed from its annotation
(bools as ``--x/--no-x``, tuples as several values), help from the field's metadata, and the
config built from the parsed flags, its own checks being the only ones, their errors naming the flag."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import types
import typing
from collections.abc import Iterator

SCALARS = (int, float, str, bool)


class FlagError(ValueError):
    """A flag's value that its config refused; the command line reports it as argparse reports a bad flag."""


def flag(name: str) -> str:
    """The flag of a config field: ``--grad-accum`` for ``grad_accum``."""
    return "--" + name.replace("_", "-")


def add_config_flags(parser: argparse.ArgumentParser, cls: type, *, title: str, defaults: dict | None = None,
                     base=None, helps: dict | None = None, choices: dict | None = None,
                     exclude: tuple[str, ...] = ()) -> None:  # fmt: skip
    """Add a flag for each field of dataclass ``cls`` (but ``exclude``) in a group named ``title``.

    Defaults are ``defaults`` (a command's own recipe), else the field's. With ``base`` (a config
    instance, e.g. a registered model size) the flags default to None, "not given": the config keeps
    ``base``'s value, which the help shows. Help is ``helps[name]``, else ``metadata["help"]``
    (else the field's name); choices are ``choices[name]``, else ``metadata["choices"]``.
    """
    defaults, helps, choices = defaults or {}, helps or {}, choices or {}
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted((set(defaults) | set(helps) | set(exclude)) - set(fields))
    if unknown:
        raise TypeError(f"{unknown[0]}: not a field of {cls.__name__}")
    hints = typing.get_type_hints(cls)
    group = parser.add_argument_group(title)
    for name, f in fields.items():
        if name in exclude:
            continue
        kind, nargs = _flag_type(name, hints[name])
        default = defaults[name] if name in defaults else _field_default(f)
        shown = getattr(base, name) if base is not None else default
        text = helps.get(name, f.metadata.get("help", f"{cls.__name__}.{name}"))
        kw = {"default": None if base is not None else default, "help": _help(text, shown, kind)}
        if kind is bool:
            group.add_argument(flag(name), action=argparse.BooleanOptionalAction, **kw)
        else:
            group.add_argument(flag(name), type=kind, nargs=nargs, choices=choices.get(name, f.metadata.get("choices")),
                               metavar=_metavar(name, kind, nargs), **kw)  # fmt: skip


def config_values(cls: type, args: argparse.Namespace, *, given: bool = False) -> dict:
    """The fields of ``cls`` that ``args`` holds (only those given on the command line, with ``given``)."""
    values = {}
    for f in dataclasses.fields(cls):
        value = getattr(args, f.name, None)
        if hasattr(args, f.name) and not (given and value is None):
            values[f.name] = tuple(value) if isinstance(value, list) else value
    return values


def build_config(cls: type, args: argparse.Namespace, **fixed):
    """``cls`` from its flags in ``args`` and ``fixed`` fields; its refusals as FlagErrors."""
    with flag_errors(cls):
        return cls(**config_values(cls, args), **fixed)


@contextlib.contextmanager
def flag_errors(cls: type) -> Iterator[None]:
    """Re-raise a ValueError or TypeError that names a field of ``cls`` ("field: ...") as a
    FlagError naming its flag ("argument --field: ..."), so a bad value reads as a bad flag."""
    try:
        yield
    except (ValueError, TypeError) as e:
        name, _, rest = str(e).partition(":")
        if isinstance(e, FlagError) or not rest or name not in {f.name for f in dataclasses.fields(cls)}:
            raise
        raise FlagError(f"argument {flag(name)}:{rest}") from None


def _flag_type(name: str, annotation) -> tuple[type, int | str | None]:
    """(value type, nargs) of a field: ``X | None`` as X, ``tuple[X, X]`` as 2 X, ``tuple[X, ...]`` as 1+."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return _flag_type(name, args[0])
    if typing.get_origin(annotation) is tuple:
        items = typing.get_args(annotation)
        if len(items) == 2 and items[1] is Ellipsis and items[0] in SCALARS:
            return items[0], "+"
        if items and len(set(items)) == 1 and items[0] in SCALARS:
            return items[0], len(items)
    if annotation in SCALARS:
        return annotation, None
    raise TypeError(f"{name}: no flag for a field of type {annotation}")


def _field_default(f: dataclasses.Field):
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None


def _help(text: str, default, kind: type) -> str:
    """The help text, ending with the default as it would be typed, unless the text says what it is."""
    text = text.replace("%", "%%")
    if "default" in text:
        return text
    if default is None:
        shown = "none"
    elif kind is bool:
        shown = "on" if default else "off"
    elif isinstance(default, (tuple, list)):
        shown = " ".join(map(str, default))
    else:
        shown = str(default)
    return f"{text} (default {shown})"


def _metavar(name: str, kind: type, nargs) -> str | tuple[str, ...] | None:
    if isinstance(nargs, int):
        return (kind.__name__.upper(),) * nargs
    return None
