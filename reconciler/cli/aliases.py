"""docker's management-command forms of reconciler's top-level commands: `container ls` is `ps`,
`container create` is `create`, `image tag` is `tag`... (docker's `docker container ls`, `docker
image push`). One home: each form is the top-level command's own parser (its module's register(),
under another name) and the same namespace, so it parses, runs, prints and exits as that command
does, through the same fast path (cli/fastpath.py) and agent (cli/_agentapi.py); cli/main.py
treats it as that command (`canonical`: its exit codes, what it reads, the engine it follows).

    GROUPS                      group -> its forms: (name, its aliases, the top-level command)
    target(group, word)         the top-level command `reconcile GROUP WORD` is, or None
    canonical(argv)             the top-level command a command line runs (`container ls` -> ps)
    register(subparsers, group, form)   add the group's forms (or the one named) to its parser

Imports nothing when loaded (main and the fast path read it at start-up, #21).
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["GROUPS", "canonical", "register", "target"]

# group -> (docker's subcommand, docker's aliases of it, reconciler's top-level command), in the
# order `reconcile GROUP --help` lists them (after the group's own subcommands)
GROUPS: dict[str, tuple[tuple[str, tuple[str, ...], str], ...]] = {
    "container": (
        ("ls", ("ps", "list"), "ps"), ("create", (), "create"), ("run", (), "run"), ("start", (), "start"),
        ("stop", (), "stop"), ("restart", (), "restart"), ("kill", (), "kill"), ("rm", ("remove",), "rm"),
        ("inspect", (), "inspect"), ("logs", (), "logs"), ("exec", (), "exec"), ("pause", (), "pause"),
        ("unpause", (), "unpause"), ("wait", (), "wait"), ("rename", (), "rename"), ("port", (), "port"),
        ("top", (), "top"), ("stats", (), "stats"), ("cp", (), "cp"), ("commit", (), "commit"),
    ),
    "image": (
        ("ls", ("list",), "images"), ("rm", ("remove",), "rmi"), ("pull", (), "pull"), ("push", (), "push"),
        ("tag", (), "tag"), ("save", (), "save"), ("load", (), "load"), ("build", (), "build"),
    ),
}


def target(group: str, word: str) -> str | None:
    """The top-level command that `reconcile GROUP WORD` is (`container ps` -> ps), or None."""
    for name, aliases, command in GROUPS.get(group, ()):
        if word == name or word in aliases:
            return command
    return None


def canonical(argv: list[str], command: str | None) -> str | None:
    """The top-level command the command line `argv` runs, whose first command word is
    `command`: that one, or for a form of a group the command it is (`container ls` -> ps; the
    subcommand stands right after the group's name)."""
    if command not in GROUPS:
        return command
    at = argv.index(command)
    return (target(command, argv[at + 1]) if at + 1 < len(argv) else None) or command


class _Named:
    """What a command's register() is given in place of the top-level subparsers: its parser is
    added under the group's name for it, with docker's aliases, the same in every other way."""

    def __init__(self, subparsers: Any, name: str, aliases: tuple[str, ...], command: str) -> None:
        self.subparsers, self.name, self.aliases, self.command = subparsers, name, aliases, command

    def add_parser(self, command: str, **kwargs: Any) -> Any:
        if command != self.command:
            raise AssertionError(f"cmd_{self.command}.register added {command!r}")
        kwargs["help"] = f"{kwargs.get('help') or ''} (as reconcile {self.command})".strip()
        parser = self.subparsers.add_parser(self.name, aliases=list(self.aliases), **kwargs)
        parser.alias_of = self.command          # (scripts/gen_docs.py documents it as that command)
        return parser


def register(subparsers: Any, group: str, form: str | None = None) -> None:
    """Add the forms of `group` to its parser's `subparsers`: each its top-level command's
    parser, made by that command's register(); with `form`, the one the command line names
    alone (its module alone imported: `container start` costs what `start` does)."""
    import importlib

    for name, aliases, command in GROUPS[group]:
        if form is not None and form != name and form not in aliases:
            continue
        module = importlib.import_module(f"reconciler.cli.cmd_{command.replace('-', '_')}")
        module.register(_Named(subparsers, name, aliases, command))
