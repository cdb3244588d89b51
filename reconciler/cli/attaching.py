"""A terminal, or pipes, attached to a native container's main process: the one home of what
`run -i`/`-t`, `attach` and `start -a` do once connected, as the docker CLI does it.

    session(rt, rec, ...)     `attach` and `start -a`: connect (before the start, for `start -a`),
                              relay until the container exits (its exit code) or the detach keys
                              are typed (None)
    relay(sock, ...)          our stdin to conmon's attach socket and its output to ours; our
                              terminal raw while its is attached, sized with it (SIGWINCH)
    detach_keys(text)         docker's --detach-keys (`ctrl-p,ctrl-q`) as the bytes they type; none
                              given: the Docker client config's detachKeys, as docker's
    proxied(kill)             the signals a user sends a foreground command go to the container
                              (docker's --sig-proxy)
    check_tty(stdin, tty)     docker's "the input device is not a TTY"

Which stream an attach reads (`through_socket`): conmon's attach socket when the container has a
terminal or our stdin goes to it (the process's bytes as written, both ways); else its log from
now (from its start, for `start -a`): an output-only connection to the socket of a container with
an open StdinOnce stdin and no terminal would close that stdin as it ends (conmon's rule, the
process's EOF).
"""

from __future__ import annotations

import contextlib
import sys

# annotations only: the module is loaded by `run -i/-t`, `attach` and `start -a` alone
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator
    from typing import Any

__all__ = ["DEFAULT_DETACH_KEYS", "DETACHED", "check_tty", "configured_detach_keys", "detach_keys", "proxied",
           "relay", "session", "through_socket"]

DEFAULT_DETACH_KEYS = "ctrl-p,ctrl-q"
DETACHED = "read escape sequence"       # what `docker attach` says as the detach keys end it (exit 1)
# what a user sends a command in the foreground: proxied to the container as docker's CLI does
# (it proxies every signal but SIGCHLD, SIGPIPE, SIGURG and SIGWINCH; these are the ones sent)
PROXIED = ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2")
_CONTROL = {"@": 0, "[": 27, "\\": 28, "]": 29, "^": 30, "_": 31}    # ctrl-<these>, as moby/term names them


def configured_detach_keys() -> tuple[str, str] | None:
    """The Docker client config's `detachKeys` (credentials.docker_config_path: $DOCKER_CONFIG/
    config.json, else ~/.docker/config.json) and that file's path; None when it sets none. A file
    that cannot be read is warned of and left, as the docker CLI leaves it."""
    import json

    from reconciler.registry_client import credentials

    path = credentials.docker_config_path()
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        print(f"WARNING: Error loading config file: {path}: {exc}", file=sys.stderr)
        return None
    keys = doc.get("detachKeys") if isinstance(doc, dict) else None
    return (keys, str(path)) if isinstance(keys, str) and keys else None


def detach_keys(text: str | None) -> bytes:
    """`--detach-keys` as the docker CLI reads it (moby/term ToBytes): keys separated by commas,
    each one character or `ctrl-` and a letter or one of @ [ \\ ] ^ _; empty or None: the Docker
    client config's `detachKeys` (`configured_detach_keys`), else the default, Ctrl-p Ctrl-q, as
    the docker CLI's attach, start -a and run -it take them. InvalidArgument naming the key it
    does not know (and the file, for the config's)."""
    where = None                            # the config file they came from
    if not text:
        text, where = configured_detach_keys() or (DEFAULT_DETACH_KEYS, None)
    keys = bytearray()
    for key in text.split(","):
        low = key.lower()
        if len(key) == 1 and key.isascii():
            keys.append(ord(key))
        elif len(low) == 6 and low.startswith("ctrl-") and ("a" <= low[5] <= "z" or low[5] in _CONTROL):
            keys.append(ord(low[5]) - ord("a") + 1 if low[5].isalpha() else _CONTROL[low[5]])
        else:
            from reconciler.runtime import errors

            source = f" (detachKeys in {where})" if where else ""
            raise errors.InvalidArgument(f"invalid detach keys {text!r}{source}: unknown key {key!r}",
                                         hint="a comma-separated sequence of keys, each a character or ctrl-a.."
                                              "ctrl-z, ctrl-@, ctrl-[, ctrl-\\, ctrl-], ctrl-^, ctrl-_ "
                                              f"(default {DEFAULT_DETACH_KEYS})")
    return bytes(keys)


class _Escape:
    """The detach keys found in what is typed: `feed` holds back a beginning of them until the
    next key says whether they follow whole (then what was typed before them is sent, and the
    attach ends) or not (then they are sent as typed), as docker's escape proxy does."""

    def __init__(self, keys: bytes) -> None:
        self.keys = keys
        self.held = 0

    def feed(self, data: bytes) -> tuple[bytes, bool]:
        """What of `data` goes to the process, and whether the keys were typed whole."""
        if not self.keys:
            return data, False
        out = bytearray()
        for byte in data:
            if byte != self.keys[self.held] and self.held:
                out += self.keys[:self.held]            # not the keys after all: sent as typed
                self.held = 0
            if byte == self.keys[self.held]:
                self.held += 1
                if self.held == len(self.keys):
                    return bytes(out), True
            else:
                out.append(byte)
        return bytes(out), False


def check_tty(stdin: bool, tty: bool) -> None:
    """Docker's refusal of our stdin for a container's terminal when ours is not one (`attach
    </dev/null` of a `-t` container: keys could not be passed as typed). Exit 1, as docker."""
    import os

    if stdin and tty and not os.isatty(sys.stdin.fileno()):
        from reconciler.errors import ReconcilerError

        raise ReconcilerError("the input device is not a TTY",
                              hint="run it from a terminal, or leave stdin out: --no-stdin (start: without -i)")


def through_socket(rec: Any, stdin: bool) -> bool:
    """Whether an attach to the native container `rec` reads conmon's attach socket (it has a
    terminal, or `stdin` of ours goes to it) rather than its log."""
    return bool(rec.terminal or stdin)


@contextlib.contextmanager
def proxied(kill: Callable[[str], object]) -> Iterator[None]:
    """While it lasts, the signals in PROXIED that come to this process are sent to the container
    (`kill(number)`, from a thread of its own: a signal handler runs between two steps of
    whatever the main thread does, the engine's too) instead of ending it, as docker's
    --sig-proxy does: the container's exit then ends the attach, with its exit code."""
    import os
    import signal
    import threading

    from reconciler.errors import ReconcilerError

    read_end, write_end = os.pipe()

    def handler(signum: int, frame: object) -> None:
        os.write(write_end, bytes([signum]))

    def forward() -> None:
        while got := os.read(read_end, 1):
            with contextlib.suppress(ReconcilerError):      # it ended meanwhile
                kill(str(got[0]))

    thread = threading.Thread(target=forward, name="signal-proxy", daemon=True)
    thread.start()
    previous = {s: signal.signal(s, handler) for s in (getattr(signal, name) for name in PROXIED)}
    try:
        yield
    finally:
        for number, was in previous.items():
            signal.signal(number, was)
        os.close(write_end)
        thread.join(timeout=10)
        os.close(read_end)


# conmon 2.1.6 reads its terminal's size requests in batches and applies only the first of a
# batch: a request sent while an earlier one waits would be lost, and the terminal left at the
# earlier size (a window dragged: many SIGWINCHs). So requests go at least this many seconds apart,
# the last size always sent.
RESIZE_GAP = 0.1


class _Sizer:
    """The container's terminal sized as ours (`resize(rows, cols)`): at once, then after each
    SIGWINCH (its handler only wakes the relay's select through `fd`), RESIZE_GAP apart."""

    def __init__(self, resize: Callable[[int, int], object]) -> None:
        import os
        import signal

        self.resize = resize
        self.fd, self._wake = os.pipe()
        os.set_blocking(self._wake, False)
        self.due = False
        self.sent = float("-inf")
        self.send()
        self._previous = signal.signal(signal.SIGWINCH, self._winch)

    def _winch(self, signum: int, frame: object) -> None:
        import os

        with contextlib.suppress(OSError):          # full: a wake-up is pending already
            os.write(self._wake, b"w")

    def send(self) -> None:
        import os
        import time

        self.due = False
        self.sent = time.monotonic()
        for fd in (sys.stdin.fileno(), sys.stdout.fileno()):
            if os.isatty(fd):
                size = os.get_terminal_size(fd)
                if size.lines and size.columns:
                    self.resize(size.lines, size.columns)
                return

    def wait(self) -> float | None:
        """How long the relay's select may wait before a size is due (None: as long as it likes)."""
        import time

        return max(0.0, self.sent + RESIZE_GAP - time.monotonic()) if self.due else None

    def woken(self, ready: list[int]) -> None:
        """After the relay's select: a SIGWINCH noted, a size due sent."""
        import os
        import time

        if self.fd in ready:
            os.read(self.fd, 512)
            self.due = True
        if self.due and time.monotonic() >= self.sent + RESIZE_GAP:
            self.send()

    def close(self) -> None:
        import os
        import signal

        signal.signal(signal.SIGWINCH, self._previous)
        os.close(self.fd)
        os.close(self._wake)


def relay(sock: Any, *, stdin: bool, tty: bool, keys: bytes = b"",
          resize: Callable[[int, int], object] | None = None) -> bool:
    """Copy our stdin (when `stdin`) to conmon's attach socket `sock` and its packets (a byte
    naming the stream, 2 stdout or 3 stderr, then data) to our stdout/stderr, until conmon
    closes it (the process ended): False; or until the detach `keys` are typed: True. With
    `tty` and our stdin a terminal that goes to it, ours is raw meanwhile (restored however this
    ends) and `keys` are looked for; `resize(rows, cols)` sets the container's terminal to the
    size of ours, at once and after each SIGWINCH (`_Sizer`). The end of our stdin closes the
    socket's writing half (conmon then closes the process's stdin when it is StdinOnce without a
    terminal: conmon.create's --leave-stdin-open)."""
    import os
    import select
    import socket

    in_fd = sys.stdin.fileno()
    out, err = sys.stdout.buffer, sys.stderr.buffer
    restore = None
    if tty and stdin and os.isatty(in_fd):
        import termios
        import tty as ttymod

        restore = termios.tcgetattr(in_fd)
        ttymod.setraw(in_fd, termios.TCSANOW)     # keep what was typed ahead
    escape = _Escape(keys if restore is not None else b"")
    sizer = None
    try:
        if tty and resize is not None:
            sizer = _Sizer(resize)
        reading = stdin
        while True:
            fds = [sock.fileno()] + ([in_fd] if reading else []) + ([sizer.fd] if sizer else [])
            ready, _, _ = select.select(fds, [], [], sizer.wait() if sizer else None)
            if sizer:
                sizer.woken(ready)
            if sock.fileno() in ready:
                data = sock.recv(65536)
                if not data:
                    return False
                stream = err if data[:1] == b"\x03" else out
                stream.write(data[1:])
                stream.flush()
            if reading and in_fd in ready:
                chunk = os.read(in_fd, 65536)
                typed, detached = escape.feed(chunk)
                try:
                    if typed:
                        sock.sendall(typed)
                    if not chunk:
                        reading = False
                        sock.shutdown(socket.SHUT_WR)      # EOF: a StdinOnce process's, from conmon
                except OSError:
                    reading = False                         # it ended meanwhile: its output is read to the end
                if detached:
                    return True
    finally:
        if sizer is not None:
            sizer.close()
        if restore is not None:
            import termios

            termios.tcsetattr(in_fd, termios.TCSADRAIN, restore)


def _printed(lines: Iterable[Any]) -> None:
    """Log lines (base.LogLine) on our stdout and stderr, as written."""
    out, err = sys.stdout.buffer, sys.stderr.buffer
    for line in lines:
        stream = err if line.stream == "stderr" else out
        stream.write(line.written)
        stream.flush()


def session(rt: Any, rec: Any, *, stdin: bool, keys: bytes, proxy: bool, start: bool = False) -> int | None:
    """`attach` (and, with `start`, `start -a`) of the native container `rec` on the engine
    `rt`: connected (for `start`, before its process runs: none of its output is lost), then
    relayed (`relay`, or its log: `through_socket`) until it exits, its exit code returned; None
    when the detach keys ended it (it runs on). `stdin`: ours goes to it; `proxy`: the signals
    we get go to it (`proxied`)."""
    import time

    from reconciler.runtime import parts

    mgr = rt.containers
    starting = start and rec.status != "running"
    sock = lines = None
    if through_socket(rec, stdin):
        sock = parts.start_attached(rt, rec.id) if starting else parts.attach(mgr, rec.id)
    elif starting:
        since = f"{time.time():.6f}"                    # its earlier runs' lines are older
        rt.start_container(rec.id)
        lines = rt.logs(rec.id, follow=True, since=since)
    else:
        lines = rt.logs(rec.id, follow=True, tail=0)   # from now on: docker attach replays nothing
    try:
        mgr.event(rec, "attach")                        # as dockerd journals an attach
        # asked now: one removed at its exit (AutoRemove) answers from the journal
        looks = rt.wait_condition(rec.id, "not-running")
        with proxied(lambda signal: rt.kill_container(rec.id, signal)) if proxy else contextlib.nullcontext():
            if sock is not None:
                if relay(sock, stdin=stdin, tty=rec.terminal, keys=keys,
                         resize=lambda rows, cols: parts.resize(mgr, rec.id, rows, cols)):
                    return None
            else:
                _printed(lines or ())
    finally:
        if sock is not None:
            sock.close()
    code = 0
    for look in looks:
        code = look if look is not None else code
    return code
