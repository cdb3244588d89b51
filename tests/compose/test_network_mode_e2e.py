"""`network_mode: service:web` for real on the native engine (root, a real registry, runc + conmon).

`sidecar` joins `web`'s network namespace: it reaches web's server on its own 127.0.0.1, sees
web's hosts file, and is replaced when web is. One engine per test (tests/helpers/host.py);
teardown removes everything and fails the test if anything is left.
"""

from __future__ import annotations

import textwrap
import time
from pathlib import Path

import pytest

from tests.helpers.host import Host

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
