"""`reconcile ps`: containers of the native engine, as `docker ps` shows them: served by the
agent that holds the state root when one runs (#21, the client–server split: no engine code is
loaded), else read from the root; the same rows either way (records.summary). With
`--runtime docker` or `fake`, the same rows of that engine's containers (`state_summary`); with
`--runtime swarm`, the services of a Swarm cluster and their tasks (node, state), through the
manager $DOCKER_HOST names. `-s` (and a `--format` that shows .Size, as docker's) measures the
containers printed, whoever makes the rows (listing.ps_measured; runtime/native/containers/sizes.py,
or the engine's `base.Sizing`).

Also home of the helpers the other container commands share (acting on each named container,
Docker's "Up 5 seconds (healthy)" status text, "2 minutes ago").
"""

from __future__ import annotations

from reconciler.cli import fastpath

# annotations only: what the read-only commands import at start-up stays small (#21)
TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable
    from typing import Any

__all__ = ["for_each_container", "format_of", "open_records", "register", "run", "run_swarm",
           "setup_logging_if_networked", "state_summary"]


# its flags, for its parser and the fast path alike (cli/fastpath.py)
SPEC = fastpath.Spec((
    (("-a", "--all"), "all", "show all containers (default: running only); swarm: every kept task, not only "
     "the ones Swarm wants running"),
    (("-q", "--quiet"), "quiet", "only print container (service) ids"),
    (("--no-trunc",), "no_trunc", "do not truncate ids and commands"),
    (("-s", "--size",), "size", "display total file sizes, as docker ps -s: the SIZE column, each container's "
     "writable layer and (virtual) that with its image's; -o json/yaml: size_rw and size_root_fs (a --format "
     "that shows {{.Size}} measures them without -s)"),
), defaults={"filter": []}, valued=(fastpath.FORMAT,))


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("ps", help="list containers (or a Swarm cluster's services and tasks)",
                                   description="List the native engine's containers; with --runtime swarm, "
                                   "the services of a Swarm cluster with their tasks (node, state, error).")
    SPEC.add_to(parser, "ps")
    parser.add_argument("-f", "--filter", action="append", default=SPEC.defaults["filter"],
                        metavar="FILTER", help="docker ps's filters (repeatable): label=KEY[=VALUE] (KEY=VALUE "
                        "for short), name and id (regular expressions), status (lists stopped ones without -a), "
                        "exited, health, network, volume, before, since; ancestor, publish and expose are the "
                        "Engine API's alone")
    parser.set_defaults(run=run, no_logging=True)   # prints data only; structlog not needed


def open_records(args: argparse.Namespace) -> Any:
    """The native container records of the root the options name, for commands that only read
    (ps, inspect, logs): no lifecycle, image store or network code loaded, nothing created."""
    from reconciler.cli import engines
    from reconciler.runtime import opening

    return opening.open_records(engines.place(args))


def setup_logging_if_networked(args: argparse.Namespace, rt: Any, names: list[str]) -> None:
    """Commands that skip logging set-up (it costs 0.1 s+) still get it when they will touch
    bridge networking, whose code logs."""
    from reconciler.logs import configure_logging
    from reconciler.runtime import errors

    for name in names:
        try:
            if rt.containers.get(name).netns_path:
                configure_logging(level=args.log_level, json=args.log_json)
                return
        except errors.RuntimeBackendError:
            continue


# docker ps's filters the CLI applies to the rows it prints (api/dockerfilters.py's rules, the
# Engine API's); those that need what a row lacks (an image's lineage, the ports' numbers) are
# refused here, never read as a label
ROW_FILTERS = ("id", "name", "status", "exited", "health", "network", "volume", "before", "since")
DOCKER_ONLY = ("ancestor", "publish", "expose", "is-task", "isolation")


def _selector(args: argparse.Namespace) -> dict[str, str]:
    """The `label=KEY=VALUE` filters (and the shorthand `KEY=VALUE`), which the engine selects
    by; docker's other filters are `_docker_filters`'."""
    from reconciler.runtime import errors

    selector: dict[str, str] = {}
    for item in args.filter:
        kind, sep, rest = item.partition("=")
        if kind in ROW_FILTERS or (kind == "label" and sep and "=" not in rest):
            continue
        if kind in DOCKER_ONLY:
            raise errors.InvalidArgument(f"ps --filter {kind} is not served by the CLI",
                                         hint=f"ask the Engine API, which serves it: `docker -H unix://SOCKET ps "
                                              f"-f {item}` (`reconcile engine-api`)")
        key, sep, value = item.removeprefix("label=").partition("=")
        if not sep:
            raise errors.InvalidArgument(f"filter {item!r} is not label=KEY[=VALUE] nor one of docker ps's "
                                         f"({', '.join(ROW_FILTERS)})")
        selector[key] = value
    return selector


def _docker_filters(args: argparse.Namespace) -> dict[str, list[str]]:
    """docker ps's filters other than `label=KEY=VALUE` (`name=`, `status=`, `label=KEY`, ...)."""
    out: dict[str, list[str]] = {}
    for item in args.filter:
        kind, sep, rest = item.partition("=")
        if sep and (kind in ROW_FILTERS or (kind == "label" and "=" not in rest)):
            out.setdefault(kind, []).append(rest)
    return out


def _filtered(rows: list[dict[str, Any]], fl: dict[str, list[str]], options: dict[str, Any]) -> list[dict[str, Any]]:
    """The rows docker ps's filters `fl` select, by the Engine API's rules (dockerfilters.
    containers over each row's view); a `status` filter lists stopped ones too, as dockerd's."""
    from reconciler.api import dockerfilters

    views = {}
    for r in rows:
        started = str(r.get("started_at") or "")
        nets = {n: n for n in r.get("networks") or ()}
        if "default" in nets:
            nets["bridge"] = "default"          # Docker's name of the default network
        views[r["id"]] = dockerfilters.ContainerView(
            id=r["id"], name=r["name"], state=r["status"], created_ns=dockerfilters.rfc3339_ns(r["created"]) or 0,
            labels=r.get("labels") or {}, image_id="", exit_code=r.get("exit_code"),
            started=bool(started) and not started.startswith("0001-"), health=r.get("health") or "none",
            networks=nets, mounts=tuple((m.get("source", ""), m.get("target", "")) for m in r.get("mounts") or ()),
            ports=())
    chosen = {v.id for v in dockerfilters.containers(views.values(), fl, all_=bool(options["all"]), limit=0,
                                                     ancestors=lambda _: set())}
    if "status" in fl:
        options["all"] = True
    return [r for r in rows if r["id"] in chosen]


SWARM_COLUMNS = (("SERVICE", "service"), ("REPLICAS", "replicas"), ("IMAGE", "image"), ("TASK", "task"),
                 ("NODE", "node"), ("DESIRED", "desired"), ("STATE", "state"), ("ERROR", "error"))


def _short_image(image: str, no_trunc: bool) -> str:
    if ", " in image:               # the images of a service's copies mid-update
        return ", ".join(_short_image(i, no_trunc) for i in image.split(", "))
    name, at, digest = image.partition("@")
    if no_trunc or not at:
        return image
    return f"{name}@{digest[:19]}"


def run_swarm(args: argparse.Namespace) -> int:
    """Services and their tasks: one row per task, the service's columns on its first row."""
    from reconciler import listing
    from reconciler.cli import engines, output

    rt = engines.open_runtime(args, "ps")       # a SwarmRuntime: its tasks too
    try:
        selector = _selector(args) or None
        states = {s.name: s for s in rt.list_containers(selector)}
        tasks = rt.tasks(selector, all_tasks=args.all)
    finally:
        rt.close()
    if args.quiet:
        for name in sorted(states):
            print(states[name].id if args.no_trunc else states[name].id[:12])
        return 0
    if output.wants_data(args):
        output.print_data([
            {"id": st.id, "name": name, "image": st.image, "replicas": st.replicas,
             **({"job": True, "completed": st.replicas_running} if st.job else {"running": st.replicas_running}),
             "labels": dict(st.labels), "error": st.error, "tasks": [t.to_json() for t in tasks.get(name, [])]}
            for name, st in sorted(states.items())], args.output)
        return 0
    now = listing.utcnow()
    rows: list[dict[str, Any]] = []
    for name, st in sorted(states.items()):
        head = {"service": name, "image": _short_image(st.image, args.no_trunc),
                "replicas": f"{st.replicas_running}/{st.replicas}" + (" completed" if st.job else "")
                if st.replicas is not None else "global"}
        for i, t in enumerate(tasks.get(name) or [None]):
            row = dict(head) if i == 0 else {}
            if t is not None:
                row.update(task=t.name, node=t.node, desired=t.desired, error=t.error,
                           state=f"{t.state} {listing.ago(t.since, now)}".strip())
            rows.append(row)
    output.print_table(rows, SWARM_COLUMNS)
    return 0


def run(args: argparse.Namespace) -> int:
    """Print the containers: the agent that holds the root renders the text when one runs (the
    client then loads no json, re or datetime: #21), else it is rendered here, by the same code."""
    import sys

    from reconciler import listing
    from reconciler.cli import _agentapi, engines

    fmt = format_of(args)
    if args.runtime == "swarm":
        from reconciler.errors import TerminalError

        if fmt is not None:
            raise TerminalError("--format prints containers: `ps --runtime swarm` lists services and their tasks",
                                hint="use -o json (or yaml) for the services' data")
        if args.size:
            raise TerminalError("-s/--size measures containers: `ps --runtime swarm` lists services and their tasks",
                                hint="ask a node's engine: `reconcile ps -s --runtime docker` with DOCKER_HOST on it")
        return run_swarm(args)
    options = listing.options_of(listing.PS_FLAGS, args.output, vars(args))
    if fmt is not None:         # sizes measured when the template shows them, with -s or not, as docker's
        options["size"] = listing.ps_uses_size(fmt)
    selector = _selector(args) if args.filter else {}
    docker_fl = _docker_filters(args) if args.filter else {}
    native = engines.is_native(args)
    if fmt is not None or options["size"] or docker_fl:
        # the rows (the agent serves them as JSON; it renders no template), printed by the template
        # (or -s's table here) with sizes (size=1) of the rows printed only: all=1 says stopped ones
        # are. An agent older than `ps -s` serves them unmeasured: they are measured here instead,
        # never printed without the sizes asked for
        rows = _agentapi.served(args, "/v1/containers", labels=_labels(selector),
                                size="1" if options["size"] else None,
                                all="1" if options["size"] and options["all"] else None) if native else None
        if not isinstance(rows, list) or not _measured(rows, options):
            rows = _summaries(args, selector, native=native, options=options)
        if docker_fl:
            rows = _filtered(rows, docker_fl, options)
        sys.stdout.write(listing.ps_formatted(rows, options, fmt) if fmt is not None else
                         listing.ps_text(rows, options))
        return 0
    text = _agentapi.printed(args, "/v1/containers", options, labels=selector) if native else None
    if text is None:
        text = listing.ps_text(_summaries(args, selector, native=native, options=options), options)
    sys.stdout.write(text)
    return 0


def _measured(rows: list[Any], options: dict[str, Any]) -> bool:
    """Whether the rows an agent served carry the sizes `options` ask for (`size_rw` on each row
    printed, as listing.ps_measured picks them): an agent older than `ps -s` ignores size=1."""
    from reconciler import listing

    printed = listing.ps_measured(options)
    return printed is None or all(isinstance(r, dict) and "size_rw" in r for r in rows if printed(r))


def format_of(args: argparse.Namespace) -> str | None:
    """The --format asked for (output.format_of: refused with -o), None for none; with -q the
    ids are printed, as docker says it does."""
    if getattr(args, "format", None) is None:
        return None
    import sys

    from reconciler.cli import output

    fmt = output.format_of(args)
    if fmt is not None and args.quiet:
        print("WARNING: Ignoring custom format, because both --format and --quiet are set.", file=sys.stderr)
        return None
    return fmt


def _labels(selector: dict[str, str]) -> str | None:
    """The labels to match, as the agent's GET /v1/containers takes them (JSON)."""
    if not selector:
        return None
    import json

    return json.dumps(selector)


def _summaries(args: argparse.Namespace, selector: dict[str, str], *, native: bool,
               options: dict[str, Any]) -> list[dict[str, Any]]:
    """records.summary() of each container with the `selector` labels, newest first, read from
    the root (the native engine's records), or asked of the engine `--runtime` names; those
    printed with their sizes when the print `options` show them (listing.ps_measured)."""
    from reconciler import listing
    from reconciler.cli import engines
    from reconciler.cli import options as cli_options

    measure = listing.ps_measured(options)
    if not native:
        rt = engines.open_runtime(args, "ps")
        try:
            rows = sorted((state_summary(st) for st in rt.list_containers(selector or None)),
                          key=lambda s: s["created"], reverse=True)
            if measure is not None:
                _measure(rt, args.runtime, [r for r in rows if measure(r)])
        finally:
            rt.close()
        return rows
    if not cli_options.engine_exists(args):
        return []
    if not selector and args.run_dir and args.name_prefix:
        from reconciler.runtime import (
            parts,  # the state DB's rows alone, when they are what is (#21)
        )

        found = parts.container_summaries(args.root, args.run_dir, args.name_prefix, measure=measure)
        if found is not None:
            return found
    from reconciler.runtime import opening  # the engine's read side: only when no agent answered

    return opening.summaries(open_records(args), selector, measure=measure)


def summaries_of(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Every container's `ps` row of the native root `args` name (no agent asked): what another
    command reads of them (`volume ls -f dangling`: the volumes they mount)."""
    from reconciler import listing

    return _summaries(args, {}, native=True, options=listing.options_of(listing.PS_FLAGS, "json", {"all": True}))


def _measure(rt: Any, runtime: str, rows: list[dict[str, Any]]) -> None:
    """`ps -s` on another engine: these rows' sizes, as that engine measures them (base.Sizing:
    dockerd's list with size=1)."""
    from reconciler.runtime import base

    if not isinstance(rt, base.Sizing):
        from reconciler.errors import TerminalError

        raise TerminalError(f"the {runtime} engine does not measure its containers: -s/--size, or a --format "
                            "showing {{.Size}}, cannot be printed there", hint="leave -s (and .Size) out")
    sizes = rt.container_sizes([r["id"] for r in rows])
    for r in rows:
        r["size_rw"], r["size_root_fs"] = sizes.get(r["id"], (0, 0))


def state_summary(st: Any) -> dict[str, Any]:
    """records.summary's fields for a ContainerState of any engine: the rows `ps` shows are the
    same whatever `--runtime` (the protocol has no command line: its column is empty)."""
    return {
        "id": st.id, "image": st.image, "command": "", "created": st.created,
        "status": "paused" if st.paused else str(st.status), "exit_code": st.exit_code, "health": st.health,
        "ports": ", ".join(f"{p.host_ip}:{p.host_port}->{p.container_port}/{p.protocol}" for p in st.ports),
        "name": st.name, "labels": dict(st.labels), "restart_count": st.restart_count,
        "started_at": st.started_at, "finished_at": st.finished_at,
        "health_stale": st.health_stale, "health_probed_at": st.health_probed_at,
        "mounts": [], "networks": list(st.networks or st.ip_addresses),     # (the protocol has no mounts)
    }


def for_each_container(args: argparse.Namespace, command: str, act: Callable[[Any, str], object], *,
                       read_only: bool = False) -> int:
    """Open the engine `--runtime` names once and apply `act(runtime, name)` to each of
    `args.containers`, printing for each that succeeded what it returns if that is a str (`wait`:
    the exit code), else the name, as docker's start and stop print it (the engine calls return
    records, ids or None); one that failed is said on stderr,
    the others go on, and the exit code is 1, like docker's. `read_only`: a command that only
    reads (`wait`) on a native state root without an engine finds no container and makes none."""
    import sys

    from reconciler.cli import engines, options
    from reconciler.runtime import errors

    if read_only and engines.is_native(args) and not options.engine_exists(args):
        engines.check(args, command)
        for name in args.containers:
            print(f"error: No such container: {name}", file=sys.stderr)
        return 1
    rt = engines.open_runtime(args, command)
    rc = 0
    try:
        if engines.is_native(args) and not read_only:
            setup_logging_if_networked(args, rt, args.containers)
        for name in args.containers:
            try:
                said = act(rt, name)        # a str is what to print (wait's code); else the name
                print(said if isinstance(said, str) else name, flush=True)
            except errors.RuntimeBackendError as exc:
                print(f"error: {exc}", file=sys.stderr, flush=True)
                rc = 1
    finally:
        rt.close()
    return rc
