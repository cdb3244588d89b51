"""Crash safety of a start-first replacement: `reconcile apply` killed between its steps.

A start-first replacement makes the new container as `<name>.next`, starts it, stops and
removes the old one, then renames the new one into place. The pass is a real process killed
with SIGKILL at one of those steps (the engine's own call for it made to kill its process
first: the moment is exact, and the engine calls before it all happened), as a kill -9 or an
OOM kill of the agent would leave it; then the next `reconcile apply` must leave the host with
exactly one container of the name, the new spec, its volume, nothing reported as converged
while a `.next` runs, and a removal of the manifests must remove everything.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.execution.helpers import write
from tests.helpers.host import Host

pytestmark = [pytest.mark.root, pytest.mark.registry]

# `reconcile ARGS...` in a process that kills itself (SIGKILL) when the native engine is first
# asked to do STEP (a NativeRuntime method): the pass dies right before that step
KILLED_AT = """
import os, signal, sys
from reconciler.cli.main import main
from reconciler.runtime.native.backend import NativeRuntime

def killed(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)

setattr(NativeRuntime, sys.argv[1], killed)
sys.exit(main(sys.argv[2:]))
"""

WEB = """
    apiVersion: reconciler/v1
    kind: Network
    metadata: {{name: shop}}
    spec: {{subnet: {subnet}}}
    ---
    apiVersion: reconciler/v1
    kind: Volume
    metadata: {{name: data}}
    spec: {{}}
    ---
    apiVersion: reconciler/v1
    kind: Container
    metadata: {{name: s}}
    spec:
      image: {image}
      command: [sh, -c, 'trap "exit 0" TERM; sleep 3600 & wait']
      env: {{V: "{v}"}}
      networks: [shop]
      volumes: ["data:/data"]
      stopTimeout: 2s
      update: {{order: start-first, healthTimeout: 30s}}
    """


def reconcile(host: Host, *args: str) -> subprocess.CompletedProcess[str]:
    flags = host.cli_args()
    if args[0] == "status":             # (it reads the state root: no engine to choose)
        flags = flags[:flags.index("--runtime")]
    return subprocess.run([sys.executable, "-m", "reconciler", *args, *flags],
                          capture_output=True, text=True, timeout=300, check=False)


def killed_at(host: Host, step: str, *args: str) -> None:
    proc = subprocess.run([sys.executable, "-c", KILLED_AT, step, *args, *host.cli_args()],
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == -signal.SIGKILL, proc.stdout + proc.stderr


def containers(host: Host) -> dict[str, tuple[str, str | None, str]]:
    """name -> (name label, V, status) of every container of the engine."""
    rt = host.runtime()
    try:
        return {r.name: (r.config.labels.get("reconciler.name", ""), r.config.env.get("V"), r.status)
                for r in rt.containers.records()}
    finally:
        rt.close()


def interrupted_update(tmp_path: Path, host: Host, image: str, step: str) -> Path:
    """`s` applied with V=1, then the pass applying V=2 killed right before `step`."""
    m = tmp_path / "m"
    write(m, "web.yaml", WEB.format(image=image, subnet=host.subnet, v="1"))
    first = reconcile(host, "apply", str(m))
    assert first.returncode == 0, first.stdout + first.stderr
    write(m, "web.yaml", WEB.format(image=image, subnet=host.subnet, v="2"))
    killed_at(host, step, "apply", str(m))
    return m


def converges_to_one_new_container(host: Host, m: Path) -> None:
    """The next pass leaves one `s`, of V=2 and running; then nothing to do, status ok, and a
    removal of the manifests removes the container and the network."""
    again = reconcile(host, "apply", str(m))
    assert again.returncode == 0, again.stdout + again.stderr
    assert containers(host) == {"s": ("s", "2", "running")}
    assert reconcile(host, "diff", str(m)).returncode == 0
    status = reconcile(host, "status")
    assert status.returncode == 0, status.stdout + status.stderr
    for f in m.iterdir():
        f.unlink()
    gone = reconcile(host, "apply", "--allow-empty", str(m))
    assert gone.returncode == 0, gone.stdout + gone.stderr
    assert containers(host) == {}
    rt = host.runtime()
    try:
        assert [n.name for n in rt.list_networks()] == []
    finally:
        rt.close()


def test_a_pass_killed_before_its_rename_leaves_a_next_the_next_pass_renames_into_place(
        tmp_path: Path, host: Host, busybox_image: str) -> None:
    """Killed after the old container's removal: only `s.next` runs. Before, the next pass made
    a new `s` beside it (two writers of one volume), said converged, and the removal of the
    manifests failed: network shop in use by s.next."""
    m = interrupted_update(tmp_path, host, busybox_image, "rename_container")
    assert containers(host) == {"s.next": ("s", "2", "running")}
    diff = reconcile(host, "diff", str(m))
    assert diff.returncode == 1, diff.stdout + diff.stderr
    assert "rename s.next -> s, left by an interrupted start-first replacement of s" in diff.stdout
    status = reconcile(host, "status")
    assert status.returncode == 1
    assert "container s.next: left by a start-first replacement of s that did not finish" in status.stdout
    rt = host.runtime()
    try:
        kept = rt.inspect_container("s.next").id
    finally:
        rt.close()
    converges_to_one_new_container_kept(host, m, kept)


def converges_to_one_new_container_kept(host: Host, m: Path, kept: str) -> None:
    again = reconcile(host, "apply", str(m))
    assert again.returncode == 0, again.stdout + again.stderr
    rt = host.runtime()
    try:
        assert rt.inspect_container("s").id == kept       # renamed, not made again
    finally:
        rt.close()
    converges_to_one_new_container(host, m)


def test_a_pass_killed_before_the_old_ones_stop_leaves_a_next_the_next_pass_removes(
        tmp_path: Path, host: Host, busybox_image: str) -> None:
    """Killed between the new container's start and the old one's stop: both run. Before, the
    next pass failed `a container named s.next exists already; rolled back` and then held."""
    m = interrupted_update(tmp_path, host, busybox_image, "stop_container")
    assert containers(host) == {"s": ("s", "1", "running"), "s.next": ("s", "2", "running")}
    diff = reconcile(host, "diff", str(m))
    assert diff.returncode == 1
    assert "container:s.next, stop, left by an interrupted start-first replacement of s" in diff.stdout
    converges_to_one_new_container(host, m)


def test_a_leftover_next_goes_with_the_manifests_of_its_container(
        tmp_path: Path, host: Host, busybox_image: str) -> None:
    """The manifests removed after such a kill: the leftover is removed before the network
    (before: `network shop is in use by 1 container(s): s.next`, every pass)."""
    m = interrupted_update(tmp_path, host, busybox_image, "rename_container")
    for f in m.iterdir():
        f.unlink()
    gone = reconcile(host, "apply", "--allow-empty", str(m))
    assert gone.returncode == 0, gone.stdout + gone.stderr
    assert containers(host) == {}
    rt = host.runtime()
    try:
        assert [n.name for n in rt.list_networks()] == []
    finally:
        rt.close()
