"""`reconcile commit`: what a container wrote and deleted becomes an image, as `docker commit`."""

from __future__ import annotations

import dataclasses
import json
import secrets
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from reconciler.runtime import base
from reconciler.runtime.native import commit
from reconciler.runtime.native.backend import NativeRuntime
from tests.helpers.registry import RegistryServer
from tests.native.containers.test_cli import Reconcile, cli, native_config_of  # noqa: F401 - the fixture

pytestmark = [pytest.mark.root, pytest.mark.registry]


def wait_for_file(reconcile: Reconcile, name: str, path: str) -> None:
    deadline = time.monotonic() + 30
    while reconcile("exec", name, "cat", path, check=False).returncode != 0:
        assert time.monotonic() < deadline, f"{path} never appeared in {name}"
        time.sleep(0.1)


def test_commit_keeps_writes_and_deletions_but_not_volumes(
        cli: tuple[Reconcile, Path], busybox_image: str, registry: RegistryServer) -> None:  # noqa: F811
    reconcile, _ = cli
    reconcile("run", "-d", "--name", "box", "-v", "data:/data", "-e", "FROM_RUN=1", busybox_image, "sh", "-c",
              "echo kept > /new.txt; rm /bin/ls; echo volume-only > /data/v; sleep 3600")
    wait_for_file(reconcile, "box", "/data/v")
    ref = f"{registry.host}/commit{secrets.token_hex(3)}/box:1"
    out = reconcile("commit", "-c", "ENV COMMITTED=yes", "-c", 'CMD ["cat", "/new.txt"]', "-m", "by test",
                    "box", ref).stdout.strip()
    assert out.startswith("sha256:")
    assert len(out) == 71
    assert reconcile("exec", "box", "echo", "still running").stdout.strip() == "still running"  # resumed

    assert reconcile("run", "--rm", ref).stdout.strip() == "kept"                  # CMD from --change
    probe = reconcile("run", "--rm", ref, "sh", "-c",
                      "echo $COMMITTED $FROM_RUN; ls /bin/ls 2>&1; cat /data/v 2>&1", check=False).stdout
    lines = probe.strip().splitlines()
    assert lines[0] == "yes 1"                                                     # ENV change + the run's env
    assert "No such file" in lines[1] or "can't access" in lines[1]                # the deletion is a whiteout
    assert "volume-only" not in lines[2]                                           # volume data left out
    config = json.loads(reconcile("image", "inspect", ref).stdout)[0]["Config"]
    assert "COMMITTED=yes" in config["Env"]
    assert config["Cmd"] == ["cat", "/new.txt"]

    if shutil.which("docker") and subprocess.run(["docker", "version"], capture_output=True).returncode == 0:
        reconcile("push", ref)
        try:
            subprocess.run(["docker", "pull", ref], capture_output=True, check=True, timeout=120)
            run = subprocess.run(["docker", "run", "--rm", "--network", "none", ref],
                                 capture_output=True, text=True, timeout=120, check=False)
            assert run.stdout.strip() == "kept", run.stderr
            # the committed layer's unpacked size (images' SIZE) is what dockerd counts of it
            size = subprocess.run(["docker", "image", "inspect", "-f", "{{.Size}}", ref], capture_output=True,
                                  text=True, timeout=60, check=True).stdout
            shown = [r["size"] for r in json.loads(reconcile("images", "-o", "json").stdout)
                     if f"{r['repository']}:{r['tag']}" == ref]
            assert shown == [int(size)]
        finally:
            subprocess.run(["docker", "rmi", "-f", ref], capture_output=True, check=False)


def test_a_bad_change_is_refused_before_anything_is_made(cli: tuple[Reconcile, Path], busybox_image: str) -> None:  # noqa: F811
    reconcile, _ = cli
    reconcile("run", "-d", "--name", "b2", busybox_image, "sleep", "3600")
    proc = reconcile("commit", "-c", "RUN rm -rf /", "b2", "example.test/x:1", check=False)
    assert proc.returncode == 2
    assert "invalid change" in proc.stderr
    assert "example.test/x" not in reconcile("images").stdout


def test_commit_keeps_the_containers_healthcheck_and_exposed_ports(
        cli: tuple[Reconcile, Path], busybox_image: str) -> None:  # noqa: F811
    """As `docker commit` (checked on dockerd 20.10): the container's healthcheck and the ports
    it exposes or publishes are the image's config, so `save` ships them and a run of the image
    is checked as the container was."""
    reconcile, tmp = cli
    reconcile("run", "-d", "--name", "hc", "--network", "none", "--health-cmd", "test -f /tmp/ok",
              "--health-interval", "3s", busybox_image, "sleep", "3600")
    reconcile("commit", "hc", "local/hc:1")
    config = json.loads(reconcile("image", "inspect", "local/hc:1").stdout)[0]["Config"]
    assert config["Healthcheck"]["Test"] == ["CMD-SHELL", "test -f /tmp/ok"]
    assert config["Healthcheck"]["Interval"] == 3_000_000_000
    # the ports: what it publishes and exposes beside the image's EXPOSE (a published port needs a
    # bridge network; the rule is the record's, as inspect's ExposedPorts)
    rt = NativeRuntime(native_config_of(tmp))
    try:
        rec = rt.containers.get("hc")
    finally:
        rt.close()
    rec = dataclasses.replace(rec, exposed=("9090/udp",), config=dataclasses.replace(
        rec.config, ports=(base.PortMapping(container_port=8080, host_port=18080),)))
    merged = commit._merged_config({"config": {"ExposedPorts": {"53/udp": {}}}}, rec)["config"]
    assert merged["ExposedPorts"] == {"9090/udp": {}, "53/udp": {}, "8080/tcp": {}}
