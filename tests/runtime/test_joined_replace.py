"""A container joined by another (`networks: [container:web]`, compose's `network_mode:
service:web`) replaced on every engine: the plan stops and removes the joiner before its
target (Podman refuses to remove a container another one joins; Docker would leave the joiner
in a dead namespace) and makes it again in the new target's namespace. A whole pass (observe,
plan, execute) on each backend of the `backend` fixture, with the test's own state DB.
"""

from __future__ import annotations

import secrets
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler import spec
from reconciler._sqlite import Database
from reconciler.execution import passes
from reconciler.runtime import base
from tests.helpers import subnets

APP = """
    apiVersion: reconciler/v1
    kind: Network
    metadata: {{name: jnet}}
    spec: {{subnet: "{subnet}"}}
    ---
    apiVersion: reconciler/v1
    kind: Container
    metadata: {{name: web}}
    spec:
      image: {image}
      command: ["sleep", "3600"]
      env: {{GEN: "{gen}"}}
      networks: [jnet]
      stopSignal: SIGKILL
    ---
    apiVersion: reconciler/v1
    kind: Container
    metadata: {{name: sidecar}}
    spec:
      image: {image}
      command: ["sleep", "3600"]
      networks: ["container:web"]
      stopSignal: SIGKILL
    """


@pytest.fixture
def subnet() -> Iterator[str]:
    block = subnets.lease_block()
    try:
        yield str(next(block.subnets(new_prefix=24)))
    finally:
        subnets.release(block)


def converge(tmp_path: Path, rt: base.Runtime, image: str, gen: int, owner: str, subnet: str) -> passes.PassResult:
    manifests = tmp_path / "m"
    manifests.mkdir(exist_ok=True)
    (manifests / "app.yaml").write_text(textwrap.dedent(APP.format(image=image, gen=gen, subnet=subnet)))
    return passes.run_pass(spec.load(manifests), rt, Database(tmp_path / "state.db"), passes.PassOptions(owner=owner))


def namespace(rt: base.Runtime, name: str) -> str:
    """`net:[INODE]`: the network namespace the container's processes are in."""
    res = rt.exec(name, ["ls", "-l", "/proc/self/ns/net"])
    assert res.exit_code == 0, res.stdout + res.stderr
    return res.stdout.decode().split()[-1]


def test_replacing_a_joined_container_replaces_its_joiner_first(
    backend: tuple[base.Runtime, str], tmp_path: Path, subnet: str,
) -> None:
    rt, image = backend
    owner = "join" + secrets.token_hex(3)
    first = converge(tmp_path, rt, image, 1, owner, subnet)
    assert first.converged, first.to_json()
    before = {c.name: c.id for c in rt.list_containers({"reconciler.owner": owner})}

    again = converge(tmp_path, rt, image, 2, owner, subnet)         # web's spec changed: it is replaced
    assert again.converged, again.to_json()
    after = {c.name: c for c in rt.list_containers({"reconciler.owner": owner})}
    assert sorted(after) == ["sidecar", "web"]
    assert all(after[n].id != before[n] and after[n].status == "running" for n in after)
    if getattr(rt, "name", "") != "fake":                   # the fake runs no process to look into
        assert namespace(rt, "sidecar") == namespace(rt, "web")
