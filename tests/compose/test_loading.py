"""Compose projects loaded as manifests: environment, merging, extends, profiles, names, errors.

Each test writes a small project into its own directory and loads it with `spec.load`, the
loader every command and the agent use, with an explicit shell environment (never the test
process's own).
"""

from __future__ import annotations

import os
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
            ports: ["80", "53:53/sctp"]
            sysctls: {net.core.somaxconn: 1024}
            privileged: true
            volumes: [/anonymous]
            network_mode: "service:db"
            deploy: {replicas: 3}
            tmpfs: ["/run:size=64m"]
          db:
            image: x/db:1
            depends_on:
              web: {condition: service_completed_successfully}
        include: [other.yaml]
        """, [
            "compose.yaml:4:13: services.web.ports[0]: not supported yet: publishing container port 80 on a random host port; name the host port, like \"8080:80\"",
            "compose.yaml:4:19: services.web.ports[1]: not supported yet: the sctp protocol; use tcp or udp",
            "compose.yaml:5:5: services.web.sysctls: not supported yet: sysctls; the manifest language cannot say it yet, remove it",
            "compose.yaml:6:5: services.web.privileged: not supported yet: privileged; the manifest language cannot say it yet, remove it",
            "compose.yaml:7:15: services.web.volumes[0]: not supported yet: anonymous volumes; name the volume (data:/anonymous) and declare it under the top-level volumes:",
            "compose.yaml:8:19: services.web.network_mode: not supported yet: network_mode 'service:db'; use host or none, or networks:",
            "compose.yaml:9:24: services.web.deploy.replicas: not supported yet: replicas other than 1; each service runs one container",
            "compose.yaml:10:13: services.web.tmpfs[0]: not supported yet: tmpfs options (size=64m); mount /run without options",
            "compose.yaml:14:24: services.db.depends_on.web.condition: not supported yet: service_completed_successfully; one-shot jobs are not run yet; use service_started or service_healthy",
            "compose.yaml:15:1: include: not supported yet: top-level include; the manifest language cannot say it yet, remove it",
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
}


@pytest.mark.parametrize("case", sorted(ERRORS))
def test_problems_are_located_in_the_compose_file(tmp_path: Path, case: str) -> None:
    text, expected = ERRORS[case]
    assert problems(tmp_path, {"compose.yaml": text}) == expected


def test_warnings_name_what_is_not_honoured(tmp_path: Path) -> None:
    desired = load(tmp_path, {"compose.yaml": """
        version: "3.8"
        services:
          web:
            image: x/web${TAG}
            expose: ["80"]
            logging: {driver: json-file}
            read_only: "yes"
            ports:
              - {target: 80, published: "8080", name: http}
        """})
    assert warnings(desired, tmp_path) == [
        "compose.yaml:1:1: version: the version attribute is obsolete and ignored; remove it",
        "compose.yaml:4:12: services.web.image: the 'TAG' variable is not set; using an empty string",
        "compose.yaml:5:5: services.web.expose: expose has no effect: every port of a container is reachable on its networks; publish with ports: to reach it from the host",
        "compose.yaml:6:5: services.web.logging: logging is not honoured: the engine keeps each container's output itself (reconcile logs NAME)",
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
