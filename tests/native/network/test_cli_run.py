"""`reconcile run`, `start` and `stop` on bridge networking, as a user types them: the CLI in a
process of its own on the harness's engine (its root, prefix and subnet pool)."""

from __future__ import annotations

import subprocess
import urllib.request

import pytest

from tests.helpers.ports import publish_port
from tests.native.network.conftest import Harness, Reconcile, inspect_doc

pytestmark = [pytest.mark.root, pytest.mark.registry]


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return str(resp.read().decode())


def _serve(*flags: str) -> tuple[str, ...]:
    """`run` arguments of an httpd serving the container's /etc on port 80."""
    return (*flags, "httpd", "-f", "-p", "80", "-h", "/etc")


def test_run_without_a_network_publishes_on_the_default_network_as_docker_run_does(
        cli: Reconcile, busybox_image: str) -> None:
    """`docker run -p` without --network publishes on the default bridge: `reconcile run` is on
    the engine's default network likewise (it had none, and published nothing, silently), its
    port checked (a host port another container publishes is refused); `-p 80` publishes on a
    host port the engine chooses."""
    port = publish_port()
    cid = cli("run", "-d", "--name", "web", "-p", f"127.0.0.1:{port}:80", *_serve(busybox_image)).stdout.strip()
    doc = inspect_doc(cli, "web")
    assert doc["HostConfig"]["NetworkMode"] == "default"
    assert list(doc["NetworkSettings"]["Networks"]) == ["default"]
    assert doc["NetworkSettings"]["Ports"] == {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(port)}]}
    assert _get(f"http://127.0.0.1:{port}/hostname") == cid[:12] + "\n"

    taken = cli("run", "-d", "--name", "again", "-p", f"127.0.0.1:{port}:80", *_serve(busybox_image), check=False)
    assert taken.returncode == 125                  # run itself failed, as docker run exits
    assert "already published by container 'web'" in taken.stderr

    cli("run", "-d", "--name", "any", "-p", "80", *_serve(busybox_image))
    chosen = inspect_doc(cli, "any")["NetworkSettings"]["Ports"]["80/tcp"]
    assert [b["HostIp"] for b in chosen] == ["0.0.0.0"]
    assert int(chosen[0]["HostPort"]) > 0
    assert _get(f"http://127.0.0.1:{chosen[0]['HostPort']}/hostname").strip() == inspect_doc(cli, "any")["Id"][:12]

    none = inspect_doc(cli, cli("run", "-d", "--network", "none", busybox_image, "sleep", "60").stdout.strip())
    assert none["HostConfig"]["NetworkMode"] == "none"
    assert none["NetworkSettings"]["Networks"] == {}


def test_runs_own_failures_exit_125_as_docker_run_and_codes_below_are_the_containers(
        cli: Reconcile, busybox_image: str) -> None:
    """`docker run` exits 125 when it could not create or start the container (dockerd 20.10 here:
    a host port another program listens on, a network not found, a name taken, an image not
    pulled), 126/127 when its command cannot run, else the container's own code. `run` exited 1
    for these (2 for some), which a script cannot tell from the container's own exit 1."""
    import socket

    port = publish_port()
    with socket.socket() as listener:                   # a program of the host holds the port
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen()
        held = cli("run", "--rm", "-p", f"127.0.0.1:{port}:80", busybox_image, "true", check=False)
        assert held.returncode == 125, held.stderr
        assert f"host port 127.0.0.1:{port}/tcp is in use by another program" in held.stderr
        assert cli("ps", "-aq").stdout == ""                  # --rm: nothing left
    cli("run", "-d", "--name", "web", "--network", "none", busybox_image, "sleep", "600")
    for argv, words in ((("--name", "web"), "a container named web exists already"),
                        (("--network", "nope"), "network 'nope' not found"),
                        (("--memory", "1k"), "Minimum memory limit allowed is 6MB"),
                        # dockerd's create rules (runtime/limits.py), as the Engine API's create: the native
                        # run made a container with a CFS quota of more CPUs than the host has
                        (("--cpus", "1024"), "Range of CPUs is from 0.01 to")):
        failed = cli("run", "--rm", *argv, busybox_image, "true", check=False)
        assert (failed.returncode, words in failed.stderr) == (125, True), (argv, failed.stderr)
    missing = cli("run", "--rm", busybox_image.rpartition("/")[0] + "/nope:1", "true", check=False)
    assert missing.returncode == 125, missing.stderr
    for code in (1, 2, 124):                            # the container's own, through run
        own = cli("run", "--rm", "--network", "none", busybox_image, "sh", "-c", f"exit {code}", check=False)
        assert own.returncode == code, own.stderr


def test_run_network_bridge_is_the_engines_default_network_as_dockers(cli: Reconcile, busybox_image: str) -> None:
    """`docker run --network bridge` names Docker's default network: here the engine's default
    one, the network a run without --network is on, where -p publishes; it was refused
    ("network 'bridge' not found": no network may be named so)."""
    import time

    port = publish_port()
    cid = cli("run", "-d", "--name", "web", "--network", "bridge", "-p", f"127.0.0.1:{port}:80",
              *_serve(busybox_image)).stdout.strip()
    doc = inspect_doc(cli, "web")
    assert doc["HostConfig"]["NetworkMode"] == "default"
    assert list(doc["NetworkSettings"]["Networks"]) == ["default"]
    address = doc["NetworkSettings"]["Networks"]["default"]["IPAddress"]
    deadline = time.monotonic() + 10
    while True:
        try:
            assert _get(f"http://127.0.0.1:{port}/hostname") == cid[:12] + "\n"
            break
        except OSError:
            assert time.monotonic() < deadline, "the published port does not answer"
            time.sleep(0.1)
    # a container run without --network is on the same network: it reaches web there
    peer = cli("run", "--rm", busybox_image, "wget", "-qO-", f"http://{address}/hostname")
    assert peer.stdout == cid[:12] + "\n"


def _forwarded(harness: Harness) -> list[int]:
    """The host ports the engine's nft rules forward now."""
    return [p.host_port for p in harness.manager._ipam.forwarded_ports()]


def test_stop_and_start_by_hand_stop_and_resume_forwarding_its_ports(
        cli: Reconcile, harness: Harness, busybox_image: str) -> None:
    """A container publishes its ports while it runs, as Docker's: `reconcile stop` takes its
    rules away (they stayed: the CLI's engine had no bridge networking plugged in, so traffic to
    the port still went to the stopped container's address) and `reconcile start` puts them back."""
    port = publish_port()
    cli("run", "-d", "--name", "web", "-p", f"127.0.0.1:{port}:80", *_serve(busybox_image))
    assert _forwarded(harness) == [port]
    cli("stop", "-t", "0", "web")
    assert _forwarded(harness) == []
    assert f"dport {port} " not in subprocess.run(["nft", "list", "table", "ip", harness.prefix], capture_output=True,
                                                  text=True, check=True).stdout
    cli("start", "web")
    assert _forwarded(harness) == [port]
    assert _get(f"http://127.0.0.1:{port}/hostname") == inspect_doc(cli, "web")["Id"][:12] + "\n"
