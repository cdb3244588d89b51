"""Compose files as manifests: a compose project read the way `docker compose` reads it.

    files = compose.find("/srv/shop")       # compose.yaml (+ compose.override.yaml), or []
    project = compose.load("/srv/shop", compose.Options(), problems, warnings, reader)

`load` follows compose-go's loader (github.com/compose-spec/compose-go), step for step:

1. Files: `compose.yaml`, `compose.yml`, `docker-compose.yml` or `docker-compose.yaml` in the
   directory (the first found) and its `compose.override.y[a]ml` / `docker-compose.override.y[a]ml`,
   or the files COMPOSE_FILE names (the shell's, else `.env`'s; relative to the directory, split
   at COMPOSE_PATH_SEPARATOR), or the files named explicitly (`-f`), merged in order. Relative
   paths in all of them start at the project directory: the directory loaded, or that of the
   first file named with `-f`.
2. Environment: the shell's (the process environment) over the project directory's `.env`
   (compose's dotenv format, `interpolation.parse_dotenv`). `COMPOSE_PROJECT_NAME`,
   `COMPOSE_PROFILES`, `COMPOSE_FILE`, `COMPOSE_PATH_SEPARATOR` and `COMPOSE_DISABLE_ENV_FILE`
   are read from it.
3. Project name: `-p`, else `COMPOSE_PROJECT_NAME`, else the files' `name:` (the last one set,
   interpolated), else the directory's name; lower-cased, keeping only `a-z 0-9 _ -`, leading
   `_`/`-` dropped (compose's normalisation). `-p` and the variable must already be normal.
4. Per YAML document of each file: interpolation of every string (`interpolation.substitute`),
   compose's typecasts (`"true"` for a boolean field, `"3"` for an integer one), validation with
   the Compose Specification's own JSON Schema (`schemas/compose-spec.json`: a key compose does
   not define is an error, with a did-you-mean; `x-` keys anywhere are extensions), the canonical
   (long) form of every short syntax (ports, volumes, environment, depends_on, ...), `extends`
   (same file or another one, whose relative paths are moved to the project directory), then a
   merge into what came before with compose's rules (mappings merge, `command`/`entrypoint`/
   `healthcheck.test` are replaced, lists append and de-duplicate by their key: ports, volumes
   by target, env files by path, ...).
5. The implicit `default` network for services that name none, profiles (`--profile` or
   `COMPOSE_PROFILES`: a service with `profiles:` runs only when one of them is active), and
   consistency: references to undefined services, networks and volumes.
6. Translation into native manifest documents: `compose_native.py`.

YAML is read as compose reads it (YAML 1.2): `no`, `on`, `off` and `22:22` are strings, only
`true`/`false` are booleans. Every problem is located at the file, line and column of the key
or value it concerns, through merges and `extends` (`located.py`); warnings (a variable that is
not set, a key that has no effect here) are located the same way.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import posixpath
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from importlib import resources
from typing import Any

from reconciler._dataclass import dataclass, field
from reconciler.spec import (
    errors,
    hashing,
    interpolation,
    located,
    reading,
    schemas,
    sops,
    yamltree,
)
from reconciler.spec.composefiles import (
    COMPOSE_FILES,
    OVERRIDE_FILES,
    Options,
    explicit_files,
    find,
    named_files,
    project_directory,
)
from reconciler.spec.located import Map, Seq
from reconciler.spec.models import Origin

__all__ = ["COMPOSE_FILES", "OVERRIDE_FILES", "Model", "Options", "Reader", "find", "load", "normalize_name"]

Path_ = tuple[str | int, ...]


@dataclass
class Model:
    """A loaded compose project: the merged, canonical model and what it was read from."""

    name: str                                   # the normalised project name
    directory: str                              # where relative paths start
    files: list[str]                            # compose files read
    data: Map                                   # the merged model (services, networks, volumes)
    services: list[str]                         # the services of the active profiles, sorted
    env: dict[str, str]                         # the interpolation environment (shell over .env)
    profiles: tuple[str, ...] = ()              # the active profiles (--profile, else COMPOSE_PROFILES)


# -- problems and files ------------------------------------------------------------------------


@dataclass
class Reader:
    """Problems, warnings and file reads of one load, shared by the compose modules.

    `read_file(path)` is the loader's own cached, size-capped reader (its files count in the
    revision); `refuse(path)` says why a source's policy refuses a file outside it (or None).
    """

    problems: list[errors.Problem]
    warnings: list[errors.Problem]
    read_file: Callable[[str], bytes | None]
    refuse: Callable[[str], str | None] = lambda _path: None
    limits: reading.Limits = field(default_factory=reading.Limits)
    file: str = "compose.yaml"      # what a problem of no particular place names (the first compose file)
    # a SOPS-encrypted env file decrypted in memory (building.Builder.decrypted), or why it cannot be
    open_sops: Callable[[str, bytes], Any] | None = None
    # path -> keyed digest of the values (sops.Decrypted.digest) of each env file decrypted so
    # far: their values are secret
    decrypted: dict[str, str] = field(default_factory=dict)
    # the documents known to satisfy their schema (spec.load's `known_valid`, validity.KnownValid):
    # a compose document is remembered as a manifest is, and one made `aside` asks a helper
    known_valid: Any = None
    # where a reported problem took a value out (`_Loader.prepare`): what refers to it is not
    # reported again (`was_dropped`), the problem there is the one to fix
    dropped: list[Path_] = field(default_factory=list)

    def error(self, at: Origin | None, where: str, message: str) -> None:
        problem = _problem(at or Origin(self.file, 0, 0), where, message)
        if problem not in self.problems:        # a base two services extend fails for both
            self.problems.append(problem)

    def was_dropped(self, path: Path_) -> bool:
        """Whether the value at `path`, or one holding it, was taken out for a problem reported already."""
        return any(path[: len(d)] == d for d in self.dropped)

    def warn(self, at: Origin | None, where: str, message: str) -> None:
        problem = _problem(at or Origin(self.file, 0, 0), where, message)
        if problem not in self.warnings:
            self.warnings.append(problem)

    def read(self, path: str, at: Origin | None, where: str, what: str, *, dotenv: bool = False) -> bytes | None:
        """A file the project names (an env file, an extended compose file); None with a problem
        when the policy refuses it or it cannot be read. A `dotenv` file that sops encrypted is
        its decrypted text (held in memory only)."""
        refused = self.refuse(path)
        if refused:
            self.error(at, where, f"{what} {refused}")
            return None
        data = self.read_file(path) if os.path.isfile(path) else None
        if data is None:
            self.error(at, where, f"{what} {path} not found, unreadable or larger than "
                       f"{self.limits.referenced_file_bytes} bytes")
        elif dotenv and sops.is_encrypted(path, data):
            self.decrypted[path] = hashing.file_digest(data)      # until it decrypts: a problem then
            return self.decrypt(path, data, at, where, what)
        return data

    def decrypt(self, path: str, data: bytes, at: Origin | None, where: str, what: str) -> bytes | None:
        plain = self.open_sops(path, data) if self.open_sops is not None else \
            f"{os.path.basename(path)} is SOPS-encrypted and this command does not decrypt"
        if isinstance(plain, str):
            self.error(at, where, f"{what} {path}: {plain}")
            return None
        if plain.format != "dotenv":
            self.error(at, where, f"{what} {path} is a SOPS {plain.format} file; env files are dotenv files "
                       "(name the encrypted file *.env)")
            return None
        self.decrypted[path] = plain.digest
        data_: bytes = plain.data
        return data_


def _problem(at: Origin, where: str, message: str) -> errors.Problem:
    return errors.Problem(file=at.file, line=at.line, column=at.column, kind="", name="", field=where,
                          message=message)


def fmt(path: Path_) -> str:
    """`services.web.ports[0]`, as compose names a place in the model."""
    return reading._fmt(path)


# -- YAML 1.2 -----------------------------------------------------------------------------------


class _Yaml12Loader(yamltree.BaseLoader):  # type: ignore[misc]
    """The safe loader with YAML 1.2 core-schema scalars, as compose's yaml.v3 reads them."""

    yaml_implicit_resolvers: dict[Any, Any] = {}


for _tag, _regexp, _first in (
    ("tag:yaml.org,2002:bool", r"^(?:true|True|TRUE|false|False|FALSE)$", "tTfF"),
    ("tag:yaml.org,2002:int", r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$", "-+0123456789"),
    ("tag:yaml.org,2002:float",
     r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
     "-+.0123456789"),
    ("tag:yaml.org,2002:null", r"^(?:~|null|Null|NULL|)$", ["~", "n", "N", ""]),
    ("tag:yaml.org,2002:merge", r"^(?:<<)$", "<"),
):
    _Yaml12Loader.add_implicit_resolver(_tag, re.compile(_regexp), list(_first))


# -- finding the files and the environment ----------------------------------------------------


def normalize_name(name: str) -> str:
    """Compose's project-name normalisation: lower case, only a-z 0-9 _ -, no leading _ or -."""
    return "".join(re.findall(r"[a-z0-9_-]", name.lower())).lstrip("_-")


def _true(value: str) -> bool:
    return value.strip().lower() in ("1", "t", "true")


def _environment(directory: str, environ: Mapping[str, str], rd: Reader) -> dict[str, str]:
    """The shell environment over the project directory's `.env`."""
    env = dict(environ)
    dotenv = os.path.join(directory, ".env")
    if _true(env.get("COMPOSE_DISABLE_ENV_FILE", "")) or not os.path.lexists(dotenv) or os.path.isdir(dotenv):
        return env
    for key, value in _dotenv(dotenv, env.get, rd, Origin(dotenv, 1, 1), "", "the .env file").items():
        env.setdefault(key, value)      # the shell wins
    return env


def _compose_file(directory: str, environ: Mapping[str, str], env: Mapping[str, str], rd: Reader) -> list[str] | None:
    """The files COMPOSE_FILE names (compose-go's WithConfigFileEnv: the shell's, else the
    `.env`'s; relative to the project directory, split at COMPOSE_PATH_SEPARATOR), checked by
    `_usable`; None when it is not set. A problem is at the `.env` line that sets it (or the
    directory, for the shell's)."""
    value = env.get("COMPOSE_FILE")
    if not value:
        return None
    dotenv = os.path.join(directory, ".env")
    at = Origin(directory, 0, 0)
    where = "COMPOSE_FILE (from the environment)"
    if "COMPOSE_FILE" not in environ:
        where, at = "COMPOSE_FILE", Origin(dotenv, _dotenv_line(rd, dotenv, "COMPOSE_FILE"), 1)
    named = named_files(directory, value, env.get("COMPOSE_PATH_SEPARATOR", ""))
    return _usable([(p, os.path.relpath(p, directory)) for p in named], directory, at, where,
                   "unset COMPOSE_FILE to use compose.yaml and its override file", rd)


def _usable(named: Sequence[tuple[str, str]], directory: str, at: Origin, where: str, instead: str,
            rd: Reader) -> list[str]:
    """The compose files a setting names (COMPOSE_FILE, or `-f`), as (absolute path, as shown),
    if all of them can be read: each one that does not exist, is stdin or that the source's
    policy refuses (one outside the project directory, under a restricted policy) is a problem
    at `at`, and then [] (compose stops at a file that does not exist). The one rule for the
    files named explicitly, whoever names them."""
    out = []
    for path, shown in named:
        refused = None if path == "-" or _beneath(directory, path) else rd.refuse(path)
        if refused:
            rd.error(at, "", f"{where} names {shown}: compose file {refused}")
        elif os.path.basename(path) == "-":
            rd.error(at, "", f"{where} names -: a compose project is not read from stdin; name its files")
        elif not os.path.isfile(path):
            rd.error(at, "", f"{where} names {shown}: not found, or not a file; fix the name, or {instead}")
        else:
            out.append(path)
    return out if len(out) == len(named) else []


def _dotenv_line(rd: Reader, path: str, name: str) -> int:
    """The line of the `.env` file `path` that sets `name` (the last one), 1 when not found."""
    data = rd.read_file(path) or b""
    line = 1
    for n, text in enumerate(data.decode("utf-8", "replace").splitlines(), 1):
        if re.match(rf"\s*(export\s+)?{name}\s*=", text):
            line = n
    return line


def _beneath(root: str, path: str) -> bool:
    return os.path.commonpath([root, os.path.abspath(path)]) == root


def _dotenv(path: str, lookup: interpolation.Lookup, rd: Reader, at: Origin, where: str, what: str) -> dict[str, str]:
    """The variables of a dotenv file that interpolates the project (`.env`, an include's env
    files); {} with a problem when it cannot be read or parsed."""
    content = rd.read(path, at, where, what, dotenv=True)
    if content is None:
        return {}
    try:
        return interpolation.parse_dotenv(content.decode("utf-8"), lookup)
    except UnicodeDecodeError:
        rd.error(Origin(path, 1, 1), "", f"not UTF-8 text; save {what} as UTF-8")
    except interpolation.DotenvError as exc:
        rd.error(Origin(path, exc.line, 1), "", str(exc).split(": ", 1)[1])
    return {}


# -- reading a file -----------------------------------------------------------------------------


def _read_yaml(path: str, root: str | None, rd: Reader) -> list[Map]:
    """The YAML documents of a compose file as located mappings."""
    problems = rd.problems
    try:
        raw = reading.read_regular(path, root, rd.limits.file_bytes + 1)
    except reading.Refused as exc:
        rd.error(Origin(path, 0, 0), "", str(exc))
        return []
    except OSError as exc:
        rd.error(Origin(path, 0, 0), "", f"cannot read: {exc.strerror or exc}")
        return []
    if len(raw) > rd.limits.file_bytes:
        rd.error(Origin(path, 1, 1), "", f"file larger than {rd.limits.file_bytes} bytes")
        return []
    text = reading.decode(path, raw, problems)
    if text is None:
        return []
    source = reading.SourceFile(path=path, base=os.path.dirname(os.path.abspath(path)), text=text)
    out: list[Map] = []
    for doc in reading.parse(source, problems, rd.limits, loader=_Yaml12Loader):
        problems.extend(doc.problems)
        data = located.build(doc)
        if not isinstance(data, Map):
            rd.error(Origin(path, doc.line, doc.column), "",
                     f"a compose file must be a mapping (services:, networks:, volumes:), not {schemas._typename(doc.data)}")
            continue
        out.append(data)
    return out


# -- interpolation and typecasts -----------------------------------------------------------------

def _to_bool(value: str) -> bool:
    low = value.lower()
    if low in ("true", "y", "yes", "on"):
        return True
    if low in ("false", "n", "no", "off"):
        return False
    raise ValueError(f"invalid boolean: {value}")


def _to_int(value: str) -> int:
    if not re.fullmatch(r"[-+]?[0-9]+", value):
        raise ValueError(f"invalid integer: {value}")
    return int(value)


def _to_float(value: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise ValueError(f"invalid number: {value}") from None


_S = ("services", "*")
# compose-go loader/interpolate.go: fields whose interpolated string becomes a number or boolean
_CASTS: dict[Path_, Callable[[str], Any]] = {
    (*_S, "cpu_count"): _to_int, (*_S, "cpu_percent"): _to_float, (*_S, "cpu_period"): _to_int,
    (*_S, "cpu_quota"): _to_int, (*_S, "cpu_rt_period"): _to_int, (*_S, "cpu_rt_runtime"): _to_int,
    (*_S, "cpus"): _to_float, (*_S, "cpu_shares"): _to_int, (*_S, "init"): _to_bool,
    (*_S, "depends_on", "*", "required"): _to_bool, (*_S, "depends_on", "*", "restart"): _to_bool,
    (*_S, "deploy", "replicas"): _to_int, (*_S, "deploy", "update_config", "parallelism"): _to_int,
    (*_S, "deploy", "update_config", "max_failure_ratio"): _to_float,
    (*_S, "deploy", "rollback_config", "parallelism"): _to_int,
    (*_S, "deploy", "rollback_config", "max_failure_ratio"): _to_float,
    (*_S, "deploy", "restart_policy", "max_attempts"): _to_int,
    (*_S, "deploy", "placement", "max_replicas_per_node"): _to_int,
    (*_S, "healthcheck", "retries"): _to_int, (*_S, "healthcheck", "disable"): _to_bool,
    (*_S, "oom_kill_disable"): _to_bool, (*_S, "oom_score_adj"): _to_int, (*_S, "pids_limit"): _to_int,
    (*_S, "ports", "[]", "target"): _to_int, (*_S, "privileged"): _to_bool, (*_S, "read_only"): _to_bool,
    (*_S, "scale"): _to_int, (*_S, "stdin_open"): _to_bool, (*_S, "tty"): _to_bool,
    (*_S, "ulimits", "*"): _to_int, (*_S, "ulimits", "*", "hard"): _to_int, (*_S, "ulimits", "*", "soft"): _to_int,
    (*_S, "volumes", "[]", "read_only"): _to_bool, (*_S, "volumes", "[]", "volume", "nocopy"): _to_bool,
    ("networks", "*", "external"): _to_bool, ("networks", "*", "internal"): _to_bool,
    ("networks", "*", "attachable"): _to_bool, ("networks", "*", "enable_ipv4"): _to_bool,
    ("networks", "*", "enable_ipv6"): _to_bool, ("volumes", "*", "external"): _to_bool,
    ("secrets", "*", "external"): _to_bool, ("configs", "*", "external"): _to_bool,
}


def _cast_for(path: Path_) -> Callable[[str], Any] | None:
    for pattern, cast in _CASTS.items():
        if len(pattern) == len(path) and all(
            (p == "*" and isinstance(q, str)) or (p == "[]" and isinstance(q, int)) or p == q
            for p, q in zip(pattern, path, strict=True)
        ):
            return cast
    return None


class _Interpolate:
    def __init__(self, env: Mapping[str, str], rd: Reader) -> None:
        self.env = env
        self.rd = rd
        self.failed: list[Path_] = []       # where interpolation or a typecast failed

    def lookup(self, name: str) -> str | None:
        return self.env.get(name)

    def walk(self, value: Any, path: Path_) -> None:
        """Interpolate every string under `value` in place (compose: values, not keys)."""
        if isinstance(value, Map):
            for key in list(value):
                self.child(value, key, value[key], value.origin(key), (*path, key))
        elif isinstance(value, Seq):
            for i, item in enumerate(value):
                self.child(value, i, item, value.origin(i), (*path, i))

    def child(self, parent: Map | Seq, key: str | int, value: Any, at: Origin, path: Path_) -> None:
        if not isinstance(value, str):
            self.walk(value, path)
            return
        unset: list[str] = []
        try:
            new: Any = interpolation.substitute(value, self.lookup, unset)
        except interpolation.InterpolationError as exc:
            self.rd.error(at, fmt(path), str(exc))
            self.failed.append(path)
            return
        for name in dict.fromkeys(unset):
            self.rd.warn(at, fmt(path), f"the {name!r} variable is not set; using an empty string")
        cast = _cast_for(path)
        if cast is not None:
            try:
                new = cast(new)
            except ValueError as exc:
                self.rd.error(at, fmt(path), f"{exc} (after interpolation of {value!r})")
                self.failed.append(path)
                return
            if cast is _to_bool and value.lower() not in ("true", "false"):
                self.rd.warn(at, fmt(path), f"{value!r} for a boolean is not YAML 1.2; write {str(new).lower()}")
        if isinstance(parent, Map):
            parent[str(key)] = new
        else:
            parent[int(key)] = new


# -- validation -----------------------------------------------------------------------------------


@functools.cache
def _schema_text() -> str:
    return resources.files("reconciler.spec").joinpath("schemas", "compose-spec.json").read_text("utf-8")


@functools.cache
def _schema() -> Any:
    return json.loads(_schema_text())


@functools.cache
def _validator() -> Any:
    """jsonschema: what words a document's problems (its error objects carry the keyword, the
    schema and the path); ~100 ms to import, so a valid document never loads it (`_valid`)."""
    import jsonschema

    return jsonschema.Draft202012Validator(_schema(), format_checker=None)


@functools.cache
def _fast_validator() -> Any:
    """jsonschema-rs decides validity, as for manifests (schemas.py `compiled`)."""
    return schemas.compiled(_schema())


def _valid(doc: Map, rd: Reader) -> bool:
    """Whether `doc` is known to satisfy the Compose Specification's schema without jsonschema
    (False: not known; `_validate` asks jsonschema, which words what fails): known valid before
    (`rd.known_valid`, keyed by the schema's text and the document's canonical JSON, as
    manifests are), checked in a helper process (a KnownValid made `aside`: the agent), or by
    jsonschema-rs here."""
    from reconciler.spec import validity

    known = rd.known_valid
    key = validity.key("compose", doc, _schema_text()) if known is not None else None
    if key is not None and key in known:
        return True
    if key is not None and known.aside:
        ok = validity.ask_aside({"compose": _schema()}, [("compose", doc)]) == [True]
    else:
        ok = schemas.vouches(_fast_validator(), doc)
    if ok and key is not None:
        known.add(key)
    return ok


_NAMED = {"services": "service", "volumes": "volume", "secrets": "secret", "configs": "config", "networks": "network"}


def _validate(doc: Map, rd: Reader, reported: Sequence[Path_] = ()) -> list[Path_]:
    """Report every place `doc` breaks the Compose Specification (but those already `reported`);
    the paths of them all (none: it is valid)."""
    if _valid(doc, rd):
        return []
    issues = list(schemas.explain(_validator().iter_errors(doc)))
    for path, at_key, message in issues:
        if any(path[: len(r)] == r for r in reported):
            continue
        if len(path) == 2 and path[0] in _NAMED and message.startswith("unknown field"):
            message = (f"{path[1]!r} is not a valid {_NAMED[str(path[0])]} name "
                       "(letters, digits, '.', '_' and '-')")
        if message == schemas.REQUIRED and path:    # at the object that lacks it, naming the field
            rd.error(located.where(doc, path[:-1], key=True), fmt(path[:-1]), schemas.required_field(path[-1]))
            continue
        rd.error(located.where(doc, path, key=at_key), fmt(path), message)
    return [path for path, _, _ in issues]


def _drop(doc: Map, path: Path_) -> Path_ | None:
    """Take out the value at `path`, as the manifests' loader does (building.py `_prune`): the
    whole list when the path goes through a list item (so the indices of later messages stay
    true), the mapping that lacks it when the key is missing (a required one); where it was
    taken out, or None when nothing was (the document itself)."""
    keys: list[str] = []
    node: Any = doc
    for part in path:
        if not isinstance(part, str) or not isinstance(node, Map) or part not in node:
            break                   # a list item, or a key that is missing: what holds it goes
        keys.append(part)
        node = node[part]
    if not keys:
        return None
    parent = doc
    for key in keys[:-1]:
        parent = parent[key]
    parent.drop(keys[-1])
    return tuple(keys)


# -- the canonical form -----------------------------------------------------------------------------


def _scalar_text(value: Any) -> str:
    """A YAML scalar as compose turns it into a string (Go's %v: 1.0 -> "1", true -> "true")."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        text = repr(value)
        return text[:-2] if text.endswith(".0") else text
    return str(value)


def _kv(value: Any, at: Origin, *, null: str | None = None) -> Map:
    """`list_or_dict` (environment, labels, build args) as a mapping: `KEY=VALUE` and `KEY: VALUE`
    give the value as text, a bare `KEY` (or `KEY:`) gives `null`."""
    out = Map(at)
    if isinstance(value, Map):
        for key, item in value.items():
            text = null if item is None else _scalar_text(item)
            out.put(key, text, value.origin(key), value.key_origin(key))
    elif isinstance(value, Seq):
        for i, item in enumerate(value):
            key, eq, text = str(item).partition("=")
            out.put(key, text if eq else null, value.origin(i))
    return out


def _seq(value: Any, at: Origin) -> Seq:
    """A string or a list as a list."""
    if isinstance(value, Seq):
        return value
    return Seq(at, [(value, at)]) if value is not None else Seq(at)


class _Canonical:
    """Short syntaxes into long ones, in place (compose-go transform/)."""

    def __init__(self, rd: Reader) -> None:
        self.rd = rd

    def project(self, doc: Map) -> None:
        services = doc.get("services")
        if isinstance(services, Map):
            for name, svc in services.items():
                if isinstance(svc, Map):
                    self.service(svc, ("services", name))
        for kind in ("networks", "volumes", "secrets", "configs"):
            top = doc.get(kind)
            if isinstance(top, Map):
                for key in list(top):
                    if top[key] is None:
                        top.put(key, Map(top.origin(key)), top.origin(key), top.key_origin(key))

    def service(self, svc: Map, path: Path_) -> None:
        for key in list(svc):
            value, at = svc[key], svc.origin(key)
            new = self.field(key, value, at, (*path, key))
            if new is not value:
                svc.put(key, new, at, svc.key_origin(key))

    def field(self, key: str, value: Any, at: Origin, path: Path_) -> Any:
        """The long form of one service key (the value itself when it has no other form)."""
        if key in ("environment", "labels"):
            return _kv(value, at, null="" if key == "labels" else None)
        if key in ("tmpfs", "dns", "dns_search", "dns_opt"):
            return _seq(value, at)
        convert = getattr(self, "f_" + key, None)
        return convert(value, at, path) if convert is not None else value

    def f_build(self, value: Any, at: Origin, path: Path_) -> Any:
        build = Map(at, [("context", value)]) if isinstance(value, str) else value
        if isinstance(build, Map) and "args" in build:
            build.put("args", _kv(build["args"], build.origin("args")), build.origin("args"), build.key_origin("args"))
        return build

    def f_deploy(self, value: Any, at: Origin, path: Path_) -> Any:
        if isinstance(value, Map) and "labels" in value:        # (a list of KEY=VALUE, or a map)
            value.put("labels", _kv(value["labels"], value.origin("labels"), null=""), value.origin("labels"),
                      value.key_origin("labels"))
        return value

    def f_extends(self, value: Any, at: Origin, path: Path_) -> Any:
        return Map(at, [("service", value)]) if isinstance(value, str) else value

    def f_env_file(self, value: Any, at: Origin, path: Path_) -> Seq:
        return self.env_files(_seq(value, at), path)

    def f_expose(self, value: Seq, at: Origin, path: Path_) -> Seq:
        return Seq(at, ((_scalar_text(v), value.origin(i)) for i, v in enumerate(value)))

    def f_networks(self, value: Any, at: Origin, path: Path_) -> Any:
        return self._names(value) if isinstance(value, Seq) else value

    def f_depends_on(self, value: Any, at: Origin, path: Path_) -> Map:
        return self.depends_on(value, at)

    def f_ports(self, value: Seq, at: Origin, path: Path_) -> Seq:
        return self.ports(value, path)

    def f_volumes(self, value: Seq, at: Origin, path: Path_) -> Seq:
        return self.volumes(value, path)

    @staticmethod
    def _names(value: Seq) -> Map:
        out = Map(value.at)
        for i, name in enumerate(value):
            out.put(str(name), None, value.origin(i))
        return out

    def env_files(self, value: Seq, path: Path_) -> Seq:
        out = Seq(value.at)
        for i, item in enumerate(value):
            at = value.origin(i)
            entry = Map(at, [("path", item), ("required", True)]) if isinstance(item, str) else item
            if isinstance(entry.get("required"), str):
                try:
                    entry.put("required", _to_bool(entry["required"]), entry.origin("required"))
                except ValueError as exc:
                    self.rd.error(entry.origin("required"), fmt((*path, i, "required")), str(exc))
            entry.setdefault("required", True)
            out.add(entry, at)
        return out

    def depends_on(self, value: Any, at: Origin) -> Map:
        if isinstance(value, Seq):
            out = Map(at)
            for i, name in enumerate(value):
                out.put(str(name), Map(value.origin(i), [("condition", "service_started"), ("required", True)]),
                        value.origin(i))
            return out
        for name in value:
            dep = value[name]
            if isinstance(dep, Map):
                dep.setdefault("condition", "service_started")
                dep.setdefault("required", True)
        return value  # type: ignore[no-any-return]

    def ports(self, value: Seq, path: Path_) -> Seq:
        out = Seq(value.at)
        for i, item in enumerate(value):
            at = value.origin(i)
            if isinstance(item, Map):
                item.setdefault("protocol", "tcp")      # mode: only as written (ingress: Swarm's routing mesh)
                out.add(item, at)
                continue
            try:
                for port in parse_port(_scalar_text(item)):
                    out.add(Map(at, port.items()), at)
            except ValueError as exc:
                self.rd.error(at, fmt((*path, i)), str(exc))
        return out

    def volumes(self, value: Seq, path: Path_) -> Seq:
        out = Seq(value.at)
        for i, item in enumerate(value):
            at = value.origin(i)
            if isinstance(item, str):
                try:
                    parsed = parse_volume(item)
                except ValueError as exc:
                    self.rd.error(at, fmt((*path, i)), str(exc))
                    continue
                item = Map(at, parsed.items())
                for sub in ("bind", "volume"):
                    if isinstance(item.get(sub), dict):
                        item.put(sub, Map(at, item[sub].items()), at)
            if isinstance(item.get("target"), str) and item["target"]:
                item.put("target", posixpath.normpath(item["target"]), item.origin("target"))
            out.add(item, at)
        return out


_PORT_RANGE = re.compile(r"^([0-9]+)(?:-([0-9]+))?$")


def _port_range(text: str, what: str, spec: str) -> tuple[int, int]:
    m = _PORT_RANGE.match(text)
    if m is None:
        raise ValueError(f"invalid {what} {text!r} in port {spec!r}")
    start = int(m.group(1))
    end = int(m.group(2)) if m.group(2) else start
    if not (0 < start <= 65535 and 0 < end <= 65535) or end < start:
        raise ValueError(f"invalid {what} range {text!r} in port {spec!r}")
    return start, end


def parse_port(spec: str) -> list[dict[str, Any]]:
    """A short port (`[[IP:]HOST:]CONTAINER[/PROTO]`, ranges as `8000-8001`) in its long form,
    one mapping per container port (Docker's nat.ParsePortSpec)."""
    body, _, proto = spec.partition("/")
    proto = (proto or "tcp").lower()
    parts = body.split(":")
    host_ip: str | None = None
    host = ""
    if len(parts) == 2:
        host = parts[0]
    elif len(parts) == 3:
        host_ip, host = parts[0], parts[1]
    elif len(parts) > 3:
        host_ip, host = ":".join(parts[:-2]), parts[-2]
    if host_ip is not None:
        host_ip = host_ip.removeprefix("[").removesuffix("]") or None
    start, end = _port_range(parts[-1], "container port", spec)
    if not host:
        return [{"target": p, "published": None, "host_ip": host_ip, "protocol": proto}
                for p in range(start, end + 1)]
    hstart, hend = _port_range(host, "host port", spec)
    if end != start and hend - hstart != end - start:
        raise ValueError(f"invalid ranges in port {spec!r}: the host and container ranges differ in length")
    if end == start:
        published = str(hstart) if hend == hstart else f"{hstart}-{hend}"
        return [{"target": start, "published": published, "host_ip": host_ip, "protocol": proto}]
    return [{"target": p, "published": str(hstart + p - start), "host_ip": host_ip, "protocol": proto}
            for p in range(start, end + 1)]


_CONSISTENCY = ("cached", "delegated", "consistent")
_PROPAGATIONS = ("rprivate", "private", "rshared", "shared", "rslave", "slave")


def parse_volume(spec: str) -> dict[str, Any]:
    """A short volume (`[SOURCE:]TARGET[:OPTIONS]`) in its long form (compose-go format/volume.go);
    a source starting with `.`, `/` or `~` is a bind mount."""
    if not spec:
        raise ValueError("invalid empty volume spec")
    parts = spec.split(":")
    if any(not p for p in parts):
        raise ValueError(f"invalid volume {spec!r}: empty section between colons")
    if len(parts) > 3:
        raise ValueError(f"invalid volume {spec!r}: too many colons")
    out: dict[str, Any] = {}
    if len(parts) == 1:
        out.update(type="volume", target=parts[0])
        return out
    source, target = parts[0], parts[1]
    out.update(source=source, target=target)
    bind = source.startswith((".", "/", "~"))
    out["type"] = "bind" if bind else "volume"
    if bind:
        out["bind"] = {"create_host_path": True}
    for option in (parts[2].split(",") if len(parts) == 3 else []):
        if option in ("ro", "rw"):
            out["read_only"] = option == "ro"
        elif option == "nocopy":
            out.setdefault("volume", {})["nocopy"] = True
        elif option in _PROPAGATIONS:
            out.setdefault("bind", {})["propagation"] = option
        elif option in ("z", "Z"):
            out.setdefault("bind", {})["selinux"] = option
        elif option in _CONSISTENCY:
            out["consistency"] = option
        else:
            raise ValueError(f"invalid volume {spec!r}: unknown option {option!r} "
                             "(ro, rw, nocopy, z, Z, a propagation, or cached/delegated/consistent)")
    return out


# -- merging ---------------------------------------------------------------------------------------

_REPLACED = {(*_S, "command"), (*_S, "entrypoint"), (*_S, "healthcheck", "test")}


def _port_key(item: Any) -> Any:
    if isinstance(item, Map):
        return (item.get("host_ip") or "0.0.0.0", str(item.get("published")), item.get("target"),  # noqa: S104
                item.get("protocol", "tcp"))
    return item


def _text_key(item: Any) -> Any:
    return str(item).split("=", 1)[0] if isinstance(item, str) else json.dumps(located.plain(item), sort_keys=True)


_UNIQUE: dict[Path_, Callable[[Any], Any]] = {
    (*_S, "ports"): _port_key,
    (*_S, "volumes"): lambda v: v.get("target") if isinstance(v, Map) else v,
    (*_S, "env_file"): lambda v: v.get("path") if isinstance(v, Map) else v,
    (*_S, "secrets"): lambda v: v.get("target") or v.get("source") if isinstance(v, Map) else v,
    (*_S, "configs"): lambda v: v.get("target") or v.get("source") if isinstance(v, Map) else v,
    **{(*_S, key): _text_key for key in ("expose", "cap_add", "cap_drop", "dns", "dns_search", "dns_opt",
                                          "profiles", "tmpfs", "links", "extra_hosts", "devices", "sysctls")},
    (*_S, "networks", "*", "aliases"): _text_key,
}


def _matches(pattern: Path_, path: Path_) -> bool:
    return len(pattern) == len(path) and all(p == "*" or p == q for p, q in zip(pattern, path, strict=True))


def merge(base: Any, over: Any, path: Path_) -> Any:
    """`over` merged into `base` with compose's rules (compose-go override/merge.go); `base` is
    changed in place and returned. Positions of what `over` says win."""
    if any(_matches(p, path) for p in _REPLACED):
        return over
    if over is None:
        return base
    if isinstance(base, Map) and isinstance(over, Map):
        for key, value in over.items():
            merged = merge(base[key], value, (*path, key)) if key in base else value
            base.put(key, merged, over.origin(key), over.key_origin(key))
        return base
    if isinstance(base, Seq) and isinstance(over, Seq):
        for i, item in enumerate(over):
            base.add(item, over.origin(i))
        return _unique(base, path)
    return over


def _unique(seq: Seq, path: Path_) -> Seq:
    """Later items replace earlier ones with the same key, in the earlier one's place."""
    key_of = next((k for p, k in _UNIQUE.items() if _matches(p, path)), None)
    if key_of is None:
        return seq
    out = Seq(seq.at)
    index: dict[Any, int] = {}
    for i, item in enumerate(seq):
        key = key_of(item)
        try:
            hash(key)
        except TypeError:
            key = repr(key)
        if key in index:
            out[index[key]] = item
            out.item_at[index[key]] = seq.origin(i)
        else:
            index[key] = len(out)
            out.add(item, seq.origin(i))
    return out


# -- the loader ------------------------------------------------------------------------------------


class _Loader:
    def __init__(self, directory: str, env: dict[str, str], rd: Reader) -> None:
        self.directory = directory
        self.env = env
        self.rd = rd
        self.interpolate = _Interpolate(env, rd)
        self.canonical = _Canonical(rd)
        self.extends_files: dict[str, Map | None] = {}
        # a problem left parts of the project unknown (a document left out whole, an include
        # that cannot be used): checking the rest would report what it would have defined
        self.incomplete = False

    def prepare(self, doc: Map) -> bool:
        """Interpolate, validate and canonicalise one document in place; False when nothing
        valid is left of it.

        A value that does not interpolate or breaks the schema is reported and taken out
        (`_drop`, recorded in `rd.dropped`), as the manifests' loader does, so that the checks
        after this one run on the rest and one run reports every problem. A document that
        still breaks the schema then is left out whole, and an `include` taken out leaves
        what it would define unknown (both: `incomplete`).
        """
        self.interpolate.failed = []
        self.interpolate.walk(doc, ())
        failing = [*self.interpolate.failed, *_validate(doc, self.rd, self.interpolate.failed)]
        if failing:
            gone: list[Path_] = []
            for path in failing:
                if not any(path[: len(g)] == g for g in gone):     # not in what went already
                    taken = _drop(doc, path)
                    gone += [taken] if taken is not None else []
            self.rd.dropped += gone
            self.incomplete |= any(g[0] == "include" for g in gone)    # what it would define is unknown
            if not _valid(doc, self.rd):
                self.incomplete = True
                return False
        self.canonical.project(doc)     # a port or volume it cannot read is reported and left out
        return True

    # extends ----------------------------------------------------------------------------------

    def extends(self, doc: Map, file: str) -> list[str]:
        """Apply the `extends` of `doc`'s services; the names of those whose `extends` cannot be
        applied (reported), which are left as written."""
        services = doc.get("services")
        if not isinstance(services, Map):
            return []
        return [name for name in list(services)
                if self.extend(services, name, file, ()) is None and isinstance(services.get(name), Map)]

    def extends_or_drop(self, doc: Map, file: str) -> None:
        """Apply the `extends` of the project's services; take out (`rd.dropped`) those whose
        cannot be (reported): what the rest of the project says is still checked, theirs once
        their `extends` works."""
        failed = self.extends(doc, file)
        for name in failed:
            doc["services"].drop(name)
            self.rd.dropped.append(("services", name))

    def extend(self, services: Map, name: str, file: str, chain: tuple[tuple[str, str], ...]) -> Map | None:
        svc = services.get(name)
        if not isinstance(svc, Map) or "extends" not in svc:
            return svc if isinstance(svc, Map) else None
        ext = svc["extends"]
        at = svc.origin("extends")
        where = fmt(("services", name, "extends"))
        if (file, name) in chain:
            cycle = " -> ".join([n for _, n in chain] + [name])
            self.rd.error(at, where, f"extends cycle: {cycle}")
            return None
        ref = str(ext["service"])
        base_services, base_file = services, file
        if ext.get("file") is not None:
            target = os.path.normpath(os.path.join(self.directory, str(ext["file"])))
            loaded = self.extends_file(target, ext.origin("file"), fmt(("services", name, "extends", "file")))
            if loaded is None:
                return None
            base_services, base_file = loaded, target
        if ref not in base_services:
            where_ref = f"in {ext['file']}" if ext.get("file") is not None else "in this file"
            hint = schemas.did_you_mean(ref, sorted(base_services))
            self.rd.error(ext.origin("service"), fmt(("services", name, "extends", "service")),
                          f"cannot extend service {ref!r}: no such service {where_ref}{hint}")
            return None
        base = self.extend(base_services, ref, base_file, (*chain, (file, name)))
        if base is None:
            return None
        own = Map(svc.at)
        for key, value in svc.items():
            if key != "extends":
                own.put(key, value, svc.origin(key), svc.key_origin(key))
        merged = merge(located.copy(base), own, ("services", name))
        merged.at = svc.at
        services.put(name, merged, services.origin(name), services.key_origin(name))
        return merged  # type: ignore[no-any-return]

    # include ----------------------------------------------------------------------------------

    def include(self, data: Map, doc: Map, workdir: str, chain: tuple[str, ...]) -> Map:
        """`data` with the resources of every include `doc`'s top-level `include` names (compose-go
        loader/include.go): its files (paths from `workdir`, the including project's directory)
        read like a project of their own, the first file's directory or `project_directory`
        being theirs, the later files merged over the first, interpolated with the environment
        over the include's `env_file`s (default: the `.env` of its project directory), its own
        includes applied first; `include` is then dropped. A resource `doc` (or another included
        file) defines too is an error naming both places, as compose reports it."""
        items = doc.get("include")
        if not isinstance(items, Seq):
            return data
        doc.drop("include")
        for i, item in enumerate(items):
            entry = item if isinstance(item, Map) else Map(items.origin(i), [("path", item)])
            included = self.include_one(entry, items.origin(i), ("include", i), workdir, chain)
            if included is not None:
                data = self.add_resources(data, included, doc, included.at.file)
            else:
                self.incomplete = True          # reported; what it would define is unknown
        return data

    def include_one(self, item: Map, at: Origin, path: Path_, workdir: str, chain: tuple[str, ...]) -> Map | None:
        """The merged model of one `include` entry; None (reported) when a file cannot be used."""
        rels = [str(r) for r in ([item.get("path")] if isinstance(item.get("path"), str) else item.get("path") or ())]
        remote = next((r for r in rels if "://" in r or r.startswith("git@")), None)
        if remote is not None:
            self.rd.error(at, fmt(path), f"not supported yet: a remote include ({remote}); put the file into the "
                          "source and include its path")
            return None
        files = [os.path.normpath(os.path.join(workdir, r)) for r in rels]
        if not files:
            return None                         # the schema reports an empty path
        cycle = next((f for f in files if f in chain), None)
        if cycle is not None:
            self.rd.error(at, fmt(path), f"include cycle: {' -> '.join((*chain, cycle))}")
            return None
        project = item.get("project_directory")
        directory = os.path.normpath(os.path.join(workdir, str(project))) if project else os.path.dirname(files[0])
        env = self.include_env(item, directory, workdir, path)
        if env is None:
            return None
        model: Map | None = None
        with self.environment(env):
            for full in files:
                for included in self.included(full, at, fmt(path), directory, (*chain, full)):
                    model = included if model is None else merge(model, included, ())
        return model

    def include_env(self, item: Map, directory: str, workdir: str, path: Path_) -> dict[str, str] | None:
        """The environment an included file is interpolated with: the including project's, over
        the include's `env_file`s (relative to `workdir`; later files win) or else its project
        directory's `.env`; None (reported) when an env file cannot be read or parsed."""
        named = item.get("env_file")
        if named is None:
            dotenv = os.path.join(directory, ".env")
            files = [(dotenv, Origin(dotenv, 1, 1), "")] if os.path.isfile(dotenv) else []
        else:
            names = _seq(named, item.origin("env_file"))
            files = [(os.path.normpath(os.path.join(workdir, str(name))), names.origin(j), fmt((*path, "env_file", j)))
                     for j, name in enumerate(names)]
        found: dict[str, str] = {}
        before = len(self.rd.problems)
        for full, at, where in files:
            found.update(_dotenv(full, lambda k: self.env.get(k, found.get(k)), self.rd, at, where, "env file"))
        if len(self.rd.problems) > before:
            return None
        return {**found, **self.env}             # the including project's values win (compose-go)

    @contextlib.contextmanager
    def environment(self, env: dict[str, str]) -> Iterator[None]:
        """Interpolate with `env` (an included project's) while the block runs."""
        saved = self.env
        self.env = self.interpolate.env = env
        try:
            yield
        finally:
            self.env = self.interpolate.env = saved

    def included(self, path: str, at: Origin, where: str, directory: str, chain: tuple[str, ...]) -> list[Map]:
        refused = self.rd.refuse(path)
        if refused:
            self.rd.error(at, where, f"included file {refused}")
            return []
        if not os.path.isfile(path):
            self.rd.error(at, where, f"included file {path} not found")
            return []
        self.rd.read_file(path)                 # its content counts in the revision
        out: list[Map] = []
        for doc in _read_yaml(path, None, self.rd):
            if not self.prepare(doc):
                continue
            inner = self.include(Map(doc.at), doc, directory, chain)
            _rebase(doc, directory, self.directory)
            self.extends_or_drop(doc, path)
            out.append(merge(inner, doc, ()))
        return out

    def add_resources(self, data: Map, included: Map, doc: Map, path: str) -> Map:
        """`included`'s resources added to `data`; one defined already is an error, unless it is
        the same (compose-go importResources: two included files may share a network)."""
        for kind in ("services", "networks", "volumes", "secrets", "configs"):
            mine, theirs = doc.get(kind), included.get(kind)
            if not isinstance(theirs, Map):
                continue
            for key in list(theirs):
                defined = [other for other in (mine, data.get(kind)) if isinstance(other, Map) and key in other]
                if any(located.plain(other[key]) == located.plain(theirs[key]) for other in defined):
                    theirs.drop(key)            # the same resource: kept as defined first
                    continue
                for other in defined:
                    self.rd.error(other.key_origin(key), fmt((kind, key)),
                                  f"{kind[:-1]} {key!r} is defined here and in the included file {path}; "
                                  "rename one (compose refuses the conflict too)")
        return merge(data, included, ())  # type: ignore[no-any-return]

    def extends_file(self, path: str, at: Origin, where: str) -> Map | None:
        """The services of a file named by `extends.file`, prepared, paths moved to the project
        directory, its own `extends` applied; None (reported) when it cannot be used."""
        if path in self.extends_files:
            return self.extends_files[path]
        self.extends_files[path] = None         # a file extending itself: a cycle, reported there
        refused = self.rd.refuse(path)
        if refused:
            self.rd.error(at, where, f"extended file {refused}")
            return None
        if not os.path.isfile(path):
            self.rd.error(at, where, f"extended file {path} not found")
            return None
        docs = _read_yaml(path, None, self.rd)
        self.rd.read_file(path)                 # its content counts in the revision
        services = Map(at)
        for doc in docs:
            if not self.prepare(doc):
                return None
            _rebase(doc, os.path.dirname(path), self.directory)
            self.extends(doc, path)
            services = merge(services, doc.get("services") or Map(doc.at), ("services",))
        self.extends_files[path] = services
        return services


def _relative(path: str, src: str, dest: str) -> str:
    """`path`, written relative to `src`, relative to `dest` instead ("./x" or "../x")."""
    if path.startswith(("/", "~")) or "://" in path:
        return path
    rel = os.path.relpath(os.path.normpath(os.path.join(src, path)), dest)
    return rel if rel.startswith("..") else "./" + rel if rel != "." else "."


def _rebase(doc: Map, src: str, dest: str) -> None:
    """Relative paths of an extended or included file, moved from its directory to the project's."""
    services = doc.get("services")
    for svc in services.values() if isinstance(services, Map) else ():
        if not isinstance(svc, Map):
            continue
        build = svc.get("build")
        if isinstance(build, Map) and isinstance(build.get("context"), str):
            build["context"] = _relative(build["context"], src, dest)
        for item in svc.get("env_file") or ():
            if isinstance(item, Map) and isinstance(item.get("path"), str):
                item["path"] = _relative(item["path"], src, dest)
        for item in svc.get("volumes") or ():
            if isinstance(item, Map) and item.get("type") == "bind" and isinstance(item.get("source"), str):
                item["source"] = _relative(item["source"], src, dest)
        ext = svc.get("extends")
        if isinstance(ext, Map) and isinstance(ext.get("file"), str):
            ext["file"] = _relative(ext["file"], src, dest)
    for kind in ("secrets", "configs"):         # top-level file sources (an included file's)
        for cfg in (doc.get(kind) or {}).values():
            if isinstance(cfg, Map) and isinstance(cfg.get("file"), str):
                cfg["file"] = _relative(cfg["file"], src, dest)


# -- project name, profiles, consistency -------------------------------------------------------------


def _project_name(opts: Options, env: Mapping[str, str], docs: list[Map], directory: str, rd: Reader) -> str | None:
    explicit = [(opts.project_name, "-p"), (env.get("COMPOSE_PROJECT_NAME") or None, "COMPOSE_PROJECT_NAME")]
    for value, what in explicit:
        if value is None:
            continue
        if normalize_name(value) != value or not value:
            rd.error(None, "", f"invalid project name {value!r} (from {what}): use lower-case letters, "
                     "digits, '-' and '_', starting with a letter or digit")
            return None
        return value
    named = [(d["name"], d.origin("name")) for d in docs if isinstance(d.get("name"), str) and d["name"]]
    if named:
        raw, at = named[-1]
        try:
            value = interpolation.substitute(raw, env.get)
        except interpolation.InterpolationError as exc:
            rd.error(at, "name", str(exc))
            return None
        name = normalize_name(value)
        if not name:
            rd.error(at, "name", f"project name {value!r} has no letter or digit; compose names are "
                     "lower-case letters, digits, '-' and '_'")
            return None
        return name
    base = opts.default_name or os.path.basename(os.path.abspath(directory))
    name = normalize_name(base)
    if not name:
        rd.error(None, "", f"the directory name {base!r} makes no project name; set name: in the compose "
                 "file or COMPOSE_PROJECT_NAME")
        return None
    return name


def _default_network(data: Map) -> None:
    """Services naming no network join `default`, declared when some service uses it."""
    services = data.get("services")
    used = False
    if isinstance(services, Map):
        for svc in services.values():
            if not isinstance(svc, Map) or "network_mode" in svc:
                continue
            nets = svc.get("networks")
            if not nets:
                svc.put("networks", Map(svc.at, [("default", None)]), svc.at)
                used = True
            elif "default" in nets:
                used = True
    if used:
        networks = data.get("networks")
        if not isinstance(networks, Map):
            networks = Map(data.at)
            data.put("networks", networks, data.at)
        if "default" not in networks:
            networks.put("default", Map(data.at), data.at)


def _named(data: Map, profiles: list[str], named: Sequence[str], rd: Reader) -> list[str]:
    """The active profiles once the services named on the command line (`reconcile apply SOURCE
    web`) are enabled, as compose's `WithServicesEnabled`: a named service a profile disables
    activates its profiles (and so the other services of those), and its dependencies follow
    the profiles' rule (`_consistency`). A name that is no service of the project is reported
    here, where the services a profile disables are known: compose's `no such service`."""
    from reconciler.spec import selection

    services = data.get("services") or Map(data.at)
    at = data.key_origin("services") if "services" in data else Origin(rd.file, 0, 0)
    for problem in selection.unknown(named, list(services), what="service", where=at.file):
        rd.error(at, "services", problem.message)
    enabled = set(_active(data, profiles))
    out = list(profiles)
    for name in named:
        if name in services and name not in enabled:
            out += [str(p) for p in services[name].get("profiles") or ()]
    return list(dict.fromkeys(out))


def _active(data: Map, profiles: list[str]) -> list[str]:
    services = data.get("services") or {}
    out = []
    for name, svc in services.items():
        own = [str(p) for p in (svc.get("profiles") or ())]
        if not own or "*" in profiles or set(own) & set(profiles):
            out.append(name)
    return sorted(out)


def _consistency(data: Map, active: list[str], rd: Reader) -> None:
    services: Map = data.get("services") or Map(data.at)
    networks = data.get("networks") or {}
    volumes = data.get("volumes") or {}
    for name in active:
        svc = services[name]
        path: Path_ = ("services", name)
        if "image" not in svc and "build" not in svc and \
                not any(rd.was_dropped((*path, key)) for key in ("image", "build", "extends")):
            rd.error(services.key_origin(name), fmt(path), "has neither an image nor a build context; set image: or build:")
        if "network_mode" in svc and "networks" in svc:
            rd.error(svc.key_origin("networks"), fmt((*path, "networks")),
                     "network_mode and networks exclude each other; keep one")
        for net in svc.get("networks") or ():
            if net not in networks and not rd.was_dropped(("networks", net)):
                rd.error(svc["networks"].key_origin(net), fmt((*path, "networks", net)),
                         f"refers to undefined network {net!r}{schemas.did_you_mean(net, sorted(networks))}; "
                         "declare it under the top-level networks:")
        for i, vol in enumerate(svc.get("volumes") or ()):
            source = vol.get("source") if isinstance(vol, Map) else None
            if vol.get("type") == "volume" and source and source not in volumes and not rd.was_dropped(("volumes", source)):
                rd.error(svc["volumes"].origin(i), fmt((*path, "volumes", i)),
                         f"refers to undefined volume {source!r}{schemas.did_you_mean(source, sorted(volumes))}; "
                         "declare it under the top-level volumes:")
        deps = svc.get("depends_on") or Map(svc.at)
        for dep in list(deps):
            cfg = deps[dep] if isinstance(deps[dep], Map) else {}
            if dep in active:
                continue
            if dep in services:
                if cfg.get("required", True) is False:
                    deps.drop(dep)          # an optional dependency on a disabled service
                    continue
                own = ", ".join(str(p) for p in services[dep].get("profiles") or ())
                rd.error(deps.key_origin(dep), fmt((*path, "depends_on", dep)),
                         f"depends on service {dep!r}, which no active profile enables (its profiles: {own}); "
                         "activate one with COMPOSE_PROFILES or --profile, or set required: false")
            elif not rd.was_dropped(("services", dep)):
                rd.error(deps.key_origin(dep), fmt((*path, "depends_on", dep)),
                         f"depends on undefined service {dep!r}{schemas.did_you_mean(dep, sorted(services))}")


# -- entry point -------------------------------------------------------------------------------------


def load(directory: str, opts: Options, rd: Reader, *, files: list[str] | None = None,
         services: Sequence[str] = ()) -> Model | None:
    """The compose project of `directory` (or `opts.files`); None when it could not be read or
    merged (the problems are in `rd`).

    A model with problems is returned with them, so that its translation and the manifests'
    checks report theirs in the same run (README: every problem at once). Values that break
    the schema or do not interpolate are taken out (`_Loader.prepare`), and so are services
    whose `extends` cannot be applied; what refers to what was taken out is not reported
    (`Reader.was_dropped`), nor are the taken-out parts checked further: their other problems
    show once these are fixed. Dangling references are left in. Problems that leave the
    project unknown stop here, and what depends on them shows once they are fixed: a file
    that is not YAML, a document that breaks the schema even without its failing values, an
    `include` that cannot be used (the services and resources it would bring), an invalid
    project name.

    `files` are the compose files to read when already found (`find`); explicit `opts.files`
    (`-f`) are read instead, relative to the current directory, with the checks the files
    COMPOSE_FILE names get (`_usable`), and the project directory is then
    `opts.project_directory` or the first file's (`composefiles.project_directory`).

    `services`: the services a command line named (`reconcile apply SOURCE web`): each must be
    one of the project's, and one a profile disables is enabled with its profiles (`_named`);
    the model's `profiles` are then the ones active with them.
    """
    environ = os.environ if opts.environ is None else opts.environ
    given = directory
    directory = project_directory(opts, given)
    # where the files must be for a restricted policy, and COMPOSE_FILE is looked up: the project
    # directory (a compose file given by its path is read as it is, without COMPOSE_FILE)
    root: str | None = directory if os.path.isdir(directory) and (opts.files or os.path.isdir(given)) else None
    if opts.files:                  # -f: compose's, relative to the current directory
        files = list(explicit_files(opts))
    else:
        files = files if files is not None else find(directory, environ)
    if not files:
        rd.error(Origin(directory, 0, 0), "", f"no compose file in {directory} (one of {', '.join(COMPOSE_FILES)})")
        return None
    rd.file = files[0]
    env = _environment(directory, environ, rd)      # a broken .env is reported; the rest still loads
    if opts.files:
        files = _usable([(f, g) for f, g in zip(files, opts.files, strict=True)], directory,
                        Origin(directory, 0, 0), "-f", f"give the path from the current directory ({os.getcwd()})", rd)
        if not files:
            return None
        rd.file = files[0]
    elif root is not None:
        named = _compose_file(directory, environ, env, rd)
        if named is None:
            found = [n for n in COMPOSE_FILES if os.path.isfile(os.path.join(directory, n))]
            if len(found) > 1:
                rd.warn(Origin(files[0], 1, 1), "", f"several compose files: {', '.join(found)}; using {found[0]}")
        elif not named:
            return None
        else:
            files = named
            rd.file = files[0]
    loader = _Loader(directory, env, rd)
    before = len(rd.problems)
    # a file COMPOSE_FILE or -f names outside the directory was let through by the policy (_usable)
    per_file = [(f, _read_yaml(f, root if root is not None and _beneath(root, f) else None, rd)) for f in files]
    valid = len(rd.problems) == before              # a file that does not read leaves no project to check
    docs = [d for _, ds in per_file for d in ds]
    name = _project_name(opts, env, docs, directory, rd) if docs else None
    if name is None:
        if not docs and valid:
            rd.error(Origin(files[0], 1, 1), "", "empty compose file")
        return None
    env["COMPOSE_PROJECT_NAME"] = name             # compose sets it for interpolation
    data = Map(docs[0].at)
    for file, file_docs in per_file:
        for doc in file_docs:
            if not loader.prepare(doc):
                valid = False
                continue
            if "version" in doc:
                rd.warn(doc.key_origin("version"), "version", "the version attribute is obsolete and ignored; remove it")
                doc.drop("version")
            data = loader.include(data, doc, directory, (file,))
            loader.extends_or_drop(doc, file)
            data = merge(data, doc, ())
    if not valid or loader.incomplete:
        return None
    _default_network(data)
    profiles = list(opts.profiles) if opts.profiles is not None else \
        [p.strip() for p in env.get("COMPOSE_PROFILES", "").split(",") if p.strip()]
    if services:
        profiles = _named(data, profiles, services, rd)
    active = _active(data, profiles)
    _consistency(data, active, rd)      # problems here still leave a model to translate
    return Model(name=name, directory=directory, files=files, data=data, services=active, env=env,
                 profiles=tuple(dict.fromkeys(profiles)))
