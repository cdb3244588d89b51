"""Shell completion at TAB time: argcomplete, with the engine's and the agent's names.

The shell script that `reconcile completion bash|zsh|fish` prints runs `reconcile` itself with
`_ARGCOMPLETE` set; `main` then calls `complete(parser)` before anything else, which answers
from the parser (commands, subcommands, flags, choices) and, for the arguments that name
something, from the state root the command line names (`--root`, else $RECONCILER_ROOT):

    CONTAINER              containers of the native engine
    IMAGE, NAME[:TAG]      its image tags (tag SOURCE and run/create IMAGE too)
    VOLUME, network NAME   its volumes and networks (run/create --network too)

docker's forms of the commands (`container run`, `image tag`: cli/aliases.py) complete as them.
    SOURCE of reconcile-now, rollback, suspend and resume: the running agent's sources

Nothing is created: a root without an engine completes no names, and an agent that does not
answer completes no sources. argcomplete is imported only here, only at TAB time.
"""

from __future__ import annotations

import argparse
import os
import shlex
from collections.abc import Callable, Iterable
from typing import Any

__all__ = ["complete", "names"]

# (command path, argument dest) -> what it names; then by metavar for every command
_BY_DEST: dict[tuple[str, str], str] = {
    ("tag", "source"): "images", ("push", "ref"): "images", ("run", "image"): "images",
    ("run", "network"): "networks", ("create", "image"): "images", ("create", "network"): "networks",
    ("network inspect", "names"): "networks", ("network rm", "names"): "networks",
    ("network connect", "network"): "networks", ("network disconnect", "network"): "networks",
    ("reconcile-now", "source"): "sources", ("rollback", "first"): "sources",
    ("suspend", "source"): "sources", ("resume", "source"): "sources",
    ("rollback", "second"): "revisions",
}
_BY_METAVAR = {"CONTAINER": "containers", "IMAGE": "images", "VOLUME": "volumes"}


def _containers(args: argparse.Namespace) -> list[str]:
    from reconciler.cli import cmd_ps

    return [r.name for r in cmd_ps.open_records(args).records()]


def _images(args: argparse.Namespace) -> list[str]:
    from reconciler.cli import cmd_pull

    return [t for info in cmd_pull.open_store(args).list() for t in info.repo_tags]


def _volumes(args: argparse.Namespace) -> list[str]:
    from reconciler.cli import cmd_volume

    return [v.name for v in cmd_volume._volumes(args).list()]


def _networks(args: argparse.Namespace) -> list[str]:
    from reconciler.cli import cmd_network

    return [n.name for n in cmd_network._manager(args).list_networks()]


def _sources(args: argparse.Namespace) -> list[str]:
    from reconciler.cli import _agentapi

    return [str(s["name"]) for s in _agentapi.client(args).get("/v1/status")["sources"]]


_LOOKUPS: dict[str, Callable[[argparse.Namespace], list[str]]] = {
    "containers": _containers, "images": _images, "volumes": _volumes, "networks": _networks,
    "sources": _sources, "revisions": lambda args: [],     # ids to type, never file names
}


def names(kind: str, args: argparse.Namespace) -> list[str]:
    """The names of `kind` where `args` point (root, run dir, socket); none when there is no
    engine or agent there, or it cannot be read."""
    from reconciler.cli import options
    from reconciler.errors import ReconcilerError

    if not hasattr(args, "root"):
        args.root = os.environ.get("RECONCILER_ROOT", options.DEFAULT_ROOT)
    for attr in ("run_dir", "name_prefix", "socket"):
        if not hasattr(args, attr):
            setattr(args, attr, None)
    try:
        if kind != "sources":
            if not options.engine_exists(args):
                return []
            options.resolve(args)
        return sorted(set(_LOOKUPS[kind](args)))
    except (ReconcilerError, OSError, ValueError, KeyError):
        return []


class _Names:
    """An argcomplete completer: the names of one kind that start with what was typed."""

    def __init__(self, kind: str) -> None:
        self.kind = kind

    def __call__(self, prefix: str, parsed_args: argparse.Namespace, **_: Any) -> Iterable[str]:
        return [n for n in names(self.kind, parsed_args) if n.startswith(prefix)]


def _walk(parser: argparse.ArgumentParser, path: str = "") -> Iterable[tuple[str, argparse.Action]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _walk(sub, f"{path} {name}".strip())
        else:
            yield path, action


def attach(parser: argparse.ArgumentParser) -> None:
    """Give the arguments that name containers, images, volumes, networks or sources their completer."""
    from reconciler.cli import aliases

    for path, action in _walk(parser):
        group, _, word = path.partition(" ")
        command = aliases.target(group, word) or path          # `container run IMAGE`: run's
        kind = _BY_DEST.get((command, action.dest)) or _BY_METAVAR.get(str(action.metavar))
        if kind is not None:
            action.completer = _Names(kind)  # type: ignore[attr-defined]


def _hoisted_line(parser: argparse.ArgumentParser, hoist: Callable[[list[str], Any, str], list[str]],
                  commands: Iterable[str]) -> None:
    """`reconcile --root X ps <TAB>`: the command's options written before it are moved after
    it in COMP_LINE (as `main` does for a run), so the completer sees them."""
    line, point = os.environ.get("COMP_LINE", ""), int(os.environ.get("COMP_POINT", "0") or 0)
    head, tail = line[:point], line[point:]
    try:
        words = shlex.split(head)
    except ValueError:
        return                           # an open quote: leave the line as typed
    if not words:
        return
    last = "" if head.endswith(" ") else words.pop()
    argv = words[1:]
    command = next((w for w in argv if w in commands), None)
    if command is None:
        return
    new = shlex.join([words[0], *hoist(argv, parser, command)]) + " " + last
    os.environ["COMP_LINE"], os.environ["COMP_POINT"] = new + tail, str(len(new))


def complete(parser: argparse.ArgumentParser, hoist: Callable[[list[str], Any, str], list[str]],
             commands: Iterable[str]) -> None:
    """Answer the shell's completion request and exit (argcomplete's contract)."""
    import argcomplete

    attach(parser)
    _hoisted_line(parser, hoist, list(commands))
    argcomplete.autocomplete(parser, always_complete_options=False)   # flags once "-" is typed
