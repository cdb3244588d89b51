"""Placement on a two-node swarm of the tests' own (conftest.py `two_nodes`): a manager and a
worker, each a dockerd in a network namespace of its own, joined by a veth pair. A placement by
node label puts every copy of a service on the labelled node; moved, the copies follow."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.cli.main import main
from tests.execution.helpers import write
from tests.swarm.conftest import LABEL, Scope, SwarmDaemon

pytestmark = [pytest.mark.docker, pytest.mark.registry, pytest.mark.slow, pytest.mark.root,
              pytest.mark.xdist_group("swarm")]


@pytest.fixture
def cluster(two_nodes: tuple[SwarmDaemon, SwarmDaemon], tmp_path: Path,
            monkeypatch: pytest.MonkeyPatch) -> Iterator[Scope]:
    manager, _ = two_nodes
    monkeypatch.setenv("DOCKER_HOST", manager.host)
    s = Scope(manager, tmp_path / "root")
    try:
        yield s
    finally:
        s.cleanup()


def doc(s: Scope, image: str, placement: str, replicas: str = "2") -> str:
    return f"""
        apiVersion: reconciler/v1
        kind: Container
        metadata: {{name: {s.owner}-edge}}
        spec:
          image: {image}
          command: [sleep, "3600"]
          networks: [host]
          replicas: {replicas}
          restart: always
          stopTimeout: 1s
          update: {{order: start-first}}
          placement: {placement}
        """


def nodes_running(s: Scope) -> list[str]:
    (svc,) = s.rt.api.service_list({LABEL: s.owner})
    return sorted(str(t["NodeID"]) for t in s.rt.api.task_list({"service": [svc["ID"]]})
                  if t["DesiredState"] == "running" and t["Status"]["State"] == "running")


def test_a_placement_by_node_label_puts_the_copies_on_the_labelled_node(
    tmp_path: Path, cluster: Scope, two_nodes: tuple[SwarmDaemon, SwarmDaemon], busybox_image: str,
) -> None:
    manager, worker = two_nodes
    ids = {"manager": manager.node_id(), "worker": worker.node_id()}
    listed = manager.docker("node", "ls", "--format", "{{.ID}} {{.Status}}").stdout.strip().splitlines()
    assert sorted(listed) == sorted(f"{i} Ready" for i in ids.values())
    key = f"{cluster.owner}-role"                                     # a node label of this test's own
    manager.docker("node", "update", "--label-add", f"{key}=edge", ids["worker"])
    try:
        m = tmp_path / "m"
        write(m, "edge.yaml", doc(cluster, busybox_image, f"{{labels: {{{key}: edge}}}}"))
        assert main(["apply", str(m), "--root", str(cluster.root), "--runtime", "swarm",
                     "--owner", cluster.owner, "--timeout", "90s"]) == 0
        assert nodes_running(cluster) == [ids["worker"]] * 2

        # moved to the manager (Swarm's own constraint syntax): the copies follow, in place
        write(m, "edge.yaml", doc(cluster, busybox_image, '{constraints: ["node.role==manager"]}'))
        assert main(["apply", str(m), "--root", str(cluster.root), "--runtime", "swarm",
                     "--owner", cluster.owner, "--timeout", "90s"]) == 0
        assert nodes_running(cluster) == [ids["manager"]] * 2
    finally:
        manager.docker("node", "update", "--label-rm", key, ids["worker"], check=False)


def test_a_global_service_runs_one_copy_on_every_node_its_placement_selects(
    tmp_path: Path, cluster: Scope, two_nodes: tuple[SwarmDaemon, SwarmDaemon], busybox_image: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    manager, worker = two_nodes
    ids = sorted([manager.node_id(), worker.node_id()])
    key = f"{cluster.owner}-role"
    manager.docker("node", "update", "--label-add", f"{key}=edge", worker.node_id())
    apply = ["apply", str(tmp_path / "m"), "--root", str(cluster.root), "--runtime", "swarm", "--owner", cluster.owner,
             "--timeout", "90s"]
    try:
        write(tmp_path / "m", "edge.yaml", doc(cluster, busybox_image, "{}", replicas="global"))
        assert main(apply) == 0
        (svc,) = cluster.rt.api.service_list({LABEL: cluster.owner})
        assert svc["Spec"]["Mode"] == {"Global": {}}
        assert nodes_running(cluster) == ids                           # one copy on each node
        write(tmp_path / "m", "edge.yaml", doc(cluster, busybox_image, f"{{labels: {{{key}: edge}}}}",
                                               replicas="global"))
        assert main(apply) == 0
        assert nodes_running(cluster) == [worker.node_id()]            # on each node the placement selects

        # Swarm cannot change a service's mode: replicated again, the service is replaced
        capsys.readouterr()
        write(tmp_path / "m", "edge.yaml", doc(cluster, busybox_image, "{}", replicas="2"))
        assert main(["diff", *apply[1:-2]]) == 1
        assert "replicas global -> 2" in capsys.readouterr().out
        assert main(apply) == 0
        (again,) = cluster.rt.api.service_list({LABEL: cluster.owner})
        assert again["ID"] != svc["ID"]
        assert again["Spec"]["Mode"] == {"Replicated": {"Replicas": 2}}
        assert len(nodes_running(cluster)) == 2
    finally:
        manager.docker("node", "update", "--label-rm", key, worker.node_id(), check=False)


def test_a_node_makes_a_volume_with_its_driver_options_where_a_copy_first_mounts_it(
    tmp_path: Path, cluster: Scope, two_nodes: tuple[SwarmDaemon, SwarmDaemon], busybox_image: str,
) -> None:
    _, worker = two_nodes
    m, p = tmp_path / "m", cluster.owner
    write(m, "vol.yaml", f"""
        apiVersion: reconciler/v1
        kind: Volume
        metadata: {{name: {p}-scratch}}
        spec:
          deletionPolicy: Delete
          driverOpts: {{type: tmpfs, device: tmpfs, o: "size=3m"}}
        ---
        apiVersion: reconciler/v1
        kind: Container
        metadata: {{name: {p}-user}}
        spec:
          image: {busybox_image}
          command: [sleep, "3600"]
          networks: [host]
          volumes: ["{p}-scratch:/scratch"]
          restart: always
          stopTimeout: 1s
          placement: {{constraints: ["node.role==worker"]}}
        """)
    apply = ["apply", str(m), "--root", str(cluster.root), "--runtime", "swarm", "--owner", p, "--timeout", "90s"]
    try:
        assert main(apply) == 0
        assert nodes_running(cluster) == [worker.node_id()]
        # the manager made the volume; the worker made its own from the service's mount
        made = worker.docker("volume", "inspect", f"{p}-scratch", "--format", "{{json .Options}}").stdout
        assert made.strip() == '{"device":"tmpfs","o":"size=3m","type":"tmpfs"}'
        cid = worker.docker("ps", "-q", "--filter", f"label=com.docker.swarm.service.name={p}-user").stdout.strip()
        mounts = worker.docker("exec", cid, "cat", "/proc/mounts").stdout
        (line,) = [x.split() for x in mounts.splitlines() if x.split()[1] == "/scratch"]
        assert line[2] == "tmpfs", line
        assert "size=3072k" in line[3], line
        for f in m.iterdir():
            f.unlink()
        assert main([*apply, "--allow-empty"]) == 0
    finally:
        deadline = time.monotonic() + 30        # the worker drops the removed service's container first
        while worker.docker("volume", "rm", f"{p}-scratch", check=False).returncode != 0:
            if time.monotonic() > deadline or worker.docker("volume", "inspect", f"{p}-scratch",
                                                            check=False).returncode != 0:
                break
            time.sleep(0.5)
