"""A headless Chromium driven over the DevTools protocol, for the dashboard's browser tests.

Debian's `chromium` with `--remote-debugging-pipe`: the protocol's JSON messages, each ended
by a NUL byte, go over two pipes (the browser reads fd 3 and writes fd 4), so no websocket
library and no port are needed, and no browser is downloaded (playwright would fetch its own).

    with Browser(tmp_path) as b:
        page = b.new_page(width=390, height=844)      # a phone's viewport
        page.goto("http://127.0.0.1:PORT/")
        page.eval("document.title")
        page.console_errors                             # console.error, exceptions, failed loads
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import pytest

__all__ = ["Browser", "Page", "chromium"]

TIMEOUT = 60.0


def chromium() -> str:
    """The browser's path; skips the test where scripts/install-system-deps.sh --test did not run."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.skip("chromium is not installed (scripts/install-system-deps.sh --test installs it)")
    return path


class Browser:
    """One Chromium process; commands are answered by id, events are kept per session."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self._next = 0
        self._lock = threading.Condition()
        self._replies: dict[int, dict[str, Any]] = {}
        self.events: list[dict[str, Any]] = []
        self._proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Browser:
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()

        # the shell moves them to fd 3 and 4, as chromium wants: from numbers above those
        r, w = (fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in (to_browser_r, from_browser_w))
        os.close(to_browser_r)
        os.close(from_browser_w)
        with (self.tmp / "chromium.log").open("wb") as log:
            self._proc = self._spawn(r, w, log)
        os.close(r)
        os.close(w)
        threading.Thread(target=self._read, name="cdp-reader", daemon=True).start()
        return self

    def _spawn(self, r: int, w: int, log: IO[bytes]) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            ["bash", "-c", f'exec "$@" 3<&{r} {r}<&- 4>&{w} {w}>&-', "chromium", chromium(), "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
             "--no-first-run", "--no-default-browser-check", "--disable-extensions",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={self.tmp / 'chromium-profile'}", "--remote-debugging-pipe", "about:blank"],
            pass_fds=(r, w),
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log,
        )

    def __exit__(self, *exc: object) -> None:
        if self._proc is not None and self._proc.poll() is None:
            try:
                self.send("Browser.close", timeout=10)
                self._proc.wait(10)
            except (TimeoutError, OSError, subprocess.TimeoutExpired):
                self._proc.kill()
                self._proc.wait()
        for fd in (self._to_browser, self._from_browser):
            try:
                os.close(fd)
            except OSError:
                pass

    def _read(self) -> None:
        buf = b""
        while True:
            try:
                chunk = os.read(self._from_browser, 1 << 16)
            except OSError:
                chunk = b""
            if not chunk:
                with self._lock:
                    self._lock.notify_all()
                return
            buf += chunk
            *messages, buf = buf.split(b"\0")
            with self._lock:
                for raw in messages:
                    msg = json.loads(raw)
                    if "id" in msg:
                        self._replies[msg["id"]] = msg
                    else:
                        self.events.append(msg)
                self._lock.notify_all()

    def send(self, method: str, params: dict[str, Any] | None = None, *, session: str | None = None,
             timeout: float = TIMEOUT) -> dict[str, Any]:
        """One command; its result, or an AssertionError with the protocol's error."""
        with self._lock:
            self._next += 1
            mid = self._next
        msg: dict[str, Any] = {"id": mid, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._to_browser, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        with self._lock:
            while mid not in self._replies:
                left = deadline - time.monotonic()
                if left <= 0 or (self._proc is not None and self._proc.poll() is not None):
                    raise TimeoutError(f"no answer to {method} from chromium (see chromium.log)")
                self._lock.wait(min(left, 0.5))
            reply = self._replies.pop(mid)
        assert "error" not in reply, f"{method}: {reply['error']}"
        result: dict[str, Any] = reply.get("result", {})
        return result

    def wait_event(self, method: str, session: str, since: int, timeout: float = TIMEOUT) -> dict[str, Any]:
        """The first event `method` of `session` at or after index `since` of `events`."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                for e in self.events[since:]:
                    if e.get("method") == method and e.get("sessionId") == session:
                        return e
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no {method} event from chromium")
                self._lock.wait(min(left, 0.5))

    def new_page(self, *, width: int = 1280, height: int = 900, mobile: bool = False) -> Page:
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            self.send(f"{domain}.enable", session=session)
        self.send("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile}, session=session)
        return Page(self, session)


class Page:
    """One tab."""

    def __init__(self, browser: Browser, session: str) -> None:
        self.browser = browser
        self.session = session

    def goto(self, url: str) -> None:
        since = len(self.browser.events)
        self.browser.send("Page.navigate", {"url": url}, session=self.session)
        self.browser.wait_event("Page.loadEventFired", self.session, since)

    def eval(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page."""
        result = self.browser.send("Runtime.evaluate", {"expression": expression, "returnByValue": True},
                                   session=self.session)
        assert "exceptionDetails" not in result, f"{expression}: {result['exceptionDetails']}"
        return result["result"].get("value")

    def wait_for(self, what: str, expression: str, timeout: float = TIMEOUT) -> Any:
        """Poll a JavaScript expression until it is truthy (the page changes by itself)."""
        return _poll(what, lambda: self.eval(expression), timeout)

    def screenshot(self, path: Path) -> None:
        data = self.browser.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True},
                                 session=self.session)["data"]
        path.write_bytes(base64.b64decode(data))

    @property
    def console_errors(self) -> list[str]:
        """Errors the page logged: console.error calls, uncaught exceptions, failed loads."""
        found = []
        for e in list(self.browser.events):
            if e.get("sessionId") != self.session:
                continue
            p = e.get("params", {})
            if e["method"] == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                found.append(" ".join(str(a.get("value", a.get("description", ""))) for a in p.get("args", [])))
            elif e["method"] == "Runtime.exceptionThrown":
                found.append(str(p.get("exceptionDetails", {}).get("exception", {}).get("description")
                                 or p.get("exceptionDetails", {}).get("text")))
            elif e["method"] == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
                found.append(f"{p['entry'].get('text')} {p['entry'].get('url', '')}")
        return found


def _poll(what: str, check: Callable[[], Any], timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what} (last: {last!r})")
