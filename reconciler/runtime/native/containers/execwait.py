"""The parent of an exec's process: `<runtime> exec --detach`, then a wait for that process.

    python -I -S execwait.py PID-FILE RUNTIME-ARGV...

runc's exec in the foreground gives the process pipes of its own and copies them to its stdio
until every holder closes them, so a background child (`sh -c 'daemon & echo started'`) holds
the exec, and its exit code, until the child ends. Detached, runc hands the process its own stdio
(the caller's pipes) and exits once it started; this program, a child subreaper, then becomes
the process's parent (an orphan goes to its nearest subreaper ancestor), waits for it and exits
with its status (128+N for signal N), as Docker's exec ends when its process exits. Its own copy
of the process's stdio is closed once the process started, so it holds none of it.

A runtime that fails (the process did not start: no pid file) makes it exit with the runtime's
status, the runtime's words on the process's stderr. Stdlib only, run by path in a Python
without site: it imports nothing of reconciler.
"""

from __future__ import annotations

import ctypes
import os
import sys

PR_SET_CHILD_SUBREAPER = 36


def _code(status: int) -> int:
    code = os.waitstatus_to_exitcode(status)
    return code if code >= 0 else 128 - code


def main(argv: list[str]) -> int:
    pid_file, runtime = argv[0], argv[1:]
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        sys.stderr.write(f"execwait: prctl(PR_SET_CHILD_SUBREAPER): {os.strerror(ctypes.get_errno())}\n")
        return 125
    _, status = os.waitpid(os.posix_spawn(runtime[0], runtime, os.environ), 0)
    if status != 0:
        return _code(status)
    with open(pid_file) as f:
        pid = int(f.read().strip())
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)
    while True:
        try:
            child, status = os.waitpid(-1, 0)
        except ChildProcessError:           # not ours after all (someone else reaped it)
            return 125
        if child == pid:
            return _code(status)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
