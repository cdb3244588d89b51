"""Images to and from archives, without a registry: `reconcile save` and `reconcile load`.

save: one tar stream holding the images' blobs once each (layers as stored: no recompression),
an OCI image layout (`oci-layout`, `index.json`, `blobs/sha256/...`) and, for the default
`docker-archive` format, Docker's `manifest.json` + `repositories` beside it, as `docker save`
of Docker 25+ writes them, so `docker load`, `podman load` and OCI tools all take it.

load: takes what `docker save` (the legacy layout of `<id>/layer.tar` and the OCI-index-bearing
one), `podman save` and OCI layout archives hold, gzip- or zstd-compressed or not, from a file
or a pipe. The archive is read once as a stream: every regular member is hashed into the
content store as it passes (a member named `blobs/sha256/<hex>` must have that digest), nothing
of it is ever written under its own name, and the small JSON members are kept in memory. Then
each image's layers are unpacked by the same extractor, with the same limits and DiffID checks,
as a pull's (layers.apply_layer through snapshots.create), recorded and tagged: by RepoTags, else
by an OCI index entry's `io.containerd.image.name` (docker save, ours), else its
`org.opencontainers.image.ref.name` (podman save and skopeo write the full reference there; a tag
alone names no repository, and that image loads untagged with a progress line). A failure
removes the blobs the load added; a snapshot already built is left for GC like a pull's.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import PurePosixPath
from typing import IO, Any

from reconciler._dataclass import dataclass, field
from reconciler.runtime import compressed, errors
from reconciler.runtime.native.images import content, layers, snapshots
from reconciler.runtime.native.images.images import ImageStore, LayerRecord

__all__ = ["FORMATS", "LoadedImage", "load", "save"]

FORMATS = ("docker-archive", "oci-archive")
MAX_JSON_MEMBER = 4 << 20               # manifest.json, index.json, configs: kept in memory
MAX_MEMBERS = 100_000
_CHUNK = 1 << 20
_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
_OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
_OCI_INDEX = "application/vnd.oci.image.index.v1+json"
_OCI_REF_NAME = "org.opencontainers.image.ref.name"
_DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"

Progress = Callable[[str], None]


@dataclass(frozen=True)
class LoadedImage:
    """An image `load` put into the store: its id, tags and manifest digest."""

    id: str
    tags: tuple[str, ...]
    digest: str


# ------------------------------------------------------------------------------------------ save

def _blob_entry(tar: tarfile.TarFile, store: ImageStore, digest: str, written: set[str]) -> None:
    if digest in written:
        return
    path = store.content.blob_path(digest)
    try:
        st = path.stat()
    except FileNotFoundError:
        raise errors.ImageError(f"blob {digest} is not in the content store",
                                hint="pull the image again, then save it") from None
    info = tarfile.TarInfo(f"blobs/sha256/{content.digest_hex(digest)}")
    info.size, info.mode, info.mtime = st.st_size, 0o444, 0
    with open(path, "rb") as f:
        tar.addfile(info, f)
    written.add(digest)


def _json_entry(tar: tarfile.TarFile, name: str, value: Any) -> None:
    raw = json.dumps(value, separators=(",", ":")).encode()
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(raw), 0o644, 0
    tar.addfile(info, io.BytesIO(raw))


def _short_name(ref: str) -> tuple[str, str]:
    """'registry/repo:tag' -> ('registry/repo', 'tag')."""
    name, _, tag = ref.rpartition(":")
    if not name or "/" in tag:
        return ref, "latest"
    return name, tag


def _tags_named(store: ImageStore, ref: str, repo_tags: Sequence[str]) -> list[str]:
    """The tags `docker save REF` records: the one named, every tag of a bare repository name,
    none for an id or a digest."""
    try:
        r = store.parse(ref)
    except errors.InvalidArgument:
        return []                                            # an id or an id prefix
    if r.digest:
        return []
    wanted = [t for t in repo_tags if store.parse(t).name == r.name]
    explicit = ":" in ref.rsplit("/", 1)[-1]
    return [t for t in wanted if store.parse(t).tag == r.tag] if explicit else wanted


def save(store: ImageStore, refs: Sequence[str], out: IO[bytes], *, fmt: str = "docker-archive",
         progress: Progress | None = None) -> list[str]:
    """Write the images `refs` names to `out` as one tar stream; returns their ids."""
    if fmt not in FORMATS:
        raise errors.InvalidArgument(f"unknown archive format {fmt!r}", hint=f"one of {', '.join(FORMATS)}")
    say = progress or (lambda _m: None)
    chosen: list[tuple[str, list[str], str]] = []          # (image id, tags to record, manifest digest)
    for ref in refs:
        info = store.get(ref)
        row = store.db.connect().execute("SELECT manifest_digest FROM images WHERE id = ?", (info.id,)).fetchone()
        chosen.append((info.id, _tags_named(store, ref, info.repo_tags), str(row["manifest_digest"])))
    written: set[str] = set()
    docker_manifest: list[dict[str, Any]] = []
    repositories: dict[str, dict[str, str]] = {}
    index: list[dict[str, Any]] = []
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        _json_entry(tar, "oci-layout", {"imageLayoutVersion": "1.0.0"})
        for image_id, tags, manifest_digest in chosen:
            recs = store.layer_records(image_id)
            for i, rec in enumerate(recs, 1):
                say(f"{rec.digest[7:19]}: saving layer {i}/{len(recs)}")
                _blob_entry(tar, store, rec.digest, written)
            _blob_entry(tar, store, image_id, written)
            _blob_entry(tar, store, manifest_digest, written)
            manifest_raw = store.content.read(manifest_digest)
            media_type = json.loads(manifest_raw).get("mediaType") or _OCI_MANIFEST
            base_desc = {"mediaType": media_type, "digest": manifest_digest, "size": len(manifest_raw)}
            named: list[str | None] = list(tags) or [None]
            for t in named:
                desc = dict(base_desc)
                if t is not None:
                    name, tag = _short_name(t)
                    desc["annotations"] = {"io.containerd.image.name": t, "org.opencontainers.image.ref.name": tag}
                    repositories.setdefault(name, {})[tag] = content.digest_hex(recs[-1].diff_id) if recs else ""
                index.append(desc)
            docker_manifest.append({
                "Config": f"blobs/sha256/{content.digest_hex(image_id)}",
                "RepoTags": list(tags),
                "Layers": [f"blobs/sha256/{content.digest_hex(rec.digest)}" for rec in recs],
            })
            say(f"saved {tags[0] if tags else image_id[7:19]}")
        _json_entry(tar, "index.json", {"schemaVersion": 2, "mediaType": _OCI_INDEX, "manifests": index})
        if fmt == "docker-archive":
            _json_entry(tar, "manifest.json", docker_manifest)
            _json_entry(tar, "repositories", repositories)
    return [c[0] for c in chosen]


# ------------------------------------------------------------------------------------------ load

def _member_name(name: str) -> str:
    """`name` inside the archive, without the `./` that `tar -C DIR -cf - .` puts before each
    member (PurePosixPath drops it: `./.x` is `.x`, and `.` has no parts)."""
    p = PurePosixPath(name)
    if p.is_absolute() or ".." in p.parts or not p.parts:
        raise errors.ImageError(f"archive member {name!r} leaves the archive",
                                hint="the archive is damaged or hostile; it was not loaded")
    return str(p)


@dataclass
class _Archive:
    """What one pass over a save archive found: its blobs, their sizes, its JSON members and links."""

    blobs: dict[str, str] = field(default_factory=dict)        # member path -> digest of its bytes
    sizes: dict[str, int] = field(default_factory=dict)        # digest -> size
    small: dict[str, bytes] = field(default_factory=dict)      # member path -> bytes (JSON members)
    links: dict[str, str] = field(default_factory=dict)        # member path -> target member path
    added: list[str] = field(default_factory=list)             # digests this load put in the store

    def resolve(self, path: str) -> str:
        seen = 0
        while path in self.links and seen < 16:
            path, seen = self.links[path], seen + 1
        return path

    def digest_of(self, path: str) -> str:
        path = self.resolve(_member_name(path))
        if path not in self.blobs:
            raise errors.ImageError(f"the archive names {path!r}, which it does not hold",
                                    hint="the archive is truncated or incomplete")
        return self.blobs[path]

    def json(self, path: str, store: ImageStore | None = None) -> Any:
        path = self.resolve(_member_name(path))
        raw = self.small.get(path)
        if raw is None and store is not None and path in self.blobs:
            raw = store.content.read(self.blobs[path], max_size=MAX_JSON_MEMBER)
        if raw is None:
            raise errors.ImageError(f"the archive has no {path!r}", hint="is this a docker/podman save or OCI archive?")
        try:
            return json.loads(raw)
        except ValueError:
            raise errors.ImageError(f"{path!r} in the archive is not valid JSON") from None


def _ingest_member(store: ImageStore, f: IO[bytes], size: int, expected: str | None, arc: _Archive) -> str:
    """Hash a member's bytes into the content store; its digest (checked against `expected`).

    The bytes go to an unnamed file (O_TMPFILE) that is linked into the store only once its
    digest is known and right: a load killed at any point leaves no partial file behind."""
    h = hashlib.sha256()
    fd = os.open(store.content.blob_dir, os.O_TMPFILE | os.O_WRONLY | os.O_CLOEXEC, 0o444)
    try:
        left = size
        while left:
            chunk = f.read(min(_CHUNK, left))
            if not chunk:
                raise errors.ImageError("the archive ends in the middle of a member",
                                        hint="the archive is truncated; nothing was loaded")
            h.update(chunk)
            view = memoryview(chunk)
            while view:
                view = view[os.write(fd, view):]
            left -= len(chunk)
        digest = "sha256:" + h.hexdigest()
        if expected is not None and digest != expected:
            raise errors.ImageError(f"archive blob {expected} has digest {digest}",
                                    hint="the archive is damaged or was altered; nothing was loaded")
        if not store.content.has(digest):
            content.link_tmpfile(fd, store.content.blob_path(digest))
            arc.added.append(digest)
        return digest
    finally:
        os.close(fd)


def _read_archive(store: ImageStore, stream: IO[bytes], say: Progress) -> _Archive:
    arc = _Archive()
    try:
        tar = tarfile.open(fileobj=stream, mode="r|")  # noqa: SIM115 - closed with the stream by load()
    except tarfile.TarError as exc:
        raise errors.ImageError(f"not an image archive: {exc}",
                                hint="give the output of reconcile/docker/podman save or an OCI layout tar") from None
    count = 0
    try:
        for m in tar:
            count += 1
            if count > MAX_MEMBERS:
                raise errors.ImageError(f"the archive has more than {MAX_MEMBERS} members")
            if m.isdir() and not PurePosixPath(m.name).parts:
                continue                                   # `.`: the directory `tar -C DIR .` was run in
            name = _member_name(m.name)
            if m.issym() or m.islnk():
                target = m.linkname if m.islnk() else str(PurePosixPath(name).parent / m.linkname)
                arc.links[name] = _member_name(os.path.normpath(target))
                continue
            if not m.isfile():
                continue
            f = tar.extractfile(m)
            if f is None:
                continue
            parts = PurePosixPath(name).parts
            expected = None
            if len(parts) == 3 and parts[:2] == ("blobs", "sha256"):
                expected = content.validate_digest("sha256:" + parts[2])
            if m.size <= MAX_JSON_MEMBER and expected is None and (name.endswith(".json") or
                                                                   name in ("repositories", "oci-layout")):
                arc.small[name] = f.read()
                continue
            digest = _ingest_member(store, f, m.size, expected, arc)
            arc.blobs[name] = digest
            arc.sizes[digest] = m.size
            if m.size > 1 << 20:
                say(f"{digest[7:19]}: read {m.size} bytes")
    except (tarfile.TarError, EOFError, OSError) as exc:
        if isinstance(exc, OSError) and exc.errno is not None:
            raise
        raise errors.ImageError(f"the archive is damaged: {exc}",
                                hint="the archive is truncated or corrupt; nothing was loaded") from None
    return arc


def _media_type(store: ImageStore, digest: str) -> str:
    with store.content.open(digest) as f:
        head = f.read(4)
    if head.startswith(compressed.GZIP):
        return "application/vnd.oci.image.layer.v1.tar+gzip"
    if head.startswith(compressed.ZSTD):
        return "application/vnd.oci.image.layer.v1.tar+zstd"
    return "application/vnd.oci.image.layer.v1.tar"


@dataclass
class _Candidate:
    """An image an archive describes, before its blobs are checked."""

    config_digest: str
    layer_digests: list[str]
    tags: list[str]
    manifest_digest: str | None = None


def _candidates(store: ImageStore, arc: _Archive, say: Progress) -> list[_Candidate]:
    found: list[_Candidate] = []
    if "manifest.json" in arc.small:                       # docker save / podman save
        entries = arc.json("manifest.json")
        if not isinstance(entries, list):
            raise errors.ImageError("manifest.json in the archive is not a list")
        for e in entries:
            if not isinstance(e, Mapping) or not isinstance(e.get("Config"), str) or \
                    not isinstance(e.get("Layers"), list):
                raise errors.ImageError("manifest.json in the archive has an entry without Config and Layers")
            cfg = arc.digest_of(e["Config"]) if arc.resolve(_member_name(e["Config"])) in arc.blobs \
                else _config_from_small(store, arc, e["Config"])
            found.append(_Candidate(cfg, [arc.digest_of(str(x)) for x in e["Layers"]],
                                    [str(t) for t in e.get("RepoTags") or ()]))
        # the OCI index beside it (Docker 25+, ours) names the manifests: keep their digests
        if "index.json" in arc.small:
            by_config = {c.config_digest: c for c in found}
            for desc, _tags in _index_manifests(store, arc, lambda _m: None):
                m = json.loads(store.content.read(desc))
                cand = by_config.get(str((m.get("config") or {}).get("digest")))
                if cand is not None and cand.manifest_digest is None:
                    cand.manifest_digest = desc
        return found
    if "index.json" in arc.small:                          # an OCI image layout
        for desc, tags in _index_manifests(store, arc, say):
            m = json.loads(store.content.read(desc))
            cfg = content.validate_digest((m.get("config") or {}).get("digest"))
            if not store.content.has(cfg):
                raise errors.ImageError(f"the archive lacks the config blob {cfg}")
            layer_digests = [content.validate_digest(d.get("digest")) for d in m.get("layers") or ()]
            for d in layer_digests:
                if not store.content.has(d):
                    raise errors.ImageError(f"the archive lacks the layer blob {d}",
                                            hint="the archive is truncated or incomplete")
            found.append(_Candidate(cfg, layer_digests, tags, desc))
        return found
    raise errors.ImageError("the archive has neither manifest.json nor index.json",
                            hint="give the output of reconcile/docker/podman save or an OCI layout tar")


def _config_from_small(store: ImageStore, arc: _Archive, path: str) -> str:
    """A config member kept in memory (a `<id>.json` of a legacy docker save) into the store."""
    raw = arc.small.get(arc.resolve(_member_name(path)))
    if raw is None:
        raise errors.ImageError(f"the archive names {path!r}, which it does not hold")
    digest = "sha256:" + hashlib.sha256(raw).hexdigest()
    if not store.content.has(digest):
        store.content.write_blob(raw, digest)
        arc.added.append(digest)
    return digest


def _index_manifests(store: ImageStore, arc: _Archive, say: Progress) -> Iterator[tuple[str, list[str]]]:
    """(manifest digest, tags) of the image manifests index.json names (nested indexes followed)."""
    index = arc.json("index.json")
    yield from _walk_index(store, index, 0, say)


def _names(ann: Any, digest: str, say: Progress) -> list[str]:
    """The name a descriptor's annotations give its image: containerd's `io.containerd.image.name`
    (docker save, ours), else the OCI standard `org.opencontainers.image.ref.name` (podman save,
    skopeo, buildah write the full reference there). The image-layout spec lets that one be a tag
    alone (`1.0`): a name without `/` or `:` is such a tag, which names no repository (skopeo reads
    it as a selector, `oci-archive:FILE:1.0`), so the image loads untagged and the progress says so."""
    if not isinstance(ann, Mapping):
        return []
    name = ann.get("io.containerd.image.name") or ann.get(_OCI_REF_NAME)
    if not isinstance(name, str) or not name:
        return []
    if "/" not in name and ":" not in name:
        say(f"{digest[7:19]}: the archive names it only by the tag {name!r} ({_OCI_REF_NAME}), "
            "no repository: loaded untagged (reconcile tag ID NAME:TAG names it)")
        return []
    return [name]


def _walk_index(store: ImageStore, index: Any, depth: int, say: Progress) -> Iterator[tuple[str, list[str]]]:
    if depth > 4 or not isinstance(index, Mapping):
        raise errors.ImageError("index.json in the archive is malformed or nested too deeply")
    for desc in index.get("manifests") or ():
        if not isinstance(desc, Mapping):
            continue
        digest = content.validate_digest(desc.get("digest"))
        if not store.content.has(digest):
            continue                                       # other platforms' manifests are not saved
        tags = _names(desc.get("annotations"), digest, say)
        if desc.get("mediaType") == _OCI_INDEX or desc.get("mediaType", "").endswith("manifest.list.v2+json"):
            for inner, inner_tags in _walk_index(store, json.loads(store.content.read(digest)), depth + 1, say):
                yield inner, inner_tags or tags
            continue
        yield digest, tags


def _import(store: ImageStore, cand: _Candidate, say: Progress) -> LoadedImage:
    config_raw = store.content.read(cand.config_digest)
    try:
        cfg = json.loads(config_raw)
        diff_ids = [content.validate_digest(d) for d in cfg["rootfs"]["diff_ids"]]
    except (ValueError, KeyError, TypeError, errors.RuntimeBackendError):
        raise errors.ImageError(f"image config {cand.config_digest} in the archive is malformed") from None
    if len(diff_ids) != len(cand.layer_digests):
        raise errors.ImageError(f"image {cand.config_digest[7:19]}: the config lists {len(diff_ids)} layers, "
                                f"the archive {len(cand.layer_digests)}")
    chains = snapshots.chain_ids(diff_ids)
    recs = [LayerRecord(d, store.content.size(d), _media_type(store, d), diff, chain)
            for d, diff, chain in zip(cand.layer_digests, diff_ids, chains, strict=True)]
    for i, rec in enumerate(recs):
        def apply(fs: Any, lowers: list[Any], rec: LayerRecord = rec) -> dict[str, Any]:
            with store.content.open(rec.digest) as blob:
                res = layers.apply_layer(blob, fs, lowers=lowers, expected_diff_id=rec.diff_id,
                                         limits=store.limits, compressed_size=rec.size)
            return {"diff_id": res.diff_id, "size": res.size, "unpacked": res.unpacked, "digest": rec.digest}
        built = store.snapshots.create(rec.chain_id, [x.chain_id for x in recs[:i]], apply)
        say(f"{rec.digest[7:19]}: {'Loading layer' if built else 'Already exists'}")
    if cand.manifest_digest is None:                       # legacy docker save: no manifest in it
        _, manifest_digest = store.add_local(cfg, recs, config_raw=config_raw)
    else:
        manifest_digest = cand.manifest_digest
        store._record(cand.config_digest, manifest_digest, None, recs, cfg)
    tags = []
    for t in cand.tags:
        try:
            r = store.parse(t)
        except errors.InvalidArgument:
            say(f"skipped the tag {t!r}: not a valid reference")
            continue
        if r.tag is None:
            r = r.with_tag("latest")
        store._tag(r, cand.config_digest, manifest_digest, local=True)
        tags.append(f"{r.name}:{r.tag}")
    return LoadedImage(cand.config_digest, tuple(tags), manifest_digest)


def load(store: ImageStore, src: IO[bytes], *, progress: Progress | None = None) -> list[LoadedImage]:
    """Load every image of the archive `src`; all or nothing for the blobs it adds."""
    say = progress or (lambda _m: None)
    stream, close = compressed.open_stream(src)
    arc = _Archive()
    with store.store_lock(exclusive=False):            # no GC while the new blobs are unreferenced
        try:
            arc = _read_archive(store, stream, say)
            loaded = [_import(store, c, say) for c in _candidates(store, arc, say)]
        except BaseException:
            for digest in arc.added:
                store.content.delete(digest)
            raise
        finally:
            close()
    if not loaded:
        raise errors.ImageError("the archive holds no image")
    return loaded
