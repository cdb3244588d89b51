"""`reconcile history`: the passes that changed something or failed, newest first, and whether
`reconcile rollback` can re-apply each one's revision (a copy of it is kept under <root>/revisions).

Every owner's passes, with an OWNER column, unless `--owner` names one (as `kubectl get -A`,
`helm list -A`): on an agent's root each source records its passes under its own owner (its
name by default), and `reconcile status` points here whatever they are called. A pass that
converged a selection of services (`reconcile apply SOURCE web`) says which after its source
(`-o json`: `selection`), and a rollback to it re-applies those alone."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    from reconciler.cli import cmd_apply, output

    parser = subparsers.add_parser(
        "history", help="list the revisions applied (time, result, changes)",
        description="List the passes that changed something or failed, newest first.",
    )
    cmd_apply.add_common_flags(parser, "history", source=False, owner=(("--owner",), "owner", {
        "default": None, "help": "only this owner's passes (default: every owner's, with an OWNER column; an "
                                 "agent's sources record theirs under their own owner, by default their name)"}))
    parser.add_argument("-n", "--limit", type=int, default=20, help="how many passes (default: 20)")
    output.add_output_flag(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import time

    from reconciler.cli import cmd_apply, output
    from reconciler.state import history, revisions

    db = cmd_apply.open_db(args)
    if args.owner is None:
        passes = history.every_owner(db, limit=args.limit)
    else:
        passes = history.HistoryStore(db, args.owner).list(limit=args.limit)
    kept = {s.revision: s for s in revisions.RevisionStore(args.root).kept()}
    agents: dict[str, Any] = {}             # an agent's sources (their remembered state), by name

    def rollback(p: history.Pass) -> tuple[bool, str]:
        """Whether `reconcile rollback` can re-apply this pass's revision, and if not why."""
        snap = kept.get(p.revision)
        if p.result != "converged":
            return False, "did not converge"
        if snap is None:
            # an agent's pass (source "NAME:ORIGIN"): the agent rolls back to what it kept, or to a
            # commit its repository still has (daemon.rollback)
            name, _, origin = p.source.partition(":")
            if name and name not in agents:
                from reconciler.state import sourcestate

                agents[name] = sourcestate.SourceMemory(db).load(name) if _remembered(db, name) else None
            mem = agents.get(name)
            if mem is not None:
                how = f"through the agent: reconcile rollback {name} {p.revision[:12]}"
                if p.revision in mem.good:
                    return True, how
                if f"@{p.revision[:12]}" in origin:         # a git commit
                    return True, how + " (while its repository has the commit)"
                return False, "the agent keeps no copy of it any more"
            return False, "no copy kept (pruned, or applied before copies were kept)"
        return snap.rollback, snap.reason

    if output.wants_data(args):
        output.print_data([
            {**p.to_json(), "rollback": dict(zip(("available", "reason"), rollback(p), strict=True))}
            for p in passes
        ], args.output)
        return 0
    rows = []
    for p in passes:
        ok, why = rollback(p)
        rows.append({"id": p.id, "owner": p.owner,
                     "time": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(p.started_at)),
                     "revision": p.revision[:12], "result": p.result,
                     "changes": ", ".join(f"{v} {k}" for k, v in p.counts.items()),
                     "source": (f"{p.cause} ({p.source})" if p.cause else p.source) +
                     (f": {p.selection.words()}" if p.selection else ""),
                     "rollback": "yes" if ok else f"no: {why}"})
    columns = [("ID", "id"), *([("OWNER", "owner")] if args.owner is None else []), ("TIME (UTC)", "time"),
               ("REVISION", "revision"), ("RESULT", "result"), ("CHANGES", "changes"), ("ROLLBACK", "rollback"),
               ("SOURCE", "source")]
    output.print_table(rows, columns)
    return 0


def _remembered(db: Any, name: str) -> bool:
    """Whether an agent has (or had) a source `name` on this root (its agent_sources row)."""
    try:
        return db.connect().execute("SELECT 1 FROM agent_sources WHERE source = ?", (name,)).fetchone() is not None
    except Exception:       # noqa: BLE001 - no such table: no agent ever ran on this root
        return False
