"""`reconcile apply SOURCE` (= `reconcile --once SOURCE`): one pass that converges the host.

Exit codes: 0 converged; 1 some actions failed (the host is left consistent: failures are
isolated, updates rolled back); 2 invalid input or usage (nothing was changed: the manifests
are loaded and validated in full before anything is observed or touched); 3 a file system the
engine writes (the state root) is full or over quota: the error names it, what was being
written and how much it needed; the pass is in `reconcile history` (or a `note:` under the
error says that it could not be recorded either); 143 (SIGTERM) or 130 (SIGINT) stopped by a
signal: the first finishes the actions in flight and leaves the rest for the next run (the pass
is `interrupted` in the history), a second one stops at once (execution/stopping.py).

Prints a summary table (one row per resource that changed or failed) and logs one canonical
`reconcile_pass` line. `--dry-run` prints the plan instead of executing it.

`reconcile apply SOURCE web worker` converges those services and what they depend on (not with
`--no-deps`), as `docker compose up -d web worker`: nothing else is made, changed or pruned, and
the verdict and exit code are about them (reconciler/spec/selection.py).

`--runtime native` is the embedded engine; `--runtime fake` is an in-memory engine whose
state is a JSON file under `--root`: it runs no process and exists for tests and for trying
the reconciler's decisions without touching the host. `--runtime swarm` converges the services
of a Docker Swarm cluster through a manager (docs/swarm.md) and waits for each rollout up to
`--timeout`: exit 1 when Swarm rolled an update back or a service did not converge in time.
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Any

from reconciler.cli import collector, fastpath, options

# annotations only: `--once` is parsed by the fast path, without argparse (#21)
TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse

__all__ = ["SPEC", "add_common_flags", "add_host_label_flag", "add_settle_flag", "add_timeout_flag", "host_part",
           "keep_revision", "open_db", "open_runtime", "print_result", "register", "run", "stopped_code"]

# A container started by a one-shot pass gets this long to show that it crashes at once before
# the pass reports (a pass that starts nothing does not wait); `--settle` changes it.
SETTLE = 1.0


def _duration(value: str) -> float:
    """A duration flag's value: `90s`, `1m30s`, `500ms`, or a number of seconds (`0`, `2.5`)."""
    from reconciler.spec import units

    parsed: str | float = value
    with contextlib.suppress(ValueError):
        parsed = float(value)
    try:
        return float(units.parse_duration(parsed))
    except ValueError as exc:
        import argparse

        raise argparse.ArgumentTypeError(str(exc)) from None

# Each option described once, for the parsers of the commands that take it (apply, diff,
# history, rollback) and for apply's fast path (SPEC): argparse's add_argument keywords.
SOURCE = ("source", "?", "SOURCE", "a manifest file, a directory (searched recursively), a directory holding a "
          "compose file (compose.yaml, docker-compose.yml, ...) or - for stdin; left out with -f")
OWNER = (("--owner",), "owner", {"default": "default", "help": "instance name written to the reconciler.owner "
                                 "label; only objects with this owner are ever changed (default: default)"})
TIMEOUT = (("--timeout",), "timeout", {
    "type": _duration, "default": 300.0, "metavar": "DURATION",
    "help": "--runtime swarm: how long each service's rollout may take before the pass fails naming it "
            "(default 5m; like 90s, 10m)"})
SETTLE_FLAG = (("--settle",), "settle", {
    "type": _duration, "default": SETTLE, "metavar": "DURATION",
    "help": "after starting containers, wait this long before reporting, so that one that exits at once is "
            "reported down (exit 1), not converged (default 1s; 0 reports as soon as they started, as "
            "`docker compose up -d` does)"})
PARALLEL = (("--parallel",), "parallel", {
    "type": int, "default": 4, "metavar": "N",
    "help": "actions run at once (default: 4); the stops of containers removed from the manifests take no "
            "turn (up to 64 at once, as compose's): a stop waits for the container's processes to end, up "
            "to its stopTimeout"})
HOST_LABEL = (("--host-label",), "host_label", {
    "action": "append", "default": [], "metavar": "KEY=VALUE",
    "help": "a label of this host (repeatable): only the containers whose spec.placement matches this "
            "host's labels are converged here (no placement: every host), so one repository serves many "
            "hosts; not with --runtime swarm (label the nodes instead)"})
HOST_FLAGS = (
    (("--all-hosts",), "all_hosts", "converge every container of the manifests here, whatever its spec.placement"),
    (("--relabel",), "relabel", "apply, rollback: these --host-labels (or none) are this host's from now on; "
     "without it a run whose labels differ from those the host last converged with is refused"),
)
KEEP_REVISIONS = (("--keep-revisions",), "keep_revisions", {
    "type": int, "default": 10, "metavar": "N",
    "help": "converged revisions of --owner kept for `reconcile rollback` (default: 10; the last converged "
            "one is always kept; other owners' are theirs to prune)"})

# what apply takes, for its parser and the fast path alike (cli/fastpath.py): `--once DIR` parses
# without argparse
SPEC = fastpath.Spec((
    *HOST_FLAGS,
    (("--allow-empty",), "allow_empty", "let a revision that declares nothing prune every object this owner created"),
    (("--adopt",), "adopt", "take over the objects the manifests declare that carry this owner's labels but are not "
     "in this state root's inventory (made from another state root, or from one whose state was lost), instead "
     "of refusing them"),
    (("--dry-run",), "dry_run", "print the plan; change nothing"),
    options.NO_DEPS,
), positional=SOURCE, more=options.SERVICES, logs=True, valued=(
    OWNER, HOST_LABEL, options.POLICY, options.DECRYPTION, TIMEOUT, PARALLEL, SETTLE_FLAG, KEEP_REVISIONS,
    *options.COMPOSE))


def _add(parser: argparse.ArgumentParser, option: tuple[tuple[str, ...], str, dict[str, Any]]) -> None:
    flags, dest, keywords = option
    parser.add_argument(*flags, dest=dest, **keywords)


def add_common_flags(parser: argparse.ArgumentParser, command: str, *, source: bool = True,
                     owner: tuple[tuple[str, ...], str, dict[str, Any]] = OWNER) -> None:
    """Flags shared by apply, diff, history and rollback: the source, the engine, the owner
    (`owner`: history's own, whose default is every owner)."""
    from reconciler.cli import engines

    if source:
        dest, nargs, metavar, help_text = SOURCE
        parser.add_argument(dest, nargs=nargs, metavar=metavar, help=help_text)
    options.add_engine_options(parser)
    engines.add_runtime_flag(parser, command)
    _add(parser, owner)


def add_timeout_flag(parser: argparse.ArgumentParser) -> None:
    """--timeout: how long a cluster's rollout of one service may take (apply, rollback)."""
    _add(parser, TIMEOUT)


def add_settle_flag(parser: argparse.ArgumentParser) -> None:
    """--settle: how long a pass that started containers waits before it says whether they run."""
    _add(parser, SETTLE_FLAG)


def add_parallel_flag(parser: argparse.ArgumentParser) -> None:
    """--parallel: the executor's workers (execution/executor.py; a pruned container's stop takes none)."""
    _add(parser, PARALLEL)


def add_host_label_flag(parser: argparse.ArgumentParser) -> None:
    """--host-label KEY=VALUE: this host's labels, which containers' spec.placement selects by."""
    _add(parser, HOST_LABEL)
    for flags, dest, help_text in HOST_FLAGS:
        parser.add_argument(*flags, dest=dest, action="store_true", help=help_text)


def host_part(args: argparse.Namespace, desired: Any, *, converge: bool = False) -> Any:
    """The part of `desired` this host converges (reconciler.spec.placement); SpecError when it
    cannot be told, TerminalError (exit 2) for a bad --host-label or one given to a Swarm (whose
    manager places services itself). With `converge` (apply, rollback), labels that differ from
    those the host last converged with are refused unless --relabel (reconciler.state.hostlabels),
    and they are recorded (not by --dry-run)."""
    from pathlib import Path

    from reconciler.errors import TerminalError
    from reconciler.spec import placement
    from reconciler.state import hostlabels

    if args.runtime == "swarm":
        if args.host_label or args.all_hosts:
            raise TerminalError("--host-label and --all-hosts are for a single host: a Swarm manager places "
                                "services by its nodes' labels",
                                hint="label the nodes: docker node update --label-add KEY=VALUE NODE")
        return desired
    if args.all_hosts:
        if args.host_label:
            raise TerminalError("--all-hosts converges every container whatever its placement: give it or "
                                "--host-label, not both")
        return desired
    try:
        labels = placement.parse_labels(args.host_label)
    except ValueError as exc:
        raise TerminalError(f"--host-label {exc}") from None
    if converge:
        hostlabels.check(Path(args.root), labels, relabel=args.relabel)
    part = placement.select(desired, labels)
    if converge and not getattr(args, "dry_run", False) and (labels or args.relabel):
        hostlabels.record(Path(args.root), labels)
    return part


def print_elsewhere(desired: Any, *, every: bool) -> None:
    """What the manifests place on other hosts: each object (`every`), or how many."""
    if not desired.elsewhere:
        return
    if every:
        for what, why in desired.elsewhere.items():
            print(f"note: {what} is not for this host: {why}")
    else:
        n = len(desired.elsewhere)
        print(f"note: {n} {'object is' if n == 1 else 'objects are'} placed on other hosts (`reconcile diff` names "
              f"{'it' if n == 1 else 'them'})")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "apply", help="converge the host to the manifests once (alias: --once SOURCE)",
        description="Load and validate the manifests, compare with the host, and converge it; with SERVICE "
        "names, only those and what they depend on, as docker compose up SERVICE... (nothing else is made, "
        "changed or removed). Exit 0 converged, 1 some actions failed, 2 invalid input (nothing changed), 3 a file "
        "system the engine writes is full (free space, then run again), 143/130 stopped by "
        "SIGTERM/SIGINT (the actions in flight finish; a second signal stops at once).",
    )
    SPEC.add_to(parser, "apply")
    parser.set_defaults(run=run)


def open_runtime(args: argparse.Namespace, *, supervise: bool = True) -> Any:
    """A session on the runtime chosen by --runtime (a context manager yielding the Runtime);
    its supervision loops start at its `supervise()`, which the executor calls before a pass's
    first action (`execute_options`)."""
    from reconciler.cli import engines
    from reconciler.execution import backends
    from reconciler.runtime import opening

    # diff (supervise=False) changes nothing, not even leftovers
    runtime = opening.open_runtime(args.runtime, engines.place(args), recover=supervise)
    return backends.session(runtime, supervise=supervise, lazy=True)


def known_valid(args: argparse.Namespace) -> Any:
    """The documents known to pass their schema (reconciler.spec.validity), kept under the
    state root (their `save()` writes nothing while the root does not exist)."""
    from reconciler.spec import validity

    return validity.KnownValid(os.path.join(args.root, validity.FILE))


def parse_cache(args: argparse.Namespace) -> Any:
    """The manifest files parsed in earlier runs (reconciler.spec.parsecache), kept under the
    state root like `known_valid`."""
    from reconciler.spec import parsecache

    return parsecache.ParseCache(os.path.join(args.root, parsecache.FILE))


def open_db(args: argparse.Namespace) -> Any:
    from pathlib import Path

    from reconciler._sqlite import Database

    return Database(Path(args.root) / "state.db")


def print_warnings(desired: Any) -> None:
    """What loaded but is not honoured (a compose key without effect here, an unset variable)."""
    for warning in desired.warnings:
        print(f"warning: {warning}", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    with collector.paused():        # until the pass's first action (collector.py): a no-op runs none
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    import contextlib
    import time

    from reconciler import spec
    from reconciler._dataclass import replace
    from reconciler.cli import options as options_mod
    from reconciler.cli import output
    from reconciler.cli.options import decryption_keys
    from reconciler.execution import executor, locking, passes, stopping
    from reconciler.spec import policy

    source, compose = options_mod.compose_source(args)     # TerminalError → exit 2
    known, parsed = known_valid(args), parse_cache(args)
    chosen = policy.load_policy(args.policy)
    loaded = spec.load(source, policy=chosen, compose=compose,
                       decryption=decryption_keys(args), cluster=args.runtime == "swarm",
                       engine=args.runtime,     # SpecError/PolicyError → exit 2, before anything is touched
                       known_valid=known, parsed=parsed, select=options_mod.selection(args))
    print_warnings(loaded)
    options = passes.PassOptions(owner=args.owner, allow_empty=args.allow_empty, dry_run=args.dry_run,
                                 max_workers=max(1, args.parallel), source=os.path.abspath(source)
                                 if source != "-" else "-", settle=args.settle, rollout_timeout=args.timeout,
                                 policy=chosen, adopt=args.adopt)
    started, db = time.time(), open_db(args)
    with stopping.Stopper() as stop, locking.store_lock(args.root), contextlib.ExitStack() as stack:
        desired = host_part(args, loaded, converge=True)   # under the lock: the labels checked are
        #                                 the ones this pass converges with, and a refused run records none
        with passes.failure_recorded(desired, db, options, started_at=started):    # the engine may not open
            session = open_runtime(args, supervise=not args.dry_run)
            runtime = stack.enter_context(session)                                      # (a full disk)
        options = replace(options, engine_started=tuple(session.booted))  # settled as the pass's own starts

        def started_work() -> None:         # before the first action: a no-op runs neither
            collector.resume()
            session.supervise()
        result = passes.run_pass(desired, runtime, db, options,
                                 execute_options=executor.ExecuteOptions(max_workers=options.max_workers, stop=stop,
                                                                         on_start=started_work))
        if result.changeset is not None and result.converged:
            keep_revision(args, loaded.whole or loaded, options.source, keep=args.keep_revisions)   # all of
            #       it: a rollback takes this host's part (and the pass's selection: its history) again
    db.close()                              # its WAL checkpointed, as at exit
    known.save()                            # the state root exists now, also on a first run
    parsed.save()
    args.end_at_once = True                 # nothing left open: main() ends without the teardown
    if stopped := stopped_code(result, stop, args.output):
        return stopped
    if not output.wants_data(args):
        print_elsewhere(desired, every=False)
    return print_result(result, args.output)


def stopped_code(result: Any, stop: Any, fmt: str = "table") -> int:
    """For a pass a signal cut short: its summary, and 128 + the signal as the exit code; else 0."""
    if stop.exit_code is None or not result.interrupted:
        return 0
    print_result(result, fmt)
    print("note: stopped by a signal: the actions in flight finished, the rest were not started; "
          "run the command again to finish", file=sys.stderr)
    code: int = stop.exit_code
    return code


def keep_revision(args: argparse.Namespace, desired: Any, source: str, *, keep: int) -> None:
    """Keep a copy of a converged revision for `reconcile rollback`, prune old ones; a failure
    to keep one is a warning (the pass itself went fine)."""
    from reconciler.cli.options import decryption_keys
    from reconciler.state import history, revisions

    store = revisions.RevisionStore(args.root, decryption=decryption_keys(args),
                                   cluster=args.runtime == "swarm")
    try:
        new = store.get(desired.revision) is None
        snap = store.save(desired, source)
        store.prune(keep, args.owner, history.converged_revisions(open_db(args)), protect={desired.revision})
    except OSError as e:
        print(f"warning: could not keep revision {desired.revision[:12]} for rollback: {e}", file=sys.stderr)
        return
    if new and not snap.rollback:
        print(f"note: revision {desired.revision[:12]} cannot be rolled back to later: {snap.reason}",
              file=sys.stderr if args.output != "table" else sys.stdout)


EXIT_DISK_FULL = 3        # errors.DiskFull.exit_code: an action failed because a file system is full


def print_result(result: Any, fmt: str = "table") -> int:
    """The summary of a pass (apply, rollback) as a table, or as JSON/YAML (`-o json|yaml`); its exit code."""
    from reconciler.cli import output

    code = 0 if result.changeset is None or result.converged else \
        EXIT_DISK_FULL if result.changeset.disk_full() else 1
    if fmt != "table":
        output.print_data(result.to_json(), fmt)
        return code
    if result.changeset is None:              # dry run
        print(result.plan.render() or "nothing to do")
        return 0
    rows = [
        {"resource": c.resource, "outcome": str(c.outcome), "detail": c.detail,
         "actions": ",".join(f"{r.action.kind}" for r in c.results)}
        for c in result.changeset.changes
    ]
    if rows:
        output.print_table(rows, [("RESOURCE", "resource"), ("OUTCOME", "outcome"),
                                  ("ACTIONS", "actions"), ("DETAIL", "detail")])
    for note in result.plan.notes:
        print(f"note: {note}")
    for ref, err in sorted(result.resolve_errors.items()):
        print(f"warning: could not resolve {ref}: {err}", file=sys.stderr)
    from reconciler.spec.ids import ResourceId

    in_table = {c.resource for c in result.changeset.failed()}
    for name, why in sorted(result.unready.items()):
        if str(ResourceId.container(name)) not in in_table:       # its failed or skipped action says why already
            print(f"error: container {name} is not running as desired: {why}", file=sys.stderr)
    for r in result.changeset.results:    # what to do about a failure, when its error said (a full disk: below)
        if r.hint and not r.ok and not r.disk_full:
            print(f"hint: {r.action.resource}: {r.hint}", file=sys.stderr)
    if result.error:                      # the engine went away: what runs was not judged
        print(f"error: {result.error}", file=sys.stderr)
    full = result.changeset.disk_full()
    for r in full[:1]:                    # a full file system fails whatever writes to it: say it once
        print(f"error: {r.action.resource}: {r.error}", file=sys.stderr)
        if r.hint:
            print(f"  hint: {r.hint}", file=sys.stderr)
    counts = ", ".join(f"{v} {k}" for k, v in result.changeset.counts().items()) or "nothing to do"
    part = f" ({result.selection.words()})" if result.selection is not None else ""
    print(f"{result.result}: revision {result.revision[:12]}{part}: {counts} ({result.duration:.2f}s)")
    if full:
        return EXIT_DISK_FULL
    return code
