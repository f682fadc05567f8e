"""Command-line options for ``logferry sim NAME``, derived from each simulator's options dataclass.

A field ``live_rate: float = 2.0`` becomes ``--live-rate FLOAT``; a bool becomes ``--flag`` or
``--flag false``; the ``faults`` field takes the JSON list ``POST /sim/faults`` takes. Help text
comes from the field's ``metadata["help"]`` (see :func:`opt`), so each option is documented once.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from collections.abc import Callable, Sequence
from typing import Any, NoReturn, TypeVar

import orjson

from .faults import FaultRule, parse_rules
from .server import SimOptions

__all__ = ["opt", "options_parser", "parse_options_for"]

T = TypeVar("T")
OptionsT = TypeVar("OptionsT", bound=SimOptions)


def opt(default: T, help: str) -> T:
    """A dataclass field with a default and the help text ``--help`` shows."""
    return dataclasses.field(default=default, metadata={"help": help})


class _RaisingParser(argparse.ArgumentParser):
    # argparse's default is to print usage and exit(2); the CLI wants a ValueError it can report.
    def error(self, message: str) -> NoReturn:
        raise ValueError(f"{self.prog}: {message}")


def options_parser(options_type: type[SimOptions], prog: str) -> argparse.ArgumentParser:
    """An argparse parser with one ``--option`` per field of ``options_type``."""
    parser = _RaisingParser(prog=prog, allow_abbrev=False, argument_default=argparse.SUPPRESS)
    hints = typing.get_type_hints(options_type)
    for field in dataclasses.fields(options_type):
        if not field.init:
            continue
        flag = "--" + field.name.replace("_", "-")
        help_text = field.metadata.get("help", "")
        default = field.default if field.default is not dataclasses.MISSING else None
        hint = _strip_optional(hints[field.name])
        if hint is bool:
            parser.add_argument(
                flag,
                dest=field.name,
                nargs="?",
                const=True,
                type=_parse_bool,
                metavar="BOOL",
                help=f"{help_text} (default: {default})",
            )
        else:
            convert, metavar = _converter(hint, field.name)
            parser.add_argument(
                flag, dest=field.name, type=convert, metavar=metavar, help=f"{help_text} (default: {default})"
            )
    return parser


def parse_options_for(options_type: type[OptionsT], argv: Sequence[str], prog: str) -> OptionsT:
    """Parse ``argv`` into ``options_type``; any problem raises ``ValueError`` naming the option."""
    parser = options_parser(options_type, prog)
    namespace, unknown = parser.parse_known_args(list(argv))
    if unknown:
        known = ", ".join(a.option_strings[0] for a in parser._actions if a.option_strings[0] != "-h")
        raise ValueError(f"{prog}: unknown option(s) {' '.join(unknown)}; known options: {known}")
    return options_type(**vars(namespace))


def _strip_optional(hint: Any) -> Any:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return hint


def _converter(hint: Any, name: str) -> tuple[Callable[[str], Any], str]:
    if hint in (int, float, str):
        return hint, hint.__name__.upper()
    if typing.get_origin(hint) is tuple and typing.get_args(hint)[:1] == (FaultRule,):
        return _parse_faults, "JSON"
    raise TypeError(f"option {name!r}: no command-line conversion for type {hint!r}")


def _parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"not a boolean: {text!r}")


def _parse_faults(text: str) -> tuple[FaultRule, ...]:
    try:
        return tuple(parse_rules(orjson.loads(text)))
    except ValueError as exc:  # orjson.JSONDecodeError is a ValueError too
        # ArgumentTypeError keeps our message; argparse would replace a ValueError's with a generic one.
        raise argparse.ArgumentTypeError(str(exc)) from None


# argparse reports "invalid <name> value" using the converter's __name__.
_parse_bool.__name__ = "boolean"
_parse_faults.__name__ = "fault rules"
