"""Compose projects loaded as manifests: environment, merging, extends, profiles, names, errors.

Each test writes a small project into its own directory and loads it with `spec.load`, the
loader every command and the agent use, with an explicit shell environment (never the test
process's own).
"""

from __future__ import annotations

import os
import socket
import textwrap
from pathlib import Path

import pytest

from reconciler import spec
from reconciler.spec import compose


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"))
    return root


def load(root: Path, files: dict[str, str] | None = None, env: dict[str, str] | None = None,
         **opts: object) -> spec.DesiredState:
    if files:
        write(root, files)
    return spec.load(root, compose=compose.Options(environ=env or {}, **opts))  # type: ignore[arg-type]


def problems(root: Path, files: dict[str, str], env: dict[str, str] | None = None, **opts: object) -> list[str]:
    write(root, files)
    with pytest.raises(spec.SpecError) as info:
        load(root, env=env, **opts)
    return [str(p).replace(str(root) + os.sep, "") for p in info.value.problems]


def warnings(desired: spec.DesiredState, root: Path) -> list[str]:
    return [w.replace(str(root) + os.sep, "") for w in desired.warnings]


# -- environment ---------------------------------------------------------------------------------

TAGGED = {"compose.yaml": """
    name: shop
    services:
      web:
        image: registry.local/web:${TAG:-default}
    """}


def test_shell_environment_wins_over_dotenv_which_wins_over_defaults(tmp_path: Path) -> None:
    assert load(tmp_path, TAGGED).containers["shop-web-1"].image == "registry.local/web:default"
    (tmp_path / ".env").write_text("TAG=from-dotenv\n")
    assert load(tmp_path).containers["shop-web-1"].image == "registry.local/web:from-dotenv"
    assert load(tmp_path, env={"TAG": "from-shell"}).containers["shop-web-1"].image == "registry.local/web:from-shell"
    assert load(tmp_path, env={"TAG": ""}).containers["shop-web-1"].image == "registry.local/web:default"


def test_dotenv_values_interpolate_from_the_shell_and_lines_above(tmp_path: Path) -> None:
    desired = load(tmp_path, {
        "compose.yaml": """
            services:
              web:
                image: busybox:1
                environment:
                  URL: ${URL}
                  BARE:
                  MISSING:
            """,
        ".env": 'HOST=db\nURL="postgres://${USER_NAME}@${HOST}/app"\nBARE=from-dotenv\n',
    }, env={"USER_NAME": "alice"})
    c = next(iter(desired.containers.values()))
    assert dict(c.env) == {"URL": "postgres://alice@db/app", "BARE": "from-dotenv"}


def test_env_files_then_environment_in_compose_dotenv_format(tmp_path: Path) -> None:
    desired = load(tmp_path, {
        "compose.yaml": """
            name: app
            services:
              api:
                image: busybox:1
                env_file:
                  - common.env
                  - path: ./local.env
                    required: false
                  - path: ./missing.env
                    required: false
                environment:
                  LEVEL: debug
            """,
        "common.env": 'LEVEL=info\nQUOTED="a b"\nREF=${HOME_DIR}/x\n',
        "local.env": "EXTRA='lit $X'\n",
    }, env={"HOME_DIR": "/home/a"})
    assert dict(desired.containers["app-api-1"].env) == {
        "LEVEL": "debug", "QUOTED": "a b", "REF": "/home/a/x", "EXTRA": "lit $X"}


def test_dotenv_and_env_file_changes_replace_only_the_services_using_them(tmp_path: Path) -> None:
    files = {
        "compose.yaml": """
            name: app
            services:
              a:
                image: busybox:${A_TAG}
              b:
                image: busybox:1
                env_file: b.env
            """,
        ".env": "A_TAG=1\n",
        "b.env": "X=1\n",
    }
    first = load(tmp_path, files)
    (tmp_path / ".env").write_text("A_TAG=2\n")
    second = load(tmp_path)
    (tmp_path / "b.env").write_text("X=2\n")
    third = load(tmp_path)
    hashes = [{n: c.spec_hash for n, c in d.containers.items()} for d in (first, second, third)]
    assert hashes[0]["app-a-1"] != hashes[1]["app-a-1"]
    assert hashes[0]["app-b-1"] == hashes[1]["app-b-1"]
    assert hashes[1]["app-a-1"] == hashes[2]["app-a-1"]
    assert hashes[1]["app-b-1"] != hashes[2]["app-b-1"]
    assert len({first.revision, second.revision, third.revision}) == 3
    assert {os.path.basename(f) for f in third.files} == {".env", "b.env"}


# -- YAML 1.2 ------------------------------------------------------------------------------------


def test_yaml_is_read_as_compose_reads_it(tmp_path: Path) -> None:
    desired = load(tmp_path, {"compose.yaml": """
        name: app
        services:
          ssh:
            image: busybox:1
            restart: no
            ports:
              - 2222:22
            environment:
              ANSWER: yes
              SWITCH: on
              OCTAL: 0755
              FLOAT: 1.0
              TRUE_: true
            read_only: "true"
        """})
    c = desired.containers["app-ssh-1"]
    assert c.restart.name == "no"
    assert [(p.host_port, p.container_port) for p in c.ports] == [(2222, 22)]
    assert dict(c.env) == {"ANSWER": "yes", "SWITCH": "on", "OCTAL": "493", "FLOAT": "1", "TRUE_": "true"}
    assert c.read_only is True


# -- merging --------------------------------------------------------------------------------------

BASE = """
    name: app
    services:
      web:
        image: registry.local/web:1
        command: ["serve", "--port", "80"]
        environment: {A: "1", B: "1"}
        labels: [tier=front]
        ports: ["8080:80", "8443:443"]
        volumes: ["./conf:/etc/web:ro", "data:/data"]
        healthcheck: {test: [CMD, check, one], interval: 10s}
        depends_on: [db]
        cap_add: [NET_ADMIN]
      db:
        image: registry.local/db:1
    volumes:
      data: {}
      other: {}
    """


def test_override_file_merges_as_compose_merges(tmp_path: Path) -> None:
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf2").mkdir()
    desired = load(tmp_path, {"compose.yaml": BASE, "compose.override.yaml": """
        services:
          web:
            command: serve --debug
            environment: [B=2, C=3]
            labels: {owner: me}
            ports: ["8080:80", "9090:90"]
            volumes: ["./conf2:/etc/web", "other:/other"]
            healthcheck: {test: [CMD, check, two]}
            depends_on: {cache: {condition: service_healthy}}
            cap_add: [NET_ADMIN, SYS_TIME]
          cache:
            image: registry.local/cache:1
            healthcheck: {test: [CMD, "true"]}
        """})
    web = desired.containers["app-web-1"]
    assert web.args == ("serve", "--debug")                                   # replaced
    assert dict(web.env) == {"A": "1", "B": "2", "C": "3"}                    # merged by key
    assert web.labels["tier"] == "front"
    assert web.labels["owner"] == "me"
    assert [f"{p.host_port}:{p.container_port}" for p in web.ports] == ["8080:80", "8443:443", "9090:90"]
    assert [(m.source.rsplit("/", 1)[-1], m.target, m.read_only) for m in web.volumes] == [
        ("conf2", "/etc/web", False), ("app_data", "/data", False), ("app_other", "/other", False)]
    assert web.healthcheck is not None
    assert web.healthcheck.test == ("CMD", "check", "two")
    assert web.healthcheck.interval == 10.0                                   # the rest of it kept
    assert web.depends_on == ("app-cache-1", "app-db-1")
    assert web.cap_add == ("CAP_NET_ADMIN", "CAP_SYS_TIME")


def test_explicit_files_merge_in_order_from_the_first_files_directory(tmp_path: Path) -> None:
    write(tmp_path, {
        "deploy/base.yml": "services:\n  web:\n    image: registry.local/web:1\n    env_file: web.env\n",
        "deploy/web.env": "FROM=base-dir\n",
        "elsewhere/prod.yml": "services:\n  web:\n    image: registry.local/web:2\n",
    })
    desired = spec.load(tmp_path / "deploy", compose=compose.Options(
        files=(str(tmp_path / "deploy/base.yml"), str(tmp_path / "elsewhere/prod.yml")), environ={}))
    web = desired.containers["deploy-web-1"]
    assert web.image == "registry.local/web:2"
    assert dict(web.env) == {"FROM": "base-dir"}
    assert desired.project == "deploy"


MODES = {
    "docker-compose.yml": "name: app\nservices:\n  web:\n    image: x/web:1\n    environment: {MODE: dev}\n",
    "docker-compose.prod.yml": "services:\n  web:\n    environment: {MODE: prod}\n",
}


def test_compose_file_from_dotenv_or_the_shell_names_the_files_merged(tmp_path: Path) -> None:
    write(tmp_path, {**MODES, ".env": "COMPOSE_FILE=docker-compose.yml:docker-compose.prod.yml\n"})
    desired = load(tmp_path)
    assert dict(desired.containers["app-web-1"].env) == {"MODE": "prod"}          # docker-compose's
    assert [os.path.basename(s) for s in desired.sources] == ["docker-compose.prod.yml", "docker-compose.yml"]
    # the shell's wins over .env's, with its own separator
    desired = load(tmp_path, env={"COMPOSE_FILE": "docker-compose.yml"})
    assert dict(desired.containers["app-web-1"].env) == {"MODE": "dev"}
    desired = load(tmp_path, env={"COMPOSE_FILE": "docker-compose.yml;docker-compose.prod.yml",
                                  "COMPOSE_PATH_SEPARATOR": ";"})
    assert dict(desired.containers["app-web-1"].env) == {"MODE": "prod"}
    # explicit files (-f) win over it, as compose's
    desired = spec.load(tmp_path, compose=compose.Options(files=(str(tmp_path / "docker-compose.yml"),), environ={}))
    assert dict(desired.containers["app-web-1"].env) == {"MODE": "dev"}


def test_compose_file_makes_a_project_of_a_directory_without_a_default_file(tmp_path: Path) -> None:
    write(tmp_path, {"base.yml": MODES["docker-compose.yml"], "prod.yml": MODES["docker-compose.prod.yml"]})
    with pytest.raises(spec.SpecError):      # read as manifests: a shell's COMPOSE_FILE naming nothing here
        load(tmp_path, env={"COMPOSE_FILE": "other/compose.yaml"})
    assert dict(load(tmp_path, env={"COMPOSE_FILE": "base.yml:prod.yml"}).containers["app-web-1"].env) == \
        {"MODE": "prod"}
    (tmp_path / ".env").write_text("# the deployment\nexport COMPOSE_FILE=base.yml\n")
    assert dict(load(tmp_path).containers["app-web-1"].env) == {"MODE": "dev"}


def test_a_file_compose_file_names_that_is_missing_is_located_at_its_dotenv_line(tmp_path: Path) -> None:
    assert problems(tmp_path, {**MODES, ".env": "A=1\nCOMPOSE_FILE=docker-compose.yml:docker-compose.prd.yml\n"}) == [
        ".env:2:1: COMPOSE_FILE names docker-compose.prd.yml: not found, or not a file; fix the name, or unset "
        "COMPOSE_FILE to use compose.yaml and its override file",
    ]
    assert problems(tmp_path, {}, env={"COMPOSE_FILE": "gone.yml"}) == [
        f"{tmp_path}:0:0: COMPOSE_FILE (from the environment) names gone.yml: not found, or not a file; fix the "
        "name, or unset COMPOSE_FILE to use compose.yaml and its override file",
    ]


def test_policy_refuses_a_compose_file_compose_file_names_outside_the_source(tmp_path: Path) -> None:
    from reconciler.spec import policy

    write(tmp_path, {"base.yml": "services:\n  web:\n    image: x/web:1\n    privileged: true\n"})
    root = write(tmp_path / "src", {**MODES, ".env": "COMPOSE_FILE=docker-compose.yml:../base.yml\n"})
    with pytest.raises(spec.SpecError) as info:
        spec.load(root, policy=policy.RESTRICTED, compose=compose.Options(environ={}))
    [problem] = info.value.problems
    assert str(problem).startswith(f"{root}/.env:1:1: COMPOSE_FILE names ../base.yml: compose file {tmp_path}/base.yml "
                                   f"is outside the source root {root} and refused by policy 'restricted'")
    # without a policy (the command line), it is read, as compose reads it
    assert load(root).containers["app-web-1"].privileged


def test_several_documents_in_one_file_merge_in_order(tmp_path: Path) -> None:
    desired = load(tmp_path, {"compose.yaml": """
        name: app
        services:
          web: {image: "registry.local/web:1", environment: [A=1]}
        ---
        services:
          web: {environment: [B=2]}
        """})
    assert dict(desired.containers["app-web-1"].env) == {"A": "1", "B": "2"}


def test_anchors_merge_keys_and_extension_fields(tmp_path: Path) -> None:
    desired = load(tmp_path, {"compose.yaml": """
        name: app
        x-defaults: &defaults
          restart: always
          environment: {TZ: UTC}
          x-note: extensions are allowed anywhere
        services:
          a:
            <<: *defaults
            image: registry.local/a:1
          b:
            <<: *defaults
            image: registry.local/b:1
            restart: "no"
        """})
    assert desired.containers["app-a-1"].restart.name == "always"
    assert desired.containers["app-b-1"].restart.name == "no"
    assert dict(desired.containers["app-b-1"].env) == {"TZ": "UTC"}


# -- extends ------------------------------------------------------------------------------------------


def test_extends_in_the_same_file_and_from_another_file(tmp_path: Path) -> None:
    write(tmp_path, {
        "common/base.yaml": """
            services:
              base:
                image: registry.local/base:1
                env_file: base.env
                volumes: ["./static:/static:ro"]
                environment: {LEVEL: info}
              tuned:
                extends: base
                environment: {TUNED: "1"}
            """,
        "common/base.env": "FROM_BASE_ENV=1\n",
        "common/static/index.html": "hi\n",
        "app/compose.yaml": """
            name: app
            services:
              web:
                extends: {file: ../common/base.yaml, service: tuned}
                environment: {LEVEL: debug}
              worker:
                extends: web
                command: work
            """,
    })
    desired = load(tmp_path / "app")
    web, worker = desired.containers["app-web-1"], desired.containers["app-worker-1"]
    assert web.image == "registry.local/base:1"
    assert dict(web.env) == {"FROM_BASE_ENV": "1", "LEVEL": "debug", "TUNED": "1"}
    assert [m.source for m in web.volumes] == [str(tmp_path / "common/static")]   # relative to base.yaml
    assert worker.args == ("work",)
    assert dict(worker.env) == dict(web.env)
    assert str(tmp_path / "common/base.yaml") in desired.files                       # part of the revision


def test_extends_errors(tmp_path: Path) -> None:
    assert problems(tmp_path, {"compose.yaml": """
        services:
          a: {extends: b, image: "x/a:1"}
          b: {extends: a}
          c: {extends: nope}
          d: {extends: {file: other.yaml, service: x}}
        """}) == [
        "compose.yaml:2:16: services.a.extends: extends cycle: a -> b -> a",
        "compose.yaml:3:16: services.b.extends: extends cycle: b -> a -> b",
        "compose.yaml:4:16: services.c.extends.service: cannot extend service 'nope': no such service in this file",
        "compose.yaml:5:23: services.d.extends.file: extended file other.yaml not found",
    ]


# -- profiles -----------------------------------------------------------------------------------------

PROFILED = {"compose.yaml": """
    name: app
    services:
      web:
        image: registry.local/web:1
        depends_on:
          debugger: {condition: service_started, required: false}
      debugger:
        image: registry.local/debug:1
        profiles: [debug]
      tools:
        image: registry.local/tools:1
        profiles: [tools, debug]
    """}


def test_profiles_select_services(tmp_path: Path) -> None:
    assert set(load(tmp_path, PROFILED).containers) == {"app-web-1"}
    assert set(load(tmp_path, env={"COMPOSE_PROFILES": "tools"}).containers) == {"app-web-1", "app-tools-1"}
    assert set(load(tmp_path, env={"COMPOSE_PROFILES": "x, debug"}).containers) == {
        "app-web-1", "app-debugger-1", "app-tools-1"}
    assert set(load(tmp_path, env={"COMPOSE_PROFILES": "debug"}, profiles=("tools",)).containers) == {
        "app-web-1", "app-tools-1"}                                            # --profile wins
    assert len(load(tmp_path, profiles=("*",)).containers) == 3
    assert load(tmp_path).containers["app-web-1"].depends_on == ()            # optional, disabled
    assert load(tmp_path, profiles=("debug",)).containers["app-web-1"].depends_on == ("app-debugger-1",)
    (tmp_path / ".env").write_text("COMPOSE_PROFILES=tools\n")
    assert "app-tools-1" in load(tmp_path).containers


def test_a_required_dependency_on_a_disabled_service_is_an_error(tmp_path: Path) -> None:
    assert problems(tmp_path, {"compose.yaml": """
        services:
          web: {image: "x/web:1", depends_on: [debugger]}
          debugger: {image: "x/dbg:1", profiles: [debug]}
        """}) == [
        "compose.yaml:2:40: services.web.depends_on.debugger: depends on service 'debugger', which no active "
        "profile enables (its profiles: debug); activate one with COMPOSE_PROFILES or --profile, or set required: false",
    ]


def test_service_healthy_on_a_disabled_healthcheck_is_a_located_problem(tmp_path: Path) -> None:
    """compose v2 stops the start ("container app-db-1 has no healthcheck configured"), docker-compose
    1.29 too ("Service \"db\" is missing a healthcheck configuration"); reported with the other problems."""
    assert problems(tmp_path, {"compose.yaml": """
        name: app
        services:
          web:
            image: x/web:1
            depends_on:
              db: {condition: service_healthy}
              cache:
                condition: service_healthy
            runtime: runsc
          db:
            image: postgres:16
            healthcheck: {disable: true}
          cache:
            image: redis:7
            healthcheck: {test: ["NONE"]}
        """}) == [
        "compose.yaml:6:23: services.web.depends_on.db.condition: service 'db' has its healthcheck disabled, so "
        "service_healthy can never hold (compose stops: container app-db-1 has no healthcheck configured); give db "
        "a healthcheck, or wait with condition: service_started",
        "compose.yaml:8:20: services.web.depends_on.cache.condition: service 'cache' has its healthcheck disabled, "
        "so service_healthy can never hold (compose stops: container app-cache-1 has no healthcheck configured); "
        "give cache a healthcheck, or wait with condition: service_started",
        "compose.yaml:9:5: services.web.runtime: not supported yet: runtime; the manifest language cannot say it "
        "yet, remove it",
    ]


def test_service_healthy_on_a_service_without_a_healthcheck_warns_it_relies_on_the_image(tmp_path: Path) -> None:
    """compose v2 accepts the image's HEALTHCHECK (it inspects the container), so the loader, which
    does not read images, can only warn; a healthcheck of its own is quiet."""
    desired = load(tmp_path, {"compose.yaml": """
        name: app
        services:
          web:
            image: x/web:1
            depends_on: {db: {condition: service_healthy}, api: {condition: service_healthy}}
          db: {image: "postgres:16", healthcheck: {interval: 5s}}
          api: {image: "x/api:1", healthcheck: {test: ["CMD", "true"]}}
        """})
    assert warnings(desired, tmp_path) == [
        "compose.yaml:5:34: services.web.depends_on.db.condition: service 'db' has no healthcheck test here, so "
        "service_healthy relies on its image's HEALTHCHECK: without one compose stops (container has no "
        "healthcheck configured) and reconciler waits only for db to start; give db a healthcheck",
    ]
    assert desired.containers["app-web-1"].depends_on == ("app-api-1", "app-db-1")


# -- names ----------------------------------------------------------------------------------------------


def test_names_and_labels_follow_compose(tmp_path: Path) -> None:
    project = tmp_path / "My_Shop.v2"
    project.mkdir()
    desired = load(project, {"compose.yaml": """
        services:
          web:
            image: nginx
            labels: {com.example.tier: front}
            volumes: [data:/data]
          db:
            image: registry.local/db:1
            container_name: the-db
            networks: [back]
        networks:
          back: {}
        volumes:
          data: {name: shared-data}
        """})
    assert desired.project == "my_shopv2"
    assert set(desired.containers) == {"my_shopv2-web-1", "the-db"}
    assert set(desired.networks) == {"my_shopv2_default", "my_shopv2_back"}
    assert set(desired.volumes) == {"shared-data"}
    web = desired.containers["my_shopv2-web-1"]
    assert web.image == "nginx:latest"
    assert dict(web.labels) == {
        "com.docker.compose.container-number": "1", "com.docker.compose.oneoff": "False",
        "com.docker.compose.project": "my_shopv2", "com.docker.compose.service": "web",
        "com.example.tier": "front"}
    assert web.networks == ("my_shopv2_default",)
    assert web.aliases == ("web",)
    assert dict(desired.networks["my_shopv2_back"].labels) == {
        "com.docker.compose.network": "back", "com.docker.compose.project": "my_shopv2"}
    assert dict(desired.volumes["shared-data"].labels) == {
        "com.docker.compose.project": "my_shopv2", "com.docker.compose.volume": "data"}


def test_containers_say_where_the_project_is_in_labels_no_spec_hash_takes(tmp_path: Path) -> None:
    """compose's working_dir and config_files labels (docker compose ls, Portainer, Dozzle read
    them), named where the project is; a checkout moved elsewhere changes them and nothing else:
    no spec hash (no replacement), not the revision."""
    files = {"compose.yaml": "name: shop\nservices:\n  web: {image: 'x/web:1', env_file: web.env}\n",
             "compose.override.yaml": "services:\n  web: {environment: {A: '1'}}\n", "web.env": "B=2\n"}
    here = load(tmp_path / "here", files)
    there = load(tmp_path / "moved" / "there", files)
    web = here.containers["shop-web-1"]
    assert dict(web.location_labels) == {
        "com.docker.compose.project.working_dir": str(tmp_path / "here"),
        "com.docker.compose.project.config_files": f"{tmp_path}/here/compose.yaml,{tmp_path}/here/compose.override.yaml"}
    assert there.containers["shop-web-1"].location_labels["com.docker.compose.project.working_dir"] == \
        str(tmp_path / "moved" / "there")
    assert "com.docker.compose.project.working_dir" not in web.labels      # the hashed labels
    assert {n: c.spec_hash for n, c in here.containers.items()} == {n: c.spec_hash for n, c in there.containers.items()}
    assert here.revision == there.revision
    # a revision copy (the agent's) names the live place, not the copy's
    copy = spec.load(tmp_path / "here", live=tmp_path / "live", compose=compose.Options(environ={}))
    assert copy.containers["shop-web-1"].location_labels["com.docker.compose.project.config_files"] == \
        f"{tmp_path}/live/compose.yaml,{tmp_path}/live/compose.override.yaml"
    # stamped with the rest, the owner's labels last
    from reconciler.planning import implied

    stamped = implied.labels(owner="o", revision=here.revision, kind="Container", name="shop-web-1", obj=web)
    assert stamped["com.docker.compose.project.working_dir"] == str(tmp_path / "here")
    assert stamped["com.docker.compose.project"] == "shop"


def test_deploy_placement_is_the_containers_placement(tmp_path: Path) -> None:
    desired = load(tmp_path, {"compose.yaml": """
        name: fleet
        services:
          proxy:
            image: registry.local/proxy:2
            deploy:
              mode: global
              placement:
                constraints: ["node.labels.role==edge", "node.role!=manager"]
                preferences: [{spread: node.labels.zone}]
        """})
    assert desired.containers["fleet-proxy-1"].global_mode
    p = desired.containers["fleet-proxy-1"].placement
    assert (dict(p.labels), p.constraints, p.preferences) == (
        {}, ("node.labels.role==edge", "node.role!=manager"), ("node.labels.zone",))
    assert problems(tmp_path, {"compose.yaml": """
        services:
          proxy:
            image: registry.local/proxy:2
            deploy: {placement: {max_replicas_per_node: 2, preferences: [{x-note: a}]}}
        """}) == [
        "compose.yaml:4:26: services.proxy.deploy.placement.max_replicas_per_node: not supported yet: "
        "deploy.placement.max_replicas_per_node; the manifest language cannot say it yet, remove it",
        "compose.yaml:4:66: services.proxy.deploy.placement.preferences[0]: not supported yet: a preference "
        "other than spread; write {spread: node.labels.KEY}"]


@pytest.mark.parametrize(("name", "env", "expected"), [
    ("name: My App!", {}, "myapp"),
    ("name: __x-1", {}, "x-1"),
    ("name: ${PROJECT:-from-default}", {}, "from-default"),
    ("name: ignored", {"COMPOSE_PROJECT_NAME": "from-env"}, "from-env"),
    ("", {}, "dirname"),
])
def test_project_name_precedence_and_normalisation(tmp_path: Path, name: str, env: dict[str, str], expected: str) -> None:
    root = tmp_path / "DirName"
    root.mkdir()
    desired = load(root, {"compose.yaml": f"{name}\nservices:\n  web: {{image: 'x/web:1'}}\n"}, env=env)
    assert desired.project == expected
    assert f"{expected}-web-1" in desired.containers


def test_project_name_errors(tmp_path: Path) -> None:
    files = {"compose.yaml": "services:\n  web: {image: 'x/web:1'}\n"}
    assert problems(tmp_path, files, env={"COMPOSE_PROJECT_NAME": "Bad Name"}) == [
        "compose.yaml:0:0: invalid project name 'Bad Name' (from COMPOSE_PROJECT_NAME): use lower-case letters, "
        "digits, '-' and '_', starting with a letter or digit"]
    assert problems(tmp_path, {"compose.yaml": "name: '!!!'\nservices:\n  web: {image: 'x/web:1'}\n"}) == [
        "compose.yaml:1:7: name: project name '!!!' has no letter or digit; compose names are lower-case "
        "letters, digits, '-' and '_'"]


# -- errors and warnings, with their places ----------------------------------------------------------------


ERRORS: dict[str, tuple[str, list[str]]] = {
    "unknown_key": ("""
        services:
          web:
            image: x/web:1
            imgae: x/web:2
        """, ["compose.yaml:4:5: services.web.imgae: unknown field 'imgae' (did you mean 'image'?)"]),
    "unknown_top_key": ("servics: {}\n", ["compose.yaml:1:1: servics: unknown field 'servics' (did you mean 'services'?)"]),
    "wrong_type": ("""
        services:
          web:
            image: x/web:1
            ports: 8080
        """, ["compose.yaml:4:12: services.web.ports: must be a list, not number"]),
    "bad_service_name": ("services:\n  'we b': {image: 'x/web:1'}\n",
                         ["compose.yaml:2:3: services.we b: 'we b' is not a valid service name (letters, digits, '.', '_' and '-')"]),
    "required_variable": ("""
        services:
          web:
            image: x/web:${TAG:?set TAG in .env}
        """, ["compose.yaml:3:12: services.web.image: required variable TAG is missing a value: set TAG in .env"]),
    "invalid_template": ("""
        services:
          web:
            image: x/web:1
            command: echo ${oops
        """, ["compose.yaml:4:14: services.web.command: invalid interpolation format in 'echo ${oops'; write $$ for a literal $"]),
    "bad_cast": ("""
        services:
          web:
            image: x/web:1
            read_only: "${RO:-maybe}"
        """, ["compose.yaml:4:16: services.web.read_only: invalid boolean: maybe (after interpolation of '${RO:-maybe}')"]),
    "no_image": ("services:\n  web: {command: x}\n",
                 ["compose.yaml:2:3: services.web: has neither an image nor a build context; set image: or build:"]),
    "undefined_refs": ("""
        services:
          web:
            image: x/web:1
            networks: [front]
            volumes: [cache:/cache]
            depends_on: [db]
        """, [
            "compose.yaml:4:16: services.web.networks.front: refers to undefined network 'front'; declare it under the top-level networks:",
            "compose.yaml:5:15: services.web.volumes[0]: refers to undefined volume 'cache'; declare it under the top-level volumes:",
            "compose.yaml:6:18: services.web.depends_on.db: depends on undefined service 'db'",
        ]),
    "bad_port": ("""
        services:
          web:
            image: x/web:1
            ports: ["80:8080:90:x", "70000:80", "1-3:1-2"]
        """, [
            "compose.yaml:4:13: services.web.ports[0]: invalid container port 'x' in port '80:8080:90:x'",
            "compose.yaml:4:29: services.web.ports[1]: invalid host port range '70000' in port '70000:80'",
            "compose.yaml:4:41: services.web.ports[2]: invalid ranges in port '1-3:1-2': the host and container ranges differ in length",
        ]),
    "unsupported": ("""
        services:
          web:
            image: x/web:1
            ports: ["8000-8001:80", "53:53/sctp"]
            devices: ["nvidia.com/gpu=all"]
            volumes: [{type: volume, target: /anonymous, volume: {nocopy: true}}]
            network_mode: "bridge:db"
            tmpfs: ["/run:size=64m,uid=1000"]
          db:
            image: x/db:1
            depends_on:
              web: {condition: service_completed_successfully}
        """, [
            "compose.yaml:4:13: services.web.ports[0]: not supported yet: a host port range (8000-8001) for one container port; name one host port",
            "compose.yaml:4:29: services.web.ports[1]: not supported yet: the sctp protocol; use tcp or udp",
            "compose.yaml:5:15: services.web.devices[0]: not supported yet: the device 'nvidia.com/gpu=all' (a CDI device name); name a device node of the host, like /dev/fuse",
            "compose.yaml:6:50: services.web.volumes[0].volume: not supported yet: volume options of a volume mount; the manifest language cannot say it yet, remove it",
            "compose.yaml:7:19: services.web.network_mode: not supported yet: network_mode 'bridge:db'; use host, none, service:NAME or container:NAME, or networks:",
            "compose.yaml:8:13: services.web.tmpfs[0]: not supported yet: the tmpfs option 'uid=1000'; only size= and mode= are",
        ]),
    "manifest_checks_at_compose_keys": ("""
        name: t
        services:
          web:
            image: "x/web:1"
            ports: ["8080:80"]
            restart: sometimes
            stop_signal: SIGNOPE
            deploy: {resources: {limits: {memory: 1k}}}
          api:
            image: "x/UPPER:1"
            ports: ["8080:81"]
          other:
            image: "x/other:1"
            container_name: Bad_Name
        """, [
            "compose.yaml:6:14: services.web.restart: 'sometimes' is not a valid restart policy (no, on-failure[:N], always or unless-stopped)",
            "compose.yaml:7:18: services.web.stop_signal: 'SIGNOPE' is not a signal name (like SIGTERM or SIGQUIT)",
            "compose.yaml:8:43: services.web.deploy.resources.limits.memory: memory limit '1Ki' is below the minimum of 6Mi",
            "compose.yaml:10:12: services.api.image: 'x/UPPER:1' is not a valid image reference (like registry:5000/repo/name:tag or ...@sha256:<64 hex>)",
            "compose.yaml:11:13: services.api.ports[0]: host port 8080/tcp is already published by Container/t-web-1 (compose.yaml:3:3)",
            "compose.yaml:14:21: services.other.container_name: 'Bad_Name' is not a valid name (lower-case letters, digits, '-', '_' and '.', starting and ending with a letter or digit)",
        ]),
    # a field the object needs is missing: the message names it, at the object that lacks it (it
    # said "services.web.depends_on.db.condition: required field is missing" at the db key, or
    # "services.db: required field is missing" for a Container left without its image, or a
    # traceback for a port without target)
    "required_fields_of_the_specification": ("""
        services:
          web:
            image: x/web:1
            depends_on:
              db: {restart: true}
            devices: [{target: /dev/x}]
            extends: {file: other.yml}
            env_file: [{required: true}]
            ulimits:
              nofile: {soft: 1}
            post_start: [{user: root}]
            develop:
              watch: [{path: ./src}]
            deploy: {resources: {reservations: {devices: [{driver: nvidia}]}}}
          db:
            image: x/db:1
            provider: {options: {}}
        models:
          m: {}
        """, [
            "compose.yaml:5:7: services.web.depends_on.db: required field 'condition' is missing: add condition: to it",
            "compose.yaml:6:15: services.web.devices[0]: required field 'source' is missing: add source: to it",
            "compose.yaml:7:5: services.web.extends: required field 'service' is missing: add service: to it",
            "compose.yaml:8:16: services.web.env_file[0]: required field 'path' is missing: add path: to it",
            "compose.yaml:10:7: services.web.ulimits.nofile: required field 'hard' is missing: add hard: to it",
            "compose.yaml:11:18: services.web.post_start[0]: required field 'command' is missing: add command: to it",
            "compose.yaml:13:15: services.web.develop.watch[0]: required field 'action' is missing: add action: to it",
            "compose.yaml:14:51: services.web.deploy.resources.reservations.devices[0]: required field 'capabilities' "
            "is missing: add capabilities: to it",
            "compose.yaml:17:5: services.db.provider: required field 'type' is missing: add type: to it",
            "compose.yaml:19:3: models.m: required field 'model' is missing: add model: to it",
        ]),
    "required_fields_of_a_long_form": ("""
        services:
          web:
            image: x/web:1
            ports: [{host_ip: 127.0.0.1}, {published: "8080"}]
            volumes: [{type: tmpfs}, {type: volume, source: data}, {type: bind, source: ./src}]
            secrets: [{target: /run/secrets/token}]
        volumes:
          data: {}
        """, [
            "compose.yaml:4:13: services.web.ports[0]: required field 'target' (the container's port) is missing: "
            "add target: to it",
            "compose.yaml:4:35: services.web.ports[1]: required field 'target' (the container's port) is missing: "
            "add target: to it",
            "compose.yaml:5:15: services.web.volumes[0]: required field 'target' (the path in the container) is "
            "missing: add target: to it",
            "compose.yaml:5:30: services.web.volumes[1]: required field 'target' (the path in the container) is "
            "missing: add target: to it",
            "compose.yaml:5:60: services.web.volumes[2]: required field 'target' (the path in the container) is "
            "missing: add target: to it",
            "compose.yaml:6:15: services.web.secrets[0]: required field 'source' (the top-level secret it mounts) is "
            "missing: add source: to it",
        ]),
    "unsupported_pull_policy_alone": ("""
        services:
          web:
            image: x/web:1
            pull_policy: daily
        """, ["compose.yaml:4:18: services.web.pull_policy: not supported yet: pull_policy 'daily'; use always, "
              "never or missing"]),
}


@pytest.mark.parametrize("case", sorted(ERRORS))
def test_problems_are_located_in_the_compose_file(tmp_path: Path, case: str) -> None:
    text, expected = ERRORS[case]
    assert problems(tmp_path, {"compose.yaml": text}) == expected


def test_every_independent_problem_is_reported_at_once(tmp_path: Path) -> None:
    """One run names them all, whichever step finds each (the schema, interpolation, the
    project's references, the translation, the manifests' own checks): a schema problem used
    to hide the rest until it was fixed, and a translation problem the manifests' checks."""
    assert problems(tmp_path, {"compose.yaml": """
        services:
          web:
            image: x/web:1
            port: ["8080:80"]
            env_file: missing.env
            depends_on: [nothere]
            mem_limit: lots
            healthcheck:
              test: ["CMD", "true"]
              interval: 5
          api:
            image: "x/UPPER:1"
            command: echo ${oops
        """}) == [
        "compose.yaml:4:5: services.web.port: unknown field 'port' (did you mean 'ports'?)",
        "compose.yaml:5:15: services.web.env_file[0]: env file missing.env not found, unreadable or larger than 16777216 bytes",
        "compose.yaml:6:18: services.web.depends_on.nothere: depends on undefined service 'nothere'",
        "compose.yaml:7:16: services.web.mem_limit: 'lots' is not a valid size (like 512, 64k, 32m or 1g)",
        "compose.yaml:10:17: services.web.healthcheck.interval: must be a string, not number",
        "compose.yaml:12:12: services.api.image: 'x/UPPER:1' is not a valid image reference (like registry:5000/repo/name:tag or ...@sha256:<64 hex>)",
        "compose.yaml:13:14: services.api.command: invalid interpolation format in 'echo ${oops'; write $$ for a literal $",
    ]


def test_what_depends_on_a_reported_problem_is_not_reported_again(tmp_path: Path) -> None:
    """A value taken out for its problem leaves no second one behind: no "neither an image nor a
    build" for an image that did not interpolate, no undefined network for one whose definition
    broke the schema, no manifest check repeating a reference the project check reported."""
    assert problems(tmp_path, {"compose.yaml": """
        services:
          web:
            image: x/web:${TAG:?set TAG}
            networks: [front, back]
            depends_on: [db]
        networks:
          front: [bridge]
        """}) == [
        "compose.yaml:3:12: services.web.image: required variable TAG is missing a value: set TAG",
        "compose.yaml:4:23: services.web.networks.back: refers to undefined network 'back'; declare it under the top-level networks:",
        "compose.yaml:5:18: services.web.depends_on.db: depends on undefined service 'db'",
        "compose.yaml:7:10: networks.front: must be a mapping or null, not list",
    ]
    # an include that cannot be used leaves unknown what it defines: no reference is checked
    assert problems(tmp_path / "included", {"compose.yaml": """
        include: ["${NOPE:?set NOPE}"]
        services:
          web: {image: "x/web:1", networks: [shared], ports: 8080}
        """}) == [
        "compose.yaml:1:11: include[0]: required variable NOPE is missing a value: set NOPE",
        "compose.yaml:3:54: services.web.ports: must be a list, not number",
    ]


def test_a_service_whose_extends_fails_is_left_out_and_the_rest_is_checked(tmp_path: Path) -> None:
    """What refers to it (depends_on, network_mode, a service extending it) says nothing more;
    a base two services extend is reported once."""
    assert problems(tmp_path, {"compose.yaml": """
        services:
          web: {extends: nothere, ports: 8080}
          also: {extends: web}
          api:
            image: x/api:1
            env_file: gone.env
            depends_on: [web, also]
          side: {image: "x/side:1", network_mode: "service:web"}
          a: {extends: base}
          b: {extends: base}
          base: {extends: nope}
        """}) == [
        "compose.yaml:2:18: services.web.extends.service: cannot extend service 'nothere': no such service in this file",
        "compose.yaml:2:34: services.web.ports: must be a list, not number",
        "compose.yaml:6:15: services.api.env_file[0]: env file gone.env not found, unreadable or larger than 16777216 bytes",
        "compose.yaml:11:19: services.base.extends.service: cannot extend service 'nope': no such service in this file",
    ]


def test_warnings_name_what_is_not_honoured(tmp_path: Path) -> None:
    desired = load(tmp_path, {"compose.yaml": """
        version: "3.8"
        services:
          web:
            image: x/web${TAG}
            expose: ["80"]
            logging: {driver: json-file}    # honoured (tests/spec/test_logging.py): no warning
            read_only: "yes"
            ports:
              - {target: 80, published: "8080", name: http}
        """})
    assert warnings(desired, tmp_path) == [
        "compose.yaml:1:1: version: the version attribute is obsolete and ignored; remove it",
        "compose.yaml:4:12: services.web.image: the 'TAG' variable is not set; using an empty string",
        "compose.yaml:5:5: services.web.expose: expose has no effect: every port of a container is reachable on its networks; publish with ports: to reach it from the host",
        "compose.yaml:7:16: services.web.read_only: 'yes' for a boolean is not YAML 1.2; write true",
        "compose.yaml:9:41: services.web.ports[0].name: name is descriptive only and not kept",
    ]


def test_policy_refuses_env_files_outside_the_source(tmp_path: Path) -> None:
    from reconciler.spec import policy

    outside = tmp_path / "outside.env"
    outside.write_text("SECRET=1\n")
    root = tmp_path / "src"
    root.mkdir()
    write(root, {"compose.yaml": f"services:\n  web:\n    image: x/web:1\n    env_file: {outside}\n"})
    with pytest.raises(spec.SpecError) as info:
        spec.load(root, policy=policy.RESTRICTED, compose=compose.Options(environ={}))
    [problem] = info.value.problems
    assert str(problem).startswith(f"{root}/compose.yaml:4:15: services.web.env_file[0]: env file {outside} is outside the source root")
    assert "SECRET" not in str(info.value)


def test_env_file_errors_are_located(tmp_path: Path) -> None:
    assert problems(tmp_path, {
        "compose.yaml": "services:\n  web:\n    image: x/web:1\n    env_file: [web.env, gone.env]\n",
        ".env": "OK=1\nBAD KEY=2\n",
        "web.env": "A=1\nB='open\n",
    }) == [
        ".env:2:1: key 'BAD KEY' cannot contain a space",
        "compose.yaml:4:16: services.web.env_file[0]: env file web.env line 2: unterminated quoted value 'open",
        "compose.yaml:4:25: services.web.env_file[1]: env file gone.env not found, unreadable or "
        "larger than 16777216 bytes",
    ]


def test_an_empty_compose_file_is_an_error(tmp_path: Path) -> None:
    assert problems(tmp_path, {"compose.yaml": "# nothing yet\n"}) == ["compose.yaml:1:1: empty compose file"]


# -- replicas ------------------------------------------------------------------------------------


def test_deploy_replicas_and_scale_run_numbered_containers(tmp_path: Path) -> None:
    desired = load(tmp_path, {"compose.yaml": """
        name: shop
        services:
          worker:
            image: busybox:1
            deploy: {replicas: 3}
          mailer:
            image: busybox:1
            scale: 2
          off:
            image: busybox:1
            scale: 0
          web:
            image: nginx:1
            depends_on: [worker, off]
        """})
    assert sorted(desired.containers) == ["shop-mailer-1", "shop-mailer-2", "shop-web-1",
                                          "shop-worker-1", "shop-worker-2", "shop-worker-3"]
    assert desired.containers["shop-web-1"].depends_on == ("shop-worker-1", "shop-worker-2", "shop-worker-3")
    assert [c.labels["com.docker.compose.container-number"] for n, c in sorted(desired.containers.items())
            if n.startswith("shop-worker")] == ["1", "2", "3"]
    assert set(desired.containers["shop-worker-2"].aliases) == {"worker"}
    docs = spec.convert(tmp_path, compose=compose.Options(environ={}))[1]
    worker = next(d for d in docs if d["metadata"]["name"] == "shop-worker")
    assert worker["spec"]["replicas"] == 3


def test_scaling_a_service_up_keeps_its_first_container(tmp_path: Path) -> None:
    one = load(tmp_path, {"compose.yaml": "name: s\nservices:\n  w:\n    image: busybox:1\n"})
    three = load(tmp_path, {"compose.yaml": "name: s\nservices:\n  w:\n    image: busybox:1\n    deploy: {replicas: 3}\n"})
    assert one.containers["s-w-1"].spec_hash == three.containers["s-w-1"].spec_hash


def test_replica_errors_are_located_in_the_compose_file(tmp_path: Path) -> None:
    assert problems(tmp_path, {"compose.yaml": """
        services:
          web:
            image: nginx:1
            scale: 2
            deploy: {replicas: 3}
          api:
            image: nginx:1
            container_name: the-api
            scale: 2
        """}) == [
        "compose.yaml:5:24: services.web.deploy.replicas: can't set distinct values on 'scale' and 'deploy.replicas'; keep one",
        "compose.yaml:8:5: services.api.container_name: container_name 'the-api' names one container, but the service runs 2; "
        "remove container_name or run one replica",
    ]
    assert problems(tmp_path, {"compose.yaml": """
        services:
          web:
            image: nginx:1
            ports: ["8080:80"]
            deploy: {replicas: 2}
        """}) == [
        "compose.yaml:4:13: services.web.ports[0]: 2 replicas cannot all publish host port 8080/tcp; "
        "publish it from one container (a proxy in front of the replicas) or set replicas: 1",
    ]


# -- secrets and configs -------------------------------------------------------------------------

SECRETS = {
    "compose.yaml": """
        name: shop
        services:
          db:
            image: postgres:16
            secrets:
              - db_password
              - source: db_password
                target: pw2
                uid: "999"
                mode: 0400
          web:
            image: nginx:1
            configs:
              - source: site
                target: /etc/nginx/conf.d/default.conf
              - site
          other:
            image: busybox:1
        secrets:
          db_password:
            file: ./secrets/db_password.txt
        configs:
          site:
            file: site.conf
            labels: {a: b}
        """,
    "secrets/db_password.txt": "s3cret\n",
    "site.conf": "listen 80;\n",
}


def test_file_secrets_and_configs_become_secret_files_where_compose_mounts_them(tmp_path: Path) -> None:
    desired = load(tmp_path, SECRETS)
    db, web = desired.containers["shop-db-1"], desired.containers["shop-web-1"]
    secret, config = str(tmp_path / "secrets/db_password.txt"), str(tmp_path / "site.conf")
    assert [(s.source, s.target, s.mode, s.uid, s.data) for s in db.secrets] == [
        (secret, "/run/secrets/db_password", 0o400, 0, b"s3cret\n"),
        (secret, "/run/secrets/pw2", 0o400, 999, b"s3cret\n")]
    assert [(s.source, s.target, s.mode) for s in web.secrets] == [
        (config, "/etc/nginx/conf.d/default.conf", 0o444), (config, "/site", 0o444)]
    assert db.volumes == web.volumes == ()
    assert warnings(desired, tmp_path) == [
        "compose.yaml:25:5: configs.site.labels: labels has no effect: the file is put into the container, no secret or config object is made",
    ]
    docs = spec.convert(tmp_path, compose=compose.Options(environ={}))[1]
    assert [s["target"] for s in next(d for d in docs if d["metadata"]["name"] == "shop-db-1")["spec"]["secrets"]] == [
        "/run/secrets/db_password", "/run/secrets/pw2"]



def test_a_project_given_as_a_relative_path_resolves_its_paths_from_its_directory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`cd shop; reconcile apply .` (the README's own words): binds, secrets and the project name
    are those of the directory, as when it is named by its absolute path (the same spec hash:
    an agent watching it by its absolute path replaces nothing)."""
    shop = write(tmp_path / "shop", {**SECRETS, "compose.yaml": SECRETS["compose.yaml"].replace(
        "    image: nginx:1", "    image: nginx:1\n            volumes: [./data:/www:ro]", 1), "data/index.html": "hi\n"})
    monkeypatch.chdir(shop)
    here = spec.load(Path("."), compose=compose.Options(environ={}))
    absolute = spec.load(shop, compose=compose.Options(environ={}))
    web = here.containers["shop-web-1"]
    assert [(v.source, v.target) for v in web.volumes] == [(str(shop / "data"), "/www")]
    assert {s.source for s in web.secrets} == {str(shop / "site.conf")}
    assert {n: c.spec_hash for n, c in here.containers.items()} == \
        {n: c.spec_hash for n, c in absolute.containers.items()}

def test_a_compose_file_given_by_its_path_is_named_after_its_directory(tmp_path: Path) -> None:
    """`reconcile apply shop/docker-compose.yml` is project `shop`, as `docker compose -f
    shop/docker-compose.yml` names it (not `docker-composeyml`): the file and its directory give
    the same containers, so applying one then the other replaces nothing."""
    shop = write(tmp_path / "shop", {"docker-compose.yml": "services:\n  web:\n    image: nginx:1\n"})
    by_file = spec.load(shop / "docker-compose.yml", compose=compose.Options(environ={}))
    by_dir = spec.load(shop, compose=compose.Options(environ={}))
    assert by_file.project == by_dir.project == "shop"
    assert {n: c.spec_hash for n, c in by_file.containers.items()} == \
        {n: c.spec_hash for n, c in by_dir.containers.items()}


def test_an_edited_secret_file_replaces_exactly_the_services_using_it(tmp_path: Path) -> None:
    before = load(tmp_path, SECRETS)
    (tmp_path / "secrets/db_password.txt").write_text("rotated\n")
    after = load(tmp_path)
    changed = sorted(n for n in before.containers if before.containers[n].spec_hash != after.containers[n].spec_hash)
    assert changed == ["shop-db-1"]
    assert before.revision != after.revision


def test_secret_and_config_errors_are_located_in_the_compose_file(tmp_path: Path) -> None:
    assert problems(tmp_path, {"compose.yaml": """
        services:
          web:
            image: nginx:1
            secrets: [token, nope, from_env, ext]
            configs: [missing, inline]
        secrets:
          token:
            file: ./token.txt
          from_env:
            environment: TOKEN
          ext:
            external: true
        configs:
          missing:
            file: ./missing.conf
          inline:
            content: "hello"
        """}) == [
        "compose.yaml:4:15: services.web.secrets[0]: secret file './token.txt' not found, unreadable or larger than 16777216 bytes (resolved to token.txt)",
        "compose.yaml:4:22: services.web.secrets[1]: refers to undefined secret 'nope'; declare it under the top-level secrets:",
        "compose.yaml:4:28: services.web.secrets[2]: the environment variable TOKEN is not set in the reconciler's environment; set it there, or take the secret from a file (source:)",
        "compose.yaml:5:15: services.web.configs[0]: secret file './missing.conf' not found, unreadable or larger than 16777216 bytes (resolved to missing.conf)",
        "compose.yaml:12:5: secrets.ext.external: secret external: not supported: external secrets and configs live in a swarm",
    ]
    assert problems(tmp_path, {"compose.yaml": """
        services:
          web:
            image: nginx:1
            configs: [missing]
        configs:
          missing:
            file: ./missing.conf
        """}) == [
        "compose.yaml:4:15: services.web.configs[0]: secret file './missing.conf' not found, unreadable or larger than 16777216 bytes (resolved to missing.conf)",
    ]


# -- sysctls and ulimits ---------------------------------------------------------------------------


def test_sysctls_ulimits_and_shm_size_become_the_containers_own(tmp_path: Path) -> None:
    desired = load(tmp_path, {"compose.yaml": """
        name: shop
        services:
          web:
            image: nginx:1
            sysctls:
              net.core.somaxconn: 1024
            ulimits:
              nproc: 65535
              nofile: {soft: 20000, hard: 40000}
            shm_size: 256m
          db:
            image: postgres:16
            sysctls: ["kernel.shmmax=100000", "net.ipv4.tcp_syncookies=0"]
        """})
    web, db = desired.containers["shop-web-1"], desired.containers["shop-db-1"]
    assert dict(web.sysctls) == {"net.core.somaxconn": "1024"}
    assert web.ulimits == (spec.models.Ulimit("nofile", 20000, 40000), spec.models.Ulimit("nproc", 65535, 65535))
    assert (web.shm_size, db.shm_size) == (256 << 20, None)
    assert dict(db.sysctls) == {"kernel.shmmax": "100000", "net.ipv4.tcp_syncookies": "0"}
    assert problems(tmp_path, {"compose.yaml": """
        services:
          web:
            image: nginx:1
            network_mode: host
            sysctls: {net.core.somaxconn: 1024, vm.overcommit_memory: 1}
        """}) == [
        "compose.yaml:5:15: services.web.sysctls.net.core.somaxconn: net.core.somaxconn would change the host's network stack "
        "(network host); remove it or use a network of the container's own",
        "compose.yaml:5:41: services.web.sysctls.vm.overcommit_memory: vm.overcommit_memory is not a namespaced sysctl: it would "
        "change the whole host; only net.*, fs.mqueue.* and kernel.msgmax/msgmnb/msgmni/sem/shmall/shmmax/shmmni/shm_rmid_forced "
        "can be set per container",
    ]


# -- network_mode service:/container: -------------------------------------------------------------


def test_network_mode_service_joins_the_services_first_container_after_it(tmp_path: Path) -> None:
    desired = load(tmp_path, {"compose.yaml": """
        name: shop
        services:
          web:
            image: nginx:1
            deploy: {replicas: 2}
          sidecar:
            image: busybox:1
            network_mode: service:web
          db:
            image: postgres:16
            container_name: the-db
          probe:
            image: busybox:1
            network_mode: container:the-db
        """})
    sidecar, probe = desired.containers["shop-sidecar-1"], desired.containers["shop-probe-1"]
    assert sidecar.networks == ("container:shop-web-1",)
    assert sidecar.depends_on == ("shop-web-1", "shop-web-2")
    assert probe.networks == ("container:the-db",)
    assert probe.depends_on == ("the-db",)


def test_network_mode_service_refuses_ports_of_its_own(tmp_path: Path) -> None:
    assert problems(tmp_path, {"compose.yaml": """
        name: shop
        services:
          web:
            image: nginx:1
          sidecar:
            image: busybox:1
            network_mode: service:web
            ports: ["8080:80"]
        """}) == [
        "compose.yaml:8:13: services.sidecar.ports[0]: ports cannot be published with network container:shop-web-1: "
        "publish them on shop-web-1, whose network it joins",
    ]


def test_network_mode_service_names_a_service_of_the_project(tmp_path: Path) -> None:
    assert problems(tmp_path, {"compose.yaml": """
        name: shop
        services:
          lost:
            image: busybox:1
            network_mode: service:nowhere
        """}) == [
        "compose.yaml:5:19: services.lost.network_mode: network_mode 'service:nowhere': no service named 'nowhere' in the project",
    ]


# -- external networks and volumes ------------------------------------------------------------------


def test_external_networks_and_volumes_are_named_as_written_and_never_made(tmp_path: Path) -> None:
    desired = load(tmp_path, {"compose.yaml": """
        name: shop
        services:
          web:
            image: nginx:1
            networks: [proxy, default]
            volumes: [certs:/certs:ro, data:/data]
        networks:
          proxy:
            external: true
            name: traefik_proxy
        volumes:
          certs:
            external: true
          data: {}
        """})
    assert (desired.external_networks, desired.external_volumes) == (("traefik_proxy",), ("certs",))
    assert (sorted(desired.networks), sorted(desired.volumes)) == (["shop_default"], ["shop_data"])
    web = desired.containers["shop-web-1"]
    assert web.networks == ("shop_default", "traefik_proxy")
    assert [m.source for m in web.volumes] == ["certs", "shop_data"]
    assert problems(tmp_path, {"compose.yaml": """
        services:
          web: {image: nginx:1, networks: [proxy]}
        networks:
          proxy:
            external: true
            driver: overlay
            ipam: {config: [{subnet: 10.1.0.0/24}]}
        """}) == [
        "compose.yaml:6:5: networks.proxy.driver: an external network is used as it is; remove driver or external: true",
        "compose.yaml:7:5: networks.proxy.ipam: an external network is used as it is; remove ipam or external: true",
    ]


def test_extra_hosts_and_dns_in_both_compose_forms(tmp_path: Path) -> None:
    desired = load(tmp_path, {"compose.yaml": """
        services:
          a:
            image: busybox:1
            extra_hosts: ["db.internal:10.0.0.5", "old=10.0.0.6"]
            dns: 1.1.1.1
            dns_search: [corp.example]
            dns_opt: [ndots:2, rotate]
            oom_score_adj: -500
            group_add: [video, 4242]
          b:
            image: busybox:1
            extra_hosts: {x.internal: 10.0.0.7}
            dns: []
        """})
    a, b = desired.containers[f"{tmp_path.name}-a-1"], desired.containers[f"{tmp_path.name}-b-1"]
    assert (a.extra_hosts, a.dns, a.dns_search) == (("db.internal:10.0.0.5", "old:10.0.0.6"), ("1.1.1.1",), ("corp.example",))
    assert (b.extra_hosts, b.dns) == (("x.internal:10.0.0.7",), ())
    assert (a.dns_options, a.oom_score_adj, b.dns_options, b.oom_score_adj) == (("ndots:2", "rotate"), -500, (), None)
    assert (a.group_add, b.group_add) == (("video", "4242"), ())


def test_tmpfs_size_and_mode_in_both_compose_forms(tmp_path: Path) -> None:
    desired = load(tmp_path, {"compose.yaml": """
        services:
          a:
            image: busybox:1
            tmpfs: ["/run:size=64m,mode=1770", /tmp]
            volumes:
              - type: tmpfs
                target: /cache
                tmpfs: {size: 10485760, mode: 01777}
        """})
    assert desired.containers[f"{tmp_path.name}-a-1"].volumes == (
        spec.models.VolumeMount("tmpfs", "", "/run", False, ("size=67108864", "mode=1770")),
        spec.models.VolumeMount("tmpfs", "", "/tmp", False),
        spec.models.VolumeMount("tmpfs", "", "/cache", False, ("size=10485760", "mode=1777")),
    )


def test_a_tmpfs_mode_is_read_as_compose_go_reads_a_file_mode(tmp_path: Path) -> None:
    """A YAML integer is the mode itself (`01777` and `0o1777` are octal to YAML), a string is octal
    digits: the rule of secrets' `mode` (0440 is 288), one function for both. A decimal integer of
    octal digits (`1777`) is the mode its digits say, as meant (compose-go takes the number, 3361:
    a shared /tmp without its sticky bit), with a warning."""
    desired = load(tmp_path, {"compose.yaml": """
        name: app
        services:
          web:
            image: x/web:1
            volumes:
              - {type: tmpfs, target: /a, tmpfs: {mode: 01777}}
              - {type: tmpfs, target: /b, tmpfs: {mode: 0700}}
              - {type: tmpfs, target: /c, tmpfs: {mode: 0o750}}
              - {type: tmpfs, target: /d, tmpfs: {mode: "1770"}}
              - {type: tmpfs, target: /e, tmpfs: {mode: 1777}}
            secrets: [{source: key, mode: 0440}]
        secrets:
          key: {file: ./key.txt}
        """, "key.txt": "k\n"})
    web = desired.containers["app-web-1"]
    assert {v.target: v.options for v in web.volumes} == {
        "/a": ("mode=1777",), "/b": ("mode=700",), "/c": ("mode=750",), "/d": ("mode=1770",), "/e": ("mode=1777",)}
    assert [s.mode for s in web.secrets] == [0o440]
    assert warnings(desired, tmp_path) == [
        "compose.yaml:10:49: services.web.volumes[4].tmpfs.mode: mode 1777 is read as the octal mode 1777, as meant; "
        'compose reads the YAML integer as the decimal number 1777 (mode 3361): write 01777 or "1777" to say it the '
        "same way to both",
    ]


def test_small_shm_and_tmpfs_sizes_load_and_0_is_dockers_not_set(tmp_path: Path) -> None:
    # Docker takes any of these (only --memory and --memory-reservation have a 6MB minimum); a
    # size of 0 is its "not set": the default /dev/shm, a tmpfs with no limit but the kernel's
    desired = load(tmp_path, {"compose.yaml": """
        services:
          a:
            image: busybox:1
            shm_size: 1m
            tmpfs: ["/run:size=1m", "/zero:size=0"]
            volumes:
              - {type: tmpfs, target: /cache, tmpfs: {size: 1k}}
              - {type: tmpfs, target: /none, tmpfs: {size: 0m}}
          b:
            image: busybox:1
            shm_size: 0
        """})
    a, b = desired.containers[f"{tmp_path.name}-a-1"], desired.containers[f"{tmp_path.name}-b-1"]
    assert (a.shm_size, b.shm_size) == (1 << 20, None)
    assert a.volumes == (
        spec.models.VolumeMount("tmpfs", "", "/run", False, ("size=1048576",)),
        spec.models.VolumeMount("tmpfs", "", "/zero", False),
        spec.models.VolumeMount("tmpfs", "", "/cache", False, ("size=1024",)),
        spec.models.VolumeMount("tmpfs", "", "/none", False),
    )


def test_a_dependency_others_wait_to_complete_is_a_job(tmp_path: Path) -> None:
    desired = load(tmp_path, {"compose.yaml": """
        name: app
        services:
          migrate:
            image: x/app:1
            command: ["migrate", "up"]
          web:
            image: x/app:1
            depends_on:
              migrate: {condition: service_completed_successfully}
          worker:
            image: x/app:1
            depends_on: [migrate]
        """})
    assert {n: c.job for n, c in desired.containers.items()} == {"app-migrate-1": True, "app-web-1": False,
                                                                 "app-worker-1": False}
    assert desired.containers["app-web-1"].depends_on == ("app-migrate-1",)
    assert problems(tmp_path, {"compose.yaml": """
        services:
          migrate: {image: x/app:1, restart: always}
          web:
            image: x/app:1
            depends_on: {migrate: {condition: service_completed_successfully}}
        """}) == [
        "compose.yaml:2:38: services.migrate.restart: a job runs to completion; restart always would run it again "
        "and again: use no or on-failure",
    ]


def test_tty_and_stdin_open(tmp_path: Path) -> None:
    desired = load(tmp_path, {"compose.yaml": """
        services:
          shell: {image: busybox:1, command: sh, tty: true, stdin_open: true}
          plain: {image: busybox:1, tty: false}
        """})
    shell, plain = desired.containers[f"{tmp_path.name}-shell-1"], desired.containers[f"{tmp_path.name}-plain-1"]
    assert (shell.tty, shell.stdin_open, plain.tty, plain.stdin_open) == (True, True, False, False)


def test_cpu_shares_cpuset_and_memory_reservations(tmp_path: Path) -> None:
    desired = load(tmp_path, {"compose.yaml": """
        services:
          a:
            image: busybox:1
            cpu_shares: 512
            cpuset: "0-1"
            mem_reservation: 64m
            mem_limit: 128m
            memswap_limit: -1
          b:
            image: busybox:1
            deploy: {resources: {reservations: {memory: 32M}}}
        """})
    a, b = desired.containers[f"{tmp_path.name}-a-1"], desired.containers[f"{tmp_path.name}-b-1"]
    assert (a.resources.cpu_shares, a.resources.cpuset, a.resources.memory_reservation) == (512, "0-1", 64 << 20)
    assert b.resources.memory_reservation == 32 << 20
    assert (a.resources.memory, a.resources.memory_swap, b.resources.memory_swap) == (128 << 20, -1, None)
    assert problems(tmp_path, {"compose.yaml": """
        services:
          a:
            image: busybox:1
            mem_reservation: 64m
            deploy: {resources: {reservations: {memory: 32M, cpus: "0.5"}}}
        """}) == [
        "compose.yaml:5:49: services.a.deploy.resources.reservations.memory: can't set distinct values on "
        "'mem_reservation' and 'deploy.resources.reservations.memory'; keep one",
    ]


def test_cpu_period_cpu_quota_and_blkio_weight(tmp_path: Path) -> None:
    """compose's `cpu_period`, `cpu_quota` (microseconds) and `blkio_config.weight`, read as the
    file says them (an interpolated string too; 0 is compose's "not set"): they were "not
    supported yet" errors; now resources.cpuPeriod, cpuQuota, blkioWeight. A value out of
    dockerd's range is located at its compose key; the per-device blkio settings, which the
    engines' limits have no place for, are errors naming the key."""
    desired = load(tmp_path, {"compose.yaml": """
        services:
          a:
            image: busybox:1
            cpu_period: 50000
            cpu_quota: ${QUOTA:-25000}
            cpuset: "0"
            blkio_config: {weight: 300}
          b:
            image: busybox:1
            cpu_period: 0
            cpu_quota: -1
            blkio_config: {weight: "0", device_read_bps: []}
        """})
    a, b = desired.containers[f"{tmp_path.name}-a-1"], desired.containers[f"{tmp_path.name}-b-1"]
    assert (a.resources.cpu_period, a.resources.cpu_quota, a.resources.cpuset, a.resources.blkio_weight) == (
        50000, 25000, "0", 300)
    assert (b.resources.cpu_period, b.resources.cpu_quota, b.resources.blkio_weight) == (None, -1, None)
    assert problems(tmp_path, {"compose.yaml": """
        services:
          a:
            image: busybox:1
            cpu_period: 2000000
            cpu_quota: 10
            blkio_config:
              weight: 5
              weight_device: [{path: /dev/sda, weight: 100}]
              device_read_bps: [{path: /dev/sda, rate: 1mb}]
        """}) == [
        "compose.yaml:4:17: services.a.cpu_period: 2000000: CPU cfs period can not be less than 1ms (i.e. 1000) or "
        "larger than 1s (i.e. 1000000); give the period in microseconds, 1000 to 1000000",
        "compose.yaml:5:16: services.a.cpu_quota: 10: CPU cfs quota can not be less than 1ms (i.e. 1000); give the "
        "quota in microseconds, 1000 or more (-1: no limit)",
        "compose.yaml:7:15: services.a.blkio_config.weight: 5: Range of blkio weight is from 10 to 1000; give a "
        "weight from 10 to 1000",
        "compose.yaml:8:7: services.a.blkio_config.weight_device: not supported yet: blkio_config.weight_device; a "
        "container's block I/O can be weighted (blkio_config.weight), not limited or weighted per device yet; remove it",
        "compose.yaml:9:7: services.a.blkio_config.device_read_bps: not supported yet: blkio_config.device_read_bps; "
        "a container's block I/O can be weighted (blkio_config.weight), not limited or weighted per device yet; "
        "remove it",
    ]


def test_security_opt_no_new_privileges(tmp_path: Path) -> None:
    desired = load(tmp_path, {"compose.yaml": """
        services:
          a: {image: busybox:1, security_opt: ["no-new-privileges:true"]}
          b: {image: busybox:1, security_opt: [no-new-privileges]}
          c: {image: busybox:1, security_opt: ["no-new-privileges=false"]}
        """})
    assert [c.no_new_privileges for _, c in sorted(desired.containers.items())] == [True, True, False]
    assert problems(tmp_path, {"compose.yaml": """
        services:
          a: {image: busybox:1, security_opt: ["seccomp:unconfined", "no-new-privileges:true"]}
        """}) == [
        "compose.yaml:2:40: services.a.security_opt[0]: not supported yet: security_opt 'seccomp:unconfined'; "
        "only no-new-privileges is; the default seccomp profile always applies",
    ]


def test_label_files_under_labels(tmp_path: Path) -> None:
    desired = load(tmp_path, {
        "compose.yaml": """
            services:
              web:
                image: nginx:1
                label_file: [./common.labels, ./web.labels]
                labels: {tier: edge}
            """,
        "common.labels": "team=shop\ntier=back\n# a comment\n",
        "web.labels": "traefik.enable=true\n",
    })
    labels = dict(desired.containers[f"{tmp_path.name}-web-1"].labels)
    assert {k: v for k, v in labels.items() if not k.startswith("com.docker.compose.")} == {
        "team": "shop", "tier": "edge", "traefik.enable": "true"}
    (tmp_path / "web.labels").write_text("traefik.enable=false\n")
    assert load(tmp_path).containers[f"{tmp_path.name}-web-1"].spec_hash != \
        desired.containers[f"{tmp_path.name}-web-1"].spec_hash            # the file is part of the spec
    (tmp_path / "web.labels").unlink()
    with pytest.raises(spec.SpecError) as info:
        load(tmp_path)
    assert [str(p).replace(str(tmp_path) + os.sep, "") for p in info.value.problems] == [
        "compose.yaml:4:35: services.web.label_file[1]: label file web.labels not found, unreadable or larger "
        "than 16777216 bytes",
    ]


def test_build_secrets_ssh_and_entitlements_become_the_images_build(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """#20: compose's build.secrets (top-level file: and environment: secrets), build.ssh and
    build.entitlements become the Image's build.secrets, ssh and allow."""
    monkeypatch.setenv("NPM_TOKEN_20", "tok")
    sock = socket.socket(socket.AF_UNIX)
    dfd = os.open(tmp_path, os.O_PATH | os.O_DIRECTORY)
    try:
        sock.bind(f"/proc/self/fd/{dfd}/agent.sock")
    finally:
        os.close(dfd)
    try:
        desired = load(tmp_path, {"app/Dockerfile": "FROM scratch\n", "npmrc": "registry=x\n", "compose.yaml": """
            name: shop
            services:
              web:
                build:
                  context: ./app
                  secrets: [npmrc, {source: token}]
                  ssh: [default=./agent.sock]
                  entitlements: [security.insecure]
            secrets:
              npmrc: {file: ./npmrc}
              token: {environment: NPM_TOKEN_20}
            """})
    finally:
        sock.close()
    build = desired.images["shop-web"].build
    assert build is not None
    assert [(s.id, s.file, s.env, s.data) for s in build.secrets] == [
        ("npmrc", str(tmp_path / "npmrc"), "", b"registry=x\n"), ("token", "", "NPM_TOKEN_20", b"tok")]
    assert [(s.id, s.socket) for s in build.ssh] == [("default", str(tmp_path / "agent.sock"))]
    assert build.allow == ("security.insecure",)
    assert problems(tmp_path, {"compose.yaml": """
        name: shop
        services:
          web:
            build:
              context: ./app
              secrets: [nope, {target: other}, {source: npmrc, target: run/secrets/npmrc}]
        secrets:
          npmrc: {file: ./npmrc}
        """}) == [
        "compose.yaml:6:17: services.web.build.secrets[0]: no top-level secrets entry named 'nope' with file: or environment:",
        "compose.yaml:6:23: services.web.build.secrets[1]: a build secret without source: name the top-level secret "
        "with source: NAME (or write the short syntax, - NAME); target: is the id the Dockerfile's RUN "
        "--mount=type=secret,id=ID names, the source's name when left out",
        "compose.yaml:6:64: services.web.build.secrets[2].target: 'run/secrets/npmrc' is not a build secret id: "
        "target: is the id the Dockerfile's RUN --mount=type=secret,id=ID names (letters, digits, '_', '.' and '-'), "
        "not a path; the step mounts it at /run/secrets/ID, or where its own target= says",
    ]


def test_a_build_secrets_target_is_the_id_the_dockerfile_names(tmp_path: Path) -> None:
    """Compose's long syntax: `source` names the top-level secret, `target` the id of the
    Dockerfile's RUN --mount=type=secret (default: the source), as docker compose passes it to
    BuildKit (`id=<target>`). It read "not supported yet: build.secrets target"; `uid`, `gid` and
    `mode` are the mount's (the Dockerfile's), which compose passes nowhere: a warning."""
    desired = load(tmp_path, {"app/Dockerfile": "FROM scratch\n", "npmrc": "registry=x\n", "compose.yaml": """
        name: shop
        services:
          web:
            build:
              context: ./app
              secrets:
                - npmrc
                - {source: npmrc, target: npm.conf, mode: 0400}
        secrets:
          npmrc: {file: ./npmrc}
        """})
    build = desired.images["shop-web"].build
    assert build is not None
    assert [(s.id, s.file) for s in build.secrets] == [("npmrc", str(tmp_path / "npmrc")),
                                                       ("npm.conf", str(tmp_path / "npmrc"))]
    assert warnings(desired, tmp_path) == [
        "compose.yaml:8:45: services.web.build.secrets[1].mode: mode has no effect on a build secret (compose passes "
        "it nowhere): the Dockerfile's RUN --mount=type=secret,id=ID,mode=... sets it"]


def test_swarm_keys_ingress_ports_reservations_and_volume_driver_options(tmp_path: Path) -> None:
    desired = load(tmp_path, {"compose.yaml": """
        name: t
        services:
          web:
            image: busybox:1
            ports:
              - {target: 80, published: 8080, mode: ingress}
              - {target: 81, published: 8081, mode: host}
              - {target: 82, published: 8082}
              - "8083:83"
            deploy: {resources: {reservations: {memory: 64M, cpus: "0.25"}}}
            volumes: [shared:/data]
        volumes:
          shared:
            driver: local
            driver_opts: {type: nfs, o: "addr=10.0.0.1,rw", device: ":/export"}
        """})
    web = desired.containers["t-web-1"]
    assert [(p.host_port, p.container_port, p.ingress) for p in web.ports] == [
        (8080, 80, True), (8081, 81, False), (8082, 82, False), (8083, 83, False)]
    assert web.reservations == spec.models.Reservations(memory=64 << 20, cpus=0.25)
    assert web.resources.memory_reservation == 64 << 20          # docker compose's soft limit on one host
    vol = desired.volumes["t_shared"]
    assert (vol.driver, dict(vol.driver_opts)) == ("local", {"type": "nfs", "o": "addr=10.0.0.1,rw", "device": ":/export"})
    assert problems(tmp_path, {"compose.yaml": """
        services:
          web:
            image: busybox:1
            ports: [{target: 80, published: 8080, host_ip: 127.0.0.1, mode: ingress}]
            deploy: {resources: {reservations: {devices: [{capabilities: [gpu]}]}}}
        """}) == [
        "compose.yaml:4:43: services.web.ports[0].host_ip: a port on Swarm's routing mesh (mode: ingress) is published "
        "on every address of every node; remove host_ip, or use mode: host",
        "compose.yaml:5:41: services.web.deploy.resources.reservations.devices: not supported yet: reservations.devices; "
        "only memory and cpus can be reserved (GPUs and generic resources are not: the engine has no device scheduler)",
    ]


def test_secrets_and_configs_from_environment_and_content_are_secret_files(tmp_path: Path) -> None:
    files = {"compose.yaml": """
        name: t
        services:
          web:
            image: nginx:1
            secrets: [token, {source: api_key, target: key, mode: 0440}]
            configs: [{source: motd, target: /etc/motd}]
        secrets:
          token:
            environment: TOKEN
          api_key:
            environment: API_KEY
        configs:
          motd:
            content: "hello ${WHO}"
        """, ".env": "API_KEY=from-dotenv\nWHO=world\n"}
    web = load(tmp_path, files, env={"TOKEN": "s3cret"}).containers["t-web-1"]
    got = {s.target: (s.source, s.data, f"{s.mode:o}") for s in web.secrets}
    assert got == {"/run/secrets/token": ("", b"s3cret", "400"), "/run/secrets/key": ("", b"from-dotenv", "440"),
                   "/etc/motd": ("", b"hello world", "444")}
    again = load(tmp_path, env={"TOKEN": "rotated"}).containers["t-web-1"]
    assert again.spec_hash != web.spec_hash                 # a new value replaces the container
    assert load(tmp_path, env={"TOKEN": "s3cret"}).containers["t-web-1"].spec_hash == web.spec_hash
    with pytest.raises(spec.SpecError) as info:
        load(tmp_path)
    assert [str(p).replace(str(tmp_path) + os.sep, "") for p in info.value.problems] == [
        "compose.yaml:5:15: services.web.secrets[0]: the environment variable TOKEN is not set in the reconciler's "
        "environment; set it there, or take the secret from a file (source:)"]
    _, docs = spec.convert(tmp_path, compose=compose.Options(environ={"TOKEN": "s3cret"}))
    assert docs[-1]["spec"]["secrets"] == [
        {"env": "TOKEN", "target": "/run/secrets/token", "mode": 0o400},
        {"env": "API_KEY", "target": "/run/secrets/key", "mode": 0o440},
        {"content": "hello world", "target": "/etc/motd", "mode": 0o444}]


def test_privileged_and_devices_in_both_compose_forms(tmp_path: Path) -> None:
    desired = load(tmp_path, {"compose.yaml": """
        name: t
        services:
          a:
            image: busybox:1
            domainname: corp.example
            privileged: true
            devices: [/dev/fuse, "/dev/sda:/dev/xvda:r", {source: /dev/net/tun, target: /dev/tun, permissions: rw}]
          b:
            image: busybox:1
            privileged: false
        """})
    a, b = desired.containers["t-a-1"], desired.containers["t-b-1"]
    assert (a.domainname, b.domainname) == ("corp.example", None)
    assert (a.privileged, a.devices) == (True, ("/dev/fuse:/dev/fuse:rwm", "/dev/sda:/dev/xvda:r", "/dev/net/tun:/dev/tun:rw"))
    assert (b.privileged, b.devices) == (False, ())


def test_include_adds_the_files_resources_with_their_own_relative_paths(tmp_path: Path) -> None:
    write(tmp_path, {
        "compose.yaml": """
            name: shop
            include:
              - db/compose.yaml
            services:
              web:
                image: busybox:1
                depends_on: [db]
                networks: [back]
            """,
        "db/compose.yaml": """
            include: [{path: cache.yaml}]
            services:
              db:
                image: postgres:${PG:-16}
                env_file: db.env
                volumes: ["./init:/docker-entrypoint-initdb.d:ro", "data:/var/lib/postgresql/data"]
                secrets: [pw]
                networks: [back]
            networks:
              back: {internal: true}
            volumes:
              data: {}
            secrets:
              pw: {file: ./pw.txt}
            """,
        "db/cache.yaml": "services:\n  cache: {image: redis:7}\n",
        "db/db.env": "POSTGRES_DB=shop\n",
        "db/pw.txt": "secret\n",
        "db/init/01.sql": "select 1;\n",
    })
    desired = load(tmp_path, env={"PG": "15"})
    assert sorted(desired.containers) == ["shop-cache-1", "shop-db-1", "shop-web-1"]
    db = desired.containers["shop-db-1"]
    assert (db.image, dict(db.env)) == ("postgres:15", {"POSTGRES_DB": "shop"})
    assert [(m.source, m.target) for m in db.volumes] == [
        (str(tmp_path / "db" / "init"), "/docker-entrypoint-initdb.d"), ("shop_data", "/var/lib/postgresql/data")]
    assert [s.data for s in db.secrets] == [b"secret\n"]
    assert sorted(desired.networks) == ["shop_back", "shop_default"]
    (tmp_path / "db" / "cache.yaml").write_text("services:\n  cache: {image: redis:7.2}\n")
    again = load(tmp_path, env={"PG": "15"})                    # an included file is part of the revision
    assert (again.revision != desired.revision, again.containers["shop-cache-1"].image) == (True, "redis:7.2")
    assert problems(tmp_path, {"compose.yaml": """
        include: [db/compose.yaml, {path: nope.yaml}]
        services:
          db:
            image: busybox:1
        """}) == [
        "compose.yaml:1:28: include[1]: included file nope.yaml not found",
        "compose.yaml:3:3: services.db: service 'db' is defined here and in the included file db/compose.yaml; "
        "rename one (compose refuses the conflict too)",
    ]


INCLUDING = {
    "compose.yaml": """
        name: shop
        include:
          - modules/db/compose.yaml
          - path: [tpl/api.yaml, tpl/api.prod.yaml]
            project_directory: api
            env_file: [conf/api.env, conf/api.local.env]
        services:
          web:
            image: busybox:${TAG:-1}
            environment: {SHARED: "${SHARED}"}
        """,
    ".env": "TAG=2\nSHARED=from-root\n",
    "modules/db/compose.yaml": """
        services:
          db:
            image: postgres:${PG_TAG}
            environment: {SHARED: "${SHARED}", PROJECT: "${COMPOSE_PROJECT_NAME}"}
            volumes: ["./init:/docker-entrypoint-initdb.d:ro"]
        """,
    "modules/db/.env": "PG_TAG=16\nSHARED=from-db\n",
    "modules/db/init/01.sql": "select 1;\n",
    "tpl/api.yaml": """
        include: [worker.yaml]
        services:
          api:
            image: api:${API_TAG}
            env_file: api.env
            volumes: ["./static:/srv/static:ro"]
        """,
    "tpl/api.prod.yaml": "services:\n  api:\n    environment: {LEVEL: \"${LEVEL}\"}\n",
    "conf/api.env": "API_TAG=3\nLEVEL=info\n",
    "conf/api.local.env": "LEVEL=debug-${API_TAG}\n",
    "api/worker.yaml": "services:\n  worker: {image: \"worker:${API_TAG}\"}\n",
    "api/api.env": "MODE=api\n",
    "api/static/index.html": "hi\n",
}


def test_include_reads_its_project_directory_and_env_files_as_compose_does(tmp_path: Path) -> None:
    desired = load(tmp_path, INCLUDING)
    c = desired.containers
    assert sorted(c) == ["shop-api-1", "shop-db-1", "shop-web-1", "shop-worker-1"]
    # the included directory's own .env interpolates its file; the project's values win over it
    assert (c["shop-db-1"].image, dict(c["shop-db-1"].env)) == (
        "postgres:16", {"SHARED": "from-root", "PROJECT": "shop"})
    assert [m.source for m in c["shop-db-1"].volumes] == [str(tmp_path / "modules/db/init")]
    # env_file: (relative to the including project, later files win) replaces the .env;
    # project_directory is where the included files' relative paths (and includes) start
    assert (c["shop-api-1"].image, dict(c["shop-api-1"].env)) == ("api:3", {"MODE": "api", "LEVEL": "debug-3"})
    assert [m.source for m in c["shop-api-1"].volumes] == [str(tmp_path / "api/static")]
    assert (c["shop-worker-1"].image, c["shop-web-1"].image) == ("worker:3", "busybox:2")
    assert {str(tmp_path / f) for f in ("modules/db/.env", "conf/api.env", "conf/api.local.env",
                                        "tpl/api.prod.yaml", "api/worker.yaml")} <= set(desired.files)
    # the shell wins over every .env, the included ones too
    assert load(tmp_path, env={"PG_TAG": "17"}).containers["shop-db-1"].image == "postgres:17"


def test_an_edited_included_dotenv_replaces_exactly_the_services_using_it(tmp_path: Path) -> None:
    before = load(tmp_path, INCLUDING)
    (tmp_path / "modules/db/.env").write_text("PG_TAG=17\nSHARED=from-db\n")
    after = load(tmp_path)
    changed = sorted(n for n in before.containers if before.containers[n].spec_hash != after.containers[n].spec_hash)
    assert (changed, after.revision != before.revision) == (["shop-db-1"], True)
    (tmp_path / "conf/api.local.env").write_text("LEVEL=warn\n")
    again = load(tmp_path)
    changed = sorted(n for n in after.containers if after.containers[n].spec_hash != again.containers[n].spec_hash)
    assert changed == ["shop-api-1"]


def test_include_env_files_and_cycles_are_errors_with_their_place(tmp_path: Path) -> None:
    assert problems(tmp_path, {
        "compose.yaml": """
            include:
              - {path: a.yaml, env_file: [conf/missing.env]}
              - {path: b/compose.yaml}
              - c.yaml
            services:
              web: {image: busybox:1}
            """,
        "a.yaml": "services:\n  a: {image: busybox:1}\n",
        "b/compose.yaml": "services:\n  b: {image: busybox:1}\n",
        "b/.env": "OK=1\nBAD KEY=2\n",
        "c.yaml": "include: [compose.yaml]\nservices:\n  c: {image: busybox:1}\n",
    }) == [
        "b/.env:2:1: key 'BAD KEY' cannot contain a space",
        "c.yaml:1:11: include[0]: include cycle: compose.yaml -> c.yaml -> compose.yaml",
        "compose.yaml:2:31: include[0].env_file[0]: env file conf/missing.env not found, unreadable or larger "
        "than 16777216 bytes",
    ]


def test_deploy_restart_policy_becomes_the_restart_policy_as_docker_compose_maps_it(tmp_path: Path) -> None:
    desired = load(tmp_path, {"compose.yaml": """
        name: t
        services:
          any:
            image: busybox:1
            restart: "no"
            deploy: {restart_policy: {condition: any, delay: 5s, window: 1m}}
          flaky:
            image: busybox:1
            deploy: {restart_policy: {condition: on-failure, max_attempts: 3}}
          once:
            image: busybox:1
            restart: always
            deploy: {restart_policy: {max_attempts: 2}}
          plain:
            image: busybox:1
            restart: unless-stopped
        """})
    policies = {n: (c.restart.name, c.restart.max_retries) for n, c in desired.containers.items()}
    assert policies == {"t-any-1": ("always", 0), "t-flaky-1": ("on-failure", 3), "t-once-1": ("always", 0),
                        "t-plain-1": ("unless-stopped", 0)}
    assert warnings(desired, tmp_path) == [
        "compose.yaml:5:5: services.any.restart: restart is overridden by deploy.restart_policy, as docker compose "
        "does; keep one",
        "compose.yaml:6:47: services.any.deploy.restart_policy.delay: Swarm's setting (--runtime swarm): no effect on "
        "one host, which restarts a container with Docker's backoff",
        "compose.yaml:6:58: services.any.deploy.restart_policy.window: Swarm's setting (--runtime swarm): no effect on "
        "one host, which restarts a container with Docker's backoff",
        "compose.yaml:12:5: services.once.restart: restart is overridden by deploy.restart_policy, as docker compose "
        "does; keep one",
    ]
    assert problems(tmp_path, {"compose.yaml": """
        services:
          web:
            image: busybox:1
            deploy: {restart_policy: {condition: sometimes}}
        """}) == [
        "compose.yaml:4:42: services.web.deploy.restart_policy.condition: unknown restart condition 'sometimes': "
        "none, on-failure, any or unless-stopped",
    ]


def test_included_files_may_share_a_resource_defined_the_same(tmp_path: Path) -> None:
    shared = "networks:\n  back: {internal: true}\n"
    desired = load(tmp_path, {
        "compose.yaml": "name: t\ninclude: [a/compose.yaml, b/compose.yaml]\n",
        "a/compose.yaml": "services:\n  a: {image: busybox:1, networks: [back]}\n" + shared,
        "b/compose.yaml": "services:\n  b: {image: busybox:1, networks: [back]}\n" + shared,
    })
    assert (sorted(desired.containers), sorted(desired.networks)) == (["t-a-1", "t-b-1"], ["t_back"])
    assert desired.networks["t_back"].internal
    (tmp_path / "b/compose.yaml").write_text("services:\n  b: {image: busybox:1, networks: [back]}\n"
                                             "networks:\n  back: {}\n")
    assert problems(tmp_path, {"compose.yaml": """
        name: t
        include:
          - a/compose.yaml
          - b/compose.yaml
          - path: https://github.com/example/app.git#main:compose.yaml
        """}) == [
        "a/compose.yaml:4:3: networks.back: network 'back' is defined here and in the included file b/compose.yaml; "
        "rename one (compose refuses the conflict too)",
        "compose.yaml:5:5: include[2]: not supported yet: a remote include "
        "(https://github.com/example/app.git#main:compose.yaml); put the file into the source and include its path",
    ]


def test_a_required_field_a_compose_document_lacks_is_named_at_the_compose_key() -> None:
    """A manifest field required of a document made from compose (none the translation leaves
    out now, but the rule stands for the next one): reported at the compose key the object came
    from, which names no manifest field, so the message names the field."""
    from reconciler.spec import building, reading

    builder = building.Builder([], reading.Limits(), root="/")
    doc = reading.Document(file="compose.yaml", base="/", index=0, line=2, column=3, data={
        "apiVersion": "reconciler/v1", "kind": "Container", "metadata": {"name": "app-web-1"}, "spec": {}},
        locate=lambda path, key: ("compose.yaml", 2, 3, "services.web"))
    builder.classify(doc)
    assert [str(p) for p in builder.problems] == [
        "compose.yaml:2:3: services.web: required field 'image' is missing: add image: to it"]


def test_pull_policy_build_without_a_build_section_names_what_is_missing(tmp_path: Path) -> None:
    """It was "services.s: required field is missing" (the Container left without its image), and
    a "not supported yet: pull_policy 'build'" beside it: one problem, at the key, saying what to add."""
    assert problems(tmp_path, {"compose.yaml": "services:\n  s:\n    image: x/s:1\n    pull_policy: build\n"}) == [
        "compose.yaml:4:18: services.s.pull_policy: pull_policy build builds the service's image, and the service "
        "has no build section: add build: (its context, like build: ./web), or use pull_policy missing, always or "
        "never to pull image:",
    ]
