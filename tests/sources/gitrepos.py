"""Real git repositories for source tests: an upstream bare repo with a working clone that
pushes to it, and a smart-HTTP server on 127.0.0.1 (git http-backend behind an optional
token check) for HTTPS, auth and unreachable-remote tests."""

from __future__ import annotations

import base64
import os
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ENV = {
    **os.environ,
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@example.invalid",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.invalid",
    "GIT_CONFIG_NOSYSTEM": "1",
    "HOME": "/nonexistent",
}


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, env=ENV, check=True, capture_output=True, text=True).stdout.strip()


class Upstream:
    """`bare` is what sources fetch from; `work` is a clone that commits and pushes."""

    def __init__(self, root: Path, name: str = "manifests") -> None:
        self.bare = root / f"{name}.git"
        self.work = root / f"{name}-work"
        root.mkdir(parents=True, exist_ok=True)
        git(root, "init", "--quiet", "--bare", "--initial-branch=main", str(self.bare))
        git(root, "init", "--quiet", "--initial-branch=main", str(self.work))
        git(self.work, "remote", "add", "origin", str(self.bare))

    def commit(self, files: dict[str, str | None], message: str = "change", *, push: bool = True) -> str:
        """Write (or with None delete) files, commit, push; returns the commit id."""
        for rel, text in files.items():
            p = self.work / rel
            if text is None:
                p.unlink()
            else:
                p.parent.mkdir(parents=True, exist_ok=True)
                p.write_text(text)
        git(self.work, "add", "--all")
        git(self.work, "commit", "--quiet", "--allow-empty", "-m", message)
        if push:
            self.push()
        return git(self.work, "rev-parse", "HEAD")

    def push(self, *, force: bool = False, ref: str = "main") -> None:
        git(self.work, "push", "--quiet", *(["--force"] if force else []), "origin", ref)

    def tag(self, name: str, *, message: str | None = None) -> None:
        if message is None:
            git(self.work, "tag", "--force", name)
        else:
            git(self.work, "tag", "--force", "-a", name, "-m", message)
        git(self.work, "push", "--quiet", "--force", "origin", f"refs/tags/{name}")


class GitHTTPServer:
    """Smart HTTP for every bare repo under `root`, at http://127.0.0.1:PORT/<name>.git.

    With `token`, requests without `Authorization: Basic base64(any:token)` get 401, like a
    forge; `seen_auth` records the Authorization headers received."""

    def __init__(self, root: Path, *, token: str | None = None, redirect: str | None = None) -> None:
        self.root = root
        self.token = token
        self.redirect = redirect  # answer every request with a 302 to this base URL
        self.seen_auth: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                self._cgi()

            def do_POST(self) -> None:
                self._cgi()

            def _cgi(self) -> None:
                auth = self.headers.get("Authorization", "")
                if auth:
                    server.seen_auth.append(auth)
                if server.redirect is not None:
                    self.send_response(302)
                    self.send_header("Location", server.redirect + self.path)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if server.token is not None and not _token_ok(auth, server.token):
                    self.send_response(401)
                    self.send_header("WWW-Authenticate", 'Basic realm="git"')
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                path, _, query = self.path.partition("?")
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                env = {
                    "PATH": os.environ["PATH"],
                    "GIT_PROJECT_ROOT": str(server.root),
                    "GIT_HTTP_EXPORT_ALL": "1",
                    "REQUEST_METHOD": self.command,
                    "PATH_INFO": path,
                    "QUERY_STRING": query,
                    "CONTENT_TYPE": self.headers.get("Content-Type", ""),
                    "CONTENT_LENGTH": str(len(body)),
                    "REMOTE_ADDR": "127.0.0.1",
                }
                if self.headers.get("Content-Encoding"):
                    env["HTTP_CONTENT_ENCODING"] = self.headers["Content-Encoding"]
                if self.headers.get("Git-Protocol"):
                    env["GIT_PROTOCOL"] = self.headers["Git-Protocol"]
                out = subprocess.run(["git", "http-backend"], input=body, env=env, capture_output=True, check=False).stdout
                head, _, payload = out.partition(b"\r\n\r\n")
                status = 200
                headers = []
                for line in head.decode("latin-1").split("\r\n"):
                    name, _, value = line.partition(":")
                    if name.lower() == "status":
                        status = int(value.strip().split()[0])
                    elif name:
                        headers.append((name, value.strip()))
                self.send_response(status)
                for name, value in headers:
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()


def _token_ok(header: str, token: str) -> bool:
    scheme, _, value = header.partition(" ")
    if scheme != "Basic":
        return False
    try:
        _user, _, password = base64.b64decode(value).decode().partition(":")
    except ValueError:
        return False
    return password == token
