"""Push an image of the native store to a registry, and tag images locally.

A stored image has its manifest, config and layer blobs in the content store (built images
and pulled ones alike), so a push sends those bytes unchanged: the registry ends up with the
same manifest digest the store records. Blobs the registry has already are skipped (HEAD),
and the registry client uploads the rest in parallel before the manifest and its tag.

Where another tag of the image names a repository of the same registry (the one it was pulled
from or pushed to first, else one it was tagged for here), each blob is first asked of the
registry as a cross-repository mount from it, as docker push does: a 201 mounted it (no bytes
sent; the progress says `Mounted from REPO`), a 202 goes on with an upload.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from reconciler.runtime import errors as rterrors
from reconciler.runtime.native.images import images

if TYPE_CHECKING:
    from reconciler import registry_client as rc

__all__ = ["push", "tag"]


def _rc() -> Any:
    from reconciler import registry_client

    return registry_client


def _manifest(store: images.ImageStore, image_id: str) -> rc.Manifest:
    row = store.db.connect().execute("SELECT manifest_digest FROM images WHERE id = ?", (image_id,)).fetchone()
    if row is None:
        raise rterrors.NotFound(f"image {image_id} not found")
    digest = str(row["manifest_digest"])
    try:
        raw = store.content.read(digest)
    except rterrors.NotFound:
        raise rterrors.ImageError(f"the manifest of image {image_id[7:19]} is not in the store",
                                  hint="pull or build the image again") from None
    manifest: rc.Manifest = _rc().Manifest.from_bytes(raw)
    return manifest


def push(
    store: images.ImageStore,
    source: str,
    dest: str | None = None,
    *,
    client_factory: Callable[[], rc.RegistryClient] | None = None,
    progress: Callable[[str], None] | None = None,
) -> str:
    """Push `source` (a local reference or id) to `dest` (default: `source` itself);
    returns the pushed manifest digest."""
    say = progress or (lambda _line: None)
    image_id = store.get(source).id
    target = dest or source
    ref = _with_tag(store.parse(target))
    manifest = _manifest(store, image_id)
    missing = [d.digest for d in [manifest.config, *manifest.layers] if not store.content.has(d.digest)]
    if missing:
        raise rterrors.ImageError(f"image {image_id[7:19]}: blob {missing[0]} is not in the store",
                                  hint="pull or build the image again")
    say(f"The push refers to repository [{ref.name}]")
    sources = _mount_sources(store, image_id, ref)
    mount_from = sources[0] if sources else None
    words = {"exists": "Layer already exists", "mounted": f"Mounted from {mount_from}", "uploaded": "Pushed"}

    layer_digests = {d.digest for d in manifest.layers}

    def on_blob(d: rc.Descriptor, how: str) -> None:
        if d.digest in layer_digests:           # a line a layer, as docker push's (not the config)
            say(f"{d.digest.split(':', 1)[-1][:12]}: {words.get(how, how)}")

    factory = client_factory or store.client_factory
    try:
        with factory() as client:
            client.push_image(ref, manifest, lambda d: store.content.blob_path(d.digest), tags=[ref.tag],
                              mount_from=mount_from, on_blob=on_blob)
    except _rc().RegistryError as exc:
        raise rterrors.ImageError(f"pushing {ref}: {exc.args[0] if exc.args else exc}",
                                  hint=getattr(exc, "hint", None)) from None
    digest = manifest.descriptor.digest
    say(f"{ref.tag}: digest: {digest} size: {len(manifest.raw)}")
    store._tag(ref, image_id, digest)      # the registry has it as `ref` now: a pass may ask for it
    return digest


def _mount_sources(store: images.ImageStore, image_id: str, ref: Any) -> list[str]:
    """The repositories of `ref`'s registry, other than its own, that tags of the image name:
    those the registry has it in (a tag pulled or pushed) before those only tagged here."""
    rows = store.db.connect().execute(
        "SELECT ref FROM image_refs WHERE image_id = ? ORDER BY local, ref", (image_id,)).fetchall()
    found: list[str] = []
    for row in rows:
        try:
            other = store.parse(str(row["ref"]))
        except rterrors.InvalidArgument:
            continue
        if other.registry == ref.registry and other.repository != ref.repository \
                and other.repository not in found:
            found.append(other.repository)
    return found


def tag(store: images.ImageStore, source: str, dest: str) -> str:
    """Give the stored image `source` the reference `dest`; returns the image id."""
    image_id = store.get(source).id
    ref = _with_tag(store.parse(dest))
    if ref.digest is not None:
        raise rterrors.InvalidArgument(f"{dest}: a tag cannot contain a digest", hint="give NAME[:TAG]")
    manifest = _manifest(store, image_id)
    store._tag(ref, image_id, manifest.descriptor.digest, local=True)
    return str(image_id)


def _with_tag(r: Any) -> Any:
    if r.tag is None and r.digest is None:
        return r.with_tag("latest")
    return r
