"""The read-only commands' fast path (#21): `reconcile ps -a` parsed without argparse.

Importing argparse (with re, enum, gettext and locale) and building even one subcommand's
parser costs ~15 ms, as much as the rest of a `reconcile ps` served by an agent. The commands
people type most (ps, images, inspect, logs, status, version, and `pull [-q] [--pull=missing]
REF` and `build [-q] [-t NAME] [-f FILE] [--build-arg K=V] CONTEXT`: a re-pull of a present tag
and an unchanged rebuild are answered in a few ms; `run [OPTIONS] IMAGE [COMMAND...]`, whose
parser is the largest: 12-17 ms of a 160 ms `run --rm`, and `create`, its options), and docker's
forms of them (`container ls`, `image ls`, `container create`...: cli/aliases.py), in their
everyday forms are parsed here into the same namespace argparse makes (tests/test_cli_fastpath.py
compares the two for every form), and everything else, help, `--root` and the other options this
path does not know, any unusual
spelling and every usage error, goes to the parser: an unknown argument returns None here and
argparse says what is wrong, in its own words.

Each of these commands describes what it takes once, in its module's SPEC (a `Spec`: its flags,
and the options with a value this path takes, with their add_argument keywords): its register()
adds that to its parser (`Spec.add_to`) and this path parses by it, so the two cannot drift
apart (tests/test_cli_fastpath.py checks the flags and options too).

It imports nothing when loaded; parsing loads the command's module, cli.options and cli.engines
(stdlib os only).
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from types import SimpleNamespace
    from typing import Any

__all__ = ["COMMANDS", "Spec", "parse"]

FORMATS = ("table", "json", "yaml")     # output.FORMATS, without importing it
RUNTIMES = ("native", "docker", "swarm", "fake")    # engines.RUNTIMES, likewise
OCI_RUNTIMES = ("runc", "crun")                     # options.add_engine_options' --oci-runtime choices
# docker's --format of a listing (ps, images, network ls, volume ls: `-f` is their --filter, as
# docker's) and -f/--format of an inspect: ((option strings), dest, add_argument's keywords)
FORMAT: tuple[tuple[str, ...], str, dict[str, Any]] = (("--format",), "format", {
    "default": None, "metavar": "TEMPLATE",
    "help": "print each row by a Go template, as docker's --format: 'table {{.ID}}\\t{{.Names}}' (a table: its "
            "header from the fields' names), 'json' (one JSON object a line), '{{.Names}}: {{.Status}}'; the "
            "fields are docker's (docs/reference/cli.md, \"--format\"); not with -o"})
INSPECT_FORMAT: tuple[tuple[str, ...], str, dict[str, Any]] = (("-f", "--format"), "format", {
    "default": None, "metavar": "TEMPLATE",
    "help": "print each document by a Go template, as docker inspect -f: '{{.State.Status}}', "
            "'{{json .Config.Labels}}', or 'json' (one compact JSON array); not with -o"})

# options.add_engine_options: the engine's location, strings as given (options.resolve derives the rest)
ENGINE_OPTIONS = {"--root": "root", "--run-dir": "run_dir", "--name-prefix": "name_prefix",
                  "--oci-runtime": "oci_runtime"}


class Spec:
    """What a fast-path command takes besides its options with values: one description for its
    parser (`add_to`, called by the command's register()) and for this path, which parses the
    everyday forms by it (an option it does not describe: argparse answers)."""

    __slots__ = ("choices", "defaults", "engine", "flags", "logs", "more", "output", "positional", "remainder",
                 "runtime", "types", "valued")

    def __init__(self, flags: tuple[tuple[tuple[str, ...], str, str], ...] = (), *, output: str | None = "table",
                 positional: tuple[str, ...] | None = None, engine: bool = True, runtime: bool = True,
                 defaults: dict[str, object] | None = None,
                 valued: tuple[tuple[tuple[str, ...], str, dict[str, Any]], ...] = (),
                 remainder: tuple[str, str, str] | None = None, logs: bool = False,
                 more: tuple[str, str, str] | None = None) -> None:
        self.flags = flags                  # its flags that take no value: ((-a, --all), dest, help)
        self.valued = valued                # its options written `-t VALUE` or `--tag=VALUE`: ((-t, --tag), dest,
                                            # add_argument's keywords: default, choices, action="append", type, help...)
        self.choices = {dest: tuple(kw["choices"]) for _, dest, kw in valued if "choices" in kw}
        self.types = {dest: kw["type"] for _, dest, kw in valued if "type" in kw}
        self.output = output                # -o's default (None: no -o; "json": json or yaml only)
        self.positional = positional        # (dest, "1", "?" or "+", metavar[, help]), or None when it takes none
        self.remainder = remainder          # (dest, metavar, help): every argument after the positional, options
                                            # too (argparse.REMAINDER: `run IMAGE COMMAND...`)
        self.engine = engine                # the engine options: --root, --run-dir, ...
        self.runtime = runtime              # --runtime
        self.defaults = defaults or {}      # its other options' defaults (its register() adds them)
        self.logs = logs                    # it logs (apply): its parser sets no `no_logging`
        self.more = more                    # (dest, metavar, help): the positionals after the first ("*":
                                            # `apply SOURCE SERVICE...`), anywhere among the options
                                            # (parsing.intermixed: argparse's intermixed parse)
        if engine:                          # options.add_engine_options' --oci-runtime
            self.choices["oci_runtime"] = OCI_RUNTIMES
        if runtime:                         # engines.add_runtime_flag's
            self.choices["runtime"] = RUNTIMES

    def without(self, *dests: str) -> Spec:
        """This description less the flags and options of `dests` (`create`: run's, without -d
        and --detach-keys)."""
        return Spec(tuple(f for f in self.flags if f[1] not in dests), output=self.output, positional=self.positional,
                    engine=self.engine, runtime=self.runtime, defaults=self.defaults,
                    valued=tuple(v for v in self.valued if v[1] not in dests),
                    remainder=self.remainder, logs=self.logs, more=self.more)

    def dests(self) -> dict[str, str]:
        """Each flag's option strings -> its dest."""
        return {option: dest for options, dest, _ in self.flags for option in options}

    def valued_dests(self) -> dict[str, str]:
        """Each option with a value: its option strings -> its dest."""
        return {option: dest for options, dest, _ in self.valued for option in options}

    def taken(self) -> dict[str, str]:
        """Every option with a value this path takes: the spec's, the engine options and --runtime."""
        out = dict(ENGINE_OPTIONS) if self.engine else {}
        if self.runtime:
            out["--runtime"] = "runtime"
        out.update(self.valued_dests())
        return out

    def add_to(self, parser: argparse.ArgumentParser, command: str) -> None:
        """Add what this describes to the command's parser (engine options, --runtime, -o, the
        positional, the flags, in that order)."""
        from reconciler.cli import engines, options, output

        if self.engine:
            options.add_engine_options(parser)
        if self.runtime:
            engines.add_runtime_flag(parser, command)
        if self.output is not None:
            output.add_output_flag(parser, table=self.output == "table")
        if self.positional is not None:
            dest, nargs, metavar, *rest = self.positional
            parser.add_argument(dest, nargs=nargs if nargs in ("+", "?") else None, metavar=metavar,
                                help=rest[0] if rest else None)
        if self.remainder is not None:
            import argparse

            dest, metavar, help_text = self.remainder
            parser.add_argument(dest, nargs=argparse.REMAINDER, metavar=metavar, help=help_text)
        if self.more is not None:
            from reconciler.cli import parsing

            dest, metavar, help_text = self.more
            parser.add_argument(dest, nargs="*", metavar=metavar, help=help_text)
            parsing.intermixed(parser)
        for flags, dest, help_text in self.flags:
            parser.add_argument(*flags, dest=dest, action="store_true", help=help_text)
        for flags, dest, keywords in self.valued:
            parser.add_argument(*flags, dest=dest, **keywords)


COMMANDS = ("ps", "images", "inspect", "logs", "status", "version", "pull", "build", "run", "create",
            "apply")  # each module's SPEC


def parse(argv: list[str]) -> SimpleNamespace | None:
    """The namespace argparse would make of `argv` (`reconcile COMMAND ...`, or a group's form of
    one: `container ls ...`), or None when this is not an everyday form of a command this path
    knows: the caller then builds the parser."""
    if not argv:
        return None
    from reconciler.cli import aliases  # (imports nothing)

    command, words, group = argv[0], argv[1:], None
    if command in aliases.GROUPS and words:             # `container ls ...`: parsed as `ps ...`
        group, command, words = command, aliases.target(command, words[0]) or "", words[1:]
    if command not in COMMANDS:
        return None
    import sys

    # not importlib (its package imports warnings) nor types (~0.4 ms together, #21): the
    # import statement's own function, and SimpleNamespace as `types` itself defines it
    module = __import__(f"reconciler.cli.cmd_{command}", fromlist=("run",))
    spec: Spec = module.SPEC
    values = _defaults(group or command, spec)
    if group is not None:                   # as argparse names it: `container_command`, the word typed
        values[f"{group}_command"] = argv[1]
    positional: list[str] = []
    if not _read(words, spec, values, positional) or not _place(spec, values, positional):
        return None
    namespace: type[SimpleNamespace] = type(sys.implementation)  # type: ignore[assignment]  # the same class
    if not spec.logs:
        values["no_logging"] = True
    return namespace(**values, run=module.run)


def _defaults(command: str, spec: Spec) -> dict[str, object]:
    """The namespace of `reconcile COMMAND` with no argument: every option's default."""
    from reconciler.cli import engines, options

    values: dict[str, object] = {"log_level": "warning", "log_json": None, "command": command}
    if spec.engine:
        values.update(options.engine_defaults())
    if spec.runtime:
        values["runtime"] = engines.runtime_default()
    if spec.output is not None:
        values["output"] = spec.output
    values.update(dict.fromkeys(spec.dests().values(), False))
    values.update({dest: keywords.get("default") for _, dest, keywords in spec.valued})
    if spec.remainder is not None:
        values[spec.remainder[0]] = []
    if spec.more is not None:
        values[spec.more[0]] = []
    values.update(spec.defaults)
    values.update({k: list(v) for k, v in values.items() if isinstance(v, list)})    # appended to: copies
    return values


def _read(args: list[str], spec: Spec, values: dict[str, object], positional: list[str]) -> bool:
    """Fill `values` and `positional` from `args`; False at anything this path does not take."""
    flags = spec.dests()
    valued = spec.taken()
    i = 0
    while i < len(args):
        arg = args[i]
        if spec.remainder is not None and positional:       # `run IMAGE COMMAND...`: the rest is the command's
            values[spec.remainder[0]] = args[i:]
            return "--" not in args[i:]                     # argparse's own reading of a `--` there
        if arg in flags:
            values[flags[arg]] = True
        elif arg in ("-o", "--output") and spec.output is not None and i + 1 < len(args):
            i += 1
            if not _output(args[i], spec, values):
                return False
        elif arg in valued and i + 1 < len(args) and not args[i + 1].startswith("-"):
            i += 1
            if not _value(spec, values, valued[arg], args[i]):
                return False
        elif arg.startswith("--") and arg.partition("=")[0] in valued and arg.partition("=")[2]:
            if not _value(spec, values, valued[arg.partition("=")[0]], arg.partition("=")[2]):
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


def _value(spec: Spec, values: dict[str, object], dest: str, value: str) -> bool:
    """`-t VALUE`: converted by the option's `type` when it has one, appended where the default is a
    list (argparse's action="append"), else set; False (argparse says why) for a value the option
    does not take."""
    if dest in spec.choices and value not in spec.choices[dest]:
        return False
    if dest in spec.types:
        try:
            converted = spec.types[dest](value)
        except Exception:                   # noqa: BLE001 - argparse says what is wrong, in its words
            return False
        value = converted
    current = values[dest]
    if isinstance(current, list):
        current.append(value)
    else:
        values[dest] = value
    return True


def _output(value: str, spec: Spec, values: dict[str, object]) -> bool:
    """-o VALUE: False (argparse says why) for a format the command does not print."""
    allowed = FORMATS if spec.output == "table" else FORMATS[1:]
    values["output"] = value
    values["output_given"] = True           # (output.add_output_flag's action records it too)
    return value in allowed


def _place(spec: Spec, values: dict[str, object], positional: list[str]) -> bool:
    """Put the positional arguments where argparse would; False when their count is wrong."""
    if spec.positional is None:
        return not positional
    dest, nargs = spec.positional[:2]
    if nargs == "1":
        values[dest] = positional[0] if len(positional) == 1 else None
        return len(positional) == 1
    if nargs == "?":
        values[dest] = positional[0] if positional else None
        if spec.more is not None:               # argparse's intermixed reading: the first, then the rest
            values[spec.more[0]] = positional[1:]
            return True
        return len(positional) <= 1
    values[dest] = positional
    return bool(positional)
