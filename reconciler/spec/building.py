"""From located YAML documents to a DesiredState: schema, semantic checks, defaults, hashes.

Every check appends Problems and carries on, so one run reports everything wrong with a
revision. Objects are built only from documents that passed their schema; cross-object
checks (references, cycles, port conflicts) know the names of every document that had a
name, so an invalid Network does not also make its users report "undefined network".
"""

from __future__ import annotations

import copy
import hashlib
import ipaddress
import os
import re
import signal
import stat
from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, cast

from reconciler import limitranges
from reconciler._dataclass import dataclass, dataclasses, field
from reconciler.spec import (
    errors,
    hashing,
    lock,
    models,
    reading,
    schemas,
    tagpolicy,
    units,
    validity,
)
from reconciler.spec.selection import ANONYMOUS_LABEL

if TYPE_CHECKING:
    # the decryption is imported where a file is checked for it: most manifests name no env
    # file, secret or build secret, and a no-op `--once` need not load it (#21)
    from reconciler.spec import sops

__all__ = ["ANONYMOUS_LABEL", "Builder", "anonymous_name"]

_REF = re.compile(
    r"^(?:(?P<domain>(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*"
    r"(?::[0-9]+)?|\[[0-9a-fA-F:]+\](?::[0-9]+)?)/)?"
    r"(?P<path>[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*)"
    r"(?::(?P<tag>[\w][\w.-]{0,127}))?"
    r"(?:@(?P<digest>sha256:[0-9a-f]{64}))?$"
)
_BUILD_SECRET_MAX = 1 << 20       # as `reconcile build --secret` reads them
_JOIN = "container:"                # networks: [container:NAME] joins NAME's network namespace
_ENV_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
_RESERVED_LABEL = "reconciler."
_WILDCARDS = ("0.0.0.0", "::")  # noqa: S104 - a wildcard host IP conflicts with every address
_KNOWN_SIGNALS = {s.name for s in signal.Signals}
_IPC_SYSCTLS = {"kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall", "kernel.shmmax",
                "kernel.shmmni", "kernel.shm_rmid_forced"}
_SHORT_SIGNAL = {s.name.removeprefix("SIG") for s in signal.Signals}

Path_ = tuple[str | int, ...]


def anonymous_name(container: str, target: str) -> str:
    """The name of `container`'s anonymous volume at `target`: stable, so a replacement of the
    container finds its data, and at most 63 characters, like every name of the manifests."""
    digest = hashlib.sha256(f"{container}\0{target}".encode()).hexdigest()[:12]
    return f"{container[:63 - len(digest) - 6]}-anon-{digest}"


def valid_reference(ref: str) -> bool:
    return len(ref) <= 512 and _REF.match(ref) is not None


@dataclass
class _Doc:
    """A document that parsed: its kind and name once known."""

    raw: reading.Document
    kind: str = ""
    name: str = ""
    valid: bool = False             # no problem at all so far
    data: Any = None                # what to build from: the document, or it minus its schema errors


@dataclass
class Builder:
    """Accumulates problems while turning documents into models."""

    problems: list[errors.Problem] = field(default_factory=list)
    limits: reading.Limits = field(default_factory=reading.Limits)
    root: str = ""                  # the real path of the directory loaded (where relative paths start)
    live: str | None = None         # where relative bind sources resolve instead (spec.load's `live`)
    files: dict[str, str] = field(default_factory=dict)      # every referenced file -> digest
    pins: dict[str, str] = field(default_factory=dict)       # the lock file's ref -> digest (lock.py)
    decryption: sops.Keys | None = None     # opens SOPS-encrypted env files (spec.load's `decryption`)
    engine: str | None = None       # the engine that converges them (spec.load's `engine`); None: any
    # a cluster of services converges them (spec.load's `cluster`: Swarm): a Container without
    # `restart` is restarted whatever its exit (always: Swarm's `any`, as docker stack deploy
    # makes a service without a restart policy), not left down (Docker's `no` on one host)
    cluster: bool = False
    warnings: list[errors.Problem] = field(default_factory=list)     # what loads but is not honoured there
    known_valid: validity.KnownValid | None = None      # documents that passed their schema before
    copies: dict[str, list[str]] = field(default_factory=dict)  # a Container with replicas -> its (`replicate`)
    _file_cache: dict[str, bytes | None] = field(default_factory=dict)
    _plain_cache: dict[str, sops.Decrypted | str] = field(default_factory=dict, repr=False)

    # -- reporting -------------------------------------------------------------------------

    def report(self, d: _Doc, path: Path_, message: str, *, key: bool = False) -> None:
        self.problems.append(self.problem(d, path, message, key=key))

    def warn(self, d: _Doc, path: Path_, message: str, *, key: bool = False) -> None:
        self.warnings.append(self.problem(d, path, message, key=key))

    @staticmethod
    def problem(d: _Doc, path: Path_, message: str, *, key: bool = False) -> errors.Problem:
        if d.raw.locate is not None:    # a document made from a compose file: named as written there
            file, line, column, where = d.raw.locate(path, key)
            return errors.Problem(file=file, line=line, column=column, kind="", name="", field=where, message=message)
        line, column = d.raw.where(path, key=key)
        return errors.Problem(file=d.raw.file, line=line, column=column, kind=d.kind, name=d.name,
                              field=reading._fmt(path), message=message)

    # -- phase 1: kind, name, schema -------------------------------------------------------

    def classify(self, raw: reading.Document) -> _Doc:
        d = _Doc(raw)
        data = raw.data
        if raw.problems and not (isinstance(data, dict) and data.get("kind") in models.KINDS):
            self.problems.extend(raw.problems)      # no kind to name them by
        if not isinstance(data, dict):
            self.report(d, (), f"a manifest document must be a mapping with apiVersion, kind, metadata and spec, not {schemas._typename(data)}")
            return d
        kind = data.get("kind")
        meta = data.get("metadata")
        if isinstance(meta, dict) and isinstance(meta.get("name"), str):
            d.name = meta["name"]
        if "kind" not in data:
            self.report(d, ("kind",), f"required field is missing; set it to one of {', '.join(models.KINDS)}", key=True)
            return d
        if kind not in models.KINDS:
            hint = schemas.did_you_mean(kind, models.KINDS) if isinstance(kind, str) else ""
            self.report(d, ("kind",), f"unknown kind {schemas._short(kind)}; expected one of {', '.join(models.KINDS)}{hint}")
            return d
        d.kind = kind
        self.problems.extend(dataclasses.replace(p, kind=kind, name=d.name) for p in raw.problems)
        issues = self.schema_issues(kind, data, raw)
        for path, at_key, message in issues:
            if message == schemas.REQUIRED and raw.locate is not None and path:
                # a document made from compose: reported at the compose key the object came from,
                # which names no field of the manifest language: the message names it
                self.report(d, path[:-1], schemas.required_field(path[-1]), key=True)
                continue
            self.report(d, path, message, key=at_key)
        d.valid = not issues and not raw.problems
        if not issues:
            d.data = data
        else:
            # Semantic checks still run on the rest of the document, so one pass reports
            # everything: drop each failing field (a whole list if an item failed, so list
            # indices in later messages stay true) and keep the result if it now validates.
            pruned = copy.deepcopy(data)
            for path, _, _ in issues:
                _prune(pruned, path)
            meta = pruned.get("metadata") if isinstance(pruned, dict) else None
            if isinstance(meta, dict) and "name" not in meta and isinstance(data.get("metadata"), dict) \
                    and "name" in data["metadata"]:
                # an invalid name, reported above, stands in as a valid one: its spec's problems are
                # reported too (messages name the document as written)
                meta["name"] = f"invalid-name-{len(self.problems)}"
            if schemas.is_valid(kind, pruned):
                d.data = pruned
        return d

    def schema_issues(self, kind: str, data: Any, raw: reading.Document) -> list[schemas.SchemaIssue]:
        """The document's schema violations; none for one known valid (`known_valid`), which
        then is not validated again."""
        known = self.known_valid
        digest = validity.key(kind, data, digest=raw.digest) if known is not None and not raw.problems else None
        if known is None or digest is None:
            return list(schemas.issues(kind, data))
        if digest in known:
            return []
        issues = list(schemas.issues(kind, data))
        if not issues:
            known.add(digest)
        return issues

    # -- files -----------------------------------------------------------------------------

    def read_file(self, path: str) -> bytes | None:
        """Bytes of a referenced file (cached, size-capped), or None if unreadable."""
        if path not in self._file_cache:
            data: bytes | None
            try:        # regular files only, opened non-blocking: /proc/kmsg or a FIFO must not hang a load
                data = reading.read_regular(path, None, self.limits.referenced_file_bytes + 1)
                if len(data) > self.limits.referenced_file_bytes:
                    data = None
            except (OSError, reading.Refused):
                data = None
            self._file_cache[path] = data
            if data is not None:
                self.files[path] = hashing.file_digest(data)
        return self._file_cache[path]

    @staticmethod
    def resolve(base: str, path: str) -> str:
        return os.path.normpath(os.path.join(base, os.path.expanduser(path) if path.startswith("~") else path))

    def live_path(self, base: str, name: str) -> str:
        """The host path `name`, written in a manifest whose directory is `base`, stands for: an
        absolute or ~ path as written; a relative one resolved from `base` and, when the manifests
        are a revision copy, moved to the same place beneath the live directory."""
        full = self.resolve(base, name)
        if self.live is None or name.startswith(("/", "~")):
            return full
        return os.path.normpath(os.path.join(self.live, os.path.relpath(full, self.root)))

    # -- Network / Volume ------------------------------------------------------------------

    def external(self, d: _Doc) -> bool:
        """Whether `d` declares an existing object (`external: true`); anything else it sets is
        reported, as nothing of it would be made."""
        spec = d.data.get("spec") or {}
        if not spec.get("external"):
            return False
        for key in spec:
            if key != "external":
                self.report(d, ("spec", key), f"an external {d.kind} is used as it is; remove {key} or external: true", key=True)
        if d.data["metadata"].get("labels"):
            self.report(d, ("metadata", "labels"), f"an external {d.kind} is used as it is and cannot be labelled; remove the labels", key=True)
        return True

    def network(self, d: _Doc) -> models.Network:
        spec = d.data.get("spec") or {}
        subnet = spec.get("subnet")
        gateway = spec.get("gateway")
        net: ipaddress.IPv4Network | ipaddress.IPv6Network | None = None
        if subnet is not None:
            try:
                net = ipaddress.ip_network(subnet, strict=True)
            except ValueError as exc:
                self.report(d, ("spec", "subnet"), f"{subnet!r} is not a network in CIDR form like 10.210.0.0/24 ({exc})")
        if gateway is not None:
            try:
                gw = ipaddress.ip_address(gateway)
                if subnet is None:
                    self.report(d, ("spec", "gateway"), "a gateway needs a subnet; set spec.subnet too")
                elif net is not None and gw not in net:
                    self.report(d, ("spec", "gateway"), f"{gateway} is not inside the subnet {subnet}")
            except ValueError:
                self.report(d, ("spec", "gateway"), f"{gateway!r} is not an IP address")
        labels = self.labels(d)
        fields: dict[str, Any] = {
            "subnet": str(net) if net is not None else subnet, "gateway": gateway,
            "internal": bool(spec.get("internal", False)), "mtu": int(spec.get("mtu", 1500)), "labels": labels,
        }
        if net is not None and net.version == 6:
            self.report(d, ("spec", "subnet"), f"{subnet} is an IPv6 network; set ipv6: true and ipv6Subnet: {subnet}")
        dual = self.ipv6_fields(d, spec)
        opts = self.network_driver_opts(d, spec)
        return models.Network(
            name=d.name, origin=self.origin(d),
            spec_hash=hashing.spec_hash("Network", {**fields, **dual, **opts}, hashing.COMMON_EXCLUDED, {}),
            **fields, **dual, **opts,
        )

    def network_driver_opts(self, d: _Doc, spec: Mapping[str, Any]) -> dict[str, Any]:
        """`driverOpts`, only when set (so they change no other network's hash): Swarm's overlay
        driver's options, which it takes as they are written (`docker stack deploy` passes a
        compose network's driver_opts so). One it does not know it would ignore without a word,
        and a single host's network is a bridge, where none of them works: both are refused."""
        from reconciler.runtime.base import OVERLAY_DRIVER_OPTIONS  # the engine's list, one home

        opts = {str(k): str(v) for k, v in (spec.get("driverOpts") or {}).items()}
        for key in opts:
            if key == "com.docker.network.driver.mtu":
                self.report(d, ("spec", "driverOpts", key), "the MTU is spec.mtu; set mtu: there", key=True)
            elif key not in OVERLAY_DRIVER_OPTIONS:
                self.report(d, ("spec", "driverOpts", key), f"{key!r} is not an option of Swarm's overlay driver, which "
                            f"would ignore it; it takes {' and '.join(OVERLAY_DRIVER_OPTIONS)}: remove it", key=True)
        if opts and self.engine in ("native", "docker"):
            self.report(d, ("spec", "driverOpts"), f"driverOpts are Swarm's overlay driver's options, and a network "
                        f"of --runtime {self.engine} is a bridge on one host, where they cannot work: converge with "
                        "--runtime swarm, or remove them", key=True)
        return {"driver_opts": opts} if opts else {}

    def ipv6_fields(self, d: _Doc, spec: Mapping[str, Any]) -> dict[str, Any]:
        """`ipv6` and `ipv6Subnet`, only when set (so they change no IPv4 network's hash)."""
        subnet6 = spec.get("ipv6Subnet")
        if not spec.get("ipv6", False):
            if subnet6 is not None:
                self.report(d, ("spec", "ipv6Subnet"), "an IPv6 subnet needs ipv6: true")
            return {}
        if subnet6 is None:
            return {"ipv6": True}
        try:
            net6 = ipaddress.IPv6Network(subnet6, strict=True)
        except ValueError as exc:
            self.report(d, ("spec", "ipv6Subnet"), f"{subnet6!r} is not an IPv6 network in CIDR form like fd12:3456:789a:1::/64 ({exc})")
            return {"ipv6": True, "ipv6_subnet": subnet6}
        return {"ipv6": True, "ipv6_subnet": str(net6)}

    def volume(self, d: _Doc) -> models.Volume:
        spec = d.data.get("spec") or {}
        labels = self.labels(d)
        if self.engine == "native":
            self.native_volume(d, spec)
        return models.Volume(
            name=d.name, labels=labels, origin=self.origin(d),
            deletion_policy=spec.get("deletionPolicy", "Retain"),
            spec_hash=hashing.spec_hash("Volume", {"labels": labels}, hashing.COMMON_EXCLUDED, {}),
            driver=str(spec.get("driver", "local")), driver_opts=dict(spec.get("driverOpts") or {}),
        )

    def native_volume(self, d: _Doc, spec: Mapping[str, Any]) -> None:
        """A volume driver and its options are Docker's (and Swarm's): the native engine's volumes
        are directories of its own (or bind one: a local bind volume), so it refuses the rest,
        here rather than when converging."""
        from reconciler.runtime.base import local_bind  # the engine's own rule, one home

        opts = spec.get("driverOpts") or {}
        if opts and local_bind(str(spec.get("driver", "local")), {str(k): str(v) for k, v in opts.items()}):
            return                          # a local bind volume: the engine binds the directory
        for key in ("driver", "driverOpts"):
            if spec.get(key) not in (None, "local", {}):
                self.report(d, ("spec", key), "the native engine cannot honour a volume driver or its options "
                            "(its volumes are directories of its own): converge with --runtime docker or swarm, "
                            "or remove it and mount what it names with a bind mount", key=True)

    def origin(self, d: _Doc) -> models.Origin:
        return models.Origin(d.raw.file, d.raw.line, d.raw.column)

    def labels(self, d: _Doc) -> Mapping[str, str]:
        labels: dict[str, str] = d.data["metadata"].get("labels") or {}
        for key in labels:
            if key.startswith(_RESERVED_LABEL):
                self.report(d, ("metadata", "labels", key), f"label keys starting with {_RESERVED_LABEL!r} are reserved for reconciler's own labels", key=True)
        return MappingProxyType(dict(sorted(labels.items())))

    # -- Image -----------------------------------------------------------------------------

    def image(self, d: _Doc) -> models.Image:
        spec = d.data["spec"]
        ref = spec.get("ref")
        build_spec = spec.get("build")
        files: dict[str, str] = {}
        if ref is None and build_spec is None:
            self.report(d, ("spec",), "set ref (an image to pull) or build (a context to build), or both")
        if ref is not None and not valid_reference(ref):
            self.report(d, ("spec", "ref"), f"{schemas._short(ref)} is not a valid image reference (like registry:5000/repo/name:tag or ...@sha256:<64 hex>)")
        for i, target in enumerate(spec.get("push", ())):
            if not valid_reference(target):
                self.report(d, ("spec", "push", i), f"{schemas._short(target)} is not a valid image reference (like registry:5000/repo/name:tag)")
        build: models.BuildSpec | None = None
        if build_spec is not None:
            context = self.resolve(d.raw.base, build_spec["context"])
            dockerfile = build_spec.get("file", "Dockerfile")
            if not os.path.isdir(context):
                self.report(d, ("spec", "build", "context"), f"build context {build_spec['context']!r} is not a directory (resolved to {context})")
            else:
                full = self.resolve(context, dockerfile)
                if Path(context) not in Path(full).parents:
                    self.report(d, ("spec", "build", "file"), f"{dockerfile!r} is outside the build context")
                else:
                    content = self.read_file(full) if os.path.isfile(full) else None
                    if content is None:
                        where = ("spec", "build", "file") if "file" in build_spec else ("spec", "build", "context")
                        self.report(d, where, f"no Dockerfile {dockerfile!r} in the build context {build_spec['context']!r}")
                    else:       # named by its live path, as env files are: see below
                        files[self.live_path(d.raw.base, os.path.join(build_spec["context"], dockerfile))] = \
                            hashing.file_digest(content)
            build = models.BuildSpec(
                context=context, file=dockerfile,
                args=MappingProxyType({k: _env_str(v) for k, v in sorted((build_spec.get("args") or {}).items())}),
                target=build_spec.get("target"), secrets=self.build_secrets(d, build_spec),
                ssh=self.build_ssh(d, build_spec), allow=tuple(build_spec.get("allow", ())),
            )
            if ref is None:
                ref = f"localhost/{d.name}:latest"
            if self.engine == "docker":
                self.engine_build(d, build_spec)
        labels = self.labels(d)
        fields: dict[str, Any] = {
            "labels": labels, "ref": ref, "pull": spec.get("pull", "missing"), "track": bool(spec.get("track", False)),
            "build": build, "push": tuple(spec.get("push", ())),
        }
        # built from the revision's copy (what this revision says), hashed by the live context's
        # name: a new copy of an unchanged source must not look like a new build
        hashed = fields if build is None else {
            **fields, "build": dataclasses.replace(build, context=self.live_path(d.raw.base, build_spec["context"]))}
        return models.Image(
            name=d.name, origin=self.origin(d),
            spec_hash=hashing.spec_hash("Image", hashed, hashing.IMAGE_EXCLUDED, files), **fields,
        )

    def engine_build(self, d: _Doc, build_spec: Mapping[str, Any]) -> None:
        """A Docker or Podman engine builds through its Engine API's build endpoint (its classic
        builder; Podman's buildah), which has no build session: no secrets, SSH agents or
        insecure steps reach it (runtime/docker/backend.py `build_image`). Refused here, naming
        the field, rather than when the pass builds."""
        for key in ("secrets", "ssh", "allow"):
            if build_spec.get(key):
                self.report(d, ("spec", "build", key), f"--runtime docker builds through the engine's build endpoint, "
                            f"which has no build session to pass {key} through: build with --runtime native, or "
                            "without it", key=True)

    def build_secrets(self, d: _Doc, build_spec: Mapping[str, Any]) -> tuple[models.BuildSecret, ...]:
        """`build.secrets`: each read now (a file from the revision, decrypted in memory when
        sops encrypted it; an environment variable of this process), kept only in memory. Not
        registered as a referenced file: no digest of a secret goes into a hash (the build's
        input digest included), so a changed secret alone rebuilds nothing (docs/security.md)."""
        out: list[models.BuildSecret] = []
        seen: set[str] = set()
        for i, item in enumerate(build_spec.get("secrets", ())):
            at: Path_ = ("spec", "build", "secrets", i)
            ident, rel, var = item["id"], item.get("file"), item.get("env")
            if ident in seen:
                self.report(d, (*at, "id"), f"secret id {ident!r} is listed twice; give each secret its own id")
                continue
            seen.add(ident)
            if (rel is None) == (var is None):
                self.report(d, at, f"secret {ident!r}: give file: FILE or env: VARIABLE (one of them)")
                continue
            if var is not None:
                if var not in os.environ:
                    self.report(d, (*at, "env"), f"secret {ident!r}: the environment variable {var} is not set "
                                "in the reconciler's environment; set it there, or take the secret from a file")
                    continue
                out.append(models.BuildSecret(id=ident, env=var, data=os.environ[var].encode()))
                continue
            data = self.build_secret_file(d, (*at, "file"), ident, rel)
            if data is not None:
                out.append(models.BuildSecret(id=ident, file=self.live_path(d.raw.base, rel), data=data))
        return tuple(out)

    def build_secret_file(self, d: _Doc, at: Path_, ident: str, rel: str) -> bytes | None:
        full = self.resolve(d.raw.base, rel)
        try:
            content = reading.read_regular(full, None, _BUILD_SECRET_MAX + 1)
        except (OSError, reading.Refused) as exc:
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not a regular file"
            self.report(d, at, f"secret {ident!r}: cannot read {rel!r} (resolved to {full}): {why}")
            return None
        if len(content) > _BUILD_SECRET_MAX:
            self.report(d, at, f"secret {ident!r}: {rel!r} is larger than 1 MiB")
            return None
        if not self.encrypted(full, content):
            return content
        plain = self.decrypted(full, content)
        if isinstance(plain, str):
            self.report(d, at, f"secret {ident!r}: {rel!r}: {plain}")
            return None
        return plain.data

    def build_ssh(self, d: _Doc, build_spec: Mapping[str, Any]) -> tuple[models.BuildSsh, ...]:
        """`build.ssh`: agent sockets by id (default id `default`, socket $SSH_AUTH_SOCK)."""
        out: list[models.BuildSsh] = []
        seen: set[str] = set()
        for i, item in enumerate(build_spec.get("ssh", ())):
            at: Path_ = ("spec", "build", "ssh", i)
            ident = item.get("id", "default")
            if ident in seen:
                self.report(d, (*at, "id") if "id" in item else at, f"ssh id {ident!r} is listed twice")
                continue
            seen.add(ident)
            given = item.get("socket")
            path = self.live_path(d.raw.base, given) if given else os.environ.get("SSH_AUTH_SOCK", "")
            if not path:
                self.report(d, at, f"ssh {ident!r}: no socket given and SSH_AUTH_SOCK is not set in the "
                            "reconciler's environment; give socket: PATH")
                continue
            try:
                is_socket = stat.S_ISSOCK(os.stat(path).st_mode)
            except OSError as exc:
                self.report(d, (*at, "socket") if given else at, f"ssh {ident!r}: {path}: {exc.strerror}")
                continue
            if not is_socket:
                self.report(d, (*at, "socket") if given else at,
                            f"ssh {ident!r}: {path} is not an SSH agent socket (key files are not taken)")
                continue
            out.append(models.BuildSsh(id=ident, socket=path))
        return tuple(out)

    # -- Container -------------------------------------------------------------------------

    def container(
        self,
        d: _Doc,
        images: Mapping[str, models.Image],
        names: Mapping[str, set[str]],
    ) -> models.Container:
        spec: dict[str, Any] = d.data["spec"]
        files: dict[str, str] = {}
        sp: Callable[..., Path_] = lambda *p: ("spec", *p)  # noqa: E731 - a short path builder

        # image: an Image object's name, a reference, or an update policy
        image_update = self.image_update(d, spec["image"]) if isinstance(spec["image"], dict) else None
        image_ref: str = spec["image"]["track"] if isinstance(spec["image"], dict) else spec["image"]
        image_object: str | None = None
        if image_update is not None:
            pass                          # checked by image_update(); never an Image object, never pinned
        elif image_ref in images:
            image_object = image_ref
            image_ref = images[image_ref].ref or image_ref
        elif image_ref in names["Image"]:
            image_object = image_ref      # that Image is invalid and reported on its own
        elif not any(c in image_ref for c in "/:@"):
            hint = schemas.did_you_mean(image_ref, sorted(names["Image"]))
            self.report(d, sp("image"), f"no Image object named {image_ref!r}{hint}; define one, or give a full reference like registry:5000/repo/{image_ref}:tag")
        elif not valid_reference(image_ref):
            self.report(d, sp("image"), f"{schemas._short(image_ref)} is not a valid image reference (like registry:5000/repo/name:tag or ...@sha256:<64 hex>)")
        written_ref = image_ref           # before the lock's pin: what the spec hash names (hashing.py)
        if image_update is None and (image_object is None or images.get(image_object) is None
                                     or images[image_object].build is None):
            image_ref = lock.pin(image_ref, self.pins)     # built images are local: never pinned

        # environment: env files in order, then env on top
        env: dict[str, str] = {}
        secret_env: dict[str, str] = {}     # key -> keyed digest of the SOPS file its value came from
        env_files: list[str] = []
        for i, rel in enumerate(spec.get("envFiles", ())):
            full = self.resolve(d.raw.base, rel)
            named = self.live_path(d.raw.base, rel)     # the user's file: a copy's path changes each revision
            env_files.append(named)
            content = self.read_file(full) if os.path.isfile(full) else None
            if content is None:
                self.report(d, sp("envFiles", i), f"env file {rel!r} not found or unreadable (resolved to {full})")
                continue
            files[named] = hashing.file_digest(content)
            if self.encrypted(full, content):
                values = self.sops_env_file(d, sp("envFiles", i), rel, full, content)
                files[named] = self.sops_digest(full, content)  # keyed, of the values: never a plaintext's
                secret_env.update(dict.fromkeys(values, files[named]))
            else:
                values = self.env_file(d, sp("envFiles", i), rel, content)
                for key in values:
                    secret_env.pop(key, None)
            env.update(values)
        for key, value in (spec.get("env") or {}).items():
            if not _ENV_KEY.match(key):
                self.report(d, sp("env", key), f"{key!r} is not a valid environment variable name", key=True)
            env[key] = _env_str(value)
            secret_env.pop(key, None)
        # a compose service's keys from an encrypted env_file (inlined as env by the translation)
        secret_env.update({k: v for k, v in d.raw.secret_env.items() if k in env})

        ports = self.ports(d, spec)
        entries = spec.get("networks", ())
        networks = tuple(e if isinstance(e, str) else e["name"] for e in entries)
        ipv4_addresses, ipv6_addresses = self.fixed_addresses(d, entries)
        mac_addresses, link_local_ips, gw_priorities = self.entry_settings(d, entries)
        joins = [n.removeprefix(_JOIN) for n in networks if n.startswith(_JOIN)]
        self.check_refs(d, sp("networks"), networks, names["Network"], "Network",
                        reserved=("host", "none", *(_JOIN + j for j in joins)))
        for i, joined in enumerate(networks):
            if joined.startswith(_JOIN) and joined.removeprefix(_JOIN) not in names["Container"]:
                self.report(d, sp("networks", i), f"no Container named {joined.removeprefix(_JOIN)!r} to join; "
                            "define it in a manifest")
            elif joined == _JOIN + d.name:
                self.report(d, sp("networks", i), "a container cannot join its own network namespace")
        joins = [j for j in joins if j in names["Container"] and j != d.name]
        if len(networks) > 1 and set(networks) & {"host", "none"}:
            self.report(d, sp("networks"), "host and none cannot be combined with other networks")
        elif len(networks) > 1 and joins:
            self.report(d, sp("networks"), f"{_JOIN}{joins[0]} cannot be combined with other networks: the container "
                        f"has {joins[0]}'s network and no other")
        if ports and networks in (("host",), ("none",)):
            self.report(d, sp("ports"), f"ports cannot be published with network {networks[0]}")
        elif ports and joins:
            self.report(d, sp("ports", 0), f"ports cannot be published with network {networks[0]}: "
                        f"publish them on {joins[0]}, whose network it joins")
        volumes = self.volumes(d, spec, names["Volume"], files)
        secrets = self.secrets(d, spec, files, {m.target for m in volumes})

        default_restart = "always" if self.cluster and not spec.get("job") else "no"     # (a job's: no)
        restart_name, max_retries = units.parse_restart(spec.get("restart", default_restart))
        if spec.get("job") and restart_name in ("always", "unless-stopped"):
            self.report(d, sp("restart"), f"a job runs to completion; restart {restart_name} would run it again "
                        "and again: use no or on-failure")
        healthcheck = self.healthcheck(d, spec.get("healthcheck"))
        res = spec.get("resources") or {}
        memory = self.convert(d, sp("resources", "memory"), units.parse_memory, res.get("memory"))
        resources = models.Resources(
            memory=memory,
            cpus=self.convert(d, sp("resources", "cpus"), units.parse_cpus, res.get("cpus")),
            pids=int(res["pids"]) if "pids" in res else None,
            memory_reservation=self.convert(d, sp("resources", "memoryReservation"),
                                            lambda v: units.parse_memory(v, "memory reservation"),
                                            res.get("memoryReservation")),
            cpu_shares=res.get("cpuShares"),
            cpuset=res.get("cpuset"),
            memory_swap=self.memory_swap(d, res, memory),
            **self.docker_limits(d, res),
        )
        reserve = res.get("reservations") or {}
        reservations = models.Reservations(     # the scheduler's: no cgroup limit, so no minimum
            memory=self.convert(d, sp("resources", "reservations", "memory"), units.parse_size,
                                reserve.get("memory")),
            cpus=self.convert(d, sp("resources", "reservations", "cpus"), units.parse_cpus, reserve.get("cpus")),
        ) if reserve else None
        # a container joining another's network is made after it (and again when it is replaced)
        depends_on = tuple(dict.fromkeys((*spec.get("dependsOn", ()), *joins)))
        self.check_refs(d, sp("dependsOn"), depends_on, names["Container"], "Container")
        if d.name in depends_on:
            self.report(d, sp("dependsOn", depends_on.index(d.name)), "a container cannot depend on itself")
        upd = spec.get("update") or {}
        update = models.UpdatePolicy(
            order=upd.get("order", "stop-first"),
            health_timeout=self.duration(d, sp("update", "healthTimeout"), upd.get("healthTimeout"), 60.0),
            min_ready=self.duration(d, sp("update", "minReady"), upd.get("minReady"), 0.0),
            on_failure=upd.get("onFailure", "rollback"),
            parallelism=upd.get("parallelism"),
            delay=self.duration(d, sp("update", "delay"), upd.get("delay"), 0.0),
            max_failure_ratio=float(upd.get("maxFailureRatio", 0.0)),
        )
        if not spec.get("job"):
            self.check_first_probe(d, healthcheck, update.health_timeout)
        stop_signal = spec.get("stopSignal")
        if stop_signal is not None:
            normal = stop_signal.upper() if stop_signal.upper().startswith("SIG") else "SIG" + stop_signal.upper()
            if normal in _KNOWN_SIGNALS or stop_signal.upper() in _SHORT_SIGNAL:
                stop_signal = normal
            elif not stop_signal.isdigit():
                self.report(d, sp("stopSignal"), f"{stop_signal!r} is not a signal name (like SIGTERM or SIGQUIT)")
        labels = self.labels(d)
        fields: dict[str, Any] = {
            "labels": labels,
            "image": image_ref,
            "image_object": image_object,
            "command": tuple(spec["command"]) if "command" in spec else None,
            "args": tuple(spec["args"]) if "args" in spec else None,
            "env": MappingProxyType(dict(sorted(env.items()))),
            "env_files": tuple(env_files),
            "ports": ports,
            "networks": _by_priority(entries, networks),
            "aliases": tuple(spec.get("aliases", ())),
            "volumes": volumes,
            "restart": models.RestartPolicy(restart_name, max_retries),
            "healthcheck": healthcheck,
            "resources": resources,
            "depends_on": depends_on,
            "update": update,
            "drift": spec.get("drift", "correct"),
            "user": spec.get("user"),
            "workdir": spec.get("workdir"),
            "hostname": spec.get("hostname"),
            "read_only": bool(spec.get("readOnly", False)),
            "cap_add": tuple(_cap(c) for c in spec.get("capAdd", ())),
            "cap_drop": tuple(_cap(c) for c in spec.get("capDrop", ())),
            "stop_signal": stop_signal,
            "stop_timeout": self.duration(d, sp("stopTimeout"), spec.get("stopTimeout"), 10.0),
            "init": bool(spec.get("init", False)),
            "replicas": 1 if spec.get("replicas") == "global" else int(spec.get("replicas", 1)),
            "global_mode": spec.get("replicas") == "global",
            "placement": _placement(spec.get("placement") or {}),
            "sysctls": self.sysctls(d, spec.get("sysctls") or {}, networks),
            "ulimits": self.ulimits(d, spec.get("ulimits") or {}),
            "shm_size": self.convert(d, sp("shmSize"), lambda v: units.parse_size(v, "shm size"), spec.get("shmSize")),
            "extra_hosts": self.extra_hosts(d, spec.get("extraHosts") or ()),
            "dns": self.addresses(d, sp("dns"), spec.get("dns") or ()),
            "dns_search": tuple(spec.get("dnsSearch") or ()),
            "job": bool(spec.get("job", False)),
            "tty": bool(spec.get("tty", False)),
            "stdin_open": bool(spec.get("stdinOpen", False)),
            "no_new_privileges": bool(spec.get("noNewPrivileges", False)),
            "dns_options": tuple(spec.get("dnsOptions") or ()),
            "oom_score_adj": spec.get("oomScoreAdj"),
            "group_add": tuple(str(g) for g in spec.get("groupAdd") or ()),
            "privileged": bool(spec.get("privileged", False)),
            "domainname": spec.get("domainname"),
            "devices": tuple(_device(str(v)) for v in spec.get("devices") or ()),
            "ipv4_addresses": ipv4_addresses,
            "ipv6_addresses": ipv6_addresses,
            "mac_addresses": mac_addresses,
            "link_local_ips": link_local_ips,
            "gw_priorities": gw_priorities,
        }
        if secrets:         # absent when none: the hashes of containers without secrets stay as they were
            fields["secrets"] = secrets
        if reservations is not None:    # likewise
            fields["reservations"] = reservations
        logging = self.logging(d, spec.get("logging"))
        if logging is not None:         # likewise
            fields["logging"] = logging
        if secret_env:                  # likewise; the hash takes the file's keyed digest, not the value
            fields["secret_env"] = MappingProxyType(dict(sorted(secret_env.items())))
        fields.update(self.service_settings(d, spec))
        # an update policy moves the tag: the hash names the repository; a lock's pin is the
        # planner's digest comparison, so the hash names the reference as written (hashing.py)
        hashed = {**fields, "image": written_ref if image_update is None else image_update.repository}
        if secret_env:
            hashed = {**hashed, "env": {k: v for k, v in env.items() if k not in secret_env}}
        return models.Container(
            name=d.name, origin=self.origin(d),
            spec_hash=hashing.spec_hash("Container", hashed, hashing.CONTAINER_EXCLUDED, files),
            image_update=image_update, **fields,
        )

    def service_settings(self, d: _Doc, spec: Mapping[str, Any]) -> dict[str, Any]:
        """A Swarm service's own settings (`rollback`, `serviceLabels`, `endpointMode`,
        `restartDelay`, `restartWindow`; absent when not set) checked; and `update`'s keys only
        Swarm honours. Where the manifests load for one host they change nothing there: each is
        a warning naming it (not in the spec hash, so setting one recreates nothing)."""
        sp: Callable[..., Path_] = lambda *p: ("spec", *p)  # noqa: E731 - a short path builder
        out: dict[str, Any] = {}
        rb = spec.get("rollback")
        if rb is not None:
            out["rollback"] = models.RollbackPolicy(
                order=rb.get("order"), parallelism=int(rb.get("parallelism", 1)),
                delay=self.duration(d, sp("rollback", "delay"), rb.get("delay"), 0.0),
                min_ready=None if "minReady" not in rb else self.duration(d, sp("rollback", "minReady"), rb["minReady"], 0.0),
                on_failure=rb.get("onFailure", "pause"), max_failure_ratio=float(rb.get("maxFailureRatio", 0.0)))
        labels = spec.get("serviceLabels") or {}
        for key in labels:
            if key.startswith(_RESERVED_LABEL):
                self.report(d, sp("serviceLabels", key), f"label keys starting with {_RESERVED_LABEL!r} are reserved "
                            "for reconciler's own labels", key=True)
        if labels:
            out["service_labels"] = MappingProxyType(dict(sorted(labels.items())))
        if spec.get("endpointMode"):
            out["endpoint_mode"] = spec["endpointMode"]
        for key, name in (("restartDelay", "restart_delay"), ("restartWindow", "restart_window")):
            if key in spec:
                out[name] = self.duration(d, sp(key), spec[key], 0.0)
        if not self.cluster:
            upd = spec.get("update") or {}
            said = [sp(key) for key in ("rollback", "serviceLabels", "endpointMode", "restartDelay", "restartWindow")
                    if key in spec] + [sp("update", key) for key in ("parallelism", "delay", "maxFailureRatio")
                                       if key in upd]
            for path in said:
                self.warn(d, path, "Swarm's setting (--runtime swarm): no effect on one host"
                          + (", which restarts a container with Docker's backoff" if str(path[1]).startswith("restart")
                             else ""), key=True)
        return out

    def image_update(self, d: _Doc, value: Mapping[str, Any]) -> models.ImageUpdate | None:
        """`image: {track, policy, mode}` checked (tagpolicy.py), or None after reporting why not."""
        where: Path_ = ("spec", "image")
        track: str = value["track"]
        m = _REF.match(track) if len(track) <= 512 else None
        ok = True
        if m is None or m.group("digest") or not m.group("tag"):
            self.report(d, (*where, "track"), f"{schemas._short(track)} is not an image reference with a tag "
                        "(like registry:5000/repo/name:1.4.1): the policy moves the tag, so it names one and no digest")
            ok = False
        raw = value["policy"]
        policy = tagpolicy.Policy(semver=raw.get("semver"), pattern=raw.get("pattern"),
                                  order=raw.get("order", "alphabetical"))
        if "order" in raw and policy.pattern is None:
            self.report(d, (*where, "policy", "order"), "order applies to pattern, not to semver (versions have their own order)")
            ok = False
        wrong = tagpolicy.problem(policy)
        if wrong is not None:
            self.report(d, (*where, "policy", *((wrong[0],) if wrong[0] else ())), wrong[1])
            ok = False
        if not ok or m is None:
            return None
        line, column = d.raw.where((*where, "track"))
        return models.ImageUpdate(repository=track.rpartition(":")[0], tag=m.group("tag"), policy=policy,
                                  mode=value.get("mode", "apply"), at=models.Origin(d.raw.file, line, column))

    def sysctls(self, d: _Doc, given: Mapping[str, Any], networks: tuple[str, ...]) -> Mapping[str, str]:
        """Docker's rule: only sysctls of the container's own namespaces (IPC: kernel.msg*, sem,
        shm*, fs.mqueue.*; network: net.*, not with the host's network)."""
        for key in given:
            at = ("spec", "sysctls", key)
            if key.startswith("net."):
                if networks == ("host",):
                    self.report(d, at, f"{key} would change the host's network stack (network host); remove it or use a network of the container's own", key=True)
            elif key not in _IPC_SYSCTLS and not key.startswith("fs.mqueue."):
                self.report(d, at, f"{key} is not a namespaced sysctl: it would change the whole host; only net.*, "
                            "fs.mqueue.* and kernel.msgmax/msgmnb/msgmni/sem/shmall/shmmax/shmmni/shm_rmid_forced can be set per container", key=True)
        return MappingProxyType({k: _env_str(v) for k, v in sorted(given.items())})

    def logging(self, d: _Doc, given: Mapping[str, Any] | None) -> models.LogConfig | None:
        """`logging:` checked; for the native engine, what it cannot honour is a warning naming
        the key (it rotates json-file/local logs by max-size and max-file, and keeps the output itself)."""
        if given is None:
            return None
        out = models.LogConfig(driver=given.get("driver"), options=MappingProxyType(dict(sorted((given.get("options") or {}).items()))))
        for key, parse in (("max-size", units.parse_docker_size), ("max-file", positive_int)):
            if key in out.options:
                self.convert(d, ("spec", "logging", "options", key), parse, out.options[key])
        if self.engine == "native":
            if out.driver not in (None, *NATIVE_LOG_DRIVERS):
                self.warn(d, ("spec", "logging", "driver"), f"log driver {out.driver} is not honoured on the native "
                          "engine: it keeps each container's output itself (reconcile logs NAME)")
            for key in sorted(set(out.options) - set(NATIVE_LOG_OPTIONS)):
                self.warn(d, ("spec", "logging", "options", key), f"log option {key} is not honoured on the native engine "
                          "(it honours max-size and max-file)", key=True)
        return out

    def fixed_addresses(self, d: _Doc, entries: Any) -> tuple[Mapping[str, str], Mapping[str, str]]:
        """The `ipv4Address` / `ipv6Address` of each `networks:` entry, by network name, each
        checked to be an address of its family; a network of host, none or container:NAME has none."""
        found: dict[str, dict[str, str]] = {"ipv4Address": {}, "ipv6Address": {}}
        for i, entry in enumerate(entries):
            if isinstance(entry, str):
                continue
            name = entry["name"]
            for key, family in (("ipv4Address", ipaddress.IPv4Address), ("ipv6Address", ipaddress.IPv6Address)):
                if key not in entry:
                    continue
                at = ("spec", "networks", i, key)
                if name in ("host", "none") or name.startswith(_JOIN):
                    self.report(d, at, f"network {name} has no address of the container's own; remove {key}")
                    continue
                try:
                    found[key][name] = str(family(entry[key]))
                except ValueError:
                    self.report(d, at, f"{entry[key]!r} is not an IPv{4 if key == 'ipv4Address' else 6} address")
        return (MappingProxyType(dict(sorted(found["ipv4Address"].items()))),
                MappingProxyType(dict(sorted(found["ipv6Address"].items()))))

    def entry_settings(self, d: _Doc, entries: Any) -> tuple[Mapping[str, str], Mapping[str, tuple[str, ...]], Mapping[str, int]]:
        """The `macAddress`, `linkLocalIPs` and `gwPriority` (when not 0) of each `networks:` entry,
        by network name: a MAC of 6 octets, unicast and not all zero (normalised to lower-case
        colon form), link-local addresses of 169.254.0.0/16 or fe80::/10, each once; a network
        of host, none or container:NAME has no interface of the container's own to set."""
        macs: dict[str, str] = {}
        local: dict[str, tuple[str, ...]] = {}
        priorities: dict[str, int] = {}
        for i, entry in enumerate(entries):
            if isinstance(entry, str):
                continue
            name = entry["name"]
            own = not (name in ("host", "none") or name.startswith(_JOIN))
            for key in ("macAddress", "linkLocalIPs", "gwPriority"):
                if key in entry and not own:
                    self.report(d, ("spec", "networks", i, key), f"network {name} has no interface of the container's own; remove {key}")
            if not own:
                continue
            if "macAddress" in entry:
                mac, problem = mac_address(str(entry["macAddress"]))
                if problem:
                    self.report(d, ("spec", "networks", i, "macAddress"), problem)
                else:
                    macs[name] = mac
            found: list[str] = []
            for j, text in enumerate(entry.get("linkLocalIPs") or ()):
                address, problem = link_local_address(str(text))
                if problem is None and address in found:
                    problem = f"{address} is listed twice"
                if problem:
                    self.report(d, ("spec", "networks", i, "linkLocalIPs", j), problem)
                else:
                    found.append(address)
            if found:
                local[name] = tuple(found)
            if entry.get("gwPriority"):
                priorities[name] = int(entry["gwPriority"])
        return (MappingProxyType(dict(sorted(macs.items()))), MappingProxyType(dict(sorted(local.items()))),
                MappingProxyType(dict(sorted(priorities.items()))))

    def extra_hosts(self, d: _Doc, given: Any) -> tuple[str, ...]:
        out: list[str] = []
        for i, item in enumerate(given):
            name, address = re.split(r"[:=]", item, maxsplit=1)
            address = address.strip("[]")
            if address == "host-gateway":       # the gateway of the container's network (the engine's)
                out.append(f"{name}:{address}")
                continue
            if self.addresses(d, ("spec", "extraHosts", i), (address,)):
                out.append(f"{name}:{address}")
        return tuple(out)

    def addresses(self, d: _Doc, path: Path_, given: Any) -> tuple[str, ...]:
        out: list[str] = []
        for i, item in enumerate(given):
            try:
                out.append(str(ipaddress.ip_address(item)))
            except ValueError:
                at = path if path[-2:-1] == ("extraHosts",) else (*path, i)
                self.report(d, at, f"{item!r} is not an IP address")
        return tuple(out)

    def docker_limits(self, d: _Doc, res: Mapping[str, Any]) -> dict[str, Any]:
        """resources.cpuPeriod, cpuQuota, cpusetMems and blkioWeight as models.Resources' fields,
        each checked by dockerd's range (`limitranges`, the engines' too: a value out of it is
        this manifest's error, not a failed create); cpuset and cpusetMems as lists dockerd
        reads, and the CFS numbers not with cpus. What depends on the host (its CPUs and memory
        nodes, a kernel that weighs block I/O) the engine checks at create."""
        out: dict[str, Any] = {}
        for key, name, rule, hint in (
                ("cpuPeriod", "cpu_period", limitranges.cpu_period, "give the period in microseconds, 1000 to 1000000"),
                ("cpuQuota", "cpu_quota", limitranges.cpu_quota, "give the quota in microseconds, 1000 or more "
                                                                 "(-1: no limit)"),
                ("blkioWeight", "blkio_weight", limitranges.blkio_weight, "give a weight from 10 to 1000")):
            value = res.get(key)
            if value is None:
                continue
            wrong = rule(value)
            if wrong:
                self.report(d, ("spec", "resources", key), f"{value}: {wrong}; {hint}")
            else:
                out[name] = value
        for key, what in (("cpuset", "cpus"), ("cpusetMems", "mems")):
            if res.get(key) is not None:
                try:
                    limitranges.cpu_list(res[key], what)
                except ValueError as exc:
                    self.report(d, ("spec", "resources", key), f"{exc}; give numbers and ascending ranges, like 0-2,4")
        out["cpuset_mems"] = res.get("cpusetMems")
        both = limitranges.nano_cpus_conflict(res.get("cpus"), res.get("cpuPeriod"), res.get("cpuQuota"))
        if both:
            self.report(d, ("spec", "resources", "cpuPeriod" if "cpuPeriod" in res else "cpuQuota"),
                        f"{both}; give cpus, or cpuPeriod and cpuQuota (cpus: 0.5 is cpuQuota 50000 per cpuPeriod "
                        "100000)")
        return out

    def memory_swap(self, d: _Doc, res: Mapping[str, Any], memory: int | None) -> int | None:
        """resources.memorySwap in bytes (-1: unlimited), not below `memory` (the limit parsed
        already: None if it was refused, which says why)."""
        given = res.get("memorySwap")
        if given is None:
            return None
        if "memory" not in res:
            self.report(d, ("spec", "resources", "memorySwap"), "memorySwap needs a memory limit; set resources.memory too")
            return None
        if str(given) == "-1":
            return -1
        swap: int | None = self.convert(d, ("spec", "resources", "memorySwap"),
                                        lambda v: units.parse_size(v, "memory swap"), given)
        if swap is not None and memory is not None and swap < memory:
            self.report(d, ("spec", "resources", "memorySwap"), "memorySwap counts memory plus swap: it cannot be below memory")
        return swap

    def ulimits(self, d: _Doc, given: Mapping[str, Any]) -> tuple[models.Ulimit, ...]:
        out: list[models.Ulimit] = []
        for name, value in sorted(given.items()):
            soft, hard = (value, value) if isinstance(value, int) else (value["soft"], value["hard"])
            if hard != -1 and (soft == -1 or soft > hard):
                self.report(d, ("spec", "ulimits", name), f"soft limit {soft} is above the hard limit {hard}; lower soft or raise hard")
            out.append(models.Ulimit(name, soft, hard))
        return tuple(out)

    # -- replicas --------------------------------------------------------------------------

    def replicate(
        self, docs: Mapping[str, _Doc], containers: Mapping[str, models.Container],
    ) -> dict[str, models.Container]:
        """Each Container with `replicas: N` as N containers `<name>-1` .. `<name>-N` (none for 0),
        and every `dependsOn` naming it as all of them. A replica of a compose service
        (labelled `com.docker.compose.service`) carries its number in
        `com.docker.compose.container-number`, as compose numbers them."""
        copies = self.copies
        for name in containers:
            count = docs[name].data["spec"].get("replicas")
            if isinstance(count, int):          # "global": one container on a single host
                copies[name] = [f"{name}-{i}" for i in range(1, count + 1)]
                self.check_replicas(docs[name], containers[name], copies[name])
        out: dict[str, models.Container] = {}
        for name, c in containers.items():
            deps = tuple(dict.fromkeys(r for dep in c.depends_on for r in copies.get(dep, [dep])))
            if deps != c.depends_on:
                c = dataclasses.replace(c, depends_on=deps)     # depends_on is not hashed
            if c.networks and c.networks[0].startswith(_JOIN) and c.networks[0].removeprefix(_JOIN) in copies:
                joined = copies[c.networks[0].removeprefix(_JOIN)][:1]      # its first replica, as compose does
                c = dataclasses.replace(c, networks=tuple(_JOIN + j for j in joined))
            for i, replica in enumerate(copies.get(name, [name]), start=1):
                if replica in out or (replica != name and replica in containers):
                    self.report(docs[name], ("spec", "replicas"), f"replica {replica!r} has the name of another Container; rename one of them")
                    continue
                out[replica] = c if replica == name else self.replica(c, replica, i)
        return dict(sorted(out.items()))

    def anonymous_volumes(
        self, docs: Mapping[str, _Doc], containers: Mapping[str, models.Container], volumes: dict[str, models.Volume],
    ) -> dict[str, models.Container]:
        """Each mount without a source (`/data`) as a Volume of its container's own, added to
        `volumes`: named from the container and the target (`anonymous_name`), so a replacement of
        the container mounts the same data, as compose's recreate keeps it; not declared by any
        manifest, so the prune that removes the container removes it too (deletionPolicy Delete)."""
        out: dict[str, models.Container] = {}
        for name, c in containers.items():
            mounts = tuple(self.anonymous_mount(docs, c, i, m, volumes) if m.type == "volume" and not m.source else m
                           for i, m in enumerate(c.volumes))
            out[name] = c if mounts == c.volumes else dataclasses.replace(c, volumes=mounts)
        return out

    def anonymous_mount(
        self, docs: Mapping[str, _Doc], c: models.Container, index: int, m: models.VolumeMount,
        volumes: dict[str, models.Volume],
    ) -> models.VolumeMount:
        volume = anonymous_name(c.name, m.target)
        if volume in volumes:
            d = docs.get(c.name) or next(d for d in docs.values() if self.origin(d) == c.origin)   # a replica's
            self.report(d, ("spec", "volumes", index), f"the anonymous volume at {m.target} is named {volume!r}, "
                        "as a Volume of the manifests is: rename that Volume")
            return m
        labels = MappingProxyType({ANONYMOUS_LABEL: ""})
        volumes[volume] = models.Volume(
            name=volume, labels=labels, origin=c.origin, deletion_policy="Delete",
            spec_hash=hashing.spec_hash("Volume", {"labels": labels}, hashing.COMMON_EXCLUDED, {}))
        return dataclasses.replace(m, source=volume)

    def replica(self, c: models.Container, name: str, number: int) -> models.Container:
        """Copy `number` of `c`, one container of a single host, with `c`'s spec hash; a compose
        service's copy carries its number in a label, so copies after the first hash it too (the
        first keeps the hash of the unscaled service, whose label says 1: scaling up leaves it)."""
        labels = dict(c.labels)
        digest = c.spec_hash
        if "com.docker.compose.service" in labels:
            labels["com.docker.compose.container-number"] = str(number)
            if number != 1:
                digest = hashlib.sha256(f"{c.spec_hash}#{number}".encode()).hexdigest()
        return dataclasses.replace(c, name=name, labels=MappingProxyType(labels), replicas=1, spec_hash=digest)

    def check_replicas(self, d: _Doc, c: models.Container, names: list[str]) -> None:
        if len(names) > 1:
            for i, p in enumerate(c.ports):
                if not p.host_port:              # the engine chooses one per replica
                    continue
                self.report(d, ("spec", "ports", i), f"{len(names)} replicas cannot all publish host port {p.host_port}/{p.protocol}; "
                            "publish it from one container (a proxy in front of the replicas) or set replicas: 1")
        if len(names) > 1 and (c.ipv4_addresses or c.ipv6_addresses):
            self.report(d, ("spec", "replicas"), f"{len(names)} replicas cannot share one fixed address; "
                        "set replicas: 1 or remove ipv4Address/ipv6Address")
        if len(names) > 1 and c.mac_addresses:
            self.report(d, ("spec", "replicas"), f"{len(names)} replicas cannot share one MAC address; "
                        "set replicas: 1 or remove macAddress")
        longest = max(names, key=len, default="")
        if len(longest) > 63:
            self.report(d, ("metadata", "name"), f"replica name {longest!r} is longer than 63 characters; shorten the name")

    def convert(self, d: _Doc, path: Path_, parse: Callable[[Any], Any], value: Any) -> Any:
        if value is None:
            return None
        try:
            return parse(value)
        except ValueError as exc:
            self.report(d, path, str(exc))
            return None

    def duration(self, d: _Doc, path: Path_, value: Any, default: float) -> float:
        parsed = self.convert(d, path, units.parse_duration, value)
        return default if parsed is None else float(parsed)

    def check_refs(
        self, d: _Doc, path: Path_, refs: tuple[str, ...], defined: set[str], kind: str, reserved: tuple[str, ...] = (),
    ) -> None:
        seen: set[str] = set()
        for i, ref in enumerate(refs):
            if ref in seen:
                self.report(d, (*path, i), f"{ref!r} is listed twice")
            seen.add(ref)
            if ref not in defined and ref not in reserved:
                hint = schemas.did_you_mean(ref, sorted(defined))
                self.report(d, (*path, i), f"no {kind} named {ref!r}{hint}; define it in a manifest")

    def env_file(self, d: _Doc, path: Path_, rel: str, content: bytes) -> dict[str, str]:
        """KEY=VALUE lines; blank lines and # comments skipped; values taken literally (Docker's rules)."""
        out: dict[str, str] = {}
        try:
            text = content.decode("utf-8")
        except UnicodeDecodeError:
            self.report(d, path, f"env file {rel!r} is not UTF-8 text")
            return out
        for number, line in enumerate(text.splitlines(), 1):
            stripped = line.strip()
            if not stripped or stripped.startswith("#"):
                continue
            key, eq, value = line.lstrip().partition("=")
            if not eq or not _ENV_KEY.match(key):
                self.report(d, path, f"env file {rel!r} line {number}: expected KEY=VALUE")
                continue
            out[key] = value
        return out

    def secrets(
        self, d: _Doc, spec: Mapping[str, Any], files: dict[str, str], mounted: set[str],
    ) -> tuple[models.SecretFile, ...]:
        """`secrets:` files read (from the revision, like env files), decrypted in memory when sops
        encrypted them; hashed under their live path by the file's digest (one sops encrypted: the
        keyed digest of its values, `sops_digest`)."""
        out: list[models.SecretFile] = []
        for i, item in enumerate(spec.get("secrets", ())):
            given = [k for k in ("source", "content", "env") if k in item]
            if len(given) != 1:
                self.report(d, ("spec", "secrets", i), "give the secret's content one way: source: FILE, "
                            f"content: TEXT or env: VARIABLE (this entry has {' and '.join(given) or 'none'})")
                continue
            if given[0] != "source":
                inline = self.inline_secret(d, i, item, mounted)
                if inline is not None:
                    out.append(inline)
                continue
            rel = item["source"]
            full = self.resolve(d.raw.base, rel)
            target = item.get("target") or "/run/secrets/" + os.path.basename(full)
            if not self.secret_target(d, i, target, mounted):
                continue
            content = self.read_file(full) if os.path.isfile(full) else None
            if content is None:
                self.report(d, ("spec", "secrets", i, "source"), f"secret file {rel!r} not found, unreadable or "
                            f"larger than {self.limits.referenced_file_bytes} bytes (resolved to {full})")
                continue
            named = self.live_path(d.raw.base, rel)
            files[named] = hashing.file_digest(content)
            data = content
            if self.encrypted(full, content):
                plain = self.decrypted(full, content)
                if isinstance(plain, str):
                    self.report(d, ("spec", "secrets", i, "source"), f"secret file {rel!r}: {plain}")
                    continue
                data = plain.data
                files[named] = plain.digest
            mode = item.get("mode", 0o400)
            out.append(models.SecretFile(source=named, target=target, mode=int(mode, 8) if isinstance(mode, str) else mode,
                                         uid=int(item.get("uid", 0)), gid=int(item.get("gid", 0)),
                                         digest=files[named], data=data))
        return tuple(out)

    def secret_target(self, d: _Doc, i: int, target: str, mounted: set[str]) -> bool:
        """Whether `target` is an absolute path not mounted yet (reported when not); taken."""
        if not target.startswith("/") or target in mounted:
            why = "must be an absolute path" if not target.startswith("/") else "is mounted twice"
            self.report(d, ("spec", "secrets", i, "target"), f"secret target {target!r} {why}")
            return False
        mounted.add(target)
        return True

    def inline_secret(self, d: _Doc, i: int, item: Mapping[str, Any], mounted: set[str]) -> models.SecretFile | None:
        """A secret file from `content:` (the manifest's text) or `env:` (a variable of the
        loading process, or of the compose project's environment): no source file; the digest
        of the value is what the hash compares, as for a plain file."""
        kind = "content" if "content" in item else "env"
        target = item.get("target")
        if not target:
            self.report(d, ("spec", "secrets", i), f"a secret from {kind}: has no file name to take one "
                        "from; give target: /run/secrets/NAME")
            return None
        if not self.secret_target(d, i, target, mounted):
            return None
        if kind == "content":
            data = str(item["content"]).encode()
        else:
            environ = d.raw.environ if d.raw.environ is not None else os.environ
            var = item["env"]
            if var not in environ:
                self.report(d, ("spec", "secrets", i, "env"), f"the environment variable {var} is not set in the "
                            "reconciler's environment; set it there, or take the secret from a file (source:)")
                return None
            data = environ[var].encode()
        if len(data) > self.limits.referenced_file_bytes:
            self.report(d, ("spec", "secrets", i, kind), f"the secret is larger than {self.limits.referenced_file_bytes} bytes")
            return None
        mode = item.get("mode", 0o400)
        # an environment variable's value is a secret: the hash takes a slow, salted digest of
        # it (a plain sha256 of a short value is guessed at once); content is in the manifest anyway
        digest = hashing.file_digest(data) if kind == "content" else \
            "scrypt:" + hashlib.scrypt(data, salt=target.encode(), n=1 << 14, r=8, p=1).hex()
        return models.SecretFile(source="", target=target, mode=int(mode, 8) if isinstance(mode, str) else mode,
                                 uid=int(item.get("uid", 0)), gid=int(item.get("gid", 0)), digest=digest, data=data)

    @staticmethod
    def encrypted(full: str, content: bytes) -> bool:
        """Whether a file the manifests name (an env file, a secret) is one sops encrypted."""
        from reconciler.spec import sops

        return sops.is_encrypted(full, content)

    def decrypted(self, full: str, content: bytes) -> sops.Decrypted | str:
        """A SOPS file decrypted in memory (once per load), with the keyed digest of its values
        (`Keys.digest`), or why it cannot be."""
        from reconciler.spec import sops

        if full not in self._plain_cache:
            try:
                plain = sops.decrypt(full, content, self.decryption)
                assert self.decryption is not None      # decrypt() opens nothing without keys
                self._plain_cache[full] = dataclasses.replace(plain, digest=self.decryption.digest(plain.data, content))
            except sops.SopsError as exc:
                self._plain_cache[full] = str(exc)
        return self._plain_cache[full]

    def sops_digest(self, full: str, content: bytes) -> str:
        """What stands for a SOPS file's values in the spec hash and the records: the keyed
        digest of its plaintext (a file encrypted again with the same values digests the same),
        or the stored file's digest when it did not decrypt (a problem is reported then)."""
        plain = self.decrypted(full, content)
        return hashing.file_digest(content) if isinstance(plain, str) else plain.digest

    def sops_env_file(self, d: _Doc, path: Path_, rel: str, full: str, content: bytes) -> dict[str, str]:
        """A SOPS-encrypted dotenv file's KEY=VALUE pairs; the plaintext stays in this process."""
        plain = self.decrypted(full, content)
        if isinstance(plain, str):
            self.report(d, path, f"env file {rel!r}: {plain}")
            return {}
        if plain.format != "dotenv":
            self.report(d, path, f"env file {rel!r} is a SOPS {plain.format} file; envFiles take dotenv "
                        "files: encrypt KEY=VALUE lines in a file named *.env")
            return {}
        out: dict[str, str] = {}
        for key, value in plain.pairs:
            if not _ENV_KEY.match(key):
                self.report(d, path, f"env file {rel!r}: {key!r} is not a valid environment variable name")
                continue
            out[key] = value
        return out

    def ports(self, d: _Doc, spec: Mapping[str, Any]) -> tuple[models.PortSpec, ...]:
        out: list[models.PortSpec] = []
        for i, text in enumerate(spec.get("ports", ())):
            if isinstance(text, Mapping):       # the long form
                port = self.long_port(d, ("spec", "ports", i), text)
                if port is not None:
                    out.append(port)
                continue
            try:
                host_ip, host_port, container_port, proto = units.parse_port(text)
            except ValueError as exc:
                self.report(d, ("spec", "ports", i), str(exc))
                continue
            out.append(models.PortSpec(host_ip, host_port, container_port, proto))
        return tuple(out)

    def long_port(self, d: _Doc, path: Path_, port: Mapping[str, Any]) -> models.PortSpec | None:
        """`{published, target, hostIP, protocol, mode}`; no `published`: host port 0, the engine chooses one."""
        host_ip = str(port.get("hostIP", "0.0.0.0"))  # noqa: S104 - Docker publishes on all addresses by default
        ingress = port.get("mode") == "ingress"
        try:
            ipaddress.ip_address(host_ip)
        except ValueError:
            self.report(d, (*path, "hostIP"), f"{host_ip!r} is not an IP address")
            return None
        if ingress and "hostIP" in port:
            self.report(d, (*path, "hostIP"), "a port on Swarm's routing mesh (mode: ingress) is published on every "
                        "address of every node; remove hostIP, or use mode: host")
            return None
        return models.PortSpec(host_ip, int(port.get("published", 0)), int(port["target"]),
                               str(port.get("protocol", "tcp")), ingress=ingress)

    def volumes(
        self, d: _Doc, spec: Mapping[str, Any], defined: set[str], files: dict[str, str],
    ) -> tuple[models.VolumeMount, ...]:
        out: list[models.VolumeMount] = []
        targets: set[str] = set()
        for i, item in enumerate(spec.get("volumes", ())):
            path: Path_ = ("spec", "volumes", i)
            mount = self.mount(d, path, item)
            if mount is None:
                continue
            if not mount.target.startswith("/"):
                self.report(d, path, f"mount target {mount.target!r} must be an absolute path")
                continue
            if mount.target in targets:
                self.report(d, path, f"{mount.target!r} is mounted twice")
                continue
            targets.add(mount.target)
            if mount.type == "volume" and mount.source:        # no source: the container's anonymous volume
                if mount.source not in defined:
                    hint = schemas.did_you_mean(mount.source, sorted(defined))
                    self.report(d, path, f"no Volume named {mount.source!r}{hint}; define it in a manifest")
            elif mount.type == "bind":
                mount = self.bind(d, path, mount, files)
            out.append(mount)
        return tuple(out)

    def mount(self, d: _Doc, path: Path_, item: Any) -> models.VolumeMount | None:
        if isinstance(item, dict):
            kind = item["type"]
            source = item.get("source", "")
            if kind == "tmpfs" and source:
                self.report(d, (*path, "source"), "a tmpfs mount has no source")
                return None
            if kind == "bind" and not source:
                self.report(d, path, "a bind mount needs a source")
                return None
            options: list[str] = []
            for key in ("size", "mode"):
                if key in item and kind != "tmpfs":
                    self.report(d, (*path, key), f"{key} is a tmpfs setting; a {kind} mount has none", key=True)
            if "size" in item:
                size = self.convert(d, (*path, "size"), lambda v: units.parse_size(v, "tmpfs size"), item["size"])
                options += [f"size={size}"] if size is not None else []
            if "mode" in item:
                options.append(f"mode={item['mode']}")
            return models.VolumeMount(kind, source, item["target"], bool(item.get("readOnly", False)), tuple(options))
        parts = item.split(":")
        if len(parts) == 1:             # `/data`: an anonymous volume, as `docker run -v /data`
            return models.VolumeMount("volume", "", item, False)
        mode = "rw"
        if len(parts) == 3:
            mode = parts[2]
        elif len(parts) != 2:
            self.report(d, path, f"{item!r} is not SOURCE:TARGET[:ro|rw]")
            return None
        if mode not in ("ro", "rw"):
            self.report(d, path, f"{item!r}: mode {mode!r} is not ro or rw")
            return None
        source, target = parts[0], parts[1]
        if not source or not target:
            self.report(d, path, f"{item!r} is not SOURCE:TARGET[:ro|rw]")
            return None
        kind = "bind" if source.startswith(("/", ".", "~")) else "volume"
        return models.VolumeMount(cast(models.MountType, kind), source, target, mode == "ro")

    def bind(
        self, d: _Doc, path: Path_, mount: models.VolumeMount, files: dict[str, str],
    ) -> models.VolumeMount:
        raw_source = mount.source
        source = self.live_path(d.raw.base, raw_source)
        owned = not raw_source.startswith(("/", "~"))
        if owned:       # the manifests' own file or directory: checked and hashed where it is mounted from
            if not os.path.exists(source):
                self.report(d, path, f"bind source {raw_source!r} does not exist (resolved to {source})")
            elif os.path.isfile(source):
                content = self.read_file(source)
                if content is None:
                    self.report(d, path, f"bind source {raw_source!r} is unreadable or larger than {self.limits.referenced_file_bytes} bytes")
                else:
                    files[source] = hashing.file_digest(content)
        return models.VolumeMount("bind", source, mount.target, mount.read_only, relative=not raw_source.startswith("/"))

    def healthcheck(self, d: _Doc, hc: Mapping[str, Any] | None) -> models.Healthcheck | None:
        """The manifest's healthcheck. Without `test` it is the image's HEALTHCHECK with these
        timings: test () and every timing left out 0, the image's (Docker's HealthConfig)."""
        if hc is None:
            return None
        path: Path_ = ("spec", "healthcheck")
        test = hc.get("test")
        if test is None:
            test_t: tuple[str, ...] = ()
        elif isinstance(test, str):
            test_t = ("CMD-SHELL", test)
        else:
            test_t = tuple(test)
            if test_t[0] not in ("CMD", "CMD-SHELL", "NONE"):
                self.report(d, (*path, "test", 0), f"{test_t[0]!r}: a test list starts with CMD, CMD-SHELL or NONE (or give a shell string)")
            elif test_t[0] != "NONE" and len(test_t) < 2:
                self.report(d, (*path, "test"), f"{test_t[0]} needs a command after it")
            elif test_t[0] == "CMD-SHELL" and len(test_t) != 2:
                self.report(d, (*path, "test"), "CMD-SHELL takes exactly one shell string")
        inherit = not test_t
        return models.Healthcheck(
            test=test_t,
            interval=self.duration(d, (*path, "interval"), hc.get("interval"), 0.0 if inherit else 30.0),
            timeout=self.duration(d, (*path, "timeout"), hc.get("timeout"), 0.0 if inherit else 30.0),
            start_period=self.duration(d, (*path, "startPeriod"), hc.get("startPeriod"), 0.0),
            retries=int(hc.get("retries", 0 if inherit else 3)),
            start_interval=self.duration(d, (*path, "startInterval"), hc.get("startInterval"), 0.0),
        )

    def check_first_probe(self, d: _Doc, hc: models.Healthcheck | None, timeout: float) -> None:
        """Warn where a healthcheck's first check comes no sooner than its start's wait ends
        (update.healthTimeout): such a start fails (at once, the executor sees it coming). Only
        what the manifest says is judged: an image's timings are not known before it is pulled."""
        if hc is None or not hc.test or hc.test[0] == "NONE":
            return
        path: Path_ = ("spec", "healthcheck")
        if hc.start_interval and not hc.start_period:
            self.warn(d, (*path, "startInterval"), "startInterval applies during the start period only, and this "
                      "healthcheck sets no startPeriod (its image's applies, if it has one): set startPeriod too")
        # with a start period, the first check at its start interval (unset: the engine's, Docker's 5 s)
        first, where = (hc.start_interval or 5.0, "startInterval") if hc.start_period else (hc.interval, "interval")
        if first >= timeout:
            self.warn(d, (*path, where), f"the first check comes {first:g}s after a start, not within "
                      f"update.healthTimeout ({timeout:g}s): a start of this container fails waiting for "
                      "healthy; set startPeriod with a startInterval below it, a shorter interval, or a longer "
                      "update.healthTimeout")

    # -- cross-object checks ---------------------------------------------------------------

    def check_port_conflicts(self, docs: Mapping[str, _Doc], containers: Mapping[str, models.Container]) -> None:
        taken: dict[tuple[int, str], list[tuple[str, str, models.Container]]] = {}
        for name in sorted(containers, key=lambda n: (containers[n].origin.file, containers[n].origin.line)):
            c = containers[name]
            for i, p in enumerate(c.ports):
                if not p.host_port:              # chosen by the engine: never taken twice
                    continue
                for ip, owner, other in taken.get((p.host_port, p.protocol), []):
                    if ip == p.host_ip or ip in _WILDCARDS or p.host_ip in _WILDCARDS:
                        who = "this container" if other is c else f"Container/{owner} ({other.origin})"
                        self.report(docs[name], ("spec", "ports", i), f"host port {p.host_port}/{p.protocol} is already published by {who}")
                        break
                else:
                    taken.setdefault((p.host_port, p.protocol), []).append((p.host_ip, name, c))

    def check_addresses(
        self, docs: Mapping[str, _Doc], containers: Mapping[str, models.Container], networks: Mapping[str, models.Network],
    ) -> None:
        """Each fixed address a usable one of its Network's declared subnet (not the gateway),
        held by one container only; a Network without a declared subnet is checked by the engine.
        Each MAC address held by one container per network too (a bridge forwards by MAC)."""
        taken: dict[tuple[str, str], str] = {}
        for name in sorted(containers, key=lambda n: (containers[n].origin.file, containers[n].origin.line)):
            c = containers[name]
            for key, fixed in (("ipv4Address", c.ipv4_addresses), ("ipv6Address", c.ipv6_addresses),
                               ("macAddress", c.mac_addresses)):
                for net_name, address in fixed.items():
                    at = ("spec", "networks", _entry_index(docs[name], net_name), key)
                    problem = None if key == "macAddress" else _address_problem(address, networks.get(net_name))
                    if problem is None and (net_name, address) in taken:
                        what = "MAC address" if key == "macAddress" else "fixed address"
                        problem = f"{address} is the {what} of Container/{taken[net_name, address]} on {net_name} already"
                    if problem is not None:
                        self.report(docs[name], at, problem)
                    taken.setdefault((net_name, address), name)

    def check_cycles(self, docs: Mapping[str, _Doc], containers: Mapping[str, models.Container]) -> None:
        """Report each dependsOn cycle once, named from its smallest member (iterative DFS)."""
        state: dict[str, int] = {}        # 1 = on the stack, 2 = done
        reported: set[frozenset[str]] = set()
        for root in sorted(containers):
            if root in state:
                continue
            stack: list[tuple[str, int]] = [(root, 0)]
            path: list[str] = [root]
            state[root] = 1
            while stack:
                name, i = stack[-1]
                deps = containers[name].depends_on
                if i >= len(deps):
                    stack.pop()
                    path.pop()
                    state[name] = 2
                    continue
                stack[-1] = (name, i + 1)
                dep = deps[i]
                if dep not in containers or dep == name:
                    continue
                if state.get(dep) == 1:
                    cycle = path[path.index(dep):]
                    if frozenset(cycle) not in reported:
                        reported.add(frozenset(cycle))
                        start = cycle.index(min(cycle))
                        cycle = cycle[start:] + cycle[:start]
                        at = containers[cycle[0]].depends_on.index(cycle[1])
                        self.report(docs[cycle[0]], ("spec", "dependsOn", at), "dependsOn cycle: " + " -> ".join([*cycle, cycle[0]]))
                elif dep not in state:
                    state[dep] = 1
                    stack.append((dep, 0))
                    path.append(dep)


def _prune(data: Any, path: Path_) -> None:
    """Delete the field at `path`, or the list holding the first list item on the path."""
    for i, part in enumerate(path):
        if isinstance(part, int):
            path = path[:i]
            break
    if not path:
        return
    node = data
    for part in path[:-1]:
        if not isinstance(node, dict) or part not in node:
            return
        node = node[part]
    if isinstance(node, dict):
        node.pop(path[-1], None)


def _env_str(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _cap(name: str) -> str:
    upper = name.upper()
    return upper if upper == "ALL" or upper.startswith("CAP_") else "CAP_" + upper


def revision_of(docs: list[reading.Document], files: Mapping[str, str], root: str) -> str:
    """sha256 of every document's canonical data (with its file, relative to the root) and file digest."""
    h = hashlib.sha256()
    dirs: dict[str, str] = {}               # each directory's relpath, once (a revision of 500 files: ~10 ms)
    for doc in sorted(docs, key=lambda x: (x.file, x.index)):
        rel = _relpath(doc.file, root, dirs) if doc.file != "<stdin>" else doc.file
        h.update(hashing.canonical({"file": rel, "index": doc.index, "data": doc.data}))
    for path in sorted(files):
        rel = os.path.relpath(path, root)
        h.update(hashing.canonical({"ref": rel, "digest": files[path]}))
    return h.hexdigest()


def _relpath(path: str, root: str, dirs: dict[str, str]) -> str:
    """os.path.relpath(path, root), its directory's part taken from `dirs` when known (when
    the root lies beneath that directory, `path` may be on the way to it: computed in full)."""
    parent, name = os.path.split(path)
    if parent not in dirs:
        dirs[parent] = os.path.relpath(parent or ".", root)
    rel = dirs[parent]
    if not name or all(part == ".." for part in rel.split(os.sep)):
        return os.path.relpath(path, root)
    return name if rel == "." else os.path.join(rel, name)


def _placement(doc: Mapping[str, Any]) -> models.Placement:
    return models.Placement(labels=MappingProxyType(dict(sorted((doc.get("labels") or {}).items()))),
                            constraints=tuple(c.strip() for c in doc.get("constraints", ())),
                            preferences=tuple(doc.get("preferences", ())))


def _device(text: str) -> str:
    """A `devices:` entry as HOST:CONTAINER:PERMISSIONS (Docker's defaults: the same path, rwm)."""
    parts = text.split(":")
    host = parts[0]
    container = parts[1] if len(parts) > 1 and parts[1].startswith("/") else host
    perms = parts[-1] if len(parts) > 1 and not parts[-1].startswith("/") else "rwm"
    return f"{host}:{container}:{perms}"



NATIVE_LOG_DRIVERS = ("json-file", "local")     # the native engine rotates its own log as these do
NATIVE_LOG_OPTIONS = ("max-size", "max-file")   # by these (containers.py ContainerManager.rotation); the Engine API refuses others


def positive_int(value: str) -> int:
    """A log's max-file."""
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"{value!r} is not a whole number of files of 1 or more")
    return int(value)


def _address_problem(address: str, net: models.Network | None) -> str | None:
    """Why `address` cannot be a container's on `net`; None when it can, or when the engine
    chooses the subnet (then the engine checks it)."""
    if net is None:                     # external, or undefined (reported as such)
        return None
    ip = ipaddress.ip_address(address)
    if ip.version == 6 and not net.ipv6:
        return f"network {net.name} has no IPv6 for {address}; set ipv6: true on it"
    declared = net.subnet if ip.version == 4 else net.ipv6_subnet
    try:
        subnet = ipaddress.ip_network(declared) if declared else None
    except ValueError:
        return None                     # reported on the Network
    if subnet is None:
        return None
    if ip not in subnet:
        return f"{address} is outside the subnet {subnet} of network {net.name}; pick an address inside it"
    gateway = ipaddress.ip_address(net.gateway) if ip.version == 4 and net.gateway else next(subnet.hosts())
    if ip in (subnet.network_address, subnet.broadcast_address, gateway):
        return f"{address} is the network address, broadcast address or gateway of {subnet}; pick another host address"
    return None


def _entry_index(d: _Doc, network: str) -> int:
    """Where `network` is written in a Container document's `networks:` (its model orders them by
    entry priority)."""
    entries = ((d.data or {}).get("spec") or {}).get("networks") or ()
    return next((i for i, e in enumerate(entries) if (e if isinstance(e, str) else e.get("name")) == network), 0)


def _by_priority(entries: Any, networks: tuple[str, ...]) -> tuple[str, ...]:
    """The networks in the order the container is connected to them: by entry `priority`, the
    higher first, equal ones as written (compose's NetworksByPriority, whose ties go by name, is
    the order its translation writes them in)."""
    priority = [0 if isinstance(e, str) else int(e.get("priority") or 0) for e in entries]
    return tuple(networks[i] for i in sorted(range(len(networks)), key=lambda i: -priority[i]))


_MAC = re.compile(r"^[0-9A-Fa-f]{2}([:-])[0-9A-Fa-f]{2}(\1[0-9A-Fa-f]{2}){4}$")
_LINK_LOCAL = (ipaddress.ip_network("169.254.0.0/16"), ipaddress.ip_network("fe80::/10"))


def mac_address(text: str) -> tuple[str, str | None]:
    """`text` as a MAC address in lower-case colon form, or why it cannot be one of an interface:
    6 octets (`:` or `-` between them), unicast (the first octet's lowest bit clear), not all zero."""
    if not _MAC.match(text):
        return text, f"{text!r} is not a MAC address of 6 octets (like 02:42:ac:11:00:02)"
    mac = text.lower().replace("-", ":")
    if int(mac[:2], 16) & 1:
        return mac, f"{mac} is a multicast MAC address (the first octet is odd); an interface needs a unicast one"
    if mac == "00:00:00:00:00:00":
        return mac, f"{mac} is not an interface's MAC address; pick another (02:... is a locally administered one)"
    return mac, None


def link_local_address(text: str) -> tuple[str, str | None]:
    """`text` as a link-local address (169.254.0.0/16 or fe80::/10), or why it is not one."""
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return text, f"{text!r} is not an IP address"
    if not any(ip in net for net in _LINK_LOCAL):
        return str(ip), f"{ip} is not a link-local address (169.254.0.0/16 or fe80::/10)"
    if ip in (ipaddress.ip_address("169.254.0.0"), ipaddress.ip_address("169.254.255.255")):
        return str(ip), f"{ip} is the network or broadcast address of 169.254.0.0/16; pick a host address"
    return str(ip), None
