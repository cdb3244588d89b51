"""`reconcile run [OPTIONS] IMAGE [COMMAND...]`: create and start a container, like `docker run`.

Pulls the image when it is not in the store. In the foreground it prints the container's
output (stdout to stdout, stderr to stderr) and exits with its exit code; `-d` prints the id
and returns. Its own failures exit as `docker run`'s, so they are never taken for the
container's: 125 whatever failed (a usage error, the image not pulled, a name, network or host
port problem, the engine), 127/126 a command not found / not executable. `--rm` removes the
container once it exited. Networks: `none`, `host`, or a named network of the engine; none
named: the engine's default network, as `docker run`'s default bridge, where `-p` publishes
(`-p 80`: on a host port the engine chooses); `bridge`, Docker's name of that network, is that
network too.

While an agent holds the state root, a run without `-i`/`-t` goes through the agent's engine
(#21, the client–server split: no engine code is loaded here), printing the same. With
`--runtime docker` it runs on a Docker (or Podman) engine through the same calls.
"""

from __future__ import annotations

import sys

from reconciler.cli import collector, fastpath

# annotations only: a run parsed by the fast path loads no argparse (#21)
TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable, Iterator
    from typing import Any

__all__ = ["SPEC", "build_config", "checked", "config_json", "create_on", "failure_code", "log_pull", "parse_bytes",
           "register", "run"]


def checked(parser: str) -> Callable[[str], Any]:
    """An argparse `type=` from the spec.units parser named `parser`: the flag means what the
    manifest field means. spec.units is imported when a flag needs it, not by every `run`: the
    package's import (dataclasses, inspect) is ~10 ms that a run through an agent need not pay."""
    def convert(value: str) -> Any:
        from reconciler.spec import units

        try:
            return getattr(units, parser)(value)
        except ValueError as exc:
            import argparse

            raise argparse.ArgumentTypeError(str(exc)) from None
    convert.__name__ = parser.removeprefix("parse_")    # argparse names it in its error
    return convert


def parse_bytes(value: str) -> int:
    """Docker's sizes: 512, 64k, 32m, 1g (binary units, optional trailing b/ib)."""
    return int(checked("parse_docker_size")(value))


_duration = checked("parse_duration")


def _listed(metavar: str | None, help_text: str) -> dict[str, Any]:
    """add_argument's keywords of a repeatable option (action="append")."""
    kw: dict[str, Any] = {"action": "append", "default": [], "help": help_text}
    if metavar:
        kw["metavar"] = metavar
    return kw


# what it takes, for its parser and the fast path alike (cli/fastpath.py): a run parses without argparse
SPEC = fastpath.Spec((
    (("-d", "--detach"), "detach", "run in the background and print the id"),
    (("-i", "--interactive"), "interactive", "keep stdin open and pass it to the container"),
    (("-t", "--tty"), "tty", "allocate a pseudo-TTY for the main process"),
    (("--rm",), "rm", "remove the container when it exits, with its anonymous volumes (an image's VOLUMEs)"),
    (("--read-only",), "read_only", "mount the root filesystem read-only"),
), output=None, positional=("image", "1", "IMAGE", "the image to run (pulled when not in the store)"),
    remainder=("command", "COMMAND", "the command and its arguments (everything after IMAGE, options too)"), valued=(
    (("--name",), "name", {"default": None, "help": "container name (default: generated)"}),
    (("-e", "--env"), "env", _listed("KEY=VALUE", "set an environment variable")),
    (("-u", "--user"), "user", {"default": None, "help": "user[:group] or uid[:gid]"}),
    (("-w", "--workdir"), "workdir", {"default": None, "help": "working directory in the container"}),
    (("--entrypoint",), "entrypoint", {"default": None, "help": "override the image's entrypoint"}),
    (("-h", "--hostname"), "hostname", {"default": None, "help": "container host name"}),
    (("--network",), "network", _listed(None, "none, host, bridge (the engine's default network, as docker's; "
                                        "also without --network), or a named network (repeatable)")),
    (("-p", "--publish"), "publish", {**_listed("[IP:][HOST:]CTR[/PROTO]",
                                                "publish a port (bridge networks only; no HOST: the engine chooses one)"),
                                      "type": checked("parse_publish")}),
    (("-v", "--volume"), "volume", _listed("SRC:DST[:ro]", "named volume or absolute host path, mounted at DST")),
    (("--tmpfs",), "tmpfs", _listed("DST[:OPTIONS]", "mount a tmpfs")),
    (("--cap-add",), "cap_add", _listed(None, "add a capability")),
    (("--cap-drop",), "cap_drop", _listed(None, "drop a capability")),
    (("-m", "--memory"), "memory", {"default": None, "type": parse_bytes, "help": "memory limit (e.g. 256m)"}),
    (("--cpus",), "cpus", {"default": None, "type": checked("parse_cpus"), "help": "CPU quota in CPUs (e.g. 0.5)"}),
    (("--pids-limit",), "pids_limit", {"default": None, "type": int, "help": "maximum number of processes"}),
    # no default: argparse would parse it
    (("--restart",), "restart", {"default": None, "type": checked("parse_restart"),
                                 "help": "no | on-failure[:N] | always | unless-stopped (default: no)"}),
    (("--health-cmd",), "health_cmd", {"default": None, "help": "healthcheck command (run with /bin/sh -c); "
                                       "without it, the --health-* timings given apply to the image's HEALTHCHECK"}),
    (("--health-interval",), "health_interval", {"default": None, "type": _duration,
                                                 "help": "time between checks (default 30s)"}),
    (("--health-timeout",), "health_timeout", {"default": None, "type": _duration,
                                               "help": "check timeout (default 30s)"}),
    (("--health-retries",), "health_retries", {"default": None, "type": int,
                                               "help": "failures before unhealthy (default 3)"}),
    (("--health-start-period",), "health_start_period", {"default": None, "type": _duration,
                                                         "help": "grace period (default 0s)"}),
    (("--health-start-interval",), "health_start_interval", {
        "default": None, "type": _duration,
        "help": "time between checks during the start period until healthy (default 5s)"}),
    (("--stop-signal",), "stop_signal", {"default": None,
                                         "help": "signal to stop the container (default: image's or SIGTERM)"}),
    (("--stop-timeout",), "stop_timeout", {"default": 10.0, "type": float, "help": "seconds before SIGKILL on stop"}),
    (("-l", "--label"), "label", _listed("KEY=VALUE", "set a label")),
    (("--detach-keys",), "detach_keys", {
        "default": None, "metavar": "KEYS",
        "help": "with -it: the keys that detach and leave the container running (default: the Docker client "
                "config's detachKeys, else ctrl-p,ctrl-q): characters and ctrl-<a..z, @, [, \\, ], ^, _>, "
                "comma-separated"}),
))


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("run", help="create and start a container", add_help=False,
                              description="Create and start a container (pulls the image if needed). Exit: the "
                              "container's exit code (-d: 0); 125 when run itself failed, 126/127 when the command "
                              "cannot run (not executable / not found), as docker run.")
    p.add_argument("--help", action="help", help="show this help message and exit")
    SPEC.add_to(p, "run")
    p.set_defaults(run=run, no_logging=True)    # logging is set up only if a pull or a network needs it


def _kv(items: list[str], what: str) -> dict[str, str]:
    from reconciler.runtime import errors

    out: dict[str, str] = {}
    for item in items:
        k, sep, v = item.partition("=")
        if not k:
            raise errors.InvalidArgument(f"invalid {what} {item!r}, expected KEY=VALUE")
        if not sep and what == "environment variable":
            import os

            if k not in os.environ:
                continue
            v = os.environ[k]
        out[k] = v
    return out


def config_json(args: argparse.Namespace) -> dict[str, Any]:
    """The container config the options describe, in `base.config_to_json`'s form (what an
    agent's POST /v1/containers takes; fields left out keep ContainerConfig's defaults): a run
    through an agent sends it as it is, without loading runtime.base (#21)."""
    import os

    mounts: list[dict[str, Any]] = []
    for spec in args.volume:
        parts = spec.split(":")
        if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] not in ("ro", "rw")):
            from reconciler.runtime import errors

            raise errors.InvalidArgument(f"invalid volume {spec!r}", hint="use SRC:DST or SRC:DST:ro")
        src, dst = parts[0], parts[1]
        mounts.append({"type": "bind" if src.startswith("/") else "volume", "source": src, "target": dst,
                       "read_only": len(parts) == 3 and parts[2] == "ro"})
    for spec in args.tmpfs:
        dst, _, opts = spec.partition(":")
        mounts.append({"type": "tmpfs", "target": dst, "options": [o for o in opts.split(",") if o]})
    name, retries = args.restart or ("no", 0)
    timings = {"interval": args.health_interval, "timeout": args.health_timeout, "retries": args.health_retries,
               "start_period": args.health_start_period, "start_interval": args.health_start_interval}
    given = {k: v for k, v in timings.items() if v is not None}
    healthcheck = None
    if args.health_cmd:
        healthcheck = {"test": ["CMD-SHELL", args.health_cmd], "interval": 30.0, "timeout": 30.0, "retries": 3,
                       "start_period": 0.0, **given}
    elif given:             # as docker run: the image's test with these timings (0: the image's)
        healthcheck = {"test": [], **dict.fromkeys(timings, 0), **given}
    return {
        "name": args.name or f"r_{os.urandom(4).hex()}",     # secrets.token_hex: its import costs ~5 ms
        "image": args.image,
        "command": None if args.entrypoint is None else args.entrypoint.split(),
        "args": args.command or None,
        "env": _kv(args.env, "environment variable"),
        "user": args.user, "workdir": args.workdir, "hostname": args.hostname,
        "labels": _kv(args.label, "label"),
        "ports": [{"container_port": container_port, "host_port": host_port, "protocol": proto, "host_ip": host_ip}
                  for host_ip, host_port, container_port, proto in args.publish],
        "networks": list(args.network), "mounts": mounts,
        "restart": {"name": name, "max_retries": retries},
        "healthcheck": healthcheck,
        "resources": {"memory": args.memory, "cpus": args.cpus, "pids": args.pids_limit},
        "read_only": args.read_only, "cap_add": list(args.cap_add), "cap_drop": list(args.cap_drop),
        # -d -i / -d -t: made with its stdin open / a terminal, for `attach` (docker run -dit);
        # create's and a foreground run's -i: StdinOnce, the attach that sends it closes it (docker's)
        "tty": args.tty, "stdin_open": args.interactive,
        "stdin_once": args.interactive and not getattr(args, "detach", False),
        "stop_signal": args.stop_signal, "stop_timeout": args.stop_timeout,
    }


def build_config(args: argparse.Namespace) -> Any:
    """The ContainerConfig the options describe (`config_json`'s, read by runtime.base)."""
    from reconciler.runtime import base

    return base.config_from_json(config_json(args))


def run(args: argparse.Namespace) -> int:
    from reconciler.errors import ReconcilerError

    with collector.paused():        # until the container started (collector.py)
        try:
            return _run(args)
        except ReconcilerError as exc:
            exc.exit_code = failure_code(str(exc))      # main() prints it and exits with this code
            raise


# docker run's exit codes for a container whose process the runtime could not start (the
# docker CLI's rule, on the error's words: runc's, the same through dockerd, the native engine
# and an agent): 127 not found, 126 not executable; any other failure of `run` itself is 125
# (cli/main.py EXIT_RUN_FAILED), whatever its kind: below it, every code is the container's
START_NOT_FOUND = 127
START_NOT_EXECUTABLE = 126


def failure_code(message: str) -> int:
    """The exit code of a `run` that failed so: 127 or 126 for a command the runtime could not
    start (`start_failure_code`), else docker run's 125, whatever the failure."""
    from reconciler.cli.main import EXIT_RUN_FAILED

    code = start_failure_code(message)
    return EXIT_RUN_FAILED if code is None else code


def start_failure_code(message: str) -> int | None:
    """127 or 126 when `message` is the runtime's "unable to start container process" for a
    command (or a mount source) not found, or one that is not executable; else None."""
    if "unable to start container process" not in message:
        return None
    if "executable file not found" in message or "no such file or directory" in message:
        return START_NOT_FOUND
    if "permission denied" in message or "is a directory" in message:
        return START_NOT_EXECUTABLE
    return None


def _run(args: argparse.Namespace) -> int:
    from reconciler.cli import _agentapi, engines
    from reconciler.runtime import errors

    engines.check(args, "run")
    doc = config_json(args)
    attached = (args.interactive or args.tty) and not args.detach
    if not attached:
        # one request: the agent's engine creates, starts, streams, waits and removes (#21);
        # no network named: its default one, as on the engine opened here
        steps = _agentapi.run(args, {"config": doc, "remove": args.rm, "detach": args.detach})
        if steps is not None:
            code = _printed(steps)
            args.end_at_once = True     # nothing left open: main() ends without the teardown
            return code
    from reconciler.runtime import base

    config = base.config_from_json(doc)
    if not engines.is_native(args):
        if attached:
            raise errors.InvalidArgument(f"reconcile run -i/-t does not work with --runtime {args.runtime}",
                                         hint=f"use the engine's own client: {args.runtime} run -it")
        return _run_on(engines.open_runtime(args, "run"), config, args)
    # no network named: the engine's default one (docker run's default bridge), where -p publishes
    bridge = config.networks not in (("none",), ("host",))
    if bridge:
        from reconciler.logs import configure_logging

        configure_logging(level=args.log_level, json=args.log_json)     # the network code logs
    rt = engines.open_runtime(args, "run", bridge=bridge)
    if attached:
        return _run_attached(rt, config, args)
    from reconciler.runtime import parts

    interrupted: list[bool] = []
    try:
        code = _printed(parts.run_foreground(rt, config, remove=args.rm, detach=args.detach,
                                             hangup=lambda: bool(interrupted), pulling=lambda: log_pull(args)),
                        interrupted.append)
    finally:
        rt.close()          # the state DB closed here, its WAL checkpointed and synced, as at exit
    args.end_at_once = True     # nothing left open: main() ends the process without the teardown
    return code


def log_pull(args: argparse.Namespace) -> None:
    from reconciler.logs import configure_logging  # a pull logs; a present image does not

    configure_logging(level=args.log_level, json=args.log_json)


def _printed(steps: Iterator[tuple[str, Any]], interrupt: Callable[[bool], None] | None = None) -> int:
    """Print a run's steps (parts.run_foreground's, here or through an agent): a detached run's
    id, else the container's lines (stdout to stdout, stderr to stderr) until it ended; its exit
    code. `interrupt`: told of the first Ctrl-C once it started (the container is then stopped,
    as `docker run` in the foreground does), a second one leaves."""
    import signal

    out, err = sys.stdout.buffer, sys.stderr.buffer
    started = None
    try:
        for kind, value in steps:
            if kind == "id":
                started = value
                collector.resume()        # a foreground run may print for hours
                if interrupt is not None:
                    def once(*_: object) -> None:
                        signal.signal(signal.SIGINT, signal.default_int_handler)
                        interrupt(True)
                    signal.signal(signal.SIGINT, once)
            elif kind == "exit":
                return int(value)
            else:
                stream = err if kind == "stderr" else out
                stream.write(value)             # as written: its newline, if it had one
                stream.flush()
    finally:
        if interrupt is not None:
            signal.signal(signal.SIGINT, signal.default_int_handler)
    print(started)                      # detached: it runs on
    return 0


def _run_on(rt: Any, config: Any, args: argparse.Namespace) -> int:
    """`run` on an engine through the Runtime protocol (docker): the image pulled if missing."""
    try:
        # detached, the engine removes it at its exit (its AutoRemove); in the foreground, _follow does
        return _follow(rt, create_on(rt, config, auto_remove=args.rm and args.detach), args)
    finally:
        rt.close()


def create_on(rt: Any, config: Any, *, auto_remove: bool) -> str:
    """A container of `config` made on an engine through the Runtime protocol (docker), its image
    pulled first when missing (`run`'s first step there; `create`'s whole); its id.
    `auto_remove`: the engine removes it once it exited (its AutoRemove)."""
    from reconciler.runtime import errors

    try:
        rt.inspect_image(config.image)
    except errors.NotFound:
        rt.pull_image(config.image)
    return str(rt.create_container(config, auto_remove=True) if auto_remove else rt.create_container(config))


def _follow(rt: Any, cid: str, args: argparse.Namespace) -> int:
    """Start the created container `cid`; detached, print its id; else print its output until
    it ended and exit with its code (what the native engine's run prints, the same way). In the
    foreground on an engine that attaches (docker's `started_attached`), its output is read
    from an attach made before the start, as `docker run` reads it; else from a logs follow."""
    import contextlib

    from reconciler.runtime import base

    attach = not args.detach and isinstance(rt, base.AttachedStart)
    with contextlib.ExitStack() as stack:
        try:
            if attach:
                lines = stack.enter_context(rt.started_attached(cid))
            else:
                rt.start_container(cid)
        except BaseException:
            if args.rm:
                rt.remove_container(cid, force=True, volumes=True)
            raise
        if args.detach:
            print(cid)
            return 0
        collector.resume()                    # started: a foreground run may print for hours
        out, err = sys.stdout.buffer, sys.stderr.buffer
        try:
            for line in lines if attach else rt.logs(cid, follow=True):
                stream = err if line.stream == "stderr" else out
                stream.write(line.written)
                stream.flush()
            code = int(rt.wait_container(cid))
        except KeyboardInterrupt:
            rt.stop_container(cid)
            code = int(rt.wait_container(cid))
    if args.rm:
        rt.remove_container(cid, force=True, volumes=True)
    return code


def _run_attached(rt: Any, config: Any, args: argparse.Namespace) -> int:
    """`run -i`/`-t` on the native engine: a terminal or stdin attached through conmon's socket
    (cli/attaching.py relays), as `docker run -it`: the detach keys (`--detach-keys`, else the
    Docker client config's, else Ctrl-p Ctrl-q) leave it running, silently, exit 0. With `--rm`
    it is AutoRemove (as docker run --rm makes it): removed at once when it exits during the
    session (this process supervises meanwhile: parts.supervising), by whoever is there at its
    exit after a detach (autoremove.py)."""
    import contextlib

    from reconciler.cli import attaching
    from reconciler.runtime import errors, parts

    keys = attaching.detach_keys(args.detach_keys)     # a bad one refused before anything is made
    try:
        image_id, image_cfg, layer_dirs = rt.images.resolve(config.image)
    except errors.NotFound as exc:
        if "image" not in str(exc):
            raise
        log_pull(args)
        rt.pull_image(config.image)
        image_id, image_cfg, layer_dirs = rt.images.resolve(config.image)
    mgr = rt.containers
    cid = mgr.create(config, image_id=image_id, image_config=image_cfg.get("config") or {},
                     lowerdirs=layer_dirs, terminal=args.tty, stdin=args.interactive, volatile=args.rm,
                     auto_remove=args.rm).id
    with contextlib.ExitStack() as stack:
        if args.rm:     # its exit in the session: removed below, not by conmon's exit command
            stack.enter_context(parts.supervising(rt))
        try:
            sock = parts.attach(mgr, cid)
            try:
                # asked now: one removed at its exit meanwhile (an agent's) answers from the journal
                looks = rt.wait_condition(cid, "not-running")
                rt.start_container(cid)
            except BaseException:
                sock.close()
                raise
        except BaseException:
            if args.rm:
                rt.remove_container(cid, force=True, volumes=True)
            raise
        collector.resume()                    # started: a terminal session may last for hours
        try:
            if attaching.relay(sock, stdin=args.interactive, tty=args.tty, keys=keys,
                               resize=lambda rows, cols: parts.resize(mgr, cid, rows, cols)):
                return 0                    # detached: it runs on, as docker run -it's (silently)
        finally:
            sock.close()
        code = 0
        for look in looks:
            code = look if look is not None else code
        if args.rm:
            with contextlib.suppress(errors.NotFound):     # removed meanwhile (an agent's restart manager)
                rt.remove_container(cid, force=True, volumes=True)
    return code
