"""Where a state root's volatile state lives and how its host objects are named, when the
caller does not say: what the root recorded when first opened, else names derived from it.

Stdlib `os` only (no pathlib, dataclasses or sqlite): every CLI command that names no run dir
resolves these at start (cli/options.resolve, through runtime.parts), `reconcile ps` served by
an agent included (#21). config.py wraps them in Paths for the engine.
"""

from __future__ import annotations

import os

__all__ = ["DEFAULT_PREFIX", "DEFAULT_ROOT", "DEFAULT_RUN_DIR", "PREFIX_CLAIMS", "PREFIX_FILE", "ROOT_FILE",
           "RUN_DIR_FILE", "derived", "resolve"]

DEFAULT_ROOT = "/var/lib/reconciler"
DEFAULT_RUN_DIR = "/run/reconciler"
DEFAULT_PREFIX = "rcl"
ROOT_FILE = ".state-root"           # in the run dir: the state root it belongs to
PREFIX_FILE = "name-prefix"         # in the state root: the prefix of its host objects
RUN_DIR_FILE = "run-dir"            # in the state root: the run dir it was first opened with
# host-wide: <PREFIX_CLAIMS>/<prefix> names the state root whose engine makes the host objects
# named with <prefix> (cgroups, bridges, veths, nft tables); in /run, as they do not outlive a boot
PREFIX_CLAIMS = "/run/reconciler-prefixes"


def derived(root: str) -> tuple[str, str]:
    """The run dir and name prefix a state root gets when they are not given: the defaults for
    the default root; for any other root, names of its own (from a hash of its path), so
    `--root X` alone never shares a run dir, cgroup parent, bridges or nft table with another
    engine on the host."""
    root = os.path.abspath(root)
    if root == DEFAULT_ROOT:
        return DEFAULT_RUN_DIR, DEFAULT_PREFIX
    import hashlib  # here: OpenSSL's loading costs every command ~3 ms, and the default root needs none

    h = hashlib.sha256(root.encode()).hexdigest()
    return f"/run/reconciler-{h[:12]}", "r" + h[:4]


def resolve(root: str, run_dir: str | None = None, name_prefix: str | None = None) -> tuple[str, str]:
    """The run dir and name prefix to open `root` with: what the caller names, else what the
    root recorded when it was first opened, else `derived`."""
    run_dir = run_dir or _recorded(root, RUN_DIR_FILE)
    name_prefix = name_prefix or _recorded(root, PREFIX_FILE)
    if run_dir and name_prefix:
        return run_dir, name_prefix         # no hash of the root to take (hashlib: ~3 ms)
    derived_run, derived_prefix = derived(root)
    return run_dir or derived_run, name_prefix or derived_prefix


def _recorded(root: str, name: str) -> str | None:
    try:
        with open(os.path.join(root, name), encoding="utf-8") as f:
            return f.read().strip() or None
    except OSError:
        return None
