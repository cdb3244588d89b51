"""The engine a command talks to: `--runtime`, and opening it through `runtime.opening` (#15).

    add_runtime_flag(parser, command)   --runtime native|docker|swarm|fake ($RECONCILER_RUNTIME)
    place(args)                         -> runtime.opening.Place (--root, --run-dir, ...)
    open_runtime(args, command)         -> the Runtime, or InvalidArgument (exit 2) naming the
                                           command and the runtime when it cannot do that there
    follow_agent(args)                  a container command on the default engine of a root whose
                                        agent runs another engine talks to that one, at the
                                        agent's address (FOLLOWS_AGENT: the commands)

Stdlib only at import time: the container commands import this to register their flags.
"""

from __future__ import annotations

import os

# runtime.opening.RUNTIMES, without importing it (fastpath imports nothing at load)
from reconciler.cli.fastpath import RUNTIMES

# annotations only: what the read-only commands import at start-up stays small (#21)
TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from typing import Any

__all__ = ["FOLLOWS_AGENT", "RUNTIMES", "add_runtime_flag", "check", "follow_agent", "is_native", "open_runtime", "place",
           "runtime_default"]


# what a command cannot do on an engine, and what to do instead
_REFUSED: dict[tuple[str, str], str] = {
    ("run", "swarm"): "a cluster runs services: declare it in a manifest and `reconcile apply --runtime swarm`",
    ("run", "fake"): "the fake engine runs no process: use --runtime native or docker",
    ("create", "swarm"): "a cluster runs services: declare it in a manifest and `reconcile apply --runtime swarm`",
    ("create", "fake"): "the fake engine's containers are made by apply: use --runtime native or docker",
    ("exec", "swarm"): "a service has no one container to run a command in: use `docker exec` on its node",
    ("exec", "fake"): "the fake engine runs no process: use --runtime native or docker",
    ("restart", "swarm"): "Swarm restarts a service's copies itself: `docker service update --force SERVICE` "
                          "replaces them",
    ("kill", "swarm"): "a service has no one container to signal: use `docker kill` on its node",
    ("wait", "swarm"): "a service has no one container to wait for: use `docker wait` on its node",
    ("rename", "swarm"): "a service is named once: remove it and apply it under its new name",
    ("top", "swarm"): "a service's processes run on its nodes: use `docker top` there",
    ("top", "fake"): "the fake engine runs no process: use --runtime native or docker",
    ("stats", "swarm"): "a service's containers run on its nodes: use `docker stats` there",
    ("stats", "fake"): "the fake engine runs no process: use --runtime native or docker",
    ("update", "swarm"): "a service's limits are its manifest's: change spec.resources and apply (or `docker "
                         "service update --limit-memory ...`)",
    ("update", "fake"): "the fake engine runs no process: use --runtime native or docker",
    ("container diff", "docker"): "dockerd keeps its containers' files itself: use `docker diff`",
    ("container diff", "swarm"): "a service's containers run on its nodes: use `docker diff` there",
    ("container diff", "fake"): "the fake engine keeps no files: use --runtime native",
    ("cp", "swarm"): "a service's containers run on its nodes: use `docker cp` there",
    ("cp", "fake"): "the fake engine keeps no files: use --runtime native or docker",
    ("system df", "docker"): "its disk is dockerd's own: use `docker system df`",
    ("system df", "swarm"): "use `docker system df` on each node",
    ("system df", "fake"): "the fake engine keeps nothing on disk: use --runtime native",
    ("system prune", "docker"): "what to prune of its disk is dockerd's own: use `docker system prune`",
    ("system prune", "swarm"): "use `docker system prune` on each node",
    ("system prune", "fake"): "the fake engine keeps nothing on disk: use --runtime native",
    ("container prune", "docker"): "dockerd's stopped containers are its own to prune: use `docker container prune`",
    ("container prune", "swarm"): "Swarm removes a service's old tasks itself: use `docker container prune` on a node",
    ("container prune", "fake"): "use --runtime native",
    ("attach", "docker"): "use the engine's own client: `docker attach`",
    ("attach", "swarm"): "a service has no one container to attach to: use `docker attach` on its node",
    ("attach", "fake"): "the fake engine runs no process: use --runtime native or docker",
    ("start -a", "docker"): "use the engine's own client: `docker start -a`",
    ("start -a", "swarm"): "a service's tasks run on its nodes: use `docker service logs -f SERVICE`",
    ("start -a", "fake"): "the fake engine runs no process: use --runtime native or docker",
    ("image history", "swarm"): "a cluster stores no image: use `docker history` on a node",
    ("image history", "fake"): "the fake engine keeps no image config: use --runtime native or docker",
    ("inspect", "docker"): "use `docker inspect`, whose document this is",
    ("inspect", "swarm"): "use `docker service inspect`",
    ("inspect", "fake"): "use `reconcile ps -o json`",
    ("info", "fake"): "the fake engine is no engine to describe: use --runtime native or docker",
}


def runtime_default() -> str:
    """--runtime when not given: $RECONCILER_RUNTIME, else native."""
    return os.environ.get("RECONCILER_RUNTIME", "native")


def add_runtime_flag(parser: argparse.ArgumentParser, command: str, *, under: bool = False) -> None:
    """--runtime for a container command (its default: $RECONCILER_RUNTIME, else native); `under`:
    for a subcommand of a command that has it too (`system --runtime X df`, `system df --runtime
    X` alike: no default of its own, which would override the command's)."""
    import argparse

    refused = sorted(rt for (cmd, rt) in _REFUSED if cmd == command)
    parser.add_argument("--runtime", default=argparse.SUPPRESS if under else runtime_default(), choices=RUNTIMES,
                        help="container engine: native (embedded, default), docker (a Docker or Podman engine "
                        "via $DOCKER_HOST or /var/run/docker.sock), swarm (the services of a Swarm cluster "
                        "whose manager $DOCKER_HOST names), fake (in-memory, state under --root)"
                        + (f"; not {' or '.join(refused)}" if refused else ""))


def is_native(args: argparse.Namespace) -> bool:
    """Whether the command talks to the native engine (the default)."""
    return getattr(args, "runtime", "native") == "native"


# the container commands, and diff: on a root an agent holds that runs another engine, they talk to that one
FOLLOWS_AGENT = frozenset({"ps", "logs", "exec", "attach", "run", "create", "rm", "start", "stop", "restart", "kill",
                           "wait", "rename", "update", "port", "top", "stats", "cp", "system", "pull", "images",
                           "inspect", "diff", "info"})


def follow_agent(args: argparse.Namespace) -> None:
    """A container command on the native engine (the default `--runtime`) of a state root whose
    agent runs another engine (`<root>/agent.json`: its runtime, and for docker and swarm the
    engine's address, its DOCKER_HOST) talks to that engine, as `--runtime` naming it would, at
    the agent's address: its containers are there, and the native engine's root holds none (`ps`
    printed an empty table, `logs NAME` "No such container"). An agent of the native engine, or
    none: nothing changes."""
    from reconciler.cli import _agentapi

    data = _agentapi.agent_file(args)
    runtime = data.get("runtime") if data is not None else None
    if runtime == "native" or runtime not in RUNTIMES:
        return
    args.runtime = runtime
    args.agent_runtime = True
    engine = data.get("engine") if data is not None else None
    if isinstance(engine, str):
        args.engine_address = engine


def check(args: argparse.Namespace, command: str) -> None:
    """InvalidArgument (exit 2) when `command` makes no sense on the chosen engine."""
    runtime = getattr(args, "runtime", "native")
    why = _REFUSED.get((command, runtime))
    if why is not None:
        from reconciler.runtime import errors

        if getattr(args, "agent_runtime", False):
            raise errors.InvalidArgument(f"reconcile {command} does not work on the {runtime} engine that the agent "
                                         f"holding {args.root} runs", hint=why)
        raise errors.InvalidArgument(f"reconcile {command} does not work with --runtime {runtime}", hint=why)


def place(args: argparse.Namespace) -> Any:
    """The runtime.opening.Place the options name."""
    from pathlib import Path

    from reconciler.runtime.opening import Place

    return Place(root=Path(args.root), run_dir=Path(args.run_dir) if getattr(args, "run_dir", None) else None,
                 name_prefix=getattr(args, "name_prefix", None) or "rcl",
                 oci_runtime=getattr(args, "oci_runtime", None) or "runc",
                 engine_address=getattr(args, "engine_address", None))


def open_runtime(args: argparse.Namespace, command: str, *, bridge: bool = True) -> Any:
    """The engine `--runtime` names, for `command` (checked first). The native engine is opened
    without crash recovery (a pass does that) and with its bridge networking plugged in, its
    manager made when a container needs it (`start` and `stop` forward a container's published
    ports and stop), unless not `bridge` (`run --network none|host`: none is ever needed)."""
    from reconciler.runtime import opening

    check(args, command)
    return opening.open_runtime(getattr(args, "runtime", "native"), place(args), recover=False, bridge=bridge)
