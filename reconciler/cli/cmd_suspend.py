"""`reconcile suspend [SOURCE...]`: the running agent stops reconciling these sources (default:
every one), as `flux suspend` does; `reconcile resume` (cmd_resume.py) lets it again. Both ask
the agent over its socket (`POST /v1/sources/NAME {"suspend": true|false}`, the API's suspend).

Suspended, a source runs no pass: a new revision is not applied, drift is not corrected, nothing
is pruned; its containers are left as they are (running ones keep running, and the engine's
restart policies and healthchecks go on, as dockerd's do without any agent); a pass in flight
finishes. The suspend is the operator's word: kept in the state DB, it outlives a restart of
the agent until resumed. `reconcile status` shows the source `[suspended]` with its last pass.

Resume runs a pass at once; as the API's resume, it also ends a rollback's pin (`rollback
--resume`) and forgets the flapping of the source's containers. A source whose config says
`suspend: true` is resumed until the agent reloads its config or restarts: then the config's
word holds again (said in a note).

Exit codes: 0 each source is suspended (resumed) now, also one that already was; 1 no agent
answers for the state root (none runs: nothing to suspend); 2 a source the agent does not
have (nothing changed; its sources are named) or a usage error.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

__all__ = ["act", "add_arguments", "register", "run"]


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "suspend", help="stop the agent reconciling sources (containers left as they are)",
        description="Suspend SOURCE (default: every source of the running agent), as `flux suspend`: no "
        "pass runs (no new revision applied, no drift corrected, nothing pruned), its containers are left as "
        "they are (restart policies and healthchecks go on); a pass in flight finishes. Kept across restarts "
        "of the agent until `reconcile resume`. Exit 0 suspended (or already), 1 no agent answers for the "
        "root, 2 a source the agent does not have (nothing changed).")
    add_arguments(parser)
    parser.set_defaults(run=run)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from reconciler.cli import _agentapi, options, output

    options.add_engine_options(parser)
    _agentapi.add_socket_flag(parser)
    parser.add_argument("source", metavar="SOURCE", nargs="*",
                        help="a source's name in the agent's config (default: every source)")
    output.add_output_flag(parser)


def run(args: argparse.Namespace) -> int:
    return act(args, suspend=True)


def act(args: argparse.Namespace, *, suspend: bool) -> int:
    """Suspend (or resume) the sources named, every one when none is: each checked first (a name
    the agent does not have changes nothing), then one request each."""
    import urllib.parse

    from reconciler.api import errors
    from reconciler.cli import _agentapi, output

    verb = "suspend" if suspend else "resume"
    try:
        api = _agentapi.client(args)
        sources = {str(s["name"]): s for s in api.get("/v1/status")["sources"]}
    except errors.AgentUnreachable as e:
        raise errors.AgentUnreachable(
            f"cannot {verb}: {e.message}",
            hint="a source's suspend is the running agent's: start it (`reconcile agent --config ...`, "
                 "`systemctl start reconciler`) or pass --socket; to have a source suspended from the "
                 "agent's start, set `suspend: true` on it in the agent's config") from None
    names = list(dict.fromkeys(args.source)) or sorted(sources)
    unknown = [n for n in names if n not in sources]
    if unknown:
        raise errors.NotFound(
            f"the agent has no source {', '.join(repr(n) for n in unknown)} (its sources: "
            f"{', '.join(sorted(sources)) or 'none'}): nothing was {'suspended' if suspend else 'resumed'}",
            hint="name a source as the agent's config does (`reconcile status` lists them)")
    quiet = output.wants_data(args)
    note = sys.stderr if quiet else sys.stdout
    if not names:
        print("the agent has no sources", file=note)
    changed, after = [], []
    for name in names:
        before = sources[name]
        # resume also ends a rollback's pin: a pinned source is not yet following its source
        if bool(before["suspended"]) == suspend and (suspend or not before.get("pinned")):
            after.append(before)
            if not quiet:
                print(f"{name}: {'already suspended' if suspend else 'not suspended'}")
            continue
        doc = api.post(f"/v1/sources/{urllib.parse.quote(name, safe='')}", {"suspend": suspend})
        changed.append(name)
        after.append(doc)
        if quiet:
            pass
        elif suspend:
            print(f"{name}: suspended" + (" (the pass in flight finishes)" if doc.get("running") else ""))
        else:
            pin = f"; its rollback pin to {str(before['pinned'])[:12]} ended" if before.get("pinned") else ""
            print(f"{name}: resumed{pin}: a pass runs now (`reconcile status` shows its result)")
        if not suspend and doc.get("config_suspend"):
            print(f"note: the agent's config says `suspend: true` for {name}: a reload or restart of the agent "
                  "suspends it again; remove that line to keep it resumed", file=sys.stderr)
    if quiet:
        output.print_data({"suspended" if suspend else "resumed": changed, "sources": after}, args.output)
    return 0
