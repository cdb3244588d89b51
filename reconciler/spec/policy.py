"""What a source may ask of the host: a per-source policy checked while a revision loads.

DESIGN §10: policy is a planner input, checked at validation, per source, with a named rule in
every refusal. `spec.load(path, policy=...)` runs `check()` after the objects are built; a
refused field is a Problem like any other (`file:line:col: kind/name: field: message`), so a
revision that breaks its source's policy is invalid as a whole and nothing changes on the host.

Two built-in profiles:

- `host`: everything the manifest language can say is allowed (the behaviour before policies).
  The default of `reconcile apply/diff/validate` and of the agent's `directory:` sources: whoever
  can write there is root already.
- `restricted`: the default of the agent's `git:` sources (and so of webhook-triggered passes).
  Files a manifest names (env files, bind sources, build contexts) must resolve beneath the
  source root (openat2 RESOLVE_BENEATH: `..` and symlinks may not leave it; for bind sources, the
  source's live directory, where they are mounted from); `capAdd` only of
  capabilities in Docker's default set (adding them changes nothing); no `networks: [host]`;
  no `external: true` Network or Volume (it would reach objects other sources or people made:
  their networks, their data); pulls from any registry, `push:` to none; build secrets from files beneath the source root
  only (no environment variable of the agent: rule secretEnv), SSH agent sockets likewise
  (filePrefixes), no build entitlement (`allow: [security.insecure]`: rule buildAllow); secret
  files from an environment variable (`env:`) likewise (rule secretEnv); no `privileged: true`
  (rule privileged) and no `devices` (rule devices); a Volume whose `driverOpts` mount a host
  path (`o: bind` or a `device` path) counts as a bind source (rule bindPrefixes), any other
  `driverOpts` type than a tmpfs whose options name no path is refused (rule volumeTypes: an
  overlay's `lowerdir=` is a host path its `device` does not show), and so is a volume driver
  other than `local` (rule volumeDrivers); every bind,
  and every mount of such a Volume, read-only (rule writableBinds: the path is checked now, the
  engine mounts it later: a container that could write the source's tree could turn a path
  another bind names into a symlink to anywhere in between); no build, nor pull by digest, of a
  local tag another owner runs or moved, nor a pull over such a tag's image made on this host
  (rule sharedTags, `refuse_tag`: judged by each pass, which knows the other owners' tags; that
  owner's containers would run what this source chose under their own settings); no negative
  `oomScoreAdj` and no `ulimits` `rtprio` above 0 or `nice` above 20 (rule priority: they rank the
  container's processes above the host's, for the OOM killer and the scheduler); a log driver
  of json-file, local, journald or none only (rule logDrivers: syslog, gelf, fluentd and the
  like send the output from the host's network namespace, to what their options name).

A policy file (YAML, `--policy FILE` or `policy: FILE` in the agent config) starts from a
profile (`base:`) and replaces the settings it names; see SCHEMA and docs/security.md.

`container import` checks an archive's container by the `restricted` rules too
(`archive_refusals`): an archive from elsewhere is a source nobody vouched for.
"""

from __future__ import annotations

import errno
import fnmatch
import os
import stat
from collections.abc import Callable, Collection, Iterable, Mapping
from pathlib import Path
from typing import Any

from reconciler import imagenames
from reconciler._dataclass import dataclass, dataclasses
from reconciler.errors import TerminalError

__all__ = [
    "BUILTIN",
    "DOCKER_DEFAULT_CAPS",
    "HOST",
    "RESTRICTED",
    "SCHEMA",
    "Policy",
    "PolicyError",
    "archive_refusals",
    "beneath",
    "check",
    "load_policy",
    "parse_policy",
    "refuse_file",
    "refuse_tag",
    "registry_of",
]

# Docker's default capability set (moby oci/caps/defaults.go): `capAdd` of one of these is a no-op.
DOCKER_DEFAULT_CAPS = frozenset({
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
})

ANY = "*"


class PolicyError(TerminalError):
    """A policy name or file is invalid (unknown profile, unreadable file, schema errors)."""

    exit_code = 2


@dataclass(frozen=True)
class Policy:
    """What manifests under this policy may use. `*` in a list means anything."""

    name: str                                   # "host", "restricted" or the policy file's path
    bind_prefixes: tuple[str, ...] = ()         # bind sources allowed outside the source root
    file_prefixes: tuple[str, ...] = ()         # env files and build contexts allowed outside it
    capabilities: tuple[str, ...] = ()          # capAdd allowed beyond Docker's default set
    host_network: bool = False                  # networks: [host]
    registries: tuple[str, ...] = (ANY,)        # registries images may be pulled from
    push_registries: tuple[str, ...] = ()       # registries `push:` may name
    external: bool = False                      # external: true Networks and Volumes
    secret_env: tuple[str, ...] = ()            # environment variables build secrets may read (* wildcards)
    build_allow: tuple[str, ...] = ()           # build entitlements `allow:` may name
    privileged: bool = False                    # privileged: true
    devices: tuple[str, ...] = ()               # host device nodes `devices:` may name (* wildcards)
    writable_binds: bool = False                # binds (and bind volumes) mounted read-write
    volume_drivers: tuple[str, ...] = ("local",)  # Volume drivers (* wildcards)
    volume_types: tuple[str, ...] = ("tmpfs",)  # the local driver's driverOpts `type`s, besides a bind
    shared_tags: bool = False                   # move a local tag another owner runs or moved (refuse_tag)
    priority: bool = False                      # rank above the host: oomScoreAdj < 0, ulimits rtprio/nice
    log_drivers: tuple[str, ...] = ("json-file", "local", "journald", "none")   # logging.driver (* wildcards)

    @property
    def unrestricted(self) -> bool:
        return (
            "/" in self.bind_prefixes and "/" in self.file_prefixes and ANY in self.capabilities
            and self.host_network and ANY in self.registries and ANY in self.push_registries and self.external
            and ANY in self.secret_env and ANY in self.build_allow and self.privileged and ANY in self.devices
            and self.writable_binds and ANY in self.volume_drivers and ANY in self.volume_types and self.shared_tags
            and self.priority and ANY in self.log_drivers
        )


HOST = Policy("host", bind_prefixes=("/",), file_prefixes=("/",), capabilities=(ANY,), host_network=True,
              registries=(ANY,), push_registries=(ANY,), external=True, secret_env=(ANY,), build_allow=(ANY,),
              privileged=True, devices=(ANY,), writable_binds=True, volume_drivers=(ANY,), volume_types=(ANY,),
              shared_tags=True, priority=True, log_drivers=(ANY,))
RESTRICTED = Policy("restricted")
BUILTIN: Mapping[str, Policy] = {"host": HOST, "restricted": RESTRICTED}

_LIST = {"type": "array", "items": {"type": "string", "minLength": 1}}
_PREFIXES = {"type": "array", "items": {"type": "string", "pattern": "^/"}}
SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "base": {"enum": sorted(BUILTIN), "description": "the profile the other settings change (default restricted)"},
        "bindPrefixes": {**_PREFIXES, "description": "absolute directories bind sources may come from besides the source root; / allows any"},
        "filePrefixes": {**_PREFIXES, "description": "absolute directories env files and build contexts may come from besides the source root; / allows any"},
        "capabilities": {**_LIST, "description": "capAdd allowed beyond Docker's default set (CAP_ prefix optional); * allows any, ALL included"},
        "hostNetwork": {"type": "boolean", "description": "allow networks: [host]"},
        "external": {"type": "boolean", "description": "allow external: true Networks and Volumes (objects made outside the source)"},
        "registries": {**_LIST, "description": "registries images may be pulled from (host[:port], * wildcards); * allows any"},
        "pushRegistries": {**_LIST, "description": "registries Image push: targets may name; * allows any"},
        "secretEnv": {**_LIST, "description": "environment variables of the agent an Image's build.secrets may read "
                      "(env: VARIABLE; * wildcards); * allows any"},
        "buildAllow": {"type": "array", "items": {"enum": ["security.insecure", ANY]},
                       "description": "build entitlements an Image's build.allow may name (security.insecure); * allows any"},
        "privileged": {"type": "boolean", "description": "allow privileged: true (the container is root on the host)"},
        "devices": {**_LIST, "description": "host device nodes a Container's devices may name (* wildcards, like /dev/ttyUSB*); * allows any"},
        "writableBinds": {"type": "boolean", "description": "allow binds (and local bind volumes) mounted read-write: "
                          "a container that may write a bound directory can swap what another bind names for a symlink"},
        "volumeDrivers": {**_LIST, "description": "Volume drivers a Volume may name (* wildcards); * allows any"},
        "volumeTypes": {**_LIST, "description": "the local driver's driverOpts types a Volume may name besides a bind "
                        "(type: none, o: bind, which bindPrefixes place), like tmpfs or nfs; * allows any (overlay "
                        "included, whose lowerdir= names host directories)"},
        "sharedTags": {"type": "boolean", "description": "allow a build (or a pull by digest) of a local image tag "
                       "another owner's containers run or another owner built or pulled, and a pull over such a "
                       "tag's image made on this host: their containers would then run what this source chose"},
        "priority": {"type": "boolean", "description": "allow a container to rank above the host's processes: a "
                     "negative oomScoreAdj (the OOM killer takes host processes first) and ulimits rtprio or nice "
                     "above 20 (real-time or raised scheduling without CAP_SYS_NICE)"},
        "logDrivers": {**_LIST, "description": "log drivers a Container's logging.driver may name (* wildcards); "
                       "* allows any (syslog, gelf, fluentd, splunk, ...: the engine sends the output from the "
                       "host to the address or host socket the options name)"},
    },
}
_FIELDS = {"bindPrefixes": "bind_prefixes", "filePrefixes": "file_prefixes", "capabilities": "capabilities",
           "hostNetwork": "host_network", "registries": "registries", "pushRegistries": "push_registries",
           "external": "external", "secretEnv": "secret_env", "buildAllow": "build_allow",
           "privileged": "privileged", "devices": "devices", "writableBinds": "writable_binds",
           "volumeDrivers": "volume_drivers", "volumeTypes": "volume_types", "sharedTags": "shared_tags",
           "priority": "priority", "logDrivers": "log_drivers"}


# -- reading a policy ----------------------------------------------------------------------------


def load_policy(spec: str) -> Policy:
    """A built-in profile by name, or a policy file by path (PolicyError when invalid)."""
    if spec in BUILTIN:
        return BUILTIN[spec]
    if os.sep not in spec and not spec.endswith((".yaml", ".yml")):
        raise PolicyError(f"unknown policy {spec!r}: give {' or '.join(sorted(BUILTIN))}, or a policy file's path",
                          hint="see docs/security.md, section Policy")
    path = Path(spec)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise PolicyError(f"policy file {path} is not a regular file")
            with os.fdopen(os.dup(fd), "rb") as fh:
                raw = fh.read(1 << 20)
        finally:
            os.close(fd)
    except OSError as e:
        raise PolicyError(f"cannot read the policy file {path}: {e.strerror}",
                          hint=f"give {' or '.join(sorted(BUILTIN))}, or the path of a readable policy file") from None
    return parse_policy(raw.decode("utf-8", "replace"), where=str(path))


def parse_policy(text: str, *, where: str = "<policy>") -> Policy:
    """Validate a policy file's text against SCHEMA; errors name the file, line and setting."""
    import jsonschema
    import yaml

    try:
        data = yaml.safe_load(text)
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f":{mark.line + 1}" if mark is not None else ""
        raise PolicyError(f"{where}{at}: not valid YAML: {getattr(e, 'problem', None) or e}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise PolicyError(f"{where}:1: a policy file is a mapping of settings ({', '.join(SCHEMA['properties'])})")
    lines: dict[str, int] = {}
    if isinstance(node, yaml.MappingNode):
        lines = {str(k.value): k.start_mark.line + 1 for k, _ in node.value}
    problems = []
    from reconciler.spec import schemas

    for err in sorted(jsonschema.Draft202012Validator(SCHEMA).iter_errors(data), key=lambda e: list(map(str, e.path))):
        setting = str(err.path[0]) if err.path else ""
        msg = err.message
        if err.validator == "additionalProperties":
            unknown = sorted(set(data) - set(SCHEMA["properties"]))
            setting = unknown[0] if unknown else ""
            msg = (f"unknown setting {setting!r}{schemas.did_you_mean(setting, list(SCHEMA['properties']))}; "
                   f"known: {', '.join(SCHEMA['properties'])}")
        elif err.validator == "pattern":
            msg = f"{err.instance!r} is not an absolute path"
        problems.append(f"{where}:{lines.get(setting, 1)}: {setting or '(top)'}: {msg}")
    if problems:
        raise PolicyError(f"{len(problems)} problem(s) in the policy file:\n" + "\n".join(problems),
                          hint="fix the policy file (settings: docs/security.md, section Policy)")
    base = BUILTIN[data.get("base", "restricted")]
    changes: dict[str, Any] = {"name": where}
    for key, attr in _FIELDS.items():
        if key in data:
            value = data[key]
            if key == "capabilities":
                value = [c if c == ANY else _cap(c) for c in value]
            elif key.endswith("Prefixes"):
                value = [os.path.normpath(p) for p in value]
            elif key not in ("hostNetwork", "external", "secretEnv", "privileged", "devices", "writableBinds",
                             "volumeDrivers", "volumeTypes", "sharedTags", "priority", "logDrivers"):
                value = [v.lower() for v in value]
            changes[attr] = value if isinstance(value, bool) else tuple(value)
    return dataclasses.replace(base, **changes)


# -- checking a revision -------------------------------------------------------------------------

Report = Callable[[Any, tuple[str | int, ...], str], None]     # (document, field path, message)


def check(
    policy: Policy,
    root: str,
    images: Iterable[tuple[Any, Mapping[str, Any]]],
    containers: Iterable[tuple[Any, Mapping[str, Any]]],
    image_names: set[str],
    resolve: Callable[[Any, str], str],
    report: Report,
    *,
    bind_root: str | None = None,
    resolve_bind: Callable[[Any, str], str] | None = None,
    externals: Iterable[Any] = (),
    volumes: Iterable[tuple[Any, Mapping[str, Any]]] = (),
) -> None:
    """Report every field of the Image and Container documents (doc, spec) the policy refuses,
    each of the `externals` (external Network and Volume documents) when it refuses them, and
    a Volume (doc, spec) whose `driverOpts` mount a host path (`o: bind`, or a `device` like
    /dev/sdb1) from outside the bind prefixes: it reaches the host's files as a bind does.

    `resolve(doc, path)` is the loader's own resolution of a path named in `doc`; `root` is the
    source root relative paths must stay beneath. Bind sources are resolved with `resolve_bind`
    and must stay beneath `bind_root` instead when given: the live directory a revision copy's
    binds are mounted from (spec.load's `live`), checked where the container will see it.
    """
    if policy.unrestricted:
        return
    for doc, spec in images:
        build = spec.get("build")
        if isinstance(build, dict):
            _build_inputs(policy, root, doc, build, resolve, report)
        if isinstance(build, dict) and isinstance(build.get("context"), str):
            context = resolve(doc, build["context"])
            message = _path(policy, root, context, policy.file_prefixes, "filePrefixes")
            if message:
                report(doc, ("spec", "build", "context"), f"build context {message}")
            else:   # the Dockerfile is read on the host too: a symlink in the context must not lead out
                dockerfile = os.path.normpath(os.path.join(context, str(build.get("file", "Dockerfile"))))
                message = _path(policy, root, dockerfile, policy.file_prefixes, "filePrefixes")
                if message:
                    where = ("spec", "build", "file") if "file" in build else ("spec", "build", "context")
                    report(doc, where, f"Dockerfile {message}")
        elif isinstance(spec.get("ref"), str):
            message = _registry(policy, policy.registries, "registries", spec["ref"], "pulling from")
            if message:
                report(doc, ("spec", "ref"), message)
        for i, target in enumerate(spec.get("push") or ()):
            message = _registry(policy, policy.push_registries, "pushRegistries", str(target), "pushing to")
            if message:
                report(doc, ("spec", "push", i), message)
    if not policy.external:
        for doc in externals:
            report(doc, ("spec", "external"), f"an external {doc.kind} (made outside this source) is refused by policy "
                   f"{policy.name!r} (rule external: false); declare it in the source, or set external: true in a policy file")
    binds = (bind_root or root, resolve_bind or resolve)
    volumes = list(volumes)
    # the Volumes that bind a host directory: a container mounts them as it would bind it
    bound = {doc.name: device for doc, spec in volumes if (device := _volume_device(spec.get("driverOpts") or {}))}
    for doc, spec in containers:
        _container(policy, root, doc, spec, image_names, resolve, report, binds, bound)
    for doc, spec in volumes:
        _volume(policy, doc, spec, binds, report)


def _build_inputs(policy: Policy, root: str, doc: Any, build: Mapping[str, Any],
                  resolve: Callable[[Any, str], str], report: Report) -> None:
    """build.secrets (files beneath the root, environment variables the policy lists),
    build.ssh sockets (as files) and build.allow entitlements."""
    rule = f"by policy {policy.name!r}"
    for i, item in enumerate(build.get("secrets") or ()):
        if not isinstance(item, dict):
            continue
        if isinstance(item.get("file"), str):
            message = _path(policy, root, resolve(doc, item["file"]), policy.file_prefixes, "filePrefixes")
            if message:
                report(doc, ("spec", "build", "secrets", i, "file"), f"secret file {message}")
        var = item.get("env")
        if isinstance(var, str) and not any(fnmatch.fnmatchcase(var, p) for p in policy.secret_env):
            report(doc, ("spec", "build", "secrets", i, "env"),
                   f"reading the agent's environment variable {var} is refused {rule} (rule secretEnv: "
                   f"{', '.join(policy.secret_env) or 'none'}); take the secret from a file in the source "
                   f"(sops-encrypted), or list {var} under secretEnv: in a policy file")
    for i, item in enumerate(build.get("ssh") or ()):
        socket = item.get("socket") if isinstance(item, dict) else None
        path = resolve(doc, socket) if isinstance(socket, str) else os.environ.get("SSH_AUTH_SOCK", "")
        message = _path(policy, root, path, policy.file_prefixes, "filePrefixes") if path else None
        if message:
            report(doc, ("spec", "build", "ssh", i, "socket") if isinstance(socket, str) else ("spec", "build", "ssh", i),
                   f"SSH agent socket {message}")
    for i, name in enumerate(build.get("allow") or ()):
        if ANY not in policy.build_allow and name not in policy.build_allow:
            report(doc, ("spec", "build", "allow", i),
                   f"build entitlement {name} is refused {rule} (rule buildAllow: "
                   f"{', '.join(policy.build_allow) or 'none'}); list {name} under buildAllow: in a policy file to allow it")


def _host_settings(policy: Policy, spec: Mapping[str, Any]) -> list[tuple[tuple[str | int, ...], str, str]]:
    """(field, what is refused and by which rule, how a policy file allows it) for each setting of
    a Container `spec` that gives it the host beyond `policy`: capAdd beyond Docker's default set,
    the host network, privileged, devices (binds are placed against a source root: `_container`)."""
    rule = f"by policy {policy.name!r}"
    out: list[tuple[tuple[str | int, ...], str, str]] = []
    for i, name in enumerate(spec.get("capAdd") or ()):
        cap = _cap(str(name))
        if cap in DOCKER_DEFAULT_CAPS or ANY in policy.capabilities or cap in policy.capabilities:
            continue
        what = "every capability" if cap == "ALL" else f"capability {cap}"
        out.append((("spec", "capAdd", i), f"{what} refused {rule} (rule capabilities: only Docker's default set "
                    "unless listed)", f"list {cap.removeprefix('CAP_')} under capabilities: in a policy file to allow it"))
    # every entry by the name the engine takes (`host`, `{name: host}`: compose's `networks:
    # {x: {priority: 1}}` with a top-level `x: {name: host}` converts to the latter); a
    # `container:NAME` must be a Container of these manifests (spec/building.py), checked there
    networks = [e.get("name") if isinstance(e, dict) else e for e in spec.get("networks") or ()]
    if "host" in networks and not policy.host_network:
        out.append((("spec", "networks", networks.index("host")),
                    f"the host network namespace is refused {rule} (rule hostNetwork: false)",
                    "use a Network object, or set hostNetwork: true in a policy file"))
    if spec.get("privileged") and not policy.privileged:
        out.append((("spec", "privileged"), f"a privileged container is refused {rule} (rule privileged: false)",
                    "name what it needs (capAdd, devices), or set privileged: true in a policy file"))
    for i, device in enumerate(spec.get("devices") or ()):
        host = str(device).split(":")[0]
        if not any(fnmatch.fnmatchcase(host, p) for p in policy.devices):
            out.append((("spec", "devices", i), f"the host device {host} is refused {rule} (rule devices: "
                        f"{', '.join(policy.devices) or 'none'})", "list it under devices: in a policy file to allow it"))
    if not policy.priority:
        out += _priority(rule, spec)
    logging = spec.get("logging")
    driver = logging.get("driver") if isinstance(logging, dict) else None
    if isinstance(driver, str) and not any(fnmatch.fnmatchcase(driver, p) for p in policy.log_drivers):
        out.append((("spec", "logging", "driver"), f"the log driver {driver} is refused {rule} (rule logDrivers: "
                    f"{', '.join(policy.log_drivers) or 'none'}): the engine would send the container's output from "
                    "the host, to an address or host socket its options name", "list it under logDrivers: in a "
                    "policy file to allow it"))
    return out


def _priority(rule: str, spec: Mapping[str, Any]) -> list[tuple[tuple[str | int, ...], str, str]]:
    """What ranks a container's processes above the host's: lowering oom_score_adj (the kernel
    asks CAP_SYS_RESOURCE for it, which no container gets), and the rlimits that let a process
    without CAP_SYS_NICE take a real-time policy (RLIMIT_RTPRIO above 0: a SCHED_FIFO loop starves
    the host's processes of a core) or a nice value below 0 (RLIMIT_NICE above 20)."""
    out: list[tuple[tuple[str | int, ...], str, str]] = []
    remedy = "leave it out, or set priority: true in a policy file"
    adj = spec.get("oomScoreAdj")
    if isinstance(adj, int) and not isinstance(adj, bool) and adj < 0:
        out.append((("spec", "oomScoreAdj"), f"oomScoreAdj {adj} (the OOM killer would take the host's processes "
                    f"before this container's) is refused {rule} (rule priority: false; 0 to 1000 allowed)", remedy))
    limits = spec.get("ulimits")
    for name, ceiling, what in (("rtprio", 0, "a real-time scheduling policy"), ("nice", 20, "a nice value below 0")):
        value = limits.get(name) if isinstance(limits, dict) else None
        values = [value] if isinstance(value, int) else \
            [v for v in (value.get("soft"), value.get("hard")) if isinstance(v, int)] if isinstance(value, dict) else []
        if any(v == -1 or v > ceiling for v in values):
            out.append((("spec", "ulimits", name), f"ulimit {name} above {ceiling} (it lets the container's processes "
                        f"take {what} without CAP_SYS_NICE, ahead of the host's) is refused {rule} (rule priority: false)",
                        remedy))
    return out


def archive_refusals(spec: Mapping[str, Any], foreign_volumes: Iterable[str] = ()) -> list[str]:
    """What a container from an archive (`container import`; `spec` in the manifest's terms:
    capAdd, networks, privileged, devices, volumes) asks of the host that the `restricted`
    profile refuses, each "FIELD: what (rule)". An archive has no source root, so every bind
    names a host path (rule bindPrefixes); `foreign_volumes`, the volumes it mounts that exist
    here and that it does not carry, are this host's data (rule external)."""
    found = [f"{_field(path)}: {refusal}" for path, refusal, _ in _host_settings(RESTRICTED, spec)]
    foreign = set(foreign_volumes)
    for i, item in enumerate(spec.get("volumes") or ()):
        field = _field(("spec", "volumes", i))
        if (source := _bind_source(item)) is not None:
            found.append(f"{field}: a bind of the host path {source} at {item.get('target')} is refused by policy "
                         "'restricted' (rule bindPrefixes: none; an archive has no source root)")
        elif (name := _volume_name(item)) is not None and name in foreign:
            found.append(f"{field}: volume {name} at {item.get('target')} is this host's (the archive does not "
                         "carry its data) and refused by policy 'restricted' (rule external: false)")
    return found


def _field(path: tuple[str | int, ...]) -> str:
    """`("spec", "capAdd", 0)` as `capAdd[0]`."""
    out = ""
    for part in path[1:]:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def _container(policy: Policy, root: str, doc: Any, spec: Mapping[str, Any], image_names: set[str],
               resolve: Callable[[Any, str], str], report: Report,
               binds: tuple[str, Callable[[Any, str], str]], bound: Mapping[str, str]) -> None:
    rule = f"by policy {policy.name!r}"
    image = spec.get("image")
    # an update policy pulls from the tracked repository's registry: the same rule
    tracked = image.get("track") if isinstance(image, dict) else None
    ref = tracked if isinstance(tracked, str) else image if isinstance(image, str) and image not in image_names else None
    if ref is not None:
        message = _registry(policy, policy.registries, "registries", ref, "pulling from")
        if message:
            report(doc, ("spec", "image", "track") if ref is tracked else ("spec", "image"), message)
    for path, refusal, remedy in _host_settings(policy, spec):
        report(doc, path, f"{refusal}; {remedy}")
    for i, rel in enumerate(spec.get("envFiles") or ()):
        message = _path(policy, root, resolve(doc, str(rel)), policy.file_prefixes, "filePrefixes")
        if message:
            report(doc, ("spec", "envFiles", i), f"env file {message}")
    for i, item in enumerate(spec.get("secrets") or ()):
        var = item.get("env") if isinstance(item, dict) else None
        if isinstance(var, str) and not any(fnmatch.fnmatchcase(var, p) for p in policy.secret_env):
            report(doc, ("spec", "secrets", i, "env"),
                   f"reading the agent's environment variable {var} is refused {rule} (rule secretEnv: "
                   f"{', '.join(policy.secret_env) or 'none'}); take the secret from a file in the source")
        if isinstance(item, dict) and isinstance(item.get("source"), str):
            message = _path(policy, root, resolve(doc, item["source"]), policy.file_prefixes, "filePrefixes")
            if message:
                report(doc, ("spec", "secrets", i, "source"), f"secret file {message}")
    bind_root, resolve_bind = binds
    for i, item in enumerate(spec.get("volumes") or ()):
        source = _bind_source(item)
        if source is not None:
            message = _path(policy, bind_root, resolve_bind(doc, source), policy.bind_prefixes, "bindPrefixes")
            if message:
                report(doc, ("spec", "volumes", i), f"bind source {message}")
                continue
        if policy.writable_binds or _read_only(item):
            continue
        if source is not None:
            report(doc, ("spec", "volumes", i), _writable(policy, f"bind of {source}"))
        elif (name := _volume_name(item)) is not None and name in bound:
            report(doc, ("spec", "volumes", i), _writable(policy, f"mount of Volume {name}, which binds {bound[name]},"))


def refuse_tag(
    policy: Policy, tag: str, *, build: bool, pinned: bool, runs: Mapping[str, Collection[str]],
    moved: tuple[str, str] | None, made_here: bool,
) -> str | None:
    """Why the policy refuses that its owner's pass moves the local tag `tag` (rule sharedTags),
    or None. The pass asks (execution/observing.py `moves_refused`): only it knows the host's
    other owners. `runs`: each other owner's containers that run the tag (observed, or in its
    inventory); `moved`: (owner, "build" | "pull") when another owner's pass moved it last;
    `made_here`: the local image under the tag was made on this host (built, loaded, tagged)
    and never pulled as it.

    A build, and a pull by digest (`x:1@sha256:...` tags `x:1`), put what the source chose
    under the tag: refused when another owner runs or moved it, since that owner's next pass
    runs the tag's new image under its own settings (privileges, volumes, devices). A pull of the
    tag itself gets what the registry holds under that name, as the other owner's pull would:
    refused only when it would replace an image made on this host."""
    if policy.shared_tags or not (runs or moved is not None):
        return None
    if not (build or pinned or made_here):
        return None
    owners = sorted(set(runs) | ({moved[0]} if moved is not None else set()))
    whose = []
    for owner in owners:
        did = ["built it" if moved[1] == "build" else "pulled it here"] if moved is not None and moved[0] == owner else []
        if owner in runs:
            did.append("runs it in " + ", ".join(f"Container/{n}" for n in sorted(runs[owner])))
        whose.append(f"owner {owner!r} " + " and ".join(did))
    if build:
        what, fix = "a build", "give the Image a ref of its own (a tag no other owner uses)"
    elif pinned:
        what, fix = "a pull by digest", "name the image by its digest alone (repository@sha256:...), which moves no tag"
    else:
        what, fix = "a pull over the image made on this host", "use a tag no other owner runs or builds"
    return (f"{what} would move the local tag {tag}, which another owner holds ({'; '.join(whose)}): refused by "
            f"policy {policy.name!r} (rule sharedTags: false), since their containers would then run what this "
            f"source chose under their own settings; {fix}, or set sharedTags: true in a policy file")


def refuse_file(policy: Policy, root: str, full: str) -> str | None:
    """Why the policy refuses reading the file `full` (an env file, an extended compose file) for
    manifests rooted at `root`, or None when it is allowed (the rule filePrefixes)."""
    if policy.unrestricted:
        return None
    return _path(policy, root, full, policy.file_prefixes, "filePrefixes")


def _path(policy: Policy, root: str, full: str, prefixes: tuple[str, ...], setting: str) -> str | None:
    """Why `full` is refused, or None when it is beneath the root or an allowed prefix."""
    if "/" in prefixes or beneath(root, full) or any(beneath(p, full) for p in prefixes):
        return None
    allowed = ", ".join(prefixes) if prefixes else "none"
    real = os.path.realpath(full)
    shown = full if real == full else f"{full} (which leads to {real})"
    return (f"{shown} is outside the source root {root} and refused by policy {policy.name!r} "
            f"(rule {setting}: {allowed}; symlinks count where they lead); keep the file in the "
            f"source, or list a directory holding it under {setting}: in a policy file")


def _registry(policy: Policy, allowed: tuple[str, ...], setting: str, ref: str, verb: str) -> str | None:
    registry = registry_of(ref)
    if any(fnmatch.fnmatchcase(registry, pattern) for pattern in allowed):
        return None
    return (f"{verb} registry {registry} refused by policy {policy.name!r} (rule {setting}: "
            f"{', '.join(allowed) or 'none'}); list {registry} under {setting}: in a policy file to allow it")


def _bind_source(item: Any) -> str | None:
    if isinstance(item, dict):
        source = item.get("source")
        return source if item.get("type") == "bind" and isinstance(source, str) and source else None
    if isinstance(item, str) and ":" in item:      # `/data` alone is an anonymous volume, no bind
        source = item.split(":")[0]
        return source if source.startswith(("/", ".", "~")) else None
    return None


# what a tmpfs volume's `o` may say: its size, root's mode and owner, and flags that take away
_TMPFS_OPTIONS = frozenset({"size", "mode", "uid", "gid", "nr_inodes", "nr_blocks"})
_TMPFS_FLAGS = frozenset({"ro", "rw", "noexec", "nosuid", "nodev", "noatime", "relatime"})


def _volume(policy: Policy, doc: Any, spec: Mapping[str, Any], binds: tuple[str, Callable[[Any, str], str]],
            report: Report) -> None:
    """A Volume's driver and options. The local driver's options are mount(8)'s, run on the
    host by the engine (Docker's `--opt`): a bind (`type: none, o: bind, device: DIR`) is a bind
    source (bindPrefixes, and writableBinds for its mounts); any other type must be listed
    (volumeTypes: `overlay` with `o: lowerdir=/etc` reads the host's files, `nfs` mounts what
    trusts this host's address), a tmpfs takes only options that name no path. Another driver
    is a plugin whose options mean what it says: it must be listed (volumeDrivers)."""
    rule = f"by policy {policy.name!r}"
    driver = str(spec.get("driver", "local"))
    if not any(fnmatch.fnmatchcase(driver, p) for p in policy.volume_drivers):
        report(doc, ("spec", "driver"), f"the volume driver {driver} is refused {rule} (rule volumeDrivers: "
               f"{', '.join(policy.volume_drivers) or 'none'}): a plugin's options can reach the host's files; "
               f"use the local driver, or list {driver} under volumeDrivers: in a policy file")
        return
    opts = {str(k): str(v) for k, v in (spec.get("driverOpts") or {}).items()}
    if driver != "local" or not opts:
        return
    kind = opts.get("type", "")
    device = opts.get("device", "")
    flags = [o.strip() for o in opts.get("o", "").split(",") if o.strip()]
    bind = bool({"bind", "rbind"} & set(flags))
    if bind and not device.startswith("/"):
        report(doc, ("spec", "driverOpts", "device") if device else ("spec", "driverOpts"),
               f"the bind volume's device {device or '(none)'} is refused {rule} (rule bindPrefixes): the engine "
               "mounts a relative device from its own working directory, not from the source; give an absolute path")
        return
    host = _volume_device(opts)
    message = _path(policy, binds[0], binds[1](doc, host), policy.bind_prefixes, "bindPrefixes") if host else None
    if message:
        report(doc, ("spec", "driverOpts", "device"), f"the volume's device {message}")
    elif bind or ANY in policy.volume_types:
        return
    elif kind not in policy.volume_types:
        report(doc, ("spec", "driverOpts", "type") if kind else ("spec", "driverOpts"),
               f"a local volume of type {kind or '(none)'} is refused {rule} (rule volumeTypes: "
               f"{', '.join(policy.volume_types) or 'none'}): its options can name host paths (overlay's lowerdir=) or "
               f"reach storage that trusts this host (nfs, cifs); use a plain named volume, or list "
               f"{kind or 'the type'} under volumeTypes: in a policy file")
    elif kind == "tmpfs":
        bad = [f for f in flags if f.split("=")[0] not in _TMPFS_OPTIONS and f not in _TMPFS_FLAGS]
        if bad:
            report(doc, ("spec", "driverOpts", "o"), f"the tmpfs option {bad[0]} is refused {rule} (rule volumeTypes: "
                   f"a tmpfs takes {', '.join(o + '=' for o in sorted(_TMPFS_OPTIONS))} and "
                   f"{', '.join(sorted(_TMPFS_FLAGS))} only); remove it")


def _writable(policy: Policy, what: str) -> str:
    """Why a read-write bind is refused (rule writableBinds). The bind source was checked as it is
    now; a container that may write the source's tree could swap a path another bind (or its own
    next mount) names for a symlink to anywhere, which the engine follows when it mounts it."""
    return (f"a writable {what} is refused by policy {policy.name!r} (rule writableBinds: false): a restricted "
            "source's files are the repository's, and a container that could write them could make a path another "
            "bind names lead out of the source after this check; bind them read-only (:ro, or readOnly: true; "
            "compose read_only: true), keep data in a named volume, or set writableBinds: true in a policy file")


def _read_only(item: Any) -> bool:
    if isinstance(item, dict):
        return bool(item.get("readOnly"))
    parts = str(item).split(":")
    return len(parts) == 3 and parts[2] == "ro"


def _volume_name(item: Any) -> str | None:
    """The named Volume a mount entry mounts (None: a bind, tmpfs or anonymous volume)."""
    if isinstance(item, dict):
        source = item.get("source")
        return source if item.get("type") == "volume" and isinstance(source, str) and source else None
    if isinstance(item, str) and ":" in item:
        source = item.split(":")[0]
        return None if source.startswith(("/", ".", "~")) else source
    return None


def _volume_device(opts: Mapping[str, Any]) -> str | None:
    """The host path a local volume's options mount (mount(8): `o: bind` binds `device`; a
    `device` that is a path is a block device or file), or None: tmpfs, NFS (`:/export`),
    CIFS (`//server/share`)."""
    device = opts.get("device")
    if not isinstance(device, str) or not device:
        return None
    binds = {"bind", "rbind"} & {o.strip() for o in str(opts.get("o", "")).split(",")}
    return device if binds or (device.startswith("/") and not device.startswith("//")) else None


def _cap(name: str) -> str:
    upper = name.upper()
    return upper if upper == "ALL" or upper.startswith("CAP_") else "CAP_" + upper


def registry_of(ref: str) -> str:
    """The registry host[:port] of an image reference, as Docker reads it (docker.io by default,
    and for index.docker.io: `imagenames.locate`, the one rule), in lower case."""
    return imagenames.locate(imagenames.cut(ref)[0])[0].lower()


def beneath(base: str, path: str) -> bool:
    """True when `path` resolves beneath the directory `base`, symlinks included.

    openat2(RESOLVE_BENEATH): `..` past `base` and symlinks that lead out of it (absolute ones
    included) fail with EXDEV. A path whose last parts do not exist yet counts as beneath when
    what exists of it is.
    """
    from reconciler.runtime.native import openat2

    base = os.path.normpath(base)
    rel = os.path.relpath(os.path.normpath(path), base)
    if rel == ".." or rel.startswith("../"):
        return False
    try:
        dfd = os.open(base, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        if not openat2.have_openat2():
            real = os.path.realpath(os.path.join(base, rel))
            return os.path.commonpath([real, os.path.realpath(base)]) == os.path.realpath(base)
        fd = openat2.openat2(dfd, rel, os.O_PATH, 0, openat2.RESOLVE_BENEATH | openat2.RESOLVE_NO_MAGICLINKS)
        os.close(fd)
        return True
    except OSError as e:
        return e.errno in (errno.ENOENT, errno.ENOTDIR)
    finally:
        os.close(dfd)
