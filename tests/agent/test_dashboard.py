"""The read-only dashboard of a real agent process: on its socket at /, and on TCP behind a
token; sources with their problems (escaped), containers, passes, live events, logs."""

from __future__ import annotations

import http.client
import re
import socket
import textwrap
import time
from pathlib import Path

import pytest

from reconciler.runtime.fake import FakeRuntime
from tests.agent.conftest import WAIT, AgentProc, free_port, wait_for
from tests.agent.test_native import doc
from tests.execution.helpers import IMG, container_doc, write

TOKEN = "dash-token-of-this-test"
SECRET = "never-on-the-dashboard"


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: Path) -> None:
        super().__init__("localhost", timeout=30)
        self.path = str(path)

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.path)


def get(conn: http.client.HTTPConnection, path: str, **headers: str) -> tuple[int, dict[str, str], str]:
    conn.request("GET", path, headers=headers)
    r = conn.getresponse()
    body = r.read().decode()
    return r.status, {k.lower(): v for k, v in r.getheaders()}, body


@pytest.fixture
def agent(tmp_path: Path, agents: list[AgentProc]) -> AgentProc:
    (tmp_path / "dash.token").write_text(TOKEN + "\n")
    a = AgentProc(tmp_path, sources=[{"name": "local", "directory": str(tmp_path / "m")}],
                  dashboard={"listen": f"127.0.0.1:{free_port()}", "token_file": str(tmp_path / "dash.token")})
    FakeRuntime.at_root(a.root).publish(IMG)
    (tmp_path / "m").mkdir()
    agents.append(a)
    return a


def test_the_dashboard_shows_sources_containers_passes_and_problems_escaped(tmp_path: Path, agent: AgentProc) -> None:
    write(tmp_path / "m", "web.yaml", container_doc("web", extra=f"""
        ports: ["127.0.0.1:{free_port()}:80"]
        env: {{DB_PASSWORD: {SECRET}}}
        """))
    agent.start()
    wait_for("converged", lambda: agent.source("local")["last_result"] == "converged")
    tcp = http.client.HTTPConnection("127.0.0.1", int(agent.config["dashboard"]["listen"].rsplit(":", 1)[1]), timeout=30)

    status, _, _ = get(tcp, "/")
    assert status == 401                                           # TCP needs the token
    status, _, _ = get(tcp, "/", Authorization="Bearer wrong")
    assert status == 401
    status, headers, page = get(tcp, "/", Authorization=f"Bearer {TOKEN}")
    assert status == 200
    assert headers["content-type"].startswith("text/html")
    for shown in (">local<", ">web<", "converged", "-&gt;80/tcp", "sha256:", "not found"):
        assert shown in page                                        # ... ports, digest, causes of the plan
    assert SECRET not in page
    assert "<script src" not in page                               # nothing from a CDN
    assert "http" not in page.split("</style>")[0]

    status, headers, _ = get(tcp, f"/?token={TOKEN}")               # a browser: the token once, then a cookie
    assert status == 303
    cookie = headers["set-cookie"].split(";")[0]
    assert "HttpOnly" in headers["set-cookie"]
    assert get(tcp, "/", Cookie=cookie)[0] == 200

    (tmp_path / "m" / "api.yaml").write_text(textwrap.dedent("""\
        apiVersion: reconciler/v1
        kind: Container
        metadata: {name: api}
        spec: {image: "<script>alert(1)</script>"}
        """))
    wait_for("refused", lambda: agent.source("local")["problems"])
    page = get(tcp, "/", Authorization=f"Bearer {TOKEN}")[2]
    assert "api.yaml:4" in page                                     # the user's file:line
    assert "<script>alert(1)" not in page
    assert "&lt;script&gt;alert(1)" in page

    unix = UnixHTTPConnection(agent.socket)
    sock_page = get(unix, "/")                                      # the socket needs no token
    unix.close()
    assert sock_page[0] == 200
    assert ">web<" in sock_page[2]
    assert get(tcp, "/v1/status", Authorization=f"Bearer {TOKEN}")[0] == 404    # TCP: the dashboard only
    tcp.request("POST", "/", body=b"{}", headers={"Authorization": f"Bearer {TOKEN}"})
    assert tcp.getresponse().status == 405                          # read-only
    tcp.close()


def test_the_dashboard_shows_image_policies_with_their_listing_error(tmp_path: Path, agent: AgentProc) -> None:
    """Per container with an update policy: the policy, its mode, the tag it runs, the newest
    allowed (none: no listing), when the tags were last asked for, and why that failed."""
    repo = f"127.0.0.1:{free_port()}/shop/web"                    # nothing listens there
    FakeRuntime.at_root(agent.root).publish(f"{repo}:1.4.1")
    policy = f'{{track: "{repo}:1.4.1", policy: {{semver: ">=1.4 <2"}}, mode: notify}}'
    write(tmp_path / "m", "web.yaml", container_doc("web", image=policy))
    agent.start()
    wait_for("converged", lambda: agent.source("local")["last_result"] == "converged")
    wait_for("the listing's failure", lambda: agent.source("local")["images"][0]["error"])
    unix = UnixHTTPConnection(agent.socket)
    try:
        page = get(unix, "/")[2]
    finally:
        unix.close()
    images = page.split('<div id="images">')[1].split("</div>")[0]
    cells = dict(re.findall(r'<td data-label="([^"]+)">(.*?)</td>', images))
    assert repo in cells["container"]
    assert ">web<" in cells["container"]
    assert cells["policy"] == "<code>semver &#x27;&gt;=1.4 &lt;2&#x27;</code>"
    assert cells["mode"] == "notify"
    assert cells["running"] == "<code>1.4.1</code>"
    assert cells["newest allowed"] == "-"
    assert cells["last check"].startswith('<time data-ts="')
    assert "Error" in cells["error"]
    assert 'class="bad"' in cells["error"]


def test_the_dashboard_follows_events_live(tmp_path: Path, agent: AgentProc) -> None:
    write(tmp_path / "m", "web.yaml", container_doc("web"))
    agent.start()
    wait_for("converged", lambda: agent.source("local")["last_result"] == "converged")
    port = int(agent.config["dashboard"]["listen"].rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(f"GET /ui/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n\r\n".encode())
        head = s.recv(4096).decode()
        assert "200" in head.splitlines()[0]
        assert "text/event-stream" in head
        write(tmp_path / "m", "api.yaml", container_doc("api"))
        seen, deadline = "", time.monotonic() + WAIT
        while '"type": "pass"' not in seen or "ui/logs/api" not in seen:
            assert time.monotonic() < deadline, f"no pass event and new sections in: {seen[-2000:]}"
            chunk = s.recv(65536).decode()
            assert chunk, "the stream ended"
            seen += chunk
    assert "data: {" in seen
    assert "event: sections" in seen                               # the page's parts, re-rendered


@pytest.mark.root
@pytest.mark.registry
@pytest.mark.slow
def test_a_containers_logs_on_the_dashboard(tmp_path: Path, native_agent: AgentProc, busybox_image: str) -> None:
    a = native_agent
    (tmp_path / "m" / "web.yaml").write_text(doc("web", busybox_image, "echo hello-from-web; sleep 3600"))
    a.start()
    wait_for("web running", lambda: any(o.get("status") == "running" for o in a.source("host")["objects"]))
    conn = UnixHTTPConnection(a.socket)
    try:
        wait_for("its output", lambda: "hello-from-web" in get(conn, "/ui/logs/web")[2])
        assert get(conn, "/ui/logs/not-ours")[0] == 404
    finally:
        conn.close()


@pytest.mark.root
@pytest.mark.registry
@pytest.mark.slow
def test_containers_no_source_manages_are_on_the_dashboard_and_in_status_marked_so(
        tmp_path: Path, native_agent: AgentProc, busybox_image: str) -> None:
    """A container made with `reconcile run` is in `ps`; the dashboard lists it too, with its
    state and logs, its source cell saying it is not managed by a source, and so does `reconcile
    status` in its text, after the sources: `not managed by a source:` and a table with its
    owner. Before, the dashboard left it out, and later `status` did (only its JSON had it): both
    showed a host with fewer containers than `ps`."""
    from tests.agent.test_thin_cli import reconcile

    a = native_agent
    (tmp_path / "m" / "web.yaml").write_text(doc("web", busybox_image, "sleep 3600"))
    a.start()
    wait_for("web running", lambda: any(o.get("status") == "running" for o in a.source("host")["objects"]))
    made = reconcile(a, "run", "-d", "--name", "adhoc", busybox_image, "sh", "-c", "echo hello-from-adhoc; sleep 3600")
    assert made.returncode == 0, made.stderr
    try:
        assert "adhoc" in reconcile(a, "ps").stdout
        unmanaged = wait_for("adhoc in status", lambda: [o for o in a.status()["unmanaged"] if o["name"] == "adhoc"])
        assert (unmanaged[0]["status"], unmanaged[0]["owner"]) == ("running", None)
        assert [o["name"] for o in a.status()["unmanaged"]] == ["adhoc"]     # the source's own: not twice
        conn = UnixHTTPConnection(a.socket)
        try:
            def shown() -> str:
                page = get(conn, "/")[2]
                return page if "hello-from-adhoc" in page else ""

            page = wait_for("adhoc's output on the page", shown)
            assert "hello-from-adhoc" in get(conn, "/ui/logs/adhoc")[2]
        finally:
            conn.close()
        rows = _container_rows(page)
        assert set(rows) == {"web", "adhoc"}
        assert '<td data-label="source">host</td>' in rows["web"]
        assert '<td data-label="source"><span class="muted">not managed by a source</span></td>' in rows["adhoc"]
        assert '<span class="ok">running</span>' in rows["adhoc"]

        shown = reconcile(a, "status")
        assert shown.returncode == 0, shown.stdout + shown.stderr
        sources, sep, others = shown.stdout.partition("\nnot managed by a source:\n")
        assert sep, shown.stdout
        header, *rest = others.splitlines()
        assert header.split() == ["CONTAINER", "ID", "STATUS", "HEALTH", "RESTARTS", "FLAPPING", "OWNER"]
        assert [r.split() for r in rest] == [["adhoc", unmanaged[0]["id"], "running", "0", "-"]]
        assert "adhoc" not in sources                                       # each container once
        assert "web" in sources
    finally:
        reconcile(a, "rm", "-f", "adhoc")


def _container_rows(page: str) -> dict[str, str]:
    """The containers table's rows by container name."""
    table = page.split('<div id="containers">')[1].split("</table>")[0]
    return {m.group(1): row for row in table.split("<tr>")[1:] if (m := re.search(r'href="ui/logs/([^"]+)"', row))}


def test_a_container_of_another_owner_is_marked_with_its_owner() -> None:
    """`reconcile apply --owner team` on the agent's root: not a source of the agent, so not
    managed by one, and its owner label says whose it is."""
    from reconciler.api import dashboard

    status = {"sources": [], "unmanaged": [
        {"kind": "Container", "name": "job", "id": "0123456789ab", "status": "exited", "exit_code": 0,
         "health": None, "restart_count": 0, "image": "busybox", "digest": "", "ports": [], "revision": "",
         "flapping": False, "owner": "team<b>"}]}
    rows = _container_rows('<div id="containers">' + dashboard.sections(status, [], {})["containers"] + "</div>")
    assert '<span class="muted">not managed by a source (owner team&lt;b&gt;)</span>' in rows["job"]
    assert "exited</span> (0)" in rows["job"]
