"""Engine API faults a real dockerd cannot produce on demand, from a real HTTP server on a
Unix socket: a newer or older API version, garbage bodies, a connection cut mid-stream."""

from __future__ import annotations

import json
import socketserver
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from reconciler.runtime import base, errors
from reconciler.runtime.docker import DockerRuntime, api
from tests.docker.conftest import push_busybox
from tests.helpers.registry import RegistryServer

Handler = Callable[[BaseHTTPRequestHandler], None]


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


def _version(api_version: str) -> bytes:
    return json.dumps({"ApiVersion": api_version, "Version": "test"}).encode()


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Callable[[dict[str, Handler]], DockerRuntime]]:
    """Start a fake engine whose routes are `{path-suffix: handler}`; yields a factory."""
    servers: list[_Server] = []
    runtimes: list[DockerRuntime] = []

    def start(routes: dict[str, Handler]) -> DockerRuntime:
        class H(BaseHTTPRequestHandler):
            seen: list[str] = []

            def log_message(self, *args: object) -> None:
                pass

            def _route(self) -> None:
                H.seen.append(self.path)
                for suffix, fn in routes.items():
                    if self.path.split("?")[0].endswith(suffix):
                        fn(self)
                        return
                self.send_response(404)
                self.send_header("Content-Type", "application/json")
                body = b'{"message":"page not found"}'
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_DELETE = _route

        sock = str(tmp_path / f"engine{len(servers)}.sock")
        server = _Server(sock, H)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        rt = DockerRuntime(sock)
        rt.seen = H.seen  # type: ignore[attr-defined]
        runtimes.append(rt)
        return rt

    try:
        yield start
    finally:
        for rt in runtimes:
            rt.close()
        for s in servers:
            s.shutdown()
            s.server_close()


def reply(status: int, body: bytes, ctype: str = "application/json") -> Handler:
    def fn(h: BaseHTTPRequestHandler) -> None:
        h.send_response(status)
        h.send_header("Content-Type", ctype)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)
    return fn


def test_newer_engine_is_spoken_to_in_our_newest_version(engine) -> None:
    rt = engine({"/version": reply(200, _version("1.47")), "/containers/json": reply(200, b"[]")})
    assert rt.list_containers() == []
    assert rt.seen[-1].startswith(f"/v{api.MAX_API_VERSION}/containers/json")
    assert rt.api.api_version == api.MAX_API_VERSION


def test_an_engine_that_refuses_our_newest_version_is_spoken_to_in_its_oldest(engine) -> None:
    """Docker 29 (Engine API 1.52) refuses every request below its MinAPIVersion 1.44."""
    def version(h: BaseHTTPRequestHandler) -> None:
        reply(200, json.dumps({"ApiVersion": "1.52", "MinAPIVersion": "1.44", "Version": "29.0.0"}).encode())(h)

    def listed(h: BaseHTTPRequestHandler) -> None:
        if h.path.startswith(f"/v{api.MAX_API_VERSION}/"):
            reply(400, b'{"message":"client version 1.43 is too old"}')(h)
        else:
            reply(200, b"[]")(h)

    rt = engine({"/version": version, "/containers/json": listed})
    assert rt.list_containers() == []
    assert rt.seen[-1].startswith("/v1.44/containers/json")
    assert rt.api.api_version == "1.44"


def test_too_old_engine_is_unavailable(engine) -> None:
    rt = engine({"/version": reply(200, _version("1.25"))})
    with pytest.raises(errors.Unavailable) as info:
        rt.list_containers()
    assert "1.25" in str(info.value)


def test_garbage_and_unknown_routes(engine) -> None:
    rt = engine({"/version": reply(200, _version("1.41")),
                 "/containers/json": reply(200, b"<html>proxy error</html>", "text/html")})
    with pytest.raises(errors.Unavailable):
        rt.list_containers()
    with pytest.raises(api.MissingRoute) as info:   # "page not found": the route is missing
        rt.api.distribution("reg/x:1")
    assert "does not implement" in str(info.value)


@pytest.mark.registry
def test_an_engine_without_distribution_has_reconciler_ask_the_registry(
        engine, registry: RegistryServer, tmp_path: Path) -> None:
    """Podman's answer to `GET /distribution/{name}/json` (a plain-text 404): the digest of a tag
    is asked of the registry by reconciler's own client, and the engine is not asked again."""
    ref, digest = push_busybox(registry, tmp_path / "layout", "faults/resolve", unique=True)
    rt = engine({"/version": reply(200, _version("1.41")), "/json": reply(404, b"404 page not found", "text/plain")})
    assert rt.resolve_digest(ref) == digest
    assert rt.resolve_digest(ref) == digest
    assert [p for p in rt.seen if "/distribution/" in p] == [f"/v1.41/distribution/{ref}/json"]
    with pytest.raises(errors.ImageNotFound):
        rt.resolve_digest(f"{registry.host}/faults/absent:1")


def test_connection_cut_mid_pull_is_unavailable(engine) -> None:
    def cut(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", "100000")
        h.end_headers()
        h.wfile.write(b'{"status":"Pulling fs layer","id":"abc"}\n')
        h.wfile.flush()
        h.connection.close()

    rt = engine({"/version": reply(200, _version("1.41")), "/images/create": cut})
    events: list[str] = []
    with pytest.raises(errors.Unavailable):
        rt.pull_image("reg/x:1", progress=lambda ev, d: events.append(ev))
    assert events == ["resolve", "layer-start"]


def test_error_in_pull_stream_is_image_error(engine) -> None:
    body = b'{"status":"Pulling from x"}\n{"errorDetail":{"message":"manifest unknown"},"error":"manifest unknown"}\n'
    rt = engine({"/version": reply(200, _version("1.41")), "/images/create": reply(200, body)})
    with pytest.raises(errors.ImageError) as info:
        rt.pull_image("reg/x:1")
    assert "manifest unknown" in str(info.value)


def test_status_codes_map_to_error_kinds(engine) -> None:
    def msg(status: int, text: str) -> Handler:
        return reply(status, json.dumps({"message": text}).encode())

    cases = {
        "/containers/a/json": (msg(404, "No such container: a"), errors.NotFound),
        "/containers/b/json": (msg(400, "bad parameter"), errors.InvalidArgument),
        "/containers/c/json": (msg(409, "conflict"), errors.Conflict),
        "/containers/d/json": (msg(500, "server error"), errors.RuntimeBackendError),
        "/containers/e/json": (reply(500, b"not json", "text/plain"), errors.RuntimeBackendError),
    }
    rt = engine({"/version": reply(200, _version("1.41")), **{k: v[0] for k, v in cases.items()}})
    for path, (_, kind) in cases.items():
        with pytest.raises(kind) as info:
            rt.inspect_container(path.split("/")[2])
        assert type(info.value) is kind


def test_network_create_is_asked_again_when_a_host_link_vanished_meanwhile(engine) -> None:
    # Podman lists the host's links, then their addresses, to pick a subnet: a veth removed in
    # between fails the create with Go's error (seen in CI beside tests removing their links).
    # Nothing was made, so the engine asks again; any other failure is raised at once.
    made: list[dict[str, object]] = []
    creates: list[int] = []

    def create(h: BaseHTTPRequestHandler) -> None:
        body = json.loads(h.rfile.read(int(h.headers["Content-Length"])))
        creates.append(1)
        if len(creates) == 1:
            reply(500, b'{"message":"route ip+net: no such network interface"}')(h)
            return
        made.append({"Name": body["Name"], "Id": "n1", "Driver": "bridge", "IPAM": {"Config": [{"Subnet": "10.9.0.0/24"}]},
                     "Internal": False, "EnableIPv6": False, "Labels": body["Labels"], "Options": {}})
        reply(201, b'{"Id":"n1"}')(h)

    def inspect(h: BaseHTTPRequestHandler) -> None:
        if made:
            reply(200, json.dumps(made[0]).encode())(h)
        else:
            reply(404, b'{"message":"network lan not found"}')(h)

    rt = engine({"/version": reply(200, _version("1.41")), "/networks/create": create, "/networks/lan": inspect})
    state = rt.ensure_network(base.NetworkConfig(name="lan", labels={"a": "b"}))
    assert len(creates) == 2
    assert state.subnet == "10.9.0.0/24"

    creates.clear()
    made.clear()
    refused = engine({"/version": reply(200, _version("1.41")), "/networks/lan": inspect,
                      "/networks/create": reply(500, b'{"message":"subnet pool exhausted"}')})
    with pytest.raises(errors.RuntimeBackendError, match="exhausted"):
        refused.ensure_network(base.NetworkConfig(name="lan"))
    assert refused.seen.count(next(p for p in refused.seen if "/networks/create" in p)) == 1


def test_inspect_is_asked_again_when_the_containers_process_ended_while_it_was_read(engine) -> None:
    # Podman answers an inspect from /proc/<pid>/cgroup; a process that ended in between (a
    # restart policy at work) fails it with "no such process" (seen in CI). The engine asks again.
    answers = [reply(500, b'{"message":"read /proc/29595/cgroup: no such process"}'),
               reply(200, json.dumps({"Id": "c1", "Name": "/flaky", "Config": {"Image": "x", "Labels": {}},
                                      "Image": "sha256:1", "Created": "2026-01-01T00:00:00Z",
                                      "State": {"Status": "exited", "ExitCode": 1}, "RestartCount": 2}).encode())]
    calls: list[int] = []

    def inspect(h: BaseHTTPRequestHandler) -> None:
        calls.append(1)
        answers[min(len(calls), 2) - 1](h)

    rt = engine({"/version": reply(200, _version("1.41")), "/containers/flaky/json": inspect})
    state = rt.inspect_container("flaky")
    assert len(calls) == 2
    assert state.restart_count == 2


def _created(bodies: list[dict[str, object]]) -> Handler:
    def create(h: BaseHTTPRequestHandler) -> None:
        bodies.append(json.loads(h.rfile.read(int(h.headers["Content-Length"]))))
        reply(201, b'{"Id":"c1"}')(h)
    return create


QUICK = base.ContainerConfig(name="quick", image="x", healthcheck=base.Healthcheck(
    ("CMD", "true"), interval=60, start_period=120, start_interval=0.5))


def test_a_start_interval_goes_at_api_1_44_to_an_engine_that_has_it(engine) -> None:
    """dockerd drops StartInterval from a request older than 1.44 (moby's container router):
    the create goes at 1.44, above the version spoken, as a Swarm spec goes at its fields'."""
    bodies: list[dict[str, object]] = []
    rt = engine({"/version": reply(200, _version("1.45")), "/containers/create": _created(bodies)})
    assert rt.create_container(QUICK) == "c1"
    assert rt.seen[-1].startswith("/v1.44/containers/create")
    assert bodies[0]["Healthcheck"] == {"Test": ["CMD", "true"], "Interval": 60 * 10**9, "Timeout": 30 * 10**9,
                                        "Retries": 3, "StartPeriod": 120 * 10**9, "StartInterval": 5 * 10**8}
    rt.create_container(replace(QUICK, healthcheck=replace(QUICK.healthcheck, start_interval=0.0)))
    assert rt.seen[-1].startswith(f"/v{api.MAX_API_VERSION}/containers/create")   # none: the version spoken
    assert "StartInterval" not in bodies[1]["Healthcheck"]                       # type: ignore[operator]


def test_a_start_interval_is_refused_by_an_engine_older_than_docker_25(engine) -> None:
    rt = engine({"/version": reply(200, _version("1.41")), "/containers/create": reply(201, b'{"Id":"c1"}')})
    with pytest.raises(errors.InvalidArgument) as info:
        rt.create_container(QUICK)
    assert info.value.message == (
        "container quick: healthcheck.startInterval needs Engine API 1.44 (Docker 25 or later), and docker speaks "
        "1.41: it would drop it without a word and probe every interval from the start")
    assert "remove startInterval" in (info.value.hint or "")
    assert not [p for p in rt.seen if "/containers/create" in p]                 # nothing made


@pytest.mark.parametrize(("api_version", "first"), [("1.44", 0.5), ("1.41", 60.0)])
def test_the_first_probe_is_what_the_engines_version_does_with_the_merged_healthcheck(
    engine, api_version: str, first: float,
) -> None:
    """Docker 25 probes at the start interval during the start period; an older one at the interval."""
    attrs = {"Id": "c1", "Name": "/quick", "Image": "sha256:1", "Created": "2026-01-01T00:00:00Z",
             "Config": {"Image": "x", "Labels": {}, "Healthcheck": {
                 "Test": ["CMD", "true"], "Interval": 60 * 10**9, "StartPeriod": 120 * 10**9,
                 "StartInterval": 5 * 10**8}},
             "State": {"Status": "running", "Health": {"Status": "starting"}}}
    rt = engine({"/version": reply(200, _version(api_version)),
                 "/containers/quick/json": reply(200, json.dumps(attrs).encode())})
    assert rt.inspect_container("quick").first_probe == first
