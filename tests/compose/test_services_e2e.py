"""Service selection for real on the native engine (root, a real registry, runc + conmon), as
compose users type it: `reconcile apply SOURCE web` is `docker compose up -d web` (web and what it
depends on, nothing else made, changed or removed), `--no-deps` leaves the dependencies out, an
unknown name changes nothing, and `diff SOURCE web` shows the selection alone. One engine per
test (own state root, run dir, name prefix and subnet: tests/helpers/host.py); teardown removes
everything and fails the test if anything is left.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from reconciler.spec.building import anonymous_name
from tests.helpers.host import Host

pytestmark = [pytest.mark.root, pytest.mark.registry, pytest.mark.slow]

SERVICE = """
        image: {image}
        command: ["sleep", "3600"]
        stop_grace_period: 1s"""

COMPOSE = f"""
    name: sel
    services:
      web:{SERVICE}
        depends_on: [api]
      api:{SERVICE}
        depends_on: [db]
        networks: [default, back]
      db:{SERVICE}
        networks: [back]
        volumes: [data:/data]
      worker:{SERVICE}
        networks: [jobs]
      debug:{SERVICE}
        profiles: [dbg]
        networks: [jobs]
    networks:
      back: {{{{}}}}
      jobs: {{{{}}}}
    volumes:
      data: {{{{}}}}
    """


@pytest.fixture
def project(tmp_path: Path, busybox_image: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    for var in ("COMPOSE_PROJECT_NAME", "COMPOSE_PROFILES", "COMPOSE_FILE"):
        monkeypatch.delenv(var, raising=False)
    directory = tmp_path / "sel"
    directory.mkdir()
    write(directory, COMPOSE.format(image=busybox_image))
    return directory


def write(directory: Path, text: str) -> None:
    (directory / "compose.yaml").write_text(textwrap.dedent(text))


def running(host: Host) -> dict[str, str]:
    """Name -> id of the containers that run."""
    rt = host.runtime()
    try:
        return {c.name: c.id for c in rt.list_containers(None) if c.status == "running"}
    finally:
        rt.close()


def made(host: Host) -> tuple[set[str], set[str], set[str]]:
    """The containers, networks and volumes the engine has."""
    rt = host.runtime()
    try:
        return ({c.name for c in rt.list_containers(None)}, {n.name for n in rt.list_networks()},
                {v.name for v in rt.list_volumes()})
    finally:
        rt.close()


def test_apply_of_services_starts_them_and_their_deps_and_leaves_the_rest(
    host: Host, project: Path, busybox_image: str, capsys: pytest.CaptureFixture[str],
) -> None:
    assert host.cli("apply", str(project), "web") == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith("converged: revision ")
    first = running(host)
    assert set(first) == {"sel-web-1", "sel-api-1", "sel-db-1"}          # web, and what it depends on
    containers, networks, volumes = made(host)
    assert containers == set(first)
    assert {"sel_default", "sel_back"} <= networks
    assert "sel_jobs" not in networks
    assert "sel_data" in volumes

    # another selection later: the first one's containers are neither removed nor replaced
    assert host.cli("apply", str(project), "worker") == 0
    assert running(host) == {**first, "sel-worker-1": running(host)["sel-worker-1"]}
    assert "sel_jobs" in made(host)[1]

    # a service named though its profile is not active runs, as compose's rule has it
    assert host.cli("apply", str(project), "debug") == 0
    assert "sel-debug-1" in running(host)

    # what the manifests no longer list is not pruned by a selection: only by a pass over all of it
    write(project, COMPOSE.format(image=busybox_image).replace("      worker:", "      gone:"))
    capsys.readouterr()
    assert host.cli("apply", str(project), "web") == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith("converged: revision ")
    now = running(host)
    assert {k: now[k] for k in first} == first
    assert "sel-worker-1" in now
    assert "sel-debug-1" in now

    # the history says what each pass selected
    capsys.readouterr()
    assert host.cli("history", "-o", "json") == 0
    selected = [p["selection"] and (p["selection"]["services"], p["selection"]["units"])
                for p in json.loads(capsys.readouterr().out)]
    assert selected[-3:] == [(["debug"], ["debug"]), (["worker"], ["worker"]), (["web"], ["api", "db", "web"])]

    assert host.cli("apply", str(project)) == 0                         # all of it: worker goes now
    assert set(running(host)) == {"sel-web-1", "sel-api-1", "sel-db-1", "sel-gone-1"}


def test_no_deps_makes_the_service_alone(host: Host, project: Path) -> None:
    assert host.cli("apply", str(project), "--no-deps", "api") == 0
    assert set(running(host)) == {"sel-api-1"}
    containers, networks, volumes = made(host)
    assert containers == {"sel-api-1"}
    assert {"sel_default", "sel_back"} <= networks
    assert "sel_jobs" not in networks
    assert "sel_data" not in volumes                                    # db's, which was left out
    # and with its dependencies, later: db is made, api left running as it was
    api = running(host)["sel-api-1"]
    assert host.cli("apply", str(project), "api") == 0
    assert running(host)["sel-api-1"] == api
    assert "sel-db-1" in running(host)


def test_an_unknown_service_is_refused_naming_the_file_and_changes_nothing(
    host: Host, project: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    assert host.cli("apply", str(project), "worker") == 0
    before = made(host)
    ids = running(host)
    capsys.readouterr()
    assert host.cli("apply", str(project), "web", "wrker") == 2           # exit 2, as any manifest error
    err = capsys.readouterr().err
    assert f"{project}/compose.yaml:3:1: services: no such service: 'wrker' (did you mean 'worker'?); " \
           "the services here: api, db, debug, web, worker" in err
    assert made(host) == before
    assert running(host) == ids
    assert host.cli("--once", str(project), "nothing") == 2               # --once is apply
    assert made(host) == before
    assert running(host) == ids


def test_diff_shows_the_selection_alone(host: Host, project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert host.cli("apply", str(project), "web") == 0
    capsys.readouterr()
    assert host.cli("diff", str(project), "web") == 0                    # in sync, worker missing or not
    assert capsys.readouterr().out.splitlines() == ["in sync (services api, db, web)"]
    assert host.cli("diff", str(project), "worker", "-o", "json") == 1
    plan = json.loads(capsys.readouterr().out)
    assert {(a["resource"], a["kind"]) for a in plan["actions"]} == {
        ("network:sel_jobs", "ensure-network"), ("container:sel-worker-1", "create"),
        ("container:sel-worker-1", "start")}
    assert plan["selection"] == ["worker"]
    assert host.cli("diff", str(project)) == 1                           # all of it: worker (and nothing pruned)
    out = capsys.readouterr().out
    assert "container:sel-worker-1, create" in out
    assert "prune" not in out


MANIFESTS = """
    apiVersion: reconciler/v1
    kind: Container
    metadata: {{name: store}}
    spec: {{image: {image}, command: [sleep, "3600"], networks: [none], stopTimeout: 1s}}
    ---
    apiVersion: reconciler/v1
    kind: Container
    metadata: {{name: shop}}
    spec: {{image: {image}, command: [sleep, "3600"], networks: [none], stopTimeout: 1s, replicas: 2,
           dependsOn: [store]}}
    ---
    apiVersion: reconciler/v1
    kind: Container
    metadata: {{name: mail}}
    spec: {{image: {image}, command: [sleep, "3600"], networks: [none], stopTimeout: 1s}}
    """


def test_manifests_are_selected_by_their_container_names(
    host: Host, tmp_path: Path, busybox_image: str, capsys: pytest.CaptureFixture[str],
) -> None:
    """reconciler's own manifests: a name is a Container's (its replicas with it)."""
    directory = tmp_path / "m"
    directory.mkdir()
    (directory / "app.yaml").write_text(textwrap.dedent(MANIFESTS.format(image=busybox_image)))
    assert host.cli("apply", str(directory), "shop") == 0
    assert set(running(host)) == {"shop-1", "shop-2", "store"}
    capsys.readouterr()
    assert host.cli("apply", str(directory), "shop-1", "post") == 2          # replicas go with their Container
    assert capsys.readouterr().err.startswith(
        f"error: 2 problems in the manifests:\n{directory}:0:0: no such Container: 'post'; the Containers here: "
        f"mail, shop, store\n{directory}:0:0: no such Container: 'shop-1' (did you mean 'shop'?); the Containers "
        "here: mail, shop, store\n")
    assert set(running(host)) == {"shop-1", "shop-2", "store"}
    assert host.cli("apply", str(directory), "--no-deps", "mail") == 0
    assert set(running(host)) == {"shop-1", "shop-2", "store", "mail"}


def test_a_changed_network_that_unselected_services_use_is_refused_and_nothing_stops(
    host: Host, project: Path, busybox_image: str, capsys: pytest.CaptureFixture[str],
) -> None:
    """Recreating a network needs every container on it gone; a selection replaces only its own,
    so the change is refused before anything stops, naming the way out (the selected service's
    container was stopped and removed, then the network's removal failed: it stayed down)."""
    assert host.cli("apply", str(project), "worker", "debug") == 0
    before = running(host)
    assert set(before) == {"sel-worker-1", "sel-debug-1"}
    write(project, COMPOSE.format(image=busybox_image).replace(
        "      jobs: {}", "      jobs: {labels: {tier: jobs}}"))
    capsys.readouterr()
    assert host.cli("apply", str(project), "debug") == 1
    out = capsys.readouterr().out
    assert "sel-worker-1" in out
    assert "name their services too" in out
    assert running(host) == before                                      # both still run, not replaced
    assert host.cli("apply", str(project), "worker", "debug") == 0      # with both named: recreated
    after = running(host)
    assert set(after) == set(before)
    assert after != before


SCALED = f"""
    name: sel
    services:
      web:{SERVICE}
        deploy: {{{{replicas: {{web}}}}}}
        volumes: [/cache]
      worker:{SERVICE}
        scale: {{worker}}
        volumes: [/cache]
    """


def anonymous(host: Host) -> set[str]:
    """The anonymous volumes the engine has."""
    return {v for v in made(host)[2] if "-anon-" in v}


def cache(*containers: str) -> set[str]:
    """The anonymous volumes at /cache of `containers`."""
    return {anonymous_name(c, "/cache") for c in containers}


def test_a_selected_service_scaled_down_loses_its_replicas_alone(
    host: Host, project: Path, busybox_image: str, capsys: pytest.CaptureFixture[str],
) -> None:
    """`apply SOURCE web` after web's replicas drop removes web's replicas scaled away and their
    anonymous volumes, as a pass over all of it would, and touches nothing of worker (scaled down
    too); web scaled to 0 is named, so its containers go without --allow-empty, as `docker compose
    up web` with scale 0 removes them."""
    write(project, SCALED.format(image=busybox_image, web=3, worker=2))
    assert host.cli("apply", str(project)) == 0
    first = running(host)
    assert set(first) == {"sel-web-1", "sel-web-2", "sel-web-3", "sel-worker-1", "sel-worker-2"}
    assert anonymous(host) == cache(*first)                             # one anonymous volume each

    write(project, SCALED.format(image=busybox_image, web=1, worker=1))
    assert host.cli("apply", str(project), "web") == 0
    assert running(host) == {k: first[k] for k in ("sel-web-1", "sel-worker-1", "sel-worker-2")}
    assert anonymous(host) == cache("sel-web-1", "sel-worker-1", "sel-worker-2")

    write(project, SCALED.format(image=busybox_image, web=0, worker=1))
    capsys.readouterr()
    assert host.cli("apply", str(project), "web") == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith("converged: revision ")
    assert running(host) == {k: first[k] for k in ("sel-worker-1", "sel-worker-2")}
    assert anonymous(host) == cache("sel-worker-1", "sel-worker-2")

    write(project, SCALED.format(image=busybox_image, web=0, worker=0))
    assert host.cli("apply", str(project), "worker") == 0
    assert running(host) == {}
    assert anonymous(host) == set()


def test_a_selected_container_of_the_manifests_scaled_down_loses_its_replicas_alone(
    host: Host, tmp_path: Path, busybox_image: str, capsys: pytest.CaptureFixture[str],
) -> None:
    """reconciler's own manifests: `apply SOURCE shop` after shop's replicas drop removes shop's
    replicas scaled away, 0 included (no --allow-empty: shop is named), and nothing else; a pass
    over a source that declares nothing is still refused without --allow-empty."""
    directory = tmp_path / "m"
    directory.mkdir()
    app = directory / "app.yaml"
    app.write_text(textwrap.dedent(MANIFESTS.format(image=busybox_image)).replace("replicas: 2", "replicas: 3"))
    assert host.cli("apply", str(directory)) == 0
    first = running(host)
    assert set(first) == {"shop-1", "shop-2", "shop-3", "store", "mail"}
    app.write_text(textwrap.dedent(MANIFESTS.format(image=busybox_image)).replace("replicas: 2", "replicas: 1")
                   .replace("name: mail", "name: post"))
    assert host.cli("apply", str(directory), "shop") == 0
    assert running(host) == {k: first[k] for k in ("shop-1", "store", "mail")}
    app.write_text(textwrap.dedent(MANIFESTS.format(image=busybox_image)).replace("replicas: 2", "replicas: 0")
                   .replace("name: mail", "name: post"))
    assert host.cli("apply", str(directory), "--no-deps", "shop") == 0
    assert running(host) == {k: first[k] for k in ("store", "mail")}
    app.write_text("# nothing here now\n")                            # a source that declares nothing
    capsys.readouterr()
    assert host.cli("apply", str(directory)) == 1                       # still refused
    assert "pass --allow-empty to remove everything" in capsys.readouterr().out
    assert running(host) == {k: first[k] for k in ("store", "mail")}
