"""`reconcile create [OPTIONS] IMAGE [COMMAND...]`: create a container without starting it, as
`docker create`; `reconcile start NAME` then runs it.

Its options are `run`'s (cmd_run.SPEC, the one description, parsed by the same fast path
without argparse), but -d: nothing is started. It pulls the image when the store lacks it and
prints the new container's full id. `--rm`: removed, with its anonymous volumes, once it exited
after a start, as docker's (its AutoRemove; a run -d --rm's). While an agent holds the state root
it is made by the agent's engine (POST /v1/containers), as `run` is; `--runtime docker`: on a
Docker or Podman engine.

Exit codes as docker create's: 125 for a usage error or an option's value it refuses (nothing
asked of the engine), 1 when the engine did not make it (the image not found or pulled, the
name taken...), 3 for a full disk (every command's).
"""

from __future__ import annotations

from reconciler.cli import cmd_run

# annotations only: a create parsed by the fast path loads no argparse (#21)
TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from typing import Any

__all__ = ["SPEC", "register", "run"]

# run's options (one description: cmd_run.SPEC), but -d and --detach-keys: docker create has neither
SPEC = cmd_run.SPEC.without("detach", "detach_keys")


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("create", help="create a container without starting it (as docker create; start runs "
                              "it)", add_help=False,
                              description="Create a container with run's options, without starting it (pulls the "
                              "image if needed), and print its id; `reconcile start NAME` runs it. --rm removes it "
                              "once it exited after a start. Exit: 125 for a usage error or a value refused, 1 when "
                              "the engine did not create it, as docker create.")
    p.add_argument("--help", action="help", help="show this help message and exit")
    SPEC.add_to(p, "create")
    p.set_defaults(run=run, no_logging=True)    # logging is set up only if a pull or a network needs it


def run(args: argparse.Namespace) -> int:
    from reconciler.cli.main import EXIT_RUN_FAILED
    from reconciler.errors import ReconcilerError

    try:
        doc = cmd_run.config_json(args)     # the options' values: a refused one is docker's 125
    except ReconcilerError as exc:
        exc.exit_code = EXIT_RUN_FAILED
        raise
    try:
        print(_create(args, doc))
    except ReconcilerError as exc:
        if exc.exit_code == 2:          # invalid input (an engine that makes no containers, a bad name)
            exc.exit_code = EXIT_RUN_FAILED
        raise
    return 0


def _create(args: argparse.Namespace, doc: dict[str, Any]) -> str:
    """The container the options describe (config_json's `doc`) made, on the agent's engine, this
    one's, or the one `--runtime` names; its id."""
    from reconciler.cli import _agentapi, engines

    engines.check(args, "create")
    created = _agentapi.create(args, doc, remove=args.rm)
    if created is not None:
        return created
    from reconciler.runtime import base

    config = base.config_from_json(doc)
    if not engines.is_native(args):
        rt = engines.open_runtime(args, "create")
        try:
            return cmd_run.create_on(rt, config, auto_remove=args.rm)
        finally:
            rt.close()
    # no network named: the engine's default one (docker's default bridge), as run's
    bridge = config.networks not in (("none",), ("host",))
    if bridge:
        from reconciler.logs import configure_logging

        configure_logging(level=args.log_level, json=args.log_json)     # the network code logs
    rt = engines.open_runtime(args, "create", bridge=bridge)
    try:
        from reconciler.runtime import parts

        return parts.create(rt, config, volatile=args.rm, auto_remove=args.rm, pulling=lambda: cmd_run.log_pull(args))
    finally:
        rt.close()
