"""The labels a single host last converged with (`--host-label`, the agent's `labels:`), kept in
the state root as `host-labels.json`.

A host's labels decide which containers are its part (reconciler.spec.placement): an apply
without them would take the containers placed here for another host's and remove them. So an
`apply` (or `rollback`) whose labels differ from the recorded ones is refused, saying how to
go on: give the recorded labels, `--all-hosts` (every container, whatever its placement), or
`--relabel` (these labels are the host's from now on). The agent records the labels of its
config at each pass: its config is where a fleet host's labels live. A host never given labels
has no record, and its first labelled apply records them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

from reconciler.errors import TerminalError

__all__ = ["FILE", "check", "record", "recorded"]

FILE = "host-labels.json"


def recorded(root: Path) -> dict[str, str] | None:
    """The recorded labels, or None when this root has none (never labelled)."""
    try:
        data = json.loads((root / FILE).read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise TerminalError(f"cannot read this host's recorded labels ({root / FILE}): {exc}",
                            hint="fix or remove the file, then give the host's labels with --host-label") from None
    return {str(k): str(v) for k, v in (data.get("labels") or {}).items()}


def _flags(labels: Mapping[str, str]) -> str:
    return " ".join(f"--host-label {k}={v}" for k, v in sorted(labels.items())) or "no --host-label"


def check(root: Path, labels: Mapping[str, str], *, relabel: bool = False) -> None:
    """TerminalError (exit 2, nothing changed) when `labels` differ from the recorded ones and
    the caller did not say `relabel`."""
    before = recorded(root)
    if relabel or before is None or before == dict(labels):
        return
    raise TerminalError(
        f"this host converged with {_flags(before)} last time, and this run gives {_flags(labels)}: it would "
        "remove the containers placed here by those labels",
        hint=f"run again with {_flags(before)}; or --all-hosts to converge every container whatever its "
        "placement; or --relabel to make these the host's labels from now on")


def record(root: Path, labels: Mapping[str, str]) -> None:
    """Keep `labels` as the host's (atomically); none removes the record."""
    path = root / FILE
    if not labels:
        path.unlink(missing_ok=True)
        return
    import tempfile  # here: every pass reads the labels, few write them (#21)

    root.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=root, prefix=f".{FILE}.")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump({"labels": dict(sorted(labels.items()))}, f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
