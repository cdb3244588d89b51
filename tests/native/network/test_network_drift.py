"""A native container's network attachments are observed (its record: the networks a connect
and a disconnect keep, where its starts attach it): one disconnected (the Engine API's
`POST /networks/{id}/disconnect` is ContainerManager.disconnect_running), or whose network was
removed once its containers were disconnected and is made again by a pass, is drift that `diff`
shows, that `status` reports down, and that a pass connects again, after which a client
reaches it by its alias (before, the pass said converged and the name resolved to nothing)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from reconciler.cli.main import main
from reconciler.runtime.native.backend import NativeRuntime
from tests.execution.helpers import write
from tests.helpers.host import Host

pytestmark = [pytest.mark.root, pytest.mark.registry, pytest.mark.slow]

SERVE = "mkdir -p /srv && echo api > /srv/index.html && exec httpd -f -p 8080 -h /srv"


def manifests(m: Path, image: str, subnet: str) -> None:
    write(m, "m.yaml", f"""
        apiVersion: reconciler/v1
        kind: Network
        metadata: {{name: shop}}
        spec: {{subnet: {subnet}}}
        ---
        apiVersion: reconciler/v1
        kind: Container
        metadata: {{name: api}}
        spec:
          image: {image}
          command: [sh, -c, "{SERVE}"]
          networks: [shop]
          aliases: [api-alias]
          restart: always
          stopTimeout: 1s
        ---
        apiVersion: reconciler/v1
        kind: Container
        metadata: {{name: client}}
        spec:
          image: {image}
          command: [sleep, "3600"]
          networks: [shop]
          restart: always
          stopTimeout: 1s
        """)


def reaches(rt: NativeRuntime, timeout: float = 15.0) -> str:
    """What `wget http://api-alias:8080/` from the client says (a few tries)."""
    deadline = time.monotonic() + timeout
    while True:
        r = rt.exec("client", ["timeout", "3", "wget", "-qO-", "http://api-alias:8080/"])
        if r.exit_code == 0 or time.monotonic() > deadline:
            return (r.stdout + r.stderr).decode().strip()
        time.sleep(0.3)


def status(host: Host) -> int:
    """`reconcile status` without an agent (it reads the records as `ps` does)."""
    return main(["status", *host.cli_args()[:-2]])


def test_a_disconnected_container_is_drift_and_a_pass_connects_it_again(
        tmp_path: Path, host: Host, busybox_image: str, capsys: pytest.CaptureFixture[str]) -> None:
    m = tmp_path / "m"
    manifests(m, busybox_image, host.subnet)

    def once() -> dict[str, object]:
        capsys.readouterr()
        assert host.cli("apply", str(m), "-o", "json") == 0
        out: dict[str, object] = json.loads(capsys.readouterr().out)
        return out

    assert host.cli("apply", str(m)) == 0
    ids = host.ids()
    rt = host.runtime()
    try:
        assert reaches(rt) == "api"
        rt.containers.disconnect_running("api", "shop")
        assert "bad address" in reaches(rt, timeout=0)
    finally:
        rt.close()
    capsys.readouterr()
    assert host.cli("diff", str(m)) == 1
    assert "container:api, connect, not attached to network shop" in capsys.readouterr().out
    assert status(host) == 1
    assert "down now: container api: running but not attached to network shop" in capsys.readouterr().out
    out = once()
    assert (out["result"], out["counts"]) == ("converged", {"connected": 1})
    assert host.ids() == ids                                        # the same containers
    rt = host.runtime()
    try:
        assert reaches(rt) == "api"
        # both disconnected, the network removed: a pass makes it again, and connects them to it
        for name in ("api", "client"):
            rt.containers.disconnect_running(name, "shop")
        rt.remove_network("shop")
    finally:
        rt.close()
    out = once()
    assert (out["result"], out["counts"]) == ("converged", {"connected": 2, "created": 1})
    assert host.ids() == ids
    rt = host.runtime()
    try:
        assert reaches(rt) == "api"
        assert {c.name: c.networks for c in rt.list_containers()} == {"api": {"shop": ""}, "client": {"shop": ""}}
    finally:
        rt.close()
    capsys.readouterr()
    assert host.cli("diff", str(m)) == 0
    assert status(host) == 0
