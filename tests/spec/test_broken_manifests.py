"""Broken manifests: each gets its exact messages (file:line:column: kind/name: field: message).

Every case is a small directory of files; `m.yaml` is the manifest under test. The expected
lines are what `reconcile validate DIR` prints (paths shown relative to the directory), and
the command exits 2. Cases cover schema errors, semantic checks, references, cycles, ports,
units, durations, files the manifests reference, and hostile input.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler import spec
from reconciler.cli.main import main
from reconciler.spec.building import anonymous_name


def c(body: str, name: str = "web") -> str:
    """A Container document named `name` whose spec is `body` (indented two spaces)."""
    return f"apiVersion: reconciler/v1\nkind: Container\nmetadata:\n  name: {name}\nspec:\n" + body


NET = "---\napiVersion: reconciler/v1\nkind: Network\nmetadata: {name: backend}\n"
VOL = "---\napiVersion: reconciler/v1\nkind: Volume\nmetadata: {name: data}\n"
IMG = "  image: reg.local:5000/shop/web:1\n"
CASES: dict[str, tuple[dict[str, str | bytes], list[str]]] = {
    "unknown_field": (
        {"m.yaml": c("  imgae: reg.local/web:1\n")},
        [
            'm.yaml:5:1: Container/web: spec.image: required field is missing',
            "m.yaml:6:3: Container/web: spec.imgae: unknown field 'imgae' (did you mean 'image'?)",
        ],
    ),
    "unknown_field_top": (
        {"m.yaml": c(IMG) + "specs: {}\n"},
        ["m.yaml:7:1: Container/web: specs: unknown field 'specs' (did you mean 'spec'?)"],
    ),
    "missing_image": (
        {"m.yaml": c("  command: [a]\n")},
        ['m.yaml:5:1: Container/web: spec.image: required field is missing'],
    ),
    "missing_spec": (
        {"m.yaml": "apiVersion: reconciler/v1\nkind: Container\nmetadata: {name: web}\n"},
        ['m.yaml:1:1: Container/web: spec: required field is missing'],
    ),
    "missing_kind": (
        {"m.yaml": "apiVersion: reconciler/v1\nmetadata: {name: web}\n"},
        ['m.yaml:1:1: ?/web: kind: required field is missing; set it to one of Container, Image, Network, Volume'],
    ),
    "unknown_kind": (
        {"m.yaml": "apiVersion: reconciler/v1\nkind: Contaner\nmetadata: {name: web}\n"},
        ["m.yaml:2:7: ?/web: kind: unknown kind 'Contaner'; expected one of Container, Image, Network, Volume (did you mean 'Container'?)"],
    ),
    "api_version": (
        {"m.yaml": c(IMG).replace("reconciler/v1", "reconciler/v2")},
        ["m.yaml:1:13: Container/web: apiVersion: must be 'reconciler/v1', not 'reconciler/v2'"],
    ),
    "missing_name": (
        {"m.yaml": "apiVersion: reconciler/v1\nkind: Volume\nmetadata: {labels: {a: b}}\n"},
        ['m.yaml:3:1: Volume/?: metadata.name: required field is missing'],
    ),
    "bad_name": (
        {"m.yaml": c(IMG, name="Web_1")},
        ["m.yaml:4:9: Container/Web_1: metadata.name: 'Web_1' is not a valid name (lower-case letters, digits, '-', '_' and '.', starting and ending with a letter or digit)"],
    ),
    "bad_name_and_spec": (     # an invalid name hides none of the spec's problems (every problem at once)
        {"m.yaml": c(IMG + '  ports: ["99999:80"]\n', name="Web_1")},
        ["m.yaml:4:9: Container/Web_1: metadata.name: 'Web_1' is not a valid name (lower-case letters, digits, '-', '_' and '.', starting and ending with a letter or digit)",
         "m.yaml:7:11: Container/Web_1: spec.ports[0]: '99999:80': host port 99999 is out of range (1-65535)"],
    ),
    "duplicate_name": (
        {"m.yaml": c(IMG) + "---\n" + c(IMG)},
        ["m.yaml:11:9: Container/web: metadata.name: duplicate Container name 'web' (first defined at m.yaml:1)"],
    ),
    "duplicate_key": (
        {"m.yaml": c(IMG + IMG)},
        ["m.yaml:7:3: Container/web: spec.image: duplicate key 'image'; remove one of them"],
    ),
    "restart": (
        {"m.yaml": c(IMG + "  restart: sometimes\n")},
        ["m.yaml:7:12: Container/web: spec.restart: 'sometimes' is not a valid restart policy (no, on-failure[:N], always or unless-stopped)"],
    ),
    "restart_count": (
        {"m.yaml": c(IMG + "  restart: on-failure:x\n")},
        ["m.yaml:7:12: Container/web: spec.restart: 'on-failure:x' is not a valid restart policy (no, on-failure[:N], always or unless-stopped)"],
    ),
    "memory_unit": (
        {"m.yaml": c(IMG + "  resources: {memory: 256MB}\n")},
        ["m.yaml:7:23: Container/web: spec.resources.memory: '256MB' is not a valid memory size (like 256Mi, 1Gi, 512m or a number of bytes)"],
    ),
    "memory_small": (
        {"m.yaml": c(IMG + "  resources: {memory: 1Mi}\n")},
        ["m.yaml:7:23: Container/web: spec.resources.memory: memory limit '1Mi' is below the minimum of 6Mi"],
    ),
    "cpus_syntax": (
        {"m.yaml": c(IMG + "  resources: {cpus: half}\n")},
        ["m.yaml:7:21: Container/web: spec.resources.cpus: 'half' is not a valid CPU amount (like 0.5, 2 or 500m)"],
    ),
    "cpus_zero": (
        {"m.yaml": c(IMG + "  resources: {cpus: 0}\n")},
        ['m.yaml:7:21: Container/web: spec.resources.cpus: must be greater than 0, not 0'],
    ),
    "pids_type": (
        {"m.yaml": c(IMG + "  resources: {pids: many}\n")},
        ['m.yaml:7:21: Container/web: spec.resources.pids: must be an integer, not string'],
    ),
    "duration": (
        {"m.yaml": c(IMG + "  healthcheck: {test: [CMD, /check], interval: 10x}\n")},
        ["m.yaml:7:48: Container/web: spec.healthcheck.interval: '10x' is not a valid duration (like 10s, 1m30s or 500ms)"],
    ),
    "duration_no_unit": (
        {"m.yaml": c(IMG + "  stopTimeout: 1m30\n")},
        ["m.yaml:7:16: Container/web: spec.stopTimeout: '1m30' is not a valid duration (like 10s, 1m30s or 500ms)"],
    ),
    "port_no_host": (
        {"m.yaml": c(IMG + "  ports: ['80']\n")},
        ["m.yaml:7:11: Container/web: spec.ports[0]: '80' has no host port; write hostPort:containerPort (like 8080:80)"],
    ),
    "port_proto": (
        {"m.yaml": c(IMG + "  ports: ['8080:80/sctp']\n")},
        ["m.yaml:7:11: Container/web: spec.ports[0]: '8080:80/sctp': protocol 'sctp' is not tcp or udp"],
    ),
    "port_range": (
        {"m.yaml": c(IMG + "  ports: ['70000:80']\n")},
        ["m.yaml:7:11: Container/web: spec.ports[0]: '70000:80': host port 70000 is out of range (1-65535)"],
    ),
    "port_ip": (
        {"m.yaml": c(IMG + "  ports: ['localhost:8080:80']\n")},
        ["m.yaml:7:11: Container/web: spec.ports[0]: 'localhost:8080:80': host IP 'localhost' is not an IP address"],
    ),
    "port_type": (
        {"m.yaml": c(IMG + "  ports: 8080:80\n")},
        ['m.yaml:7:10: Container/web: spec.ports: must be a list, not string'],
    ),
    "port_conflict": (
        {"m.yaml": c(IMG + "  ports: ['8080:80']\n") + "---\n" + c(IMG + "  ports: ['127.0.0.1:8080:81']\n", name="api")},
        ['m.yaml:15:11: Container/api: spec.ports[0]: host port 8080/tcp is already published by Container/web (m.yaml:1:1)'],
    ),
    "port_twice": (
        {"m.yaml": c(IMG + "  ports: ['8080:80', '8080:81']\n")},
        ['m.yaml:7:22: Container/web: spec.ports[1]: host port 8080/tcp is already published by this container'],
    ),
    "network_undefined": (
        {"m.yaml": c(IMG + "  networks: [backnd]\n") + NET},
        ["m.yaml:7:14: Container/web: spec.networks[0]: no Network named 'backnd' (did you mean 'backend'?); define it in a manifest"],
    ),
    "network_host_mix": (
        {"m.yaml": c(IMG + "  networks: [host, backend]\n") + NET},
        ['m.yaml:7:13: Container/web: spec.networks: host and none cannot be combined with other networks'],
    ),
    "network_join_undefined": (
        {"m.yaml": c(IMG + "  networks: ['container:wbe']\n")},
        ["m.yaml:7:14: Container/web: spec.networks[0]: no Container named 'wbe' to join; define it in a manifest"],
    ),
    "network_join_itself": (
        {"m.yaml": c(IMG + "  networks: ['container:web']\n")},
        ["m.yaml:7:14: Container/web: spec.networks[0]: a container cannot join its own network namespace"],
    ),
    "volume_undefined": (
        {"m.yaml": c(IMG + "  volumes: ['dat:/data']\n") + VOL},
        ["m.yaml:7:13: Container/web: spec.volumes[0]: no Volume named 'dat' (did you mean 'data'?); define it in a manifest"],
    ),
    "volume_anonymous_relative": (
        {"m.yaml": c(IMG + "  volumes: ['data']\n")},
        ["m.yaml:7:13: Container/web: spec.volumes[0]: mount target 'data' must be an absolute path"],
    ),
    "volume_anonymous_named_like_a_volume": (
        {"m.yaml": c(IMG + "  volumes: ['/data']\n") + VOL.replace("{name: data}", "{name: " + anonymous_name("web", "/data") + "}")},
        [f"m.yaml:7:13: Container/web: spec.volumes[0]: the anonymous volume at /data is named {anonymous_name('web', '/data')!r}, "
         "as a Volume of the manifests is: rename that Volume"],
    ),
    "volume_mode": (
        {"m.yaml": c(IMG + "  volumes: ['data:/data:rx']\n") + VOL},
        ["m.yaml:7:13: Container/web: spec.volumes[0]: 'data:/data:rx': mode 'rx' is not ro or rw"],
    ),
    "volume_relative_target": (
        {"m.yaml": c(IMG + "  volumes: ['data:data']\n") + VOL},
        ["m.yaml:7:13: Container/web: spec.volumes[0]: mount target 'data' must be an absolute path"],
    ),
    "volume_twice": (
        {"m.yaml": c(IMG + "  volumes: ['data:/data', './x:/data']\n") + VOL, "x": ""},
        ["m.yaml:7:27: Container/web: spec.volumes[1]: '/data' is mounted twice"],
    ),
    "bind_missing": (
        {"m.yaml": c(IMG + "  volumes: ['./conf/app.toml:/etc/app.toml:ro']\n")},
        ["m.yaml:7:13: Container/web: spec.volumes[0]: bind source './conf/app.toml' does not exist (resolved to conf/app.toml)"],
    ),
    "tmpfs_source": (
        {"m.yaml": c(IMG + "  volumes: [{type: tmpfs, source: x, target: /tmp}]\n")},
        ['m.yaml:7:35: Container/web: spec.volumes[0].source: a tmpfs mount has no source'],
    ),
    "image_undefined": (
        {"m.yaml": c("  image: webapp\n")},
        ["m.yaml:6:10: Container/web: spec.image: no Image object named 'webapp'; define one, or give a full reference like registry:5000/repo/webapp:tag"],
    ),
    "image_reference": (
        {"m.yaml": c("  image: Reg.local/Shop/Web:1\n")},
        ["m.yaml:6:10: Container/web: spec.image: 'Reg.local/Shop/Web:1' is not a valid image reference (like registry:5000/repo/name:tag or ...@sha256:<64 hex>)"],
    ),
    "depends_undefined": (
        {"m.yaml": c(IMG + "  dependsOn: [db]\n")},
        ["m.yaml:7:15: Container/web: spec.dependsOn[0]: no Container named 'db'; define it in a manifest"],
    ),
    "depends_self": (
        {"m.yaml": c(IMG + "  dependsOn: [web]\n")},
        ['m.yaml:7:15: Container/web: spec.dependsOn[0]: a container cannot depend on itself'],
    ),
    "depends_cycle": (
        {"m.yaml": c(IMG + "  dependsOn: [b]\n", name="a") + "---\n" + c(IMG + "  dependsOn: [c]\n", name="b") + "---\n" + c(IMG + "  dependsOn: [a]\n", name="c")},
        ['m.yaml:7:15: Container/a: spec.dependsOn[0]: dependsOn cycle: a -> b -> c -> a'],
    ),
    "env_file_missing": (
        {"m.yaml": c(IMG + "  envFiles: [web.env]\n")},
        ["m.yaml:7:14: Container/web: spec.envFiles[0]: env file 'web.env' not found or unreadable (resolved to web.env)"],
    ),
    "env_file_line": (
        {"m.yaml": c(IMG + "  envFiles: [web.env]\n"), "web.env": "A=1\n\nnot a pair\n"},
        ["m.yaml:7:14: Container/web: spec.envFiles[0]: env file 'web.env' line 3: expected KEY=VALUE"],
    ),
    "env_key": (
        {"m.yaml": c(IMG + "  env: {'BAD KEY': x}\n")},
        ["m.yaml:7:9: Container/web: spec.env.BAD KEY: 'BAD KEY' is not a valid environment variable name"],
    ),
    "env_value_type": (
        {"m.yaml": c(IMG + "  env: {A: [1, 2]}\n")},
        ['m.yaml:7:12: Container/web: spec.env.A: must be a string, a number or a boolean (true or false), not list'],
    ),
    "healthcheck_test": (
        {"m.yaml": c(IMG + "  healthcheck: {test: [RUN, /check]}\n")},
        ["m.yaml:7:24: Container/web: spec.healthcheck.test[0]: 'RUN': a test list starts with CMD, CMD-SHELL or NONE (or give a shell string)"],
    ),
    "healthcheck_empty": (      # without test it is the image's with other timings: some, then
        {"m.yaml": c(IMG + "  healthcheck: {}\n")},
        ["m.yaml:7:16: Container/web: spec.healthcheck: {} should be non-empty"],
    ),
    "update_order": (
        {"m.yaml": c(IMG + "  update: {order: start-frist}\n")},
        ["m.yaml:7:19: Container/web: spec.update.order: 'start-frist' is not one of stop-first, start-first (did you mean 'start-first'?)"],
    ),
    "drift_enum": (
        {"m.yaml": c(IMG + "  drift: ignore\n")},
        ["m.yaml:7:10: Container/web: spec.drift: 'ignore' is not one of correct, report"],
    ),
    "stop_signal": (
        {"m.yaml": c(IMG + "  stopSignal: SIGFOO\n")},
        ["m.yaml:7:15: Container/web: spec.stopSignal: 'SIGFOO' is not a signal name (like SIGTERM or SIGQUIT)"],
    ),
    "command_type": (
        {"m.yaml": c(IMG + "  command: /bin/web --fast\n")},
        ['m.yaml:7:12: Container/web: spec.command: must be a list, not string'],
    ),
    "reserved_label": (
        {"m.yaml": c(IMG).replace("  name: web\n", "  name: web\n  labels: {reconciler.owner: me}\n")},
        ["m.yaml:5:12: Container/web: metadata.labels.reconciler.owner: label keys starting with 'reconciler.' are reserved for reconciler's own labels"],
    ),
    "label_value_type": (
        {"m.yaml": c(IMG).replace("  name: web\n", "  name: web\n  labels: {tier: 1}\n")},
        ['m.yaml:5:18: Container/web: metadata.labels.tier: must be a string, not number'],
    ),
    "subnet": (
        {"m.yaml": "apiVersion: reconciler/v1\nkind: Network\nmetadata: {name: backend}\nspec:\n  subnet: 10.210.0.1/24\n"},
        ["m.yaml:5:11: Network/backend: spec.subnet: '10.210.0.1/24' is not a network in CIDR form like 10.210.0.0/24 (10.210.0.1/24 has host bits set)"],
    ),
    "gateway_outside": (
        {"m.yaml": "apiVersion: reconciler/v1\nkind: Network\nmetadata: {name: backend}\nspec:\n  subnet: 10.210.0.0/24\n  gateway: 10.211.0.1\n"},
        ['m.yaml:6:12: Network/backend: spec.gateway: 10.211.0.1 is not inside the subnet 10.210.0.0/24'],
    ),
    "mtu": (
        {"m.yaml": "apiVersion: reconciler/v1\nkind: Network\nmetadata: {name: backend}\nspec: {mtu: 10}\n"},
        ['m.yaml:4:13: Network/backend: spec.mtu: must be at least 68, not 10'],
    ),
    "deletion_policy": (
        {"m.yaml": "apiVersion: reconciler/v1\nkind: Volume\nmetadata: {name: data}\nspec: {deletionPolicy: delete}\n"},
        ["m.yaml:4:24: Volume/data: spec.deletionPolicy: 'delete' is not one of Retain, Delete (did you mean 'Delete'?)"],
    ),
    "image_empty": (
        {"m.yaml": "apiVersion: reconciler/v1\nkind: Image\nmetadata: {name: web}\nspec: {pull: always}\n"},
        ['m.yaml:4:7: Image/web: spec: set ref (an image to pull) or build (a context to build), or both'],
    ),
    "image_pull": (
        {"m.yaml": "apiVersion: reconciler/v1\nkind: Image\nmetadata: {name: web}\nspec: {ref: 'r.local/web:1', pull: sometimes}\n"},
        ["m.yaml:4:36: Image/web: spec.pull: 'sometimes' is not one of always, missing, never"],
    ),
    "build_context": (
        {"m.yaml": "apiVersion: reconciler/v1\nkind: Image\nmetadata: {name: web}\nspec:\n  build: {context: ./web}\n"},
        ["m.yaml:5:20: Image/web: spec.build.context: build context './web' is not a directory (resolved to web)"],
    ),
    "build_dockerfile": (
        {"m.yaml": "apiVersion: reconciler/v1\nkind: Image\nmetadata: {name: web}\nspec:\n  build: {context: ./web, file: Containerfile}\n", "web/Dockerfile": "FROM scratch\n"},
        ["m.yaml:5:33: Image/web: spec.build.file: no Dockerfile 'Containerfile' in the build context './web'"],
    ),
    "yaml_syntax": (
        {"m.yaml": c(IMG + "  ports: ['8080:80'\n")},
        ["m.yaml:8:1: invalid YAML: while parsing a flow sequence did not find expected ',' or ']'"],
    ),
    "not_mapping": (
        {"m.yaml": "- a\n- b\n"},
        ['m.yaml:1:1: a manifest document must be a mapping with apiVersion, kind, metadata and spec, not list'],
    ),
    "not_utf8": (
        {"m.yaml": b"kind: Caf\xe9\n"},
        ['m.yaml:1:10: not UTF-8 text (byte 0xe9); save the file as UTF-8'],
    ),
    "binary": (
        {"m.yaml": b"\x7fELF\x00\x01"},
        ['m.yaml:1:1: binary file (contains NUL bytes); manifests must be UTF-8 YAML text'],
    ),
    "alias_bomb": (
        {"m.yaml": "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(f"{chr(98+i)}: &{chr(98+i)} [" + ", ".join([f"*{chr(97+i)}"] * 10) + "]\n" for i in range(6))},
        ['m.yaml:1:1: document rejected: expands to more than 50000 nodes (too many aliases?)'],
    ),
    "schema_and_semantic_errors_together": (
        {"m.yaml": c(IMG + "  restart: sometimes\n  ports: ['80']\n  networks: [front]\n  volumes: [data:/a, 5]\n  cpu: 2\n")},
        [
            "m.yaml:7:12: Container/web: spec.restart: 'sometimes' is not a valid restart policy (no, on-failure[:N], always or unless-stopped)",
            "m.yaml:8:11: Container/web: spec.ports[0]: '80' has no host port; write hostPort:containerPort (like 8080:80)",
            "m.yaml:9:14: Container/web: spec.networks[0]: no Network named 'front'; define it in a manifest",
            "m.yaml:10:22: Container/web: spec.volumes[1]: must be a string, not number",
            "m.yaml:11:3: Container/web: spec.cpu: unknown field 'cpu'",
        ],
    ),
    "python_tag": (
        {"m.yaml": "!!python/object/apply:os.system [echo hi]\n"},
        ["m.yaml:1:1: invalid YAML: unsupported tag 'tag:yaml.org,2002:python/object/apply:os.system' (only plain mappings and lists)"],
    ),
}


def write(root: Path, files: dict[str, str | bytes]) -> None:
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())


def relative(root: Path, text: str) -> str:
    return text.replace(f"{root}/", "").replace(str(root), ".")


def test_there_are_at_least_forty_cases() -> None:
    assert len(CASES) >= 40


@pytest.mark.parametrize("name", sorted(CASES))
def test_loader_reports_exact_problems(name: str, tmp_path: Path) -> None:
    files, expected = CASES[name]
    write(tmp_path, files)
    with pytest.raises(spec.SpecError) as info:
        spec.load(tmp_path)
    assert [relative(tmp_path, str(p)) for p in info.value.problems] == expected
    assert info.value.exit_code == 2


@pytest.mark.parametrize("name", sorted(CASES))
def test_validate_command_prints_them_and_exits_2(name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files, expected = CASES[name]
    write(tmp_path, files)
    assert main(["validate", str(tmp_path)]) == 2
    out, err = capsys.readouterr()
    assert relative(tmp_path, out).splitlines() == expected
    assert err.strip() == f"invalid: {len(expected)} problem{'s' if len(expected) != 1 else ''}"
