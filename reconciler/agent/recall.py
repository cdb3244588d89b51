"""What the agent remembers of itself across its restarts: the failures its notifications told
of (`notify.Deduper`), the containers it left stopped for flapping and the restarts it counts
toward the flap limit (`supervise.Supervisor`), kept in `<root>/agent-memory.json`.

Without it a restarted agent (`systemctl restart`, an upgrade, a reboot) forgot both: it sent
again every failure still there, and started a crash-looping container again until it flapped
once more (and told of it once more), and counted a crash loop's restarts from zero again (an
agent restarted in one marked it flapping late, or never). The operator's words (a rollback's pin, a suspend) are
the state DB's (state/sourcestate.py); this memory is the agent's own, and losing it costs no
more than what an agent without it did. So it is a file of its own:

- written whole and renamed into place (`os.replace`, fsynced first): a kill -9 or a full disk
  leaves the old file or the new one, never half of one; a write that fails is logged, never
  an error of the pass or the notifier that asked for it;
- bounded: each part bounds itself (`Deduper.MAX_KEYS`..., `supervise.MAX_REMEMBERED`), and a
  file over `MAX_BYTES` is neither written nor read;
- tolerant: a file missing, unreadable, over the bound, not JSON or not of this `VERSION` is an
  empty memory (logged once, at the start), and the agent starts as it did without one.

The agent holds its root's store lock for its life: no other process writes the file.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from pathlib import Path
from typing import Any

from reconciler import logs

__all__ = ["FILE", "MAX_BYTES", "VERSION", "Memory"]

FILE = "agent-memory.json"
MAX_BYTES = 1 << 20
VERSION = 1

log = logs.get_logger("reconciler.agent.recall")


class Memory:
    """The parts of `<root>/agent-memory.json` (`notified`, `flapping`, `restarts`), read once; `put` writes
    the whole file again when a part changed. Thread-safe: the notifier and the supervisor's
    threads both put."""

    def __init__(self, root: Path) -> None:
        self.path = Path(root) / FILE
        self._lock = threading.Lock()
        self._parts: dict[str, Any] = _read(self.path)

    def get(self, part: str) -> Any:
        """A part as it was last put (None: never, or the file was not usable)."""
        with self._lock:
            return self._parts.get(part)

    def put(self, part: str, value: Any) -> None:
        """Keep `value` (JSON data) as `part`; the file is written only when it changed."""
        with self._lock:
            if self._parts.get(part) == value:
                return
            self._parts[part] = value
            self._write()

    def _write(self) -> None:
        text = json.dumps({"version": VERSION, **self._parts}, sort_keys=True, separators=(",", ":"))
        if len(text) > MAX_BYTES:              # each part bounds itself: not reached but by a bug
            log.warning("agent_memory_not_written", path=str(self.path), bytes=len(text), limit=MAX_BYTES)
            return
        tmp = None
        try:
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{FILE}.")     # 0600
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
            tmp = None
        except OSError as e:                    # a full disk: the memory of this process stands
            log.warning("agent_memory_not_written", path=str(self.path), error=e.strerror or str(e))
        finally:
            if tmp is not None:
                Path(tmp).unlink(missing_ok=True)


def _read(path: Path) -> dict[str, Any]:
    """The parts the file keeps; {} when there is none, or none this code can use (said why)."""
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_BYTES + 1)
    except FileNotFoundError:
        return {}
    except OSError as e:
        return _forgotten(path, e.strerror or str(e))
    if len(raw) > MAX_BYTES:
        return _forgotten(path, f"over {MAX_BYTES} bytes")
    try:
        doc = json.loads(raw)
    except ValueError as e:
        return _forgotten(path, f"not JSON: {e}")
    if not isinstance(doc, dict) or doc.get("version") != VERSION:
        return _forgotten(path, f"not version {VERSION} of this file")
    return {k: v for k, v in doc.items() if k != "version"}


def _forgotten(path: Path, why: str) -> dict[str, Any]:
    log.warning("agent_memory_unreadable", path=str(path), why=why,
                note="starting without it: a failure still there is notified again, a container "
                     "left stopped for flapping is started again by its restart policy")
    return {}
