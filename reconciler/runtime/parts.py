"""The native engine's parts, for the commands that have no meaning on another engine (#15).

`runtime.opening` opens engines; this module, its sibling, hands the native-only commands the
native engine's own parts, so the CLI names no module of `runtime/native/`:

    locations(root, run_dir, prefix)      where a state root keeps its run dir and name prefix
    container_summaries(root, ...)        what `ps` shows, read from the state DB alone (or None)
    image_summaries(root)                 what `images` shows, likewise
    engine_components(oci_runtime)        the engine's programs, as `info` (and /info) reports them
    lint_dockerfile / build_image         `build --check`, `build`
    save_images / load_images             `save`, `load` (docker-archive, oci-archive)
    push_image / tag_image                `push`, `tag`
    commit_container / export_container   `commit`, `container export`
    import_image                          `image import` (docker import: a filesystem tarball)
    volume_store / export_volume / import_volume   `volume ...`
    network_manager                       `network ...`
    exec_argv / attach / resize           a terminal attached to `run`, `exec` and `attach` (conmon's socket)
    start_attached                        `start -a`: a start with conmon's socket connected first
    supervising                           `run -it --rm`: this process removes its AutoRemove container
    run_foreground                        `run` without a terminal, step by step (the CLI's engine
                                          and an agent's, POST /v1/run)
    create                                a container made, its image pulled if missing (`run`'s
                                          first step; `create`, here and through an agent)

Stdlib only at import time (`options.resolve` calls `locations` before every command): each
function imports the part it uses when called.
"""

from __future__ import annotations

# annotations only: `locations` runs at the start of every CLI command that names no run dir (#21)
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
    from contextlib import AbstractContextManager
    from pathlib import Path
    from typing import IO, Any

    from reconciler.runtime.base import ContainerConfig
    from reconciler.runtime.native.backend import NativeRuntime
    from reconciler.runtime.native.build.lint import Result
    from reconciler.runtime.native.containers import containers
    from reconciler.runtime.native.containers.execs import AttachSocket, Launch
    from reconciler.runtime.native.containers.records import RecordStore
    from reconciler.runtime.native.images.archive import LoadedImage
    from reconciler.runtime.native.images.images import ImageStore
    from reconciler.runtime.native.network.network import NetworkManager
    from reconciler.runtime.native.volumes.volumes import VolumeStore
    from reconciler.runtime.opening import Place

__all__ = ["attach", "build_image", "commit_container", "container_summaries", "create", "engine_components", "exec_argv", "exec_relayed",
           "export_container", "export_volume", "image_summaries", "import_image", "import_volume", "lint_dockerfile", "load_images",
           "locations", "network_manager", "push_image",
           "resize", "run_foreground", "save_images", "start_attached", "supervising", "tag_image", "unpack_context", "volume_store"]

if TYPE_CHECKING:
    Progress = Callable[[str], None]


def locations(root: Path | str, run_dir: Path | str | None = None, name_prefix: str | None = None) -> tuple[str, str]:
    """The run dir and name prefix to open `root` with: what the caller names, else what the
    root recorded when first opened, else names of its own. Strings, computed with os only:
    every CLI command that names no run dir asks at start (#21)."""
    from reconciler.runtime.native import locations as locations_

    return locations_.resolve(str(root), str(run_dir) if run_dir else None, name_prefix)


def container_summaries(root: str, run_dir: str, name_prefix: str, *,
                        measure: Callable[[Mapping[str, Any]], bool] | None = None) -> list[dict[str, Any]] | None:
    """What `ps` shows of each native container at `root`, newest first, read from its state DB
    without opening the engine when every record is as observation finds it (no Record, no
    dataclass, no json: summaries.read, #21); None when the record store must answer.
    `measure`: the rows (`ps -s`) that get their sizes (containers/sizes.py)."""
    from reconciler.runtime.native.containers import summaries

    return summaries.read(root, run_dir, name_prefix, measure=measure)


def image_summaries(root: str) -> list[dict[str, Any]] | None:
    """What `images` shows of each native image at `root` (listing.image_summary's fields),
    newest pull first, read from its state DB without opening the image store (no dataclass,
    nothing created: images/summaries.py, #21); None when the store must answer."""
    from reconciler.runtime.native.images import summaries

    return summaries.read(root)


def engine_components(oci_runtime: str) -> list[Any]:
    """The native engine's programs as each reports itself (components.of_engine: conmon, the OCI
    runtime `oci_runtime` new containers get, found as the engine finds it, the init), for `info`
    (the Engine API's /info asks its engine's own)."""
    import shutil

    from reconciler.runtime.native.containers import components

    path = shutil.which(oci_runtime) or shutil.which(oci_runtime, path="/usr/sbin:/usr/bin:/sbin:/bin")
    return components.of_engine(oci_runtime, path)


def lint_dockerfile(text: str) -> Result:
    """The findings of `build --check` on a Dockerfile's text; InvalidArgument (its message
    'Dockerfile line N: ...') when it cannot be parsed."""
    from reconciler.runtime.native.build import lint

    return lint.check(text)


def image_present(root: str, ref: str, *, head: bool = True) -> Any:
    """A tag whose image the native engine at the state root `root` holds (images.presence:
    its state DB and one plain HEAD, none without `head`), without the engine's place, its
    config or the image store (#21: a CLI re-pull); None when a full pull must answer."""
    from reconciler.runtime.native.images import presence

    return presence.present_at(root, ref, head=head)


def rebuilt(root: str, options: Mapping[str, Any]) -> tuple[str, list[str]] | None:
    """An unchanged rebuild's answer (image id, the lines the build prints) from the index of
    the state root `root` (build/rebuilds.py: the same lines, the same image), without the
    builder, the image store or the engine's place (#21); None when build_image must run."""
    from pathlib import Path

    from reconciler.runtime.native.build import rebuilds

    return rebuilds.lookup(Path(root), options)


def unpack_context(path: str, dest: str) -> bool:
    """`reconcile build -`: whether standard input, spooled to `path`, is a tar archive (plain or
    compressed), then unpacked into the directory `dest` as the build context
    (build/context.py `unpack_context`: the image layer extractor); False: it is a Dockerfile."""
    from reconciler.runtime.native.build import context

    return context.unpack_context(path, dest)


def build_image(place: Place, progress: Progress | None, **options: Any) -> str:
    """Build with the native builder at `place` (`options`: builder.BuildOptions' fields); the
    image's id."""
    import functools

    from reconciler.runtime.native.build import builder
    from reconciler.runtime.native.images import images

    config = place.native_config()

    @functools.cache
    def manager() -> containers.ContainerManager:   # opened by the first RUN: a cached build runs none
        from reconciler.runtime.native.containers import containers

        return containers.ContainerManager(config, oci_runtime=place.oci_runtime)

    store = images.ImageStore(config, container_image_ids=lambda: {r.image_id for r in manager().records()})
    result = builder.Builder(store, manager).build(builder.BuildOptions(**options), progress)
    return result.image_id


def save_images(store: ImageStore, refs: Sequence[str], out: IO[bytes], *, fmt: str,
                progress: Progress | None) -> None:
    """Write `refs` as one image archive (`fmt`: docker-archive or oci-archive) to `out`."""
    from reconciler.runtime.native.images import archive

    archive.save(store, refs, out, fmt=fmt, progress=progress)


def load_images(store: ImageStore, src: IO[bytes], *, progress: Progress | None) -> list[LoadedImage]:
    """The images of the archive `src`, loaded into `store`."""
    from reconciler.runtime.native.images import archive

    return archive.load(store, src, progress=progress)


def push_image(store: ImageStore, ref: str, dest: str | None, *, progress: Progress | None) -> str:
    """Push `ref` (as `dest` when given) to its registry; the manifest's digest."""
    from reconciler.runtime.native.build import push

    return push.push(store, ref, dest, progress=progress)


def tag_image(store: ImageStore, source: str, target: str) -> str:
    """Tag the image `source` as `target`."""
    from reconciler.runtime.native.build import push

    return push.tag(store, source, target)


def commit_container(place: Place, store: ImageStore, name: str, ref: str | None, *, changes: Sequence[str],
                     message: str, author: str, pause: bool) -> str:
    """Commit the changes of the native container `name` as a new image; its id."""
    from reconciler.runtime import opening
    from reconciler.runtime.native import commit

    manager = opening.open_native(place).containers                 # --oci-runtime: the place's
    return commit.commit(store, manager, name, ref, changes=changes, message=message, author=author, pause=pause)


def import_image(store: ImageStore, source: str, ref: str | None, *, stdin: IO[bytes] | None,
                 changes: Sequence[str], message: str, platform: str | None) -> str:
    """`image import`: the filesystem tarball `source` (a file, `-` for `stdin`, an http(s) URL)
    as an image of one layer; its id."""
    from reconciler.runtime.native import commit

    return commit.import_image(store, source, ref, stdin=stdin, changes=changes, message=message, platform=platform)


def export_container(place: Place, store: ImageStore, name: str, out: IO[bytes], *, with_image: bool,
                     with_volumes: bool, leave_running: bool, progress: Progress | None,
                     discard_changes: bool = False) -> str:
    """Write the container archive of the native container `name` to `out`; the image's id."""
    from reconciler.runtime import opening
    from reconciler.runtime.native import transfer

    native = opening.open_native(place)                               # --oci-runtime: the place's
    return transfer.export_container(store, native.containers, volume_store(place), name, out,
                                     with_image=with_image, with_volumes=with_volumes,
                                     leave_running=leave_running, discard_changes=discard_changes,
                                     progress=progress)


def volume_store(place: Place) -> VolumeStore:
    """The native engine's named volumes at `place`."""
    from reconciler.runtime.native.volumes import volumes

    config = place.native_config()
    return volumes.VolumeStore(config.root, config.db())


def export_volume(place: Place, name: str, out: IO[bytes]) -> None:
    """Write the volume `name` as a tar archive to `out` (refused while a container that mounts
    it runs: `transfer.refuse_writers`)."""
    from reconciler.runtime import opening
    from reconciler.runtime.native import transfer

    transfer.export_volume(volume_store(place), name, out, manager=opening.open_native(place).containers)


def import_volume(place: Place, store: ImageStore, name: str, src: IO[bytes]) -> None:
    """Fill the volume `name` from the archive `src`."""
    from reconciler.runtime.native import transfer

    transfer.import_volume(volume_store(place), name, src, store=store)


def network_manager(place: Place) -> NetworkManager:
    """The native engine's bridge networks at `place`."""
    from reconciler.runtime.native.network import network

    return network.NetworkManager(place.native_config())


def exec_argv(containers: RecordStore, name: str, argv: Sequence[str], *, tty: bool, user: str | None = None,
              workdir: str | None = None, env: Sequence[str] = ()) -> Launch:
    """The command that runs `argv` in the native container `name` (`runc exec`), with its
    files: the caller runs `argv`, asks `failure()` once it ended, and `remove()`s them."""
    from reconciler.runtime.native.containers import execs

    return execs.exec_argv(containers, name, argv, tty=tty, user=user, workdir=workdir, env=env)


def exec_relayed(containers: RecordStore, name: str, argv: Sequence[str], *, stdin: int | None,
                 user: str | None = None, workdir: str | None = None, env: Sequence[str] = ()) -> int:
    """Run `argv` in the native container `name`, its output relayed to ours (and our `stdin`
    fd to its stdin, when given): its exit code (126 for a process that could not start)."""
    import sys

    from reconciler.runtime.native.containers import execs

    return execs.relay(containers, name, argv, stdin=stdin, stdout=sys.stdout.buffer, stderr=sys.stderr.buffer,
                       user=user, workdir=workdir, env=env)


def attach(containers: RecordStore, name: str) -> AttachSocket:
    """A connection to conmon's attach socket of the native container `name`."""
    from reconciler.runtime.native.containers import execs

    return execs.attach(containers, name)


def start_attached(rt: NativeRuntime, name: str) -> AttachSocket:
    """Start the native container `name` (created or exited), connected to its attach socket
    before its process runs (at its start's conmon: `ContainerManager.on_next_start`), so none
    of its output is missed (`start -a`, as `docker start -a` attaches first). Conflict for one
    that runs already (`attach` connects to it)."""
    from reconciler.runtime import errors
    from reconciler.runtime.native.containers import execs

    mgr = rt.containers
    rec = mgr.get(name)
    if rec.status == "running":
        raise errors.Conflict(f"container {rec.name} is running already", hint=f"reconcile attach {rec.name}")
    connected: list[AttachSocket] = []
    failed: list[errors.RuntimeBackendError] = []

    def connect(now: Any) -> None:          # in the start, its conmon up and its process not run yet
        try:
            connected.append(execs.connect(mgr, now))
        except errors.RuntimeBackendError as exc:
            failed.append(exc)

    withdraw = mgr.on_next_start(rec.id, connect)
    try:
        rt.start_container(rec.id)
    except BaseException:
        for sock in connected:
            sock.close()
        raise
    finally:
        withdraw()
    if not connected:       # it runs: its output can still be followed
        raise failed[0] if failed else errors.RuntimeBackendError(
            f"cannot attach to container {rec.name}: it was started by another process meanwhile",
            hint=f"reconcile attach {rec.name}")
    return connected[0]


def supervising(rt: NativeRuntime) -> AbstractContextManager[None]:
    """While it lasts, an AutoRemove container of the native engine `rt` that exits is left to
    this process to remove (conmon's exit command leaves it to a supervisor: autoremove.py):
    `run -it --rm` removes its own once it exited in the session, and leaves it to the exit
    command after a detach."""
    from reconciler.runtime.native.containers import autoremove

    return autoremove.supervising(rt.config.run_dir)


def resize(containers: RecordStore, name: str, rows: int, cols: int) -> None:
    """Resize the terminal of the native container `name`."""
    from reconciler.runtime.native.containers import execs

    execs.resize(containers, name, rows, cols)


RUN_POLL = 0.01     # between looks at a foreground run's log: its lines printed as they are written


def run_foreground(rt: NativeRuntime, config: ContainerConfig, *, remove: bool, detach: bool,
                   hangup: Callable[[], bool] = lambda: False,
                   pulling: Callable[[], None] = lambda: None) -> Generator[tuple[str, Any], None, None]:
    """`reconcile run` without a terminal on the native engine `rt`, the one home of its steps
    for the CLI's own engine and an agent's (#21: POST /v1/run, one request). Yields ("id",
    the container's id) once it started (a `detach`ed run ends there), then ("stdout" or
    "stderr", a line's bytes as written: with its newline, if it had one) as the container
    writes them, then ("exit", its exit code) once
    it ended and, with `remove`, was removed.

    The image is pulled when the store lacks it (`pulling()` first: the CLI sets its logging
    up). `hangup()` true (Ctrl-C, the agent's client closed its side): the container is
    stopped as `stop` does, its last lines and exit code still follow. Left before its end
    (an error, Ctrl-C during create, the consumer gone): a `remove` container is killed and
    removed, leaving nothing behind. A removed container's anonymous volumes go with it (an
    image's VOLUMEs: `docker run --rm` removes them), as a detached one's do at its exit."""
    # detached, it is AutoRemove: removed at its exit by whoever is there then (autoremove.py);
    # in the foreground, by this run once its output is read
    cid = create(rt, config, volatile=remove, auto_remove=remove and detach, pulling=pulling)
    done = False
    try:
        rt.start_container(cid)
        done = detach
        yield "id", cid
        if detach:
            return
        for line in _output(rt, cid, hangup):
            yield line.stream, line.written
        code = int(rt.containers.wait(cid))
        if remove:
            rt.remove_container(cid, force=True, volumes=True)
        done = True
        yield "exit", code
    finally:
        if remove and not done:
            from reconciler.runtime import errors

            try:
                rt.remove_container(cid, force=True, volumes=True)
            except errors.NotFound:
                pass            # removed meanwhile (`rm -f` from another shell)


def create(rt: NativeRuntime, config: ContainerConfig, *, volatile: bool, auto_remove: bool,
           pulling: Callable[[], None] = lambda: None) -> str:
    """A container of `config` made, its image pulled first when missing (`pulling()` first);
    its id. `run`'s first step, and `reconcile create`'s whole (docker create: `--rm`, its
    `volatile` and `auto_remove`, removes it once it exited after a start), on the CLI's own
    engine and an agent's (POST /v1/containers)."""
    from reconciler.runtime import errors

    try:
        rt.inspect_image(config.image)
    except errors.NotFound:
        pulling()
        rt.pull_image(config.image)
    return rt.create_container(config, volatile=volatile, auto_remove=auto_remove)


def _output(rt: NativeRuntime, cid: str, hangup: Callable[[], bool]) -> Iterator[Any]:
    """The lines of the running container `cid` as they are written, until it ended; stopped
    once `hangup()` says so (asked between lines and between looks)."""
    from reconciler.runtime import opening

    mgr = rt.containers
    until_exit = mgr.until_exit(mgr.get(cid))
    stopped = False

    def stop_if_hung_up() -> None:
        nonlocal stopped
        if not stopped and hangup():
            stopped = True
            rt.stop_container(cid)

    def idle(seconds: float) -> None:
        stop_if_hung_up()
        until_exit(seconds)

    def running() -> bool:
        return mgr.get(cid).status in ("running", "created")

    for line in opening.read_native_logs(mgr.paths(cid).log, is_running=running, poll=RUN_POLL, idle=idle):
        stop_if_hung_up()
        yield line
