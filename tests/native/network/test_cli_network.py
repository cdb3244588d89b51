"""`reconcile network ls / inspect` over a state DB the engine wrote; `create` and `rm` on the host."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from reconciler._sqlite import Database
from reconciler.runtime import base
from reconciler.runtime.native.network import ipam
from tests.native.network.conftest import Harness


def _cli(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reconciler", "network", "--root", str(root), "--run-dir", str(root / "run"), *args],
        capture_output=True, text=True, check=False,
    )


def _seed(root: Path) -> None:
    store = ipam.IPAM(Database(root / "state.db"))
    store.add_network(base.NetworkConfig("shop", subnet="10.210.0.0/24", labels={"tier": "front"}),
                      bridge="rcl-shop", pool="10.89.0.0/16")
    store.add_network(base.NetworkConfig("backend", subnet="10.210.1.0/24", internal=True),
                      bridge="rcl-backend", pool="10.89.0.0/16")
    store.add_container(ipam.ContainerRecord("c" * 64, "web", "web", (), "/x"), networks=["shop"],
                        static_ips={}, ports=[], veth_name={"shop": "rclv1"})


def test_ls_table_json_and_filter(tmp_path: Path) -> None:
    _seed(tmp_path)
    table = _cli(tmp_path, "ls")
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["NETWORK", "ID", "NAME", "BRIDGE", "SUBNET", "GATEWAY", "INTERNAL", "CONTAINERS"]
    assert lines[1].split()[1:] == ["backend", "rcl-backend", "10.210.1.0/24", "10.210.1.1", "True", "0"]
    assert lines[2].split()[1:] == ["shop", "rcl-shop", "10.210.0.0/24", "10.210.0.1", "False", "1"]
    data = json.loads(_cli(tmp_path, "ls", "-o", "json").stdout)
    assert [d["name"] for d in data] == ["backend", "shop"]
    filtered = json.loads(_cli(tmp_path, "ls", "-o", "json", "--filter", "label=tier=front").stdout)
    assert [d["name"] for d in filtered] == ["shop"]

    # docker network ls's filters, by the Engine API's rules (`name=sh` was read as a label: nothing)
    def names(*filters: str) -> list[str]:
        argv = [w for f in filters for w in ("-f", f)]
        return _cli(tmp_path, "ls", *argv, "--format", "{{.Name}}").stdout.split()

    assert names("name=sh") == ["shop"]                         # a part of the name
    assert names("name=back", "name=sh") == ["backend", "shop"]   # any of them
    assert names("label=tier") == ["shop"]                      # a label's presence
    assert names("tier=front") == ["shop"]                      # the shorthand, as before
    assert names("dangling=true") == ["backend"]                # no container on it
    assert names("dangling=false") == ["shop"]
    assert names("type=custom", "driver=bridge") == ["backend", "shop"]
    assert names("type=builtin") == []
    shop_id = json.loads(_cli(tmp_path, "inspect", "shop").stdout)[0]["id"]
    assert names(f"id={shop_id[:10]}") == ["shop"]
    assert names("name=nothing-here") == []


def test_inspect_lists_members_and_fails_for_unknown(tmp_path: Path) -> None:
    _seed(tmp_path)
    ok = _cli(tmp_path, "inspect", "shop")
    assert ok.returncode == 0, ok.stderr
    doc = json.loads(ok.stdout)[0]
    assert doc["containers"] == [{"id": "c" * 64, "name": "web", "address": "10.210.0.2"}]
    assert doc["labels"] == {"tier": "front"}
    missing = _cli(tmp_path, "inspect", "shop", "nope")
    assert missing.returncode == 1
    assert "no such network: nope" in missing.stderr
    # by its id, or a unique id prefix, as docker network inspect finds one
    ids = {d["name"]: d["id"] for d in json.loads(_cli(tmp_path, "inspect", "shop", "backend").stdout)}
    for term in (ids["shop"], ids["shop"][:6]):
        assert [d["name"] for d in json.loads(_cli(tmp_path, "inspect", term).stdout)] == ["shop"]


def test_create_then_rm_a_network_as_docker_network_does(harness: Harness) -> None:
    """`reconcile network create` makes the bridge a `run --network NAME` needs (the hint of that
    refusal names it), refuses a name in use; `network rm` removes it, bridge and all."""
    import os

    from reconciler.runtime.native.network import netlink

    cfg = harness.config
    env = {**os.environ, "RECONCILER_PREFIX": cfg.name_prefix}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "reconciler", "network", "--root", str(cfg.root),
                               "--run-dir", str(cfg.run_dir), *args], capture_output=True, text=True, env=env,
                              check=False)

    made = cli("create", "--subnet", harness.subnet(1), "--internal", "-l", "tier=back", "backend")
    assert made.returncode == 0, made.stderr
    doc = json.loads(cli("inspect", "backend").stdout)[0]
    assert (doc["subnet"], doc["internal"], doc["labels"]) == (harness.subnet(1), True, {"tier": "back"})
    assert doc["id"] == made.stdout.strip()
    with netlink.host() as h:
        assert h.index(doc["bridge"])
    again = cli("create", "backend")
    assert again.returncode == 1
    assert "already exists" in again.stderr
    cli("create", "--subnet", harness.subnet(2), "other")
    other = json.loads(cli("inspect", "other").stdout)[0]["id"]
    gone = cli("rm", other[:7], "backend", "nope")      # by an id prefix too, printed as given (docker's)
    assert gone.returncode == 1
    assert gone.stdout == f"{other[:7]}\nbackend\n"
    assert "nope" in gone.stderr
    assert json.loads(cli("ls", "-o", "json").stdout) == []
    with netlink.host() as h:
        assert not h.index(doc["bridge"])
