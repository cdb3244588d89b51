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
from collections.abc import Callable
from pathlib import Path

from reconciler._dataclass import dataclass, field
from reconciler._sqlite import Database
from reconciler.runtime.native import locations as locations_

__all__ = ["DEFAULT_PREFIX", "DEFAULT_ROOT", "DEFAULT_RUN_DIR", "NativeConfig", "derived_locations", "locations"]

DEFAULT_ROOT = Path(locations_.DEFAULT_ROOT)
DEFAULT_RUN_DIR = Path(locations_.DEFAULT_RUN_DIR)
DEFAULT_PREFIX = locations_.DEFAULT_PREFIX
_ROOT_FILE = locations_.ROOT_FILE
_PREFIX_FILE = locations_.PREFIX_FILE
_RUN_DIR_FILE = locations_.RUN_DIR_FILE
PREFIX_CLAIMS = Path(locations_.PREFIX_CLAIMS)


def derived_locations(root: Path | str) -> tuple[Path, str]:
    """The run dir and name prefix a state root gets when they are not given (locations.derived)."""
    run_dir, prefix = locations_.derived(str(root))
    return Path(run_dir), prefix


def locations(root: Path | str, run_dir: Path | str | None = None,
              name_prefix: str | None = None) -> tuple[Path, str]:
    """The run dir and name prefix to open `root` with: what the caller names, else what the
    root recorded when it was first opened, else `derived_locations` (locations.resolve)."""
    found_run, prefix = locations_.resolve(str(root), str(run_dir) if run_dir else None, name_prefix)
    return Path(found_run), prefix


@dataclass(frozen=True)
class NativeConfig:
    """Where the native engine keeps things, and the names it gives host objects."""

    root: Path = DEFAULT_ROOT
    run_dir: Path = DEFAULT_RUN_DIR
    # Prefix of every host object name (bridges, veths, netns, nft table, cgroup parent).
    # Short: Linux interface names have 15 characters at most.
    name_prefix: str = DEFAULT_PREFIX
    # Pool from which networks without a subnet get a /24.
    subnet_pool: str = "10.89.0.0/16"
    oci_runtime: str = "runc"        # "runc" (default, works on hybrid cgroups) or "crun"
    max_concurrent_downloads: int = 3
    # Blob downloads at once on this state root, whatever pulls and processes make them
    # (images.DownloadSlots: flock'd slot files), as dockerd's cap is the daemon's.
    max_root_downloads: int = 8
    # Layers of one pull unpacked at once, each into its own snapshot dir (committed in chain
    # order); 1 unpacks them one after another.
    max_concurrent_unpacks: int = 3
    # A pull of an image of at least this many compressed layer bytes unpacks in extractor
    # processes (max_concurrent_unpacks of them, started with the manifest) instead of threads
    # that share one interpreter lock; smaller pulls do not pay for their start (~0.05 s of CPU
    # each). -1: never.
    process_unpack_min_bytes: int = 4 << 20
    # Container logs (k8s-file) rotate like Docker's json-file max-size/max-file: at
    # `log_max_size` bytes the log becomes ctr.log.1, and `log_max_files` files are kept in all
    # (so ~30 MiB per container by default). log_max_size 0: no rotation, conmon caps instead.
    log_max_size: int = 10 * 1024 * 1024
    log_max_files: int = 3
    # Pulls that need the registry client run in a helper process (images/aside.py), so that a
    # long-lived engine (the agent and engine-api set it) never maps httpx, TLS and the inflaters (#21).
    pull_aside: bool = False
    # A `Database` shared by all parts of the engine in this process (set by `open_db`).
    _db: list[Database] = field(default_factory=list, repr=False, compare=False)

    @property
    def locks_dir(self) -> Path:
        """The engine's lock files (a container's, the image store's, the network's, the cgroup
        parent's: flock-held, across threads and processes)."""
        return self.run_dir / "locks"

    @property
    def netns_dir(self) -> Path:
        """Bridge networking's container network namespaces (network.NetworkManager)."""
        return self.run_dir / "netns"

    @property
    def net_files_dir(self) -> Path:
        """Bridge networking's per-container hosts and resolv.conf files."""
        return self.run_dir / "net"

    @property
    def net_stale_dir(self) -> Path:
        """Marks of processes whose peers' hosts files wait for the end of a batch (a file each,
        flock-held while names wait, network/stale.py): one no live process holds makes start-up
        recovery write every hosts file again (network.NetworkManager.batch)."""
        return self.run_dir / "net-stale"

    def db(self) -> Database:
        """The engine's state database (one per config object)."""
        if not self._db:
            self._db.append(Database(self.root / "state.db"))
        return self._db[0]

    def ensure_dirs(self, *, host_objects: bool = True) -> None:
        """Create the directory layout (mode 0700 for the roots), and tie the run dir to this
        state root and the root to its name prefix: an engine opened on another root's run dir,
        or on its root with another prefix, or with a prefix another root's engine holds, is
        refused (it would take the other's processes, mounts and links for its own orphans).
        The image store alone (`host_objects=False`) makes no host object and claims nothing."""
        recorded = False
        if host_objects:                    # first: a refusal makes nothing
            recorded = self._claim_names(create=False)
            self._claim_prefix()
        for d in (self.root, self.run_dir):
            d.mkdir(parents=True, exist_ok=True)
            os.chmod(d, 0o700)
        if host_objects and not recorded:   # a new root (or run dir): record what the check found missing
            self._claim_names()
        for sub in ("blobs/sha256", "ingest", "snapshots", "containers", "volumes"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        for sub in ("runc", "exits", "conmon", "netns", "locks"):
            (self.run_dir / sub).mkdir(parents=True, exist_ok=True)

    def check_names(self) -> None:
        """Refuse, as `ensure_dirs` does, an engine opened on another root's run dir or on its
        root with another prefix, creating nothing: what commands that only read check."""
        self._claim_names(create=False)

    def _claim_names(self, *, create: bool = True) -> bool:
        """Whether all three records were there (each checked, or made if `create`)."""
        found = [
            self._claim(self.root / _RUN_DIR_FILE, str(Path(os.path.abspath(self.run_dir))), None, create=create),
            self._claim(self.run_dir / _ROOT_FILE, str(Path(os.path.abspath(self.root))), lambda other: (
                f"run dir {self.run_dir} belongs to state root {other}, not {self.root}",
                "give each state root its own --run-dir (or leave --run-dir out: a root other than "
                f"{DEFAULT_ROOT} gets one of its own)"), create=create),
            self._claim(self.root / _PREFIX_FILE, self.name_prefix, lambda other: (
                f"state root {self.root} names its host objects with prefix {other!r}, not {self.name_prefix!r}",
                f"use --name-prefix {other} with this root (or leave it out)"), create=create),
        ]
        return all(found)

    def _claim_prefix(self) -> None:
        """Tie the name prefix to this state root host-wide (`PREFIX_CLAIMS/<prefix>`): the
        engine takes the cgroups, links and nft table named with its prefix that its records do
        not know for its own leftovers and removes them, so a second root with the same prefix
        would kill the first's containers and delete its bridges. Refused while the root a claim
        names still records that prefix; a claim whose root is gone (or renamed its prefix) is
        taken over, and such stale claims are pruned when a new one is made. Only an engine that
        makes host objects claims: a read-only command of another root makes and removes none.
        A prefix that begins another (`rxc`, `rxc2`) is another prefix: what an engine takes for
        its own is named with its prefix alone (the cgroup parent, the nft tables) or has one of
        its link names' forms in full (network/names.py), which no other prefix's names have."""
        import fcntl

        from reconciler.runtime import errors

        if not self.name_prefix or "/" in self.name_prefix or self.name_prefix.startswith("."):
            raise errors.InvalidArgument(f"name prefix {self.name_prefix!r} is no name",
                                         hint="use lowercase letters and digits, starting with a letter")
        root = str(Path(os.path.abspath(self.root)))
        claim = PREFIX_CLAIMS / self.name_prefix
        if _read(claim) == root:
            return                              # the common case: one read, no lock
        try:
            PREFIX_CLAIMS.mkdir(mode=0o755, exist_ok=True)
            fd = os.open(PREFIX_CLAIMS / ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:              # no writable /run (a chroot): the engine works, unguarded
            _unclaimed(self.name_prefix, exc)
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)      # check and write as one step against a second claimer
            other = _read(claim)
            if other == root:
                return
            if other and _claims(other, self.name_prefix):
                raise errors.Conflict(
                    f"name prefix {self.name_prefix!r} belongs to the engine of state root {other} (its "
                    f"containers' cgroups, bridges and nft table are named with it), not to {self.root}",
                    hint="give each state root its own --name-prefix (or leave it out: a root other than "
                         f"{DEFAULT_ROOT} gets one of its own); the claim is {claim}")
            for entry in os.scandir(PREFIX_CLAIMS):     # claims of roots gone since (a test's, a bench's)
                recorded = _read(Path(entry.path)) if not entry.name.startswith(".") else None
                if recorded and entry.name != self.name_prefix and not _claims(recorded, entry.name):
                    Path(entry.path).unlink(missing_ok=True)
            tmp = PREFIX_CLAIMS / f".{self.name_prefix}.{os.getpid()}"
            try:
                tmp.write_text(root + "\n")
                os.replace(tmp, claim)
            except OSError as exc:          # a full /run: as above
                tmp.unlink(missing_ok=True)
                _unclaimed(self.name_prefix, exc)
        finally:
            os.close(fd)

    @staticmethod
    def _claim(path: Path, value: str, refusal: Callable[[str], tuple[str, str]] | None, *,
               create: bool = True) -> bool:
        """Record `value` in `path` on first use (if `create`); refuse when it records another
        one (unless `refusal` is None: then the first value is only a default for later commands).
        Whether a record was there (or was made)."""
        from reconciler.runtime import errors

        if create:
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            except FileExistsError:
                pass
            else:
                try:
                    with os.fdopen(fd, "w") as f:
                        f.write(value + "\n")
                except BaseException:
                    path.unlink(missing_ok=True)    # never a half-written record (a full disk): the next start retries
                    raise
                return True
        try:
            recorded = path.read_text().strip()
        except FileNotFoundError:
            return False                        # nothing recorded yet (and reading, nothing to create)
        if recorded and recorded != value and refusal is not None:
            message, hint = refusal(recorded)
            raise errors.Conflict(message, hint=hint) from None
        return True


def _unclaimed(prefix: str, exc: OSError) -> None:
    from reconciler import logs

    logs.get_logger(__name__).warning(
        "cannot claim the name prefix host-wide: another root opened with it would not be refused",
        prefix=prefix, error=str(exc))


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip() or None
    except (FileNotFoundError, NotADirectoryError):
        return None


def _claims(root: str, prefix: str) -> bool:
    """Whether state root `root` still names its host objects with `prefix` (its record)."""
    return _read(Path(root) / _PREFIX_FILE) == prefix
