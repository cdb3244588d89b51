"""`docker import`: an image of one layer from a filesystem tarball (what `docker export`, the
Engine API's GET /containers/{id}/export or `tar -C ROOTFS -c .` write), gzip, bzip2, xz or
zstd compressed or not, from a file, a pipe, a request's body or an http(s) URL.

The tar is read once, as a stream: decompressed by the layers' own reader (its size cap, its
DiffID hash) and gzipped into an unnamed file (O_TMPFILE) in the blob directory. The snapshot is
then unpacked from that file by `layers.apply_layer`, the extractor and the rules of a pulled
layer (an entry out of the root, through a symlink, a path named twice, a sparse or hostile
header: refused), and only then is the blob named (`content.link_tmpfile`), the image recorded
(`ImageStore.add_local`: config and manifest blobs, the record) and tagged. So an import that
is refused or killed leaves nothing: no blob (the file was never named), no snapshot (a failed
one is discarded by `snapshots.create`; a killed one is `extract-*` debris, removed when the
store is next opened), no image. The blob is gzip, as a commit's or a build's (dockerd keeps an
import's layer unpacked only; it compresses it when it pushes); the DiffID is the digest of the
tar as given, decompressed, as dockerd's is, so both engines give one tar the same layer.

The config (`base_config`): this host's os and architecture, or `platform`'s; the run config
the caller gives (`docker import -c` is commit's `--change`: build.builder.apply_changes);
created now; one history entry whose comment, as the image's, is the message or dockerd's
"Imported from SOURCE" (`-` for a file or stdin: the docker CLI sends a file as the request's
body, so dockerd says `-` for it too; a URL's import names the URL).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gzip
import hashlib
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, BinaryIO, cast

from reconciler.runtime import errors
from reconciler.runtime.native.images import content, layers
from reconciler.runtime.native.images.images import ImageStore, LayerRecord

__all__ = ["MEDIA_TYPE", "base_config", "import_tarball", "is_url", "open_url"]

MEDIA_TYPE = "application/vnd.oci.image.layer.v1.tar+gzip"
_CHUNK = 1 << 20
_HINT = ("nothing was imported; give a tar archive of a filesystem (docker export's, or tar -C DIR -c .), "
         "compressed or not")
URL_TIMEOUT = 30.0          # seconds without a byte from the server before a URL's import fails


def is_url(source: str) -> bool:
    """Whether `docker import SOURCE` names a URL (the docker CLI's test: http:// or https://)."""
    return source.startswith(("http://", "https://"))


def base_config(platform: str | None = None) -> dict[str, Any]:
    """An imported image's config before its `-c` changes: this host's os and architecture, or
    `platform`'s ("os/arch[/variant]", normalised as a pull's --platform: x86_64 is amd64...);
    an os other than linux is refused, as dockerd on Linux refuses it."""
    from reconciler.registry_client import platforms

    if platform is None:
        p = platforms.host()
    else:
        parts = platform.strip().split("/")
        if not 2 <= len(parts) <= 3 or not all(parts):
            raise errors.InvalidArgument(f"invalid platform {platform!r}",
                                         hint="give os/arch[/variant], e.g. linux/amd64 or linux/arm/v7")
        p = platforms.normalize(*parts)
        if p.os != "linux":
            raise errors.InvalidArgument(f"operating system {p.os!r} is not supported: this engine makes linux "
                                         f"images", hint="give --platform linux/ARCH")
    cfg: dict[str, Any] = {"architecture": p.architecture, "os": p.os, "config": {}}
    if p.variant:
        cfg["variant"] = p.variant
    return cfg


class _Hashing:
    """Counts and hashes what passes to the file descriptor `fd` (the gzip stream)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.hash.update(data)
        self.size += len(data)
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view):]
        return len(data)

    def flush(self) -> None:
        pass


def _gzip_into(src: BinaryIO, fd: int, max_size: int) -> tuple[str, str, int]:
    """The tar `src`, decompressed, gzipped into `fd`: (blob digest, DiffID, blob size)."""
    stream = layers.open_decompressed(src, max_size)
    out = _Hashing(fd)
    try:
        with gzip.GzipFile(filename="", mode="wb", fileobj=cast(Any, out), mtime=0, compresslevel=6) as gz:
            while chunk := stream.read(_CHUNK):
                gz.write(chunk)
    except layers.LayerError as exc:
        raise errors.ImageError(f"cannot import the tarball: {exc.message}", hint=_HINT) from None
    except layers.STREAM_ERRORS as exc:
        raise errors.ImageError(f"cannot import the tarball: its compressed stream is corrupt: {exc}",
                                hint=_HINT) from None
    if stream.size == 0:
        raise errors.ImageError("cannot import the tarball: it is empty", hint=_HINT)
    return "sha256:" + out.hash.hexdigest(), "sha256:" + stream.hash.hexdigest(), out.size


def import_tarball(store: ImageStore, src: BinaryIO, config: Mapping[str, Any], ref: str | None = None, *,
                   message: str = "", source: str = "-") -> str:
    """Import the filesystem tarball `src` as an image of one layer whose config is `config`
    (`base_config`, with the run config's changes), tagged `ref` when given (`latest` when it
    has no tag; dangling without one); its id. All or nothing (the module's docstring)."""
    tags: list[str] = []
    if ref:
        r = store.parse(ref)
        if r.digest is not None:
            raise errors.InvalidArgument(f"cannot import as {ref!r}: a digest names content, not a tag",
                                         hint="give REPOSITORY[:TAG]")
        tags = [ref]
    from reconciler.runtime.native.images import snapshots

    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    comment = message or f"Imported from {source}"
    with store.store_lock(exclusive=False):            # no GC between the blob's naming and the record
        fd = os.open(store.content.blob_dir, os.O_TMPFILE | os.O_RDWR | os.O_CLOEXEC, 0o444)
        try:
            digest, diff_id, size = _gzip_into(src, fd, store.limits.max_size)
            chain = snapshots.chain_ids([diff_id])[-1]
            rec = LayerRecord(digest, size, MEDIA_TYPE, diff_id, chain)

            def apply(fs: Path, lowers: list[Path]) -> dict[str, Any]:
                with open(f"/proc/self/fd/{fd}", "rb") as blob:
                    res = layers.apply_layer(blob, fs, lowers=lowers, expected_diff_id=diff_id, limits=store.limits)
                return {"diff_id": res.diff_id, "size": res.size, "unpacked": res.unpacked, "digest": digest}

            try:
                store.snapshots.create(chain, [], apply)
            except layers.LayerError as exc:
                raise errors.ImageError(f"cannot import the tarball: {exc.message}", hint=_HINT) from None
            added = not store.content.has(digest)
            content.link_tmpfile(fd, store.content.blob_path(digest))
        finally:
            os.close(fd)
        cfg = dict(config)
        cfg.setdefault("config", {})
        cfg["created"] = now
        cfg["comment"] = comment
        cfg["rootfs"] = {"type": "layers", "diff_ids": [diff_id]}
        cfg["history"] = [{"created": now, "comment": comment}]
        try:
            image_id, _ = store.add_local(cfg, [rec], tags)
        except BaseException:
            if added:
                with contextlib.suppress(OSError):
                    store.content.delete(digest)
            raise
    return image_id


@contextlib.contextmanager
def open_url(url: str) -> Iterator[BinaryIO]:
    """The body of an http(s) URL as a stream (`docker import URL`), fetched by the registry
    client's httpx (registry_client/urls.py: no proxy from the environment, redirects
    followed); a status of 400 or more, or a server that cannot be reached, is an ImageError
    that says which."""
    if not is_url(url):
        raise errors.InvalidArgument(f"cannot import from {url!r}: only http:// and https:// URLs are fetched",
                                     hint="give a file, - for stdin, or an http(s) URL")
    from reconciler.registry_client import errors as rcerrors
    from reconciler.registry_client import urls

    try:
        with urls.open_url(url, timeout=URL_TIMEOUT) as body:
            yield body
    except rcerrors.RegistryError as exc:
        raise errors.ImageError(f"cannot import from {url}: {exc.message}", hint=exc.hint) from None
