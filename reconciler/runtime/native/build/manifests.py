"""Builds asked for by manifests: input digests, build records, build-and-tag, push.

An `Image` with `build:` is rebuilt when its *input digest* changes: the sha256 of the
Dockerfile's bytes, the build args, the target and every file of the context that
.dockerignore keeps (name, type, mode, content, link target). The digest of the last
successful build of a reference is kept in the state DB (`build_records`, runtime/buildinputs.py's
`BuildRecords`), with the digest each push target last received, so a pass can tell, without
building, whether a build or a push is due (`buildinputs.due`, the rule every engine's builds go
by). Reading the context follows the builder's rules (nothing outside it is read).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Mapping
from typing import Any

from reconciler.runtime import base, buildinputs
from reconciler.runtime.native.build import builder, context, push
from reconciler.runtime.native.containers import containers
from reconciler.runtime.native.images import images

__all__ = ["build", "due", "input_digest", "push_to"]


def input_digest(ctx_dir: str, dockerfile: str, args: Mapping[str, str], target: str | None) -> str:
    """What a build of these inputs depends on, as one sha256 (reads the context)."""
    h = hashlib.sha256()
    df = dockerfile if os.path.isabs(dockerfile) else os.path.join(ctx_dir, dockerfile)
    with open(df, "rb") as f:
        h.update(hashlib.sha256(f.read()).hexdigest().encode())
    h.update(json.dumps({"args": dict(sorted(args.items())), "target": target}, sort_keys=True).encode())
    with context.BuildContext(ctx_dir, dockerfile=df) as ctx:
        h.update(context.hash_sources(ctx, ctx.resolve("."), owners=False).encode())
    return "sha256:" + h.hexdigest()


def _records(store: images.ImageStore) -> buildinputs.BuildRecords:
    """The native engine's build records (runtime/buildinputs.py: one rule for every engine)."""
    return buildinputs.BuildRecords(store.db, "build_records")


def build(
    store: images.ImageStore,
    manager: containers.ContainerManager,
    ref: str,
    ctx_dir: str,
    dockerfile: str,
    args: Mapping[str, str],
    target: str | None,
    *,
    secrets: Mapping[str, bytes] | None = None,
    ssh: Mapping[str, str] | None = None,
    allow_insecure: bool = False,
    progress: Callable[[str], None] | None = None,
) -> base.ImageInfo:
    """Build and tag `ref`; record its input digest (taken before the build reads the context).
    The secrets reach the build's RUN --mount=type=secret steps only: they are no input of the
    digest (nothing derived from a secret is stored), so a changed secret alone rebuilds nothing.
    Every step's container is removed, a failed one's too (docker build's --force-rm, as compose's
    BuildKit builds leave none): a pass that retries a broken build must not leave one each time."""
    digest = input_digest(ctx_dir, dockerfile, args, target)
    result = builder.Builder(store, manager).build(
        builder.BuildOptions(context=ctx_dir, dockerfile=dockerfile, build_args=dict(args), target=target,
                             tags=(ref,), secrets=dict(secrets or {}), ssh=dict(ssh or {}),
                             allow_insecure=allow_insecure, force_rm=True),
        progress,
    )
    _records(store).built(ref, digest, result.image_id)
    info: base.ImageInfo = store.get(result.image_id)
    return info


def push_to(store: images.ImageStore, ref: str, dest: str, *, auth: Mapping[str, Any] | None = None,
            progress: Callable[[str], None] | None = None) -> str:
    """Push the built `ref` to `dest`; remember which input digest `dest` now has. `auth`:
    Docker's AuthConfig for dest's registry (images.ImageStore.client_factory_for)."""
    records = _records(store)
    last = records.get(ref)
    factory = store.client_factory_for(store.parse(dest).registry, auth)
    digest = push.push(store, ref, dest if dest != ref else None, client_factory=factory, progress=progress)
    if last is not None:
        records.pushed(ref, dest, last.input)
    return digest


def due(
    store: images.ImageStore, ref: str, ctx_dir: str, dockerfile: str, args: Mapping[str, str],
    target: str | None, push_targets: tuple[str, ...],
) -> tuple[str | None, tuple[str, ...]]:
    """Why `ref` must be built now (None: it is up to date), and the push targets that have
    not received its current inputs. An unreadable context is a reason to build (the build
    then reports what is wrong)."""
    try:
        digest = input_digest(ctx_dir, dockerfile, args, target)
    except (OSError, context.ContextError) as exc:
        return f"build context unreadable ({exc})", push_targets
    try:
        present: str | None = store.get(ref).id
    except Exception:  # noqa: BLE001 - any lookup failure means: not usable, build it
        present = None
    return buildinputs.due(_records(store).get(ref), digest, present, push_targets)
