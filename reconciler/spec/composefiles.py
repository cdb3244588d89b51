"""Which files make a compose project (compose-go's names), apart from the compose loader
(`reconciler.spec.compose`, which re-exports them): `spec.load` asks this of every source,
and a source of plain manifests then loads no compose code (#21).
"""

from __future__ import annotations

import os

__all__ = ["COMPOSE_FILES", "OVERRIDE_FILES", "find"]

COMPOSE_FILES = ("compose.yaml", "compose.yml", "docker-compose.yml", "docker-compose.yaml")
OVERRIDE_FILES = ("compose.override.yml", "compose.override.yaml", "docker-compose.override.yml",
                  "docker-compose.override.yaml")


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
