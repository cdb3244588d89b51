"""Canonical JSON and the spec hash (DESIGN.md §5.2).

A spec hash is `sha256(canonical JSON of {"kind", "spec": the model's fields minus the
excluded ones, "files": {path: sha256 of content}})`. Canonical JSON: sorted keys, no
whitespace, UTF-8, tuples as lists.

Excluded from the Container hash (changing them needs no recreate): `name`, `origin`,
`image_object` (the resolved `image` ref is hashed instead), `depends_on` (ordering only),
`update` (how to replace, not what runs), `drift` (how the agent reacts), `replicas` (how many
copies run, not what runs: a Swarm service is scaled, not replaced; with `global_mode`, which
a Swarm compares on its own), `placement` (where it runs,
not what runs: a host it still selects keeps its container; Swarm compares it on its own),
a Swarm service's own settings, `rollback`, `service_labels`, `endpoint_mode`, `restart_delay`
and `restart_window` (no effect on one host; on Swarm compared, with `update`, with the
service's own: `PlanOptions.service_settings`), and `location_labels` (where the manifests were
read from: a compose project's working_dir and config_files labels; moving a checkout replaces
nothing, and a container replaced for another reason carries the new ones). Everything else,
metadata labels included (they are stamped on the container, which Docker cannot relabel),
is hashed, but a field marked `omit_empty` only when set (a field added later leaves the hashes
of the manifests that do not use it as they were). A secret's decrypted content (`transient`
fields) never is: a digest stands for it: of a SOPS-encrypted file, the keyed digest of its
values (`sopskeys.Keys.digest`: HMAC-SHA256 under the state root's key, so the same values
encrypted again, as `sops updatekeys` or a key rotation does, hash the same, and the hash gives
no short value away); of a plain file, its content's (a build secret: only its id and where it
comes from, no digest; an env value from a SOPS-encrypted env file: its key and the file's
keyed digest, `secret_env`). The content of every env file and of every bind source that is a regular file
named relative to the manifests is hashed too (a bind source as read where it is mounted from:
a source's live place, not a revision copy), so editing such a file recreates. Those files are
named by their live path, so a new revision copy of unchanged files hashes the same.
A changed image *digest* is the planner's separate recreate reason, not part of this hash. A
container whose `image:` is an update policy hashes its repository without the tag: the agent
moves the tag (tagpolicy.py), and a write-back commit of the tag that runs must not recreate it.
Likewise a reference the lock file pins (lock.py: `ref` runs as `ref@digest`) hashes as the
manifest writes it, `ref`: writing or deleting the lock must not replace a container that runs
the pinned digest already, and one that runs another is replaced for "image digest changed".
(A digest written in the manifest itself is hashed: that is an edit of the manifest.)

Fields added to the Container after its first release (`CONTAINER_IF_SET`: sysctls, ulimits, shm_size, extra hosts, dns, job, tty, stdin_open, no_new_privileges, dns options,
oom_score_adj, group_add, privileged, devices, domainname, fixed addresses, logging, a network entry's MAC
address, link-local addresses and gateway priority; a mount's tmpfs `options`)
are hashed only when set, so upgrading reconciler recreates no container that does not use them. An
entry's `priority` is hashed as what it does: the order of `networks` (so one that changes no order
changes no hash).

Image: everything but `pull` and `track` (policies), plus the Dockerfile's content.
Network: subnet, gateway, internal, mtu, labels, and ipv6 and its subnet, and driver_opts, only when set. Volume: labels only (`deletion_policy` is
a prune policy, so changing it never recreates a volume).
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Mapping
from typing import Any

from reconciler._dataclass import dataclasses

__all__ = ["COMMON_EXCLUDED", "CONTAINER_EXCLUDED", "CONTAINER_IF_SET", "IMAGE_EXCLUDED", "canonical", "file_digest", "spec_hash"]

CONTAINER_EXCLUDED = frozenset({"name", "origin", "image_object", "depends_on", "update", "drift", "spec_hash",
                                "image_update", "replicas", "global_mode", "placement", "rollback",
                                "service_labels", "endpoint_mode", "restart_delay", "restart_window",
                                "location_labels"})
CONTAINER_IF_SET = frozenset({"sysctls", "ulimits", "shm_size", "extra_hosts", "dns", "dns_search", "job",
                              "tty", "stdin_open", "no_new_privileges", "dns_options", "oom_score_adj",
                              "group_add", "privileged", "devices",
                              "domainname", "ipv4_addresses", "ipv6_addresses", "logging",
                              "mac_addresses", "link_local_ips", "gw_priorities"})
IMAGE_EXCLUDED = frozenset({"name", "origin", "pull", "track", "spec_hash"})
COMMON_EXCLUDED = frozenset({"name", "origin", "spec_hash", "deletion_policy"})


# added to nested models later, hashed only when set (a container made before keeps its hash):
# VolumeMount.options, Resources' reservation, shares, cpuset, swap, CFS numbers, memory nodes, blkio weight
_NESTED_IF_SET = frozenset({"options", "memory_reservation", "cpu_shares", "cpuset", "memory_swap",
                            "cpu_period", "cpu_quota", "cpuset_mems", "blkio_weight"})


def _default(value: Any) -> Any:
    """JSON fallback for the models: dataclasses as their fields, mappings as dicts."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out = {}
        for name, if_set in _hashed_fields(type(value)):
            v = getattr(value, name)
            if v or not if_set:
                out[name] = v
        return out
    if isinstance(value, Mapping):
        return dict(value)
    return str(value)


@functools.cache
def _hashed_fields(cls: type) -> tuple[tuple[str, bool], ...]:
    """A model's fields as the hash takes them: (name, only when set), transient ones left out
    (once per class: every spec hash walks every nested model)."""
    return tuple((f.name, bool(f.metadata.get("omit_empty")) or f.name in _NESTED_IF_SET)
                 for f in dataclasses.fields(cls) if not f.metadata.get("transient"))


_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_default)


def canonical(value: Any) -> bytes:
    """Canonical JSON bytes of plain data or of the (frozen, dict-backed) models."""
    return _ENCODER.encode(value).encode()


def file_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def spec_hash(kind: str, fields: Mapping[str, Any], excluded: frozenset[str], files: Mapping[str, str]) -> str:
    """sha256 hex of the kind, the fields not excluded, and the referenced files' digests."""
    body = {k: v for k, v in fields.items() if k not in excluded and (v or k not in CONTAINER_IF_SET)}
    return hashlib.sha256(canonical({"kind": kind, "spec": body, "files": dict(files)})).hexdigest()
