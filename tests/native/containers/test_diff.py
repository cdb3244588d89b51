"""`reconcile container diff`, as `docker diff`: what a container added (A), changed (C) and
deleted (D) in its root filesystem, read from its overlay's upper dir against its image's
layers, in docker's walk order; the same lines dockerd's `docker diff` gives for the same
changes to the same image (pulled from the test's loopback registry), and the Engine API's
`GET /containers/{id}/changes` the same to the docker CLI."""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess

import pytest

from tests.api.test_engine_api import docker
from tests.api.test_engine_api import engine_api as engine_api  # the fixture
from tests.helpers.host import Host

pytestmark = [pytest.mark.root, pytest.mark.registry]

# a file added, one changed in place, one deleted, a directory tree added, one emptied and filled again
CHANGES = ("echo new > /newfile; mkdir -p /newdir/sub; echo x > /newdir/sub/f; echo more >> /etc/passwd; "
           "rm /bin/ls; rm -rf /home; mkdir /home; echo n > /home/new; touch /root/.profile")
EXPECTED = ["C /bin", "D /bin/ls", "C /etc", "C /etc/passwd", "C /home", "D /home/app", "A /home/new", "A /newdir",
            "A /newdir/sub", "A /newdir/sub/f", "A /newfile", "C /root", "A /root/.profile"]


def diff(host: Host, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = host.cli("container", "diff", *args)
    out, err = capsys.readouterr()
    return code, out, err


def _dockerd() -> bool:
    return shutil.which("docker") is not None and subprocess.run(
        ["docker", "version"], capture_output=True, check=False).returncode == 0


def test_diff_lists_what_a_container_added_changed_and_deleted_as_dockerd(
        host: Host, busybox_image: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert host.cli("run", "--name", "box", "--network", "none", busybox_image, "sh", "-c", CHANGES) == 0
    code, out, _ = diff(host, capsys, "box")
    assert (code, out.splitlines()) == (0, EXPECTED)          # the runtime's mount points (/etc/hosts...) left out
    code, out, _ = diff(host, capsys, "-o", "json", "box")
    assert json.loads(out)[:2] == [{"kind": "C", "path": "/bin"}, {"kind": "D", "path": "/bin/ls"}]
    code, out, err = diff(host, capsys, "nosuch")
    assert (code, out, err.strip()) == (1, "", "error: No such container: nosuch")

    assert host.cli("run", "--name", "quiet", "--network", "none", busybox_image, "true") == 0
    assert diff(host, capsys, "quiet")[:2] == (0, "")           # nothing changed, nothing listed

    if not _dockerd():
        return
    name = f"rcl-diff-{secrets.token_hex(3)}"
    try:
        subprocess.run(["docker", "pull", busybox_image], capture_output=True, check=True, timeout=120)
        subprocess.run(["docker", "run", "--name", name, "--network", "none", busybox_image, "sh", "-c", CHANGES],
                       capture_output=True, check=True, timeout=120)
        theirs = subprocess.run(["docker", "diff", name], capture_output=True, text=True, check=True, timeout=60)
        # the same lines; dockerd 20.10 prints them in no fixed order (a Go map's), this engine in its walk's
        assert sorted(theirs.stdout.splitlines()) == sorted(EXPECTED)
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True, check=False)
        subprocess.run(["docker", "rmi", busybox_image], capture_output=True, check=False)


@pytest.mark.skipif(shutil.which("docker") is None, reason="needs the docker CLI")
def test_docker_diff_through_the_engine_api_says_what_reconcile_does(
        engine_api: str, host: Host, busybox_image: str, capsys: pytest.CaptureFixture[str]) -> None:
    docker(engine_api, "pull", busybox_image)
    docker(engine_api, "run", "--name", "box", "--network", "none", busybox_image, "sh", "-c", CHANGES)
    assert docker(engine_api, "diff", "box").stdout.splitlines() == EXPECTED
    gone = docker(engine_api, "diff", "nosuch", check=False)
    assert gone.returncode != 0
    assert "No such container: nosuch" in gone.stderr
