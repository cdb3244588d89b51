"""Docker stack files (compose files as `docker stack deploy` reads them) with `reconcile apply
--runtime swarm`, on the tests' own single-node swarm (conftest.py): the services are named,
scaled and configured as `docker stack deploy` makes them. Every object reconciler makes carries
the test's owner (the scope removes them); a stack `docker stack deploy` makes here for
comparison is removed by `docker stack rm` in the test itself, even when it fails.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.cli.main import main
from tests.execution.helpers import write
from tests.swarm.conftest import Scope
from tests.swarm.test_swarm_e2e import cli, running_tasks, services

pytestmark = [pytest.mark.docker, pytest.mark.registry, pytest.mark.slow, pytest.mark.root,
              pytest.mark.xdist_group("swarm")]


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
    service does not run as desired; diff said "in sync", exit 0."""
    p = swarm.owner
    project = tmp_path / p
    write(project, "compose.yaml", f"""
        services:
          crash:
            image: {busybox_image}
            command: [sh, -c, "exit 3"]
            deploy: {{restart_policy: {{condition: any, delay: 1s}}}}
        """)
    assert cli(swarm, "apply", str(project), "--timeout", "3s") == 1
    capsys.readouterr()
    assert cli(swarm, "diff", str(project)) == 1
    out = capsys.readouterr().out
    assert f"note: container:{p}_crash is converging, not drift: 0 of 1 copies of its current spec running" in out, out
    assert out.strip().endswith("not in sync: 1 converging"), out
