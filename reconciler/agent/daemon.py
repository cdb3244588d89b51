"""The agent: sources → controller loop → passes, supervision, the API; one process.

Per source (its own owner name, so sources never prune each other's objects) the loop's
`reconcile(key)`:

1. takes the revision: the pinned one after a rollback, else `source.fetch()` (an unreachable
   remote raises SourceUnavailable: reported, retried with backoff, nothing changes);
2. loads it (`spec.load`); a revision that does not load is reported with every problem as
   `file:line` of the user's file (status, event, log line, metric) and is never applied: the
   last good revision stays applied and keeps being drift-checked. Relative bind sources resolve
   in the source's live directory (`source.place(revision)` first), never in the revision copy;
   it moves only under the pass lock, so a running pass never sees it change;
3. runs one pass (`passes.run_pass`) under the agent's single writer lock, telling the planner
   the revision applied last (in a pass over the same one, the corrections of containers marked
   `drift: report` are reported, not made) and the containers over the flap limit (not
   started again);
4. records the result (status, event, metrics) and asks to be called again after
   `drift_interval` (the periodic drift check).

The agent holds the store lock of its root for its whole life (a `reconcile apply` on the same
root is refused and pointed at the agent), writes `<root>/agent.json` (pid, socket) for the
CLI, and leaves containers running when it stops.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reconciler import __version__, logs, spec
from reconciler._dataclass import dataclass, dataclasses
from reconciler._private import private_umask
from reconciler._sqlite import Database
from reconciler.agent import config as cfgmod
from reconciler.agent import heap, notify, recall, supervise
from reconciler.agent import metrics as metrics_mod
from reconciler.agent import updates as updates_mod
from reconciler.api import errors as apierr
from reconciler.api import events as events_mod
from reconciler.api import server as api_server
from reconciler.controller import loop as loop_mod
from reconciler.errors import ReconcilerError, TerminalError
from reconciler.execution import executor, locking, observing, passes, stopping
from reconciler.planning import actions
from reconciler.runtime import base, opening
from reconciler.sources import base as srcbase
from reconciler.sources import errors as srcerr
from reconciler.spec import sopskeys, validity
from reconciler.spec.ids import ResourceId
from reconciler.state import history as hist
from reconciler.state import labels as labelmod
from reconciler.state import sourcestate

if TYPE_CHECKING:
    from reconciler.runtime.native.backend import NativeRuntime

__all__ = ["AGENT_FILE", "Agent", "lean_process", "run_agent"]

AGENT_FILE = "agent.json"
KEEP_GOOD = 5                       # converged revisions kept for rollback, per source


@dataclass
class _Source:
    """A source's live state (guarded by Agent._lock)."""

    cfg: cfgmod.SourceConfig
    source: srcbase.Source
    watch: srcbase.Closeable | None = None
    applied: srcbase.Revision | None = None          # last revision a pass ran with
    desired: spec.DesiredState | None = None         # its loaded manifests
    good: list[srcbase.Revision] = dataclasses.field(default_factory=list)   # converged, newest first
    fetched: str | None = None                       # newest revision id fetched
    fetch_error: str | None = None
    invalid: tuple[str, list[str]] | None = None     # (revision id, problems) of a refused revision
    pinned: srcbase.Revision | None = None           # rollback: applied instead of the newest
    lost_pin: str | None = None                      # a pin remembered whose revision is no longer kept
    last_result: str | None = None                   # of this agent's last pass (None: none yet)
    last_pass_at: float | None = None
    last_failures: list[str] = dataclasses.field(default_factory=list)
    # the owner's last pass the state DB recorded before this agent ran one (a previous agent's,
    # or `apply`'s): what status shows of a source until a pass of its own, a suspended one's
    recorded: hist.Pass | None = None
    drift: list[str] = dataclasses.field(default_factory=list)   # reported, not corrected
    updates: updates_mod.Follower = dataclasses.field(default_factory=updates_mod.Follower)  # image policies
    notes: list[str] = dataclasses.field(default_factory=list)
    unresolved: dict[str, str] = dataclasses.field(default_factory=dict)   # tags the last pass could not look up


class Agent:
    """The assembled daemon; `start()` returns once it serves, `stop()` leaves containers running."""

    def __init__(self, config: cfgmod.AgentConfig) -> None:
        self.config = config
        self.events = events_mod.EventBus()
        self.prom = metrics_mod.Metrics()
        self.started_at = time.time()
        self._lock = threading.RLock()
        self._pass_lock = threading.Lock()
        self._sources: dict[str, _Source] = {}
        self._stack = contextlib.ExitStack()
        self._log = logs.get_logger("reconciler.agent")
        self.loop = loop_mod.ControllerLoop(self._reconcile, workers=1, name="agent")
        self.db: Database | None = None
        self._memory: sourcestate.SourceMemory | None = None   # pins, suspends, kept revisions (state DB)
        self._runtime: base.Runtime | None = None    # native: one engine for the agent's life
        self.supervisor: supervise.Supervisor | None = None
        # what the agent serves (its API, metrics, dashboard, the Engine API): closed in reverse
        self._serving: list[Callable[[], None]] = []
        self._webhooks: Any = None
        self.notifier = notify.Notifier(config.notify, self.events)
        self._deliveries: Any = None                 # webhook.DeliveryIds, kept across reloads
        self._tags: updates_mod.TagCache | None = None   # image update policies' tag listings, made on first use
        self._lister: updates_mod.RegistryLister | None = None
        # registries that did not answer a pass's tag lookup: not asked again until their back-off ends
        self.registry_backoff = observing.RegistryBackoff()
        # the containers the last heal left cut off from a network (name -> why): down in status
        self._cut_off: dict[str, str] = {}

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> Agent:
        cfg = self.config
        try:
            self._stack.enter_context(locking.store_lock(cfg.root))
            hist.configure(keep=cfg.history_keep, max_age=cfg.history_max_age)
            # what the agent told and left stopped for flapping, from before this process (recall.py)
            memory = recall.Memory(cfg.root)
            if cfg.runtime == "native":
                self._runtime = opening.open_runtime(cfg.runtime, self._place())
                if cfg.supervise and isinstance(self._runtime, base.Supervised):
                    self.supervisor = supervise.Supervisor(
                        self._runtime, publish=self.events.publish, flap_limit=cfg.flap_limit,
                        flap_window=cfg.flap_window,
                        on_restart=lambda name: self.prom.restarts.inc(),
                        on_flap=lambda name: self.prom.flapping.set(len(self._flapping_names())),
                        source_of=self._source_of, memory=memory,
                    ).start()
            self.db = self._engine_db() or Database(cfg.root / "state.db")
            self._memory = sourcestate.SourceMemory(self.db)
            # told before this process: not told again while it lasts (a crash loop's, only while
            # its container is still left stopped: the flapping known, those ended meanwhile dropped)
            self.notifier.dedupe.restore(memory.get("notified"), sources={s.name for s in cfg.sources},
                                         flapping=self._flapping_names())
            self.notifier.dedupe.memory = memory
            self.notifier.start()            # before the first pass: its result is news too
            self.loop.start()
            for sc in cfg.sources:
                self._add_source(sc, "agent started")
            self._start_webhooks()
            if cfg.metrics_listen is not None:
                self._serving.append(api_server.MetricsServer(self, *cfg.metrics_listen).start().close)
            if cfg.engine_api is not None and self._runtime is not None:
                from reconciler.api.engine import EngineApi

                engine_api = EngineApi(self._runtime, cfg.engine_api[0], group=cfg.engine_api[1])
                engine_api.start()
                self._serving.append(engine_api.stop)
            if cfg.dashboard is not None:
                host, port, token = cfg.dashboard
                self._serving.append(api_server.DashboardServer(self, host, port, token).start().close)
            # the agent's own API last: a client that reaches it finds every source and endpoint up
            self._serving.append(api_server.ApiServer(self, cfg.socket).start().close)
            self._write_agent_file()
        except BaseException:
            self.stop()
            raise
        self.events.publish("agent_started", pid=os.getpid(), sources=[s.name for s in cfg.sources])
        self._log.info("agent_started", pid=os.getpid(), socket=str(cfg.socket), runtime=cfg.runtime,
                       sources=[s.name for s in cfg.sources])
        return self

    def _engine_db(self) -> Database | None:
        """The native engine's state DB object, the agent's own file too: shared, a thread that
        uses both (a pass's) holds one connection, not two (#21, memory at rest)."""
        from reconciler.runtime.native.backend import NativeRuntime

        return self._runtime.config.db() if isinstance(self._runtime, NativeRuntime) else None

    def release_thread(self) -> None:
        """Close the calling thread's state DB connections (the agent's and the native engine's):
        for a thread that waits from here, as run_agent's waits for signals; its next use opens
        them again. A connection keeps its page and statement caches (#21, memory at rest)."""
        if self.db is not None:             # the native engine's too (_engine_db)
            self.db.close()

    def stop(self) -> None:
        """Stop watching, end the pass in flight at its next safe point (the executor finishes the
        actions in flight and starts nothing new), stop serving; containers keep running."""
        with self._lock:
            sources = list(self._sources.values())
        for s in sources:
            if s.watch is not None:
                s.watch.close()
                s.watch = None
        if self._webhooks is not None:
            self._webhooks.close()
            self._webhooks = None
        self.loop.stop()
        if self.supervisor is not None:
            self.supervisor.stop()
        self.events.publish("agent_stopped", pid=os.getpid())
        self.notifier.stop()
        self.events.close()
        while self._serving:
            self._serving.pop()()
        if self._runtime is not None:
            self._runtime.close()
            self._runtime = None
        if self._lister is not None:
            self._lister.close()
        with contextlib.suppress(OSError):
            af = self.config.root / AGENT_FILE
            if json.loads(af.read_text()).get("pid") == os.getpid():
                af.unlink()
        self._stack.close()
        self._log.info("agent_stopped")

    def _write_agent_file(self) -> None:
        path = self.config.root / AGENT_FILE
        tmp = path.with_suffix(".tmp")
        # the runtime: the CLI asks an agent only about the engine it talks to (cli/_agentapi.py),
        # and a container command on another engine's root talks to that engine, at the address
        # the agent uses (`engine`: its DOCKER_HOST, "" the default socket; cli/engines.py follow_agent)
        doc: dict[str, Any] = {"pid": os.getpid(), "socket": str(self.config.socket), "runtime": self.config.runtime}
        if self.config.runtime in ("docker", "swarm"):
            doc["engine"] = os.environ.get("DOCKER_HOST", "")
        tmp.write_text(json.dumps(doc))
        os.replace(tmp, path)

    def reload(self, new: cfgmod.AgentConfig) -> None:
        """Apply a re-read config: sources added, removed or changed; the rest needs a restart."""
        old = self.config
        fixed = ("root", "run_dir", "runtime", "socket", "name_prefix", "metrics_listen", "labels")
        ignored = [f for f in fixed if getattr(old, f) != getattr(new, f)]
        if ignored:
            self._log.warning("config_reload_partial", needs_restart=ignored)
        self.config = dataclasses.replace(new, **{f: getattr(old, f) for f in fixed})
        hist.configure(keep=new.history_keep, max_age=new.history_max_age)
        if new.notify != old.notify:            # a target added is told from now on, one removed no more
            self.notifier.retarget(new.notify)
        if self._tags is not None:
            self._tags.interval = new.image_update_interval
        wanted = {s.name: s for s in new.sources}
        with self._lock:
            current = dict(self._sources)
        for name, s in current.items():
            if name not in wanted or wanted[name] != s.cfg:
                self._remove_source(name)
        for name, sc in wanted.items():
            if name not in current or current[name].cfg != sc:
                self._add_source(sc)
            elif (held := sc.suspend or self._remembered(name).suspended) != self.loop.queue.is_suspended(name):
                self.set_suspended(name, held, by_config=True)      # a suspend through the API stays
        if old.decryption != new.decryption:        # a revision refused for want of a key loads now
            with self._lock:
                for src in self._sources.values():
                    src.invalid = None
        if self._webhooks is not None:
            self._webhooks.close()
            self._webhooks = None
        self._start_webhooks()
        for name in wanted:
            self.loop.trigger(name, "config reloaded")
        self.events.publish("config_reloaded", sources=sorted(wanted), needs_restart=ignored)
        self._log.info("config_reloaded", sources=sorted(wanted), needs_restart=ignored)

    # -- sources ------------------------------------------------------------------------------

    def _make_source(self, sc: cfgmod.SourceConfig) -> srcbase.Source:
        cache = self.config.root / "sources" / sc.name
        if sc.git is not None:
            from reconciler.sources import git

            g = sc.git
            kw: dict[str, Any] = {}
            if sc.interval is not None:
                kw["poll_interval"] = sc.interval
            return git.GitSource(g.url, cache_dir=cache, branch=g.branch, tag=g.tag, commit=g.commit, path=g.path,
                                 shallow=g.shallow, ssh_key_file=g.ssh_key_file, known_hosts_file=g.known_hosts_file,
                                 token_file=g.token_file, token_username=g.token_username, **kw)
        from reconciler.sources import directory

        assert sc.directory is not None
        dkw: dict[str, Any] = {"debounce": sc.debounce}
        if sc.interval is not None:
            dkw["resync_interval"] = sc.interval
        return directory.DirectorySource(sc.directory, cache_dir=cache, **dkw)

    def _remembered(self, name: str) -> sourcestate.Remembered:
        assert self._memory is not None
        return self._memory.load(name)

    def _add_source(self, sc: cfgmod.SourceConfig, reason: str = "source added") -> None:
        src = _Source(cfg=sc, source=self._make_source(sc))
        held = self._restore(sc.name, src)
        with self._lock:
            self._sources[sc.name] = src
        suspended = sc.suspend or held
        self.prom.source_suspended.labels(sc.name).set(1 if suspended else 0)
        if suspended:
            self.loop.queue.suspend(sc.name)
        else:
            self.loop.queue.resume(sc.name)
        try:
            src.watch = src.source.watch(self.loop.waker(sc.name))
        except ReconcilerError as e:
            src.fetch_error = str(e)
            self._log.error("source_watch_failed", source=sc.name, error=str(e))
        self.loop.trigger(sc.name, reason)

    def _restore(self, name: str, src: _Source) -> bool:
        """What the state DB remembers of the source from before this process: the converged
        revisions kept for rollback (those whose content can still be had), a rollback's pin
        and a suspend through the API (said in the log and as events: the operator's, kept until
        resume). Returns whether the API suspended it."""
        mem = self._remembered(name)
        assert self.db is not None
        recorded = hist.HistoryStore(self.db, src.cfg.owner).list(limit=1)
        src.recorded = recorded[0] if recorded and recorded[0].result != hist.RUNNING else None
        good = [r for r in (src.source.revision(g) for g in mem.good[:KEEP_GOOD]) if r is not None]
        src.good = good
        if mem.pinned:
            src.pinned = next((g for g in good if g.id == mem.pinned), None) or src.source.revision(mem.pinned)
            if src.pinned is None:
                src.lost_pin = mem.pinned
                self._log.error("source_pin_lost", source=name, revision=mem.pinned[:12],
                                note="the pinned revision's content is no longer kept: nothing is applied "
                                     "until `reconcile rollback NAME REVISION` or `--resume NAME`")
            else:
                self._log.warning("source_pinned", source=name, revision=mem.pinned[:12],
                                  note="pinned by a rollback before the restart; `reconcile rollback --resume "
                                       f"{name}` follows the source again")
            self.events.publish("source_pinned", source=name, revision=mem.pinned, restored=True,
                                available=src.pinned is not None)
        if mem.suspended:
            self._log.warning("source_suspended", source=name,
                              note=f"suspended through the API before the restart; POST /v1/sources/{name} "
                                   '{"suspend": false} resumes it')
            self.events.publish("source_suspended", source=name, restored=True)
        src.updates.recall(mem.announced)       # tags told of before: not again (once per tag)
        src.source.retain({*(g.id for g in good), *([src.pinned.id] if src.pinned else [])})
        return mem.suspended

    def _source_of(self, labels: Mapping[str, str]) -> str:
        """The source whose owner label a container carries ("" for none of the agent's)."""
        owner = labels.get(labelmod.OWNER)
        with self._lock:
            return next((n for n, s in sorted(self._sources.items()) if s.cfg.owner == owner), "")

    def _remove_source(self, name: str) -> None:
        with self._lock:
            src = self._sources.pop(name, None)
        if src is None:
            return
        if src.watch is not None:
            src.watch.close()
        self.prom.forget(name)
        self._log.info("source_removed", source=name, note="its objects are left as they are")

    def _start_webhooks(self) -> None:
        if self.config.webhook_listen is None:
            return
        from reconciler.sources import git, webhook

        hooks = []
        with self._lock:
            sources = list(self._sources.values())
        for s in sources:
            sc = s.cfg
            if sc.webhook_path is None or sc.webhook_secret_file is None:
                continue
            refs = None
            if isinstance(s.source, git.GitSource) and (sc.git and (sc.git.branch or sc.git.tag)):
                refs = [s.source.ref_name]
            hooks.append(webhook.Hook(path=sc.webhook_path, secret=webhook.read_secret(sc.webhook_secret_file),
                                      wake=self.loop.waker(sc.name), refs=refs))
        if hooks:
            host, port = self.config.webhook_listen
            cfg = self.config
            if self._deliveries is None:
                self._deliveries = webhook.DeliveryIds()
            self._webhooks = webhook.WebhookServer(
                hooks, host=host, port=port, max_body=cfg.webhook_max_body,
                max_connections=cfg.webhook_max_connections, request_timeout=cfg.webhook_request_timeout,
                deliveries=self._deliveries).start()

    def _get(self, name: str) -> _Source:
        with self._lock:
            src = self._sources.get(name)
        if src is None:
            raise apierr.NotFound(f"no source named {name!r}", hint="see `reconcile status` for the sources")
        return src

    # -- runtime ------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _runtime_session(self, *, write: bool = False) -> Any:
        """The native engine (kept open), or a fake re-read from its state file for this use;
        only a writing use (a pass, under the pass lock) saves the fake's file back."""
        if self._runtime is not None:
            yield self._runtime
            return
        rt = opening.open_runtime(self.config.runtime, self._place())
        try:
            yield rt
        finally:
            if write:
                rt.close()

    def _place(self) -> opening.Place:
        """Where the agent's engine keeps its state (the config's root, run dir, prefix)."""
        cfg = self.config
        return opening.Place(root=cfg.root, run_dir=cfg.run_dir, name_prefix=cfg.name_prefix,
                             oci_runtime=cfg.oci_runtime, pull_aside=True)

    def _flapping_names(self) -> set[str]:
        return {f.name for f in self.supervisor.flapping()} if self.supervisor is not None else set()

    # -- one pass -----------------------------------------------------------------------------

    def _revision(self, name: str, src: _Source) -> srcbase.Revision:
        if src.pinned is not None:
            return src.pinned
        if src.lost_pin is not None:            # never the newest instead: what the operator rolled back from
            raise TerminalError(
                f"{name} is pinned to {src.lost_pin[:12]} by a rollback, and that revision's content is no "
                "longer kept here: nothing is applied",
                hint=f"`reconcile rollback {name} REVISION` to a kept revision, or `reconcile rollback --resume "
                     f"{name}` to follow the source again")
        try:
            rev = src.source.fetch()
        except srcerr.SourceError as e:
            first = src.fetch_error != str(e)
            src.fetch_error = str(e)
            self.prom.set_error(name, "fetch")
            if first:
                self.events.publish("source_error", source=name, error=str(e),
                                    temporary=not isinstance(e, TerminalError))
            raise
        if src.fetch_error is not None:
            self.events.publish("source_recovered", source=name, revision=rev.id)
        src.fetch_error = None
        src.fetched = rev.id
        return rev

    def _load(self, name: str, src: _Source, rev: srcbase.Revision) -> spec.DesiredState | None:
        """The revision's manifests, or None when it does not load (reported once per revision)."""
        if src.applied is not None and src.applied.id == rev.id and src.desired is not None:
            if src.invalid is not None:         # a refused edit undone: the applied revision again
                self._loads_again(name, src, rev)
            return src.desired
        if src.invalid is not None and src.invalid[0] == rev.id:
            return None
        try:
            with self._pass_lock:               # a source's live directory moves between passes only
                src.source.place(rev)           # binds are checked and hashed where they will be mounted
                # documents checked against their schema in a helper process (spec/validity.py):
                # the agent never maps the validator while its manifests are valid (#21)
                known = validity.KnownValid(os.path.join(self.config.root, validity.FILE), aside=True)
                try:
                    desired = self._host_part(spec.load(rev.path, policy=src.cfg.policy, live=rev.live,
                                                        compose=spec.ComposeOptions(default_name=rev.name or None),
                                                        decryption=sopskeys.at_root(src.cfg.keys(self.config.decryption),
                                                                                    self.config.root),
                                                        cluster=self.config.runtime == "swarm",
                                                        engine=self.config.runtime, known_valid=known))
                finally:
                    known.save()
        except spec.SpecError as e:
            snap = str(rev.path)
            problems = [str(p).replace(snap, rev.origin, 1) if rev.origin else str(p) for p in e.problems]
            src.invalid = (rev.id, problems)
            self.prom.set_error(name, "invalid")
            self.events.publish("revision_invalid", source=name, revision=rev.id, problems=problems,
                                kept=src.applied.id if src.applied else None)
            self._log.error("revision_invalid", source=name, revision=rev.id[:12], problems=problems,
                            kept=src.applied.id[:12] if src.applied else None)
            return None
        if desired.warnings:            # once per revision: a loaded revision is kept (src.desired)
            snap = str(rev.path)
            self._log.warning("revision_warnings", source=name, revision=rev.id[:12],
                              warnings=[w.replace(snap, rev.origin, 1) if rev.origin else w for w in desired.warnings])
        self._loads_again(name, src, rev)
        return dataclasses.replace(desired, revision=rev.id)

    def _loads_again(self, name: str, src: _Source, rev: srcbase.Revision) -> None:
        """Revision `rev` loads: a refused one before it is no longer the source's error (its
        status, the metric and a `revision_fixed` event say so)."""
        if src.invalid is not None:
            self.events.publish("revision_fixed", source=name, revision=rev.id)
        src.invalid = None
        self.prom.set_error(name, None)

    def _host_part(self, desired: spec.DesiredState) -> spec.DesiredState:
        """This host's part of the manifests (spec.placement; SpecError when it cannot be told);
        a Swarm manager places services itself."""
        from reconciler.spec import placement
        from reconciler.state import hostlabels

        if self.config.runtime == "swarm":
            return desired
        part = placement.select(desired, self.config.labels)
        if hostlabels.recorded(self.config.root) != (dict(self.config.labels) or None):
            hostlabels.record(self.config.root, self.config.labels)   # its config is where the labels live
        return part

    def _planner_inputs(self, src: _Source, options: passes.PassOptions) -> passes.PassOptions:
        """`options` with what the planner needs from the agent (`planner.PlanOptions`): the
        revision applied last (a pass over it again is a drift check) and the containers over
        the flap limit; the registries backed off since an earlier pass; and the source's policy
        (what a pass judges with the host's state: the rule sharedTags)."""
        return dataclasses.replace(options, applied_revision=src.applied.id if src.applied is not None else "",
                                   flapping=frozenset(self._flapping_names()),
                                   registry_backoff=self.registry_backoff, policy=src.cfg.policy)

    def _report_drift(self, name: str, src: _Source, plan: actions.Plan) -> None:
        """The drift the plan only reports (`drift: report`): event and log line when it changes."""
        drift = list(plan.drift)
        if drift and drift != src.drift:
            self.events.publish("drift_reported", source=name, objects=drift)
            self._log.warning("drift_reported", source=name, objects=drift)
        src.drift = drift

    def _reconcile(self, request: loop_mod.Request) -> loop_mod.Result:
        """One pass (`_pass`), then the pages it freed go back to the kernel (agent/heap.py). A
        pass that ends in an exception no part expected (a bug; state nothing could read) is a
        failed pass like any: its event (which notifications follow) and metric say so."""
        try:
            return self._pass(request)
        except ReconcilerError:
            raise                           # said where it happened (source errors, failed passes)
        except Exception as e:
            self._crashed(request, e)
            raise
        finally:
            heap.release()

    def _crashed(self, request: loop_mod.Request, exc: Exception) -> None:
        name = request.key
        failure = f"internal error: {type(exc).__name__}: {exc}"
        src = self._sources.get(name)
        revision = ""
        if src is not None:
            src.last_result, src.last_pass_at, src.last_failures = "failed", time.time(), [failure]
            revision = src.applied.id if src.applied is not None else ""
        self.prom.passes.labels(name, "failed").inc()
        self.events.publish("pass", source=name, revision=revision, result="failed", counts={},
                            failures=[failure], reconcile_id=request.reconcile_id)

    def _heal(self, runtime: Any) -> None:
        """Before a pass observes: what another program took of the engine's network plumbing
        (a firewall reload flushing its nft table: every published port dark; a bridge deleted,
        its containers' veths left unplugged) made again, and said (base.Healing). A container
        it could not plug in again is said once, and `status` lists it down while it stays so."""
        if not isinstance(runtime, base.Healing):
            return
        try:
            healed = runtime.heal()
        except ReconcilerError as e:
            self._log.warning("network_heal_failed", error=e.message)
            return
        made, cut = list(healed.made), dict(healed.cut_off)
        if made or (cut and cut != self._cut_off):
            self._log.warning("network_healed", made=made, cut_off=cut)
            self.events.publish("network_healed", made=made, cut_off=cut)
        self._cut_off = cut

    def _pass(self, request: loop_mod.Request) -> loop_mod.Result:
        name = request.key
        with self._lock:
            src = self._sources.get(name)
        if src is None:
            return loop_mod.Result()            # removed by a reload
        rev = self._revision(name, src)
        desired = self._load(name, src, rev)
        if desired is None:
            if src.applied is None or src.desired is None:
                assert src.invalid is not None
                raise TerminalError(f"revision {rev.id[:12]} of {name} does not load; nothing applied yet:\n"
                                    + "\n".join(src.invalid[1]))
            rev, desired = src.applied, src.desired   # the last good stays applied (drift-checked)
        options = self._planner_inputs(src, passes.PassOptions(
            owner=src.cfg.owner, allow_empty=src.cfg.allow_empty, max_workers=self.config.parallel,
            source=f"{name}:{rev.origin}"))
        assert self.db is not None
        run = src.updates.prepare(desired, self._tag_cache(), rev.id)     # update policies' tags in place
        with self._pass_lock, self._runtime_session(write=True) as runtime:
            self._heal(runtime)
            src.source.place(rev)               # what the pass applies is what its binds show
            eo = executor.ExecuteOptions(max_workers=self.config.parallel,
                                         stop=lambda: self.loop.stop_requested)
            try:
                result = passes.run_pass(run, runtime, self.db, options, execute_options=eo)
            except ReconcilerError as e:      # a full disk...: the loop retries; status must not say converged
                src.last_result, src.last_pass_at = "failed", time.time()
                src.last_failures = [e.message]
                self.prom.passes.labels(name, "failed").inc()
                self.events.publish("pass", source=name, revision=rev.id, result="failed", counts={},
                                    failures=src.last_failures, reconcile_id=request.reconcile_id)
                raise
            # (not when the engine went away during the pass: the pass is failed, retried soon)
            managed = None if result.error else len(runtime.list_containers({labelmod.OWNER: src.cfg.owner}))
        self._report_drift(name, src, result.plan)
        self._settle_updates(name, src, rev, desired, result)
        src.applied, src.desired = rev, desired
        first = src.last_result is None
        src.last_result, src.last_pass_at = result.result, time.time()
        src.notes = list(result.plan.notes)
        if dict(result.resolve_errors) != src.unresolved and result.resolve_errors:
            self._log.warning("tags_unresolved", source=name, tags=dict(result.resolve_errors))
        src.unresolved = dict(result.resolve_errors)
        src.last_failures = [f"{c.resource}: {c.detail}" for c in result.changeset.failed()] \
            if result.changeset is not None else []
        # desired containers that do not run as they should: a failure of the pass, shown as such
        src.last_failures += [f"{ResourceId.container(n)}: {why}" for n, why in sorted(result.unready.items())]
        src.last_failures += [result.error] if result.error else []
        self.prom.down.labels(name).set(len(result.unready))
        if result.converged:
            good = [rev, *[g for g in src.good if g.id != rev.id]][:KEEP_GOOD]
            if [g.id for g in good] != [g.id for g in src.good] and self._memory is not None:
                self._memory.keep_good(name, [g.id for g in good])     # a restart finds them
            src.good = good
            self.prom.last_applied.labels(name).set(time.time())
        src.source.retain({rev.id, *(g.id for g in src.good)})
        self.prom.passes.labels(name, result.result).inc()
        self.prom.pass_duration.labels(name).observe(result.duration)
        self.prom.drift.labels(name).set(len(src.drift))
        if managed is not None:
            self.prom.managed.labels(name).set(managed)
        # a pass with nothing to do that converged is no event, but the agent's first of a source:
        # a failure an earlier agent told of may have ended meanwhile (notify: its recovery)
        if not result.plan.is_empty() or not result.converged or first:
            self.events.publish(
                "pass", source=name, revision=rev.id, result=result.result,
                counts=result.changeset.counts() if result.changeset else {},
                failures=src.last_failures, reconcile_id=request.reconcile_id)
        retry = self.config.drift_interval if result.converged else min(self.config.drift_interval, 5.0)
        return loop_mod.Result(requeue_after=retry)

    # -- image update policies (agent/updates.py) ---------------------------------------------

    def _tag_cache(self) -> updates_mod.TagCache:
        if self._tags is None:
            self._lister = updates_mod.RegistryLister()
            self._tags = updates_mod.TagCache(self._lister, interval=self.config.image_update_interval)
        return self._tags

    def _settle_updates(self, name: str, src: _Source, rev: srcbase.Revision, desired: spec.DesiredState,
                        result: passes.PassResult) -> None:
        """Events for what the update policies did in this pass, then the write-back."""
        if not src.updates.decisions:
            return
        failed = dict(result.unready)
        broken = {c.resource: c.detail for c in result.changeset.failed()} if result.changeset is not None else {}
        for d in src.updates.decisions:         # the image's own failure (a pull) says more than "dependency failed"
            res = str(ResourceId.container(d.container))
            if res in broken and d.chosen is not None:
                failed[d.container] = broken.get(str(ResourceId.image(d.ref(d.chosen)))) or broken[res]
        for d in src.updates.decisions:
            if d.error is not None:
                self._log.warning("image_tags_unlisted", source=name, container=d.container,
                                  repository=d.repository, error=d.error)
        write = src.updates.settle(name, rev.id, failed, self.events.publish, interrupted=result.interrupted)
        memo = src.updates.memo()
        if self._memory is not None and memo != dict(self._remembered(name).announced):
            self._memory.announce(name, memo)   # a restart announces none of these again
        settings = src.cfg.git.write_back if src.cfg.git is not None else None
        if write and settings is not None:
            self._write_back(name, src, rev, desired, write, settings)

    def _write_back(self, name: str, src: _Source, rev: srcbase.Revision, desired: spec.DesiredState,
                    write: list[updates_mod.Decision], settings: Any) -> None:
        from reconciler.sources import git, writeback

        if not isinstance(src.source, git.GitSource):
            return
        edits = []
        for d in write:
            u = desired.containers[d.container].image_update
            assert u is not None
            assert d.chosen is not None
            edits.append(writeback.Edit(file=os.path.relpath(u.at.file, rev.path), container=d.container,
                                        repository=d.repository, tag=d.chosen, old=d.current,
                                        digest=self._running_digest(d.container, d.ref(d.chosen))))
        try:
            commit = writeback.write_back(src.source, name, edits, settings)
        except srcerr.SourceError as e:
            self.events.publish("write_back_failed", source=name, branch=settings.branch, error=str(e))
            self._log.error("write_back_failed", source=name, branch=settings.branch, error=str(e))
            return
        for d in write:
            src.updates.written[d.container] = d.chosen or ""
        if commit is not None:
            self.events.publish("written_back", source=name, branch=settings.branch, commit=commit,
                                containers=[d.container for d in write])
            self.loop.trigger(name, f"write-back pushed {commit[:12]}")

    def _running_digest(self, container: str, ref: str) -> str:
        """The manifest digest the container runs, if it runs `ref` (for `:digest` markers), else ""."""
        try:
            with self._runtime_session() as rt:
                st = rt.inspect_container(container)
        except ReconcilerError:
            return ""
        return st.labels.get(labelmod.DIGEST, "") if st.image == ref else ""

    # -- the API's view (api.server.AgentView) -------------------------------------------------

    def status(self) -> Mapping[str, Any]:
        with self._lock:
            names = sorted(self._sources)
        flapping = self.supervisor.flapping() if self.supervisor is not None else []
        return {
            "agent": {"pid": os.getpid(), "version": __version__, "started_at": self.started_at,
                      "runtime": self.config.runtime, "root": str(self.config.root),
                      "socket": str(self.config.socket), "config": str(self.config.path or "")},
            "sources": [self.source_status(n) for n in names],
            "unmanaged": self._unmanaged(),
            "supervision": {"enabled": self.supervisor is not None,
                            "flapping": [{"container": f.name, "id": f.id[:12], "restarts": f.restarts,
                                          "since": f.since} for f in flapping]},
        }

    def _unmanaged(self) -> list[dict[str, Any]]:
        """The engine's containers that none of the agent's sources owns (made by `reconcile
        run`, the Engine API, an `apply` of another owner), as the sources' objects are shown
        plus their owner label (None: none): `ps` lists them, and so do status and the
        dashboard. The native engine's only, as `ps` through the agent: its containers are the
        state root's, where a Docker daemon's are the whole host's."""
        if self.config.runtime != "native":
            return []
        with self._lock:
            owners = {s.cfg.owner for s in self._sources.values()}
        flapping = self._flapping_names()
        try:
            with self._runtime_session() as rt:
                states = [c for c in rt.list_containers() if c.labels.get(labelmod.OWNER) not in owners]
        except ReconcilerError as e:
            return [{"error": str(e)}]
        return [{**_object(c, flapping), "owner": c.labels.get(labelmod.OWNER)}
                for c in sorted(states, key=lambda c: c.name)]

    def source_status(self, name: str) -> Mapping[str, Any]:
        src = self._get(name)
        ks = self.loop.status(name)
        flapping = self._flapping_names()
        objects = []
        down: dict[str, str] = {}
        try:
            with self._runtime_session() as rt:
                states = rt.list_containers({labelmod.OWNER: src.cfg.owner})
                # observed now, not at the last pass: a container that died since is down already
                down = passes.unready(src.desired, states) if src.desired is not None else {}
                cut = self._cut_off             # a heal could not plug it in again: it runs, unreachable
                down.update({c.name: cut[c.name] for c in states
                             if c.name in cut and c.status == base.ContainerStatus.RUNNING and c.name not in down})
                self.prom.down.labels(name).set(len(down))
                self.prom.managed.labels(name).set(len(states))     # the same look, not the last pass's
                objects += [_object(c, flapping) for c in sorted(states, key=lambda c: c.name)]
        except ReconcilerError as e:
            objects.append({"error": str(e)})
        error = None
        if src.invalid is not None:
            error = f"revision {src.invalid[0][:12]} refused:\n" + "\n".join(src.invalid[1])
        elif src.fetch_error is not None:
            error = src.fetch_error
        elif ks.last_error is not None:
            error = ks.last_error
        # the one verdict `reconcile status` (its flag and exit code) and the dashboard show. A
        # source no pass of this agent finished yet is not known to run as its manifests say (its
        # containers may not exist at all): not ok until one has, as without an agent (the last
        # pass the state DB recorded before is `recorded_pass`); but a suspended one runs no pass
        # by the operator's word (as `flux suspend`): shown with its last pass, this agent's or
        # else the recorded one, and judged by it alone (failed, degraded: not ok; none: ok),
        # never for being suspended
        no_pass_yet = src.last_result is None
        last_result, last_pass_at, failures = src.last_result, src.last_pass_at, src.last_failures
        if no_pass_yet and ks.suspended and src.recorded is not None:
            last_result, last_pass_at = src.recorded.result, src.recorded.finished_at or src.recorded.started_at
            failures = _failures_of(src.recorded)
        if ks.suspended:
            degraded = bool(error or failures or down or last_result not in (None, "converged"))
        else:
            degraded = bool(error or failures or down or no_pass_yet or last_result != "converged")
        return {
            "name": name, "owner": src.cfg.owner, "kind": src.cfg.kind, "degraded": degraded,
            "origin": _origin(src.cfg), "suspended": ks.suspended,
            # the config's `suspend: true`: a resume through the API lasts until a reload or restart
            "config_suspend": src.cfg.suspend,
            "pinned": src.pinned.id if src.pinned else src.lost_pin,
            "revision": src.applied.id if src.applied else None,
            "fetched": src.fetched, "last_good": src.good[0].id if src.good else None,
            "last_result": last_result, "last_pass_at": last_pass_at, "no_pass_yet": no_pass_yet,
            "recorded_pass": None if not no_pass_yet or src.recorded is None else
            {"id": src.recorded.id, "revision": src.recorded.revision, "result": src.recorded.result,
             "started_at": src.recorded.started_at},
            "error": error, "problems": src.invalid[1] if src.invalid else [],
            "failures": failures, "drift": src.drift, "notes": src.notes, "down": down,
            "unresolved": src.unresolved,
            "images": src.updates.status(src.applied.id) if src.applied else [],
            "elsewhere": dict(src.desired.elsewhere) if src.desired is not None else {},
            "passes": ks.passes, "running": ks.running, "backoff_failures": ks.failures,
            "next_pass_in": None if ks.next_in is None else round(max(ks.next_in, 0.0), 3),
            "objects": objects,
        }

    def set_suspended(self, name: str, suspended: bool, *, by_config: bool = False) -> Mapping[str, Any]:
        """Suspend or resume a source. Through the API (`by_config` False) it is the operator's
        word, remembered across restarts, and resume also ends a rollback's pin; a reloaded config
        only suspends or resumes."""
        src = self._get(name)
        if not by_config:
            assert self._memory is not None
            self._memory.suspend(name, suspended)
        if suspended:
            self.loop.suspend(name)
        else:
            if not by_config:
                src.pinned = src.lost_pin = None    # resume also ends a rollback's pin
                assert self._memory is not None
                self._memory.pin(name, "")
            if self.supervisor is not None:
                for o in list(src.desired.containers) if src.desired else []:
                    self.supervisor.clear(o)
            self.loop.resume(name)
        self.prom.source_suspended.labels(name).set(1 if suspended else 0)
        self.events.publish("source_suspended" if suspended else "source_resumed", source=name)
        return self.source_status(name)

    def plan(self, name: str | None) -> Mapping[str, Any]:
        name = self._only(name)
        src = self._get(name)
        rev = self._revision(name, src)
        desired = self._load(name, src, rev)
        if src.applied is not None and src.applied.id != rev.id:
            with self._pass_lock:               # a plan only looks: the live directory shows what runs
                src.source.place(src.applied)
        if desired is None:
            return {"source": name, "revision": rev.id, "error": "the revision does not load",
                    "problems": src.invalid[1] if src.invalid else []}
        assert self.db is not None
        desired = src.updates.replay(desired, rev.id)
        with self._runtime_session() as rt:
            plan, unresolved, down = passes.diff_pass(desired, rt, self.db,
                                                      self._planner_inputs(src, passes.PassOptions(owner=src.cfg.owner)))
        _, _, in_sync = passes.diff_verdict(plan, down)      # as `reconcile diff` judges it
        return {"source": name, **plan.to_json(), "rendered": plan.render(), "in_sync": in_sync,
                "unready": dict(sorted(down.items())), "unresolved": dict(unresolved), "elsewhere": dict(desired.elsewhere)}

    def _only(self, name: str | None) -> str:
        if name:
            return name
        with self._lock:
            names = sorted(self._sources)
        if len(names) != 1:
            raise apierr.BadRequest(f"name a source (one of {', '.join(names)})")
        return names[0]

    def reconcile_now(self, name: str | None, *, wait: bool, timeout: float) -> Mapping[str, Any]:
        with self._lock:
            names = [name] if name else sorted(self._sources)
        for n in names:
            self._get(n)
        before = {n: self.loop.status(n).passes for n in names}
        for n in names:
            self.loop.trigger(n, "reconcile requested (API)")
        waited = []
        if wait:
            deadline = time.monotonic() + timeout
            for n in names:
                if self.loop.status(n).suspended:
                    continue
                while time.monotonic() < deadline:
                    st = self.loop.status(n)
                    if st.passes > before[n] and not st.running:
                        waited.append(n)
                        break
                    time.sleep(0.05)
        return {"triggered": names, "completed": waited,
                "sources": [self.source_status(n) for n in names]}

    def history(self, name: str | None, limit: int) -> Sequence[Mapping[str, Any]]:
        assert self.db is not None
        with self._lock:
            srcs = [self._get(name)] if name else list(self._sources.values())
        out: list[dict[str, Any]] = []
        for s in srcs:
            for p in hist.HistoryStore(self.db, s.cfg.owner).list(limit=limit):
                # `source`: the agent's source; what the pass applied (a path, a git origin) is `applied`
                out.append({**p.to_json(), "source": s.cfg.name, "applied": p.source})
        out.sort(key=lambda p: int(p["id"]), reverse=True)
        return out[:limit]

    def rollback(self, name: str, revision: str | None) -> Mapping[str, Any]:
        src = self._get(name)
        current = src.applied.id if src.applied else None
        if revision:
            match = [g for g in src.good if g.id.startswith(revision)] or self._converged(src, revision)
        else:
            match = [g for g in src.good if g.id != current]
        if not match:
            kept = ", ".join(g.id[:12] for g in src.good) or "none"
            raise apierr.Conflict(
                f"no converged revision {revision or 'older than the applied one'} of {name} is kept "
                f"(kept: {kept})", hint="revert in the source instead (git revert, or restore the files)")
        target = match[0]
        src.pinned, src.lost_pin = target, None
        assert self._memory is not None
        self._memory.pin(name, target.id)           # until resume, across restarts
        self._memory.suspend(name, False)           # the pass below resumes the source
        self.prom.source_suspended.labels(name).set(0)
        self.events.publish("rollback", source=name, revision=target.id, previous=current)
        self._log.warning("rollback", source=name, revision=target.id[:12], previous=(current or "")[:12])
        self.loop.resume(name)                  # runs a pass now (with the pin)
        result = self.reconcile_now(name, wait=True, timeout=300)
        return {"source": name, "pinned": target.id, "previous": current,
                "hint": "the source is pinned: `reconcile rollback --resume NAME` (or POST "
                        "/v1/sources/NAME {\"suspend\": false}) follows it again",
                "status": result["sources"][0]}

    def _converged(self, src: _Source, revision: str) -> list[srcbase.Revision]:
        """A revision the history lists as converged for the source's owner, no longer among those
        kept in memory, whose content the source can still give (a commit still in the repository)."""
        assert self.db is not None
        for rid in hist.converged_revisions(self.db).get(src.cfg.owner, []):
            if rid.startswith(revision) and (rev := src.source.revision(rid)) is not None:
                return [rev]
        return []

    def metrics(self) -> tuple[bytes, str]:
        self.prom.flapping.set(len(self._flapping_names()))
        with self._lock:
            names = sorted(self._sources)
        for n in names:                  # reconciler_containers_down as observed now, not at the last pass
            try:
                self.source_status(n)
            except apierr.NotFound:
                continue
            except Exception as e:      # noqa: BLE001 - the gauge stays as the last pass left it: the
                self._log.warning("metrics_status_failed", source=n, error=str(e))   # rest still scraped
        return self.prom.render()

    def _shown_containers(self, rt: Any) -> list[Any]:
        """The containers the dashboard shows: those of the agent's sources (their owner
        label), and on the native engine every other container of its state root too (`ps`
        lists them: `_unmanaged`); nothing else of the host."""
        if self.config.runtime == "native":
            return list(rt.list_containers())
        owners = {s.cfg.owner for s in list(self._sources.values())}
        return [c for c in rt.list_containers({labelmod.KIND: "Container"}) if c.labels.get(labelmod.OWNER) in owners]

    @staticmethod
    def _tail(rt: Any, container_id: str, lines: int) -> list[str]:
        out = [ln.data.decode(errors="replace").rstrip("\n") for ln in rt.logs(container_id, tail=lines)]
        return out[-lines:]

    def logs_tail(self, container: str, lines: int) -> Sequence[str]:
        """The last `lines` lines of a container the dashboard shows."""
        with self._runtime_session() as rt:
            state = next((c for c in self._shown_containers(rt) if c.name == container), None)
            if state is None:
                raise apierr.NotFound(f"no container {container} on the dashboard",
                                      hint="`reconcile ps -a` lists the containers of the engine")
            return self._tail(rt, state.id, lines)

    def logs_tails(self, lines: int) -> Mapping[str, Sequence[str]]:
        """The last `lines` lines of each container the dashboard shows, from one listing (the
        dashboard's live view asks every second); one whose logs cannot be read is left out."""
        tails: dict[str, Sequence[str]] = {}
        with self._runtime_session() as rt:
            for c in self._shown_containers(rt):
                try:
                    tails[c.name] = self._tail(rt, c.id, lines)
                except (ReconcilerError, OSError):
                    continue
        return tails

    def containers(self, labels: Mapping[str, str], *,
                   measure: Callable[[Mapping[str, Any]], bool] | None = None) -> Sequence[Mapping[str, Any]]:
        """What `reconcile ps` shows of every container of the engine (those with `labels`),
        newest first, read through the engine the agent keeps open (the CLI then needs no engine
        code of its own); `measure`: the rows that get their sizes (`ps -s`). Only the native
        engine's: `ps` lists no other."""
        return opening.summaries(self._native().containers, dict(labels), measure=measure)

    def inspect_container(self, name: str) -> Mapping[str, Any]:
        """What `reconcile inspect NAME` shows (a `docker inspect` document)."""
        from reconciler.runtime import errors as rterrors

        try:
            return opening.inspect_document(self._native().containers, name)
        except rterrors.NotFound as e:
            raise apierr.NotFound(str(e)) from None

    def images(self) -> Sequence[Mapping[str, Any]]:
        """What `reconcile images` shows of each image of the engine, newest first."""
        from reconciler import listing

        return [listing.image_summary(i) for i in self._native().list_images()]

    def pull_if_present(self, ref: str, *, missing: bool = False) -> Mapping[str, Any]:
        """`reconcile pull REF` when the engine holds the image REF names now (one HEAD, in the
        agent, whose engine and registry client are loaded already; none with `missing`,
        `--pull=missing`: the image held is the answer): the progress events the pull made, its
        digest and the name it is shown by. 404 when a pull would download: the CLI then pulls
        itself."""
        store = self._native().image_store
        events: list[tuple[str, Mapping[str, Any]]] = []
        try:
            info = store.pull_if_present(ref, progress=lambda e, d: events.append((e, dict(d))), missing=missing)
        except ReconcilerError as e:
            raise apierr.Conflict(e.message, hint=e.hint) from None     # the CLI pulls itself, and says why
        if info is None:
            raise apierr.NotFound(f"{ref} is not present as the registry has it now")
        return {"events": events, "digest": info.digest, "shown": store.shown(ref)}

    def build(self, options: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
        """`reconcile build` through the agent (#21): the build of `options` (BuildOptions as
        JSON) by the agent's warm builder, as JSON lines while it runs: {"line": ...} per
        progress line, then {"image_id": ...}, or the error the CLI would print ({"error",
        "hint", "notes", "exit_code"}: a refusal, a failed step, a full disk)."""
        import queue

        from reconciler.runtime import errors as rterrors
        from reconciler.runtime.native.build import builder

        try:
            opts = builder.options_from_json(options)
        except rterrors.InvalidArgument as e:
            raise apierr.BadRequest(e.message, hint=e.hint) from None
        rt = self._native()
        lines: queue.SimpleQueue[Mapping[str, Any]] = queue.SimpleQueue()

        def work() -> None:
            try:
                made = builder.Builder(rt.image_store, lambda: rt.containers).build(
                    opts, lambda line: lines.put({"line": line}))
                lines.put({"image_id": made.image_id})
            except Exception as e:          # noqa: BLE001 - every failure goes to the client, as the CLI says it
                lines.put(_build_error(e, self.config.root))

        # the build runs beside the reply, which writes its lines as they come (a RUN's output)
        threading.Thread(target=work, name="api-build", daemon=True).start()
        while "line" in (value := lines.get()):
            yield value
        yield value

    def container_logs(self, name: str, *, follow: bool, since: str | None,
                       tail: int | None) -> Iterator[Mapping[str, Any]]:
        """What `reconcile logs` prints of a container, line by line as its engine reads them:
        s (stdout|stderr), t (RFC 3339 time) and d (the bytes as latin-1: any byte goes), and n:
        false for bytes written without a newline after them (a client before it prints one)."""
        from reconciler.runtime import errors as rterrors

        try:
            lines = self._native().containers.logs(name, follow=follow, since=since, tail=tail)
            for line in lines:
                doc = {"s": line.stream, "t": line.time, "d": line.data.decode("latin-1")}
                yield doc if line.newline else {**doc, "n": False}
        except rterrors.NotFound as e:
            raise apierr.NotFound(str(e)) from None
        except rterrors.InvalidArgument as e:
            raise apierr.BadRequest(str(e)) from None

    def create_container(self, config: Mapping[str, Any], *, volatile: bool = False,
                         auto_remove: bool = False) -> Mapping[str, Any]:
        """`reconcile create` through the agent (#21): a container of `config` (config_to_json's
        form) made by the agent's engine, its image pulled first when the engine lacks it
        (parts.create); `volatile` and `auto_remove` for `create --rm` (its file system never
        synced, removed once it exited after a start: NativeRuntime.create_container). The reply
        says `auto_remove`, so a client can tell an agent that did not take it (an older one)."""
        from reconciler.runtime import parts

        try:
            cfg = base.config_from_json(config)
        except (TypeError, ValueError, KeyError) as e:
            raise apierr.BadRequest(f"not a container config: {e}") from None
        rt = self._native()
        with _engine_errors():
            return {"id": parts.create(rt, cfg, volatile=volatile, auto_remove=auto_remove),
                    "auto_remove": auto_remove}

    def run_container(self, config: Mapping[str, Any], *, remove: bool, detach: bool,
                      hangup: Callable[[], bool]) -> Iterator[Mapping[str, Any]]:
        """`reconcile run` without a terminal through the agent in one request (#21), by the
        steps the CLI's own engine takes (parts.run_foreground): {"id"} once it started, then
        {"s": stream, "d": line as latin-1, "n": false when no newline ended it} as written, then
        {"exit_code"}; an error after the
        start as its last line ({"error", "hint", "status"}); one before it is raised (the
        reply's status). `hangup()`: the client closed its side (Ctrl-C: stop it)."""
        from reconciler.runtime import parts

        try:
            cfg = base.config_from_json(config)
        except (TypeError, ValueError, KeyError) as e:
            raise apierr.BadRequest(f"not a container config: {e}") from None
        steps = parts.run_foreground(self._native(), cfg, remove=remove, detach=detach, hangup=hangup)
        try:
            with _engine_errors():
                started = next(steps)
            yield {"id": started[1]}
            try:
                with _engine_errors():
                    for kind, value in steps:
                        yield {"exit_code": value} if kind == "exit" else _line(kind, value)
            except apierr.ApiError as e:
                yield {"error": e.message, "hint": e.hint, "status": e.status}
        finally:
            steps.close()           # the client gone: a --rm container is killed and removed

    def container_action(self, name: str, action: str, body: Mapping[str, Any]) -> Mapping[str, Any]:
        """What `reconcile run` and `exec` ask of a container through the agent: start, stop
        (`timeout`), wait (its exit code), remove (`force`), exec (`argv`, and `user`, `workdir`,
        `env` as `docker exec` takes them: its exit code and output, latin-1, once it ended)."""
        if action == "exec-as":             # an exec with user, workdir or env: a name an agent before
            action = "exec"                 # them refuses, so that none is dropped (_agentapi.exec)
        if action not in ("start", "stop", "wait", "remove", "exec"):
            raise apierr.NotFound(f"no container action {action!r}", hint="start, stop, wait, remove or exec")
        if action == "exec":
            _check_exec(body)
        with _engine_errors(), self._runtime_session(write=action != "wait") as rt:
            if action == "start":
                rt.start_container(name)
            elif action == "stop":
                timeout = body.get("timeout")
                rt.stop_container(name, timeout=float(timeout) if timeout is not None else None)
            elif action == "remove":
                rt.remove_container(name, force=bool(body.get("force")))
            elif action == "wait":
                return {"exit_code": rt.wait_container(name)}
            else:
                done = rt.exec(name, list(body["argv"]), user=body.get("user"), workdir=body.get("workdir"),
                               env=list(body.get("env") or ()))
                return {"exit_code": done.exit_code, "stdout": done.stdout.decode("latin-1"),
                        "stderr": done.stderr.decode("latin-1")}
        return {}

    def _native(self) -> NativeRuntime:
        """The native engine the agent keeps open; 409 for another (the CLI then reads the root)."""
        from reconciler.runtime.native import backend

        if not isinstance(self._runtime, backend.NativeRuntime):
            raise apierr.Conflict(f"this agent runs the {self.config.runtime} engine, not the native one",
                                  hint="the CLI reads the native engine's state root itself")
        return self._runtime


def _object(c: base.ContainerState, flapping: set[str]) -> dict[str, Any]:
    """A container as status and the dashboard show it."""
    return {"kind": "Container", "name": c.name, "id": c.id[:12], "status": "paused" if c.paused else str(c.status),
            "health": c.health, "restart_count": c.restart_count, "exit_code": c.exit_code,
            "image": c.image, "digest": c.labels.get(labelmod.DIGEST) or c.image_id,
            "ports": [f"{p.host_ip}:{p.host_port}->{p.container_port}/{p.protocol}" for p in c.ports],
            "revision": c.labels.get(labelmod.REVISION, ""), "flapping": c.name in flapping}


def _failures_of(p: hist.Pass) -> list[str]:
    """A recorded pass's failures as a pass of the agent lists them (`_Source.last_failures`):
    each failed or rolled-back resource, the error that ended it; one that did not converge and
    names none says how it ended."""
    out = [f"{c.get('resource')}: {c.get('detail')}" for c in p.changes
           if c.get("outcome") in ("failed", "rolled-back")]
    out += [p.error] if p.error else []
    if p.result != "converged" and not out:
        out = [f"the pass ended {p.result}: see `reconcile history`"]
    return out


def _line(stream: str, written: bytes) -> Mapping[str, Any]:
    """A run's output line on the wire: the data without its newline (as a client before `n` was
    sent prints it, with one), `n: false` when it had none (`run IMG cat FILE` byte for byte)."""
    if written.endswith(b"\n"):
        return {"s": stream, "d": written[:-1].decode("latin-1")}
    return {"s": stream, "d": written.decode("latin-1"), "n": False}


def _check_exec(body: Mapping[str, Any]) -> None:
    """An exec's body: `argv`, a list of strings, and optional `user`, `workdir` (strings) and
    `env` (KEY=VALUE strings); anything else is refused, so a field this agent does not know
    (a newer CLI's) is never dropped without a word, which could run the command as another user."""
    usage = 'POST a JSON object {"argv": [COMMAND, ARG...], "user": U, "workdir": DIR, "env": ["K=V", ...]}'
    unknown = sorted(set(body) - {"argv", "user", "workdir", "env"})
    if unknown:
        raise apierr.BadRequest(f"exec does not take {', '.join(unknown)}", hint=usage)
    argv, env = body.get("argv"), body.get("env", [])
    if not (isinstance(argv, list) and argv and all(isinstance(a, str) for a in argv)):
        raise apierr.BadRequest(usage)
    if not all(isinstance(body.get(k), str | None) for k in ("user", "workdir")):
        raise apierr.BadRequest(usage)
    if not (isinstance(env, list) and all(isinstance(e, str) and e.partition("=")[0] for e in env)):
        raise apierr.BadRequest(usage)


@contextlib.contextmanager
def _engine_errors() -> Iterator[None]:
    """An engine's refusal as the API's (NotFound 404, InvalidArgument 400, Conflict and
    AlreadyExists 409, any other 500), its message and hint kept: the CLI raises it again."""
    from reconciler.runtime import errors as rterrors

    try:
        yield
    except apierr.ApiError:
        raise
    except rterrors.NotFound as e:
        raise apierr.NotFound(e.message, hint=e.hint) from None
    except rterrors.InvalidArgument as e:
        raise apierr.BadRequest(e.message, hint=e.hint) from None
    except (rterrors.Conflict, rterrors.AlreadyExists) as e:
        raise apierr.Conflict(e.message, hint=e.hint) from None
    except ReconcilerError as e:
        raise apierr.ApiError(e.message, hint=e.hint) from None


def _build_error(exc: Exception, root: Path) -> Mapping[str, Any]:
    """A failed build as the last line of `POST /v1/build`: what the CLI prints for it (its
    message, hint and notes) and its exit code; a full disk as the CLI's main() reports one."""
    from reconciler import diskfull

    err = exc if isinstance(exc, ReconcilerError) else diskfull.translate(exc, "running `reconcile build`", root)
    if err is None:
        logs.get_logger("reconciler.api").error("api_build_failed", exc_info=exc)
        return {"error": f"the agent's build failed: {type(exc).__name__}: {exc}", "hint": "see the agent's log",
                "notes": [], "exit_code": 1}
    return {"error": err.message, "hint": err.hint, "notes": list(getattr(err, "__notes__", ())),
            "exit_code": err.exit_code}


def _origin(sc: cfgmod.SourceConfig) -> str:
    if sc.git is not None:
        from reconciler.sources import git

        ref = sc.git.branch or sc.git.tag or sc.git.commit or "HEAD"
        return f"{git.redact_url(sc.git.url)}@{ref}" + (f":{sc.git.path}" if sc.git.path else "")
    return str(sc.directory)


def run_agent(config: cfgmod.AgentConfig, *, ready: Callable[[Agent], None] | None = None) -> int:
    """Run in the foreground until SIGTERM/SIGINT; SIGHUP re-reads the config file.

    Under umask 077 (docs/security.md, "Secrets at rest"); history is bounded by the
    config's `history:` settings. The first SIGTERM/SIGINT stops the agent at the next safe
    point of the pass in flight (see execution/stopping.py) and exits 0; a second one exits at
    once with 143/130.
    """
    lean_process()
    old_umask = private_umask()
    try:
        return _run_agent(config, ready=ready)
    finally:
        os.umask(old_umask)


def lean_process() -> None:
    """What keeps the agent's memory at rest small that must be set before its threads start and
    before httpx is imported (#21, docs/benchmarks.md "Memory against the peers"):

    - malloc's arena limit (agent/heap.py);
    - no httpx command line: `import httpx` tries `httpx._main` (click, rich and pygments where
      they are installed) only to offer the `httpx` program, and falls back to a stub when that
      import fails. The agent never runs it; a None in sys.modules makes that import fail (as
      Python documents) and saves 1 MiB (click, which apprise brings) to 5 MiB resident.
    """
    heap.limit_arenas()
    sys.modules.setdefault("httpx._main", None)   # type: ignore[arg-type]


def _run_agent(config: cfgmod.AgentConfig, *, ready: Callable[[Agent], None] | None) -> int:
    stop = stopping.Stopper(after="the current action (containers keep running)").install()
    reload = [False]        # a plain flag, as the Stopper's: a handler must take no lock (stopping.py)

    def on_hup(signum: int, frame: object) -> None:
        reload[0] = True

    signal.signal(signal.SIGHUP, on_hup)
    agent = Agent(config).start()
    agent.release_thread()              # this thread only waits for signals from here
    log = logs.get_logger("reconciler.agent")
    _notify("READY=1")
    if ready is not None:
        ready(agent)
    try:
        while not stop.sleep(0.5):
            if reload[0]:
                reload[0] = False           # a SIGHUP between the two lines is read by this reload
                if config.path is None:
                    log.warning("config_reload_skipped", reason="no config file")
                    continue
                try:
                    new = cfgmod.load_config(config.path, aside=True)
                except cfgmod.ConfigError as e:
                    log.error("config_reload_failed", error=str(e), note="the running config stays")
                    agent.events.publish("config_invalid", error=str(e))
                    continue
                _notify("RELOADING=1")
                agent.reload(new)
                agent.release_thread()
                _notify("READY=1")
    finally:
        _notify("STOPPING=1")
        log.info("agent_stopping", note="the pass in flight stops after its actions in flight; "
                 "containers keep running")
        agent.stop()
    return 0


def _notify(state: str) -> None:
    """sd_notify for Type=notify units (no-op outside systemd)."""
    addr = os.environ.get("NOTIFY_SOCKET")
    if not addr:
        return
    import socket

    if addr.startswith("@"):
        addr = "\0" + addr[1:]
    with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.sendto(state.encode(), addr)


def agent_file(root: Path) -> Mapping[str, Any] | None:
    """`<root>/agent.json` of a running agent (pid, socket), or None."""
    try:
        data = json.loads((root / AGENT_FILE).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
