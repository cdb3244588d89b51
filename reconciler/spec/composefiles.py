"""Which files make a compose project (compose-go's names) and the options it is read with,
apart from the compose loader (`reconciler.spec.compose`, which re-exports them): `spec.load`
asks this of every source (the agent passes Options for each), and a source of plain manifests
then loads no compose code (#21: 0.6 MiB an agent at rest does not hold).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from reconciler._dataclass import dataclass

__all__ = ["COMPOSE_FILES", "OVERRIDE_FILES", "Options", "find"]

COMPOSE_FILES = ("compose.yaml", "compose.yml", "docker-compose.yml", "docker-compose.yaml")
OVERRIDE_FILES = ("compose.override.yml", "compose.override.yaml", "docker-compose.override.yml",
                  "docker-compose.override.yaml")


@dataclass(frozen=True)
class Options:
    """How to read a compose project; the defaults are `docker compose` run in its directory."""

    files: tuple[str, ...] = ()                 # explicit compose files (-f), merged in order
    project_name: str | None = None             # -p: wins over COMPOSE_PROJECT_NAME and name:
    default_name: str | None = None             # the name when nothing sets one (the directory's)
    profiles: tuple[str, ...] | None = None     # --profile; None: COMPOSE_PROFILES
    environ: Mapping[str, str] | None = None    # the shell environment; None: os.environ


def find(path: str) -> list[str]:
    """The compose files of `path`: a directory's first compose file and its override file, or
    `[path]` for a file named like a compose file; [] when `path` is not a compose project."""
    if os.path.isdir(path):
        first = [os.path.join(path, n) for n in COMPOSE_FILES if os.path.isfile(os.path.join(path, n))]
        if not first:
            return []
        overrides = [os.path.join(path, n) for n in OVERRIDE_FILES if os.path.isfile(os.path.join(path, n))]
        return first[:1] + overrides[:1]
    if os.path.basename(path) in COMPOSE_FILES + OVERRIDE_FILES and os.path.isfile(path):
        return [path]
    return []
