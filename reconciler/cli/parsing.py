"""The argument parser's classes: an ArgumentParser whose help is formatted to the terminal's
width, measured once and only when some text is formatted (help, a usage error).

Imported by main.build_parser only: `reconcile --version` and the fast path of the read-only
commands (cli/fastpath.py) build no parser and import no argparse (#21).
"""

from __future__ import annotations

import argparse
import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["Parser", "add_go_bool_flag", "go_bool", "intermixed"]

_width: int | None = None


def _help_width() -> int:
    """The width help is formatted to: the terminal's, as argparse measures it, minus 2."""
    global _width
    if _width is None:
        _width = terminal_columns() - 2
    return _width


def terminal_columns(fallback: int = 80) -> int:
    """What `shutil.get_terminal_size().columns` answers (the one argparse asks), without
    importing shutil (with bz2 and lzma: ~5 ms of a `reconcile --help`, #21): $COLUMNS when it is
    a positive number, else standard output's terminal, else `fallback`."""
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    if columns > 0:
        return columns
    try:
        columns = os.get_terminal_size(sys.__stdout__.fileno()).columns    # type: ignore[union-attr]
    except (AttributeError, ValueError, OSError):
        columns = 0
    return columns or fallback


class _Formatter(argparse.HelpFormatter):
    """argparse's help formatter for the terminal's width, measured when some text is first
    formatted, once: Python 3.11 makes a formatter for every argument added (~480 for
    `reconcile --help`), which asked the terminal (and imported shutil) each time, and
    `reconcile ps` formats nothing."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, width=_PENDING)

    @property
    def _width(self) -> int:
        return _help_width()

    @_width.setter
    def _width(self, value: int) -> None:       # HelpFormatter.__init__ sets it: measured instead
        pass

    @property
    def _max_help_position(self) -> int:        # HelpFormatter's default: 24, within the width
        return min(24, max(_help_width() - 20, self._indent_increment * 2))

    @_max_help_position.setter
    def _max_help_position(self, value: int) -> None:
        pass


_PENDING = 80       # any width: _Formatter measures the terminal's when it formats


class Parser(argparse.ArgumentParser):
    """An ArgumentParser (and the subcommands' parsers, made by it) with the _Formatter; one
    made `intermixed` (`intermixed(parser)`) takes its positionals between its options too."""

    intermixed = False
    _mixing = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kwargs)

    def parse_known_args(self, args: Any = None, namespace: Any = None) -> Any:
        if not self.intermixed or self._mixing:
            return super().parse_known_args(args, namespace)
        self._mixing = True             # argparse's intermixed parse calls this twice itself
        try:
            return super().parse_known_intermixed_args(args, namespace)
        finally:
            self._mixing = False


def intermixed(parser: argparse.ArgumentParser) -> None:
    """Let `parser` (a subcommand's) take its positionals anywhere among its options, as
    `parse_intermixed_args` does: `apply SOURCE --no-deps web` names the service web. Plain
    argparse gives every positional of `SOURCE [SERVICE...]` its value from the first run of
    words (SOURCE alone), and an error for `web`; the fast path reads it the same way
    (cli/fastpath.py `Spec.more`)."""
    if isinstance(parser, Parser):
        parser.intermixed = True


_GO_TRUE = ("1", "t", "T", "TRUE", "true", "True")
_GO_FALSE = ("0", "f", "F", "FALSE", "false", "False")


def add_go_bool_flag(parser: argparse.ArgumentParser, option: str, *, default: bool, help: str) -> None:
    """A docker boolean flag: `--rm` alone is true, `--rm=false` (any of Go's ParseBool words
    after the =) sets it, and the next word is never its value (`build --rm .`: `.` is the
    context). Each `OPTION=WORD` is an option string of its own (argparse matches it whole
    before it splits at =), hidden from the help."""
    dest = option.lstrip("-").replace("-", "_")

    class _Set(argparse.Action):
        def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                     option_string: str | None = None) -> None:
            word = (option_string or "").partition("=")[2]
            setattr(namespace, dest, word in _GO_TRUE if word else True)

    parser.add_argument(option, action=_Set, nargs=0, dest=dest, default=default, metavar="true|false",
                        help=f"{help} (--{dest.replace('_', '-')}=false to turn it off; default {str(default).lower()})"
                        if default else help)
    parser.add_argument(*(f"{option}={w}" for w in _GO_TRUE + _GO_FALSE), action=_Set, nargs=0, dest=dest,
                        default=default, help=argparse.SUPPRESS)


def go_bool(value: str) -> bool:
    """A docker flag's boolean value (`-H=false`, `--sig-proxy true`), as Go's strconv.ParseBool
    reads it: 1 t T TRUE true True, 0 f F FALSE false False; an argparse `type=`."""
    if value in _GO_TRUE:
        return True
    if value in _GO_FALSE:
        return False
    raise argparse.ArgumentTypeError(f"invalid boolean {value!r}: true or false")
