"""The agent's configuration file (YAML), validated with JSON Schema; errors say file:line.

    root: /var/lib/reconciler          # state DB, engine state, source caches
    run_dir: /run/reconciler           # conmon exit files, netns; the socket's default home
    runtime: native                    # native | docker | swarm | fake
    labels: {role: edge, zone: east}   # this host's labels: only containers whose spec.placement
                                       # they match are converged here (not with runtime: swarm)
    socket: /run/reconciler/reconciler.sock
    drift_interval: 60s                # periodic pass even without a change (drift check)
    metrics: {listen: "127.0.0.1:9464"}    # optional: /metrics on TCP as well
    dashboard: {listen: "127.0.0.1:9466", token_file: /etc/reconciler/dashboard.token}  # optional
    engine_api: {group: docker}        # optional: the Docker Engine API at <run_dir>/docker.sock
    webhook: {listen: "127.0.0.1:9465"}    # optional: push webhooks for git sources; also
                                           # max_body: 1048576, max_connections: 16, request_timeout: 10s
    supervision: {flap_limit: 5, flap_window: 2m}
    history: {keep: 1000, max_age: 30d}    # per owner; identical failed passes share one row
    image_updates: {interval: 5m}      # image update policies: how long a tag listing is reused
    decryption: {provider: sops, age_key_file: /etc/reconciler/age.key}   # optional: SOPS env files
                                       # (also gnupg_home: DIR for files encrypted to a PGP key)
    notify:                            # optional: Apprise URLs or a signed JSON webhook
      - {url_file: /etc/reconciler/chat.url, severity: warning}
      - {webhook: {url: "https://ci.example/hook", secret_file: /etc/reconciler/hook.secret}}
    sources:
      - name: local                    # also the owner (reconciler.owner label) unless `owner`
        directory: /etc/reconciler/manifests.d
      - name: shop
        owner: shop
        git: {url: https://git.example/ops/shop.git, branch: main, path: hosts/web1,
              token_file: /etc/reconciler/shop.token,
              write_back: {branch: main, message: "Update $containers", author: {name: bot, email: bot@example}}}
        interval: 3m                   # git: poll interval; directory: re-list interval
        webhook: {path: /hooks/shop, secret_file: /etc/reconciler/shop.hook}
        suspend: false
        policy: restricted             # host | restricted | a policy file (docs/security.md);
                                       # default: restricted for git, host for directory
        decryption: {provider: sops, age_key_file: /etc/reconciler/shop.age}   # its own key
                                       # instead of the top-level one ({provider: none}: no key)
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from reconciler._dataclass import dataclass, field
from reconciler.agent.notify import KINDS as NOTIFY_KINDS
from reconciler.agent.notify import NotifyTarget, read_secret, target_from_config
from reconciler.errors import TerminalError
from reconciler.spec import policy as policy_mod
from reconciler.spec import sops

__all__ = ["AgentConfig", "ConfigError", "GitSettings", "SourceConfig", "load_config", "parse_config"]

_NAME = r"^[a-z0-9]([a-z0-9_.-]{0,62})$"
_DURATION = {"oneOf": [{"type": "number", "minimum": 0}, {"type": "string", "pattern": r"^([0-9.]+(ms|s|m|h))+$"}]}
_ADDRESS = {"type": "string", "pattern": r"^[^\s:]*:[0-9]{1,5}$"}
_LISTEN = {"type": "object", "additionalProperties": False, "required": ["listen"], "properties": {"listen": _ADDRESS}}
_WEBHOOK = {
    "type": "object", "additionalProperties": False, "required": ["listen"],
    "properties": {
        "listen": _ADDRESS,
        "max_body": {"type": "integer", "minimum": 1024, "maximum": 25 * 1024 * 1024,
                     "description": "largest payload accepted, in bytes (default 1048576: 1 MiB); "
                     "a larger one is answered 413 unread and the next poll picks the push up"},
        "max_connections": {"type": "integer", "minimum": 1, "maximum": 1024,
                            "description": "connections served at once (default 16), a quarter of them "
                            "from one address; one more is answered 503 at once"},
        "request_timeout": {**_DURATION, "description": "time for a whole request, from its connection "
                            "to its last byte (default 10s); a slower one is dropped"},
    },
}

_DECRYPTION: dict[str, Any] = {
    "type": "object", "additionalProperties": False, "required": ["provider"],
    "properties": {
        "provider": {"enum": ["sops", "none"],
                     "description": "sops (with age_key_file and/or gnupg_home), or none: decrypt nothing"},
        "age_key_file": {"type": "string", "minLength": 1,
                         "description": "age identities (age-keygen's file, 0600): files encrypted to their "
                         "recipients open"},
        "gnupg_home": {"type": "string", "minLength": 1,
                       "description": "a GnuPG home holding the secret keys of files encrypted to a PGP key "
                       "(gpg must be installed)"},
    },
}

SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["sources"],
    "properties": {
        "root": {"type": "string", "minLength": 1},
        "run_dir": {"type": "string", "minLength": 1},
        "runtime": {"enum": ["native", "docker", "swarm", "fake"]},
        "labels": {
            "type": "object",
            "description": "this host's labels: the agent converges only the containers whose spec.placement "
            "they match (no placement: every host); one repository then serves a fleet",
            "propertyNames": {"pattern": r"^[A-Za-z0-9]([A-Za-z0-9._/-]{0,62})$"},
            "additionalProperties": {"type": "string"},
        },
        "name_prefix": {"type": "string", "pattern": r"^[a-z][a-z0-9]{1,7}$"},
        "oci_runtime": {"enum": ["runc", "crun"]},
        "socket": {"type": "string", "minLength": 1},
        "drift_interval": _DURATION,
        "parallel": {"type": "integer", "minimum": 1, "maximum": 64,
                     "description": "actions a pass runs at once (default 4); the stops of containers that "
                     "left the manifests take no turn (up to 64 at once, as compose's)"},
        "metrics": _LISTEN,
        "engine_api": {
            "type": "object", "additionalProperties": False,
            "description": "serve the Docker Engine API for the agent's native engine (docker CLI, docker-py)",
            "properties": {"socket": {"type": "string", "minLength": 1},
                           "group": {"type": "string", "minLength": 1}},
        },
        "dashboard": {
            "type": "object", "additionalProperties": False, "required": ["listen", "token_file"],
            "description": "the read-only dashboard on TCP too (it is always on the socket at /)",
            "properties": {"listen": _ADDRESS, "token_file": {"type": "string", "minLength": 1}},
        },
        "webhook": _WEBHOOK,
        "supervision": {
            "type": "object", "additionalProperties": False,
            "properties": {"flap_limit": {"type": "integer", "minimum": 1},
                           "flap_window": _DURATION,
                           "enabled": {"type": "boolean"}},
        },
        "history": {
            "type": "object", "additionalProperties": False,
            "properties": {"keep": {"type": "integer", "minimum": 1},
                           "max_age": {"oneOf": [{"type": "number", "exclusiveMinimum": 0},
                                                 {"type": "string", "pattern": r"^([0-9.]+(ms|s|m|h|d))+$"}]}},
        },
        "image_updates": {
            "type": "object", "additionalProperties": False,
            "description": "image update policies (docs/image-updates.md)",
            "properties": {"interval": {**_DURATION, "description": "a repository's tags are listed at most once "
                                        "per interval (default 5m); a failing registry is asked less and less often"}},
        },
        "decryption": {**_DECRYPTION, "description": "open SOPS-encrypted env files in memory while a "
                       "revision loads, for every source without its own decryption (docs/security.md, "
                       "SOPS-encrypted env files)"},
        "notify": {
            "type": "array",
            "description": "where to send notifications (reconciler/agent/notify.py, docs/operations.md)",
            "items": {
                "type": "object", "additionalProperties": False,
                "oneOf": [{"required": ["url"]}, {"required": ["url_file"]}, {"required": ["webhook"]}],
                "properties": {
                    "url": {"type": "string", "minLength": 3,
                            "description": "an Apprise URL (slack://, ntfy://, mailto://, ...); one with a "
                            "token belongs in url_file"},
                    "url_file": {"type": "string", "minLength": 1},
                    "webhook": {
                        "type": "object", "additionalProperties": False, "required": ["url"],
                        "properties": {"url": {"type": "string", "pattern": "^https?://"},
                                       "secret_file": {"type": "string", "minLength": 1}},
                    },
                    "sources": {"type": "array", "items": {"type": "string", "pattern": _NAME}},
                    "events": {"type": "array", "items": {"enum": sorted(NOTIFY_KINDS)}},
                    "severity": {"enum": ["info", "warning", "error"]},
                },
            },
        },
        "sources": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["name"],
                "oneOf": [{"required": ["directory"]}, {"required": ["git"]}],
                "properties": {
                    "name": {"type": "string", "pattern": _NAME},
                    "owner": {"type": "string", "pattern": _NAME},
                    "directory": {"type": "string", "minLength": 1},
                    "git": {
                        "type": "object", "additionalProperties": False, "required": ["url"],
                        "properties": {
                            "url": {"type": "string", "minLength": 1},
                            "branch": {"type": "string", "minLength": 1},
                            "tag": {"type": "string", "minLength": 1},
                            "commit": {"type": "string", "pattern": "^[0-9a-f]{40}$"},
                            "path": {"type": "string"},
                            "shallow": {"type": "boolean"},
                            "ssh_key_file": {"type": "string"},
                            "known_hosts_file": {"type": "string"},
                            "token_file": {"type": "string"},
                            "token_username": {"type": "string"},
                            "write_back": {
                                "type": "object", "additionalProperties": False,
                                "description": "commit the image tags update policies chose into the manifests "
                                "(lines marked # {\"$imagepolicy\": \"<container>\"}) and push (docs/image-updates.md)",
                                "properties": {
                                    "branch": {"type": "string", "minLength": 1,
                                               "description": "pushed to (default: the source's branch)"},
                                    "message": {"type": "string", "minLength": 1,
                                                "description": "commit message template: $source, $updates, $containers"},
                                    "author": {
                                        "type": "object", "additionalProperties": False,
                                        "description": "the commits' author and committer",
                                        "properties": {"name": {"type": "string", "minLength": 1,
                                                                "description": "default reconciler"},
                                                       "email": {"type": "string", "minLength": 1,
                                                                 "description": "default reconciler@localhost"}},
                                    },
                                },
                            },
                        },
                    },
                    "interval": _DURATION,
                    "debounce": _DURATION,
                    "suspend": {"type": "boolean"},
                    "allow_empty": {"type": "boolean"},
                    "policy": {"type": "string", "minLength": 1,
                               "description": "host, restricted or a policy file's path (docs/security.md); "
                               "default: restricted for git sources, host for directory sources"},
                    "decryption": {**_DECRYPTION, "description": "this source's own key for SOPS-encrypted "
                                   "env files, instead of the top-level decryption (provider: none: no key)"},
                    "webhook": {
                        "type": "object", "additionalProperties": False, "required": ["path", "secret_file"],
                        "properties": {"path": {"type": "string", "pattern": "^/"},
                                       "secret_file": {"type": "string"}},
                    },
                },
            },
        },
    },
}


class ConfigError(TerminalError):
    """The agent's configuration is invalid; the message lists file:line problems."""


@dataclass(frozen=True)
class GitSettings:
    """A git source: the repository and the branch, tag or commit followed."""

    url: str
    branch: str | None = None
    tag: str | None = None
    commit: str | None = None
    path: str = ""
    shallow: bool = True
    ssh_key_file: Path | None = None
    known_hosts_file: Path | None = None
    token_file: Path | None = None
    token_username: str = "x-access-token"  # noqa: S105 - a user name, not a secret
    write_back: Any = None                  # sources.writeback.Settings: commit chosen image tags and push


@dataclass(frozen=True)
class SourceConfig:
    """One source of manifests the agent watches: a directory or a git repository."""

    name: str
    owner: str
    directory: Path | None = None
    git: GitSettings | None = None
    interval: float | None = None           # None: the source's default
    debounce: float = 0.2
    suspend: bool = False
    allow_empty: bool = False
    webhook_path: str | None = None
    webhook_secret_file: Path | None = None
    policy: policy_mod.Policy = policy_mod.HOST     # what its manifests may ask (spec/policy.py)
    decryption: sops.Keys | None = None     # its own keys for SOPS files (with own_decryption)
    own_decryption: bool = False            # it has a decryption: entry (provider none included)

    def keys(self, default: sops.Keys | None) -> sops.Keys | None:
        """What opens this source's SOPS files: its own decryption, else the agent's."""
        return self.decryption if self.own_decryption else default

    @property
    def kind(self) -> str:
        return "git" if self.git is not None else "directory"


@dataclass(frozen=True)
class AgentConfig:
    """The agent's configuration: its roots, engine, sources, intervals and servers."""

    root: Path = Path("/var/lib/reconciler")
    run_dir: Path = Path("/run/reconciler")
    runtime: str = "native"
    labels: Mapping[str, str] = field(default_factory=dict)   # this host's (spec.placement selects by them)
    name_prefix: str = "rcl"
    oci_runtime: str = "runc"
    socket: Path = Path("/run/reconciler/reconciler.sock")
    drift_interval: float = 60.0
    parallel: int = 4
    metrics_listen: tuple[str, int] | None = None
    webhook_listen: tuple[str, int] | None = None
    webhook_max_body: int = 1 << 20             # sources/webhook.py: MAX_BODY, MAX_CONNECTIONS, REQUEST_TIMEOUT
    webhook_max_connections: int = 16
    webhook_request_timeout: float = 10.0
    supervise: bool = True
    flap_limit: int = 5
    flap_window: float = 120.0
    history_keep: int = 1000                # passes kept per owner
    history_max_age: float = 30 * 86400.0   # seconds a pass is kept
    notify: tuple[NotifyTarget, ...] = ()
    image_update_interval: float = 300.0    # seconds a repository's tag listing is reused (agent/updates.py)
    decryption: sops.Keys | None = None     # opens SOPS-encrypted env files (spec.load's `decryption`)
    dashboard: tuple[str, int, bytes] | None = field(default=None, repr=False)   # host, port, token
    engine_api: tuple[Path, int | None] | None = None    # socket, group id
    sources: tuple[SourceConfig, ...] = field(default_factory=tuple)
    path: Path | None = None                # the file it was read from (SIGHUP re-reads it)


def _duration(value: Any) -> float:
    from reconciler.spec import units

    return units.parse_duration(value)


def _listen(value: Mapping[str, Any] | None) -> tuple[str, int] | None:
    if not value:
        return None
    host, _, port = str(value["listen"]).rpartition(":")
    return host or "127.0.0.1", int(port)


def _webhook_limits(value: Mapping[str, Any]) -> dict[str, Any]:
    """The webhook listener's limits the config names (the rest keep AgentConfig's defaults)."""
    out: dict[str, Any] = {}
    if "max_body" in value:
        out["webhook_max_body"] = int(value["max_body"])
    if "max_connections" in value:
        out["webhook_max_connections"] = int(value["max_connections"])
    if "request_timeout" in value:
        out["webhook_request_timeout"] = _duration(value["request_timeout"])
        if out["webhook_request_timeout"] <= 0:
            raise ValueError("request_timeout must be more than 0s (like 10s)")
    return out


def _lines(text: str) -> dict[tuple[str | int, ...], int]:
    """1-based line of each node path of the YAML document (for file:line messages)."""
    import yaml

    out: dict[tuple[str | int, ...], int] = {}

    def walk(node: Any, path: tuple[str | int, ...]) -> None:
        out[path] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                out[(*path, str(k.value))] = k.start_mark.line + 1
                walk(v, (*path, str(k.value)))
        elif isinstance(node, yaml.SequenceNode):
            for i, v in enumerate(node.value):
                walk(v, (*path, i))

    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return out
    if node is not None:
        walk(node, ())
    return out


class _Problems:
    """The problems found in one agent config, each as `file:line: path: message`."""

    def __init__(self, where: str, text: str) -> None:
        self.where, self.lines, self.items = where, _lines(text), list[str]()

    def add(self, path: tuple[str | int, ...], message: str, *, dotted: str | None = None) -> None:
        """One problem at `path` (its line, or the nearest enclosing node's)."""
        line = next((self.lines[path[:i]] for i in range(len(path), -1, -1) if path[:i] in self.lines), 1)
        self.items.append(f"{self.where}:{line}: {dotted or '.'.join(map(str, path)) or '(top)'}: {message}")

    def __bool__(self) -> bool:
        return bool(self.items)


def _load_yaml(text: str, where: str, overrides: Mapping[str, Any] | None) -> dict[str, Any]:
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at_line = f":{mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{where}{at_line}: not valid YAML: {getattr(e, 'problem', None) or e}",
                          hint="fix the agent config and reload (SIGHUP) or restart") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where}:1: the agent config must be a mapping")
    return {**data, **{k: v for k, v in (overrides or {}).items() if v is not None}}


@functools.cache
def _fast_validator() -> Any:
    """jsonschema-rs decides validity, as it does for manifests (spec/schemas.py)."""
    from reconciler.spec import schemas

    return schemas.compiled(SCHEMA)


def _valid(data: Mapping[str, Any]) -> bool:
    from reconciler.spec import schemas

    return schemas.vouches(_fast_validator(), data)


def _check_schema(data: Mapping[str, Any], problems: _Problems, *, aside: bool = False) -> None:
    """The schema's problems, worded by jsonschema, which a valid config never loads (the
    agent at rest holds 2 MiB less, #21). With `aside` (the agent's own config) a helper process
    decides first (spec/validity.py `ask_aside`): the agent maps no validator for a valid config."""
    if aside:
        from reconciler.spec import validity

        if validity.plain(data) and validity.ask_aside({"agent": SCHEMA}, [("agent", data)]) == [True]:
            return
    if _valid(data):
        return
    import jsonschema

    for err in sorted(jsonschema.Draft202012Validator(SCHEMA).iter_errors(data), key=lambda e: list(map(str, e.path))):
        path = tuple(err.path)
        msg = err.message
        if err.validator == "oneOf" and path and path[0] == "sources":
            msg = "a source needs exactly one of directory or git"
        problems.add(path, msg)


def _sources(data: Mapping[str, Any], problems: _Problems) -> list[SourceConfig]:
    """The sources, each name and owner once (two sources of one owner would prune each other's)."""
    sources: list[SourceConfig] = []
    names: set[str] = set()
    owners: set[str] = set()
    for i, s in enumerate(data.get("sources") or []):
        if not isinstance(s, dict) or problems:
            continue
        owner = str(s.get("owner", s["name"]))
        if s["name"] in names:
            problems.add(("sources", i), f"two sources are named {s['name']!r}", dotted=f"sources.{i}.name")
        if owner in owners:
            problems.add(("sources", i), f"owner {owner!r} is used by two sources (they would prune each "
                         "other's objects)", dotted=f"sources.{i}.owner")
        names.add(s["name"])
        owners.add(owner)
        try:
            sources.append(_source(s, owner))
        except ValueError as e:
            problems.add(("sources", i), str(e), dotted=f"sources.{i}")
    return sources


def _notify(data: Mapping[str, Any], problems: _Problems) -> list[NotifyTarget]:
    notify: list[NotifyTarget] = []
    for i, n in enumerate(data.get("notify") or []):
        if problems:
            break
        try:
            notify.append(target_from_config(n))
        except ValueError as e:
            problems.add(("notify", i), str(e), dotted=f"notify.{i}")
    return notify


def _dashboard(data: Mapping[str, Any], problems: _Problems) -> tuple[str, int, bytes] | None:
    if not data.get("dashboard") or problems:
        return None
    try:
        token = read_secret(data["dashboard"]["token_file"], "dashboard token_file")
    except ValueError as e:
        problems.add(("dashboard",), str(e), dotted="dashboard")
        return None
    listen = _listen(data["dashboard"])
    assert listen is not None
    return (*listen, token.encode())


def _engine_api_group(data: Mapping[str, Any], problems: _Problems) -> int | None:
    """The Engine API socket's group id: only the native runtime serves one."""
    cfg = data.get("engine_api")
    if cfg is None:
        return None
    gid = None
    if cfg.get("group") and not problems:
        import grp

        try:
            gid = grp.getgrnam(cfg["group"]).gr_gid
        except KeyError:
            problems.add(("engine_api",), f"no group {cfg['group']!r} on this host", dotted="engine_api.group")
    if data.get("runtime", "native") != "native":
        problems.add(("engine_api",), "only the native runtime serves the Engine API (docker and podman "
                     "serve their own)")
    return gid


def _guarded(problems: _Problems, key: str, parse: Any, value: Any) -> Any:
    """parse(value) when the section is given and nothing failed before; a ValueError is a problem."""
    if not value or problems:
        return None
    try:
        return parse(value)
    except ValueError as e:
        problems.add((key,), str(e))
        return None


def parse_config(text: str, *, where: str = "<config>", overrides: Mapping[str, Any] | None = None,
                 aside: bool = False) -> AgentConfig:
    """Validate and build; `overrides` (from command-line flags) replace top-level keys. Every
    problem is collected (file:line: path: message) before one ConfigError names them all."""
    from reconciler.runtime.native.config import locations

    data = _load_yaml(text, where, overrides)
    problems = _Problems(where, text)
    _check_schema(data, problems, aside=aside)
    sources = _sources(data, problems)
    notify = _notify(data, problems)
    dashboard = _dashboard(data, problems)
    gid = _engine_api_group(data, problems)
    if data.get("labels") and data.get("runtime") == "swarm":
        problems.add(("labels",), "a Swarm manager places services by its nodes' labels (docker node update "
                     "--label-add KEY=VALUE NODE); drop labels here")
    decryption = _guarded(problems, "decryption", lambda d: _decryption(d, "decryption"), data.get("decryption"))
    hook_limits: dict[str, Any] = _guarded(problems, "webhook", _webhook_limits, data.get("webhook")) or {}
    if problems:
        raise ConfigError(f"{len(problems.items)} problem(s) in the agent config:\n" + "\n".join(problems.items),
                          hint="fix the agent config; `reconcile agent --config FILE --check` validates it")
    sup = data.get("supervision") or {}
    history = data.get("history") or {}
    # not in the config: the environment's, as every other command takes them (RECONCILER_ROOT,
    # RECONCILER_RUN_DIR, RECONCILER_PREFIX), else what the root recorded, else names of the root's
    # own (the defaults for the default root)
    root = Path(data.get("root") or os.environ.get("RECONCILER_ROOT") or "/var/lib/reconciler")
    run_dir, name_prefix = locations(root, data.get("run_dir") or os.environ.get("RECONCILER_RUN_DIR"),
                                     data.get("name_prefix") or os.environ.get("RECONCILER_PREFIX"))
    api = data.get("engine_api")
    return AgentConfig(
        root=root, run_dir=run_dir, runtime=data.get("runtime", "native"),
        labels=dict(sorted((data.get("labels") or {}).items())),
        name_prefix=name_prefix, oci_runtime=data.get("oci_runtime", "runc"),
        socket=Path(data.get("socket", run_dir / "reconciler.sock")),
        drift_interval=_duration(data.get("drift_interval", 60)), parallel=int(data.get("parallel", 4)),
        metrics_listen=_listen(data.get("metrics")), webhook_listen=_listen(data.get("webhook")),
        **hook_limits,
        supervise=bool(sup.get("enabled", True)), flap_limit=int(sup.get("flap_limit", 5)),
        flap_window=_duration(sup.get("flap_window", 120)),
        history_keep=int(history.get("keep", 1000)), history_max_age=_days(history.get("max_age", "30d")),
        notify=tuple(notify), dashboard=dashboard, sources=tuple(sources), decryption=decryption,
        image_update_interval=_duration((data.get("image_updates") or {}).get("interval", 300)),
        engine_api=None if api is None else (Path(api.get("socket") or run_dir / "docker.sock"), gid),
    )


def _decryption(dec: Mapping[str, Any], at: str) -> sops.Keys | None:
    """The keys a `decryption:` entry names (None for provider none); ValueError says what is wrong."""
    if dec["provider"] == "none":
        return None
    if not dec.get("age_key_file") and not dec.get("gnupg_home"):
        raise ValueError("provider sops needs age_key_file (or gnupg_home)")
    what = f"{at}.age_key_file {dec['age_key_file']}" if dec.get("age_key_file") else f"{at}.gnupg_home"
    try:
        return sops.load_keys(dec.get("age_key_file"), gnupg_home=dec.get("gnupg_home"), where=what)
    except sops.KeyConfigError as e:
        raise ValueError(e.message) from None


def _days(value: Any) -> float:
    """A duration that may also be written in days ("30d", "1d12h")."""
    if isinstance(value, str) and "d" in value:
        days, _, rest = value.partition("d")
        return float(days) * 86400.0 + (_duration(rest) if rest else 0.0)
    return _duration(value)


def _source(s: Mapping[str, Any], owner: str) -> SourceConfig:
    git = None
    if "git" in s:
        g = s["git"]
        if sum(k in g for k in ("branch", "tag", "commit")) > 1:
            raise ValueError("git takes one of branch, tag or commit")
        if "token_file" in g and "ssh_key_file" in g:
            raise ValueError("git takes an ssh_key_file or a token_file, not both")
        from reconciler.sources import git as gitsrc

        refused = gitsrc.url_credentials(g["url"])
        if refused is not None:
            raise ValueError(f"git.url: {refused}")
        git = GitSettings(
            write_back=_write_back(g),
            url=g["url"], branch=g.get("branch"), tag=g.get("tag"), commit=g.get("commit"),
            path=g.get("path", ""), shallow=g.get("shallow", True),
            ssh_key_file=Path(g["ssh_key_file"]) if "ssh_key_file" in g else None,
            known_hosts_file=Path(g["known_hosts_file"]) if "known_hosts_file" in g else None,
            token_file=Path(g["token_file"]) if "token_file" in g else None,
            token_username=g.get("token_username", "x-access-token"),
        )
    hook = s.get("webhook")
    if hook and git is None:
        raise ValueError("webhook is for git sources (a directory is watched with inotify)")
    # a directory on the host is written by root already; a repository is written by whoever
    # may commit to it (and triggers passes through the webhook): restricted unless said otherwise
    try:
        policy = policy_mod.load_policy(str(s.get("policy", "restricted" if git is not None else "host")))
    except policy_mod.PolicyError as e:
        raise ValueError(f"policy: {e}") from None
    decryption = _decryption(s["decryption"], "decryption") if "decryption" in s else None
    return SourceConfig(
        decryption=decryption, own_decryption="decryption" in s,
        name=s["name"], owner=owner,
        directory=Path(os.path.abspath(s["directory"])) if "directory" in s else None, git=git,
        interval=_duration(s["interval"]) if "interval" in s else None,
        debounce=_duration(s.get("debounce", 0.2)),
        suspend=bool(s.get("suspend", False)), allow_empty=bool(s.get("allow_empty", False)),
        webhook_path=hook["path"] if hook else None,
        webhook_secret_file=Path(hook["secret_file"]) if hook else None, policy=policy,
    )


def _write_back(g: Mapping[str, Any]) -> Any:
    """A git source's `write_back:` as writeback.Settings, or None; ValueError says what is wrong."""
    if "write_back" not in g:
        return None
    import string

    from reconciler.sources import writeback

    w = g["write_back"]
    branch = w.get("branch") or g.get("branch")
    if not branch:
        raise ValueError("git.write_back.branch: name the branch to push to (the source follows a tag, a commit "
                         "or the remote HEAD)")
    template = w.get("message", writeback.DEFAULT_MESSAGE)
    t = string.Template(template)
    unknown = sorted(set(t.get_identifiers()) - set(writeback.MESSAGE_FIELDS))
    if not t.is_valid() or unknown:
        fields = ", ".join(f"${f}" for f in writeback.MESSAGE_FIELDS)
        what = f"unknown field {', '.join('$' + u for u in unknown)}" if unknown else "a $ that names nothing (write $$ for a dollar sign)"
        raise ValueError(f"git.write_back.message: {what}; the template may use {fields}")
    author = w.get("author") or {}
    return writeback.Settings(branch=branch, message=template, author_name=author.get("name", "reconciler"),
                              author_email=author.get("email", "reconciler@localhost"))


def load_config(path: str | os.PathLike[str], *, overrides: Mapping[str, Any] | None = None,
                aside: bool = False) -> AgentConfig:
    """The agent config at `path`; `aside`: its schema checked in a helper process (the agent
    itself: see `_check_schema`)."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as e:
        raise ConfigError(f"cannot read the agent config {p}: {e.strerror}",
                          hint="pass --config FILE (see contrib/agent.yaml)") from None
    cfg = parse_config(text, where=str(p), overrides=overrides, aside=aside)
    from reconciler._dataclass import dataclasses

    return dataclasses.replace(cfg, path=p)


