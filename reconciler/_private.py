"""What the reconciler writes is its owner's only (docs/security.md, "Secrets at rest").

Stdlib `os` only: the CLI sets the umask first thing, before it knows what the command needs.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False            # no typing import: every CLI start loads this module (#21)
if TYPE_CHECKING:
    from pathlib import Path  # pathlib costs every CLI start ~5 ms: callers have it loaded

__all__ = ["PRIVATE_UMASK", "make_private", "private_umask"]

PRIVATE_UMASK = 0o077


def private_umask() -> int:
    """Set the process umask to 077 (files 0600, directories 0700); returns the old one.

    Called first thing by the CLI and the agent: everything they write under the state root
    (records, revision copies, git checkouts, runtime state) is the owner's only.
    """
    return os.umask(PRIVATE_UMASK)


def make_private(directory: Path) -> None:
    """Create `directory` 0700, or take group/other access away from an existing one.

    A shared directory (sticky bit, as /tmp) or `/` is never changed: that would be a
    misconfigured root, not ours to lock.
    """
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = directory.stat()
    if str(directory.resolve()) == "/" or st.st_mode & 0o1000:
        return
    if st.st_mode & 0o077:
        os.chmod(directory, st.st_mode & 0o7700)
