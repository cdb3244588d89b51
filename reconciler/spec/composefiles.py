"""Which files make a compose project (compose-go's names) and the options it is read with,
apart from the compose loader (`reconciler.spec.compose`, which re-exports them): `spec.load`
asks this of every source (the agent passes Options for each), and a source of plain manifests
then loads no compose code (#21: 0.6 MiB an agent at rest does not hold).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from reconciler._dataclass import dataclass

__all__ = ["COMPOSE_FILES", "OVERRIDE_FILES", "Options", "dotenv_compose_file", "explicit_files", "find", "named_files",
           "project_directory"]

COMPOSE_FILES = ("compose.yaml", "compose.yml", "docker-compose.yml", "docker-compose.yaml")
OVERRIDE_FILES = ("compose.override.yml", "compose.override.yaml", "docker-compose.override.yml",
                  "docker-compose.override.yaml")


@dataclass(frozen=True)
class Options:
    """How to read a compose project; the defaults are `docker compose` run in its directory."""

    files: tuple[str, ...] = ()                 # explicit compose files (-f), merged in order; relative
    #                                             ones start in the current directory (explicit_files)
    project_directory: str | None = None        # --project-directory (with files): where relative paths
    #                                             and `.env` are; None: the first file's directory
    project_name: str | None = None             # -p: wins over COMPOSE_PROJECT_NAME and name:
    default_name: str | None = None             # the name when nothing sets one (the directory's)
    profiles: tuple[str, ...] | None = None     # --profile; None: COMPOSE_PROFILES
    environ: Mapping[str, str] | None = None    # the shell environment; None: os.environ


def find(path: str, environ: Mapping[str, str] | None = None) -> list[str]:
    """The compose files of `path`: a directory's files named by COMPOSE_FILE, else its first
    compose file and its override file, or `[path]` for a file named like a compose file; []
    when `path` is not a compose project.

    COMPOSE_FILE is the shell's (`environ`, None: os.environ), else the directory's `.env`'s
    (compose-go's WithConfigFileEnv, after WithDotEnv). Set in `.env`, it makes the directory a
    compose project; set in the shell only, it does when the directory holds a compose file or
    one of the files it names, so that a shell set up for another project does not turn a
    directory of manifests into one. `compose.load` resolves it again from the environment it
    interpolates with (a sops-encrypted `.env` decrypted) and reports what it names wrongly.
    """
    if os.path.isdir(path):
        first = [os.path.join(path, n) for n in COMPOSE_FILES if os.path.isfile(os.path.join(path, n))]
        env = os.environ if environ is None else environ
        value, from_dotenv = env.get("COMPOSE_FILE"), False
        if value is None and env.get("COMPOSE_DISABLE_ENV_FILE", "").strip().lower() not in ("1", "t", "true"):
            value, from_dotenv = dotenv_compose_file(path, env), True
        if value:
            named = named_files(path, value, env.get("COMPOSE_PATH_SEPARATOR", ""))
            if named and (from_dotenv or first or any(os.path.isfile(n) for n in named)):
                return named
        if not first:
            return []
        overrides = [os.path.join(path, n) for n in OVERRIDE_FILES if os.path.isfile(os.path.join(path, n))]
        return first[:1] + overrides[:1]
    if os.path.basename(path) in COMPOSE_FILES + OVERRIDE_FILES and os.path.isfile(path):
        return [path]
    return []


def explicit_files(opts: Options) -> list[str]:
    """The compose files `-f` names (`opts.files`), absolute, in order: relative to the current
    directory, as compose takes them (COMPOSE_FILE's are relative to the project directory:
    `named_files`). `-` (stdin) stays `-`: the loader refuses it as it refuses COMPOSE_FILE's."""
    return [f if f == "-" else os.path.normpath(os.path.abspath(f)) for f in opts.files]


def project_directory(opts: Options, path: str) -> str:
    """The project directory of a project read with `opts` from `path` (a directory, or a
    compose file given by its path): `--project-directory`, else the first `-f` file's
    directory, as compose makes it (`path` is then not read); else `path` (a file: its
    directory). Absolute: relative bind, env file, secret and build paths start there."""
    if opts.files:
        if opts.project_directory:
            return os.path.abspath(opts.project_directory)
        first = next((f for f in explicit_files(opts) if f != "-"), None)
        return os.path.dirname(first) if first is not None else os.getcwd()
    path = os.path.abspath(path)
    return path if os.path.isdir(path) else os.path.dirname(path)


def named_files(directory: str, value: str, separator: str = "") -> list[str]:
    """The files a COMPOSE_FILE value names, in order: split at COMPOSE_PATH_SEPARATOR
    (`separator`; empty: os.pathsep, `:` on Linux, as compose-go), relative to the project
    directory; empty entries are skipped."""
    return [os.path.normpath(os.path.join(directory, p)) for p in value.split(separator or os.pathsep) if p]


def dotenv_compose_file(directory: str, environ: Mapping[str, str]) -> str | None:
    """COMPOSE_FILE as the project directory's `.env` sets it (interpolated from `environ`), or
    None. The `.env` is parsed only when it names the variable (a plain manifest directory with
    a `.env` costs one read); one that does not parse is reported by the loader, not here."""
    dotenv = os.path.join(directory, ".env")
    try:
        with open(dotenv, "rb") as f:
            data = f.read(1 << 20)
    except OSError:
        return None
    if b"COMPOSE_FILE" not in data:
        return None
    from reconciler.spec import interpolation

    try:
        return interpolation.parse_dotenv(data.decode("utf-8"), environ.get).get("COMPOSE_FILE") or None
    except (UnicodeDecodeError, interpolation.DotenvError):
        return None
