"""The read-only commands' fast path (#21): `reconcile ps -a` parsed without argparse.

Importing argparse (with re, enum, gettext and locale) and building even one subcommand's
parser costs ~15 ms, as much as the rest of a `reconcile ps` served by an agent. The commands
people type most (ps, images, inspect, logs, status, version, and `pull [-q] [--pull=missing]
REF` and `build [-q] [-t NAME] [-f FILE] [--build-arg K=V] CONTEXT`: a re-pull of a present tag
and an unchanged rebuild are answered in a few ms) in their everyday forms are parsed here into
the same namespace argparse makes (tests/test_cli_fastpath.py compares the two for every form),
and everything else, help, `--root` and the other options this path does not know, any unusual
spelling and every usage error, goes to the parser: an unknown argument returns None here and
argparse says what is wrong, in its own words.

It imports nothing when loaded; parsing loads cli.options and cli.engines (stdlib os only).
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import SimpleNamespace

__all__ = ["COMMANDS", "parse"]

FORMATS = ("table", "json", "yaml")     # output.FORMATS, without importing it


class _Spec:
    """What the fast path knows of a command's arguments (its parser has more: those go there)."""

    __slots__ = ("choices", "defaults", "engine", "flags", "output", "positional", "runtime", "valued")

    def __init__(self, flags: dict[str, str], *, output: str | None = "table", positional: tuple[str, str] | None = None,
                 engine: bool = True, runtime: bool = True, defaults: dict[str, object] | None = None,
                 valued: dict[str, str] | None = None, choices: dict[str, tuple[str, ...]] | None = None) -> None:
        self.flags = flags                  # its flags that take no value: flag -> dest
        self.valued = valued or {}          # its options written `-t VALUE` or `--tag=VALUE`: option -> dest
        self.choices = choices or {}        # the values a valued option's dest takes, where argparse limits them
        self.output = output                # -o's default (None: no -o; "json": json or yaml only)
        self.positional = positional        # (dest, "1" or "+"), or None when it takes none
        self.engine = engine                # the engine options: --root, --run-dir, ...
        self.runtime = runtime              # --runtime
        self.defaults = defaults or {}      # its other options' defaults


COMMANDS = {
    "ps": _Spec({"-a": "all", "--all": "all", "-q": "quiet", "--quiet": "quiet", "--no-trunc": "no_trunc"},
                defaults={"filter": []}),
    "images": _Spec({"-q": "quiet", "--quiet": "quiet", "--digests": "digests", "--no-trunc": "no_trunc"}),
    "inspect": _Spec({}, output="json", positional=("containers", "+")),
    "logs": _Spec({"-f": "follow", "--follow": "follow", "-t": "timestamps", "--timestamps": "timestamps"},
                  output=None, positional=("container", "1"), defaults={"since": None, "tail": "all"}),
    "pull": _Spec({"-q": "quiet", "--quiet": "quiet"}, output=None, positional=("ref", "1"),      # a re-pull
                  valued={"--pull": "pull"}, choices={"pull": ("always", "missing")},
                  defaults={"platform": None, "pull": "always"}),
    "build": _Spec({"-q": "quiet", "--quiet": "quiet", "--no-cache": "no_cache", "--pull": "pull"}, output=None,
                   positional=("context", "1"), runtime=False,                # an unchanged rebuild
                   valued={"-t": "tag", "--tag": "tag", "--build-arg": "build_arg", "-f": "file", "--file": "file"},
                   defaults={"tag": [], "build_arg": [], "file": None, "target": None, "network": "none", "secret": [],
                             "ssh": [], "allow": [], "check": False, "check_error": False}),
    "status": _Spec({}, runtime=False, defaults={"socket": None}),
    "version": _Spec({}, engine=False, runtime=False),
}


def parse(argv: list[str]) -> SimpleNamespace | None:
    """The namespace argparse would make of `argv` (`reconcile COMMAND ...`), or None when this
    is not an everyday form of a command this path knows: the caller then builds the parser."""
    if not argv or argv[0] not in COMMANDS:
        return None
    spec = COMMANDS[argv[0]]
    values = _defaults(argv[0], spec)
    positional: list[str] = []
    if not _read(argv[1:], spec, values, positional) or not _place(spec, values, positional):
        return None
    import importlib
    from types import SimpleNamespace

    module = importlib.import_module(f"reconciler.cli.cmd_{argv[0]}")
    return SimpleNamespace(**values, run=module.run, no_logging=True)


def _defaults(command: str, spec: _Spec) -> dict[str, object]:
    """The namespace of `reconcile COMMAND` with no argument: every option's default."""
    from reconciler.cli import engines, options

    values: dict[str, object] = {"log_level": "warning", "log_json": None, "command": command}
    if spec.engine:
        values.update(options.engine_defaults())
    if spec.runtime:
        values["runtime"] = engines.runtime_default()
    if spec.output is not None:
        values["output"] = spec.output
    values.update(dict.fromkeys(spec.flags.values(), False))
    values.update({k: list(v) if isinstance(v, list) else v for k, v in spec.defaults.items()})
    return values


def _read(args: list[str], spec: _Spec, values: dict[str, object], positional: list[str]) -> bool:
    """Fill `values` and `positional` from `args`; False at anything this path does not take."""
    flags = spec.flags
    i = 0
    while i < len(args):
        arg = args[i]
        if arg in flags:
            values[flags[arg]] = True
        elif arg in ("-o", "--output") and spec.output is not None and i + 1 < len(args):
            i += 1
            if not _output(args[i], spec, values):
                return False
        elif arg in spec.valued and i + 1 < len(args) and not args[i + 1].startswith("-"):
            i += 1
            if not _value(spec, values, spec.valued[arg], args[i]):
                return False
        elif arg.startswith("--") and arg.partition("=")[0] in spec.valued and arg.partition("=")[2]:
            if not _value(spec, values, spec.valued[arg.partition("=")[0]], arg.partition("=")[2]):
                return False
        elif arg.startswith("--output=") and spec.output is not None:
            if not _output(arg.partition("=")[2], spec, values):
                return False
        elif len(arg) > 2 and arg[0] == "-" and arg[1] != "-" and all(f"-{c}" in flags for c in arg[1:]):
            values.update((flags[f"-{c}"], True) for c in arg[1:])        # -aq
        elif arg.startswith("-") or spec.positional is None:
            return False
        else:
            positional.append(arg)
        i += 1
    return True


def _value(spec: _Spec, values: dict[str, object], dest: str, value: str) -> bool:
    """`-t VALUE`: appended where the default is a list (argparse's action="append"), else set;
    False (argparse says why) for a value the option does not take."""
    if dest in spec.choices and value not in spec.choices[dest]:
        return False
    current = values[dest]
    if isinstance(current, list):
        current.append(value)
    else:
        values[dest] = value
    return True


def _output(value: str, spec: _Spec, values: dict[str, object]) -> bool:
    """-o VALUE: False (argparse says why) for a format the command does not print."""
    allowed = FORMATS if spec.output == "table" else FORMATS[1:]
    values["output"] = value
    return value in allowed


def _place(spec: _Spec, values: dict[str, object], positional: list[str]) -> bool:
    """Put the positional arguments where argparse would; False when their count is wrong."""
    if spec.positional is None:
        return not positional
    dest, nargs = spec.positional
    if nargs == "1":
        values[dest] = positional[0] if len(positional) == 1 else None
        return len(positional) == 1
    values[dest] = positional
    return bool(positional)
