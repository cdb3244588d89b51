"""`/events` of the native engine's Engine API, read by the real docker CLI and docker-py: the
engine's own lifecycle (a container that dies by itself too), filters, since/until."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.api.test_engine_api import docker, request
from tests.api.test_engine_api import engine_api as engine_api  # the fixture
from tests.api.test_engine_api import pytestmark as pytestmark  # root, registry, docker CLI
from tests.api.test_engine_api_filters import LABEL, Both, own_image
from tests.api.test_engine_api_filters import both as both  # the fixture: ours beside dockerd
from tests.helpers.registry import RegistryServer


def _watch(sock: str, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "DOCKER_HOST": f"unix://{sock}"}
    env.pop("DOCKER_CONTEXT", None)
    return subprocess.Popen(["docker", "events", "--format", "{{json .}}", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _read_until(proc: subprocess.Popen[str], done: Any, timeout: float = 30) -> list[dict[str, Any]]:
    import selectors

    assert proc.stdout is not None
    got: list[dict[str, Any]] = []
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    while not done(got):
        assert time.monotonic() < deadline, f"events so far: {[(e['Type'], e['Action']) for e in got]}"
        if sel.select(0.5):
            line = proc.stdout.readline()
            assert line, f"docker events ended: {proc.stderr.read() if proc.stderr else ''}"
            got.append(json.loads(line))
    return got


def test_docker_events_streams_the_engines_lifecycle(engine_api: str, busybox_image: str) -> None:
    docker(engine_api, "pull", busybox_image)
    t0 = time.time()
    watch = _watch(engine_api, "--filter", "type=container")
    try:
        time.sleep(0.5)                         # the stream is open: it starts from now
        cid = docker(engine_api, "run", "-d", "--name", "ev", "--network", "none", "-l", "team=a",
                     busybox_image, "sh", "-c", "sleep 1; exit 3").stdout.strip()
        # nobody stops it: its death is the engine's own, seen in conmon's exit file
        events = _read_until(watch, lambda g: any(e["Action"] == "die" for e in g))
        assert [e["Action"] for e in events] == ["create", "start", "die"]
        die = events[-1]
        assert die["Actor"]["ID"] == cid
        assert die["Actor"]["Attributes"]["exitCode"] == "3"
        assert die["Actor"]["Attributes"]["name"] == "ev"
        assert die["Actor"]["Attributes"]["team"] == "a"              # labels, as Docker gives them
        assert die["Actor"]["Attributes"]["image"] == busybox_image
        assert (die["status"], die["id"], die["from"]) == ("die", cid, busybox_image)
        docker(engine_api, "rm", "ev")
        assert [e["Action"] for e in _read_until(watch, lambda g: bool(g))] == ["destroy"]
    finally:
        watch.terminate()
        watch.communicate(timeout=10)

    docker(engine_api, "run", "-d", "--name", "other", "--network", "none", busybox_image, "sleep", "60")
    docker(engine_api, "stop", "-t", "1", "other")          # sleep as PID 1 ignores SIGTERM: then SIGKILL
    docker(engine_api, "rm", "other")
    t1 = time.time()
    docker(engine_api, "volume", "create", "later")
    docker(engine_api, "volume", "rm", "later")

    def past(*args: str) -> list[tuple[str, str, str]]:
        out = docker(engine_api, "events", "--since", f"{t0:.3f}", "--until", f"{t1:.3f}", "--format",
                     "{{json .}}", *args).stdout                       # ends by itself: until is past
        return [(e["Type"], e["Action"], e["Actor"]["Attributes"].get("name", "")) for e in map(json.loads,
                                                                                                out.splitlines())]

    assert past("--filter", "container=other") == [
        ("container", "create", "other"), ("container", "start", "other"), ("container", "kill", "other"),
        ("container", "kill", "other"), ("container", "die", "other"), ("container", "stop", "other"), ("container", "destroy", "other")]
    assert past("--filter", "event=die") == [("container", "die", "ev"), ("container", "die", "other")]
    assert past("--filter", "label=team=a", "--filter", "event=start") == [("container", "start", "ev")]
    signals = docker(engine_api, "events", "--since", f"{t0:.3f}", "--until", f"{t1:.3f}", "--filter",
                     "event=kill", "--format", "{{.Actor.Attributes.signal}}").stdout.split()
    assert signals == ["15", "9"]
    assert ("image", "pull", busybox_image) not in past()               # before since
    assert past("--filter", "type=volume") == []                        # after until
    later = docker(engine_api, "events", "--since", f"{t1:.3f}", "--until", f"{time.time():.3f}",
                   "--filter", "type=volume", "--format", "{{.Action}} {{.Actor.ID}}").stdout.split("\n")
    assert later[:2] == ["create later", "destroy later"]


def test_docker_py_reads_events_with_filters(engine_api: str, busybox_image: str) -> None:
    docker_py = pytest.importorskip("docker")
    client = docker_py.DockerClient(base_url=f"unix://{engine_api}", version="1.41")
    try:
        since = time.time()
        client.images.pull(busybox_image)
        c = client.containers.run(busybox_image, ["sleep", "60"], name="pyev", network_mode="none", detach=True)
        c.kill()
        c.remove()
        events = list(client.events(since=since, until=time.time() + 1, decode=True,
                                    filters={"container": "pyev"}))
        assert [e["Action"] for e in events] == ["create", "start", "kill", "die", "destroy"]
        assert events[2]["Actor"]["Attributes"]["signal"] == "9"
        images = list(client.events(since=since, until=time.time(), decode=True, filters={"type": "image"}))
        assert [(e["Action"], e["Actor"]["ID"]) for e in images] == [("pull", busybox_image)]
    finally:
        client.close()


def test_health_status_events_and_tty_logs(engine_api: str, busybox_image: str) -> None:
    docker(engine_api, "pull", busybox_image)
    since = time.time()
    docker(engine_api, "run", "-d", "--name", "probed", "--network", "none", "--health-cmd", "test -e /tmp/ok",
           "--health-interval", "1s", "--health-retries", "1", busybox_image, "sh", "-c",
           "touch /tmp/ok; sleep 3; rm /tmp/ok; sleep 3600")

    def statuses() -> list[str]:
        out = docker(engine_api, "events", "--since", f"{since:.3f}", "--until", f"{time.time():.3f}",
                     "--filter", "event=health_status", "--format", "{{.Action}}").stdout
        return out.split("\n")[:-1]

    deadline = time.monotonic() + 30
    while statuses() != ["health_status: healthy", "health_status: unhealthy"]:   # once per change
        assert time.monotonic() < deadline, statuses()
        time.sleep(0.5)
    docker(engine_api, "rm", "-f", "probed")

    docker(engine_api, "run", "-d", "-t", "--name", "term", "--network", "none", busybox_image, "sh", "-c",
           "echo on-a-terminal")
    docker(engine_api, "wait", "term")
    logs = docker(engine_api, "logs", "term")
    assert logs.stdout.strip() == "on-a-terminal"       # one raw stream: no frame headers in it
    docker(engine_api, "rm", "term")


def test_attach_and_network_events_as_dockerd(both: Both, registry: RegistryServer, tmp_path: Path) -> None:
    """dockerd journals an `attach` for each attach (`docker run` in the foreground, `docker
    attach`) and a network `connect` on each network a container starts on (the default bridge,
    `none`, `host` too), a `disconnect` when the run ends or the start fails; `docker events`
    showed none of them here (the network events came only from `docker network connect` and
    `disconnect`). Side by side with the host's dockerd, the same events in the same order."""
    p, label = both.prefix, f"{LABEL}={both.prefix}"
    ref = own_image(both, registry, tmp_path, "ev")
    since = time.time()
    both.run("run", "--name", f"{p}-fg", "-l", label, ref, "sh", "-c", "sleep 0.5; echo hi")
    both.run("run", "--name", f"{p}-nx", "-l", label, ref, "/nonexistent", check=False)
    both.run("run", "-d", "--name", f"{p}-up", "-l", label, "--network", "none", ref, "sleep", "600")
    for side, sock in both.socks.items():
        code, _, _ = request(sock, "POST", f"/v1.41/containers/{p}-up/attach?logs=1&stream=0&stdout=1")
        assert code == 200, side
    both.run("kill", f"{p}-up")
    names = {}
    for sock in both.socks.values():
        for line in docker(sock, "ps", "-a", "--no-trunc", "-f", f"label={label}", "--format",
                           "{{.ID}} {{.Names}}").stdout.splitlines():
            cid, name = line.split()
            names[cid] = name.removeprefix(f"{p}-")
    both.run("rm", f"{p}-fg", f"{p}-nx", f"{p}-up")
    until = time.time() + 0.5
    run_ = [("container", "create"), ("container", "attach"), ("network", "connect bridge")]
    want = {
        "fg": [*run_, ("container", "start"), ("container", "die"), ("network", "disconnect bridge"),
               ("container", "destroy")],
        "nx": [*run_, ("network", "disconnect bridge"), ("container", "destroy")],
        "up": [("container", "create"), ("network", "connect none"), ("container", "start"), ("container", "attach"),
               ("container", "kill"), ("container", "die"), ("network", "disconnect none"), ("container", "destroy")],
    }
    for side, sock in both.socks.items():
        got: dict[str, list[tuple[str, str]]] = {}
        out = docker(sock, "events", "--since", f"{since:.3f}", "--until", f"{until:.3f}", "--format",
                     "{{json .}}").stdout
        for ev in map(json.loads, out.splitlines()):
            attrs = ev["Actor"]["Attributes"]
            if ev["Type"] == "container" and ev["Actor"]["ID"] in names:
                got.setdefault(names[ev["Actor"]["ID"]], []).append(("container", ev["Action"]))
            elif ev["Type"] == "network" and attrs.get("container") in names:
                assert attrs["type"] == {"bridge": "bridge", "none": "null"}[attrs["name"]], (side, ev)
                got.setdefault(names[attrs["container"]], []).append(("network", f"{ev['Action']} {attrs['name']}"))
        assert got == want, side
