"""A `reconcile --once` with nothing to do loads only what a pass with nothing to do needs (#21).

A real native engine (tests/helpers/host.py), a network and two containers with published
ports and a volume, converged once; then the same manifests again, in a fresh interpreter under
`-X importtime`, must import none of the libraries that only work to do (or a log line) needs.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.execution.helpers import write
from tests.helpers.host import Host
from tests.helpers.registry import free_port

pytestmark = [pytest.mark.root, pytest.mark.registry]

REPO = Path(__file__).resolve().parents[2]
# structlog (0.1-0.2 s: asyncio, ssl, rich) is loaded at the first line logged at the level
# (reconciler/logs.py); the registry client, httpx and netlink only when a pull or a network
# change is due; the SOPS decryption when a manifest names a file sops encrypted, the compose
# loader for a compose project, uuid (and platform) when a network is made, difflib for a
# "did you mean" in an error, a schema validator for a document not seen valid before
# (spec/validity.py: the first run saw them all); the engine's network manager (its firewall,
# netlink, socket) only for a network change: recovery and the list of networks read the records;
# the OCI bundle's parts (seccomp profile, signals), the hosts-file helpers and the image collector
# only when a container is made, killed or updated, or an image removed; PyYAML only for a file
# the parse cache does not hold (spec/yamltree.py) or a message that needs a node's position; a thread
# pool (concurrent.futures, which imports logging) only for a plan with actions or a healthcheck;
# subprocess (with selectors and locale) only for an exec or a probe (containers/execs.py), and
# the monitors' pidfd watch (selectors) only in an engine that watches them (the agent's)
NOT_ON_A_NO_OP = ("structlog", "asyncio", "ssl", "httpx", "pyroute2", "reconciler.registry_client.client",
                  "reconciler.spec.sops", "reconciler.spec.compose", "uuid", "difflib", "jsonschema_rs",
                  "jsonschema", "reconciler.runtime.native.network.network",
                  "reconciler.runtime.native.network.firewall", "socket",
                  "reconciler.runtime.native.containers.bundle", "reconciler.runtime.native.containers.seccomp",
                  "reconciler.runtime.native.network.dns", "reconciler.runtime.native.images.gc",
                  "yaml", "reconciler.spec.yamltree", "concurrent.futures", "logging", "subprocess", "selectors",
                  "reconciler.runtime.native.containers.execs")


def manifests(m: Path, image: str, subnet: str) -> None:
    write(m, "net.yaml", f"""
        apiVersion: reconciler/v1
        kind: Network
        metadata: {{name: shop}}
        spec: {{subnet: {subnet}}}
        """)
    for name in ("web", "api"):
        # a port the kernel has just said is free: a fixed one in the ephemeral range could be a
        # client socket's of another test running beside this one
        write(m, f"{name}.yaml", f"""
            apiVersion: reconciler/v1
            kind: Container
            metadata: {{name: {name}}}
            spec:
              image: {image}
              command: [sleep, "3600"]
              networks: [shop]
              ports: ["127.0.0.1:{free_port()}:80"]
              volumes: ["data-{name}:/data"]
            ---
            apiVersion: reconciler/v1
            kind: Volume
            metadata: {{name: data-{name}}}
            spec: {{}}
            """)


def once(host: Host, m: Path) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "reconciler", "--once", str(m),
                           *host.cli_args()], cwd=REPO, capture_output=True, text=True, check=False, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    return proc, {line.rsplit("|", 1)[1].strip() for line in proc.stderr.splitlines()
                  if line.startswith("import time:")}


def test_a_no_op_once_imports_no_logging_registry_or_netlink(tmp_path: Path, host: Host, busybox_image: str) -> None:
    m = tmp_path / "m"
    manifests(m, busybox_image, host.subnet)
    first, _ = once(host, m)
    assert "converged" in first.stdout, first.stdout
    again, modules = once(host, m)
    assert "nothing to do" in again.stdout, again.stdout
    assert sorted(set(NOT_ON_A_NO_OP) & modules) == []
    assert "reconciler.spec" in modules                 # the check saw the process's imports

    # the tag's cached digest expired (5 minutes on): the pass asks the registry, with one plain
    # HEAD (runtime/native/images/presence.py `head`), not the registry client
    with sqlite3.connect(host.config.root / "state.db") as conn:
        assert conn.execute("UPDATE inv_digests SET resolved_at = resolved_at - 600").rowcount == 1
    conn.close()
    expired, modules = once(host, m)
    assert "nothing to do" in expired.stdout, expired.stdout
    assert sorted(set(NOT_ON_A_NO_OP) & modules) == []
    with sqlite3.connect(host.config.root / "state.db") as conn:
        [(resolved_at,)] = conn.execute("SELECT resolved_at FROM inv_digests").fetchall()
    conn.close()
    assert time.time() - resolved_at < 120              # asked again now, and cached
