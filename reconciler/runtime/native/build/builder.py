"""The Dockerfile builder of the native engine.

A build walks the stages the target needs, instruction by instruction, keeping a state per
stage: its layers (LayerRecords, bottom first), its OCI image config, its ARGs (a stage FROM
another stage starts with all three of that one's, as BuildKit's does). Metadata
instructions (ENV, LABEL, CMD, ...) only change the config. Filesystem instructions make one
layer each:

- RUN runs in a container of the native engine (ContainerManager: conmon + runc) on the
  stage's snapshots, with the stage's Env (plus its ARGs), User, WorkingDir and SHELL, on
  network "none" unless the build or `RUN --network=` says "host"; its overlay upper dir
  becomes the layer.
- COPY/ADD write into an overlay of the stage's snapshots (sources read inside the context,
  destinations resolved inside the rootfs) and the upper dir becomes the layer.

Each layer goes to the content store as tar+gzip (diff.py) and becomes a ChainID snapshot
(extracted from the blob, as a pull would), so later steps, containers and pushes use it
like any pulled layer. The build cache (sqlite `build_cache`) maps a key to the layer a step
made: sha256 of the parent state (ChainID + config), the instruction with its resolved
arguments, and for COPY the digest of its inputs (names, modes, contents; owners for copies
from stages). An unchanged rebuild finds every key and runs nothing; a changed file misses
at its COPY and every later step (their parent state changed). A hit whose blob or snapshot
was collected since is a miss.

The whole build holds the image store lock shared, so a GC cannot sweep under it.
"""

from __future__ import annotations

import contextlib
import copy
import datetime as dt
import errno
import hashlib
import json
import os
import posixpath
import secrets
import shutil
import stat
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reconciler import imagenames
from reconciler._dataclass import dataclass, dataclasses, field
from reconciler.runtime import errors as rterrors
from reconciler.runtime.native import openat2
from reconciler.runtime.native.build import (
    context,
    dockerfile,
    history,
    instructions,
    rebuilds,
    remote,
    runmounts,
)
from reconciler.runtime.native.containers import mounts, signals
from reconciler.runtime.native.images import images, snapshots

if TYPE_CHECKING:
    # loaded by the first RUN (run_container, _mount) or --chown/STOPSIGNAL (bundle): an
    # unchanged rebuild runs none and loads no container code (#21)
    from reconciler.runtime import base
    from reconciler.runtime.native.containers import containers, records

__all__ = ["BuildError", "BuildOptions", "BuildResult", "Builder", "RunFailed", "platform_args", "validate"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS build_cache (
    key TEXT PRIMARY KEY,
    layer TEXT NOT NULL,         -- JSON LayerRecord of the layer the step made
    created TEXT NOT NULL,
    used_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS build_sources (
    key TEXT PRIMARY KEY,        -- a COPY/ADD step's cache key: what dockerd names its sources in its history
    text TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS build_steps (
    key TEXT PRIMARY KEY,        -- a metadata step made before: its parent's image and the image it left
    used_at REAL NOT NULL
);
"""

DEFAULT_SHELL = ("/bin/sh", "-c")
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_RUN_SKIP = frozenset({"proc", "sys", "dev", "etc/hosts", "etc/resolv.conf", "etc/hostname"})
_OUTPUT_TAIL = 20

Progress = Callable[[str], None]


class BuildError(rterrors.ImageError):
    """A build step failed; the message names the step (and a RUN's output)."""


class RunFailed(BuildError):
    """A RUN step's command exited non-zero; `code` is its exit code, which dockerd's build
    answer carries (errorDetail.code) and `docker build` exits with."""

    def __init__(self, message: str, *, code: int, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.code = code


@dataclass(frozen=True)
class BuildOptions:
    """What `build` is asked: context, Dockerfile, arguments, target, tags, cache and secrets."""

    context: str                                    # directory
    dockerfile: str = "Dockerfile"                  # relative to the context, or absolute
    build_args: Mapping[str, str] = field(default_factory=dict)
    target: str | None = None
    tags: tuple[str, ...] = ()
    network: str = "none"                           # RUN's network: "none" or "host"
    no_cache: bool = False
    pull: bool = False                              # pull FROM images even when present
    secrets: Mapping[str, bytes] = field(default_factory=dict, repr=False)   # RUN --mount=type=secret, by id
    ssh: Mapping[str, str] = field(default_factory=dict)    # RUN --mount=type=ssh: agent socket path, by id
    allow_insecure: bool = False                    # RUN --security=insecure may run (all capabilities)
    # dockerd's rm and forcerm, and their defaults (the one home of both: `reconcile build
    # --rm/--force-rm` and the Engine API's POST /build take them): a step's container is
    # removed when the step succeeded and `rm`, or whatever happened with `force_rm`; else kept
    # (`run_container`, `meta_step`): a failed RUN's container stays, as `docker build`'s does
    rm: bool = True
    force_rm: bool = False


# BuildOptions' fields a client may send the agent (`POST /v1/build`, #21), by their JSON
# type: never secrets or ssh (a build that has them runs in the CLI: they stay in its process)
_SENT: dict[str, tuple[type, ...]] = {
    "context": (str,), "dockerfile": (str,), "build_args": (dict,), "target": (str, type(None)), "tags": (list,),
    "network": (str,), "no_cache": (bool,), "pull": (bool,), "allow_insecure": (bool,), "rm": (bool,),
    "force_rm": (bool,),
}
# (an agent older than rm and force_rm refuses them, 400: the CLI then builds itself)


def options_from_json(doc: Mapping[str, Any]) -> BuildOptions:
    """The BuildOptions a client sent as JSON (BuildOptions' field names; `tags` a list); raises
    InvalidArgument naming what is wrong. The context must be absolute: the agent's working
    directory is not the client's."""
    wrong = sorted(k for k in doc if k not in _SENT or not isinstance(doc[k], _SENT[k]))
    if wrong:
        raise rterrors.InvalidArgument(f"build options not understood: {', '.join(wrong)}",
                                       hint=f"send a JSON object of {', '.join(_SENT)}")
    if not os.path.isabs(str(doc.get("context", ""))):
        raise rterrors.InvalidArgument("the build context must be an absolute path")
    values = dict(doc)
    if "tags" in values:
        values["tags"] = tuple(str(t) for t in values["tags"])
    if "build_args" in values:
        values["build_args"] = {str(k): str(v) for k, v in values["build_args"].items()}
    return BuildOptions(**values)


@dataclass(frozen=True)
class BuildResult:
    """A finished build: the image, its digest, its tags and the steps it ran."""

    image_id: str                   # config digest
    digest: str                     # manifest digest
    tags: tuple[str, ...]
    steps: int
    cached: int                     # steps whose layer came from the cache (a metadata step's ` ---> Using cache` not counted)


@dataclass(frozen=True)
class _Group:
    """Sources of one COPY/ADD read from one root (the context, a stage, the heredocs)."""

    ctx: context.BuildContext
    sources: list[context.Source]
    archives: frozenset[str] = frozenset()      # rel paths ADD unpacks
    parents: Sequence[str] | None = None        # COPY --parents: each source's path kept below the destination
    url: bool = False                           # a URL's download: its history text is its tarsum alone, as dockerd's


@dataclass
class _Stage:
    """One FROM stage of a build, its instructions and the base it starts from."""

    index: int
    name: str | None
    instructions: list[dockerfile.Instruction]
    base: str = ""
    line: int = 0                               # of its FROM
    platform: str = ""                          # FROM --platform= as written
    layers: list[images.LayerRecord] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)     # full OCI image config
    args: dict[str, str] = field(default_factory=dict)
    cmd_set: bool = False
    done: bool = False
    created: str = "1970-01-01T00:00:00Z"      # of the newest layer: history and image times
    dated: bool = False                         # `created` is a time: its base's, a layer's, SOURCE_DATE_EPOCH
    shown: str = ""                             # the id printed after its last step (_Run.stage)
    pristine: str = ""                          # the stored image the state still is (FROM it, no step since)

    @property
    def run_config(self) -> dict[str, Any]:
        cfg: dict[str, Any] = self.config.setdefault("config", {})
        return cfg

    def state_key(self) -> str:
        chain = self.layers[-1].chain_id if self.layers else ""
        return _sha(json.dumps({"chain": chain, "config": self.run_config}, sort_keys=True))

    def env(self) -> dict[str, str]:
        """Substitution environment: ARGs overridden by ENV."""
        out = dict(self.args)
        for item in self.run_config.get("Env") or ():
            k, _, v = item.partition("=")
            out[k] = v
        return out


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _iso(epoch: int) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _source_date_epoch(build_args: Mapping[str, str]) -> int | None:
    """SOURCE_DATE_EPOCH (a build arg, as BuildKit takes it): a Unix time in seconds, or None."""
    value = build_args.get("SOURCE_DATE_EPOCH")
    if value is None or value == "":
        return None
    if not value.isdigit():
        raise BuildError(f"SOURCE_DATE_EPOCH={value!r} is not a Unix time in seconds",
                         hint="give it like SOURCE_DATE_EPOCH=$(git log -1 --format=%ct)")
    return int(value)


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _one_line(ins: dockerfile.Instruction) -> str:
    flags = " ".join([f"--{k}={v}" for k, v in ins.flags.items() if k not in ins.repeated]
                     + [f"--{k}={v}" for k, values in ins.repeated.items() for v in values])
    return " ".join(x for x in (ins.cmd, flags, ins.args) if x)


class Builder:
    """Builds Dockerfiles into the native image store."""

    def __init__(self, store: images.ImageStore,
                 manager: containers.ContainerManager | Callable[[], containers.ContainerManager]) -> None:
        """`manager` runs the RUN steps: the engine's ContainerManager, or a function that
        opens it when the first RUN needs it (an unchanged rebuild then loads no container code)."""
        self.store = store
        self._manager = manager
        self._swept = False             # step containers of dead builds removed (`manager`)
        self.config = store.config
        self.db = store.db
        self.db.ensure_schema("native-build", _SCHEMA)
        self.work = self.config.root / "build"
        self.work.mkdir(parents=True, exist_ok=True)
        os.chmod(self.work, 0o700)
        self._remove_debris()

    @property
    def manager(self) -> containers.ContainerManager:
        """The container manager RUN steps use (opened now if it was given as a function); the
        first time it is asked for, the step containers of builds whose process is gone are
        removed (`_remove_orphan_steps`)."""
        if callable(self._manager):
            self._manager = self._manager()
        if not self._swept:
            self._swept = True
            self._remove_orphan_steps(self._manager)
        return self._manager

    @staticmethod
    def _remove_orphan_steps(mgr: containers.ContainerManager) -> None:
        """The RUN step containers of builds whose process is gone (kill -9: its `finally` never
        ran, so the step's process ran on with its rootfs mounted): removed, their processes
        killed. A step container is the builder's own by its marks (a `build-` name, no image
        id, the `reconciler.build` label); its `reconciler.build.process` label is the build
        process (pid, start time, boot id: procs.alive). One without it (made before the label
        was) is removed too: no step container outlives the build that made it."""
        from reconciler.runtime.native import procs

        for rec in mgr.records():
            labels = rec.config.labels
            if not (rec.name.startswith("build-") and rec.image_id == "" and labels.get(_STEP_LABEL) == "true"):
                continue
            pid, start, boot = [*labels.get(_PROCESS_LABEL, "").split(), "", "", ""][:3]
            if pid.isdigit() and start.isdigit() and procs.alive(int(pid), int(start), boot or None):
                continue                    # that build runs on
            with contextlib.suppress(rterrors.RuntimeBackendError, OSError):
                mgr.remove(rec.id, force=True)

    def _remove_debris(self) -> None:
        """Step dirs of builds whose process died (kill -9): unmount and delete them."""
        for d in self.work.glob("step-*"):
            try:
                pid = int(d.name.split("-")[1])
                os.kill(pid, 0)
                continue                    # that build is still running
            except (ValueError, IndexError, PermissionError):
                continue
            except ProcessLookupError:
                pass
            for sub in ("bind", "secret", "merged", "root"):
                if mounts.is_mounted(d / sub):
                    with contextlib.suppress(rterrors.RuntimeBackendError):
                        mounts.unmount(d / sub)
            shutil.rmtree(d, ignore_errors=True)

    # ------------------------------------------------------------------ entry point

    def build(self, opts: BuildOptions, progress: Progress | None = None, *,
              stored: Callable[[str], None] | None = None) -> BuildResult:
        """Build as `opts` say, printing Docker's progress lines to `progress`; `stored` is told
        the image id once the image is stored, before `Successfully built` (the Engine API's
        `aux` line, where dockerd sends it)."""
        lines: list[str] = []

        def say(line: str) -> None:
            lines.append(line)
            if progress is not None:
                progress(line)

        rebuild_key = rebuilds.key(vars(opts))     # before the build reads the context: a change meanwhile misses
        ctx_path = os.path.abspath(opts.context)
        if not os.path.isdir(ctx_path):
            raise BuildError(f"build context {opts.context!r} is not a directory")
        df_path = opts.dockerfile if os.path.isabs(opts.dockerfile) else os.path.join(ctx_path, opts.dockerfile)
        try:
            # bytes that are not UTF-8 become U+FFFD: dockerd builds such a Dockerfile, and its
            # runtime gets them so (Go's JSON of the OCI spec replaces them; `RUN echo caf\xe9`
            # prints caf\ufffd there); a strict decode failed the build with a UnicodeDecodeError
            with open(df_path, encoding="utf-8", errors="replace") as f:
                text = f.read()
        except OSError as exc:
            raise BuildError(f"cannot read the Dockerfile {df_path}: {exc.strerror}",
                             hint="give its path with -f (from the current directory, as docker takes it; "
                                  "-f - reads it from standard input), or put a Dockerfile in the context") from None
        df = dockerfile.parse(text)
        for tag in opts.tags:
            self.store.parse(tag)           # invalid tags fail before any work
        global_args, stages = self._split(df)
        target = self._target(stages, opts.target)
        needed = self._needed(stages, target, global_args, opts, df.escape)
        total = len(global_args) + sum(len(s.instructions) + 1 for s in stages if s.index in needed)
        index = self.work / "context-digests.json"
        context.load_digests(index)         # an unchanged context is resolved by lstat alone (#21)
        with self.store.store_lock(exclusive=False), context.BuildContext(ctx_path, dockerfile=df_path) as ctx:
            b = _Run(self, opts, df.escape, stages, ctx, say, total)
            b.stored = stored
            meta = b.global_args(global_args)
            for s in stages:
                if s.index in needed:
                    b.stage(s, meta)
            result = b.finish(stages[target])
            self.cache_used([k for k, _, _ in b.used], b.steps_used)
        with contextlib.suppress(OSError):     # a memo: the build is done whether or not it is kept
            context.save_digests(index)
        if rebuild_key is not None and b.indexable:
            self._index(rebuild_key, b, result, lines)
        return result

    def _index(self, k: str, b: _Run, result: BuildResult, lines: list[str]) -> None:
        """Record a build answered wholly from the cache in the index of unchanged rebuilds."""
        tags = [_tag_name(self.store, t, default_latest=True) for t in result.tags]
        if None in tags:
            return
        rebuilds.record(self.config.root, k, image_id=result.image_id, refs=b.refs,
                        tags=[t for t in tags if t is not None], cache=b.used, lines=lines)

    # ------------------------------------------------------------------ structure

    @staticmethod
    def _split(df: dockerfile.Dockerfile, *, this_host: bool = True) -> tuple[list[dockerfile.Instruction], list[_Stage]]:
        global_args: list[dockerfile.Instruction] = []
        stages: list[_Stage] = []
        for ins in df.instructions:
            instructions.check(ins, df.escape)
            if ins.cmd == "ONBUILD":
                _check_trigger(ins.args, f"Dockerfile line {ins.line}: ")
            if ins.cmd == "FROM":
                platform = ins.flags.get("platform", "")
                if this_host and platform and "$" not in platform:     # (with variables: checked when built)
                    _check_platform(platform, f"Dockerfile line {ins.line}: ")
                words = ins.args.split()
                name = None
                if len(words) == 3 and words[1].lower() == "as":
                    name = words[2].lower()
                elif len(words) != 1:
                    raise dockerfile.DockerfileError(
                        f"Dockerfile line {ins.line}: FROM requires either one or three arguments",
                        hint="FROM <image> [AS <name>]")
                stages.append(_Stage(index=len(stages), name=name, instructions=[], base=words[0], line=ins.line,
                                     platform=platform))
                stages[-1].instructions.append(ins)
            elif not stages:
                if ins.cmd != "ARG":
                    raise dockerfile.DockerfileError(
                        f"Dockerfile line {ins.line}: no build stage in current context: {ins.cmd} comes before "
                        "the first FROM", hint="only ARG may come before FROM")
                global_args.append(ins)
            else:
                stages[-1].instructions.append(ins)
        if not df.instructions:
            raise dockerfile.DockerfileError("file with no instructions", hint="start the Dockerfile with FROM <image>")
        if not stages:
            raise dockerfile.DockerfileError("the Dockerfile has no FROM instruction")
        for s in stages:
            s.instructions = s.instructions[1:]     # the FROM is kept as s.base and counted
        return global_args, stages

    @staticmethod
    def _target(stages: list[_Stage], target: str | None) -> int:
        if target is None:
            return len(stages) - 1
        for s in stages:
            if s.name == target.lower():
                return s.index
        raise BuildError(f"target stage {target!r} is not defined in the Dockerfile",
                         hint="name stages with FROM ... AS <name>")

    @staticmethod
    def _needed(stages: list[_Stage], target: int, global_args: list[dockerfile.Instruction],
                opts: BuildOptions, escape: str) -> set[int]:
        """The target and the stages it uses (FROM <stage>, COPY --from=<stage>)."""
        names = {s.name: s.index for s in stages if s.name}
        meta = _meta_args(global_args, opts.build_args, escape)
        needed: set[int] = set()
        todo = [target]
        while todo:
            i = todo.pop()
            if i in needed:
                continue
            needed.add(i)
            s = stages[i]
            base = dockerfile.substitute(s.base, meta, escape=escape).lower()
            if base in names and names[base] < i:
                todo.append(names[base])
            for ins in s.instructions:
                froms = [ins.flags["from"]] if ins.cmd == "COPY" and "from" in ins.flags else []
                for src in [*froms, *runmounts.mount_sources(ins)]:
                    src = src.lower()
                    if src in names and names[src] < i:
                        todo.append(names[src])
                    elif src.isdigit() and int(src) < i:
                        todo.append(int(src))
        return needed

    # ------------------------------------------------------------------ cache

    def cache_get(self, key: str) -> tuple[images.LayerRecord, str, str] | None:
        """The layer a step with this key made, when, and its row as stored (JSON); None if
        unknown or collected. Its use is written with the others' at the build's end (`cache_used`)."""
        row = self.db.connect().execute("SELECT layer, created FROM build_cache WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        rec = images.LayerRecord(**json.loads(row["layer"]))
        if not (self.store.content.has(rec.digest) and self.store.snapshots.exists(rec.chain_id)):
            return None
        return rec, str(row["created"]), str(row["layer"])

    def cache_used(self, keys: Sequence[str], steps: Sequence[str] = ()) -> None:
        """Mark the cache rows `keys` and the metadata steps `steps` used now, in one
        transaction (one per hit cost a sync each)."""
        if keys or steps:
            now = time.time()
            with self.db.tx() as c:
                c.executemany("UPDATE build_cache SET used_at = ? WHERE key = ?", [(now, k) for k in keys])
                c.executemany("UPDATE build_steps SET used_at = ? WHERE key = ?", [(now, k) for k in steps])

    def step_seen(self, key: str) -> bool:
        """Whether a build made the metadata step `key` before (`_Run.meta_step`); its use is
        written with the others' at the build's end (`cache_used`)."""
        return self.db.connect().execute("SELECT 1 FROM build_steps WHERE key = ?", (key,)).fetchone() is not None

    def source_text(self, key: str, make: Callable[[], str]) -> str:
        """The history's name of the sources of the COPY/ADD step `key` (`history`,
        context.classic_source_hash): kept with the step's cache row, so a cached step reads
        no file for it; `make` when a build made the step before it was kept."""
        row = self.db.connect().execute("SELECT text FROM build_sources WHERE key = ?", (key,)).fetchone()
        if row is not None:
            return str(row["text"])
        text = make()
        with self.db.tx() as c:
            c.execute("INSERT INTO build_sources(key, text) VALUES (?,?) ON CONFLICT(key) DO UPDATE"
                      " SET text=excluded.text", (key, text))
        return text

    def step_put(self, key: str) -> None:
        with self.db.tx() as c:
            c.execute("INSERT INTO build_steps(key, used_at) VALUES (?,?) ON CONFLICT(key) DO UPDATE"
                      " SET used_at=excluded.used_at", (key, time.time()))

    def cache_put(self, key: str, rec: images.LayerRecord, created: str) -> None:
        with self.db.tx() as c:
            c.execute("INSERT INTO build_cache(key, layer, created, used_at) VALUES (?,?,?,?)"
                      " ON CONFLICT(key) DO UPDATE SET layer=excluded.layer, created=excluded.created,"
                      " used_at=excluded.used_at",
                      (key, json.dumps(rec.__dict__), created, time.time()))


def validate(df: dockerfile.Dockerfile, *, this_host: bool = False) -> None:
    """The checks a build makes of a parsed Dockerfile before it starts (a FROM first, known
    instructions and flags, arguments (instructions.check), FROM's form, ONBUILD's triggers;
    whether this host builds FROM --platform only when `this_host`); DockerfileError names
    the line."""
    Builder._split(df, this_host=this_host)


def _meta_args(global_args: Sequence[dockerfile.Instruction], build_args: Mapping[str, str],
               escape: str) -> dict[str, str]:
    meta: dict[str, str] = platform_args()
    for ins in global_args:
        for word in dockerfile.split_words(ins.args, meta, escape=escape):
            name, eq, default = word.partition("=")
            if name in build_args:
                meta[name] = build_args[name]
            elif eq:
                meta[name] = default
    return meta


class _Run:
    """One build in progress."""

    metadata_only = False       # apply_changes (commit -c): WORKDIR sets the config and makes no layer

    def __init__(self, builder: Builder, opts: BuildOptions, escape: str, stages: list[_Stage],
                 ctx: context.BuildContext, say: Progress, total: int) -> None:
        self.b = builder
        self.opts = opts
        self.escape = escape
        self.stages = stages
        self.ctx = ctx
        self.say = say
        self.total = total
        self.step = 0
        self.cached = 0
        # for the index of unchanged rebuilds (rebuilds.py): the cache rows used (key, layer,
        # created), the images references named ("name:tag" -> id), whether it may be indexed
        self.used: list[tuple[str, str, str]] = []
        self.steps_used: list[str] = []         # the metadata steps found made before (build_steps)
        self.refs: dict[str, str] = {}
        self.indexable = True
        self.meta: dict[str, str] = platform_args()
        self.declared_meta: set[str] = set()     # ARG names declared outside the stages' own instructions
        self.epoch = _source_date_epoch(opts.build_args)
        self.stored: Callable[[str], None] | None = None     # told the image id (Builder.build)
        self.printed = False            # the step in progress printed its cache or container lines
        self.nop_argv: list[str] = []   # the Cmd of the container dockerd commits the last metadata step through

    # ---------------------------------------------------------------- helpers

    def err(self, ins: dockerfile.Instruction | None, message: str, hint: str | None = None) -> BuildError:
        where = f"Step {self.step}/{self.total} : {_one_line(ins)[:120]} (Dockerfile line {ins.line}): " if ins else ""
        return BuildError(where + message, hint=hint)

    def begin(self, text: str) -> None:
        self.step += 1
        self.say(f"Step {self.step}/{self.total} : {text}")

    def subst(self, s: _Stage, word: str) -> str:
        return dockerfile.substitute(word, s.env(), escape=self.escape)

    def words(self, s: _Stage, text: str) -> list[str]:
        return dockerfile.split_words(text, s.env(), escape=self.escape)

    def layer_dirs(self, recs: Sequence[images.LayerRecord]) -> list[Path]:
        return [self.b.store.snapshots.fs_dir(r.chain_id) for r in recs]

    def empty_dir(self) -> Path:
        d = self.b.work / "empty"
        d.mkdir(exist_ok=True)
        os.chmod(d, 0o755)  # noqa: S103 - a scratch image's "/", whatever the process umask
        return d

    # ---------------------------------------------------------------- global ARGs

    def global_args(self, instrs: Sequence[dockerfile.Instruction]) -> dict[str, str]:
        for ins in instrs:
            self.begin(_one_line(ins))
            for word in dockerfile.split_words(ins.args, self.meta, escape=self.escape):
                name, eq, default = word.partition("=")
                self.declared_meta.add(name)
                if name in self.opts.build_args:
                    self.meta[name] = self.opts.build_args[name]
                elif eq:
                    self.meta[name] = default
        return self.meta

    # ---------------------------------------------------------------- stages

    def stage(self, s: _Stage, meta: Mapping[str, str]) -> None:
        if s.platform:
            _check_platform(dockerfile.substitute(s.platform, meta, escape=self.escape),
                            f"Dockerfile line {s.line}: ")
        base = dockerfile.substitute(s.base, meta, escape=self.escape)
        self.begin(f"FROM {base}" + (f" AS {s.name}" if s.name else ""))
        try:
            self.from_(s, base)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise
            raise BuildError(f"Step {self.step}/{self.total} : FROM {base} (Dockerfile line {s.line}): "
                             f"{_os_message(exc)}") from None
        dated = self.epoch is not None and bool(s.shown)     # a FROM of an image: re-dated, a new image
        if self.epoch is not None:          # the image's and every new history entry's time
            s.created, s.dated = _iso(self.epoch), True
        if self.triggers(s, base) or dated:
            s.shown, s.pristine = self.state_id(s), ""
        self.say(f" ---> {s.shown[7:19]}")
        for ins in s.instructions:
            self.begin(_one_line(ins))
            self.step_of(s, ins)
            s.shown, s.pristine = self.state_id(s), ""
            self.say(f" ---> {s.shown[7:19]}")
        s.done = True

    def step_of(self, s: _Stage, ins: dockerfile.Instruction) -> None:
        """Dispatch `ins` and print the lines dockerd's classic builder prints for a step of its
        kind before its ` ---> ID`: a RUN's (`hit`, `run_container`), a COPY/ADD's (` ---> Using
        cache` or nothing) or a metadata step's (WORKDIR's too): dockerd makes a container for
        each (never started) and commits it, so ` ---> Running in ID` and `Removing intermediate
        container ID`, or ` ---> Using cache` when it made that step's image before (`meta_step`)."""
        parent = self.state_id(s)
        self.printed = False
        self.nop_argv = []
        self.dispatch(s, ins)
        if ins.cmd not in ("RUN", "COPY", "ADD") and not self.printed:
            self.meta_step(s, ins, parent)

    def meta_step(self, s: _Stage, ins: dockerfile.Instruction, parent: str) -> None:
        """A metadata step's lines. It is cached when a build made the same image of the same
        parent before (`build_steps`, as dockerd's cache finds the child image of the parent
        with that config); --no-cache makes it again. Its container is made (created, never
        started, as dockerd's) only when it is kept (`BuildOptions.rm` false): else it would be
        removed as soon as made, so only its id is printed."""
        key = self.keyed(_sha(json.dumps({"parent": parent, "image": self.state_id(s)})))
        if not self.opts.no_cache and self.b.step_seen(key):
            self.say(" ---> Using cache")
            self.steps_used.append(key)
            return
        self.indexable = False          # a step was made: not an unchanged rebuild
        if self.opts.rm or self.opts.force_rm:
            cid = secrets.token_hex(32)
            self.say(f" ---> Running in {cid[:12]}")
            self.say(f"Removing intermediate container {cid[:12]}")
        else:
            argv = self.nop_argv or [*(s.run_config.get("Shell") or DEFAULT_SHELL), "#(nop) ", _one_line(ins)]
            rec = self.step_container(s, argv, {}, "none", (), started=False)
            self.say(f" ---> Running in {rec.id[:12]}")
            self.keep(rec.id)
        self.b.step_put(key)

    def dispatch(self, s: _Stage, ins: dockerfile.Instruction) -> None:
        handler = getattr(self, "do_" + ins.cmd.lower())
        try:
            handler(s, ins)
        except BuildError:
            raise
        except dockerfile.DockerfileError as exc:
            raise self.err(ins, exc.message) from None
        except rterrors.RuntimeBackendError as exc:
            raise self.err(ins, exc.message, exc.hint) from None
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise               # a full disk: the CLI and the executor say where and how much room
            raise self.err(ins, _os_message(exc)) from None

    def triggers(self, s: _Stage, base: str) -> bool:
        """Run the base image's ONBUILD triggers, in order, as if they followed the FROM; the
        new image does not inherit them (Docker's rule: grandchildren do not run them). Whether
        there were any."""
        triggers = s.run_config.get("OnBuild") or []
        s.run_config["OnBuild"] = None
        if not triggers:
            return False
        self.say(f"# Executing {len(triggers)} build trigger{'s' if len(triggers) > 1 else ''}")
        for text in triggers:
            where = f"ONBUILD trigger {text.splitlines()[0]!r} of {base} (run by FROM, Dockerfile line {s.line}): "
            try:
                _check_trigger(str(text), where)
                (ins,) = dockerfile.parse(str(text)).instructions
                instructions.check(ins)         # as BuildKit parses a trigger: an instruction like any
            except (dockerfile.DockerfileError, ValueError) as exc:
                message = exc.message if isinstance(exc, dockerfile.DockerfileError) else "not one instruction"
                raise BuildError(where + message, hint="fix the base image's ONBUILD, or build FROM another image") from None
            ins = dataclasses.replace(ins, line=s.line)
            if ins.cmd == "ARG":            # a trigger's ARG consumes its build arg (dockerd warns of none)
                self.declared_meta |= {w.partition("=")[0] for w in ins.args.split()}
            self.step_of(s, ins)            # dockerd prints a trigger's lines as a step's, no id between
        return True

    def state_id(self, s: _Stage) -> str:
        """The id of the image the stage's state is: the config digest of the image `finish`
        would make of it (so the id printed after the last step is the built image's, as
        dockerd's classic builder prints the id of the image each step committed)."""
        return "sha256:" + hashlib.sha256(images.config_bytes(self.image_config(s))).hexdigest()

    def from_(self, s: _Stage, ref: str) -> None:
        names = {x.name: x for x in self.stages if x.name and x.index < s.index}
        if ref.lower() in names:
            src = names[ref.lower()]
            s.layers = list(src.layers)
            s.config = copy.deepcopy(src.config)
            s.args = dict(src.args)         # BuildKit: a stage's ARGs are inherited by stages FROM it
            s.created, s.dated = src.created, src.dated
            s.shown, s.pristine = src.shown, src.pristine
            return
        if ref == "scratch":                # no image: dockerd prints the FROM's id line empty
            s.layers = []
            s.config = {"architecture": _host_arch(), "os": "linux",
                        "config": {"Env": [f"PATH={DEFAULT_PATH}"]},
                        "rootfs": {"type": "layers", "diff_ids": []}, "history": []}
            return
        store = self.b.store
        image_id: str | None = None
        if not self.opts.pull:
            with contextlib.suppress(rterrors.NotFound):
                image_id = store.image_id(ref)
        if image_id is None:
            self.say(f"Pulling {ref}")
            image_id = store.pull(ref).id
            self.indexable = False
        self.resolved(ref, image_id)
        s.layers = store.layer_records(image_id)
        s.config = copy.deepcopy(store.image_config(image_id))
        s.config.setdefault("config", {})
        s.config.setdefault("history", [])
        s.created = str(s.config.get("created") or s.created)
        s.dated = bool(s.config.get("created"))
        s.shown = s.pristine = image_id

    # ---------------------------------------------------------------- metadata instructions

    def history(self, s: _Stage, created_by: str, *, empty: bool) -> None:
        entry: dict[str, Any] = {"created": s.created, "created_by": created_by}
        if empty:
            entry["empty_layer"] = True
        s.config.setdefault("history", []).append(entry)

    def nop(self, s: _Stage, ins: dockerfile.Instruction, comment: str | None = None) -> None:
        """A metadata step's history entry (history.py: dockerd's text, `comment` or the one
        of the step's kind), and the Cmd dockerd gives the container it commits it through."""
        shell = list(s.run_config.get("Shell") or DEFAULT_SHELL)
        if ins.cmd == "WORKDIR":
            self.nop_argv = [*shell, "#(nop) WORKDIR " + s.run_config["WorkingDir"]]
            self.history(s, history.workdir(shell, s.run_config["WorkingDir"]), empty=True)
            return
        comment = self.comment(s, ins) if comment is None else comment
        self.nop_argv = [*shell, "#(nop) ", comment]
        self.history(s, history.nop(shell, comment), empty=True)

    @staticmethod
    def comment(s: _Stage, ins: dockerfile.Instruction) -> str:
        """A metadata step's comment from the config it left, as dockerd writes it."""
        rc = s.run_config
        match ins.cmd:
            case "USER" | "STOPSIGNAL":
                return f"{ins.cmd} {rc['User' if ins.cmd == 'USER' else 'StopSignal']}"
            case "SHELL":
                return f"SHELL [{' '.join(rc['Shell'])}]"
            case "CMD" | "ENTRYPOINT":
                return f"{ins.cmd} {history.go_strings(rc.get('Cmd' if ins.cmd == 'CMD' else 'Entrypoint') or [])}"
            case "HEALTHCHECK":
                return history.healthcheck(rc["Healthcheck"])
            case "ONBUILD" | "MAINTAINER":
                return f"{ins.cmd} {ins.args}"
        return _one_line(ins)

    def pairs(self, s: _Stage, ins: dockerfile.Instruction) -> list[tuple[str, str]]:
        """ENV's and LABEL's NAME=VALUE words, split as written and then each side expanded
        (Docker's parseNameVal, then the dispatcher's expansion), or the legacy `NAME value`."""
        words = dockerfile.raw_words(ins.args, self.escape)
        if not words:
            raise self.err(ins, f"{ins.cmd} needs at least one argument")
        if "=" not in words[0]:
            # legacy form: KEY value with spaces
            key, _, value = ins.args.strip().partition(" ")
            return [(self.subst(s, key), self.subst(s, value.strip()))]
        out = []
        for w in words:
            k, eq, v = w.partition("=")
            k = self.subst(s, k)
            if not eq or not k:
                raise self.err(ins, f"{w!r} is not KEY=VALUE")
            out.append((k, self.subst(s, v)))
        return out

    def do_env(self, s: _Stage, ins: dockerfile.Instruction) -> None:
        env = list(s.run_config.get("Env") or [])
        pairs = self.pairs(s, ins)
        for k, v in pairs:
            keys = [e.partition("=")[0] for e in env]
            if k in keys:
                env[keys.index(k)] = f"{k}={v}"     # in place, as Docker does
            else:
                env.append(f"{k}={v}")
            s.run_config["Env"] = env
        self.nop(s, ins, " ".join(["ENV", *(f"{k}={v}" for k, v in pairs)]))

    def do_label(self, s: _Stage, ins: dockerfile.Instruction) -> None:
        labels = dict(s.run_config.get("Labels") or {})
        pairs = self.pairs(s, ins)
        for k, v in pairs:
            labels[k] = v
        s.run_config["Labels"] = labels
        self.nop(s, ins, " ".join(["LABEL", *(f"{k}={v}" for k, v in pairs)]))

    def do_onbuild(self, s: _Stage, ins: dockerfile.Instruction) -> None:
        """Store the trigger as written (heredoc bodies after it); builds FROM this image run it."""
        text = ins.args + "".join(f"\n{d.content}{d.name}" for d in ins.heredocs)
        s.run_config["OnBuild"] = [*(s.run_config.get("OnBuild") or []), text]
        self.nop(s, ins)

    def do_maintainer(self, s: _Stage, ins: dockerfile.Instruction) -> None:
        s.config["author"] = ins.args
        self.nop(s, ins)

    def do_arg(self, s: _Stage, ins: dockerfile.Instruction) -> None:
        words = self.words(s, ins.args)
        for word in words:
            name, eq, default = word.partition("=")
            if name in self.opts.build_args:
                s.args[name] = self.opts.build_args[name]
            elif eq:
                s.args[name] = default
            elif name in self.meta:
                s.args[name] = self.meta[name]
        self.nop(s, ins, " ".join(["ARG", *words]))

    def do_workdir(self, s: _Stage, ins: dockerfile.Instruction) -> None:
        path = self.subst(s, ins.args.strip())
        if not path:
            raise self.err(ins, "WORKDIR needs a path")
        cur = s.run_config.get("WorkingDir") or "/"
        # Docker keeps an absolute path as written (a trailing / too); a relative one is joined
        s.run_config["WorkingDir"] = path if path.startswith("/") else posixpath.normpath(posixpath.join(cur, path))
        # dockerd's Cmd for the step, which a kept container of it shows (`meta_step`), a layer made or not
        self.nop_argv = [*(s.run_config.get("Shell") or DEFAULT_SHELL), "#(nop) WORKDIR " + s.run_config["WorkingDir"]]
        if self.metadata_only or s.run_config["WorkingDir"] == "/":
            self.nop(s, ins)
            return
        self.make_workdir(s, ins, s.run_config["WorkingDir"])

    def make_workdir(self, s: _Stage, ins: dockerfile.Instruction, path: str) -> None:
        """BuildKit makes a missing WORKDIR, and its missing parents, as a layer: 0755, owned by
        the stage's USER as --chown would own them (`_owner`; root's without a USER). A
        directory already there is left as it is and makes no layer."""
        user = s.run_config.get("User") or ""
        # (the owner in the key: such a step once made root's directories whatever USER said)
        key = _sha(json.dumps({"parent": s.state_key(), "workdir": path, **({"owner": user} if user else {})}))
        by = history.workdir(s.run_config.get("Shell") or DEFAULT_SHELL, path)
        if self.hit(s, ins, key, by):
            return

        def change(root_fd: int, merged: Path) -> None:
            uid, gid = _owner(merged, user, warn=self.say) if user else (0, 0)
            context.ensure_dir(root_fd, path, uid=uid, gid=gid)

        rec = self.overlay_step(s, change, empty_layer=False)
        if rec is None:
            self.nop(s, ins)
            return
        self.add_layer(s, rec, key, by)

    def do_user(self, s: _Stage, ins: dockerfile.Instruction) -> None:
        user = self.subst(s, ins.args.strip())
        if not user:
            raise self.err(ins, "USER needs a user")
        s.run_config["User"] = user
        self.nop(s, ins)

    def do_expose(self, s: _Stage, ins: dockerfile.Instruction) -> None:
        ports = dict(s.run_config.get("ExposedPorts") or {})
        words = self.words(s, ins.args)
        for w in words:
            port, _, proto = w.partition("/")
            proto = (proto or "tcp").lower()
            if proto not in ("tcp", "udp", "sctp"):
                raise self.err(ins, f"invalid protocol in {w!r}")
            lo, _, hi = port.partition("-")
            if not lo.isdigit() or (hi and not hi.isdigit()):
                raise self.err(ins, f"invalid port {w!r}")
            for p in range(int(lo), int(hi or lo) + 1):
                ports[f"{p}/{proto}"] = {}
        s.run_config["ExposedPorts"] = ports
        self.nop(s, ins, " ".join(["EXPOSE", *words]))

    def do_volume(self, s: _Stage, ins: dockerfile.Instruction) -> None:
        vols = dict(s.run_config.get("Volumes") or {})
        items = list(ins.json_args) if ins.json_args is not None else self.words(s, ins.args)
        if ins.json_args is not None:
            items = [self.subst(s, v) for v in items]
        for v in items:
            if not v.startswith("/") or ".." in v.split("/"):
                raise self.err(ins, f"VOLUME {v!r}: give an absolute path without '..'")
            vols[v] = {}                    # as written, a trailing / too (BuildKit's dispatchVolume)
        s.run_config["Volumes"] = vols
        self.nop(s, ins, f"VOLUME [{' '.join(items)}]")

    def do_stopsignal(self, s: _Stage, ins: dockerfile.Instruction) -> None:
        sig = self.subst(s, ins.args.strip())
        signals.parse_signal(sig)
        s.run_config["StopSignal"] = sig
        self.nop(s, ins)

    def do_shell(self, s: _Stage, ins: dockerfile.Instruction) -> None:
        if not ins.json_args:
            raise self.err(ins, 'SHELL must be given in JSON form, like SHELL ["/bin/sh", "-c"]')
        s.run_config["Shell"] = list(ins.json_args)
        self.nop(s, ins)

    def command(self, s: _Stage, ins: dockerfile.Instruction) -> list[str]:
        if ins.json_args is not None:
            return list(ins.json_args)
        shell = list(s.run_config.get("Shell") or DEFAULT_SHELL)
        return [*shell, ins.args]

    def do_cmd(self, s: _Stage, ins: dockerfile.Instruction) -> None:
        s.run_config["Cmd"] = self.command(s, ins)
        s.cmd_set = True
        self.nop(s, ins)

    def do_entrypoint(self, s: _Stage, ins: dockerfile.Instruction) -> None:
        s.run_config["Entrypoint"] = self.command(s, ins) or None     # `ENTRYPOINT []`: null, as dockerd stores it
        if not s.cmd_set:
            s.run_config["Cmd"] = None      # Docker: an ENTRYPOINT drops an inherited CMD
        self.nop(s, ins)

    def do_healthcheck(self, s: _Stage, ins: dockerfile.Instruction) -> None:
        rest = ins.args.strip()
        if rest.upper() == "NONE":
            s.run_config["Healthcheck"] = {"Test": ["NONE"]}
            self.nop(s, ins)
            return
        kind, _, cmdline = rest.partition(" ")
        if kind.upper() != "CMD" or not cmdline.strip():
            raise self.err(ins, "HEALTHCHECK takes NONE or [options] CMD <command>")
        cmdline = cmdline.strip()
        try:
            value = json.loads(cmdline) if cmdline.startswith("[") else None
        except ValueError:
            value = None
        if isinstance(value, list) and all(isinstance(x, str) for x in value):
            test = ["CMD", *value]
        else:
            test = ["CMD-SHELL", cmdline]
        hc: dict[str, Any] = {"Test": test}
        for flag, key in (("interval", "Interval"), ("timeout", "Timeout"), ("start-period", "StartPeriod"),
                          ("start-interval", "StartInterval")):
            if flag in ins.flags:
                hc[key] = instructions.duration(ins.flags[flag])
        if "retries" in ins.flags:
            if not ins.flags["retries"].isdigit():
                raise self.err(ins, f"--retries={ins.flags['retries']} is not a number")
            hc["Retries"] = int(ins.flags["retries"])
        unknown = set(ins.flags) - {"interval", "timeout", "start-period", "start-interval", "retries"}
        if unknown:
            raise self.err(ins, f"unknown HEALTHCHECK flag --{sorted(unknown)[0]}")
        s.run_config["Healthcheck"] = hc
        self.nop(s, ins)

    # ---------------------------------------------------------------- RUN

    def do_run(self, s: _Stage, ins: dockerfile.Instruction) -> None:
        unknown = set(ins.flags) - {"network", "mount", "security"}
        if unknown:
            raise self.err(ins, f"RUN --{sorted(unknown)[0]} is not supported by this builder")
        security = ins.flags.get("security", "sandbox")
        if security not in ("sandbox", "insecure"):
            raise self.err(ins, f"RUN --security={security}: give sandbox or insecure")
        if security == "insecure" and not self.opts.allow_insecure:
            raise self.err(ins, "RUN --security=insecure runs the step with every capability; this build does not "
                                "allow it", hint="if you trust this Dockerfile: reconcile build --allow security.insecure")
        network = ins.flags.get("network", self.opts.network)
        if network == "default":
            network = self.opts.network
        if network not in ("none", "host"):
            raise self.err(ins, f"RUN network {network!r} is not supported; use none or host")
        argv, script = self.run_command(s, ins)
        # build args visible to the step (ENV wins over an ARG of the same name)
        env_keys = {e.partition("=")[0] for e in s.run_config.get("Env") or ()}
        args = {k: v for k, v in sorted(s.args.items()) if k not in env_keys}
        seen = dict(args)           # what dockerd's history shows of them (`|N K=V`)
        workdir = s.run_config.get("WorkingDir") or "/"
        specs = _number_ssh([runmounts.parse(x, expand=lambda v: self.subst(s, v), workdir=workdir)
                             for x in ins.repeated.get("mount", ())])
        ssh = [m for m in specs if m.type == "ssh" and m.id in self.opts.ssh]
        if ssh:             # BuildKit's rule: the first forwarded agent is the step's SSH_AUTH_SOCK
            args = {**args, "SSH_AUTH_SOCK": ssh[0].target}
        targets = [m.target for m in specs]
        if len(set(targets)) != len(targets):
            raise self.err(ins, "two --mount flags have the same target")
        with contextlib.ExitStack() as stack:
            held: dict[str, Path] = {}          # cache ids this step holds (two mounts of one id share it)
            prepared = [self.prepare_mount(s, ins, m, held) for m in specs]
            key = _sha(json.dumps({"parent": s.state_key(), "run": argv, "args": args, "net": network,
                                   "security": security,
                                   "heredocs": [[d.name, d.content, d.chomp] for d in ins.heredocs],
                                   "mounts": [k for k, _make in prepared]}))
            by = history.run(argv, seen)
            if self.hit(s, ins, key, by):
                return
            mnts = [self.script_mount(script, stack)] if script else []
            mnts += [m for _key, make in prepared if (m := make(stack)) is not None]
            # the proxy build args, declared or not, in no key (BuildKit's ProxyEnv), over ENV
            env = {**args, **_proxy_env(self.opts.build_args)}
            rec = self.run_container(s, ins, argv, env, network, mnts, stubs=self.stubs(s, targets),
                                     cap_add=("ALL",) if security == "insecure" else ())
        self.add_layer(s, rec, key, by)

    def stubs(self, s: _Stage, targets: list[str]) -> tuple[frozenset[str], runmounts.Before]:
        """What the step's layer leaves out for its mount targets (runmounts.stubs)."""
        if not targets:
            return frozenset(), {}
        with contextlib.ExitStack() as stack:
            root = self.mount_layers(s.layers, stack)
            root_fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                return runmounts.stubs(targets, root_fd)
            finally:
                os.close(root_fd)

    def prepare_mount(self, s: _Stage, ins: dockerfile.Instruction, m: runmounts.RunMount,
                      held: dict[str, Path]) -> tuple[object, Callable[[contextlib.ExitStack], base.Mount | None]]:
        """A RUN --mount's part of the step's cache key, and how to make it for the step's
        container (None: an optional secret that was not given)."""
        if m.type == "cache":
            return m.key(), lambda stack: self.cache_mount(m, stack, held)
        if m.type == "tmpfs":
            return m.key(), lambda _stack: _mount(type="tmpfs", target=m.target,
                                                      options=(f"size={m.size}",) if m.size else ())
        if m.type == "secret":            # its content is in no key: only its id and target
            return m.key(), lambda stack: self.secret_mount(m, stack)
        if m.type == "ssh":               # nor is the agent's socket
            return m.key(), lambda stack: self.ssh_mount(m, stack)
        if m.from_ is None:
            src = self.ctx.resolve(m.source or ".")
            if len(src) != 1:
                raise self.err(ins, f"--mount source {m.source!r} names {len(src)} paths; give one")
            return ({"mount": m.key(), "inputs": context.hash_sources(self.ctx, src, owners=False)},
                    lambda stack: self.context_mount(m, src[0], stack))
        recs, _label, ident = self.from_layers(s, ins, m.from_)
        return {"mount": m.key(), "from": ident}, lambda stack: self.layers_mount(m, recs, stack)

    def context_mount(self, m: runmounts.RunMount, src: context.Source, stack: contextlib.ExitStack) -> base.Mount:
        """A bind from the context: a copy of what .dockerignore keeps, so the step can change
        nothing of the context (a rw mount's writes are dropped with the copy)."""
        copy_dir = Path(stack.enter_context(_tempdir(self.b.work))) / "bind"
        copy_dir.mkdir()
        os.chmod(copy_dir, 0o755)  # noqa: S103 - the context's root as the step's USER sees it
        root_fd = os.open(copy_dir, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            context.copy_sources(self.ctx, [src], root_fd, "/", context.CopyOptions(0, 0, None))
        finally:
            os.close(root_fd)
        source = copy_dir if src.is_dir else copy_dir / posixpath.basename(src.rel)
        return _mount(type="bind", target=m.target, source=os.fspath(source), read_only=m.readonly)

    def layers_mount(self, m: runmounts.RunMount, recs: Sequence[images.LayerRecord],
                     stack: contextlib.ExitStack) -> base.Mount:
        """A bind from a stage or image: its path resolved inside its rootfs (an overlay of
        its layers, writable when rw: the writes are dropped with it)."""
        root = self.mount_layers(recs, stack, writable=not m.readonly)
        root_fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            fd = openat2.open_in_root(root_fd, m.source or ".", os.O_PATH)
        except OSError as exc:
            raise context.ContextError(f"--mount source {m.source!r}: {exc.strerror} in {m.from_}") from None
        finally:
            os.close(root_fd)
        try:
            stub = root.parent / "bind"
            if stat.S_ISDIR(os.fstat(fd).st_mode):
                stub.mkdir()
            else:
                stub.touch()
            mounts.bind_mount(Path(f"/proc/self/fd/{fd}"), stub, read_only=m.readonly)
            stack.callback(mounts.unmount, stub)
        finally:
            os.close(fd)
        return _mount(type="bind", target=m.target, source=os.fspath(stub), read_only=m.readonly)

    def cache_mount(self, m: runmounts.RunMount, stack: contextlib.ExitStack, held: dict[str, Path]) -> base.Mount:
        def fresh() -> Path:
            return Path(stack.enter_context(_tempdir(self.b.work)))

        if m.id not in held:
            held[m.id] = stack.enter_context(runmounts.cache_dir(self.b.work / "cache-mounts", m, fresh))
        data = held[m.id]
        return _mount(type="bind", target=m.target, source=os.fspath(data), read_only=m.readonly)

    def secret_mount(self, m: runmounts.RunMount, stack: contextlib.ExitStack) -> base.Mount | None:
        """The secret as a file on a tmpfs of its own (never on disk), bound read-only."""
        value = self.opts.secrets.get(m.id)
        if value is None:
            if m.required:
                raise dockerfile.DockerfileError(f"the secret {m.id!r} is required but was not given",
                                                 hint=f"reconcile build --secret id={m.id},src=FILE (or env=VAR)")
            return None
        tmp = Path(stack.enter_context(_tempdir(self.b.work))) / "secret"
        tmp.mkdir()
        mounts.mount_tmpfs(tmp, ["mode=0700", f"size={max(len(value), 1) + 4096}"])
        stack.callback(mounts.unmount, tmp)
        fd = os.open(tmp / "value", os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o400)
        try:
            os.write(fd, value)
            os.fchown(fd, m.uid or 0, m.gid or 0)
            os.fchmod(fd, m.mode if m.mode is not None else 0o400)
        finally:
            os.close(fd)
        return _mount(type="bind", target=m.target, source=os.fspath(tmp / "value"), read_only=True)

    def ssh_mount(self, m: runmounts.RunMount, stack: contextlib.ExitStack) -> base.Mount | None:
        """The agent given for the mount's id, through a proxy socket of the step's own."""
        agent = self.opts.ssh.get(m.id)
        if agent is None:
            if m.required:
                raise dockerfile.DockerfileError(f"no SSH agent was given for the ssh mount {m.id!r}",
                                                 hint=f"reconcile build --ssh {m.id}=$SSH_AUTH_SOCK")
            return None
        tmp = Path(stack.enter_context(_tempdir(self.b.work)))
        sock = stack.enter_context(runmounts.ssh_proxy(tmp / "agent.sock", agent, m))
        return _mount(type="bind", target=m.target, source=os.fspath(sock), read_only=False)

    def run_command(self, s: _Stage, ins: dockerfile.Instruction) -> tuple[list[str], dockerfile.Heredoc | None]:
        """A RUN's argv (BuildKit's heredoc rules), and the heredoc it runs as a script, if any.

        `RUN <<EOF` alone runs the body: as a script when it starts with #! (mounted at
        /dev/pipes/EOF and executed, its interpreter from the shebang), else with the SHELL. A
        heredoc in a longer command line goes to the SHELL with the command (`cat <<EOF > f`)."""
        if not ins.heredocs:
            return self.command(s, ins), None
        shell = list(s.run_config.get("Shell") or DEFAULT_SHELL)
        if dockerfile.heredoc_word(ins.args) is not None:
            doc = ins.heredocs[0]
            if doc.text.startswith("#!"):
                if "/" in doc.name or doc.name in (".", ".."):
                    raise dockerfile.DockerfileError(f"heredoc <<{doc.name}: a script's name must not contain /")
                return [f"/dev/pipes/{doc.name}"], doc
            return [*shell, doc.text], None
        return [*shell, ins.args + "".join(f"\n{d.content}{d.name}" for d in ins.heredocs)], None

    def script_mount(self, doc: dockerfile.Heredoc, stack: contextlib.ExitStack) -> base.Mount:
        """The script heredoc as /dev/pipes/NAME (0755, read-only) for the step's container."""
        pipes = Path(stack.enter_context(_tempdir(self.b.work))) / "pipes"
        pipes.mkdir()
        os.chmod(pipes, 0o755)  # noqa: S103 - the step's USER runs it
        script = pipes / doc.name
        script.write_text(doc.text, encoding="utf-8")
        os.chmod(script, 0o755)  # noqa: S103 - the step's USER runs it
        return _mount(type="bind", target="/dev/pipes", source=os.fspath(pipes), read_only=True)

    def keyed(self, key: str) -> str:
        """A step's cache key with SOURCE_DATE_EPOCH in it (its layer's times depend on it)."""
        return key if self.epoch is None else _sha(f"{key} epoch={self.epoch}")

    def hit(self, s: _Stage, ins: dockerfile.Instruction, key: str, by: str) -> bool:
        if self.opts.no_cache:
            return False
        keyed = self.keyed(key)
        found = self.b.cache_get(keyed)
        if found is None:
            return False
        rec, created, row = found
        parents = s.layers[-1].chain_id if s.layers else None
        expect = snapshots.chain_ids([*(x.diff_id for x in s.layers), rec.diff_id])[-1] if parents else rec.diff_id
        if expect != rec.chain_id:
            return False
        self.say(" ---> Using cache")
        self.printed = True
        self.cached += 1
        self.used.append((keyed, row, created))
        s.created, s.dated = max(s.created, created), True
        self.append(s, rec, by)
        return True

    def append(self, s: _Stage, rec: images.LayerRecord, by: str) -> None:
        """The layer a step made, and its history entry (`by`: history.py's text)."""
        s.layers.append(rec)
        rootfs = s.config.setdefault("rootfs", {"type": "layers", "diff_ids": []})
        rootfs["type"] = "layers"
        rootfs["diff_ids"] = [x.diff_id for x in s.layers]
        self.history(s, by, empty=False)

    def run_container(self, s: _Stage, ins: dockerfile.Instruction, argv: list[str],
                      args: Mapping[str, str], network: str, mnts: Sequence[base.Mount] = (),
                      stubs: tuple[frozenset[str], runmounts.Before] = (frozenset(), {}),
                      cap_add: tuple[str, ...] = ()) -> images.LayerRecord:
        mgr = self.b.manager
        rec = self.step_container(s, argv, args, network, mnts, cap_add=cap_add)
        self.say(f" ---> Running in {rec.id[:12]}")     # dockerd's words for the step's container
        self.printed = True
        ok = exited = False
        try:
            mgr.start(rec.id)
            output = self.output(rec.id)          # streamed while the step runs
            code = mgr.wait(rec.id)
            exited = True
            if code != 0:
                tail = list(output)
                shown = "\n".join(tail) if tail else "(no output)"
                failed = self.err(ins, f"the command {json.dumps(argv)} returned a non-zero code: {code}\n"
                                       f"--- last {len(tail)} lines of its output ---\n{shown}",
                                  hint="fix the command; the steps before it are cached")
                raise RunFailed(failed.message, code=code, hint=failed.hint)
            upper = mgr.paths(rec.id).upper
            layer = self.commit(s, upper, skip=_RUN_SKIP | stubs[0], prune=stubs[1])
            ok = True
            return layer
        finally:
            # dockerd's rule (its dispatch's deferred RemoveAll): removed with force_rm, or with
            # rm when the step succeeded; else kept. A step stopped before its command exited (a
            # build cancelled, SIGTERM) is removed whatever rm says, as dockerd removes the one
            # of a cancelled build. One a killed build left is removed by the next build
            # (_remove_orphan_steps)
            if self.opts.force_rm or (self.opts.rm and ok) or not exited:
                try:
                    mgr.remove(rec.id, force=True)
                except (rterrors.RuntimeBackendError, OSError) as exc:
                    why = _os_message(exc) if isinstance(exc, OSError) else exc.message
                    self.say(f"Failed to remove intermediate container {rec.id[:12]}: {why}")
                else:
                    self.say(f"Removing intermediate container {rec.id[:12]}")
            else:
                self.keep(rec.id)

    def step_container(self, s: _Stage, argv: list[str], args: Mapping[str, str], network: str,
                       mnts: Sequence[base.Mount], *, cap_add: tuple[str, ...] = (),
                       started: bool = True) -> records.Record:
        """A container of the engine for a step, on the stage's snapshots, created (not started),
        marked as a step's (`_STEP_LABEL`, `_PROCESS_LABEL`) until it is kept (`keep`). One never
        `started` (a metadata step's) is made whatever its command: FROM scratch has no shell,
        as dockerd's create needs none."""
        mgr = self.b.manager
        lowers = self.layer_dirs(s.layers) or [self.empty_dir()]
        rc = s.run_config
        from reconciler.runtime import base

        cfg = base.ContainerConfig(
            name=f"build-{secrets.token_hex(6)}", image=self.state_id(s), command=(), args=tuple(argv),   # Cmd, as dockerd's
            env=dict(args), user=rc.get("User") or None, workdir=rc.get("WorkingDir") or None,
            networks=(network,), labels={_STEP_LABEL: "true", _PROCESS_LABEL: _this_process()}, mounts=tuple(mnts),
            cap_add=cap_add,
        )
        image_config = {k: v for k, v in rc.items() if k in ("Env", "User", "WorkingDir")}
        return mgr.create(cfg, image_id="", image_config=image_config, lowerdirs=lowers, late_start_errors=not started)

    def keep(self, cid: str) -> None:
        """Keep a step's container (dockerd's rm=false, or a failed step without forcerm): it
        loses the step's marks, so no later build removes it as a killed build's
        (`_remove_orphan_steps`); `rm` removes it as any container."""
        def unmarked(r: records.Record) -> records.Record:
            labels = {k: v for k, v in r.config.labels.items() if k not in (_STEP_LABEL, _PROCESS_LABEL)}
            return dataclasses.replace(r, config=dataclasses.replace(r.config, labels=labels))

        self.b.manager.update(cid, unmarked)

    def output(self, cid: str) -> deque[str]:
        """Print the step's output as it comes; its last lines (for an error message)."""
        from reconciler.runtime.native.containers import logs

        mgr = self.b.manager
        tail: deque[str] = deque(maxlen=_OUTPUT_TAIL)
        for line in logs.read_logs(mgr.paths(cid).log, follow=True, poll=0.02,
                                   is_running=lambda: mgr.get(cid).status in ("running", "created")):
            text = line.data.decode("utf-8", "replace")
            self.say(text)
            tail.append(text)
        return tail

    def commit(self, s: _Stage, upper: Path, *, skip: frozenset[str] = frozenset(),
               prune: runmounts.Before | None = None) -> images.LayerRecord:
        """The upper dir as a layer: blob in the content store, snapshot by ChainID."""
        return layer_from_upper(self.b.store, upper, s.layers, self.b.work / "tmp", skip=skip, prune=prune,
                                epoch=self.epoch)

    def add_layer(self, s: _Stage, rec: images.LayerRecord, key: str, by: str) -> None:
        self.indexable = False          # a step ran: not an unchanged rebuild
        s.created = _iso(self.epoch) if self.epoch is not None else max(s.created, _now())
        s.dated = True
        self.b.cache_put(self.keyed(key), rec, s.created)
        self.append(s, rec, by)

    # ---------------------------------------------------------------- COPY / ADD

    def do_add(self, s: _Stage, ins: dockerfile.Instruction) -> None:
        self.do_copy(s, ins)

    def do_copy(self, s: _Stage, ins: dockerfile.Instruction) -> None:
        unknown = set(ins.flags) - {"from", "chown", "chmod", "link", "exclude", "checksum", "keep-git-dir", "parents"}
        if unknown:
            raise self.err(ins, f"{ins.cmd} --{sorted(unknown)[0]} is not supported by this builder")
        raw = list(ins.json_args) if ins.json_args is not None else dockerfile.raw_words(ins.args, self.escape)
        if len(raw) < 2:
            raise self.err(ins, f"{ins.cmd} needs at least one source and a destination")
        *raw_srcs, raw_dest = raw
        docs = {d.name: d for d in ins.heredocs}
        if docs and dockerfile.heredoc_word(raw_dest):
            raise self.err(ins, f"{ins.cmd} cannot take a heredoc as its destination")
        inline = [docs[h.name] for w in raw_srcs if docs and (h := dockerfile.heredoc_word(w)) and h.name in docs]
        srcs = [self.subst(s, w) for w in raw_srcs if not (docs and dockerfile.heredoc_word(w))]
        dest = self.dest(s, self.subst(s, raw_dest))
        remotes = [x for x in srcs if remote.is_url(x) or remote.is_git(x)]
        self.check_remote_flags(ins, srcs, remotes)
        srcs = [x for x in srcs if x not in remotes]
        for flag in ("link", "parents"):
            if ins.flags.get(flag, "true") not in ("true", "false"):
                raise self.err(ins, f"--{flag}={ins.flags[flag]}: give --{flag}, --{flag}=true or --{flag}=false")
        parents = ins.flags.get("parents") == "true"
        chmod = context.Chmod.parse(self.subst(s, ins.flags["chmod"])) if "chmod" in ins.flags else None
        chown = self.subst(s, ins.flags["chown"]) if "chown" in ins.flags else None
        excludes = [self.subst(s, x) for x in ins.repeated.get("exclude", ())]
        exclude = context.IgnoreRules(excludes) if excludes else None
        with contextlib.ExitStack() as stack:
            src_ctx, from_id = self.source(s, ins, stack)
            kept: list[str] | None = None
            if parents:     # (a glob matching nothing still makes the destination, as in BuildKit)
                sources, kept, made = _parents_sources(src_ctx, srcs, exclude)
            else:
                sources = [x for src in srcs for x in src_ctx.resolve(src)
                           if not (exclude and not x.is_dir and exclude.excluded(posixpath.basename(x.rel)))]
                made = bool(sources)
            archives = {x.rel for x in sources if ins.cmd == "ADD" and not parents and context.is_archive(src_ctx, x)}
            groups = [_Group(src_ctx, sources, frozenset(archives), kept)] if made else []
            groups += [self.remote_group(s, ins, x, stack) for x in remotes]
            if inline:
                groups.append(self.inline_files(s, inline, stack))
            inputs = [context.hash_sources(g.ctx, g.sources, owners=from_id is not None, exclude=exclude)
                      for g in groups]
            # (a user name alone once gave gid = uid: its key says it is the passwd gid now)
            primary = {"gid": "passwd"} if chown and ":" not in chown and not chown.isdigit() and chown != "root" else {}
            key = _sha(json.dumps({"parent": s.state_key(), "cmd": ins.cmd, "srcs": srcs + remotes, "dest": dest,
                                   "chown": chown, "chmod": chmod.spec if chmod else None, "from": from_id,
                                   "exclude": excludes, "inputs": inputs, "parents": parents, **primary}))

            def named_sources() -> str:
                return context.classic_source_hash([t.removeprefix("file:") if g.url else t for g in groups
                                                    for t in context.classic_source_texts(g.ctx, g.sources)])

            named = self.b.source_text(self.keyed(key), named_sources)
            by = " ".join([*(s.run_config.get("Shell") or DEFAULT_SHELL),
                           history.copy_comment(ins.cmd, chown, named, self.subst(s, raw_dest))])
            if self.hit(s, ins, key, by):
                return
            opts = context.CopyOptions(None if from_id else 0, None if from_id else 0, chmod, exclude)
            rec = self.copy_layer(s, groups, dest, chown, opts)
        self.add_layer(s, rec, key, by)

    def check_remote_flags(self, ins: dockerfile.Instruction, srcs: Sequence[str], remotes: Sequence[str]) -> None:
        """BuildKit's rules: URLs and git only for ADD; --checksum and --keep-git-dir only for them."""
        if remotes and ins.cmd == "COPY":
            raise self.err(ins, f"source can't be a URL for COPY ({remote.redact(remotes[0])})",
                           hint="use ADD for URLs and git repositories")
        if "checksum" in ins.flags and (len(remotes) != len(srcs) or not remotes):
            raise self.err(ins, "checksum can't be specified for non-HTTP(S) sources")
        if "keep-git-dir" in ins.flags and not any(remote.is_git(x) for x in remotes):
            raise self.err(ins, "--keep-git-dir is only for git sources")
        if ins.flags.get("keep-git-dir", "false") not in ("true", "false"):
            raise self.err(ins, f"--keep-git-dir={ins.flags['keep-git-dir']}: give true or false")

    def remote_group(self, s: _Stage, ins: dockerfile.Instruction, src: str, stack: contextlib.ExitStack) -> _Group:
        self.indexable = False          # a URL or a repository may answer differently next time
        """A URL downloaded, or a git repository cloned, into a directory of the step's own."""
        tmp = Path(stack.enter_context(_tempdir(self.b.work)))
        checksum = self.subst(s, ins.flags["checksum"]) if "checksum" in ins.flags else None
        if remote.is_git(src):
            self.say(f"Cloning {remote.redact(src)}")
            got = remote.clone(src, tmp, keep_git_dir=ins.flags.get("keep-git-dir") == "true", checksum=checksum)
        else:
            self.say(f"Downloading {remote.redact(src)}")
            got = remote.download(src, tmp, checksum=checksum, max_size=self.b.store.limits.max_size)
        ctx = context.BuildContext(os.fspath(got.root), ignore=False, label=remote.redact(src))
        stack.callback(ctx.close)
        return _Group(ctx, ctx.resolve(got.name) if got.name else [context.Source("", True)], url=not remote.is_git(src))

    @staticmethod
    def dest(s: _Stage, dest: str) -> str:
        """A COPY/ADD destination made absolute against the WORKDIR (a trailing / kept)."""
        workdir = s.run_config.get("WorkingDir") or "/"
        trailing = dest.endswith(("/", "/.", "/..")) or dest in (".", "..")
        dest = posixpath.normpath(posixpath.join(workdir, dest)) + ("/" if trailing else "")
        return "/" if dest == "//" else dest

    def inline_files(self, s: _Stage, docs: Sequence[dockerfile.Heredoc], stack: contextlib.ExitStack) -> _Group:
        """COPY <<NAME: each heredoc as a file NAME (0644), its variables expanded unless the
        word was quoted (BuildKit's rule: escapes applied, quotes kept)."""
        tmp = Path(stack.enter_context(_tempdir(self.b.work)))
        for doc in docs:
            if "/" in doc.name or doc.name in (".", ".."):
                raise dockerfile.DockerfileError(f"heredoc <<{doc.name}: the name of a COPY heredoc is a file name",
                                                 hint="use a name without /; the destination says where it goes")
            text = dockerfile.expand_text(doc.text, s.env()) if doc.expand else doc.text
            fd = os.open(tmp / doc.name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
            os.chmod(tmp / doc.name, 0o644)  # whatever the umask
        ctx = context.BuildContext(os.fspath(tmp), ignore=False, label="the heredocs")
        stack.callback(ctx.close)
        return _Group(ctx, [context.Source(doc.name, False) for doc in docs])

    def source(self, s: _Stage, ins: dockerfile.Instruction,
               stack: contextlib.ExitStack) -> tuple[context.BuildContext, str | None]:
        """The context, or for --from the rootfs of a stage or an image (mounted read-only)."""
        frm = ins.flags.get("from")
        if frm is None:
            return self.ctx, None
        recs, label, ident = self.from_layers(s, ins, frm)      # as written: instructions.check refused any $
        ctx = context.BuildContext(os.fspath(self.mount_layers(recs, stack)), ignore=False, label=label)
        stack.callback(ctx.close)
        return ctx, ident

    def from_layers(self, s: _Stage, ins: dockerfile.Instruction,
                    frm: str) -> tuple[list[images.LayerRecord], str, str]:
        """The layers of an earlier stage (by name or index) or of an image (pulled if
        missing), a label for messages, and an identity for cache keys."""
        names = {x.name: x for x in self.stages if x.name and x.index < s.index}
        src_stage = names.get(frm.lower())
        if src_stage is None and frm.isdigit() and int(frm) < s.index:
            src_stage = self.stages[int(frm)]
        if src_stage is not None:
            if not src_stage.done:
                raise self.err(ins, f"stage {frm!r} was not built")
            return list(src_stage.layers), f"stage {frm}", "stage:" + src_stage.state_key()
        store = self.b.store
        try:
            info = store.get(frm)
        except rterrors.NotFound:
            self.say(f"Pulling {frm}")
            info = store.pull(frm)
            self.indexable = False
        self.resolved(frm, info.id)
        return store.layer_records(info.id), f"image {frm}", "image:" + info.id

    def resolved(self, ref: str, image_id: str) -> None:
        """`ref` named the stored image `image_id` in this build: the index of unchanged
        rebuilds checks that again (a reference by digest or id is never indexed)."""
        name = _tag_name(self.b.store, ref, default_latest=False)
        if name is None:
            self.indexable = False
        else:
            self.refs[name] = image_id

    def mount_layers(self, recs: Sequence[images.LayerRecord], stack: contextlib.ExitStack, *,
                     writable: bool = False) -> Path:
        """An overlay of `recs` (read-only, or writable into a throw-away upper dir), unmounted
        when `stack` closes."""
        tmp = Path(stack.enter_context(_tempdir(self.b.work)))
        root = tmp / "root"
        root.mkdir()
        dirs = self.layer_dirs(recs) or [self.empty_dir()]
        if writable:
            (tmp / "upper").mkdir()
            (tmp / "work").mkdir()
            mounts.mount_overlay(list(reversed(dirs)), tmp / "upper", tmp / "work", root)
        else:
            mounts.mount_overlay(list(reversed(dirs)), None, None, root)
        stack.callback(mounts.unmount, root)
        return root

    def overlay_step(self, s: _Stage, change: Callable[[int, Path], None], *,
                     empty_layer: bool = True) -> images.LayerRecord | None:
        """Run `change(root_fd, merged)` on a writable overlay of the stage's snapshots (root_fd:
        an O_PATH fd of its "/" at `merged`); the layer of what it changed. A change that
        changed nothing makes an empty layer, or None when not `empty_layer`."""
        with _tempdir(self.b.work) as tmp:
            upper, work, merged = tmp / "upper", tmp / "work", tmp / "merged"
            for d in (upper, work, merged):
                d.mkdir()
            lowers = self.layer_dirs(s.layers) or [self.empty_dir()]
            mounts.mount_overlay(list(reversed(lowers)), upper, work, merged)
            try:
                root_fd = os.open(merged, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
                try:
                    change(root_fd, merged)
                finally:
                    os.close(root_fd)
            finally:
                mounts.unmount(merged)
            if not empty_layer and not any(upper.iterdir()):
                return None
            return self.commit(s, upper)

    def copy_layer(self, s: _Stage, groups: Sequence[_Group], dest: str, chown: str | None,
                   opts: context.CopyOptions) -> images.LayerRecord:
        """COPY/ADD into an overlay of the stage. Owners are `opts`' (root, or the source's
        for --from), or --chown's resolved in the stage's own /etc/passwd and /etc/group."""
        total = sum(len(g.sources) for g in groups)

        def change(root_fd: int, merged: Path) -> None:
            nonlocal opts
            if chown:
                uid, gid = _owner(merged, chown)
                opts = dataclasses.replace(opts, uid=uid, gid=gid)
            if total > 1 and not dest.endswith("/") and not context.is_dir_in(root_fd, dest):
                raise context.ContextError(
                    f"when copying several sources, the destination {dest!r} must be a directory ending in /")
            for g in groups:
                plain = [x for x in g.sources if x.rel not in g.archives]
                if g.parents is not None:
                    context.ensure_dir(root_fd, dest, uid=opts.uid or 0, gid=opts.gid or 0)
                    for x, keep in zip(g.sources, g.parents, strict=True):
                        context.copy_parents(g.ctx, x, keep, root_fd, dest, opts)
                elif plain:
                    # several sources (of any kind) go into the destination directory
                    context.copy_sources(g.ctx, plain, root_fd, dest if total == len(plain)
                                         else dest.rstrip("/") + "/", opts)
                for x in g.sources:
                    if x.rel in g.archives:   # ADD unpacks a local archive into the destination directory
                        context.unpack(g.ctx, x, root_fd, dest, self.b.store.limits,
                                       owner=(opts.uid or 0, opts.gid or 0) if chown else None)

        rec = self.overlay_step(s, change)
        assert rec is not None
        return rec

    # ---------------------------------------------------------------- the image

    @staticmethod
    def image_config(s: _Stage) -> dict[str, Any]:
        """The image config of the stage's state (a new dict; its values are the state's)."""
        cfg = dict(s.config)
        cfg["rootfs"] = {"type": "layers", "diff_ids": [x.diff_id for x in s.layers]}
        cfg.setdefault("architecture", _host_arch())
        cfg.setdefault("os", "linux")
        # created: a rebuild from the cache makes the same image (same id and digest)
        cfg["created"] = s.created
        rc = cfg.get("config") or {}
        cfg["config"] = {k: v for k, v in rc.items() if v is not None or k == "Cmd"}
        if cfg["config"].get("Cmd") is None:
            cfg["config"].pop("Cmd", None)
        return cfg

    def finish(self, s: _Stage) -> BuildResult:
        store = self.b.store
        recs = [images.LayerRecord(x.digest, x.size, _oci_layer_type(x.media_type), x.diff_id, x.chain_id)
                for x in s.layers]
        if s.pristine:      # FROM an image and nothing more: the build's image is that image, as dockerd's
            config_digest, manifest_digest = store.add_local(store.image_config(s.pristine), recs, self.opts.tags,
                                                             config_raw=store.content.read(s.pristine))
        else:
            # a stage still undated (FROM scratch or an image without `created`, metadata steps
            # only) keeps 1970 in its config, for the same id each time, and is recorded as an
            # image without a time: images, history and inspect show it as dockerd shows one
            config_digest, manifest_digest = store.add_local(self.image_config(s), recs, self.opts.tags,
                                                             dated=s.dated)
        # dockerd's order: the warning, the image id (aux), the id and the tags as people read them
        unused = sorted(k for k in set(self.opts.build_args) - self.used_args() - {"SOURCE_DATE_EPOCH"}
                        if k.lower() not in _PROXY_ARGS)
        if unused:      # a Go list, as dockerd prints it: [A B]
            self.say(f"[Warning] One or more build-args [{' '.join(unused)}] were not consumed")
        if self.stored is not None:
            self.stored(config_digest)
        self.say(f"Successfully built {config_digest[7:19]}")
        for tag in self.opts.tags:
            self.say(f"Successfully tagged {imagenames.familiar(_tag_name(store, tag, default_latest=True) or tag)}")
        return BuildResult(config_digest, manifest_digest, self.opts.tags, self.step, self.cached)

    def used_args(self) -> set[str]:
        used = set(self.declared_meta)
        for st in self.stages:
            for ins in st.instructions:
                if ins.cmd == "ARG":
                    used |= {w.partition("=")[0] for w in ins.args.split()}
        return used


# BuildKit's predefined proxy build args (any case): every RUN gets them, ARG or not
_PROXY_ARGS = ("http_proxy", "https_proxy", "ftp_proxy", "no_proxy", "all_proxy")


def _proxy_env(build_args: Mapping[str, str]) -> dict[str, str]:
    """The environment RUN steps get from the proxy build args (BuildKit's proxyEnvFromBuildArgs
    and the exec op's proxyEnvList): each one given (its name in any case, the last in sorted
    order winning) as NAME and name both; none in the image config, its history or a step's
    cache key (the exec op's cache map drops ProxyEnv), so a changed proxy reruns nothing."""
    values: dict[str, str] = {}
    for k in sorted(build_args):
        if k.lower() in _PROXY_ARGS:
            values[k.lower()] = build_args[k]
    env: dict[str, str] = {}
    for name in _PROXY_ARGS:
        if values.get(name):                # (an empty value sets nothing, as BuildKit's)
            env[name.upper()] = env[name] = values[name]
    return env


def _os_message(exc: OSError) -> str:
    """An OSError of a step as words, naming the path(s) it concerns (a step's error names the
    step: a system call's failure is a failed step, never a traceback)."""
    paths = " -> ".join(repr(os.fsdecode(p)) for p in (exc.filename, exc.filename2) if p is not None)
    what = exc.strerror or str(exc) or type(exc).__name__
    return f"{paths}: {what}" if paths else what


def _parents_sources(ctx: context.BuildContext, srcs: Sequence[str],
                     exclude: context.IgnoreRules | None) -> tuple[list[context.Source], list[str], bool]:
    """COPY --parents: the sources, each one's path kept below the destination (BuildKit's
    rules, `context.BuildContext.resolve_parents`; --exclude matched against that path), and
    whether the destination is made."""
    sources: list[context.Source] = []
    kept: list[str] = []
    made = False
    for src in srcs:
        found, pivot = ctx.resolve_parents(src)
        made = made or pivot
        for x, keep in found:
            if not (exclude and keep and exclude.excluded(keep)):
                sources.append(x)
                kept.append(keep)
    return sources, kept, made


_STEP_LABEL = "reconciler.build"                 # "true" on a step's container (until it is kept)
_PROCESS_LABEL = "reconciler.build.process"      # the build process that made it: "PID START BOOT"


def _this_process() -> str:
    """This process as `_PROCESS_LABEL` names it (procs.alive's identity)."""
    from reconciler.runtime.native import procs

    pid = os.getpid()
    return f"{pid} {procs.start_time(pid)} {procs.boot_id()}"


def _tag_name(store: images.ImageStore, ref: str, *, default_latest: bool) -> str | None:
    """"name:tag" as the store records a tag (a tag left out: latest, if `default_latest`, as
    add_local tags), or None for a reference by digest, or one without a tag."""
    r = store.parse(ref)
    tag = r.tag or ("latest" if default_latest and r.digest is None else None)
    return None if r.digest or tag is None else f"{r.name}:{tag}"


def _check_platform(platform: str, where: str) -> None:
    """FROM --platform: this host's platform only (os/arch, a variant of it, any case)."""
    host = f"linux/{_host_arch()}"
    parts = platform.lower().split("/")
    normal = "/".join(parts[:2])
    if normal in ("linux/x86_64", "linux/x86-64"):
        normal = "linux/amd64"
    if normal == "linux/aarch64":
        normal = "linux/arm64"
    if normal != host or len(parts) > 3 or not all(parts):
        raise dockerfile.DockerfileError(
            f"{where}FROM --platform={platform}: this builder makes {host} images only (the host's platform)",
            hint=f"remove --platform, or build for {platform} on a {platform} host")


def _number_ssh(specs: list[runmounts.RunMount]) -> list[runmounts.RunMount]:
    """ssh mounts without a target get /run/buildkit/ssh_agent.N, N counting them (BuildKit)."""
    out, n = [], 0
    for m in specs:
        if m.type == "ssh":
            if m.target == "/run/buildkit/ssh_agent.0":
                m = dataclasses.replace(m, target=f"/run/buildkit/ssh_agent.{n}")
            n += 1
        out.append(m)
    return out


def _check_trigger(text: str, where: str) -> None:
    """ONBUILD's instruction: any but ONBUILD, FROM and MAINTAINER (Docker's rule)."""
    keyword = text.split(None, 1)[0].upper() if text.strip() else ""
    if not keyword:
        raise dockerfile.DockerfileError(where + "ONBUILD needs an instruction to run")
    if keyword == "ONBUILD":
        raise dockerfile.DockerfileError(where + "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
    if keyword in ("FROM", "MAINTAINER"):
        raise dockerfile.DockerfileError(where + f"{keyword} isn't allowed as an ONBUILD trigger")
    if keyword not in instructions.INSTRUCTIONS:
        raise dockerfile.DockerfileError(where + f"unknown instruction: {keyword}")


def _oci_layer_type(media_type: str) -> str:
    return {
        "application/vnd.docker.image.rootfs.diff.tar.gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
        "application/vnd.docker.image.rootfs.diff.tar": "application/vnd.oci.image.layer.v1.tar",
        "application/vnd.docker.image.rootfs.diff.tar.zstd": "application/vnd.oci.image.layer.v1.tar+zstd",
    }.get(media_type, media_type)


def layer_from_upper(store: images.ImageStore, upper: Path, below: Sequence[images.LayerRecord],
                     tmp_dir: Path, *, skip: frozenset[str] = frozenset(),
                     prune: runmounts.Before | None = None, epoch: int | None = None) -> images.LayerRecord:
    """An overlay upper dir as a new top layer over `below`: its blob in the content store and
    its snapshot by ChainID (a build step's RUN/COPY, `reconcile commit`); `epoch`: no entry
    newer than this Unix time (SOURCE_DATE_EPOCH)."""
    # tarfile and gzip load for a layer made, not for a cached one
    from reconciler.runtime.native.build import diff

    blob = diff.write_layer(upper, store.content, tmp_dir, skip=skip, prune=prune, epoch=epoch)
    chain = snapshots.chain_ids([*(x.diff_id for x in below), blob.diff_id])[-1]
    rec = images.LayerRecord(blob.digest, blob.size, diff.LAYER_MEDIA_TYPE, blob.diff_id, chain)

    def apply(fs: Path, lowers: list[Path]) -> dict[str, Any]:
        # the extractor loads for a layer made, not for a cached one
        from reconciler.runtime.native.images import layers

        with store.content.open(rec.digest) as f:
            res = layers.apply_layer(f, fs, lowers=lowers, expected_diff_id=rec.diff_id, limits=store.limits)
        return {"diff_id": res.diff_id, "size": res.size, "unpacked": res.unpacked, "digest": rec.digest}

    store.snapshots.create(chain, [x.chain_id for x in below], apply)
    return rec


def platform_args() -> dict[str, str]:
    """BuildKit's automatic platform ARGs (usable in FROM, and in a stage after `ARG NAME`)."""
    arch = _host_arch()
    out = {}
    for prefix in ("TARGET", "BUILD"):
        out.update({f"{prefix}PLATFORM": f"linux/{arch}", f"{prefix}OS": "linux", f"{prefix}ARCH": arch,
                    f"{prefix}VARIANT": ""})
    return out


def _mount(type: str, target: str, *, source: str = "", read_only: bool = False,
           options: tuple[str, ...] = ()) -> base.Mount:
    """A mount of a RUN step's container (runtime.base loaded here: a build that runs nothing
    needs none of the engine's dataclasses)."""
    from reconciler.runtime import base

    return base.Mount(type=type, target=target, source=source, read_only=read_only, options=options)


def _host_arch() -> str:
    m = os.uname().machine
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386"}.get(m, m)


def _owner(rootfs: Path, spec: str, *, warn: Progress | None = None) -> tuple[int, int]:
    """The owner `user[:group]` gives what COPY/ADD --chown copies and the directories WORKDIR
    makes under USER, as BuildKit resolves it (llb.WithUser, then the solver's readUser): a
    number, or `root`, is that uid with gid = uid; a name is looked up in the image's /etc/passwd:
    its uid and its primary gid there; a group (a number, `root`, or a name looked up in the
    image's /etc/group) replaces the gid. A name the image does not define raises
    InvalidArgument; with `warn` (WORKDIR) it is said and passed over as BuildKit passes it
    over: an unknown user is uid and gid 0, an unknown group leaves the user's gid."""

    def lookup(user_spec: str, instead: str) -> tuple[int, int] | None:
        # the container code loads for a --chown or a WORKDIR under USER by name only
        from reconciler.runtime.native.containers import bundle

        try:
            u = bundle.resolve_user(rootfs, user_spec)
        except rterrors.InvalidArgument as exc:
            if warn is None:
                raise
            warn(f"[Warning] {exc.message}; {instead}, as BuildKit does")
            return None
        return u.uid, u.gid

    user, _, group = spec.partition(":")
    if user.isdigit() or user in ("", "root"):
        uid = gid = int(user) if user.isdigit() else 0
    else:
        uid, gid = lookup(user, "uid and gid 0 are taken") or (0, 0)
    if group.isdigit() or group == "root":
        gid = int(group) if group.isdigit() else 0
    elif group:
        gid = (lookup(f"0:{group}", f"gid {gid} is kept") or (0, gid))[1]
    return uid, gid


@contextlib.contextmanager
def _tempdir(parent: Path) -> Any:
    d = parent / f"step-{os.getpid()}-{secrets.token_hex(4)}"
    d.mkdir(mode=0o700)
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


# Instructions `docker commit --change` (and `reconcile commit -c`) accepts: metadata only.
CHANGE_INSTRUCTIONS = frozenset({"CMD", "ENTRYPOINT", "ENV", "EXPOSE", "LABEL", "USER", "VOLUME",
                                 "WORKDIR", "STOPSIGNAL", "HEALTHCHECK", "SHELL", "ONBUILD"})


def apply_changes(config: Mapping[str, Any], changes: Sequence[str]) -> dict[str, Any]:
    """The image config `config` with Dockerfile metadata instructions applied (commit -c):
    the same handlers, so `-c 'ENV A=1'` means what `ENV A=1` means in a Dockerfile."""
    stage = _Stage(index=0, name=None, instructions=[], config=copy.deepcopy(dict(config)))
    stage.config.setdefault("config", {})
    run = _Run.__new__(_Run)                 # only the metadata handlers run: no builder, no context
    run.escape, run.step, run.total, run.say = "\\", 0, len(changes), lambda _m: None
    run.metadata_only = True
    for text in changes:
        instrs = dockerfile.parse(text).instructions
        if len(instrs) != 1 or instrs[0].cmd not in CHANGE_INSTRUCTIONS:
            raise rterrors.InvalidArgument(
                f"invalid change {text!r}",
                hint=f"one Dockerfile instruction of {', '.join(sorted(CHANGE_INSTRUCTIONS))}")
        run.step += 1
        try:
            getattr(run, "do_" + instrs[0].cmd.lower())(stage, instrs[0])
        except dockerfile.DockerfileError as exc:
            raise rterrors.InvalidArgument(f"invalid change {text!r}: {exc.message}") from None
    return stage.config
