"""Docker stack files (compose files as `docker stack deploy` reads them) with `reconcile apply
--runtime swarm`, on the tests' own single-node swarm (conftest.py): the services are named,
scaled and configured as `docker stack deploy` makes them. Every object reconciler makes carries
the test's owner (the scope removes them); a stack `docker stack deploy` makes here for
comparison is removed by `docker stack rm` in the test itself, even when it fails.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from reconciler.cli.main import main
from tests.execution.helpers import write
from tests.swarm.conftest import Scope
from tests.swarm.test_swarm_e2e import cli, running_tasks, services

pytestmark = [pytest.mark.docker, pytest.mark.registry, pytest.mark.slow, pytest.mark.root,
              pytest.mark.xdist_group("swarm")]


def stack_file(image: str, *, parallelism: int = 2, team: str = "s") -> str:
    """A stack file with the deploy keys `docker stack deploy` users write."""
    return f"""
        version: "3.8"
        services:
          web:
            image: {image}
            command: [sleep, "3600"]
            stop_grace_period: 1s
            labels: {{clabel: c}}
            networks: [front]
            deploy:
              replicas: 2
              labels: {{slabel: {team}}}
              endpoint_mode: dnsrr
              update_config: {{parallelism: {parallelism}, delay: 3s, failure_action: rollback, monitor: 1s,
                               max_failure_ratio: 0.3, order: start-first}}
              rollback_config: {{parallelism: 0, delay: 1s, failure_action: continue, monitor: 2s,
                                 max_failure_ratio: 0.1, order: stop-first}}
              restart_policy: {{condition: on-failure, delay: 4s, max_attempts: 3, window: 20s}}
        networks:
          front: {{driver: overlay, attachable: true}}
        """


def _settings(svc: dict[str, Any]) -> dict[str, Any]:
    spec = svc["Spec"]
    task = spec["TaskTemplate"]
    return {"Mode": spec["Mode"], "UpdateConfig": spec.get("UpdateConfig"), "RollbackConfig": spec.get("RollbackConfig"),
            "RestartPolicy": task.get("RestartPolicy"), "EndpointMode": spec["EndpointSpec"]["Mode"],
            "service label": spec["Labels"].get("slabel"), "task labels": task["ContainerSpec"].get("Labels", {}).get("slabel"),
            "container label": task["ContainerSpec"].get("Labels", {}).get("clabel")}


def test_a_stack_files_deploy_keys_make_the_service_docker_stack_deploy_makes(
    tmp_path: Path, swarm: Scope, busybox_image: str, capsys: pytest.CaptureFixture[str],
) -> None:
    """deploy.labels, endpoint_mode, update_config, rollback_config and the restart policy's delay
    and window were refused (or warned about as having no effect), and an overlay network's driver
    refused. Now the service is what `docker stack deploy` makes of the same file on this dockerd,
    and a change of one of them is an update in place that restarts no copy."""
    p = swarm.owner
    stack = f"{p}st"                            # docker stack deploy's, removed below
    project = tmp_path / p
    write(project, "compose.yaml", stack_file(busybox_image))
    try:
        deployed = swarm.daemon.docker("stack", "deploy", "-c", str(project / "compose.yaml"), stack)
        assert deployed.returncode == 0, deployed.stderr
        theirs = swarm.rt.api.service_inspect(f"{stack}_web")

        assert cli(swarm, "apply", str(project)) == 0
        out = capsys.readouterr()
        # (docker stack deploy on Docker 20.10 needs the version that compose calls obsolete)
        assert [w for w in out.err.splitlines() if "version attribute is obsolete" not in w] == [], out.err
        ours = services(swarm)[f"{p}_web"]
        assert _settings(ours) == _settings(theirs)
        assert _settings(ours)["service label"] == "s"
        assert _settings(ours)["task labels"] is None               # deploy.labels: the service's, not its copies'
        net = swarm.rt.api.network_inspect(f"{p}_front", scope="swarm")
        assert (net["Driver"], net["Attachable"]) == ("overlay", True)
        # labelled with the stack it is, as docker stack deploy labels its own: the stack commands list it
        assert net["Labels"]["com.docker.stack.namespace"] == p
        listed = swarm.daemon.docker("stack", "services", "--format", "{{.Name}}", p)
        assert listed.stdout.split() == [f"{p}_web"], listed.stderr
        tasks = swarm.daemon.docker("stack", "ps", "--format", "{{.Name}}", p)
        assert {t.split(".")[0] for t in tasks.stdout.split()} == {f"{p}_web"}, tasks
    finally:
        swarm.daemon.docker("stack", "rm", stack, check=False)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and swarm.rt.api.service_list({"com.docker.stack.namespace": stack}):
            time.sleep(0.5)
        while time.monotonic() < deadline and swarm.rt.api.network_list({"com.docker.stack.namespace": stack}):
            swarm.daemon.docker("stack", "rm", stack, check=False)
            time.sleep(0.5)

    # a change of the service's own settings alone: updated in place, its copies left running
    before = {t["ID"] for t in running_tasks(swarm, f"{p}_web")}
    write(project, "compose.yaml", stack_file(busybox_image, parallelism=1, team="t"))
    assert cli(swarm, "diff", str(project)) == 1
    assert (f"container:{p}_web, update, service settings changed: labels, update parallelism 2 -> 1"
            in capsys.readouterr().out)
    assert cli(swarm, "apply", str(project)) == 0
    now = services(swarm)[f"{p}_web"]
    assert (now["ID"], now["Spec"]["UpdateConfig"]["Parallelism"], now["Spec"]["Labels"]["slabel"]) == (
        ours["ID"], 1, "t")
    assert {t["ID"] for t in running_tasks(swarm, f"{p}_web")} == before
    capsys.readouterr()
    assert cli(swarm, "diff", str(project)) == 0


def test_a_compose_service_made_under_its_older_name_is_replaced_by_project_underscore_service(
    tmp_path: Path, swarm: Scope, busybox_image: str, capsys: pytest.CaptureFixture[str],
) -> None:
    """An older reconciler made a compose service `<project>-<service>-1` on Swarm (the single
    host's container name: the manifests `reconcile convert` writes without --runtime swarm).
    Now it is `<project>_<service>`, docker stack deploy's name: Swarm renames no service, so
    the plan says it replaces the old one, removed first (never both side by side)."""
    p = swarm.owner
    project = tmp_path / p                      # the project's name
    write(project, "compose.yaml", f"""
        services:
          web:
            image: {busybox_image}
            command: [sleep, "3600"]
            stop_grace_period: 1s
        """)
    assert main(["convert", str(project)]) == 0
    old = tmp_path / "old"
    write(old, "m.yaml", capsys.readouterr().out)
    assert cli(swarm, "apply", str(old)) == 0
    assert set(services(swarm)) == {f"{p}-web-1"}
    capsys.readouterr()

    assert cli(swarm, "diff", str(project)) == 1
    plan = capsys.readouterr().out
    assert (f"container:{p}-web-1, remove, renamed to {p}_web (docker stack deploy's name for a compose service, "
            "<project>_<service>; Swarm cannot rename a service): removed, then made anew") in plan, plan
    assert f"container:{p}_web, create, not found; replaces {p}-web-1 (" in plan, plan
    assert cli(swarm, "apply", str(project)) == 0
    assert set(services(swarm)) == {f"{p}_web"}
    assert len(running_tasks(swarm, f"{p}_web")) == 1
    capsys.readouterr()
    assert cli(swarm, "diff", str(project)) == 0


def test_a_change_of_deploy_replicas_scales_the_service_in_place(
    tmp_path: Path, swarm: Scope, busybox_image: str, capsys: pytest.CaptureFixture[str],
) -> None:
    """As `docker stack deploy` (and `docker service scale`) does: the same service, its running
    copy left running. It was another service before (`<project>-web-1` for one copy,
    `<project>-web` for three): the running copy was removed and three new ones made."""
    p = swarm.owner
    project = tmp_path / p

    def stack(replicas: int) -> str:
        return f"""
            services:
              web:
                image: {busybox_image}
                command: [sleep, "3600"]
                stop_grace_period: 1s
                deploy: {{replicas: {replicas}}}
            """

    write(project, "compose.yaml", stack(1))
    assert cli(swarm, "apply", str(project)) == 0
    before = services(swarm)[f"{p}_web"]["ID"]
    (task,) = running_tasks(swarm, f"{p}_web")
    capsys.readouterr()

    write(project, "compose.yaml", stack(3))
    assert cli(swarm, "diff", str(project)) == 1
    assert f"container:{p}_web, update, replicas 1 -> 3" in capsys.readouterr().out
    assert cli(swarm, "apply", str(project)) == 0
    assert set(services(swarm)) == {f"{p}_web"}
    assert services(swarm)[f"{p}_web"]["ID"] == before
    running = {t["ID"] for t in running_tasks(swarm, f"{p}_web")}
    assert len(running) == 3
    assert task["ID"] in running                 # the copy that ran goes on running


def test_diff_of_a_service_whose_copies_restart_is_converging_not_in_sync(
    tmp_path: Path, swarm: Scope, busybox_image: str, capsys: pytest.CaptureFixture[str],
) -> None:
    """A copy that exits is restarted by Swarm (restart_policy any): no action to plan, but the
    service does not run as desired; diff said "in sync", exit 0. (The restarts 10 s apart: with
    1 s, a CI run's diff once looked in the milliseconds a restarted copy ran before it exited.)"""
    p = swarm.owner
    project = tmp_path / p
    write(project, "compose.yaml", f"""
        services:
          crash:
            image: {busybox_image}
            command: [sh, -c, "exit 3"]
            deploy: {{restart_policy: {{condition: any, delay: 10s}}}}
        """)
    assert cli(swarm, "apply", str(project), "--timeout", "3s") == 1
    capsys.readouterr()
    assert cli(swarm, "diff", str(project)) == 1
    out = capsys.readouterr().out
    assert f"note: container:{p}_crash is converging, not drift: 0 of 1 copies of its current spec running" in out, out
    assert out.strip().endswith("not in sync: 1 converging"), out


def _remove_stack(swarm: Scope, stack: str) -> None:
    """`docker stack rm` of a stack made for comparison, waiting until its services and networks are gone."""
    swarm.daemon.docker("stack", "rm", stack, check=False)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and swarm.rt.api.service_list({"com.docker.stack.namespace": stack}):
        time.sleep(0.5)
    while time.monotonic() < deadline and swarm.rt.api.network_list({"com.docker.stack.namespace": stack}):
        swarm.daemon.docker("stack", "rm", stack, check=False)
        time.sleep(0.5)


def test_an_overlay_networks_driver_opts_reach_swarm_as_docker_stack_deploy_passes_them(
    tmp_path: Path, swarm: Scope, busybox_image: str, capsys: pytest.CaptureFixture[str],
) -> None:
    """`driver_opts: {encrypted: "true"}` on an overlay network was refused ("not supported yet:
    the network driver option 'encrypted'"); docker stack deploy passes it to the overlay driver
    (IPsec between the nodes). Now the network has the option as docker stack deploy's has it,
    and the service on it runs. An option the overlay driver does not know is refused, naming
    the file, line and key: Swarm would ignore it without a word."""
    p = swarm.owner
    stack = f"{p}st"
    project = tmp_path / p
    write(project, "compose.yaml", f"""
        services:
          web:
            image: {busybox_image}
            command: [sleep, "3600"]
            stop_grace_period: 1s
            networks: [secure]
        networks:
          secure:
            driver: overlay
            driver_opts:
              encrypted: "true"
        """)
    try:
        deployed = swarm.daemon.docker("stack", "deploy", "-c", str(project / "compose.yaml"), stack)
        assert deployed.returncode == 0, deployed.stderr
        theirs = swarm.rt.api.network_inspect(f"{stack}_secure", scope="swarm")
    finally:
        _remove_stack(swarm, stack)
    assert theirs["Options"]["encrypted"] == "true"

    assert cli(swarm, "apply", str(project)) == 0, capsys.readouterr()
    ours = swarm.rt.api.network_inspect(f"{p}_secure", scope="swarm")
    assert (ours["Driver"], ours["Options"]["encrypted"]) == ("overlay", "true")
    assert len(running_tasks(swarm, f"{p}_web")) == 1
    capsys.readouterr()
    assert cli(swarm, "diff", str(project)) == 0
    capsys.readouterr()

    write(project, "compose.yaml", """
        services:
          web: {image: busybox, networks: [secure]}
        networks:
          secure:
            driver: overlay
            driver_opts: {encrypted: "true", com.docker.network.bridge.name: br0}
        """)
    assert cli(swarm, "diff", str(project)) == 2
    out = capsys.readouterr()
    assert (out.out + out.err).splitlines()[1] == (
        f"{project}/compose.yaml:6:38: networks.secure.driver_opts.com.docker.network.bridge.name: "
        "'com.docker.network.bridge.name' is not an option of Swarm's overlay driver, which would ignore it; it "
        "takes encrypted, com.docker.network.driver.overlay.vxlanid_list and com.docker.network.driver.mtu: remove it")


def test_a_service_has_a_virtual_ip_as_docker_stack_deploy_makes_it(
    tmp_path: Path, swarm: Scope, busybox_image: str, capsys: pytest.CaptureFixture[str],
) -> None:
    """A service without deploy.endpoint_mode was made with dnsrr, where docker stack deploy (and
    Swarm itself) makes it vip. Now it is vip; a service an older reconciler made dnsrr is
    updated in place to vip (`diff` says so first), and Swarm replaces its copies then, once, as
    for any change of the endpoint mode. endpoint_mode: dnsrr keeps dnsrr."""
    p = swarm.owner
    stack = f"{p}st"
    project = tmp_path / p

    def stack_file(mode: str = "") -> str:
        return f"""
            services:
              web:
                image: {busybox_image}
                command: [sleep, "3600"]
                stop_grace_period: 1s
                deploy: {{replicas: 1{f", endpoint_mode: {mode}" if mode else ""}}}
            """

    write(project, "compose.yaml", stack_file())
    try:
        deployed = swarm.daemon.docker("stack", "deploy", "-c", str(project / "compose.yaml"), stack)
        assert deployed.returncode == 0, deployed.stderr
        theirs = swarm.rt.api.service_inspect(f"{stack}_web")["Spec"]["EndpointSpec"]["Mode"]
    finally:
        _remove_stack(swarm, stack)
    assert theirs == "vip"
    assert cli(swarm, "apply", str(project)) == 0
    assert services(swarm)[f"{p}_web"]["Spec"]["EndpointSpec"]["Mode"] == "vip"
    capsys.readouterr()

    # made dnsrr (as an older reconciler made every service), then the default again: an upgrade
    write(project, "compose.yaml", stack_file("dnsrr"))
    assert cli(swarm, "apply", str(project)) == 0
    assert services(swarm)[f"{p}_web"]["Spec"]["EndpointSpec"]["Mode"] == "dnsrr"
    (before,) = running_tasks(swarm, f"{p}_web")
    capsys.readouterr()
    write(project, "compose.yaml", stack_file())
    assert cli(swarm, "diff", str(project)) == 1
    assert f"container:{p}_web, update, service settings changed: endpoint-mode dnsrr -> vip" in \
        capsys.readouterr().out
    assert cli(swarm, "apply", str(project)) == 0
    assert services(swarm)[f"{p}_web"]["Spec"]["EndpointSpec"]["Mode"] == "vip"
    (after,) = running_tasks(swarm, f"{p}_web")
    assert after["ID"] != before["ID"]              # Swarm replaced the copy: the upgrade's cost
    capsys.readouterr()
    assert cli(swarm, "diff", str(project)) == 0
