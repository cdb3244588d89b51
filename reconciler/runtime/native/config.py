"""Settings of the native engine: where it keeps state and how it names host objects.

Tests give every test its own `root`, `run_dir`, `name_prefix` and subnet pool so that runs
never collide with each other, with a real installation, or with Docker.

Layout under `root` (persistent):          Layout under `run_dir` (volatile, tmpfs-like):
  state.db          sqlite (WAL) records     runc/        runc --root state dir
  blobs/sha256/     content store            exits/       conmon exit files (inotify)
  ingest/           partial downloads        conmon/      conmon persist dirs
  snapshots/        layer snapshots          netns/       network namespaces (bind mounts)
  containers/<id>/  bundles, logs, upper     locks/       lock files
  volumes/<name>/   named volume data
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from reconciler._sqlite import Database

__all__ = ["NativeConfig"]


@dataclass(frozen=True)
class NativeConfig:
    """Where the native engine keeps things, and the names it gives host objects."""

    root: Path = Path("/var/lib/reconciler")
    run_dir: Path = Path("/run/reconciler")
    # Prefix of every host object name (bridges, veths, netns, nft table, cgroup parent).
    # Short: Linux interface names have 15 characters at most.
    name_prefix: str = "rcl"
    # Pool from which networks without a subnet get a /24.
    subnet_pool: str = "10.89.0.0/16"
    oci_runtime: str = "runc"        # "runc" (default, works on hybrid cgroups) or "crun"
    max_concurrent_downloads: int = 3
    # Container logs (k8s-file) rotate like Docker's json-file max-size/max-file: at
    # `log_max_size` bytes the log becomes ctr.log.1, and `log_max_files` files are kept in all
    # (so ~30 MiB per container by default). log_max_size 0: no rotation, conmon caps instead.
    log_max_size: int = 10 * 1024 * 1024
    log_max_files: int = 3
    # A `Database` shared by all parts of the engine in this process (set by `open_db`).
    _db: list[Database] = field(default_factory=list, repr=False, compare=False)

    def db(self) -> Database:
        """The engine's state database (one per config object)."""
        if not self._db:
            self._db.append(Database(self.root / "state.db"))
        return self._db[0]

    def ensure_dirs(self) -> None:
        """Create the directory layout (mode 0700 for the roots)."""
        for d in (self.root, self.run_dir):
            d.mkdir(parents=True, exist_ok=True)
            os.chmod(d, 0o700)
        for sub in ("blobs/sha256", "ingest", "snapshots", "containers", "volumes"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        for sub in ("runc", "exits", "conmon", "netns", "locks"):
            (self.run_dir / sub).mkdir(parents=True, exist_ok=True)
