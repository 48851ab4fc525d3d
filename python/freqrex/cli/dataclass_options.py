"""Command-line options generated from the fields of an options dataclass.

A command lists its options as :class:`CliOption` rows (field, help text,
and only where needed a flag, a parser or choices); :func:`add_options`
adds them to a parser with ``default=None`` and the dataclass's default in
the help, and :func:`given_options` returns the ones given, by field name,
to pass to the dataclass (or the function) that owns the defaults.  So the
command line has no default of its own.
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional, Sequence, Tuple, Type

__all__ = ["CliOption", "add_options", "given_options", "dataclass_defaults", "show_default", "help_suffix"]


@dataclass(frozen=True)
class CliOption:
    """One command-line option that sets one field of an options dataclass.

    Attributes
    ----------
    field : str
        The dataclass field it sets (also the ``argparse`` dest).
    help : str
        What it does; `` (default X)`` is appended from the dataclass.
    flag : str, optional
        The flag; default ``--`` and the field name with dashes.
    parse : callable, optional
        Turns the text into the value; default the type of the field's
        default (int, float or str).
    choices : tuple, optional
        The values allowed.
    switch_off : bool
        A boolean field that the flag (``--no-...``, taking no value) sets to
        False.
    aliases : tuple of str
        Further flags for the same option.
    """

    field: str
    help: str
    flag: Optional[str] = None
    parse: Optional[Callable[[str], Any]] = None
    choices: Optional[Tuple[Any, ...]] = None
    switch_off: bool = False
    #: Further flags for the same option (an older name kept working).
    aliases: Tuple[str, ...] = ()

    @property
    def option_string(self) -> str:
        """The flag on the command line."""
        return self.flag or "--" + self.field.replace("_", "-")


def dataclass_defaults(cls: Type[Any]) -> Dict[str, Any]:
    """Field name -> default of a dataclass whose fields all have plain defaults."""
    return {f.name: f.default for f in dataclasses.fields(cls)}


def show_default(value: Any) -> str:
    """A default as it is typed on the command line (a tuple comma-separated)."""
    if isinstance(value, (tuple, list)):
        return ",".join(str(v) for v in value)
    return str(value)


def help_suffix(option: CliOption, default: Any) -> str:
    """The end of an option's help: the default of its dataclass field."""
    if option.switch_off:
        return f"(default {option.field}={default})"
    return f"(default {show_default(default)})"


def add_options(group: Any, cls: Type[Any], options: Sequence[CliOption]) -> None:
    """Add ``options``, fields of the dataclass ``cls``, to ``group`` (a parser or an argument group).

    Each is parsed with ``default=None`` (not given: the dataclass's default
    applies) and its help ends with the dataclass's default.

    Raises
    ------
    TypeError
        A field ``cls`` does not have, or one with no default to infer a
        parser from and no ``parse`` given (a bug in the command's table).
    """
    defaults = dataclass_defaults(cls)
    for option in options:
        if option.field not in defaults:
            raise TypeError(f"{cls.__name__} has no field {option.field!r}")
        default = defaults[option.field]
        text = f"{option.help} {help_suffix(option, default)}"
        if option.switch_off:
            if default is not True:
                raise TypeError(f"{option.option_string} switches off {option.field}, whose default is {default!r}")
            group.add_argument(option.option_string, dest=option.field, action="store_const", const=False,
                               default=None, help=text)
            continue
        parse = option.parse
        if parse is None:
            if isinstance(default, bool) or not isinstance(default, (int, float, str)):
                raise TypeError(f"give {option.option_string} a parser: its default is {default!r}")
            parse = type(default)
        group.add_argument(option.option_string, *option.aliases, dest=option.field, type=parse,
                           choices=option.choices, default=None, help=text)


def given_options(args: argparse.Namespace, options: Sequence[CliOption]) -> Dict[str, Any]:
    """The options given on the command line, by field name (those not given are left out)."""
    return {o.field: getattr(args, o.field) for o in options if getattr(args, o.field, None) is not None}
