"""The native image store: pull, list, inspect, remove; records and tags in the state DB.

Pull pipeline (runtime-internals.md §7, moby/containerd behaviour):

1. `resolve`: HEAD the tag (Docker-Content-Digest). If an image pulled by that digest is
   recorded and all its snapshots and blobs exist, and, chosen from an index, is the one for
   the platform asked (`--platform`, else this host's: docker pulls that one and moves the
   tag; one GET of the index tells), the pull ends here: a re-pull costs one HEAD (a
   reference by digest that is known costs nothing).
2. manifest (index -> this platform), config (verified blob; cached in the content store).
3. layers: each layer whose ChainID snapshot exists is "already exists" (not unpacked again;
   its blob is still downloaded when the store lacks it, as when another image's blob of
   another compression made that snapshot: push and save send every blob of the manifest, and
   an image recorded without one gets it at its next pull); the blobs of the others are
   downloaded by a pool of `config.max_concurrent_downloads` threads, under a cap for the
   whole state root (`config.max_root_downloads`: flock'd slot files, so concurrent
   pulls share it whatever process runs them, the agent's pull helpers and a CLI's alike, as
   dockerd's cap is the daemon's), de-duplicated by digest across pulls in flight (and across
   processes by the ingest lock).
4. extraction overlaps the downloads and itself: each layer is unpacked as soon as its blob is
   there, by a pool of `config.max_concurrent_unpacks` threads, into its own snapshot dir
   (layers.apply_layer with `lowers_pending`; in extractor processes, extractors.py, when the
   pull unpacks `config.process_unpack_min_bytes` or more, so that the unpacks do not share
   this process's interpreter lock; there a layer whose blob this pull downloads is unpacked
   while it downloads, reading the ingest as it grows, and believed only once the download
   was verified and committed), and committed in chain order once its parent
   is (implicit parents then get the lower directory's attributes; a layer with a hardlink
   into a lower one is unpacked again once the lowers are there). Each snapshot is built
   under its ChainID lock (another pull extracting the same layer is waited for, not
   repeated) and its DiffID is verified before it is committed.
5. the image record and the tag are written in one transaction. Its size (`images` SIZE, the
   Engine API's, inspect's) is the sum of its layers' unpacked sizes, as `docker images` shows
   it: each counted by the extractor as it unpacked the layer (layers.py says what is counted)
   and kept in the layer's snapshot, a layer two images share counted in each (as docker); the
   row keeps the compressed size too (what a pull downloads).

A pull holds the store lock shared (GC takes it exclusive) and registers a lease with an
expiry naming everything it may still reference, so an interrupted pull's blobs survive a GC
until the lease expires. A kill -9 at any point leaves only ingests (resumed next time),
`extract-*` dirs (debris), and a lease (expires): the next pull completes.

A pull is cancelled when its `progress` callback raises errors.Cancelled (the executor's does
once the reconciler is stopping): downloads stop at their next chunk and their ingests are
removed, no further layer is extracted (those being extracted are finished, or discarded when a
layer below them failed), the lease is dropped, and Cancelled is passed on. Committed blobs and
snapshots stay (they are whole).

A blob whose download fails its digest or size leaves nothing: its ingest is dropped and
whatever was unpacked of it while it downloaded is discarded with its snapshot dir.

A full file system is `DiskFull`, never a layer or download error: each partial download is
dropped at once (content.py), a blob that filled the disk while being unpacked is kept (it is
not corrupt), the lease is dropped on the way out, and then the error is said for the image:
the file system, its free space now, and what a retry needs: the compressed size of the blobs
still missing for the download, and more to unpack the layers not unpacked yet. The next pull, with room, starts over.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reconciler import diskfull
from reconciler._dataclass import dataclass
from reconciler.errors import DiskFull
from reconciler.runtime import errors
from reconciler.runtime.native.config import NativeConfig
from reconciler.runtime.native.images import content, presence, snapshots, summaries

if TYPE_CHECKING:
    from concurrent.futures import Future, ThreadPoolExecutor

    from reconciler import registry_client as rc
    from reconciler.runtime import base
    from reconciler.runtime.native.images import extractors, layers

__all__ = ["DownloadSlots", "ImageStore", "LayerRecord", "config_bytes"]
LEASE_SECONDS = 3600.0

LAYER_MEDIA_TYPES = frozenset({
    "application/vnd.oci.image.layer.v1.tar",
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.oci.image.layer.v1.tar+zstd",
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
    "application/vnd.docker.image.rootfs.diff.tar",
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
    "application/vnd.docker.image.rootfs.diff.tar.zstd",
})

_SCHEMA = """
CREATE TABLE IF NOT EXISTS images (
    id TEXT PRIMARY KEY,                -- config digest = image id
    manifest_digest TEXT NOT NULL,      -- the platform's image manifest
    index_digest TEXT,                  -- the index it was chosen from, if any
    size INTEGER NOT NULL,              -- compressed layer bytes (what a pull downloads)
    created TEXT,
    layers TEXT NOT NULL,               -- JSON list of LayerRecord dicts, bottom first
    pulled_at REAL NOT NULL,
    unpacked INTEGER                    -- the layers' unpacked bytes, as docker images' SIZE counts them;
);                                      --   NULL: not measured yet (recorded by an older version)
CREATE INDEX IF NOT EXISTS images_manifest ON images(manifest_digest);
CREATE INDEX IF NOT EXISTS images_index ON images(index_digest);
CREATE TABLE IF NOT EXISTS image_refs (
    ref TEXT PRIMARY KEY,               -- "registry/repo:tag"
    image_id TEXT NOT NULL,
    digest TEXT NOT NULL,               -- what the tag resolved to (index or manifest digest)
    local INTEGER NOT NULL DEFAULT 0    -- 1: tagged here (build, commit, load, tag), never pulled
);                                      --    nor pushed as this ref (made_here)
CREATE INDEX IF NOT EXISTS image_refs_image ON image_refs(image_id);
CREATE TABLE IF NOT EXISTS image_digest_refs (
    ref TEXT PRIMARY KEY,               -- "registry/repo@sha256:...": pulled by digest (no tag)
    image_id TEXT NOT NULL              --   Docker's RepoDigests of such an image: no dangling one
);
CREATE INDEX IF NOT EXISTS image_digest_refs_image ON image_digest_refs(image_id);
CREATE TABLE IF NOT EXISTS pull_leases (
    id TEXT PRIMARY KEY,
    expires REAL NOT NULL,
    blobs TEXT NOT NULL,                -- JSON list of digests
    chains TEXT NOT NULL                -- JSON list of ChainIDs
);
"""
_COLUMNS = (("image_refs", "local", "INTEGER NOT NULL DEFAULT 0"),   # added since the table was made
            ("images", "unpacked", "INTEGER"))

# Downloads in flight in this process, by (content root, digest): concurrent pulls share them.
_INFLIGHT: dict[tuple[str, str], Future[None]] = {}
_INFLIGHT_LOCK = threading.Lock()


class DownloadSlots:
    """At most `n` blob downloads at once on one state root, across threads and processes: a
    download holds one of `n` slot files (`<locks>/download-<i>.lock`) with flock, which the
    kernel releases when its holder dies. A download that finds every slot taken looks again
    after a short wait (5 ms, doubling to 100 ms): downloads last far longer."""

    def __init__(self, locks_dir: Path, n: int) -> None:
        self.paths = [locks_dir / f"download-{i}.lock" for i in range(max(1, n))]

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        fd = self._take()
        try:
            yield
        finally:
            os.close(fd)

    def _take(self) -> int:
        delay = 0.005
        first = (os.getpid() + threading.get_ident()) % len(self.paths)     # takers spread over the slots
        while True:
            for path in self.paths[first:] + self.paths[:first]:
                fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    os.close(fd)
                    continue
                except BaseException:
                    os.close(fd)
                    raise
                return fd
            time.sleep(delay)
            delay = min(delay * 2, 0.1)


@dataclass(frozen=True)
class ImageUser:
    """A container made from an image: its id, and whether it runs (paused, or restarting: its
    restart pending, counts as running, as dockerd counts a restarting container)."""

    image_id: str
    container_id: str
    running: bool


def removal(image_id: str, ref: str, by_tag: str | None, refs: Sequence[str], users: Sequence[ImageUser], *,
            force: bool) -> tuple[list[str], bool]:
    """What `rmi REF` does to an image: the tags it removes and whether the image goes, or a
    Conflict in dockerd's words, as dockerd 20.10 decides (daemon/images/image_delete.go).

    By tag (`by_tag`, one of `refs`, a tag or a digest reference): an image with other references
    loses that one (and the last tag of a repository its digest references, as dockerd); its last one,
    which a container uses, needs force, and then only goes (the image stays for its containers).
    By id (or digest): never while a container runs it, force or not ("cannot be forced"); several
    tags need force, and so does a stopped container; then every tag goes. An image a container
    uses is never deleted here: the native engine's containers run on the image's layers, which
    the store keeps while the image does (dockerd deletes the image and keeps the layers under the
    container: its `rmi -f` also prints `Deleted:`); a stopped container's untagged image is
    refused rather than nothing done."""
    short = image_id.partition(":")[2][:12] if ":" in image_id else image_id[:12]

    def who(u: ImageUser) -> str:
        return f"container {u.container_id[:12]}" if u.container_id else "a container"

    if by_tag is not None:
        gone = [by_tag]
        if "@" not in by_tag:       # a tag: the last of its repository takes that repository's digests along
            repo = by_tag.rsplit(":", 1)[0]
            rest = [t for t in refs if t != by_tag]
            if not any("@" not in t and t.rsplit(":", 1)[0] == repo for t in rest):
                gone += [t for t in rest if "@" in t and t.split("@", 1)[0] == repo]
        if len(refs) > len(gone):
            return gone, False
        if users and not force:
            raise errors.Conflict(f'conflict: unable to remove repository reference "{ref}" (must force) - '
                                  f"{who(users[0])} is using its referenced image {short}",
                                  hint="remove the container first, or use --force to untag it")
        return gone, not users
    running = [u for u in users if u.running]
    if running:
        raise errors.Conflict(f"conflict: unable to delete {short} (cannot be forced) - image is being used by "
                              f"running {who(running[0])}", hint="stop and remove the container first")
    if not _one_reference(refs) and not force:
        raise errors.Conflict(f"conflict: unable to delete {short} (must be forced) - image is referenced in "
                              "multiple repositories", hint="remove the tags one by one, or use --force")
    if users and (not force or not refs):
        words = "must be forced" if not force else "cannot be forced"
        raise errors.Conflict(f"conflict: unable to delete {short} ({words}) - image is being used by stopped "
                              f"{who(users[0])}", hint="remove the container first" + (
                                  ", or use --force to untag it" if not force else
                                  ": its layers are the image's, which the native engine keeps with the image"))
    return list(refs), not users


def config_bytes(cfg: Mapping[str, Any]) -> bytes:
    """The bytes of an image config made on this host (`ImageStore.add_local`): canonical JSON.
    Its sha256 is the image's id, which the builder prints after each step (`build/builder.py`)."""
    return json.dumps(cfg, sort_keys=True, separators=(",", ":")).encode()


def _one_reference(refs: Sequence[str]) -> bool:
    """Whether `refs` count as one for a removal by id (dockerd's isSingleReference): at most
    one tag, and digest references of that tag's repository only."""
    if len(refs) <= 1:
        return True
    tags = [t for t in refs if "@" not in t]
    repos = {t.split("@", 1)[0] for t in refs if "@" in t}
    if len(tags) > 1:
        return False
    return len(repos) == 1 and (not tags or tags[0].rsplit(":", 1)[0] in repos)


@dataclass(frozen=True)
class LayerRecord:
    """One layer of a stored image."""

    digest: str             # compressed blob digest (manifest)
    size: int               # compressed bytes
    media_type: str
    diff_id: str
    chain_id: str


def _rc() -> Any:
    """The registry client package, imported on first use (it brings httpx: ~0.15 s)."""
    from reconciler import registry_client

    return registry_client


def _default_client() -> rc.RegistryClient:
    client: rc.RegistryClient = _rc().RegistryClient()
    return client


class ImageStore:
    """Images of the native engine under `config.root` (blobs, snapshots, state DB).

    `registry_client_factory()` returns a RegistryClient (a context manager) per pull;
    `container_image_ids()` returns the ids of images that containers use (GC roots);
    `image_users()` those containers, and whether each runs (what `remove` decides by; without
    it, every container of `container_image_ids` counts as running: the careful guess). `limits`
    caps each layer's decompression.
    `durable=True` fsyncs blobs and snapshot commits (power-loss safety, slower pulls; see
    content.py).
    """

    def __init__(
        self,
        config: NativeConfig,
        registry_client_factory: Callable[[], rc.RegistryClient] = _default_client,
        *,
        container_image_ids: Callable[[], set[str]] = set,
        image_users: Callable[[], Iterable[ImageUser]] | None = None,
        limits: layers.Limits | None = None,
        platform: str | None = None,
        durable: bool = False,
    ) -> None:
        config.ensure_dirs(host_objects=False)         # the store makes no host object
        self.config = config
        self.client_factory = registry_client_factory
        self.container_image_ids = container_image_ids
        self._image_users = image_users
        self._limits = limits
        self.content = content.ContentStore(config.root, durable=durable)
        self.snapshots = snapshots.SnapshotStore(config.root, config.locks_dir, durable=durable)
        self.platform = platform
        self._slots = DownloadSlots(config.locks_dir, config.max_root_downloads)
        self.db = config.db()
        self.db.ensure_schema("native-images", _SCHEMA, _COLUMNS)
        if self.db.first("native-images-unpacked"):
            self._measure_older()
        self.lock_path = config.locks_dir / "image-store.lock"
        self.recover()

    @property
    def limits(self) -> layers.Limits:
        """What each layer may expand to (layers.Limits() unless given)."""
        if self._limits is None:
            # the extractor (tarfile, ctypes, bz2, lzma) loads when a layer is unpacked, not
            # for `reconcile images`
            from reconciler.runtime.native.images import layers

            self._limits = layers.Limits()
        return self._limits

    def recover(self) -> int:
        """Remove what interrupted extractions of dead processes left (never a committed
        snapshot); partial downloads stay, to be resumed. Returns how many were removed."""
        import shutil

        debris = self.snapshots.debris()
        for path in debris:
            shutil.rmtree(path, ignore_errors=True)
        return len(debris)

    # -- locking -----------------------------------------------------------------------------

    @contextlib.contextmanager
    def store_lock(self, *, exclusive: bool) -> Iterator[None]:
        """The store-wide lock: pulls hold it shared, GC exclusive."""
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            yield
        finally:
            os.close(fd)

    # -- references ------------------------------------------------------------------------------

    @staticmethod
    def parse(ref: str) -> rc.Reference:
        rcm = _rc()
        try:
            parsed: rc.Reference = rcm.references.parse(ref)
            return parsed
        except rcm.errors.InvalidReference as exc:
            raise errors.InvalidArgument(f"invalid image reference {ref!r}: {exc}") from None

    def resolve_digest(self, ref: str) -> str:
        """The digest `ref` points to in its registry now (one HEAD; no download): with the
        default client, presence.head's plain HEAD first (no httpx for a pass's lookup, #21),
        then, when that is not answered plainly, the registry client."""
        r = self.parse(ref)
        if self.client_factory is _default_client and r.tag and not r.digest:
            found = presence.head(str(r))
            if found is not None:
                return found
        try:
            with self.client_factory() as client:
                return client.resolve(r).digest
        except _rc().RegistryError as exc:
            raise errors.from_registry(exc) from None     # its message says "resolve REF: ..."

    # -- pull ----------------------------------------------------------------------------------

    def client_factory_for(self, registry: str,
                           auth: Mapping[str, Any] | None) -> Callable[[], rc.RegistryClient]:
        """The store's registry client, or one that tries `auth` for `registry` first: Docker's
        AuthConfig, as an Engine API client sends it (the engine's own credential store after)."""
        rcm = _rc()
        cred = rcm.credentials.from_auth_config(auth) if auth else None
        if cred is None:
            return self.client_factory
        store = rcm.credentials.CredentialStore(static={rcm.credentials.server_key(registry): cred})
        return lambda: rcm.RegistryClient(credentials=store)

    def pull(self, ref: str, *, progress: base.ProgressCallback | None = None,
             auth: Mapping[str, Any] | None = None) -> base.ImageInfo:
        """Pull `ref` (tag or digest) and unpack it; returns the stored image. `auth`: see
        client_factory_for. With `config.pull_aside` (a long-lived engine: the agent) a tag held
        and confirmed by one plain HEAD answers here, any other pull runs in a helper process
        (aside.py), so that this one never maps the registry client (#21)."""
        if self.config.pull_aside and self.client_factory is _default_client:
            held = self._held(ref, progress or (lambda _e, _d: None), head=True)
            if held is not None:
                return held
            from reconciler.runtime.native.images import aside

            return self.get(aside.pull(self.config, ref, progress, auth))
        info = self._pull_or_present(ref, progress, download=True, auth=auth)
        assert info is not None
        return info

    def shown(self, ref: str) -> str:
        """How `reconcile pull` names the image `ref` it pulled (as docker pull does)."""
        r = self.parse(ref)
        return str(r) if r.tag or not r.digest else f"{r.name}@{r.digest}"

    def pull_if_present(self, ref: str, *, progress: base.ProgressCallback | None = None,
                        missing: bool = False) -> base.ImageInfo | None:
        """What `pull` does when the store holds the image `ref` names now (after one HEAD for a
        tag, none for a digest): tag it and return it. None, having downloaded nothing, when a
        pull would download (the agent answers re-pulls this way, #21). With `missing`
        (`reconcile pull --pull=missing`): the image the store holds for the tag, with no request
        at all; None when it holds none complete."""
        return self._pull_or_present(ref, progress, download=False, ask=not missing)

    def _pull_or_present(self, ref: str, progress: base.ProgressCallback | None, *, download: bool,
                         auth: Mapping[str, Any] | None = None, ask: bool = True) -> base.ImageInfo | None:
        """`ask`: whether the registry may be asked what a tag names now (else only what the
        store holds answers, and None when it holds nothing: `download` must then be False)."""
        r = self.parse(ref)
        factory = self.client_factory_for(r.registry, auth)
        emit = progress or (lambda _e, _d: None)
        if (factory is _default_client or not ask) and r.tag and not r.digest:
            # the plain HEAD of `present` (none without `ask`): no httpx client (its CA bundle
            # alone costs ~85 ms); a store given its own client (a transport, credentials)
            # always asks with that
            held = self._held(ref, emit, head=ask)
            if held is not None:
                return held
        with self.store_lock(exclusive=False):
            if r.digest:
                known = self._stored_for(r.digest)
                if known is not None and self._complete(known):
                    status = self._status(r, known)
                    self._tag(r, known, r.digest)
                    emit("done", {"id": known, "digest": r.digest, "status": status})
                    return self.get(known)
            if not ask:
                return None
            try:
                with factory() as client:
                    desc = client.resolve(r)
                    known = self._chosen(client, r, desc.digest)
                    if known is not None and self._complete(known):
                        emit("resolve", {"ref": str(r), "digest": desc.digest})
                        status = self._status(r, known)
                        self._tag(r, known, desc.digest)
                        emit("done", {"id": known, "digest": desc.digest, "status": status})
                        return self.get(known)
                    if not download:
                        return None
                    emit("resolve", {"ref": str(r), "digest": desc.digest})
                    return self._pull(client, r, desc, emit)
            except _rc().RegistryError as exc:
                raise errors.from_registry(exc, f"pulling {r}") from None

    def _status(self, r: rc.Reference, image_id: str) -> str:
        """How a pull of `r` that found `image_id` stored ends: "up to date" when the tag named
        that image already (or `r` names no tag), else "tag moved" (docker: "Downloaded newer
        image", though nothing was downloaded)."""
        if r.tag is None:
            return "up to date"
        row = self.db.connect().execute("SELECT image_id FROM image_refs WHERE ref = ?",
                                        (f"{r.name}:{r.tag}",)).fetchone()
        return "up to date" if row is not None and row["image_id"] == image_id else "tag moved"

    def _stored_for(self, digest: str) -> str | None:
        """The stored image that `digest` (a manifest's, or an index's) gives this store's
        platform (`self.platform`, or the host's): an index's image chosen for another platform
        does not count (docker pulls the platform asked, and moves the tag)."""
        rows = self.db.connect().execute(
            "SELECT id, manifest_digest FROM images WHERE manifest_digest = ? OR index_digest = ? ORDER BY pulled_at DESC",
            (digest, digest)).fetchall()
        for row in rows:
            image_id = str(row["id"])
            if row["manifest_digest"] == digest:
                return image_id
            with contextlib.suppress(errors.NotFound, ValueError):
                if presence.platform_matches(json.loads(self.content.read(image_id)), self.platform):
                    return image_id
        return None

    def _chosen(self, client: rc.RegistryClient, r: rc.Reference, digest: str) -> str | None:
        """The stored image a pull of `digest` (what the tag `r` resolved to) would choose: an
        index's is the one for the platform it selects (one GET of the index, only when an image
        chosen from it is stored)."""
        conn = self.db.connect()
        row = conn.execute("SELECT id FROM images WHERE manifest_digest = ? LIMIT 1", (digest,)).fetchone()
        if row is not None:
            return str(row["id"])
        if conn.execute("SELECT 1 FROM images WHERE index_digest = ? LIMIT 1", (digest,)).fetchone() is None:
            return None
        index = client.get_manifest(r, digest)
        if not index.is_index:
            return None
        try:
            chosen = self._select(client, index)
        except _rc().errors.PlatformNotFound:
            return None         # the full pull says so
        row = conn.execute("SELECT id FROM images WHERE manifest_digest = ? LIMIT 1", (chosen.digest,)).fetchone()
        return None if row is None else str(row["id"])

    def _held(self, ref: str, emit: base.ProgressCallback, *, head: bool) -> base.ImageInfo | None:
        """The stored image the tag `ref` names, as presence.present finds it (with `head`, one
        plain HEAD confirms it; an image chosen from an index only for this store's platform),
        reported as an up-to-date pull; None: a pull must ask."""
        found = presence.present(self.config, ref, head=head, platform=self.platform)
        if found is None:
            return None
        emit("resolve", {"ref": found.repo_tag, "digest": found.digest})
        emit("done", {"id": found.image_id, "digest": found.digest, "status": "up to date"})
        return self.get(found.image_id)

    def _pull(self, client: rc.RegistryClient, r: rc.Reference, desc: rc.Descriptor,
              emit: base.ProgressCallback) -> base.ImageInfo:
        manifest = client.get_manifest(r, desc.digest)
        blobs = [manifest.descriptor.digest]
        self.content.write_blob(manifest.raw, manifest.descriptor.digest)
        index_digest = None
        depth = 0
        while manifest.is_index:
            depth += 1
            if depth > 4:
                raise errors.ImageError(f"{r}: indexes nested too deeply")
            index_digest = index_digest or manifest.descriptor.digest
            chosen = self._select(client, manifest)
            manifest = client.get_manifest(r, chosen.digest)
            self.content.write_blob(manifest.raw, manifest.descriptor.digest)
            blobs.append(manifest.descriptor.digest)
        if manifest.media_type not in _rc().models.MANIFEST_TYPES:
            raise errors.ImageError(f"{r}: {manifest.media_type!r} is not an image manifest",
                                    hint="this reference names an artifact, not a runnable image")
        # the extractors start now, while the config is fetched and the snapshots looked up
        with self._extractors(sum(d.size for d in manifest.layers)) as ex:
            return self._pull_image(client, r, desc, manifest, index_digest, blobs, ex, emit)

    def _pull_image(self, client: rc.RegistryClient, r: rc.Reference, desc: rc.Descriptor, manifest: rc.Manifest,
                    index_digest: str | None, blobs: list[str], ex: extractors.Extractors | None,
                    emit: base.ProgressCallback) -> base.ImageInfo:
        cdesc = manifest.config
        if not self.content.has(cdesc.digest):
            self.content.write_blob(client.fetch_blob_bytes(r, cdesc), cdesc.digest)
        config_raw = self.content.read(cdesc.digest)
        image_config = _parse_config(config_raw, r)
        diff_ids = image_config["rootfs"]["diff_ids"]
        descs = manifest.layers
        if len(diff_ids) != len(descs):
            raise errors.ImageError(f"{r}: the config lists {len(diff_ids)} diff_ids for "
                                    f"{len(descs)} manifest layers", hint="the image is malformed")
        for d in descs:
            if d.media_type not in LAYER_MEDIA_TYPES:
                raise errors.ImageError(f"{r}: layer {d.digest} has unsupported media type {d.media_type!r}")
        chains = snapshots.chain_ids(diff_ids)
        records = [LayerRecord(d.digest, d.size, d.media_type, diff, chain)
                   for d, diff, chain in zip(descs, diff_ids, chains, strict=True)]
        blobs += [cdesc.digest, *(d.digest for d in descs)]
        try:
            with self._lease(blobs, chains):
                self._fetch_and_unpack(client, r, records, ex, emit)
                image_id = cdesc.digest
                self._record(image_id, manifest.descriptor.digest, index_digest, records, image_config, keep=False)
                self._tag(r, image_id, desc.digest)
        except DiskFull as exc:
            # Said for the whole image, now that every download of it stopped and dropped its
            # partial data: the free space is what a retry has, the need what it downloads (the
            # blobs not stored) and, when a layer is still to be unpacked, more: a snapshot is
            # larger than its compressed blob, by an amount not known before it is unpacked.
            download = {rec.digest: rec.size for rec in records if not self.content.has(rec.digest)}
            unpacks = any(not self.snapshots.exists(rec.chain_id) for rec in records)
            raise diskfull.error(f"pulling {r}", exc.path or self.config.root, needed=sum(download.values()) or None,
                                 quota=exc.quota, unpacks=unpacks) from exc
        with contextlib.suppress(errors.Cancelled):     # too late to cancel: the image is here
            emit("done", {"id": image_id, "digest": desc.digest, "status": "downloaded"})
        return self.get(image_id)

    def _select(self, client: rc.RegistryClient, index: rc.Manifest) -> rc.Descriptor:
        if self.platform:
            parts = self.platform.split("/")
            os_, arch = parts[0], parts[1] if len(parts) > 1 else None
            variant = parts[2] if len(parts) > 2 else ""
            return client.select_platform(index, os_, arch, variant)
        return client.select_platform(index)

    def _fetch_and_unpack(self, client: rc.RegistryClient, r: rc.Reference, records: Sequence[LayerRecord],
                          ex: extractors.Extractors | None, emit: base.ProgressCallback) -> None:
        # Layers whose snapshot exists are not unpacked again; below the first missing one, all
        # exist. Every blob the store lacks is downloaded all the same, that of a layer whose
        # snapshot another image's blob made (same diff_id, another compression) too: push and
        # save send the manifest's blobs.
        missing = [not self.snapshots.exists(rec.chain_id) for rec in records]
        needed: dict[str, LayerRecord] = {}
        for rec in records:
            if not self.content.has(rec.digest):
                needed.setdefault(rec.digest, rec)
        for rec, miss in zip(records, missing, strict=True):
            if not miss and rec.digest not in needed:
                emit("layer-done", {"digest": rec.digest, "status": "exists"})
        from concurrent.futures import ThreadPoolExecutor  # brings logging: pulls only

        futures: dict[str, Future[None]] = {}
        own: set[Future[None]] = set()
        chain = _Chain(missing)
        with ThreadPoolExecutor(max_workers=max(1, self.config.max_concurrent_downloads),
                                thread_name_prefix="pull") as pool, \
                ThreadPoolExecutor(max_workers=max(1, self.config.max_concurrent_unpacks),
                                   thread_name_prefix="unpack") as unpackers:
            try:
                for digest, rec in needed.items():
                    emit("layer-start", {"digest": digest, "size": rec.size})
                    futures[digest], mine = self._shared_download(pool, client, r, rec, emit)
                    if mine:
                        own.add(futures[digest])
                jobs = []
                for i, (rec, miss) in enumerate(zip(records, missing, strict=True)):
                    if miss:
                        fut = futures.get(rec.digest)
                        jobs.append((rec, unpackers.submit(self._unpack, client, r, records, i, fut, fut in own,
                                                           chain, ex, emit)))
                for rec, job in jobs:
                    try:
                        built = job.result()
                    except BaseException:
                        if chain.cause is not None:     # the layer that failed first, not one discarded for it
                            raise chain.cause from None
                        raise
                    emit("layer-done", {"digest": rec.digest, "status": "downloaded" if built else "exists"})
                for rec, miss in zip(records, missing, strict=True):
                    fut = futures.get(rec.digest)
                    if not miss and fut is not None:
                        # downloaded for the store only: its snapshot exists ("Already exists")
                        self._await_blob(client, r, rec, fut, fut in own, emit)
                        emit("layer-done", {"digest": rec.digest, "status": "exists"})
            except BaseException:
                chain.stop()
                unpackers.shutdown(cancel_futures=True)
                for f in own:
                    f.cancel()
                raise

    @contextlib.contextmanager
    def _extractors(self, todo: int) -> Iterator[extractors.Extractors | None]:
        """Extractor processes for a pull of an image of `todo` compressed layer bytes, if it
        is worth their start (config.process_unpack_min_bytes); None: threads of this process
        unpack. Started before the pull knows which layers exist: its config is not fetched yet."""
        floor = self.config.process_unpack_min_bytes
        if floor < 0 or todo < floor:
            yield None
            return
        from reconciler.runtime.native.images import extractors

        try:
            ex = extractors.Extractors(self.config.max_concurrent_unpacks)
        except OSError:
            yield None                  # no interpreter to start: the threads do it
            return
        with ex:
            yield ex

    def _unpack(self, client: rc.RegistryClient, r: rc.Reference, records: Sequence[LayerRecord], i: int,
                fut: Future[None] | None, mine: bool, chain: _Chain, ex: extractors.Extractors | None,
                emit: base.ProgressCallback) -> bool:
        """Layer i's job: its blob, its own snapshot dir, committed after layer i-1's."""
        rec = records[i]

        def blob() -> None:
            self._await_blob(client, r, rec, fut, mine, emit)
        try:
            chain.check()
            follow = None
            if ex is not None and fut is not None and mine:
                # unpacked while it downloads: its extractor reads the ingest as it grows
                follow = _extractors().Follow((self.content.ingest_data(rec.digest), self.content.blob_path(rec.digest)),
                                              rec.size, fut)
            else:
                blob()
            chain.check()
            parents = [x.chain_id for x in records[:i]]
            emit("extract", {"digest": rec.digest, "status": "extracting"})
            with diskfull.translated(f"unpacking layer {rec.digest[:19]}", self.snapshots.dir):
                built = self.snapshots.create(rec.chain_id, parents, self._applier(rec, chain, i, ex, follow, blob),
                                              parents_ready=lambda: chain.wait_below(i))
        except BaseException as exc:
            chain.failed(i, exc)
            raise
        chain.done(i)
        return built

    def _await_blob(self, client: rc.RegistryClient, r: rc.Reference, rec: LayerRecord,
                    fut: Future[None] | None, mine: bool, emit: base.ProgressCallback) -> None:
        """Wait for layer `rec`'s download; the blob is then committed, or this raises why not."""
        if fut is None:
            return
        try:
            fut.result()
        except BaseException:
            # A download shared with another pull may have been cancelled or
            # failed there; try once more ourselves before giving up (if this
            # pull is being cancelled too, its own download stops at once).
            if mine or self.content.has(rec.digest):
                if not self.content.has(rec.digest):
                    raise
            else:
                self._download(client, r, rec, emit)

    def _shared_download(self, pool: ThreadPoolExecutor, client: rc.RegistryClient,
                         r: rc.Reference, rec: LayerRecord,
                         emit: base.ProgressCallback) -> tuple[Future[None], bool]:
        """The download of `rec`, shared with pulls in flight; True if this pull started it."""
        key = (str(self.config.root), rec.digest)
        with _INFLIGHT_LOCK:
            fut = _INFLIGHT.get(key)
            if fut is not None:
                return fut, False
            fut = pool.submit(self._download, client, r, rec, emit)
            _INFLIGHT[key] = fut

        def forget(_: Future[None]) -> None:
            with _INFLIGHT_LOCK:
                if _INFLIGHT.get(key) is fut:
                    del _INFLIGHT[key]

        fut.add_done_callback(forget)
        return fut, True

    def _download(self, client: rc.RegistryClient, r: rc.Reference, rec: LayerRecord,
                  emit: base.ProgressCallback) -> None:
        with self._slots.held():
            if self.content.has(rec.digest):
                return
            with self.content.ingest(rec.digest, rec.size) as ing:
                if ing.committed:
                    return
                desc = _rc().Descriptor(rec.media_type, rec.digest, rec.size)

                def prog(done: int, total: int) -> None:
                    emit("layer-progress", {"digest": rec.digest, "done": done, "total": total})

                try:
                    with ing.sink() as f:
                        client.fetch_blob(r, desc, f, offset=ing.offset,
                                          prefix_hash=ing.prefix_hash() if ing.offset else None,
                                          progress=prog)
                except (errors.Cancelled, _rc().errors.DigestMismatch, _rc().errors.SizeMismatch):
                    # stopped on purpose, or bytes that are not the blob (whatever was unpacked
                    # of them is discarded with its snapshot dir): no partial blob stays
                    ing.discard()
                    raise
                ing.commit(verified=True)
        emit("layer-downloaded", {"digest": rec.digest})

    def _applier(self, rec: LayerRecord, chain: _Chain, i: int, ex: extractors.Extractors | None,
                 follow: extractors.Follow | None,
                 await_blob: Callable[[], None]) -> Callable[[Path, list[Path]], dict[str, Any]]:
        """The `apply` of layer i's snapshot. `follow`: its blob is still downloading; the first
        attempt unpacks it as it comes (`await_blob()` waits for the download to be committed, and
        is called before anything is believed or committed)."""
        from reconciler.runtime.native.images import layers

        streamed = [follow]         # one attempt follows the download; a retry reads the blob

        def unpack(fs: Path, lowers: list[Path], pending: bool) -> layers.ApplyResult:
            below = [] if pending else lowers
            attempt, streamed[0] = streamed[0], None
            if attempt is not None and ex is not None:
                try:
                    res = ex.apply(attempt, fs, lowers=below, lowers_pending=pending, expected_diff_id=rec.diff_id,
                                   limits=self.limits, compressed_size=rec.size)
                except (_extractors().StreamFailed, layers.LayerError):
                    # the download's own failure, if that was it; else the committed blob is
                    # unpacked again below (what was read may not have been the blob: only the
                    # committed one is refused, and its blob dropped, for the layer's fault)
                    await_blob()
                    _empty(fs)
                else:
                    await_blob()        # verified and committed before the snapshot is
                    return res
            await_blob()
            try:
                if ex is not None:
                    return ex.apply(self.content.blob_path(rec.digest), fs, lowers=below, lowers_pending=pending,
                                    expected_diff_id=rec.diff_id, limits=self.limits, compressed_size=rec.size)
                with self.content.open(rec.digest) as blob:
                    return layers.apply_layer(blob, fs, lowers=below, lowers_pending=pending,
                                              expected_diff_id=rec.diff_id, limits=self.limits,
                                              compressed_size=rec.size)
            except layers.LayerError:
                # The blob is bad (or torn by a power loss): do not keep it, so that the next
                # pull downloads it again instead of failing on the same bytes.
                self.content.delete(rec.digest)
                raise

        def apply(fs: Path, lowers: list[Path]) -> dict[str, Any]:
            pending = bool(lowers) and not chain.ready_below(i)
            try:
                res = unpack(fs, lowers, pending)
            except layers.NeedsLowers:
                chain.wait_below(i)
                _empty(fs)
                res, pending = unpack(fs, lowers, False), False
            if pending:
                chain.wait_below(i)
                layers.fix_implicit_dirs(fs, lowers, res.implicit_dirs)
            return {"diff_id": res.diff_id, "size": res.size, "unpacked": res.unpacked, "digest": rec.digest}
        return apply

    @contextlib.contextmanager
    def _lease(self, blobs: Sequence[str], chains: Sequence[str]) -> Iterator[str]:
        import secrets  # here: resolving an image for `run` needs no random names

        lease = secrets.token_hex(8)
        with self.db.tx() as c:
            c.execute("INSERT INTO pull_leases(id, expires, blobs, chains) VALUES (?,?,?,?)",
                      (lease, time.time() + LEASE_SECONDS, json.dumps(list(blobs)), json.dumps(list(chains))))
        try:
            yield lease
        except BaseException:
            # A pull that failed (a full disk, mostly) must not fail again here and hide why:
            # a lease left behind is dropped by `image prune` (or expires).
            with contextlib.suppress(DiskFull):
                self._drop_lease(lease)
            raise
        self._drop_lease(lease)

    def _drop_lease(self, lease: str) -> None:
        with self.db.tx() as c:
            c.execute("DELETE FROM pull_leases WHERE id = ?", (lease,))

    # -- records ---------------------------------------------------------------------------------

    def _record(self, image_id: str, manifest_digest: str, index_digest: str | None,
                records: Sequence[LayerRecord], image_config: Mapping[str, Any], *, keep: bool = True,
                dated: bool = True) -> None:
        """Record the image `image_id` as made of `manifest_digest`'s layers. `keep`: an image
        already recorded whose manifest and layer blobs are all here keeps that manifest (a
        `load`, a build or a commit of an image stored already adds tags only: what push sends,
        the RepoDigests and the SIZE stay); a pull records the manifest it pulled. Not `dated`:
        its config's `created` stands for no time (a build's undated stage: `add_local`), so
        none is recorded."""
        if keep and self._whole(image_id):
            return
        layers_json = json.dumps([rec.__dict__ for rec in records])
        size = sum(rec.size for rec in records)
        created = image_config.get("created") if dated else None
        with self.db.tx() as c:
            c.execute(
                "INSERT INTO images(id, manifest_digest, index_digest, size, created, layers, pulled_at, unpacked)"
                " VALUES (?,?,?,?,?,?,?,?) ON CONFLICT(id) DO UPDATE SET manifest_digest=excluded.manifest_digest,"
                " index_digest=COALESCE(excluded.index_digest, images.index_digest), layers=excluded.layers,"
                " size=excluded.size, pulled_at=excluded.pulled_at, unpacked=excluded.unpacked",
                (image_id, manifest_digest, index_digest, size, created if isinstance(created, str) else None,
                 layers_json, time.time(), self._unpacked(records)))

    def _unpacked(self, records: Sequence[LayerRecord]) -> int | None:
        """An image's unpacked size as `docker images` counts it: the sum of its layers' (each
        snapshot's, layers.py says what is counted; a layer two images share counts in each, as
        docker's); None while a layer's snapshot is missing."""
        total = 0
        for rec in records:
            n = self.snapshots.unpacked(rec.chain_id)
            if n is None:
                return None
            total += n
        return total

    def _measure_older(self) -> None:
        """Give the images an older version recorded (no unpacked size: their SIZE was their
        compressed layers') their unpacked size: each snapshot is measured once (a walk of its
        files, kept in its meta.json), at the first open of the store by a process after the
        upgrade: a pull, run, build or the agent, never `images` (images/summaries.py shows the
        compressed size until then). An image with a snapshot missing stays as it was (its
        next pull records it whole)."""
        conn = self.db.connect()
        rows = conn.execute("SELECT id, layers FROM images WHERE unpacked IS NULL").fetchall()
        for row in rows:
            with contextlib.suppress(ValueError, TypeError, errors.RuntimeBackendError, DiskFull):
                unpacked = self._unpacked([LayerRecord(**d) for d in json.loads(row["layers"])])
                if unpacked is not None:
                    with self.db.tx() as c:
                        c.execute("UPDATE images SET unpacked = ? WHERE id = ? AND unpacked IS NULL",
                                  (unpacked, row["id"]))

    def _whole(self, image_id: str) -> bool:
        """Whether `image_id` is recorded with its manifest, config and layer blobs and its
        layer snapshots all here."""
        row = self.db.connect().execute("SELECT manifest_digest FROM images WHERE id = ?", (image_id,)).fetchone()
        return row is not None and self.content.has(str(row["manifest_digest"])) and self._complete(image_id)

    def _tag(self, r: rc.Reference, image_id: str, digest: str, *, local: bool = False) -> None:
        """Point the tag `r` at `image_id`; `local`: the image was made here (built, committed,
        loaded, tagged), not pulled nor pushed as `r` (`made_here`)."""
        if r.tag is None:
            if r.digest is not None and not local:     # pulled by digest: repo@digest names it (docker's RepoDigests)
                with self.db.tx() as c:
                    c.execute("INSERT INTO image_digest_refs(ref, image_id) VALUES (?,?) ON CONFLICT(ref)"
                              " DO UPDATE SET image_id=excluded.image_id", (f"{r.name}@{r.digest}", image_id))
            return
        name = f"{r.name}:{r.tag}"
        with self.db.tx() as c:
            c.execute("INSERT INTO image_refs(ref, image_id, digest, local) VALUES (?,?,?,?) ON CONFLICT(ref)"
                      " DO UPDATE SET image_id=excluded.image_id, digest=excluded.digest, local=excluded.local",
                      (name, image_id, digest, int(local)))

    def made_here(self, ref: str) -> bool:
        """Whether the image tagged `ref` was made on this host and never pulled nor pushed as
        `ref` (base.TagOrigins); False when no image is tagged so, or `ref` names no tag."""
        try:
            r = self.parse(ref)
        except errors.InvalidArgument:
            return False
        if r.tag is None or r.digest is not None:
            return False
        row = self.db.connect().execute("SELECT local FROM image_refs WHERE ref = ?", (f"{r.name}:{r.tag}",)).fetchone()
        return row is not None and bool(row["local"])

    def add_local(self, cfg: Mapping[str, Any], records: Sequence[LayerRecord],
                  tags: Sequence[str] = (), *, config_raw: bytes | None = None,
                  dated: bool = True) -> tuple[str, str]:
        """Record an image made on this host (build, commit, load of a legacy archive) whose
        layer blobs and snapshots exist: its config (`config_raw`, the bytes as they came, or
        canonical JSON of `cfg`) and an OCI manifest become blobs, then the record and the tags
        (a tag without one gets `latest`); an image stored already whole keeps its manifest
        (`_record`). Not `dated`: the config's `created` is a build's stand-in for no time, the
        image is recorded without one (so are the steps `history` finds stamped with it).
        Returns (image id, manifest digest)."""
        raw = config_raw if config_raw is not None else config_bytes(cfg)
        config_digest = self.content.write_blob(raw)
        manifest = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": config_digest, "size": len(raw)},
            "layers": [{"mediaType": r.media_type, "digest": r.digest, "size": r.size} for r in records],
        }
        if self._whole(config_digest):
            # stored already (a load of an image pulled or built here): its manifest stays
            manifest_digest = str(self.db.connect().execute(
                "SELECT manifest_digest FROM images WHERE id = ?", (config_digest,)).fetchone()["manifest_digest"])
        else:
            manifest_digest = self.content.write_blob(json.dumps(manifest, sort_keys=True,
                                                                 separators=(",", ":")).encode())
            self._record(config_digest, manifest_digest, None, records, cfg, dated=dated)
        for tag in tags:
            r = self.parse(tag)
            self._tag(r.with_tag("latest") if r.tag is None and r.digest is None else r, config_digest,
                      manifest_digest, local=True)
        return config_digest, manifest_digest

    def _image_for_digest(self, digest: str) -> str | None:
        row = self.db.connect().execute(
            "SELECT id FROM images WHERE manifest_digest = ? OR index_digest = ? LIMIT 1",
            (digest, digest)).fetchone()
        return None if row is None else str(row["id"])

    def _layers(self, image_id: str) -> list[LayerRecord]:
        row = self.db.connect().execute("SELECT layers FROM images WHERE id = ?", (image_id,)).fetchone()
        if row is None:
            raise errors.NotFound(f"image {image_id} not found")
        return [LayerRecord(**d) for d in json.loads(row["layers"])]

    def _complete(self, image_id: str) -> bool:
        """Its config blob, every layer snapshot and every layer blob (push and save send them)."""
        recs = self._layers(image_id)
        return all(self.snapshots.exists(rec.chain_id) for rec in recs) and self.content.has(image_id) and \
            all(self.content.has(rec.digest) for rec in recs)

    # -- queries ------------------------------------------------------------------------------------

    def _find_id(self, ref_or_id: str) -> str:
        conn = self.db.connect()
        s = ref_or_id.strip()
        hexpart = s[7:] if s.startswith("sha256:") else s
        if hexpart and all(ch in "0123456789abcdef" for ch in hexpart) and len(hexpart) >= 4 \
                and (s.startswith("sha256:") or len(hexpart) >= 12 or "/" not in s):
            rows = conn.execute("SELECT id FROM images WHERE id LIKE ?", (f"sha256:{hexpart}%",)).fetchall()
            if len(rows) == 1:
                return str(rows[0]["id"])
            if len(rows) > 1:
                raise errors.InvalidArgument(f"image id prefix {s!r} is ambiguous", hint="give more digits")
        try:
            r = self.parse(s)
        except errors.InvalidArgument:
            raise errors.NotFound(f"image {s!r} not found") from None
        if r.digest:
            found = self._image_for_digest(r.digest)
            if found is None:
                row = conn.execute("SELECT image_id FROM image_refs WHERE digest = ?", (r.digest,)).fetchone()
                found = None if row is None else str(row["image_id"])
            if found is not None:
                return found
        elif r.tag:
            row = conn.execute("SELECT image_id FROM image_refs WHERE ref = ?", (f"{r.name}:{r.tag}",)).fetchone()
            if row is not None:
                return str(row["image_id"])
        raise errors.NotFound(f"image {s!r} not found", hint=f"pull it first: reconcile pull {s}")

    def get(self, ref_or_id: str) -> base.ImageInfo:
        """The stored image named by a reference, an id or an id prefix (NotFound)."""
        return self._info(self._find_id(ref_or_id))

    def image_id(self, ref_or_id: str) -> str:
        """The id of the stored image `get` would return (NotFound), without making its
        ImageInfo (a build's FROM needs only the id: no runtime.base loaded)."""
        return self._find_id(ref_or_id)

    def _info(self, image_id: str) -> base.ImageInfo:
        conn = self.db.connect()
        row = conn.execute("SELECT * FROM images WHERE id = ?", (image_id,)).fetchone()
        if row is None:
            raise errors.NotFound(f"image {image_id} not found")
        refs = conn.execute("SELECT ref, digest, local FROM image_refs WHERE image_id = ? ORDER BY ref",
                            (image_id,)).fetchall()
        by_digest = [str(x["ref"]) for x in conn.execute("SELECT ref FROM image_digest_refs WHERE image_id = ?",
                                                         (image_id,)).fetchall()]
        cfg = self.image_config(image_id)
        digest = row["index_digest"] or row["manifest_digest"]
        from reconciler.runtime import base  # (the re-pull's answer from the DB does not need it)

        return base.ImageInfo(
            id=image_id,
            digest=digest,
            repo_tags=tuple(str(x["ref"]) for x in refs),
            size=int(row["size"] if row["unpacked"] is None else row["unpacked"]),     # (_measure_older)
            created=row["created"],
            config=dict(cfg.get("config") or {}),
            layers=tuple(rec.diff_id for rec in self._layers(image_id)),
            repo_digests=tuple(summaries.repo_digests(((str(x["ref"]), str(x["digest"]), x["local"]) for x in refs),
                                                      by_digest)),
        )

    def image_config(self, image_id: str) -> dict[str, Any]:
        """The full OCI image config JSON of a stored image."""
        image_id = self._find_id(image_id)
        try:
            raw = self.content.read(image_id)
        except errors.NotFound:
            raise errors.NotFound(f"config blob of image {image_id} is missing",
                                  hint="pull the image again") from None
        data = json.loads(raw)
        if not isinstance(data, dict):
            raise errors.ImageError(f"config of image {image_id} is not a JSON object")
        return data

    def layer_dirs(self, image_id: str) -> list[Path]:
        """The image's snapshot fs dirs, BOTTOM LAYER FIRST (reverse them for mount_overlay)."""
        image_id = self._find_id(image_id)
        recs = self._layers(image_id)
        for rec in recs:
            if not self.snapshots.exists(rec.chain_id):
                raise errors.ImageError(f"image {image_id}: layer snapshot {rec.chain_id} is missing",
                                        hint="pull the image again")
        return [self.snapshots.fs_dir(rec.chain_id) for rec in recs]

    def layer_records(self, image_id: str) -> list[LayerRecord]:
        return self._layers(self._find_id(image_id))

    # -- removal --------------------------------------------------------------------------------------

    def users(self, image_id: str) -> list[ImageUser]:
        """The containers made from `image_id` (running ones first)."""
        if self._image_users is None:
            found = [ImageUser(image_id, "", True)] if image_id in self.container_image_ids() else []
        else:
            found = [u for u in self._image_users() if u.image_id == image_id]
        return sorted(found, key=lambda u: not u.running)

    def remove(self, ref: str, *, force: bool = False) -> list[str]:
        """Docker's rmi (`removal`: dockerd's rules): untag `ref`; delete the image when no tag
        is left (or when `ref` is an id, with force if it has several tags). Shared layers stay.
        Returns docker-style lines: "Untagged: ..." and "Deleted: ..."."""
        image_id = self._find_id(ref)
        conn = self.db.connect()
        refs = [str(x["ref"]) for x in conn.execute(
            "SELECT ref FROM image_refs WHERE image_id = ? UNION SELECT ref FROM image_digest_refs WHERE image_id = ?"
            " ORDER BY ref", (image_id, image_id)).fetchall()]
        by_tag = None
        with contextlib.suppress(errors.InvalidArgument):
            r = self.parse(ref)
            named = f"{r.name}:{r.tag}" if r.tag else f"{r.name}@{r.digest}"
            if (r.tag or r.digest) and named in refs and not ref.startswith("sha256:"):
                by_tag = named
        untag, delete = removal(image_id, ref, by_tag, refs, self.users(image_id), force=force)
        out: list[str] = []
        with self.db.tx() as c:
            for t in untag:
                c.execute("DELETE FROM image_refs WHERE ref = ?", (t,))
                c.execute("DELETE FROM image_digest_refs WHERE ref = ?", (t,))
                out.append(f"Untagged: {t}")
            if delete:
                c.execute("DELETE FROM images WHERE id = ?", (image_id,))
        if delete:
            out.append(f"Deleted: {image_id}")
            # the collector (removal and prune only) is not loaded by what lists or uses images (#21)
            from reconciler.runtime.native.images import gc

            gc.collect(self)
        return out

    def prune(self, *, all_images: bool = False) -> list[str]:
        """Delete dangling (untagged) images, or with `all_images` every image no container
        uses; then collect garbage, including what interrupted pulls left (partial downloads
        and their leases). Returns the deleted ids."""
        conn = self.db.connect()
        used = self.container_image_ids()
        ids = [str(x["id"]) for x in conn.execute("SELECT id FROM images").fetchall()]
        # dangling: no tag (one named by a digest alone is too, "repo:<none>", as dockerd's prune)
        tagged = {str(x["image_id"]) for x in conn.execute("SELECT image_id FROM image_refs").fetchall()}
        victims = [i for i in ids if i not in used and (all_images or i not in tagged)]
        with self.db.tx() as c:
            for i in victims:
                c.execute("DELETE FROM image_refs WHERE image_id = ?", (i,))
                c.execute("DELETE FROM image_digest_refs WHERE image_id = ?", (i,))
                c.execute("DELETE FROM images WHERE id = ?", (i,))
        from reconciler.runtime.native.images import gc

        gc.collect(self, keep_partial=False)
        return victims


    def layers_size(self) -> int:
        """What the images' layers hold, each layer once however many images share it (docker
        system df's LayersSize): the sum of their sizes (`_layer_size`)."""
        rows = self.db.connect().execute("SELECT layers FROM images").fetchall()
        chains = {rec.chain_id: rec for row in rows for rec in (LayerRecord(**d) for d in json.loads(row["layers"]))}
        return sum(self._layer_size(rec) for rec in chains.values())

    def shared_sizes(self, image_ids: Collection[str]) -> dict[str, int]:
        """Each of `image_ids`' SharedSize, as dockerd counts it among the images it lists
        (`docker system df`, `GET /images/json?shared-size=1`): the sizes (`_layer_size`) of its
        layers that another of them has too. A layer is one by its chain id: the same diff on
        another base is another layer."""
        rows = self.db.connect().execute("SELECT id, layers FROM images").fetchall()
        chains = {str(row["id"]): [LayerRecord(**d) for d in json.loads(row["layers"])]
                  for row in rows if row["id"] in image_ids}
        users: dict[str, int] = {}          # a chain id is an image's once: it names the layers below too
        for layers in chains.values():
            for rec in layers:
                users[rec.chain_id] = users.get(rec.chain_id, 0) + 1
        sizes: dict[str, int] = {}
        return {image_id: sum(sizes.setdefault(rec.chain_id, self._layer_size(rec))
                              for rec in layers if users[rec.chain_id] > 1)
                for image_id, layers in chains.items()}

    def layer_sizes(self, image_id: str) -> list[int]:
        """The size of each of an image's layers, bottom first (`docker history` shows it per step)."""
        return [self._layer_size(rec) for rec in self.layer_records(image_id)]

    def history(self, ref: str) -> list[dict[str, Any]]:
        """The steps that made an image (its config's `history`), newest first, as `docker history`
        lists them: `id` (the image's own on the newest, `<missing>` below it: no intermediate
        images are kept), `created` (RFC 3339, None when unknown), `created_by`, `comment`, `tags`
        (the image's, on the newest), `size` (the layer a step made, in order: 0 for a step that
        made none, `empty_layer`), `empty_layer`. One home for `reconcile image history` and the
        Engine API's GET /images/NAME/history."""
        info = self.get(ref)
        cfg = self.image_config(info.id)
        entries = cfg.get("history") or []
        sizes = iter(self.layer_sizes(info.id))
        # an image recorded without a time whose config has one (add_local's undated build):
        # its steps stamped with that stand-in have no time either, as dockerd shows such steps
        undated = cfg.get("created") if info.created is None else None
        rows = [{"id": "<missing>", "created": None if e.get("created") == undated else e.get("created") or None,
                 "created_by": e.get("created_by", ""),
                 "comment": e.get("comment", ""), "tags": [], "empty_layer": bool(e.get("empty_layer")),
                 "size": 0 if e.get("empty_layer") else next(sizes, 0)} for e in entries]
        rows.reverse()
        if rows:
            rows[0].update(id=info.id, tags=list(info.repo_tags))
        return rows

    def _layer_size(self, rec: LayerRecord) -> int:
        """A layer's size as Docker counts it: its snapshot's unpacked size (layers.py), or its
        compressed size while its snapshot is missing."""
        n = self.snapshots.unpacked(rec.chain_id)
        return rec.size if n is None else n

    def list(self) -> list[base.ImageInfo]:
        rows = self.db.connect().execute("SELECT id FROM images ORDER BY pulled_at DESC").fetchall()
        out = []
        for row in rows:
            with contextlib.suppress(errors.NotFound):
                out.append(self._info(str(row["id"])))
        return out


class _Stopped(errors.Cancelled):
    """A layer not unpacked because its pull is stopping."""


class _BelowFailed(errors.ImageError):
    """A layer discarded because one below it failed."""


class _Chain:
    """Which layers of one pull are committed: layer i commits after layer i-1 (chain order),
    and a layer whose parent failed, or whose pull is stopping, is discarded."""

    def __init__(self, missing: Sequence[bool]) -> None:
        self._cond = threading.Condition()
        self._state: list[bool | None] = [None if m else True for m in missing]   # None: not yet
        self._stopped = False
        self.cause: BaseException | None = None     # the first failure (not a consequence)

    def done(self, i: int) -> None:
        with self._cond:
            self._state[i] = True
            self._cond.notify_all()

    def failed(self, i: int, exc: BaseException) -> None:
        with self._cond:
            self._state[i] = False
            self._stopped = True
            if self.cause is None and not isinstance(exc, (_Stopped, _BelowFailed)):
                self.cause = exc
            self._cond.notify_all()

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()

    def check(self) -> None:
        with self._cond:
            if self._stopped:
                raise _Stopped("the pull stopped (a layer failed, or it was cancelled)")

    def ready_below(self, i: int) -> bool:
        with self._cond:
            return all(s is True for s in self._state[:i])

    def wait_below(self, i: int) -> None:
        """Block until layers 0..i-1 are committed; raise if one of them will not be."""
        with self._cond:
            while True:
                if any(s is False for s in self._state[:i]):
                    raise _BelowFailed("a layer below this one failed to unpack; this one is discarded")
                if all(s is True for s in self._state[:i]):
                    return
                if self._stopped:
                    raise _Stopped("the pull stopped (a layer failed, or it was cancelled)")
                self._cond.wait()


def _extractors() -> Any:
    from reconciler.runtime.native.images import extractors  # large pulls only

    return extractors


def _empty(path: Path) -> None:
    """Remove what a discarded unpack left in `path` (the snapshot's fs dir, kept)."""
    import shutil

    for entry in os.scandir(path):
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path)
        else:
            os.unlink(entry.path)


def _parse_config(raw: bytes, r: rc.Reference) -> dict[str, Any]:
    try:
        cfg = json.loads(raw)
    except ValueError:
        raise errors.ImageError(f"{r}: the image config is not JSON") from None
    if not isinstance(cfg, dict):
        raise errors.ImageError(f"{r}: the image config is not a JSON object")
    rootfs = cfg.get("rootfs")
    if not isinstance(rootfs, dict) or rootfs.get("type") != "layers":
        raise errors.ImageError(f"{r}: the image config's rootfs.type is not 'layers'")
    diff_ids = rootfs.get("diff_ids")
    if not isinstance(diff_ids, list):
        raise errors.ImageError(f"{r}: the image config has no rootfs.diff_ids")
    for d in diff_ids:
        content.validate_digest(d)
    return cfg
