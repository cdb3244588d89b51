"""Entry point of the `reconcile` command.

Exit codes (documented in the README):
  0  success (converged, valid, in sync)
  1  failure at run time (some actions failed; drift found for `diff`)
  2  invalid input or usage; nothing was changed
  3  a file system the engine writes is full or over quota (errors.DiskFull): free space, run again
  125  `run` failed itself (any of the above, as docker run: its other codes are the container's;
       126/127 a command that could not start); `create`'s usage errors and refused values, as
       docker create
  130, 143  stopped by SIGINT / SIGTERM: every command, SIGTERM raised in the main thread as Ctrl-C
            raises KeyboardInterrupt (`Terminated`), so what a command cleans up on Ctrl-C it
            cleans up on a `kill`, `timeout` or CI cancel too; apply, rollback, the agent and
            engine-api take both signals themselves (execution/stopping.py)
"""

from __future__ import annotations

import os
import sys

from reconciler import __version__

# Start-up (#21): no argparse, typing or collections.abc at import time. `reconcile --version`
# and the read-only commands' fast path (cli/fastpath.py) need none of them; the parser is
# built by build_parser, on first use.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from collections.abc import Sequence
    from typing import Any, NoReturn

__all__ = ["main"]

# Subcommand modules, in the order `reconcile --help` lists them, with the line it shows for each:
# the top-level help is made of these, without importing any module (#21); each module's
# register() says the same (tests/test_cli.py checks). Add a line when a command works.
SUMMARIES: tuple[tuple[str, str], ...] = (
    ('validate', 'check manifests (file, directory or - for stdin) and report every problem'),
    ('convert', 'print a compose project as reconciler manifests'),
    ('schema', 'print the JSON Schema of a manifest kind (or of all kinds)'),
    ('apply', 'converge the host to the manifests once (alias: --once SOURCE)'),
    ('diff', 'show what apply would change, and why'),
    ('history', 'list the revisions applied (time, result, changes)'),
    ('lock', "pin the manifests' image references to their current digests (reconciler.lock)"),
    ('run', 'create and start a container'),
    ('create', 'create a container without starting it (as docker create; start runs it)'),
    ('ps', "list containers (or a Swarm cluster's services and tasks)"),
    ('logs', "print a container's logs"),
    ('exec', 'run a command in a running container'),
    ('attach', "attach to a running container's input and output"),
    ('inspect', 'show containers in detail (JSON or YAML)'),
    ('start', 'start containers'),
    ('stop', 'stop containers'),
    ('restart', 'restart containers'),
    ('kill', 'kill running containers'),
    ('wait', 'block until containers stop, then print their exit codes'),
    ('rename', 'rename a container'),
    ('port', 'list port mappings or a specific mapping for the container'),
    ('top', 'display the running processes of a container'),
    ('stats', "display a live stream of container(s) resource usage statistics"),
    ('cp', 'copy files/folders between a container and the local filesystem'),
    ('rm', 'remove containers'),
    ('pause', 'pause all processes within containers'),
    ('unpause', 'unpause all processes within containers'),
    ('update', 'update the configuration of one or more containers'),
    ('network', "manage the native engine's networks (ls, inspect, create, rm, connect, disconnect, prune)"),
    ('pull', 'pull an image from a registry'),
    ('images', 'list images'),
    ('rmi', 'remove images'),
    ('image', "manage images (docker's image ls, history, rm, pull, push, tag, save, load, import, build, inspect, "
              "prune)"),
    ('build', 'build an image from a Dockerfile'),
    ('push', 'push an image to a registry'),
    ('login', 'log in to a registry (credentials kept where docker keeps them)'),
    ('logout', 'log out from a registry (forget the credentials login kept)'),
    ('tag', 'give an image another name'),
    ('save', 'write images to a tar archive (docker save format)'),
    ('load', 'load images from a tar archive (docker/podman save, OCI layout)'),
    ('commit', "create an image from a container's changes"),
    ('container', "manage containers: docker's container ls, create, start, rm...; export, import (move to another "
                  "host), prune"),
    ('volume', 'manage named volumes (ls, inspect, create, rm, prune, export, import)'),
    ('system', 'manage the native engine (df, prune) and show the engine (info)'),
    ('agent', 'run the daemon: watch sources, converge, supervise, serve the API'),
    ('status', 'what the agent applies: sources, revisions, errors, containers'),
    ('events', "the agent's events (-f to follow)"),
    ('rollback', 're-apply an earlier converged revision'),
    ('reconcile-now', 'make the agent reconcile now (and wait)'),
    ('suspend', 'stop the agent reconciling sources (containers left as they are)'),
    ('resume', 'let the agent reconcile suspended sources again'),
    ('engine-api', 'serve a Docker-compatible Engine API for the native engine'),
    ('completion', 'print a shell completion script (bash, zsh or fish)'),
    ('info', 'display system-wide information about the engine, as docker info'),
    ('version', 'print the version (and the manifest API, Python, OCI runtimes)'),
)
COMMANDS: tuple[str, ...] = tuple(name for name, _ in SUMMARIES)

EXIT_OK = 0
EXIT_BROKEN_PIPE = 141          # 128 + SIGPIPE: the output's reader went away
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_DISK_FULL = 3
# `run`'s own failure (a usage error, an image not pulled, a name or host port taken, a network not
# found...), as docker run's: every code below it is the container's own, 126/127 its command's
EXIT_RUN_FAILED = 125

# What each exit code means to a script or CI job, per command (docs/reference/cli.md lists them).
EXIT_CODES: tuple[tuple[str, str, str], ...] = (
    ("every command", "0", "success"),
    ("every command", "2", "invalid input or usage: nothing was changed (argparse's usage errors too; `apply`, "
     "`--once` and `rollback` on a root an agent runs on: the agent applies its own sources; `run`, `create`: "
     "125)"),
    ("every command", "3", "a file system the engine writes is full or over quota: free space, then run again "
     "(`run`: 125)"),
    ("every command", "130, 143", "stopped by SIGINT / SIGTERM"),
    ("every command", "141", "the reader of its output went away before all of it was written (`save | head`), "
     "as docker's and podman's: an archive piped to a command that died is not a success"),
    ("apply, --once, rollback", "0", "converged (`-o json`: `result` is `converged`; `--dry-run`: `drift` "
     "or `in-sync`)"),
    ("apply, --once, rollback", "1", "some actions failed, or a desired container does not run as desired "
     "after the pass (down, paused, unhealthy; a health no probe had observed lately is probed first); the "
     "host is left consistent (failures isolated, updates rolled back); `-o json` names each failed action "
     "and its error, and each container down and why"),
    ("apply, --once, rollback", "130, 143", "a signal stopped the pass: the actions in flight finished, the "
     "rest were not started (the pass is `interrupted` in the history)"),
    ("run", "125", "`run` itself failed, as `docker run` exits: the container could not be created or started "
     "(the image not pulled, the name taken, a network not found, a host port another program or container "
     "holds, a full disk), a usage error or invalid input, an engine that runs no containers; so every other "
     "code is the container's"),
    ("run", "126, 127", "the container's process could not start, as `docker run` says it: its command (or a "
     "mount's source) not found (127) or not executable (126); in the foreground, otherwise, the "
     "container's own exit code"),
    ("create", "125", "a usage error (`-d` too: create starts nothing) or an option's value it refuses, as "
     "`docker create` exits: nothing was asked of the engine"),
    ("create", "1", "the engine did not create it (the name taken, the image not found or not pulled, a network "
     "not found), as `docker create` exits"),
    ("diff", "0", "in sync: what apply calls converged, nothing to do and every desired container running as "
     "desired (`-o json`: `in_sync: true`)"),
    ("diff", "1", "drift found: the plan is printed, each action with its cause, and each desired container "
     "that does not run as desired (down, paused, unhealthy; a health no probe had observed lately is probed "
     "first, as apply does) though no action would change it (`-o json`: `unready`): where apply would exit 1; "
     "or something still converging, which needs no action (a Swarm service whose copies of its current spec do "
     "not all run: a rolling update unfinished, copies restarting; a container in its restart backoff): `not in "
     "sync: N converging`, each named in a note (`-o json`: `converging`, `in_sync: false`)"),
    ("validate", "0", "every manifest is valid"),
    ("validate", "2", "some manifest is not: every problem is listed as file:line:column"),
    ("lock", "1", "a reference did not resolve (nothing written), or `--check` found the lock out of date"),
    ("login", "1", "the registry refused the credentials (`unauthorized: incorrect username or password`) or did "
     "not answer, there was no terminal to ask for what was missing, or the credential helper or the config "
     "file could not keep them: nothing was kept"),
    ("logout", "0", "the credentials are removed, or there were none (`Removing login credentials for SERVER` "
     "either way, as docker's); also when the credential helper could not erase them or the config file could "
     "not be written, as docker logout exits: then a warning on stderr says so (`WARNING: could not erase "
     "credentials:` and why)"),
    ("status, reconcile-now", "1", "some source (or, with no agent, some owner's last pass) has an error or "
     "failures, or a container it applied is down now (with no agent also one whose health no probe "
     "observed lately: its status is stale)"),
    ("suspend, resume", "0", "each source named (every one, when none is) is suspended (resumed) now, also one "
     "that already was"),
    ("suspend, resume", "1", "no agent answers for the state root (none runs, or it does not answer on its "
     "socket): nothing to suspend or resume"),
    ("suspend, resume", "2", "the agent has no source of a name given: nothing was changed (its sources are "
     "named)"),
    ("start, stop, restart, kill, rm, pause, unpause", "1", "some container was not acted on (no such "
     "container, or a state that refuses it: `kill` of one that does not run): it is said on stderr, the others "
     "are acted on and their names printed, as docker's"),
    ("attach, start -a", "the container's", "its exit code, once it exited; `start -a`: 0 when the detach keys "
     "ended it (it runs on), as docker start -a"),
    ("attach", "1", "the detach keys ended it (`read escape sequence`: the container runs on, as docker attach "
     "exits), or it could not attach: no such container, one that does not run (stopped, paused or restarting, in "
     "docker's words), our stdin not a terminal for its terminal (`the input device is not a TTY`: --no-stdin)"),
    ("wait", "0", "every container named stopped: its exit code printed, one line each (the exit codes are "
     "printed, not returned, as docker wait)"),
    ("wait", "1", "some container was not found: said on stderr, the others waited for and their exit codes "
     "printed"),
    ("rename", "1", "not renamed: no such container, the new name taken, invalid or the container's own"),
    ("update", "1", "some container was not changed (no such container, or a change that does not fit what it has: "
     "a memory limit above the swap limit set, a CPU limit given one way while set the other, a restart policy "
     "of an AutoRemove container): it is said on stderr, the others are changed and their names printed, as "
     "docker's"),
    ("update", "2", "the change is wrong in itself (no flag, a memory limit below 6MB or the reservation, more "
     "CPUs or other CPUs than the host has, a CFS period out of range...): no container was changed"),
    ("port", "1", "no such container, or the private port named is not published (a container that does not "
     "run publishes none)"),
    ("top", "1", "no such container, or it does not run"),
    ("stats", "1", "some container named was not found: only the errors are printed, as docker stats"),
    ("container diff", "1", "no such container: said on stderr, nothing printed, as docker diff"),
    ("cp", "1", "nothing or not all was copied: no such container or path, a destination docker cp refuses "
     "(a directory onto a file, a file into a directory that is not there), an entry that would land outside "
     "the destination"),
    ("system prune, container prune, volume prune, network prune", "0", "pruned, or not asked to (the question "
     "answered other than y, or no answer: nothing removed), as docker's"),
    ("system, container prune", "2", "another engine than the native one (`--runtime docker`: `docker system "
     "df|prune` and `docker container prune` are that engine's), or a filter a prune does not take"),
    ("ps, images, image history, network ls, volume ls", "1", "the --format template does not parse or fails on a "
     "row (a field the row has not): said with Go's position (`ps`: `failed to parse template`, `failed to "
     "execute template`; the others: `template parsing error`), nothing printed, as docker's exit"),
    ("inspect, image inspect, network inspect, volume inspect", "64", "the -f template does not parse: refused "
     "before anything is looked up, as docker inspect exits (`template parsing error`); one that fails on a "
     "document: 1"),
    ("inspect, image inspect, network inspect, volume inspect", "1", "some name was not found (all but "
     "volume inspect still print the others), or the -f template failed on a document"),
    ("network rm", "1", "some network was not removed (one still has a container attached, or none has that "
     "name): the others are, their names printed"),
    ("network create", "1", "a network of that name exists, or the subnet overlaps another"),
    ("network connect, network disconnect", "1", "not connected (disconnected): no such container or network, "
     "the container already on that network (not on it), one that ran and is stopped now (start it first), "
     "or an address taken there"),
    ("network connect, network disconnect", "2", "`host` or `none` named (no bridge network to connect to), an "
     "alias on the default network, an address that is not the network's, a container that is on no bridge "
     "network: nothing changed"),
    ("volume create", "2", "another driver than local, options the local driver does not take (it binds a "
     "directory: type=none, o=bind, device=/DIR), or an invalid name: nothing made"),
    ("volume prune, network prune", "2", "a filter the prune does not take (volumes: label, label!; networks: "
     "label, label!, until)"),
)


def build_parser(only: str | None = None, *, commands: Sequence[str] = COMMANDS,
                 summaries: bool = False, form: str | None = None) -> argparse.ArgumentParser:
    """The argument parser; with `only`, just that subcommand registers (its module alone is
    imported, which keeps `ps` or `logs` from paying for every other command's imports); with
    `summaries`, every command is a name and its line of SUMMARIES, no module imported: what
    the top-level help and a usage error before any command print; with `form`, the group
    `only` registers that form alone of the top-level commands (`container start`: cmd_start's
    parser, not the other twenty: cli/aliases.py)."""
    import argparse
    import importlib

    from reconciler.cli import parsing

    parser = parsing.Parser(
        prog="reconcile",
        description="Declarative containers: converge this host to YAML manifests.",
        epilog="Exit codes: 0 success, 1 run-time failure (or drift for diff), 2 invalid input or usage, "
        "3 a file system the engine writes is full (free space, then run again), 125 run itself failed (as docker "
        "run), 130/143 stopped by SIGINT/SIGTERM.",
    )
    parser.add_argument("--version", action="version", version=f"reconcile {__version__}")
    parser.add_argument(
        "--log-level", default="warning", choices=("debug", "info", "warning", "error"),
        help="log verbosity (logs go to stderr; JSON lines when stderr is not a terminal)",
    )
    parser.add_argument("--log-json", action="store_true", default=None, help="force JSON log lines")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in (only,) if only else commands:
        if summaries:
            subparsers.add_parser(name, help=dict(SUMMARIES)[name])
            continue
        module = importlib.import_module(f"reconciler.cli.cmd_{name.replace('-', '_')}")
        if form is not None:
            module.register(subparsers, form=form)
        else:
            module.register(subparsers)
    for sub in _subparsers(parser):             # `reconcile ps --log-level debug` too, as kubectl takes
        sub.add_argument("--log-level", choices=("debug", "info", "warning", "error"), default=argparse.SUPPRESS,
                         help=argparse.SUPPRESS)
        sub.add_argument("--log-json", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    return parser


def _subparsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """Every (sub-)subcommand's parser below `parser`."""
    import argparse

    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):
                found += [sub, *_subparsers(sub)]
    return found


def _subcommand(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser | None:
    """The parser of `parser`'s subcommand `name` (or of an alias of it: `container ps`), if any."""
    import argparse

    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction) and name in action.choices:
            sub: argparse.ArgumentParser = action.choices[name]
            return sub
    return None


def command_parser(name: str) -> argparse.ArgumentParser:
    """The parser of the top-level command `name` (a group's, to print its help)."""
    sub = _subcommand(build_parser(name), name)
    assert sub is not None
    return sub


def _hoist(argv: list[str], parser: argparse.ArgumentParser, command: str) -> list[str]:
    """Move the command's own options written before it (`reconcile --root X ps`) to just after
    it (`reconcile ps --root X`), so they are accepted in either place, as docker and kubectl
    users expect; the global options (--log-level, ...) stay where they are."""
    at = argv.index(command)
    sub = _subcommand(parser, command)
    if sub is None or at == 0:
        return argv
    own = sub._option_string_actions
    # a command whose options are its subcommands' (`volume ls --root X`, `container ps --root X`):
    # they go after the subcommand the line names
    nested = _subcommand(sub, argv[at + 1]) if at + 1 < len(argv) else None
    deeper = nested._option_string_actions if nested is not None else {}
    keep: list[str] = []
    moved: list[str] = []
    moved_deeper: list[str] = []
    i = 0
    while i < at:
        arg = argv[i]
        name = arg.split("=", 1)[0]
        if name in parser._option_string_actions:
            target = keep
        elif name in own:
            target = moved
        elif name in deeper:
            target = moved_deeper
        else:
            target = keep
        action = own.get(name) or deeper.get(name) or parser._option_string_actions.get(name)
        target.append(arg)
        if action is not None and action.nargs != 0 and "=" not in arg and i + 1 < at:
            target.append(argv[i + 1])
            i += 1
        i += 1
    if moved_deeper:
        return [*keep, command, *moved, argv[at + 1], *moved_deeper, *argv[at + 2:]]
    return [*keep, command, *moved, *argv[at + 1:]]


def _rewrite_once(argv: list[str]) -> list[str]:
    """`reconcile --once SOURCE` is the documented alias of `reconcile apply SOURCE`."""
    if "--once" in argv and "apply" in COMMANDS:
        i = argv.index("--once")
        return [*argv[:i], "apply", *argv[i + 1 :]]
    return argv


def _command_of(argv: list[str]) -> str | None:
    """The subcommand named on the command line (the first known one: options of the command
    may stand before it, with their values), if any."""
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--log-level":
            skip = True
        elif arg in COMMANDS:
            return arg
    return None


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread where it came, as Python raises KeyboardInterrupt for
    SIGINT: a subclass, so the `except KeyboardInterrupt` and `finally` clauses that undo a
    command's work on Ctrl-C (a build's step container, a pull's partial download, a foreground
    run's container) run for SIGTERM too, which service managers, `timeout` and CI send."""


def _terminated(signum: int, frame: object) -> None:
    raise Terminated


def _take_term() -> object:
    """SIGTERM raises Terminated from now on (unless it is ignored: a parent's SIG_IGN is kept,
    as Python keeps SIGINT's); the handler it had, for `_give_back_term`. `_signal`: the C
    module, without `signal`'s enums (#21: `ps` loads none)."""
    import _signal  # type: ignore[import-not-found]

    previous = _signal.getsignal(_signal.SIGTERM)
    if previous == _signal.SIG_IGN:
        return None
    try:
        _signal.signal(_signal.SIGTERM, _terminated)
    except ValueError:          # not the main thread (main() called by an embedder's thread)
        return None
    return previous


def _give_back_term(previous: object) -> None:
    import _signal

    if previous is not None:
        _signal.signal(_signal.SIGTERM, previous)


def _report(exc: Any) -> int:
    """Print a ReconcilerError (its hint and notes too) on stderr; its exit code."""
    print(f"error: {exc}", file=sys.stderr)
    return int(exc.exit_code)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return the process exit code.

    Under umask 077 (docs/security.md, "Secrets at rest"): what a command writes under the
    state root is the owner's only. The old umask is back on return (main() is also called
    in-process, by tests and embedders).
    """
    from reconciler._private import private_umask

    old_umask = private_umask()
    previous = _take_term()
    try:
        return _main(argv)
    except Terminated:          # before the command ran (its options parsed, its modules loaded)
        return 143
    finally:
        _give_back_term(previous)
        os.umask(old_umask)


def _end_now(code: int) -> NoReturn:
    """End this process with `code` now, for a command that closed what it opened (`run`: its
    state DB): what is left is the interpreter's teardown, freeing every object of every module
    the engine loaded, ~20 ms of CPU per `run` (#21). Only for the process's own command line
    (main() without argv): in-process callers get their code back."""
    import atexit

    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BrokenPipeError:
        pass                        # the reader left: as main() answers it
    # what the interpreter runs first at its exit: logging's handlers flushed, the code of the
    # dataclasses this process compiled kept for the next one (_dataclass.py: without it, a `run`
    # never wrote it and every `run` compiled ~150 texts again, ~12 ms)
    atexit._run_exitfuncs()
    os._exit(code)


def _alone() -> bool:
    """Whether this process runs no thread besides this one: the interpreter's exit waits for
    such a thread (a worker still finishing), an end at once would cut it off."""
    threading = sys.modules.get("threading")
    return threading is None or threading.active_count() == 1


def _canonical(args_list: list[str]) -> str | None:
    """The top-level command the command line runs: the one it names, or the one a group's form
    is (`container ls` is ps: cli/aliases.py), for what main does by command (exit codes, the
    engine it follows)."""
    from reconciler.cli import aliases

    return aliases.canonical(args_list, _command_of(args_list))


# `run` and `create` exit 125 for their own usage errors, as docker's (their other codes: cmd_run, cmd_create)
EXIT_125 = frozenset({"run", "create"})


def _parse(args_list: list[str]) -> argparse.Namespace | int:
    """The command line parsed by argparse, or the exit code when it printed help, the version
    or a usage error."""
    from reconciler.cli import aliases

    command = _command_of(args_list)
    bare_version = command is None and "--version" in args_list and not {"-h", "--help"} & set(args_list)
    # `container start ...`: the group's parser with that form alone (any other word: all of them,
    # so that argparse's "invalid choice" lists them)
    form = args_list[args_list.index(command) + 1] if command and aliases.canonical(args_list, command) != command \
        else None
    parser = build_parser(command, commands=() if bare_version else COMMANDS, summaries=command is None, form=form)
    if command is not None:
        args_list = _hoist(args_list, parser, command)
    try:
        args = parser.parse_args(args_list)
    except SystemExit as exc:  # argparse exits 2 on usage errors and 0 on --help/--version
        code = int(exc.code or 0)
        # a foreground run's codes are its container's: its own usage error is docker run's 125 (and
        # docker create's)
        return EXIT_RUN_FAILED if code == EXIT_USAGE and _canonical(args_list) in EXIT_125 else code
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    return args


# Commands that only read and print, with work bounded by what they list: in a process of their
# own, what they allocate lives until they end, so the cyclic collector is off (collector.off:
# its passes over what the imports made were ~4% of `ps`'s instructions), and they close what
# they open, so they end without the interpreter's teardown (_end_now: ~14%) (#21).
READ_ONLY = frozenset({"ps", "images", "inspect", "info"})


def _main(argv: Sequence[str] | None = None) -> int:
    if argv is None and "_ARGCOMPLETE" in os.environ:     # the shell asks for completions (TAB)
        from reconciler.cli import completers

        completers.complete(build_parser(), _hoist, COMMANDS)
    args_list = _rewrite_once(list(sys.argv[1:] if argv is None else argv))
    from reconciler.cli import aliases

    # (the command first: `ps`, `container ls`, `images`...)
    short = argv is None and bool(args_list) and aliases.canonical(args_list[:2], args_list[0]) in READ_ONLY
    if short:
        from reconciler.cli import collector

        collector.off()
    if args_list == ["--version"]:              # what argparse prints, without building a parser
        print(f"reconcile {__version__}")
        return EXIT_OK
    from reconciler.cli import fastpath

    # `ps -a` and the like: no argparse (#21); the same namespace, as a SimpleNamespace
    args: Any = fastpath.parse(args_list) or _parse(args_list)
    if isinstance(args, int):
        return args
    from reconciler.cli import options

    options.resolve(args)
    if getattr(args, "runtime", None) == "native" and getattr(args, "root", None):
        from reconciler.cli import engines

        if _canonical(args_list) in engines.FOLLOWS_AGENT:
            engines.follow_agent(args)      # the engine of the agent holding the root, when not the native one
    # commands whose code logs nothing (ps, logs, pull) skip structlog's 0.1-0.25 s, unless asked
    # for more than warnings (their libraries', httpx's, then show)
    if not getattr(args, "no_logging", False) or args.log_level in ("debug", "info"):
        from reconciler.logs import configure_logging

        configure_logging(level=args.log_level, json=args.log_json)
    if short:
        args.end_at_once = True
    try:
        code = int(args.run(args))
        if argv is None and getattr(args, "end_at_once", False) and _alone():
            _end_now(code)
        return code
    except KeyboardInterrupt as exc:
        if isinstance(exc, Terminated):
            print("terminated", file=sys.stderr)
            return 143
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader of its output went away before it was all written: not a success (an archive
        # piped to `ssh host load` whose far end died), 128 + SIGPIPE as docker's and podman's
        return EXIT_BROKEN_PIPE
    except Exception as exc:   # a full disk is an error like any, wherever it hit (OSError, sqlite3)
        # here, not at the top: a command that succeeds needs none (#21)
        from reconciler.errors import ReconcilerError

        if isinstance(exc, ReconcilerError):
            return _report(exc)
        from reconciler import diskfull

        # the command's name as the user typed it (`run` has a `command` of its own: the container's)
        named = _command_of(args_list) or "reconcile"
        if named in aliases.GROUPS and _canonical(args_list) != named:
            named += " " + args_list[args_list.index(named) + 1]           # `container create`
        full = diskfull.translate(exc, f"running `reconcile {named}`", getattr(args, "root", None))
        if full is None:
            raise
        if _canonical(args_list) == "run":
            full.exit_code = EXIT_RUN_FAILED        # (cmd_run.failure_code: its ReconcilerErrors)
        return _report(full)
