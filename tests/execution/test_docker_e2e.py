"""`reconcile apply|diff --runtime docker` on the host's real dockerd: the reconciler drives the
Docker backend unchanged. Every object carries this test's own owner label and name prefix;
teardown removes exactly those (never other containers of the host).
"""

from __future__ import annotations

import json
import secrets
import string
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.cli.main import main
from reconciler.runtime import base
from reconciler.runtime import errors as rterrors
from reconciler.runtime.docker import DockerRuntime
from tests.execution.helpers import write
from tests.helpers import subnets
from tests.helpers.socket_proxy import SocketProxy

pytestmark = [pytest.mark.docker, pytest.mark.registry, pytest.mark.slow]


class Scope:
    def __init__(self, tmp: Path) -> None:
        self.owner = "rtd" + "".join(secrets.choice(string.ascii_lowercase) for _ in range(4))
        self.root = tmp / "root"
        self.subnet = str(next(subnets.lease_block().subnets(new_prefix=24)))
        self.rt = DockerRuntime()
        self.images: list[str] = []         # pulled into dockerd by this test: removed after

    def cli(self, *args: str) -> int:
        return main([args[0], *args[1:], "--root", str(self.root), "--runtime", "docker", "--owner", self.owner])

    def ours(self) -> dict[str, base.ContainerState]:
        return {c.name: c for c in self.rt.list_containers({"reconciler.owner": self.owner})}

    def cleanup(self) -> None:
        for c in self.rt.list_containers(None):
            if c.name.startswith(self.owner):
                try:
                    self.rt.remove_container(c.id, force=True)
                except rterrors.NotFound:
                    pass
        for n in self.rt.list_networks({"reconciler.owner": self.owner}):
            self.rt.remove_network(n.name)
        for v in self.rt.list_volumes({"reconciler.owner": self.owner}):
            self.rt.remove_volume(v.name)
        for ref in self.images:
            try:
                self.rt.remove_image(ref)
            except rterrors.RuntimeBackendError:
                pass                        # still used by another test's container: theirs to remove
        self.rt.close()


@pytest.fixture
def scope(tmp_path: Path) -> Iterator[Scope]:
    s = Scope(tmp_path)
    try:
        yield s
    finally:
        s.cleanup()


def manifests(m: Path, s: Scope, image: str, env: str = "1") -> None:
    p = s.owner
    write(m, "net.yaml", f"""
        apiVersion: reconciler/v1
        kind: Network
        metadata: {{name: {p}-net}}
        spec: {{subnet: {s.subnet}}}
        """)
    write(m, "web.yaml", f"""
        apiVersion: reconciler/v1
        kind: Container
        metadata: {{name: {p}-web}}
        spec:
          image: {image}
          command: [sleep, "3600"]
          env: {{V: "{env}"}}
          networks: [{p}-net]
          volumes: ["{p}-data:/data"]
          healthcheck: {{test: [CMD, "true"], interval: 1s, retries: 1}}
        ---
        apiVersion: reconciler/v1
        kind: Volume
        metadata: {{name: {p}-data}}
        spec: {{}}
        """)
    write(m, "api.yaml", f"""
        apiVersion: reconciler/v1
        kind: Container
        metadata: {{name: {p}-api}}
        spec:
          image: {image}
          command: [sleep, "3600"]
          networks: [{p}-net]
          dependsOn: [{p}-web]
        """)


def test_docker_backend_converges_updates_and_prunes(tmp_path: Path, scope: Scope, busybox_image: str) -> None:
    m = tmp_path / "m"
    p = scope.owner
    scope.images.append(busybox_image)
    manifests(m, scope, busybox_image)
    assert scope.cli("apply", str(m)) == 0
    first = {n: c.id for n, c in scope.ours().items()}
    assert set(first) == {f"{p}-web", f"{p}-api"}
    assert scope.cli("diff", str(m)) == 0

    manifests(m, scope, busybox_image, env="2")
    assert scope.cli("diff", str(m)) == 1
    assert scope.cli("apply", str(m)) == 0
    second = {n: c.id for n, c in scope.ours().items()}
    assert second[f"{p}-web"] != first[f"{p}-web"]
    assert second[f"{p}-api"] == first[f"{p}-api"]

    (m / "web.yaml").unlink()
    manifests_api_only = (m / "api.yaml").read_text().replace(f"dependsOn: [{p}-web]", "dependsOn: []")
    (m / "api.yaml").write_text(manifests_api_only)
    assert scope.cli("apply", str(m)) == 0
    assert set(scope.ours()) == {f"{p}-api"}
    assert [v.name for v in scope.rt.list_volumes({"reconciler.owner": p})] == [f"{p}-data"]


def test_docker_container_without_our_label_is_never_touched(
    tmp_path: Path, scope: Scope, busybox_image: str,
) -> None:
    p = scope.owner
    scope.images.append(busybox_image)
    scope.rt.pull_image(busybox_image)
    foreign = scope.rt.create_container(base.ContainerConfig(name=f"{p}-web", image=busybox_image,
                                                             command=("sleep", "3600"), networks=("none",)))
    m = tmp_path / "m"
    manifests(m, scope, busybox_image)
    assert scope.cli("apply", str(m)) == 1
    st = scope.rt.inspect_container(f"{p}-web")
    assert st.id == foreign
    assert st.status == "created"
    assert scope.ours() == {}                       # api depends on web: skipped, not created


def test_docker_start_first_update_starts_the_new_container_before_stopping_the_old(
    tmp_path: Path, scope: Scope, busybox_image: str,
) -> None:
    m = tmp_path / "m"
    p = scope.owner
    scope.images.append(busybox_image)

    def web(v: str) -> None:
        manifests(m, scope, busybox_image)
        # what was alive when this one started, then an alive marker it drops when stopped
        script = 'ls /data > /data/seen-by-$V; touch /data/alive-$V; trap "rm /data/alive-$V; exit 0" TERM; sleep 3600 & wait'
        text = (m / "web.yaml").read_text().replace('command: [sleep, "3600"]', f"command: [sh, -c, '{script}']")
        text = text.replace('env: {V: "1"}', f'env: {{V: "{v}"}}')
        text = text.replace("retries: 1}", "retries: 1}\n  update: {order: start-first, healthTimeout: 30s}")
        (m / "web.yaml").write_text(text)

    web("1")
    assert scope.cli("apply", str(m)) == 0
    first = {n: c.id for n, c in scope.ours().items()}
    web("2")
    assert scope.cli("apply", str(m)) == 0
    second = {n: c.id for n, c in scope.ours().items()}
    assert set(second) == {f"{p}-web", f"{p}-api"}                 # renamed into place
    assert second[f"{p}-web"] != first[f"{p}-web"]
    assert second[f"{p}-api"] == first[f"{p}-api"]
    rt = scope.rt
    name = f"{p}-web"
    assert "alive-1" in rt.exec(name, ["cat", "/data/seen-by-2"]).stdout.decode().split()
    assert rt.exec(name, ["ls", "/data"]).stdout.decode().split() == ["alive-2", "seen-by-1", "seen-by-2"]
    ip = rt.inspect_container(name).ip_addresses[f"{p}-net"]
    found = rt.exec(f"{p}-api", ["busybox", "nslookup", name]).stdout.decode()
    assert ip in found, found


def test_docker_external_network_and_volume_are_used_never_made_nor_pruned(
    tmp_path: Path, scope: Scope, busybox_image: str,
) -> None:
    m = tmp_path / "m"
    p = scope.owner
    scope.images.append(busybox_image)
    write(m, "web.yaml", f"""
        apiVersion: reconciler/v1
        kind: Network
        metadata: {{name: {p}-ext}}
        spec: {{external: true}}
        ---
        apiVersion: reconciler/v1
        kind: Volume
        metadata: {{name: {p}-extvol}}
        spec: {{external: true}}
        ---
        apiVersion: reconciler/v1
        kind: Container
        metadata: {{name: {p}-web}}
        spec:
          image: {busybox_image}
          command: [sleep, "3600"]
          networks: [{p}-ext]
          volumes: ["{p}-extvol:/data"]
        """)
    write(m, "other.yaml", f"""
        apiVersion: reconciler/v1
        kind: Container
        metadata: {{name: {p}-other}}
        spec: {{image: {busybox_image}, command: [sleep, "3600"], networks: [none]}}
        """)
    try:
        assert scope.cli("apply", str(m)) == 1                      # missing: a clear failure, web not made
        assert set(scope.ours()) == {f"{p}-other"}
        assert f"{p}-ext" not in {n.name for n in scope.rt.list_networks(None)}
        # someone else makes them (no owner label of ours)
        scope.rt.ensure_network(base.NetworkConfig(name=f"{p}-ext", subnet=scope.subnet, labels={"made-by": "hand"}))
        scope.rt.ensure_volume(base.VolumeConfig(name=f"{p}-extvol", labels={"made-by": "hand"}))
        assert scope.cli("apply", str(m)) == 0
        attrs = scope.rt.api.container_inspect(f"{p}-web")
        assert list(attrs["NetworkSettings"]["Networks"]) == [f"{p}-ext"]
        assert [(mt["Name"], mt["Destination"]) for mt in attrs["Mounts"]] == [(f"{p}-extvol", "/data")]
        assert scope.cli("diff", str(m)) == 0
        (m / "web.yaml").unlink()                                   # prune web: the external ones stay
        assert scope.cli("apply", str(m)) == 0
        assert set(scope.ours()) == {f"{p}-other"}
        assert [n.name for n in scope.rt.list_networks(None) if n.name == f"{p}-ext"] == [f"{p}-ext"]
        assert [v.name for v in scope.rt.list_volumes(None) if v.name == f"{p}-extvol"] == [f"{p}-extvol"]
    finally:
        for c in scope.rt.list_containers(None):
            if c.name.startswith(p):
                scope.rt.remove_container(c.id, force=True)
        for remove, name in ((scope.rt.remove_network, f"{p}-ext"), (scope.rt.remove_volume, f"{p}-extvol")):
            try:
                remove(name)
            except rterrors.NotFound:
                pass



def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_docker_a_container_renamed_by_hand_is_named_back_never_run_twice(
    tmp_path: Path, scope: Scope, busybox_image: str, capfd: pytest.CaptureFixture[str],
) -> None:
    """`docker rename web webold` keeps the labels: webold is still the object `web`. The next
    pass names it back (its host port stays its own); before, it made a second `web`, whose
    start failed `port is already allocated` in every pass, and without a port two copies ran.
    A second copy such a pass made is removed, the one named as the object kept."""
    m, p = tmp_path / "m", scope.owner
    scope.images.append(busybox_image)
    write(m, "web.yaml", f"""
        apiVersion: reconciler/v1
        kind: Container
        metadata: {{name: {p}-web}}
        spec: {{image: {busybox_image}, command: [sleep, "3600"], ports: ["127.0.0.1:{free_port()}:80"]}}
        """)
    assert scope.cli("apply", str(m)) == 0
    first = scope.ours()[f"{p}-web"].id
    scope.rt.rename_container(f"{p}-web", f"{p}-webold")
    capfd.readouterr()
    assert scope.cli("apply", str(m)) == 0
    out = capfd.readouterr().out
    assert f"container:{p}-web   configured   rename    renamed to {p}-webold outside reconcile: named back" in out, out
    assert {n: (c.id, str(c.status)) for n, c in scope.ours().items()} == {f"{p}-web": (first, "running")}
    assert scope.cli("diff", str(m)) == 0

    # what a pass without the rule left: a second container of the object beside the renamed one
    scope.rt.rename_container(f"{p}-web", f"{p}-webold")
    second = scope.rt.create_container(base.ContainerConfig(
        name=f"{p}-web", image=busybox_image, command=("sleep", "3600"),
        labels=scope.rt.inspect_container(f"{p}-webold").labels))
    capfd.readouterr()
    assert scope.cli("apply", str(m)) == 0
    out = capfd.readouterr().out
    assert f"a second copy of container:{p}-web (its labels): one container per object, {p}-web is kept" in out, out
    assert {n: (c.id, str(c.status)) for n, c in scope.ours().items()} == {f"{p}-web": (second, "running")}


def test_docker_a_state_root_leaves_alone_what_another_root_of_the_owner_made(
    tmp_path: Path, scope: Scope, busybox_image: str, capfd: pytest.CaptureFixture[str],
) -> None:
    """Two state roots, one owner, one shared engine (a CI job with a temporary root and the
    default owner): what root 1 made is not in root 2's inventory, so root 2 neither replaces it
    (it did: `stop, remove, create, start — spec hash changed`) nor records it, and so never
    prunes it (its `--allow-empty` deleted it); `--adopt` takes it over, and then it is root 2's."""
    m, p = tmp_path / "m", scope.owner
    scope.images.append(busybox_image)
    write(m, "web.yaml", f"""
        apiVersion: reconciler/v1
        kind: Container
        metadata: {{name: {p}-web}}
        spec: {{image: {busybox_image}, command: [sleep, "3600"], networks: [none], stopTimeout: 1s}}
        """)
    assert scope.cli("apply", str(m)) == 0
    first = scope.ours()[f"{p}-web"].id
    (m / "web.yaml").write_text((m / "web.yaml").read_text().replace('"3600"', '"3601"'))
    root2 = tmp_path / "root2"

    def cli2(*args: str) -> int:
        return main([*args, "--root", str(root2), "--runtime", "docker", "--owner", p])

    capfd.readouterr()
    assert cli2("apply", str(m)) == 1
    out = capfd.readouterr().out
    assert f"container:{p}-web   failed    fail      carries the labels of owner '{p}', but this state root's " \
           "inventory does not list it" in out, out
    assert scope.ours()[f"{p}-web"].id == first
    empty = tmp_path / "empty"
    empty.mkdir()
    capfd.readouterr()
    assert cli2("apply", str(empty), "--allow-empty") == 0
    assert "is not in this state root's inventory: left untouched" in capfd.readouterr().out
    assert scope.ours()[f"{p}-web"].id == first

    assert cli2("diff", str(m), "--adopt") == 1
    capfd.readouterr()
    assert cli2("apply", str(m), "--adopt") == 0
    out = capfd.readouterr().out
    assert f"note: container:{p}-web: not in this state root's inventory: taken over (--adopt)" in out, out
    adopted = scope.ours()[f"{p}-web"].id
    assert adopted != first
    assert cli2("apply", str(m)) == 0                      # root 2's now: converged, nothing to do
    assert cli2("apply", str(empty), "--allow-empty") == 0
    assert scope.ours() == {}


def test_docker_a_pass_killed_after_making_a_container_leaves_it_to_its_own_root(
    tmp_path: Path, scope: Scope, busybox_image: str,
) -> None:
    """A pass killed (kill -9) while it waits for a container it made to become healthy never
    wrote its record; what it made is in its root's inventory all the same (claimed before it was
    made), so the next pass takes it as its own, not as another state root's, and converges."""
    m, p = tmp_path / "m", scope.owner
    scope.images.append(busybox_image)
    write(m, "web.yaml", f"""
        apiVersion: reconciler/v1
        kind: Container
        metadata: {{name: {p}-web}}
        spec:
          image: {busybox_image}
          command: [sleep, "3600"]
          networks: [none]
          stopTimeout: 1s
          healthcheck: {{test: [CMD, test, -f, /tmp/ok], interval: 1s, retries: 1}}
          update: {{healthTimeout: 120s}}
        """)
    proc = subprocess.Popen([sys.executable, "-m", "reconciler", "apply", str(m), "--root", str(scope.root),
                             "--runtime", "docker", "--owner", p], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while f"{p}-web" not in scope.ours() or str(scope.ours()[f"{p}-web"].status) != "running":
            assert proc.poll() is None
            assert time.monotonic() < deadline
            time.sleep(0.2)
    finally:
        proc.kill()
        proc.wait()
    made = scope.ours()[f"{p}-web"].id
    assert scope.rt.exec(f"{p}-web", ["touch", "/tmp/ok"]).exit_code == 0
    assert scope.cli("apply", str(m)) == 0
    assert scope.ours()[f"{p}-web"].id == made


# a connect refused leaks httpcore's socket (closed by the garbage collector): the engine's
# client meets one when the engine is gone (runtime/docker/api.py checks a missing path first)
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_docker_an_engine_lost_mid_pass_is_one_failed_pass_with_what_was_done(
    tmp_path: Path, scope: Scope, busybox_image: str, capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The Engine API goes away during a replace (its socket proxy killed during the stop): the
    pass ends failed with its table (the stop that ran, what was skipped) and the error, and the
    history has one row for it, finished `failed` with those changes. Before, the CLI printed the
    error alone, and the pass left two rows: the one `begin` opened, `running` (relabelled
    `interrupted` by the next pass, as if its process died), and a second, `failed`, empty."""
    m, p = tmp_path / "m", scope.owner
    scope.images.append(busybox_image)
    write(m, "web.yaml", f"""
        apiVersion: reconciler/v1
        kind: Container
        metadata: {{name: {p}-web}}
        spec: {{image: {busybox_image}, command: [sleep, "3600"], networks: [none], stopTimeout: 3s}}
        """)
    assert scope.cli("apply", str(m)) == 0
    (m / "web.yaml").write_text((m / "web.yaml").read_text().replace('"3600"', '"3601"'))
    proxy = SocketProxy(tmp_path / "d.sock", kill_on=rb"POST /v[0-9.]+/containers/[^/ ]+/stop", after=0.5).start()
    monkeypatch.setenv("DOCKER_HOST", f"unix://{proxy.path}")
    capfd.readouterr()
    try:
        assert scope.cli("apply", str(m)) == 1
    finally:
        proxy.kill()
    assert proxy.killed.is_set()
    out, err = capfd.readouterr()
    assert f"container:{p}-web   failed    stop,remove,create,start   cannot reach docker" in out, (out, err)
    assert "cannot reach" in err, (out, err)
    monkeypatch.delenv("DOCKER_HOST")
    capfd.readouterr()
    assert scope.cli("history", "-o", "json") == 0
    rows = json.loads(capfd.readouterr().out)
    assert [r["result"] for r in rows] == ["failed", "converged"], rows
    assert [c["resource"] for c in rows[0]["changes"]] == [f"container:{p}-web"], rows[0]
    assert "cannot reach" in rows[0]["error"], rows[0]
    (m / "web.yaml").write_text((m / "web.yaml").read_text().replace('"3601"', '"3602"'))   # (no backoff)
    assert scope.cli("apply", str(m)) == 0                 # the engine back: converged
    capfd.readouterr()
    assert scope.cli("history", "-o", "json") == 0
    assert [r["result"] for r in json.loads(capfd.readouterr().out)] == ["converged", "failed", "converged"]
