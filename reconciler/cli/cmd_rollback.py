"""`reconcile rollback [REVISION]`: re-apply an earlier converged revision.

Without an agent (hosts run by `reconcile apply` / `--once`): re-applies the copy of the
revision that apply kept under `<root>/revisions/` (default: the newest converged revision of
`--owner` other than the one applied now), through the same pass as apply, with its exit codes
(0 converged, 1 some actions failed, 2 unknown or unusable revision: nothing changed, the
available ones are listed; 143/130 stopped by SIGTERM/SIGINT, as apply). History records the pass with the cause "rollback to <id>". A pass
that converged a selection of services (`reconcile apply SOURCE web`) is rolled back to with the
same selection: those services alone. The next `reconcile apply SOURCE` follows the files again.

With a running agent on the root (its agent.json, $RECONCILER_SOCKET or --socket):
`reconcile rollback SOURCE [REVISION]` pins the agent's source to an earlier converged revision
(the agent keeps its own copies) until `reconcile rollback --resume SOURCE`.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    from reconciler.cli import _agentapi, cmd_apply, options, output

    parser = subparsers.add_parser(
        "rollback", help="re-apply an earlier converged revision",
        description="Re-apply an earlier converged revision (default: the one before the current). "
        "Without an agent: `rollback [REVISION]` re-applies the copy `apply` kept (exit 0 converged, "
        "1 failed, 2 unknown revision). With a running agent: `rollback SOURCE [REVISION]` pins the "
        "agent's source; --resume SOURCE unpins.",
    )
    cmd_apply.add_common_flags(parser, "rollback", source=False)
    cmd_apply.add_host_label_flag(parser)
    _agentapi.add_socket_flag(parser)
    options.add_decryption_flag(parser)
    parser.add_argument("first", metavar="[SOURCE] REVISION", nargs="?",
                        help="a revision id (prefix); with an agent, the source's name in its config first")
    parser.add_argument("second", metavar="REVISION", nargs="?", help=argparse.SUPPRESS)
    parser.add_argument("--resume", action="store_true", help="agent: end the pin, follow the source again")
    cmd_apply.add_parallel_flag(parser)
    cmd_apply.add_settle_flag(parser)
    cmd_apply.add_timeout_flag(parser)
    output.add_output_flag(parser)
    parser.set_defaults(run=run)


def _agent(args: argparse.Namespace) -> Any:
    """The API client of an agent running for this root, or None."""
    from reconciler.api import client as api_client
    from reconciler.cli import _agentapi

    path = _agentapi.socket_path(args)         # the one rule for which agent a root's commands ask
    if path is None:
        return None
    api = api_client.ApiClient(path)
    return api if (args.socket or api.available()) else None


def run(args: argparse.Namespace) -> int:
    api = _agent(args)
    if api is not None:
        return _run_agent(args, api)
    if args.resume:
        print("error: --resume unpins an agent's source, and no agent runs for this root "
              f"({args.root}); `reconcile apply SOURCE` follows the files again")
        return 2
    if args.second is not None:
        print(f"error: no agent runs for this root ({args.root}), so there is no SOURCE to name: "
              "`reconcile rollback [REVISION]`")
        return 2
    return _run_offline(args, args.first)


def _run_agent(args: argparse.Namespace, api: Any) -> int:
    from reconciler.cli import output

    source, revision = args.first, args.second
    if not source:
        print("error: an agent runs for this root: name its source: `reconcile rollback SOURCE [REVISION]`")
        return 2
    if args.resume:
        doc = api.post(f"/v1/sources/{source}", {"suspend": False})
        output.render(args, doc, lambda: print(f"{source}: following the source again"))
        return 0
    doc = api.post("/v1/rollback", {"source": source, "revision": revision}, timeout=330)
    output.render(args, doc, lambda: print(
        f"{source}: pinned to {doc['pinned'][:12]} (was {(doc['previous'] or '-')[:12]}): "
        f"{doc['status']['last_result']}\nhint: {doc['hint']}"))
    return 0 if doc["status"]["last_result"] in ("converged", "in-sync") else 1


def _run_offline(args: argparse.Namespace, wanted: str | None) -> int:
    import time

    from reconciler.cli import cmd_apply, output
    from reconciler.execution import executor, locking, passes, stopping
    from reconciler.spec import models
    from reconciler.state import history, revisions

    db = cmd_apply.open_db(args)
    past = history.HistoryStore(db, args.owner).list(limit=1000)
    from reconciler.cli.options import decryption_keys

    store = revisions.RevisionStore(args.root, decryption=decryption_keys(args),
                                   cluster=args.runtime == "swarm")
    current = past[0].revision if past else None
    converged: list[history.Pass] = []
    for p in past:
        if p.result == "converged" and all(p.revision != q.revision for q in converged):
            converged.append(p)
    usable = [(p, s) for p in converged if (s := store.get(p.revision)) is not None and s.rollback]

    def available() -> str:
        lines = [f"  {p.revision[:12]}  {time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(p.started_at))}"
                 f"  {p.source}{f' ({p.selection.words()})' if p.selection else ''}"
                 f"{'  (applied now)' if p.revision == current else ''}" for p, _ in usable]
        return "revisions that can be rolled back to (newest first):\n" + "\n".join(lines) if lines else \
            f"no revision of owner {args.owner!r} can be rolled back to (none kept under {store.dir})"

    def refuse(message: str) -> int:
        print(f"error: {message}", file=sys.stderr)
        print(available(), file=sys.stderr)
        return 2

    if wanted:
        matches = [p for p in converged if p.revision.startswith(wanted)]
        if not matches:
            return refuse(f"no converged revision {wanted!r} in the history of owner {args.owner!r}")
        if len(matches) > 1:
            return refuse(f"revision prefix {wanted!r} is ambiguous: "
                          + ", ".join(p.revision[:12] for p in matches))
        target = matches[0]
    else:
        older = [p for p in converged if p.revision != current]
        if not older:
            return refuse(f"no converged revision of owner {args.owner!r} older than the applied one "
                          f"({(current or 'none')[:12]})")
        target = older[0]
    snap = store.get(target.revision)
    if snap is None:
        return refuse(f"revision {target.revision[:12]} is not kept (pruned, or applied by an agent "
                      "or before revisions were kept): apply its files instead")
    if not snap.rollback:
        return refuse(f"revision {target.revision[:12]} cannot be re-applied: {snap.reason}")
    # the services the pass rolled back to converged, and no others (its selection: `apply SOURCE web`)
    chosen = target.selection and models.Selection(services=target.selection.services, deps=target.selection.deps)
    loaded = store.load(snap, select=chosen or None)   # SnapshotError (exit 2) if the copy was tampered with
    cause = f"rollback to {target.revision[:12]}"
    options = passes.PassOptions(owner=args.owner, max_workers=max(1, args.parallel), source=snap.source,
                                 cause=cause, settle=args.settle, rollout_timeout=args.timeout)
    with stopping.Stopper() as stop, locking.store_lock(args.root):
        desired = cmd_apply.host_part(args, loaded, converge=True)      # under the lock, as apply's
        print(f"{cause} (applied {time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(target.started_at))} UTC "
              f"from {snap.source}{f', {target.selection.words()}' if target.selection else ''}; was "
              f"{(current or '-')[:12]})",
              file=sys.stderr if output.wants_data(args) else sys.stdout)
        session = cmd_apply.open_runtime(args)
        with session as runtime:
            result = passes.run_pass(desired, runtime, db, options,   # converged: the newest to keep
                                     execute_options=executor.ExecuteOptions(max_workers=options.max_workers,
                                                                             stop=stop, on_start=session.supervise))
    if stopped := cmd_apply.stopped_code(result, stop, args.output):
        return stopped
    code: int = cmd_apply.print_result(result, args.output)
    if code == 0 and not output.wants_data(args):
        print("hint: the next `reconcile apply SOURCE` applies the files again; revert them in the "
              "source to stay on this revision")
    return code
