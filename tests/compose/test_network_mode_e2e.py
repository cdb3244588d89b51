"""`network_mode: service:web` for real on the native engine (root, a real registry, runc + conmon).

`sidecar` joins `web`'s network namespace: it reaches web's server on its own 127.0.0.1, sees
web's hosts file, and is replaced when web is. One engine per test (tests/helpers/host.py);
teardown removes everything and fails the test if anything is left.
"""

from __future__ import annotations

import os
import subprocess
import textwrap
import time
import urllib.request
from pathlib import Path

import pytest

from tests.helpers.host import Host
from tests.helpers.ports import publish_port

pytestmark = [pytest.mark.root, pytest.mark.registry, pytest.mark.slow]

COMPOSE = """
    name: joined
    services:
      web:
        image: {image}
        command: sh -c 'mkdir -p /srv && echo {answer} > /srv/index.html && exec httpd -f -p 8000 -h /srv'
        stop_grace_period: 1s
      sidecar:
        image: {image}
        network_mode: service:web
        command: ["sleep", "3600"]
        stop_grace_period: 1s
    """


def fetch_in(host: Host, container: str, expect: str, timeout: float = 15.0) -> None:
    rt = host.runtime()
    try:
        deadline = time.monotonic() + timeout
        while True:
            res = rt.exec(container, ["timeout", "3", "wget", "-qO-", "http://127.0.0.1:8000/"])
            if (res.exit_code, res.stdout.decode().strip()) == (0, expect):
                return
            assert time.monotonic() < deadline, f"{container} got {res.exit_code} {res.stdout!r} {res.stderr!r}"
            time.sleep(0.2)
    finally:
        rt.close()


def test_a_service_joining_anothers_network_reaches_it_on_loopback(
    tmp_path: Path, host: Host, busybox_image: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    for var in ("COMPOSE_PROJECT_NAME", "COMPOSE_PROFILES", "COMPOSE_FILE"):
        monkeypatch.delenv(var, raising=False)
    project = tmp_path / "joined"
    project.mkdir()
    compose = project / "compose.yaml"
    compose.write_text(textwrap.dedent(COMPOSE.format(image=busybox_image, answer="first")))

    assert host.cli("apply", str(project)) == 0
    fetch_in(host, "joined-sidecar-1", "first")                   # web's server, on the sidecar's 127.0.0.1
    rt = host.runtime()
    try:
        web_hosts = rt.exec("joined-web-1", ["cat", "/etc/hosts"]).stdout
        assert rt.exec("joined-sidecar-1", ["cat", "/etc/hosts"]).stdout == web_hosts
    finally:
        rt.close()
    ids = host.ids()

    # web replaced: the sidecar, whose namespace went with it, is replaced after it
    compose.write_text(textwrap.dedent(COMPOSE.format(image=busybox_image, answer="second")))
    assert host.cli("apply", str(project)) == 0
    after = host.ids()
    assert after["joined-web-1"] != ids["joined-web-1"]
    assert after["joined-sidecar-1"] != ids["joined-sidecar-1"]
    fetch_in(host, "joined-sidecar-1", "second")
    assert host.cli("diff", str(project)) == 0


ISOLATED = """
    name: isolated
    services:
      box:
        image: {image}
        command: sh -c 'mkdir -p /srv && echo boxed > /srv/index.html && exec httpd -f -p 127.0.0.1:8000 -h /srv'
        network_mode: none
        stop_grace_period: 1s
      sidecar:
        image: {image}
        command: ["sleep", "3600"]
        network_mode: service:box
        stop_grace_period: 1s
    """


def test_a_service_joining_one_without_a_network_shares_its_loopback_alone(
    tmp_path: Path, host: Host, busybox_image: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`network_mode: service:box` where box has `network_mode: none`: docker-compose and the
    Docker backend run it (the sidecar joins box's namespace, which has its loopback only); the
    native engine refused it ("box has no network namespace of its own to join")."""
    for var in ("COMPOSE_PROJECT_NAME", "COMPOSE_PROFILES", "COMPOSE_FILE"):
        monkeypatch.delenv(var, raising=False)
    project = tmp_path / "isolated"
    project.mkdir()
    (project / "compose.yaml").write_text(textwrap.dedent(ISOLATED.format(image=busybox_image)))

    assert host.cli("apply", str(project)) == 0
    rt = host.runtime()
    try:
        def run(container: str, *argv: str) -> str:
            res = rt.exec(container, list(argv))
            assert res.exit_code == 0, (container, argv, res.stderr)
            return res.stdout.decode().strip()

        links = [line.split(":")[0] for line in run("isolated-sidecar-1", "cat", "/proc/net/dev").splitlines()[2:]]
        assert [n.strip() for n in links] == ["lo"]
    finally:
        rt.close()
    fetch_in(host, "isolated-sidecar-1", "boxed")       # box's server on the sidecar's 127.0.0.1: one namespace
    ids = host.ids()
    # the sidecar restarted (its process ended) joins box's namespace again, and so it does after
    # box restarted (a new process, a new namespace)
    rt = host.runtime()
    try:
        rt.stop_container("isolated-sidecar-1", timeout=1)
        rt.start_container("isolated-sidecar-1")
        fetch_in(host, "isolated-sidecar-1", "boxed")
        rt.stop_container("isolated-box-1", timeout=1)
        rt.start_container("isolated-box-1")
        rt.stop_container("isolated-sidecar-1", timeout=1)
        rt.start_container("isolated-sidecar-1")
        fetch_in(host, "isolated-sidecar-1", "boxed")
    finally:
        rt.close()
    assert host.cli("diff", str(project)) == 0
    assert host.ids() == ids


ON_HOST = """
    name: hostjoin
    services:
      box:
        image: {image}
        command: sh -c 'mkdir -p /srv && echo onhost > /srv/index.html && exec httpd -f -p 127.0.0.1:{port} -h /srv'
        network_mode: host
        stop_grace_period: 1s
      sidecar:
        image: {image}
        command: ["sleep", "3600"]
        network_mode: service:box
        stop_grace_period: 1s
    """


def test_a_service_joining_one_on_the_host_network_is_on_the_host_network(
    tmp_path: Path, host: Host, busybox_image: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`network_mode: service:box` where box has `network_mode: host`: Docker runs it (the
    sidecar joins box's namespace, the host's: the host's links and name, box's hosts file), and
    so does docker-compose; the native engine refused it ("box has no network namespace of its
    own to join")."""
    for var in ("COMPOSE_PROJECT_NAME", "COMPOSE_PROFILES", "COMPOSE_FILE"):
        monkeypatch.delenv(var, raising=False)
    port = publish_port()
    project = tmp_path / "hostjoin"
    project.mkdir()
    (project / "compose.yaml").write_text(textwrap.dedent(ON_HOST.format(image=busybox_image, port=port)))
    # a link of the test's own in the host's namespace: the sidecar sees it if it is there too
    mark, peer = f"{host.config.name_prefix}hj0", f"{host.config.name_prefix}hj1"
    subprocess.run(["ip", "link", "add", mark, "type", "veth", "peer", "name", peer], check=True)
    try:
        assert host.cli("apply", str(project)) == 0
        rt = host.runtime()
        try:
            def run(container: str, *argv: str) -> str:
                res = rt.exec(container, list(argv))
                assert res.exit_code == 0, (container, argv, res.stderr)
                return res.stdout.decode().strip()

            assert {mark, peer, "lo"} <= set(run("hostjoin-sidecar-1", "ls", "/sys/class/net").split())
            assert run("hostjoin-sidecar-1", "hostname") == os.uname().nodename
            assert run("hostjoin-sidecar-1", "cat", "/etc/hosts") == run("hostjoin-box-1", "cat", "/etc/hosts")
        finally:
            rt.close()
        assert urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5).read() == b"onhost\n"
        deadline = time.monotonic() + 15
        rt = host.runtime()
        try:
            while True:         # box's server on the host's loopback, which is the sidecar's
                res = rt.exec("hostjoin-sidecar-1", ["timeout", "3", "wget", "-qO-", f"http://127.0.0.1:{port}/"])
                if (res.exit_code, res.stdout) == (0, b"onhost\n"):
                    break
                assert time.monotonic() < deadline, (res.exit_code, res.stdout, res.stderr)
                time.sleep(0.2)
        finally:
            rt.close()
        assert host.cli("diff", str(project)) == 0
    finally:
        subprocess.run(["ip", "link", "del", mark], check=True)
