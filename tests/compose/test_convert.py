"""`reconcile convert` and `reconcile validate` on compose projects, through the command line."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest
import yaml

from reconciler import spec
from reconciler.cli.main import main

PROJECT = {
    "compose.yaml": """
        services:
          web:
            image: registry.local/web:${TAG:-1}
            ports: ["127.0.0.1:8080:80"]
            volumes: ["./site:/usr/share/www:ro", "cache:/cache"]
            depends_on:
              api: {condition: service_healthy}
            expose: ["80"]
          api:
            build: {context: ./api, args: {VERSION: "${VERSION}"}}
            env_file: api.env
            healthcheck: {test: "wget -qO- localhost:8000/health", interval: 5s}
            networks: [default, back]
          debug:
            image: registry.local/debug:1
            profiles: [debug]
        networks:
          back: {internal: true}
        volumes:
          cache: {}
        """,
    ".env": "VERSION=7\n",
    "api.env": 'LEVEL="info"\n',
    "api/Dockerfile": "FROM busybox\n",
    "site/index.html": "hi\n",
}


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for var in ("TAG", "VERSION", "LEVEL", "COMPOSE_PROJECT_NAME", "COMPOSE_PROFILES", "COMPOSE_FILE"):
        monkeypatch.delenv(var, raising=False)
    root = tmp_path / "shop"
    for name, text in PROJECT.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(textwrap.dedent(text).lstrip("\n"))
    return root


def test_convert_prints_manifests_that_load_into_the_same_objects(
    project: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    compose = project / "compose.yaml"      # the CFS numbers and the blkio weight, as manifests say them
    compose.write_text(compose.read_text().replace(
        "    networks: [default, back]\n",
        "    networks: [default, back]\n    cpu_period: 50000\n    cpu_quota: 25000\n    blkio_config: {weight: 300}\n"))
    assert main(["convert", str(project)]) == 0
    out, err = capsys.readouterr()
    assert out.startswith(f"# the compose project 'shop' (compose.yaml) as reconciler manifests\n"
                          f"# relative paths start in {project}: save this file there\n---\n")
    assert "expose has no effect" in err
    docs = list(yaml.safe_load_all(out))
    assert [(d["kind"], d["metadata"]["name"]) for d in docs] == [
        ("Network", "shop_back"), ("Network", "shop_default"), ("Volume", "shop_cache"),
        ("Image", "shop-api"), ("Container", "shop-api-1"), ("Container", "shop-web-1")]
    api = docs[4]["spec"]
    assert api["env"] == {"LEVEL": "info"}
    assert api["image"] == "shop-api"
    assert api["resources"] == {"cpuPeriod": 50000, "cpuQuota": 25000, "blkioWeight": 300}
    assert docs[3]["spec"] == {"ref": "shop-api", "build": {"context": "./api", "args": {"VERSION": "7"}}}

    (project / "converted.yaml").write_text(out)
    native = spec.load(project / "converted.yaml")
    from_compose = spec.load(project)
    for kind in ("containers", "images", "networks", "volumes"):
        mine, theirs = getattr(native, kind), getattr(from_compose, kind)
        assert {n: o.spec_hash for n, o in mine.items()} == {n: o.spec_hash for n, o in theirs.items()}, kind
    capsys.readouterr()
    assert main(["validate", str(project / "converted.yaml")]) == 0
    assert capsys.readouterr().out.startswith("valid: 2 containers, 1 image, 2 networks, 1 volume in 1 file")


def test_convert_takes_files_profiles_and_a_project_name(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "prod.yaml").write_text("services:\n  web:\n    image: registry.local/web:prod\n")
    assert main(["convert", "-f", str(project / "compose.yaml"), "-f", str(project / "prod.yaml"),
                 "-p", "live", "--profile", "debug"]) == 0
    docs = list(yaml.safe_load_all(capsys.readouterr().out))
    containers = {d["metadata"]["name"]: d["spec"] for d in docs if d["kind"] == "Container"}
    assert set(containers) == {"live-web-1", "live-api-1", "live-debug-1"}
    assert containers["live-web-1"]["image"] == "registry.local/web:prod"


def test_convert_and_validate_report_problems_at_the_compose_keys(
    project: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    text = (project / "compose.yaml").read_text().replace("expose:", "runtime: runsc\n    expose:")
    (project / "compose.yaml").write_text(text)
    expected = f"{project}/compose.yaml:8:5: services.web.runtime: not supported yet: runtime; the manifest language cannot say it yet, remove it\n"
    assert main(["convert", str(project)]) == 2
    out, err = capsys.readouterr()
    assert out == expected
    assert err == "invalid: 1 problem\n"
    assert main(["validate", str(project)]) == 2
    assert capsys.readouterr().out == expected


def test_validate_summarises_a_compose_project_and_prints_its_warnings(
    project: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["validate", str(project)]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("valid: 2 containers, 1 image, 2 networks, 1 volume in 1 file (revision ")
    assert err == (f"warning: {project}/compose.yaml:8:5: services.web.expose: expose has no effect: every port of "
                   "a container is reachable on its networks; publish with ports: to reach it from the host\n")


def test_volume_drivers_are_refused_when_loading_for_the_native_engine(
    project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("RECONCILER_RUNTIME", raising=False)
    text = (project / "compose.yaml").read_text().replace(
        "  cache: {}\n", "  cache:\n    driver_opts: {type: tmpfs, device: tmpfs}\n")
    (project / "compose.yaml").write_text(text)
    refused = ("the native engine cannot honour a volume driver or its options (its volumes are directories of "
               "its own): converge with --runtime docker or swarm, or remove it and mount what it names with a "
               "bind mount")
    expected = f"{project}/compose.yaml:21:5: volumes.cache.driver_opts: {refused}\n"
    assert main(["convert", "--runtime", "native", str(project)]) == 2
    assert capsys.readouterr().out == expected
    assert main(["validate", "--runtime", "native", str(project)]) == 2
    assert capsys.readouterr().out == expected
    monkeypatch.setenv("RECONCILER_RUNTIME", "native")          # the same default as apply's
    assert main(["validate", str(project)]) == 2
    assert capsys.readouterr().out == expected
    root = tmp_path / "state"
    assert main(["apply", str(project), "--root", str(root)]) == 2     # refused before anything is touched
    assert (expected in capsys.readouterr().err, root.exists()) == (True, False)
    monkeypatch.delenv("RECONCILER_RUNTIME")
    for engine in ([], ["--runtime", "docker"]):    # engines that honour them
        assert main(["validate", *engine, str(project)]) == 0
    capsys.readouterr()
    # Swarm honours it too: what a cluster refuses of this project is a port on one address and a bind
    assert main(["validate", "--runtime", "swarm", str(project)]) == 2
    out = capsys.readouterr().out.splitlines()
    assert [line.split(": ")[2] for line in out] == ["spec.ports[0]", "spec.volumes[0]"], out
    (project / "volume.yaml").write_text(textwrap.dedent("""
        apiVersion: reconciler/v1
        kind: Volume
        metadata: {name: nfs}
        spec:
          driver: nfs-plugin
          driverOpts: {type: nfs, o: "addr=127.0.0.1", device: ":/export"}
        """))
    assert main(["validate", "--runtime", "native", str(project / "volume.yaml")]) == 2
    assert capsys.readouterr().out.splitlines() == [
        f"{project}/volume.yaml:6:3: Volume/nfs: spec.driver: {refused}",
        f"{project}/volume.yaml:7:3: Volume/nfs: spec.driverOpts: {refused}",
    ]
    # a local bind volume is the one the native engine honours: it binds the directory
    (project / "compose.yaml").write_text(text.replace("{type: tmpfs, device: tmpfs}",
                                                       f"{{type: none, o: bind, device: {project / 'site'}}}"))
    assert main(["validate", "--runtime", "native", str(project)]) == 0


def test_convert_needs_a_compose_project(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    os.mkdir(tmp_path / "empty")
    assert main(["convert", str(tmp_path / "empty")]) == 2
    assert capsys.readouterr().out == (
        f"{tmp_path / 'empty'}:0:0: no compose file here (one of compose.yaml, compose.yml, docker-compose.yml, "
        "docker-compose.yaml); give a directory holding one, or the files with -f\n")


def test_the_support_table_is_the_code() -> None:
    """docs/reference/compose.md lists SERVICE_KEYS as supported: each must have its handler, and
    every handler a line there; every key the specification defines gets a verdict."""
    import json

    from reconciler.spec import compose_native, schemas

    handlers = {n.removeprefix("k_") for n in dir(compose_native._Service) if n.startswith("k_")}
    assert handlers == set(compose_native.SERVICE_KEYS)
    keys = sorted(json.loads(schemas.schema_text("compose-spec"))["$defs"]["service"]["properties"])
    verdicts = compose_native.service_support(keys)
    assert {level for level, _ in verdicts.values()} == {"supported", "warning", "error"}
    assert set(compose_native.SERVICE_KEYS) <= set(keys)


def test_ports_without_a_host_port_convert_to_the_long_form_the_engine_chooses_for(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    for var in ("COMPOSE_PROJECT_NAME", "COMPOSE_PROFILES", "COMPOSE_FILE"):
        monkeypatch.delenv(var, raising=False)
    root = tmp_path / "rand"
    root.mkdir()
    (root / "compose.yaml").write_text(textwrap.dedent("""
        services:
          web:
            image: registry.local/web:1
            ports: ["80", "127.0.0.1::53/udp", {target: 443, host_ip: "::1"}, "127.0.0.1:8080:81"]
          api:
            image: registry.local/api:1
            ports: ["8000"]
            deploy: {replicas: 2}
        """))
    assert main(["convert", str(root)]) == 0
    out = capsys.readouterr().out
    docs = {d["metadata"]["name"]: d["spec"] for d in yaml.safe_load_all(out) if d["kind"] == "Container"}
    assert docs["rand-web-1"]["ports"] == [
        {"target": 80, "protocol": "tcp"}, {"target": 53, "protocol": "udp", "hostIP": "127.0.0.1"},
        {"target": 443, "protocol": "tcp", "hostIP": "::1"}, "127.0.0.1:8080:81/tcp"]
    assert (docs["rand-api"]["ports"], docs["rand-api"]["replicas"]) == ([{"target": 8000, "protocol": "tcp"}], 2)

    (root / "converted.yaml").write_text(out)
    native, from_compose = spec.load(root / "converted.yaml"), spec.load(root)
    assert {n: c.spec_hash for n, c in native.containers.items()} == {
        n: c.spec_hash for n, c in from_compose.containers.items()}
    ports = from_compose.containers["rand-web-1"].ports
    assert [(p.host_ip, p.host_port, p.container_port, p.protocol) for p in ports] == [
        ("0.0.0.0", 0, 80, "tcp"), ("127.0.0.1", 0, 53, "udp"), ("::1", 0, 443, "tcp"), ("127.0.0.1", 8080, 81, "tcp")]
    assert [c.ports[0].host_port for n, c in sorted(from_compose.containers.items()) if n.startswith("rand-api")] == [0, 0]


def test_convert_for_swarm_loads_as_a_cluster_and_refuses_what_validate_for_swarm_refuses(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Three copies publishing one host port: one host cannot run them (its numbered containers
    would share the port), Swarm can (one service; a copy per node, or the routing mesh). `convert
    --runtime swarm` ran the single host's checks and refused it, where apply and validate for
    Swarm accept it; and it did not refuse what they refuse."""
    for var in ("COMPOSE_PROJECT_NAME", "COMPOSE_PROFILES", "COMPOSE_FILE", "RECONCILER_RUNTIME"):
        monkeypatch.delenv(var, raising=False)
    root = tmp_path / "scaled"
    root.mkdir()
    compose = textwrap.dedent("""
        services:
          web:
            image: registry.local/web:1
            ports: ["8080:80"]
            deploy: {replicas: 3}
        """)
    (root / "compose.yaml").write_text(compose)
    one_host = f"{root}/compose.yaml:5:13: services.web.ports[0]: 3 replicas cannot all publish host port 8080/tcp"
    for target in ([], ["--runtime", "native"], ["--runtime", "docker"]):
        assert main(["convert", *target, str(root)]) == 2, target
        assert capsys.readouterr().out.startswith(one_host)
    assert main(["validate", "--runtime", "swarm", str(root)]) == 0
    capsys.readouterr()
    assert main(["convert", "--runtime", "swarm", str(root)]) == 0
    (web,) = [d for d in yaml.safe_load_all(capsys.readouterr().out) if d["kind"] == "Container"]
    assert (web["metadata"]["name"], web["spec"]["replicas"], web["spec"]["ports"]) == ("scaled_web", 3, ["8080:80/tcp"])

    # what a cluster refuses (a port on one address), convert for Swarm refuses as validate does
    (root / "compose.yaml").write_text(compose.replace('"8080:80"', '"127.0.0.1:8080:80"'))
    assert main(["validate", "--runtime", "swarm", str(root)]) == 2
    refused = capsys.readouterr().out
    assert "spec.ports[0]: a service publishes on every address of its node" in refused
    assert main(["convert", "--runtime", "swarm", str(root)]) == 2
    assert capsys.readouterr().out == refused
