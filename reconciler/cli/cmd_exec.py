"""`reconcile exec [-i] [-t] [-u USER] [-w DIR] [-e KEY=VALUE]... NAME CMD...`: run a command in a
running container, as `docker exec` runs it (as the user, in the directory, with the environment
over the container's; by default the container's own).

Its output is relayed to ours as it comes (our stdin to it with `-i`; with `-t` it gets a
pseudo-terminal of its own on ours), it ends when its process exits, as `docker exec` does
(a background child of it does not hold it), and its exit code is ours: 126 when it could not
start (a missing command), with the runtime's words, as Docker's. While an
agent holds the state root, a command without `-i`/`-t` runs through the agent's engine (#21, the
client–server split): its output is printed once it ended, the same bytes on the same streams.
With `--runtime docker` it runs through the Engine API, the same way (no `-i`/`-t` there).
"""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    from reconciler.cli import engines, options

    parser = subparsers.add_parser("exec", help="run a command in a running container",
                                   description="Run a command in a running container, as docker exec runs it; "
                                               "exits with its exit code (126: it could not start: a missing command, a working "
                                               "directory or user the container lacks).")
    options.add_engine_options(parser)
    engines.add_runtime_flag(parser, "exec")
    parser.add_argument("-i", "--interactive", action="store_true", help="keep stdin open")
    parser.add_argument("-t", "--tty", action="store_true", help="allocate a pseudo-TTY")
    parser.add_argument("-u", "--user", default=None,
                        help="user, uid, user:group or uid:gid, looked up in the container (default: the container's)")
    parser.add_argument("-w", "--workdir", default=None,
                        help="working directory in the container (default: the container's)")
    parser.add_argument("-e", "--env", action="append", default=[], metavar="KEY=VALUE",
                        help="set an environment variable over the container's (repeatable); KEY alone takes "
                             "its value here, or unsets it when it has none here, as docker exec -e does")
    parser.add_argument("container", metavar="CONTAINER")
    parser.add_argument("argv", nargs=argparse.REMAINDER, metavar="COMMAND")
    parser.set_defaults(run=run, no_logging=True)   # prints data only; structlog not needed


def run(args: argparse.Namespace) -> int:
    from reconciler.cli import _agentapi, engines
    from reconciler.runtime import errors

    if not args.argv:
        raise errors.InvalidArgument("exec needs a command", hint="reconcile exec NAME CMD [ARG...]")
    args.env = _environment(args.env)
    attached = args.interactive or args.tty
    if not attached:
        agent = _agentapi.engine(args)
        if agent is not None:
            return _printed(agent.exec(args.container, args.argv, user=args.user, workdir=args.workdir,
                                       env=args.env))
    if attached and not engines.is_native(args):
        engines.check(args, "exec")
        raise errors.InvalidArgument(f"reconcile exec -i/-t does not work with --runtime {args.runtime}",
                                     hint=f"use the engine's own client: {args.runtime} exec -it")
    rt = engines.open_runtime(args, "exec")
    try:
        if engines.is_native(args):
            return _native(rt, args)
        return _printed(rt.exec(args.container, args.argv, user=args.user, workdir=args.workdir, env=args.env))
    finally:
        rt.close()


def _native(rt: Any, args: argparse.Namespace) -> int:
    """Without a terminal, the command's output relayed to ours as it comes (our stdin to it with
    `-i`), as `docker exec` relays it: a background child of it holds our pipes, not our own
    stdout. With `-t`, the command as a child of ours (runc exec), our terminal its own. A
    process that could not start exits 126, as with `docker exec`."""
    import subprocess
    import sys

    from reconciler.runtime import parts

    if not args.tty:
        sys.stdout.flush()
        return parts.exec_relayed(rt.containers, args.container, args.argv,
                                  stdin=sys.stdin.fileno() if args.interactive else None,
                                  user=args.user, workdir=args.workdir, env=args.env)
    launch = parts.exec_argv(rt.containers, args.container, args.argv, tty=True, user=args.user,
                             workdir=args.workdir, env=args.env)
    try:
        code = subprocess.run(launch.argv, check=False).returncode
        return code if launch.failure() is None else 126
    finally:
        launch.remove()


def _environment(items: list[str]) -> list[str]:
    """`-e` as docker's CLI reads it: KEY=VALUE as it is; KEY alone with its value here, or
    alone (the command runs without it) when it has none here."""
    import os

    from reconciler.runtime import errors

    out = []
    for item in items:
        key, sep, _ = item.partition("=")
        if not key:
            raise errors.InvalidArgument(f"invalid environment variable {item!r}", hint="-e KEY=VALUE")
        out.append(item if sep or key not in os.environ else f"{key}={os.environ[key]}")
    return out


def _printed(result: Any) -> int:
    """An ExecResult's output on our stdout and stderr; its exit code."""
    import sys

    for stream, data in ((sys.stdout, result.stdout), (sys.stderr, result.stderr)):
        stream.flush()
        stream.buffer.write(data)
        stream.buffer.flush()
    return int(result.exit_code)
