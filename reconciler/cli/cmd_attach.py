"""`reconcile attach [--no-stdin] [--sig-proxy=true|false] [--detach-keys KEYS] CONTAINER`:
this terminal (or these pipes) attached to a running container's main process, as `docker
attach` attaches it; and `start -a [-i]`, which attaches before it starts (`start_attached`).

What the container writes from now on is printed (nothing of before: `logs` has that), our
stdin goes to it when it was made with `-i` (not with `--no-stdin`), our terminal is raw while
its terminal is attached, and sized with it. The container's exit ends it with its exit code;
Ctrl-p Ctrl-q (`--detach-keys`; none given: the Docker client config's `detachKeys`) leaves it
running: "read escape sequence", exit 1, as `docker attach` says and exits (`start -a` ends so silently, exit 0, as `docker start -a`). Without a
terminal, the signals we get (Ctrl-C's SIGINT, SIGTERM...) go to the container
(`--sig-proxy=false`: they end the attach alone). A container that does not run is refused in
docker's words, exit 1. The native engine's alone (`attaching.py` relays): another engine's
client attaches to its containers (`docker attach`).
"""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["register", "run", "start_attached"]

SUMMARY = "attach to a running container's input and output"


def add_detach_keys(parser: argparse.ArgumentParser) -> None:
    """--detach-keys, as `attach` and `start -a` take it."""
    parser.add_argument("--detach-keys", default=None, metavar="KEYS",
                        help="the keys that detach and leave the container running (default: the Docker client "
                             "config's detachKeys, else ctrl-p,ctrl-q): characters and ctrl-<a..z, @, [, \\, ], ^, "
                             "_>, comma-separated")


def register(subparsers: Any) -> None:
    from reconciler.cli import engines, options, parsing

    parser = subparsers.add_parser(
        "attach", help=SUMMARY,
        description="Attach this terminal's input and output (or these pipes) to a running container's main "
                    "process, as docker attach: its output from now on; stdin when it was made with -i; its "
                    "terminal when it has one (ours raw meanwhile). Exit: the container's exit code once it "
                    "exits; 1 when detached (Ctrl-p Ctrl-q: it runs on) or it does not run.")
    options.add_engine_options(parser)
    engines.add_runtime_flag(parser, "attach")
    parser.add_argument("--no-stdin", action="store_true", help="do not attach stdin")
    parser.add_argument("--sig-proxy", type=parsing.go_bool, nargs="?", const=True, default=True, metavar="true|false",
                        help="send the signals this command gets (SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, "
                             "SIGUSR2) to the container, when it has no terminal (default true; false: they end "
                             "the attach, the container runs on)")
    add_detach_keys(parser)
    parser.add_argument("container", metavar="CONTAINER")
    parser.set_defaults(run=run, no_logging=True)   # prints the container's output only


def run(args: argparse.Namespace) -> int:
    import sys

    from reconciler.cli import attaching, engines

    engines.check(args, "attach")
    keys = attaching.detach_keys(args.detach_keys)
    rt = engines.open_runtime(args, "attach")
    try:
        rec = rt.containers.get(args.container)
        _check_running(rec)
        attaching.check_tty(not args.no_stdin, rec.terminal)
        code = attaching.session(rt, rec, stdin=rec.stdin and not args.no_stdin, keys=keys,
                                 proxy=args.sig_proxy and not rec.terminal)
    finally:
        rt.close()
    if code is None:
        print(attaching.DETACHED, file=sys.stderr)
        return 1
    return code


def _check_running(rec: Any) -> None:
    """Docker's refusals of an attach to a container that does not run (its CLI's words, exit 1)."""
    from reconciler.runtime import errors

    if rec.status == "running" and rec.is_paused():
        raise errors.Conflict("You cannot attach to a paused container, unpause it first",
                              hint=f"reconcile unpause {rec.name}")
    if rec.restart_pending():
        raise errors.Conflict("You cannot attach to a restarting container, wait until it is running")
    if rec.status != "running":
        raise errors.Conflict("You cannot attach to a stopped container, start it first",
                              hint=f"reconcile start -a {rec.name} starts it attached")


def start_attached(args: argparse.Namespace) -> int:
    """`reconcile start -a [-i] CONTAINER`: attached before it starts (none of its output lost,
    as `run` and `docker start -a`), then as `attach` (one running already: attached), stdin
    with `-i` (when it was made with `-i`), the signals we get sent to it without a terminal;
    its exit code, 0 when detached (silently, as docker start -a)."""
    from reconciler.cli import attaching, cmd_ps, engines
    from reconciler.errors import ReconcilerError

    if len(args.containers) > 1:
        raise ReconcilerError("you cannot start and attach multiple containers at once",
                              hint="start them, then `reconcile attach` each")
    engines.check(args, "start -a")
    keys = attaching.detach_keys(args.detach_keys)
    rt = engines.open_runtime(args, "start")
    try:
        rec = rt.containers.get(args.containers[0])
        stdin = args.interactive and rec.stdin
        attaching.check_tty(stdin, rec.terminal)
        cmd_ps.setup_logging_if_networked(args, rt, [rec.name])
        code = attaching.session(rt, rec, stdin=stdin, keys=keys, proxy=not rec.terminal, start=True)
    finally:
        rt.close()
    return 0 if code is None else code
