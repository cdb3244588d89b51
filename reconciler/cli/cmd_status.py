"""`reconcile status`: each source's revision, last result, errors (file:line) and objects.

Asks the running agent (GET /v1/status); with no agent it reads the state DB under --root
(the inventory and the last pass of each owner: `degraded`, with the reason, unless it
converged) and says that no agent runs.
"""

from __future__ import annotations

from reconciler.cli import fastpath

# annotations only: what the read-only commands import at start-up stays small (#21)
TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from typing import Any


__all__ = ["register", "run"]


# what it takes, for its parser and the fast path alike (cli/fastpath.py)
SPEC = fastpath.Spec(runtime=False, defaults={"socket": None})


def register(subparsers: Any) -> None:
    from reconciler.cli import _agentapi

    parser = subparsers.add_parser(
        "status", help="what the agent applies: sources, revisions, errors, containers",
        description="Status of every source of the running agent (or, with no agent, what the "
        "state DB under --root records: each owner's last pass, degraded with the reason unless it "
        "converged). Exit 0 all well, 1 some source (or owner) has an error or failures, or no pass "
        "of the agent finished yet; a suspended source counts by its last pass (none: not a failure), "
        "never for being suspended.",
    )
    SPEC.add_to(parser, "status")
    _agentapi.add_socket_flag(parser)
    parser.set_defaults(run=run, no_logging=True)   # prints data only; structlog not needed


def run(args: argparse.Namespace) -> int:
    from reconciler.api import thin
    from reconciler.cli import _agentapi, output

    path = _agentapi.socket_path(args)
    if path is None:
        return _offline(args, f"no agent holds {args.root}: it has no agent.json")
    try:        # the thin client: http.client would load email and ssl (#21, start-up budget)
        status, doc = thin.request(path, "GET", "/v1/status")
    except (OSError, ValueError) as e:
        return _offline(args, f"no agent answers on {path}: {getattr(e, 'strerror', None) or e}")
    if status >= 400:
        from reconciler.api import errors

        raise errors.from_status(status, str(doc.get("error")), doc.get("hint"))
    output.render(args, doc, lambda: _print(doc))
    bad = any(s["degraded"] for s in doc["sources"])
    return 1 if bad else 0


def _print(doc: dict[str, Any]) -> None:
    import time

    from reconciler.cli import output

    a = doc["agent"]
    print(f"agent pid {a['pid']} ({a['runtime']}), up {int(time.time() - a['started_at'])}s, root {a['root']}")
    for s in doc["sources"]:
        flags = [x for x in ("degraded" if s["degraded"] else "", "suspended" if s["suspended"] else "",
                             f"pinned {s['pinned'][:12]}" if s["pinned"] else "") if x]
        print(f"\nsource {s['name']} ({s['kind']} {s['origin']}, owner {s['owner']})"
              + (f" [{', '.join(flags)}]" if flags else ""))
        print(f"  revision {(s['revision'] or '-')[:12]}  result {s['last_result'] or '-'}  passes {s['passes']}")
        recorded = s.get("recorded_pass")
        if s["suspended"]:
            print("  suspended: no pass runs until it is resumed"
                  + (f"; its last pass: #{recorded['id']} {recorded['result']} at revision "
                     f"{recorded['revision'][:12]} ({_when(recorded['started_at'])} UTC, before this agent)"
                     if recorded else "; no pass recorded" if s.get("no_pass_yet") else ""))
        elif s.get("no_pass_yet"):
            print("  no pass yet (the first one runs): nothing of it is known to run as its manifests say"
                  + (f"; the last recorded: #{recorded['id']} {recorded['result']}" if recorded else ""))
        if s["error"]:
            print("  error: " + s["error"].replace("\n", "\n    "))
        for f in s["failures"]:
            print(f"  failed: {f}")
        for n, why in sorted((s.get("down") or {}).items()):
            print(f"  down now: container {n}: {why}")
        for d in s["drift"]:
            print(f"  drift (reported): {d}")
        for ref, why in sorted((s.get("unresolved") or {}).items()):
            print(f"  tag not looked up: {ref}: {why}")
        for i in s.get("images") or ():
            print(f"  image policy: {_image_line(i)}")
        for what, why in sorted((s.get("elsewhere") or {}).items()):
            print(f"  not for this host: {what}: {why}")
        rows = [o for o in s["objects"] if "name" in o]
        if rows:
            output.print_table([_row(o) for o in rows], _COLUMNS)
    _print_unmanaged(doc.get("unmanaged") or [])
    for f in doc["supervision"]["flapping"]:
        print(f"\nflapping: {f['container']} restarted {f['restarts']} times: left stopped; to try again: "
              f"reconcile start {f['container']}")


_COLUMNS = [("CONTAINER", "name"), ("ID", "id"), ("STATUS", "status"), ("HEALTH", "health"),
            ("RESTARTS", "restart_count"), ("FLAPPING", "flapping")]


def _row(o: dict[str, Any]) -> dict[str, Any]:
    return {**o, "health": o["health"] or "", "flapping": "yes" if o["flapping"] else ""}


def _print_unmanaged(objects: list[dict[str, Any]]) -> None:
    """The engine's containers no source of the agent manages (`reconcile run`'s, the Engine
    API's, an `apply` of another owner: its owner label), as the dashboard and `/v1/status`
    (`unmanaged`) list them: after the sources, in a table of their own with an OWNER column,
    as `kubectl get` lists every object, whoever made it. Not part of the verdict."""
    from reconciler.cli import output

    rows = [{**_row(o), "owner": o.get("owner") or "-"} for o in objects if "name" in o]
    errors = [o["error"] for o in objects if "error" in o]
    if not rows and not errors:
        return
    print("\nnot managed by a source:")
    for e in errors:
        print("  error: " + str(e).replace("\n", "\n    "))
    if rows:
        output.print_table(rows, [*_COLUMNS, ("OWNER", "owner")])


def _when(ts: float) -> str:
    import time

    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ts))


def _image_line(i: dict[str, Any]) -> str:
    """One update policy's state: `web: shop/web:1.4.1 -> 1.9.0 (apply)` and what stops it."""
    head = f"{i['container']}: {i['repository']}:{i['manifest_tag']}"
    if i["error"] and i["policy_tag"] is None:
        return f"{head}: tags not listed ({i['error']})"
    stale = ""
    if i["error"]:                      # the last good listing decides meanwhile: say how old it is
        import time

        listed = i.get("listed_at")
        when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(listed)) if listed else "?"
        stale = f"; tags not listed since {when} ({i['error']})"
    if i["policy_tag"] is None:
        return f"{head}: no tag allowed by the policy{stale}"
    if i["policy_tag"] == i["manifest_tag"]:
        return f"{head}: up to date ({i['mode']}){stale}"
    why = ", refused: its update failed" if i["refused"] else ""
    return f"{head} -> {i['policy_tag']} ({i['mode']}{why}){stale}"


def _offline(args: argparse.Namespace, why: str) -> int:
    """What the state DB says with no agent: each owner's last pass (degraded, and why, unless
    it converged) and the inventory. Exit 0 when every owner's last pass converged."""
    import sqlite3
    import sys
    from pathlib import Path

    from reconciler._sqlite import Database
    from reconciler.cli import output
    from reconciler.state import history

    db_path = Path(args.root) / "state.db"
    note = sys.stderr if output.wants_data(args) else sys.stdout
    print(f"no agent is running ({why.splitlines()[0]})", file=note)
    if not db_path.exists():
        print(f"no state under {args.root}", file=note)
        if output.wants_data(args):
            output.print_data({"agent": None, "owners": [], "inventory": []}, args.output)
        return 1
    db = Database(db_path)
    try:
        rows = [dict(r) for r in db.connect().execute(
            "SELECT owner, kind, name, revision FROM inv_objects ORDER BY owner, kind, name")]
    except sqlite3.OperationalError:        # an older or empty DB
        rows = []
    down = _down_now(args, db)
    owners = [_owner_state(p, down.get(p.owner, {})) for p in history.last_passes(db).values()]
    degraded = any(o["state"] != "ok" for o in owners)
    if output.wants_data(args):
        output.print_data({"agent": None, "owners": owners, "inventory": rows}, args.output)
        return 1 if degraded else 0
    for o in owners:
        last = o["last_pass"]
        print(f"owner {o['owner']}: {o['state']} (last pass #{last['id']} {last['result']} at "
              f"{last['time']} UTC, revision {last['revision'][:12]})")
        for reason in o["reasons"]:
            print("  " + reason.replace("\n", "\n    "))
    if rows:
        for r in rows:
            r["revision"] = str(r["revision"])[:12]
        output.print_table(rows, [("OWNER", "owner"), ("KIND", "kind"), ("NAME", "name"), ("REVISION", "revision")])
    return 1 if degraded else 0


def _down_now(args: argparse.Namespace, db: Any) -> dict[str, dict[str, str]]:
    """owner -> {container: why} for the containers its last pass applied (the inventory) that
    do not run as their spec says now: the native engine's records read as `ps` reads them
    (nothing created, no recovery), each object's container whatever the engine names it now
    (`planner.current`), judged by the pass's own rule (`passes.down`) with the restart policy,
    job, networks and aliases of the spec the inventory keeps; and the containers
    a start-first replacement of the owner left under `<name>.next` (`planner.leftovers`). Nothing
    for another engine's root."""
    import json
    import sqlite3

    from reconciler.cli import options

    if not options.engine_exists(args):
        return {}
    conn = db.connect()
    try:
        if conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'containers'").fetchone() is None:
            return {}                           # not the native engine's root (the fake's, Docker's)
        rows = conn.execute("SELECT owner, name, spec_json FROM inv_objects WHERE kind = 'Container'")
        applied = [(str(r[0]), str(r[1]), json.loads(r[2] or "{}")) for r in rows]
    except (sqlite3.OperationalError, ValueError):
        return {}
    if not applied:
        return {}
    from reconciler.cli import cmd_ps
    from reconciler.execution import observing, passes
    from reconciler.planning import planner

    store = cmd_ps.open_records(args)
    try:
        observed = observing.by_name(r.state() for r in store.records())
    finally:
        store.db.close()
    owners = sorted({owner for owner, _, _ in applied})
    current = {owner: planner.current(observed, owner) for owner in owners}
    out: dict[str, dict[str, str]] = {}
    for owner, name, spec in applied:
        if spec.get("drift") == "report":
            continue
        o = current[owner].get(name)        # its object's, whatever the engine names it now
        why = "not created" if o is None else passes.down(o, job=bool(spec.get("job")),
                                                          policy=str((spec.get("restart") or {}).get("name", "no")),
                                                          networks=[str(n) for n in spec.get("networks") or ()],
                                                          aliases=[str(a) for a in spec.get("aliases") or ()])
        if why:
            out.setdefault(owner, {})[name] = why
    for owner in owners:                    # a start-first replacement killed midway
        for tmp, name in planner.leftovers(observed, owner).items():
            out.setdefault(owner, {})[tmp] = planner.leftover_why(name)
    return out


def _owner_state(p: Any, down: dict[str, str] | None = None) -> dict[str, Any]:
    """An owner seen through its last recorded pass and what runs now: ok when the pass
    converged and every container it applied runs as its spec says (`down`: those that do not,
    and why), else degraded with the reasons (the error that ended the pass, the resources that
    failed, the containers down now)."""
    import time

    reasons = [f"error: {p.error}"] if p.error else []
    reasons += [f"failed: {c['resource']}: {c['detail']}" for c in p.changes
                if c.get("outcome") in ("failed", "rolled-back")]
    if p.result != "converged" and not reasons:
        reasons = [f"the pass ended {p.result}: see `reconcile history`"]
    reasons += [f"down now: container {n}: {why}" for n, why in sorted((down or {}).items())]
    ok = p.result == "converged" and not down
    return {"owner": p.owner, "state": "ok" if ok else "degraded", "reasons": reasons,
            "last_pass": {"id": p.id, "result": p.result, "revision": p.revision,
                          "time": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(p.started_at))}}
