"""`reconcile apply|diff|ps --runtime swarm` on a real single-node Swarm (a dockerd of the tests'
own: conftest.py). Every object is named with the test's owner as prefix and carries it as
reconciler.owner; the scope removes exactly those afterwards.
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from reconciler.cli.main import main
from reconciler.runtime import errors
from reconciler.runtime.swarm import services as services_module
from tests.execution.helpers import write
from tests.helpers import anonymous_volumes, images
from tests.helpers.ports import publish_port
from tests.helpers.registry import RegistryServer
from tests.swarm.conftest import LABEL, Scope

pytestmark = [pytest.mark.docker, pytest.mark.registry, pytest.mark.slow, pytest.mark.root,
              pytest.mark.xdist_group("swarm")]


def cli(s: Scope, *args: str) -> int:
    return main([args[0], *args[1:], "--root", str(s.root), "--runtime", "swarm", "--owner", s.owner])


def services(s: Scope) -> dict[str, dict[str, Any]]:
    return {str(v["Spec"]["Name"]): v for v in s.rt.api.service_list({LABEL: s.owner})}


def running_tasks(s: Scope, service: str) -> list[dict[str, Any]]:
    sid = services(s)[service]["ID"]
    return [t for t in s.rt.api.task_list({"service": [sid], "desired-state": ["running"]})
            if t["Status"]["State"] == "running"]


def in_copy(s: Scope, service: str, *argv: str) -> str:
    """Run `argv` in a running copy of `service`, on the node (the real docker CLI)."""
    cid = running_tasks(s, service)[0]["Status"]["ContainerStatus"]["ContainerID"]
    return s.daemon.docker("exec", cid, *argv).stdout


def web_doc(s: Scope, image: str, *, port: int | None, env: str = "1", check: str = "true", replicas: int = 1) -> str:
    """The web service, found by its name and alias through DNS round robin (`endpointMode:
    dnsrr`): these machines' kernels have no IPVS, so the virtual IP a service has by default
    would not route (docs/swarm.md)."""
    p = s.owner
    ports = f'ports: ["{port}:8080"]' if port else "ports: []"
    return f"""
        apiVersion: reconciler/v1
        kind: Container
        metadata: {{name: {p}-web}}
        spec:
          image: {image}
          command: [httpd, -f, -p, "8080", -h, /etc]
          env: {{V: "{env}"}}
          networks: [{p}-net]
          aliases: [{p}-www]
          endpointMode: dnsrr
          {ports}
          volumes: ["{p}-data:/data"]
          restart: always
          replicas: {replicas}
          stopTimeout: 1s
          healthcheck: {{test: [CMD, "{check}"], interval: 1s, retries: 1}}
          update: {{minReady: 1s}}
        """


def net_docs(s: Scope) -> str:
    p = s.owner
    return f"""
        apiVersion: reconciler/v1
        kind: Network
        metadata: {{name: {p}-net}}
        spec: {{subnet: {s.subnet()}}}
        ---
        apiVersion: reconciler/v1
        kind: Volume
        metadata: {{name: {p}-data}}
        spec: {{deletionPolicy: Delete}}
        """


def api_doc(s: Scope, image: str, *, replicas: int, network: bool = True) -> str:
    p = s.owner
    return f"""
        apiVersion: reconciler/v1
        kind: Container
        metadata: {{name: {p}-api}}
        spec:
          image: {image}
          command: [sleep, "3600"]
          networks: [{f"{p}-net" if network else "host"}]
          replicas: {replicas}
          restart: always
          stopTimeout: 1s
          update: {{minReady: 1s}}
        """


def http_get(s: Scope, port: int, path: str) -> bytes:
    """GET from a port published in host mode: served on the node's address (the daemon's veth)."""
    with urllib.request.urlopen(f"http://{s.daemon.address}:{port}{path}", timeout=5) as resp:
        data: bytes = resp.read()
        return data


def test_converges_services_replicas_overlay_network_and_a_published_port(
    tmp_path: Path, swarm: Scope, busybox_image: str, capsys: pytest.CaptureFixture[str],
) -> None:
    m, p, port = tmp_path / "m", swarm.owner, publish_port()
    write(m, "net.yaml", net_docs(swarm))
    write(m, "web.yaml", web_doc(swarm, busybox_image, port=port))
    write(m, "api.yaml", api_doc(swarm, busybox_image, replicas=2))
    assert cli(swarm, "apply", str(m)) == 0
    capsys.readouterr()

    svcs = services(swarm)
    assert set(svcs) == {f"{p}-web", f"{p}-api"}
    web_spec = svcs[f"{p}-web"]["Spec"]
    # pinned by the digest reconciler resolved; ownership labels on the service, not its copies
    assert web_spec["TaskTemplate"]["ContainerSpec"]["Image"].startswith(f"{busybox_image}@sha256:")
    assert web_spec["Labels"][LABEL] == p
    assert LABEL not in web_spec["TaskTemplate"]["ContainerSpec"].get("Labels", {})
    assert web_spec["EndpointSpec"]["Ports"][0]["PublishMode"] == "host"
    assert svcs[f"{p}-api"]["Spec"]["Mode"]["Replicated"]["Replicas"] == 2
    assert len(running_tasks(swarm, f"{p}-api")) == 2
    net = swarm.rt.api.network_inspect(f"{p}-net", scope="swarm")
    assert (net["Driver"], net["Attachable"], net["Labels"][LABEL]) == ("overlay", True, p)

    assert b"root:x:0:" in http_get(swarm, port, "/passwd")                 # published in host mode, served
    # the copies find each other on the overlay network by service name and alias
    assert "root:x:0:" in in_copy(swarm, f"{p}-api", "wget", "-q", "-O", "-", f"http://{p}-www:8080/group")

    assert cli(swarm, "diff", str(m)) == 0
    assert capsys.readouterr().out.strip().endswith("in sync")

    assert main(["ps", "--runtime", "swarm", "-f", f"{LABEL}={p}"]) == 0
    table = capsys.readouterr().out
    node = swarm.daemon.docker("info", "--format", "{{.Name}}").stdout.strip()
    assert f"{p}-api   2/2" in table
    assert f"{p}-web   1/1" in table
    assert f"{p}-api.1" in table
    assert f"{p}-api.2" in table
    assert f" {node} " in table
    assert "running" in table


def test_scale_and_a_config_update_roll_out_in_place(
    tmp_path: Path, swarm: Scope, busybox_image: str, capsys: pytest.CaptureFixture[str],
) -> None:
    m, p, port = tmp_path / "m", swarm.owner, publish_port()
    write(m, "net.yaml", net_docs(swarm))
    write(m, "web.yaml", web_doc(swarm, busybox_image, port=port))
    write(m, "api.yaml", api_doc(swarm, busybox_image, replicas=1))
    assert cli(swarm, "apply", str(m)) == 0
    before = {n: s["ID"] for n, s in services(swarm).items()}
    api_task = running_tasks(swarm, f"{p}-api")[0]["ID"]
    web_task = running_tasks(swarm, f"{p}-web")[0]["ID"]
    capsys.readouterr()

    write(m, "api.yaml", api_doc(swarm, busybox_image, replicas=3))
    write(m, "web.yaml", web_doc(swarm, busybox_image, port=port, env="2"))
    assert cli(swarm, "diff", str(m)) == 1
    plan = capsys.readouterr().out
    assert f"container:{p}-api, update, replicas 1 -> 3" in plan
    assert f"container:{p}-web, update, spec hash changed: env" in plan
    assert cli(swarm, "apply", str(m)) == 0
    assert "2 configured" in capsys.readouterr().out

    assert {n: s["ID"] for n, s in services(swarm).items()} == before     # updated, not re-created
    api_tasks = {t["ID"] for t in running_tasks(swarm, f"{p}-api")}
    assert len(api_tasks) == 3
    assert api_task in api_tasks
    (new_web,) = running_tasks(swarm, f"{p}-web")
    assert new_web["ID"] != web_task                                     # rolled out: a new copy
    assert "V=2" in new_web["Spec"]["ContainerSpec"]["Env"]
    assert in_copy(swarm, f"{p}-web", "sh", "-c", "echo $V").strip() == "2"
    assert cli(swarm, "diff", str(m)) == 0


def test_an_update_swarm_rolls_back_fails_the_pass_naming_the_service_and_its_task_error(
    tmp_path: Path, swarm: Scope, busybox_image: str, capsys: pytest.CaptureFixture[str],
) -> None:
    # (no published port: Swarm's scheduler may count a failed copy's host port as taken for a
    # while, which only slows the rollback down)
    m, p, port = tmp_path / "m", swarm.owner, None
    write(m, "net.yaml", net_docs(swarm))
    write(m, "web.yaml", web_doc(swarm, busybox_image, port=port))
    assert cli(swarm, "apply", str(m)) == 0
    good_hash = services(swarm)[f"{p}-web"]["Spec"]["Labels"]["reconciler.spec-hash"]
    capsys.readouterr()

    write(m, "web.yaml", web_doc(swarm, busybox_image, port=port, check="false"))
    assert main(["--once", str(m), "--root", str(swarm.root), "--runtime", "swarm", "--owner", p,
                 "--timeout", "2m"]) == 1
    out = capsys.readouterr()
    text = out.out + out.err
    assert f"container:{p}-web   rolled-back   update" in text
    assert f"service {p}-web: Swarm rolled the update back" in text
    assert "task error: task: non-zero exit (137): dockerexec: unhealthy container" in text, text

    web = services(swarm)[f"{p}-web"]
    assert web["UpdateStatus"]["State"] == "rollback_completed"
    assert web["Spec"]["Labels"]["reconciler.spec-hash"] == good_hash    # the previous spec runs again
    assert web["Spec"]["TaskTemplate"]["ContainerSpec"]["Healthcheck"]["Test"] == ["CMD", "true"]
    assert len(running_tasks(swarm, f"{p}-web")) == 1                   # waited for: it runs again
    assert "root:x:0:" in in_copy(swarm, f"{p}-web", "wget", "-q", "-O", "-", "http://127.0.0.1:8080/passwd")
    assert cli(swarm, "diff", str(m)) == 1                               # held until a new revision
    assert f"container:{p}-web, hold, previous attempt failed" in capsys.readouterr().out


def test_a_service_not_converged_by_the_timeout_fails_naming_it_and_its_task_error(
    tmp_path: Path, swarm: Scope, busybox_image: str, capsys: pytest.CaptureFixture[str],
) -> None:
    m, p = tmp_path / "m", swarm.owner
    write(m, "bad.yaml", f"""
        apiVersion: reconciler/v1
        kind: Container
        metadata: {{name: {p}-bad}}
        spec:
          image: {busybox_image}
          command: [sh, -c, "exit 3"]
          restart: always
        """)
    assert main(["apply", str(m), "--root", str(swarm.root), "--runtime", "swarm", "--owner", p,
                 "--timeout", "6s"]) == 1
    out = capsys.readouterr()
    text = out.out + out.err
    # (a look may find the copy in its short run: then it has not run for the monitor period)
    assert re.search(rf"service {p}-bad has not converged after 6s: (0 of 1 copies running|1 of 1 copies "
                     r"running, not yet for 5s in a row); task error: task: non-zero exit \(3\)", text), text


def test_prune_removes_every_object_of_the_owner_and_nothing_else(
    tmp_path: Path, swarm: Scope, busybox_image: str, capsys: pytest.CaptureFixture[str],
) -> None:
    m, p, port = tmp_path / "m", swarm.owner, publish_port()
    write(m, "net.yaml", net_docs(swarm))
    write(m, "web.yaml", web_doc(swarm, busybox_image, port=port))
    write(m, "api.yaml", api_doc(swarm, busybox_image, replicas=2))
    assert cli(swarm, "apply", str(m)) == 0
    # a service without our label, one of another owner, a volume and a network of nobody
    d = swarm.daemon
    d.docker("service", "create", "--detach", "--name", f"{p}-foreign", "--label", "reconciler.owner=someone",
             busybox_image, "sleep", "3600")
    d.docker("service", "create", "--detach", "--name", f"{p}-plain", busybox_image, "sleep", "3600")
    d.docker("network", "create", "--driver", "overlay", f"{p}-othernet")
    d.docker("volume", "create", f"{p}-othervol")
    try:
        for f in m.iterdir():
            f.unlink()
        assert cli(swarm, "apply", str(m), "--allow-empty") == 0
        assert services(swarm) == {}
        assert swarm.rt.api.network_list({LABEL: p}) == []
        assert swarm.rt.api.volume_list({LABEL: p}) == []
        left = {str(v["Spec"]["Name"]) for v in swarm.rt.api.service_list()}
        assert {f"{p}-foreign", f"{p}-plain"} <= left
        assert d.docker("network", "inspect", f"{p}-othernet", check=False).returncode == 0
        assert d.docker("volume", "inspect", f"{p}-othervol", check=False).returncode == 0
    finally:
        d.docker("service", "rm", f"{p}-foreign", f"{p}-plain", check=False)
        d.docker("network", "rm", f"{p}-othernet", check=False)
        d.docker("volume", "rm", f"{p}-othervol", check=False)


def test_one_host_fields_are_refused_naming_the_field_and_nothing_is_made(
    tmp_path: Path, swarm: Scope, busybox_image: str, capsys: pytest.CaptureFixture[str],
) -> None:
    m, p = tmp_path / "m", swarm.owner
    (tmp_path / "conf").mkdir()
    write(m, "c.yaml", f"""
        apiVersion: reconciler/v1
        kind: Container
        metadata: {{name: {p}-c}}
        spec:
          image: {busybox_image}
          command: [sleep, "3600"]
          ports: ["127.0.0.1:8080:80"]
          volumes: ["{tmp_path / 'conf'}:/conf:ro"]
        """)
    assert cli(swarm, "apply", str(m)) == 2
    err = capsys.readouterr().err
    assert f"Container/{p}-c: spec.volumes[0]: {tmp_path / 'conf'}:/conf is a host bind mount" in err
    assert f"Container/{p}-c: spec.ports[0]: a service publishes on every address of its node" in err
    assert services(swarm) == {}


def test_docker_host_over_tcp_reaches_the_manager(
    tmp_path: Path, swarm: Scope, busybox_image: str, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"tcp://{swarm.daemon.tcp}")
    m = tmp_path / "m"
    write(m, "api.yaml", api_doc(swarm, busybox_image, replicas=1, network=False))
    assert cli(swarm, "apply", str(m)) == 0
    capsys.readouterr()
    assert main(["ps", "--runtime", "swarm", "-o", "json", "-f", f"{LABEL}={swarm.owner}"]) == 0
    (svc,) = json.loads(capsys.readouterr().out)
    assert (svc["name"], svc["replicas"], svc["running"]) == (f"{swarm.owner}-api", 1, 1)
    assert [t["state"] for t in svc["tasks"]] == ["running"]


def test_the_manager_gets_the_registry_credentials_so_its_nodes_pull_a_private_image(
    tmp_path: Path, swarm: Scope, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tests.registry_client.conftest import USERS, write_htpasswd

    work = tmp_path / "reg"
    work.mkdir()
    reg = RegistryServer(work, auth={"htpasswd": {"realm": "test", "path": str(write_htpasswd(work / "pw", USERS))}})
    reg.start()
    fwd = swarm.daemon.forward(reg.port)
    try:
        layout = tmp_path / "layout"
        images.write_layout(layout, [images.busybox_layer()], config={"Cmd": ["/bin/sh"], "Env": ["PATH=/bin"]})
        ref = f"{reg.host}/private/busybox:latest"
        subprocess.run(["skopeo", "copy", "--quiet", "--dest-tls-verify=false", "--dest-creds",
                        f"alice:{USERS['alice']}", f"oci:{layout}:latest", f"docker://{ref}"], check=True)
        auth = base64.b64encode(f"alice:{USERS['alice']}".encode()).decode()
        monkeypatch.setenv("DOCKER_AUTH_CONFIG", json.dumps({"auths": {reg.host: {"auth": auth}}}))
        m = tmp_path / "m"
        write(m, "api.yaml", api_doc(swarm, ref, replicas=1, network=False))
        assert main(["apply", str(m), "--root", str(swarm.root), "--runtime", "swarm", "--owner", swarm.owner,
                     "--timeout", "60s"]) == 0
        assert len(running_tasks(swarm, f"{swarm.owner}-api")) == 1
    finally:
        fwd.shutdown()
        fwd.server_close()
        reg.stop()


def placed_doc(s: Scope, image: str, placement: str) -> str:
    return f"""
        apiVersion: reconciler/v1
        kind: Container
        metadata: {{name: {s.owner}-edge}}
        spec:
          image: {image}
          command: [sleep, "3600"]
          networks: [host]
          restart: always
          stopTimeout: 1s
          placement: {placement}
        """


def test_placement_labels_become_constraints_on_node_labels(
    tmp_path: Path, swarm: Scope, busybox_image: str, capsys: pytest.CaptureFixture[str],
) -> None:
    m, p, key = tmp_path / "m", swarm.owner, f"{swarm.owner}-role"      # a node label of this test's own
    node = swarm.daemon.docker("info", "--format", "{{.Swarm.NodeID}}").stdout.strip()
    swarm.daemon.docker("node", "update", "--label-add", f"{key}=edge", node)
    try:
        write(m, "edge.yaml", placed_doc(swarm, busybox_image, f"{{labels: {{{key}: edge}}}}"))
        assert cli(swarm, "apply", str(m)) == 0
        svc = services(swarm)[f"{p}-edge"]
        assert svc["Spec"]["TaskTemplate"]["Placement"]["Constraints"] == [f"node.labels.{key}==edge"]
        assert len(running_tasks(swarm, f"{p}-edge")) == 1                # the labelled node runs it
        capsys.readouterr()
        assert cli(swarm, "diff", str(m)) == 0

        # placed where no node is: an update of the same service that Swarm cannot place
        write(m, "edge.yaml", placed_doc(swarm, busybox_image, f"{{labels: {{{key}: db}}}}"))
        assert cli(swarm, "diff", str(m)) == 1
        assert f"placement node.labels.{key}==edge -> node.labels.{key}==db" in capsys.readouterr().out
        assert main(["apply", str(m), "--root", str(swarm.root), "--runtime", "swarm", "--owner", p,
                     "--timeout", "5s"]) == 1
        assert "no suitable node (scheduling constraints not satisfied on 1 node)" in capsys.readouterr().out
        after = services(swarm)[f"{p}-edge"]
        assert after["ID"] == svc["ID"]
        assert after["Spec"]["TaskTemplate"]["Placement"]["Constraints"] == [f"node.labels.{key}==db"]
    finally:
        swarm.daemon.docker("node", "update", "--label-rm", key, node, check=False)


def test_reservations_reach_the_scheduler_and_one_no_node_can_meet_fails_the_pass(
    tmp_path: Path, swarm: Scope, busybox_image: str, capsys: pytest.CaptureFixture[str],
) -> None:
    m, p = tmp_path / "m", swarm.owner

    def doc(memory: str) -> str:
        return f"""
            apiVersion: reconciler/v1
            kind: Container
            metadata: {{name: {p}-res}}
            spec:
              image: {busybox_image}
              command: [sleep, "3600"]
              restart: always
              stopTimeout: 1s
              resources: {{memory: 64Mi, reservations: {{memory: {memory}, cpus: 10m}}}}
            """

    write(m, "res.yaml", doc("8Mi"))
    assert cli(swarm, "apply", str(m)) == 0
    res = services(swarm)[f"{p}-res"]["Spec"]["TaskTemplate"]["Resources"]
    assert res["Reservations"] == {"MemoryBytes": 8 << 20, "NanoCPUs": 10_000_000}
    assert len(running_tasks(swarm, f"{p}-res")) == 1
    assert cli(swarm, "diff", str(m)) == 0
    capsys.readouterr()

    write(m, "res.yaml", doc("1000Ti"))          # more than any node has: the new copy stays pending
    assert cli(swarm, "diff", str(m)) == 1
    assert f"container:{p}-res, update, spec hash changed: reservations" in capsys.readouterr().out
    assert cli(swarm, "apply", str(m), "--timeout", "6s") == 1
    out = capsys.readouterr()
    assert "insufficient resources" in out.out + out.err, out.out + out.err


def test_a_port_in_ingress_mode_is_published_on_the_routing_mesh(
    tmp_path: Path, swarm: Scope, busybox_image: str, capsys: pytest.CaptureFixture[str],
) -> None:
    m, p, port = tmp_path / "m", swarm.owner, publish_port()
    write(m, "mesh.yaml", f"""
        apiVersion: reconciler/v1
        kind: Container
        metadata: {{name: {p}-mesh}}
        spec:
          image: {busybox_image}
          command: [httpd, -f, -p, "8080", -h, /etc]
          ports: [{{published: {port}, target: 8080, mode: ingress}}]
          replicas: 2
          restart: always
          stopTimeout: 1s
          update: {{order: start-first}}
        """)
    assert cli(swarm, "apply", str(m)) == 0
    spec = services(swarm)[f"{p}-mesh"]["Spec"]
    assert spec["EndpointSpec"] == {"Mode": "vip", "Ports": [
        {"Protocol": "tcp", "TargetPort": 8080, "PublishedPort": port, "PublishMode": "ingress"}]}
    # two copies on one node and one port: only the mesh can do that (host mode needs two nodes)
    assert len(running_tasks(swarm, f"{p}-mesh")) == 2
    assert spec["UpdateConfig"]["Order"] == "start-first"       # the mesh, not the node, holds the port
    assert cli(swarm, "diff", str(m)) == 0


def test_volume_driver_options_make_the_volume_on_the_manager_and_on_each_node_a_copy_mounts_it(
    tmp_path: Path, swarm: Scope, busybox_image: str,
) -> None:
    m, p = tmp_path / "m", swarm.owner
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
          volumes: ["{p}-scratch:/scratch"]
          restart: always
          stopTimeout: 1s
        """)
    assert cli(swarm, "apply", str(m)) == 0
    vol = swarm.rt.api.volume_inspect(f"{p}-scratch")
    assert (vol["Driver"], vol["Options"]) == ("local", {"type": "tmpfs", "device": "tmpfs", "o": "size=3m"})
    (mount,) = services(swarm)[f"{p}-user"]["Spec"]["TaskTemplate"]["ContainerSpec"]["Mounts"]
    assert mount["VolumeOptions"]["DriverConfig"] == {
        "Name": "local", "Options": {"type": "tmpfs", "device": "tmpfs", "o": "size=3m"}}
    mounts = in_copy(swarm, f"{p}-user", "cat", "/proc/mounts")
    (line,) = [x.split() for x in mounts.splitlines() if x.split()[1] == "/scratch"]
    assert line[2] == "tmpfs", line                                  # the options' tmpfs, 3 MiB
    assert "size=3072k" in line[3], line
    assert cli(swarm, "diff", str(m)) == 0


def test_a_host_bind_mount_runs_where_the_placement_pins_the_service_to_one_node(
    tmp_path: Path, swarm: Scope, busybox_image: str, capsys: pytest.CaptureFixture[str],
) -> None:
    m, p = tmp_path / "m", swarm.owner
    node = swarm.daemon.docker("info", "--format", "{{.Name}}").stdout.strip()
    (tmp_path / "on-node").mkdir()
    (tmp_path / "on-node" / "motd").write_text("from the node\n")
    (m / "conf").mkdir(parents=True)

    def doc(source: str) -> str:
        return f"""
            apiVersion: reconciler/v1
            kind: Container
            metadata: {{name: {p}-pinned}}
            spec:
              image: {busybox_image}
              command: [sleep, "3600"]
              volumes: ["{source}:/host:ro"]
              restart: always
              stopTimeout: 1s
              placement: {{constraints: ["node.hostname=={node}"]}}
            """

    write(m, "c.yaml", doc(str(tmp_path / "on-node")))
    assert cli(swarm, "apply", str(m)) == 0
    (mount,) = services(swarm)[f"{p}-pinned"]["Spec"]["TaskTemplate"]["ContainerSpec"]["Mounts"]
    assert mount == {"Type": "bind", "Source": str(tmp_path / "on-node"), "Target": "/host", "ReadOnly": True}
    assert in_copy(swarm, f"{p}-pinned", "cat", "/host/motd") == "from the node\n"
    assert cli(swarm, "diff", str(m)) == 0
    capsys.readouterr()

    # a path relative to the manifests names a directory where reconciler runs: refused, named
    write(m, "c.yaml", doc("./conf"))
    assert cli(swarm, "apply", str(m)) == 2
    assert (f"Container/{p}-pinned: spec.volumes[0]: {m / 'conf'}:/host is named relative to the manifests, "
            f"a path where reconciler runs, not on node {node}") in capsys.readouterr().err


def test_an_anonymous_volume_is_each_copys_own_filled_from_the_image(
    tmp_path: Path, swarm: Scope, registry: RegistryServer,
) -> None:
    image = anonymous_volumes.seeded_image(registry, tmp_path / "layout")
    m, p = tmp_path / "m", swarm.owner
    write(m, "cache.yaml", f"""
        apiVersion: reconciler/v1
        kind: Container
        metadata: {{name: {p}-cache}}
        spec:
          image: {image}
          command: [sleep, "3600"]
          replicas: 2
          volumes: ["/data"]
          restart: always
          stopTimeout: 1s
        """)
    assert cli(swarm, "apply", str(m)) == 0
    (mount,) = services(swarm)[f"{p}-cache"]["Spec"]["TaskTemplate"]["ContainerSpec"]["Mounts"]
    assert (mount["Type"], mount["Target"], "Source" in mount) == ("volume", "/data", False)
    assert swarm.rt.api.volume_list({LABEL: p}) == []             # no volume of the manifests': Swarm's own
    names = set()
    for task in running_tasks(swarm, f"{p}-cache"):
        cid = task["Status"]["ContainerStatus"]["ContainerID"]
        assert swarm.daemon.docker("exec", cid, "cat", "/data/seed.txt").stdout.encode() == anonymous_volumes.SEED
        attrs = json.loads(swarm.daemon.docker("inspect", cid).stdout)[0]
        names |= {mm["Name"] for mm in attrs["Mounts"] if mm["Destination"] == "/data"}
    assert len(names) == 2                                            # one volume per copy, as docker stack gives
    assert cli(swarm, "diff", str(m)) == 0


def host_doc(s: Scope, image: str, *, shm: str) -> str:
    p = s.owner
    return f"""
        apiVersion: reconciler/v1
        kind: Container
        metadata: {{name: {p}-host}}
        spec:
          image: {image}
          command: [sleep, "3600"]
          networks: [{p}-net]
          stopTimeout: 1s
          update: {{minReady: 1s}}
          sysctls: {{net.core.somaxconn: 1024}}
          ulimits: {{nofile: {{soft: 1000, hard: 2000}}}}
          shmSize: {shm}
          extraHosts: ["db.internal:10.0.0.5"]
          dns: [10.0.0.53]
          dnsSearch: [example.org]
          dnsOptions: ["ndots:2"]
          tty: true
          stdinOpen: true
          groupAdd: ["1234"]
          domainname: corp.example
        """


def test_the_fields_docker_run_sets_on_a_host_reach_each_copy_and_a_change_rolls_out(
    tmp_path: Path, swarm: Scope, busybox_image: str, capsys: pytest.CaptureFixture[str],
) -> None:
    m, p = tmp_path / "m", swarm.owner
    write(m, "net.yaml", net_docs(swarm))
    write(m, "host.yaml", host_doc(swarm, busybox_image, shm="32Mi"))
    assert cli(swarm, "apply", str(m)) == 0
    capsys.readouterr()

    (task,) = running_tasks(swarm, f"{p}-host")
    cid = task["Status"]["ContainerStatus"]["ContainerID"]
    host = json.loads(swarm.daemon.docker("inspect", "--format", "{{json .HostConfig}}", cid).stdout)
    config = json.loads(swarm.daemon.docker("inspect", "--format", "{{json .Config}}", cid).stdout)
    # what the manager kept of the spec, as the node's engine made the copy's container of it
    assert host["Sysctls"] == {"net.core.somaxconn": "1024", "kernel.domainname": "corp.example"}
    assert host["Ulimits"] == [{"Name": "nofile", "Soft": 1000, "Hard": 2000}]
    assert (host["ExtraHosts"], host["Dns"], host["DnsSearch"], host["DnsOptions"], host["GroupAdd"]) == (
        ["db.internal:10.0.0.5"], ["10.0.0.53"], ["example.org"], ["ndots:2"], ["1234"])
    assert (config["Tty"], config["OpenStdin"]) == (True, True)
    # and in the copy itself
    assert in_copy(swarm, f"{p}-host", "cat", "/proc/sys/net/core/somaxconn").strip() == "1024"
    # of the copy's own process: an exec'd shell's limits are the exec's (one full run saw a soft
    # limit of 2000 there, with the copy's spec and PID 1 at 1000)
    limits = in_copy(swarm, f"{p}-host", "cat", "/proc/1/limits")
    assert re.search(r"^Max open files\s+1000\s+2000\s+files", limits, re.M), limits
    assert in_copy(swarm, f"{p}-host", "cat", "/proc/sys/kernel/domainname").strip() == "corp.example"
    assert re.search(r"^10\.0\.0\.5\s+db\.internal$", in_copy(swarm, f"{p}-host", "cat", "/etc/hosts"), re.M)
    assert "1234" in in_copy(swarm, f"{p}-host", "id", "-G").split()
    shm = [line.split() for line in in_copy(swarm, f"{p}-host", "cat", "/proc/mounts").splitlines()
           if line.split()[1] == "/dev/shm"]
    assert [(fs, "size=32768k" in opts.split(",")) for fs, _, _, opts, *_ in shm] == [("tmpfs", True)]
    assert in_copy(swarm, f"{p}-host", "stat", "-c", "%a", "/dev/shm").strip() == "1777"
    resolv = in_copy(swarm, f"{p}-host", "cat", "/etc/resolv.conf")
    assert "search example.org" in resolv
    assert "ndots:2" in resolv

    # a change of one of them is an update that changes the copy (not an update Swarm finds nothing in)
    write(m, "host.yaml", host_doc(swarm, busybox_image, shm="48Mi"))
    assert cli(swarm, "apply", str(m)) == 0
    assert "1 configured" in capsys.readouterr().out
    (new,) = running_tasks(swarm, f"{p}-host")
    assert new["ID"] != task["ID"]
    assert "size=49152k" in next(line for line in in_copy(swarm, f"{p}-host", "cat", "/proc/mounts").splitlines()
                                 if line.split()[1] == "/dev/shm")
    assert cli(swarm, "diff", str(m)) == 0


def test_a_field_no_service_has_or_the_manager_is_too_old_for_is_refused_naming_it(
    tmp_path: Path, swarm: Scope, busybox_image: str, capsys: pytest.CaptureFixture[str],
) -> None:
    m, p = tmp_path / "m", swarm.owner
    api_version = swarm.rt.api.version()["ApiVersion"]
    assert api_version == "1.41"            # Docker 20.10 (Debian 12's): below 1.44, which has noNewPrivileges
    write(m, "c.yaml", f"""
        apiVersion: reconciler/v1
        kind: Container
        metadata: {{name: {p}-c}}
        spec:
          image: {busybox_image}
          command: [sleep, "3600"]
          noNewPrivileges: true
          resources: {{cpuShares: 512}}
        """)
    assert cli(swarm, "apply", str(m)) == 2
    err = capsys.readouterr().err
    assert (f"Container/{p}-c: spec.resources.cpuShares: a Swarm service has no CPU weight; limit it "
            "with resources.cpus") in err
    assert (f"Container/{p}-c: spec.noNewPrivileges: the Swarm manager speaks Engine API 1.41, and a "
            "service takes this field from API 1.44 (Docker 25.0) on; upgrade the cluster to Docker 25.0 or later, "
            "or run it with a single-host agent") in err
    assert services(swarm) == {}


def test_a_spec_with_a_field_newer_than_the_client_speaks_is_sent_at_that_fields_version(
    swarm: Scope, busybox_image: str,
) -> None:
    """A manager drops a field its request's version does not know (noNewPrivileges below 1.44),
    so such a spec goes at the field's version; this one speaks 1.41 and says so."""
    body = {"Name": f"{swarm.owner}-nnp", "Labels": {LABEL: swarm.owner},
            "TaskTemplate": {"ContainerSpec": {"Image": busybox_image, "Privileges": {"NoNewPrivileges": True}}}}
    with pytest.raises(errors.InvalidArgument, match=r"client version 1\.44 is too new"):
        swarm.rt.api.service_create(body, api_version="1.44")
    assert services(swarm) == {}


def test_an_unfinished_update_is_converging_not_in_sync_and_no_later_pass_records_it_converged(
    tmp_path: Path, swarm: Scope, busybox_image: str, capsys: pytest.CaptureFixture[str],
) -> None:
    # Swarm keeps the old copies running while the update of their spec is unfinished (paused
    # here: onFailure pause); they are not copies of the current spec, and the pass that timed out
    # waiting must not be followed by one that finds the service "converged"
    m, p = tmp_path / "m", swarm.owner

    def doc(check: str) -> str:
        return f"""
            apiVersion: reconciler/v1
            kind: Container
            metadata: {{name: {p}-up}}
            spec:
              image: {busybox_image}
              command: [sleep, "3600"]
              replicas: 2
              restart: always
              stopTimeout: 1s
              healthcheck: {{test: [CMD, "{check}"], interval: 1s, retries: 1}}
              update: {{order: start-first, onFailure: pause, minReady: 1s}}
            """

    write(m, "up.yaml", doc("true"))
    assert cli(swarm, "apply", str(m)) == 0
    write(m, "up.yaml", doc("false"))
    assert cli(swarm, "apply", str(m), "--timeout", "3s") == 1
    capsys.readouterr()
    assert services(swarm)[f"{p}-up"]["UpdateStatus"]["State"] in ("updating", "paused")

    # no action to plan (Swarm goes on by itself, or waits for a change), and not in sync either
    assert cli(swarm, "diff", str(m)) == 1
    out = capsys.readouterr().out
    assert re.search(rf"container:{p}-up is converging, not drift: 0 of 2 copies of its current spec running; "
                     r"rolling update (updating|paused)", out), out
    assert out.strip().endswith("not in sync: 1 converging"), out

    assert cli(swarm, "apply", str(m)) == 1
    out = capsys.readouterr()
    assert "degraded: revision" in out.out, out                          # not a good revision
    assert "converged: revision" not in out.out, out
    assert f"container {p}-up is not running as desired: 0 of 2 copies running" in out.err, out

    assert main(["ps", "--runtime", "swarm", "--filter", f"label={LABEL}={p}"]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith(f"{p}-up "))
    assert " 0/2 " in row, row                      # the two copies run the previous spec


def test_a_compose_dependency_that_must_complete_is_a_swarm_job_and_its_dependents_start_after_it(
    tmp_path: Path, swarm: Scope, busybox_image: str, capsys: pytest.CaptureFixture[str],
) -> None:
    # `service_completed_successfully` makes migrate a job: on Swarm a replicated job, whose
    # completion the pass waits for before app is made (a replicated service whose copy exits
    # never converges, and app was never made)
    p = swarm.owner
    project = tmp_path / p                      # the project's name, and its services': {p}_migrate
    write(project, "compose.yaml", f"""
        services:
          migrate:
            image: {busybox_image}
            command: [sh, -c, "sleep 2"]
          app:
            image: {busybox_image}
            command: [sleep, "3600"]
            stop_grace_period: 1s
            depends_on:
              migrate: {{condition: service_completed_successfully}}
        """)
    assert cli(swarm, "apply", str(project), "--timeout", "90s") == 0
    svcs = services(swarm)
    migrate, app = svcs[f"{p}_migrate"], svcs[f"{p}_app"]
    assert migrate["Spec"]["Mode"] == {"ReplicatedJob": {"MaxConcurrent": 1, "TotalCompletions": 1}}
    assert "UpdateConfig" not in migrate["Spec"]
    (task,) = swarm.rt.api.task_list({"service": [migrate["ID"]]})
    assert task["Status"]["State"] == "complete"
    # app was made once the job had completed
    assert services_module.timestamp(app["CreatedAt"]) > services_module.timestamp(task["Status"]["Timestamp"])
    assert len(running_tasks(swarm, f"{p}_app")) == 1
    capsys.readouterr()
    assert cli(swarm, "diff", str(project)) == 0                   # a completed job is in sync
    assert capsys.readouterr().out.strip().endswith("in sync")
    assert main(["ps", "--runtime", "swarm", "-f", f"{LABEL}={p}"]) == 0
    assert f"{p}_migrate   1/1 completed" in capsys.readouterr().out


def test_a_failed_job_fails_the_pass_holds_its_dependents_and_start_runs_it_again(
    tmp_path: Path, swarm: Scope, busybox_image: str, capsys: pytest.CaptureFixture[str],
) -> None:
    m, p = tmp_path / "m", swarm.owner
    # the job fails once (and leaves a mark in its volume), then completes when run again
    write(m, "job.yaml", f"""
        apiVersion: reconciler/v1
        kind: Volume
        metadata: {{name: {p}-marks}}
        spec: {{deletionPolicy: Delete}}
        ---
        apiVersion: reconciler/v1
        kind: Container
        metadata: {{name: {p}-migrate}}
        spec:
          image: {busybox_image}
          command: [sh, -c, "test -e /marks/ran || {{ touch /marks/ran; exit 3; }}"]
          volumes: ["{p}-marks:/marks"]
          job: true
        ---
        apiVersion: reconciler/v1
        kind: Container
        metadata: {{name: {p}-app}}
        spec:
          image: {busybox_image}
          command: [sleep, "3600"]
          restart: always
          stopTimeout: 1s
          dependsOn: [{p}-migrate]
        """)
    assert cli(swarm, "apply", str(m), "--timeout", "90s") == 1
    out = capsys.readouterr()
    assert f"job {p}-migrate failed: a copy exited with code 3 (0 of 1 copies completed); task error: task: " \
           "non-zero exit (3)" in out.out + out.err, out
    assert set(services(swarm)) == {f"{p}-migrate"}                 # app waits for it
    tasks = swarm.rt.api.task_list({"service": [services(swarm)[f"{p}-migrate"]["ID"]]})
    assert [t["Status"]["State"] for t in tasks] == ["failed"]      # restart no: Swarm runs it no more

    assert cli(swarm, "apply", str(m)) == 1                        # a failed job, in every later pass
    out = capsys.readouterr()
    assert "job failed: exited (code 3); restart policy no leaves it stopped" in out.out + out.err, out
    assert set(services(swarm)) == {f"{p}-migrate"}

    assert main(["start", "--runtime", "swarm", f"{p}-migrate"]) == 0   # run it again
    swarm.rt.wait_rollout(f"{p}-migrate", timeout=60)
    assert cli(swarm, "apply", str(m), "--timeout", "60s") == 0
    assert len(running_tasks(swarm, f"{p}-app")) == 1


def test_a_service_without_a_restart_policy_has_its_lost_copy_replaced_as_docker_stack_deploy_makes_it(
    tmp_path: Path, swarm: Scope, busybox_image: str,
) -> None:
    m, p = tmp_path / "m", swarm.owner
    write(m, "api.yaml", f"""
        apiVersion: reconciler/v1
        kind: Container
        metadata: {{name: {p}-api}}
        spec:
          image: {busybox_image}
          command: [sleep, "3600"]
          stopTimeout: 1s
        """)
    assert cli(swarm, "apply", str(m)) == 0
    spec = services(swarm)[f"{p}-api"]["Spec"]
    assert spec["TaskTemplate"]["RestartPolicy"]["Condition"] == "any"      # (it was none: never replaced)
    (lost,) = running_tasks(swarm, f"{p}-api")
    swarm.daemon.docker("kill", lost["Status"]["ContainerStatus"]["ContainerID"])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and [t["ID"] for t in running_tasks(swarm, f"{p}-api")] in ([], [lost["ID"]]):
        time.sleep(0.5)
    (new,) = running_tasks(swarm, f"{p}-api")
    assert new["ID"] != lost["ID"]
    assert cli(swarm, "diff", str(m)) == 0
