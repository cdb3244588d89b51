"""The loader's behaviour on valid input: defaults, paths, merging, hashing, sources, CLI."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

from reconciler import spec
from reconciler.cli.main import main
from reconciler.spec import units

MINIMAL = """\
apiVersion: reconciler/v1
kind: Container
metadata: {name: web}
spec:
  image: 127.0.0.1:5000/demo/web:1
"""


def container(spec_body: str, name: str = "web", labels: str = "") -> str:
    meta = f"{{name: {name}{', labels: ' + labels if labels else ''}}}"
    return f"apiVersion: reconciler/v1\nkind: Container\nmetadata: {meta}\nspec:\n{spec_body}"


def load_text(tmp_path: Path, text: str, name: str = "m.yaml") -> spec.DesiredState:
    (tmp_path / name).write_text(text)
    return spec.load(tmp_path)


def test_defaults_are_applied(tmp_path: Path) -> None:
    desired = load_text(tmp_path, MINIMAL + "  healthcheck: {test: curl -f http://localhost/}\n"
                        "  ports: ['8080:80']\n")
    c = desired.containers["web"]
    assert c.image == "127.0.0.1:5000/demo/web:1"
    assert c.image_object is None
    assert (c.command, c.args, dict(c.env), c.env_files) == (None, None, {}, ())
    assert c.ports == (spec.models.PortSpec("0.0.0.0", 8080, 80, "tcp"),)
    assert c.restart == spec.models.RestartPolicy("no", 0)
    assert c.healthcheck == spec.models.Healthcheck(("CMD-SHELL", "curl -f http://localhost/"), 30.0, 30.0, 0.0, 3)
    assert c.resources == spec.models.Resources(None, None, None)
    assert c.update == spec.models.UpdatePolicy("stop-first", 60.0, 0.0, "rollback")
    assert (c.drift, c.stop_timeout, c.init, c.read_only, c.stop_signal) == ("correct", 10.0, False, False, None)
    assert c.origin == spec.models.Origin(str(tmp_path / "m.yaml"), 1, 1)
    assert len(c.spec_hash) == 64


def test_models_are_frozen(tmp_path: Path) -> None:
    c = load_text(tmp_path, MINIMAL).containers["web"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.image = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        c.env["X"] = "1"  # type: ignore[index]


def test_other_kinds_defaults(tmp_path: Path) -> None:
    (tmp_path / "web").mkdir()
    (tmp_path / "web" / "Dockerfile").write_text("FROM scratch\n")
    desired = load_text(tmp_path, """\
apiVersion: reconciler/v1
kind: Network
metadata: {name: backend}
---
apiVersion: reconciler/v1
kind: Volume
metadata: {name: data}
---
apiVersion: reconciler/v1
kind: Image
metadata: {name: web}
spec:
  build: {context: web, args: {N: 1, DEBUG: true}}
""")
    assert desired.networks["backend"].mtu == 1500
    assert desired.networks["backend"].subnet is None
    assert desired.volumes["data"].deletion_policy == "Retain"
    image = desired.images["web"]
    assert image.ref == "localhost/web:latest"
    assert image.pull == "missing"
    assert image.build is not None
    assert image.build.context == str(tmp_path / "web")
    assert image.build.file == "Dockerfile"
    assert dict(image.build.args) == {"DEBUG": "true", "N": "1"}


def test_units_and_syntaxes(tmp_path: Path) -> None:
    c = load_text(tmp_path, container("""\
  image: r.local/a:1
  ports: ['[::1]:8443:443/tcp', '127.0.0.1:5353:53/udp']
  restart: on-failure:5
  resources: {memory: 1.5Gi, cpus: 500m, pids: 100}
  stopTimeout: 1m30s
  stopSignal: quit
  capAdd: [net_admin]
  capDrop: [ALL]
  update: {healthTimeout: 90, minReady: 500ms}
""")).containers["web"]
    assert c.ports == (spec.models.PortSpec("::1", 8443, 443, "tcp"), spec.models.PortSpec("127.0.0.1", 5353, 53, "udp"))
    assert c.restart == spec.models.RestartPolicy("on-failure", 5)
    assert c.resources == spec.models.Resources(int(1.5 * 2**30), 0.5, 100)
    assert c.stop_timeout == 90.0
    assert c.stop_signal == "SIGQUIT"
    assert (c.cap_add, c.cap_drop) == (("CAP_NET_ADMIN",), ("ALL",))
    assert (c.update.health_timeout, c.update.min_ready) == (90.0, 0.5)


@pytest.mark.parametrize(("text", "seconds"), [("10s", 10.0), ("1m30s", 90.0), ("500ms", 0.5), ("2h", 7200.0), (3, 3.0)])
def test_parse_duration(text: str | int, seconds: float) -> None:
    assert units.parse_duration(text) == seconds


@pytest.mark.parametrize(("text", "size"), [("256Mi", 256 << 20), ("1G", 10**9), ("512m", 512 << 20), (10**8, 10**8)])
def test_parse_memory(text: str | int, size: int) -> None:
    assert units.parse_memory(text) == size


def test_relative_paths_resolve_against_the_manifest_directory(tmp_path: Path) -> None:
    sub = tmp_path / "apps" / "web"
    sub.mkdir(parents=True)
    (sub / "base.env").write_text("A=from-file\nB=file\n# comment\n\nC=x=y\n")
    (sub / "override.env").write_text("B=second-file\n")
    (sub / "web.toml").write_text("x = 1\n")
    (sub / "m.yaml").write_text(container("""\
  image: r.local/a:1
  envFiles: [base.env, override.env]
  env: {A: manifest, PORT: 8080, DEBUG: false}
  volumes: ['./web.toml:/etc/web.toml:ro', {type: tmpfs, target: /tmp}]
"""))
    c = spec.load(tmp_path).containers["web"]
    assert dict(c.env) == {"A": "manifest", "B": "second-file", "C": "x=y", "DEBUG": "false", "PORT": "8080"}
    assert c.env_files == (str(sub / "base.env"), str(sub / "override.env"))
    assert c.volumes == (
        spec.models.VolumeMount("bind", str(sub / "web.toml"), "/etc/web.toml", True),
        spec.models.VolumeMount("tmpfs", "", "/tmp", False),
    )


def test_image_object_name_resolves_to_its_ref(tmp_path: Path) -> None:
    desired = load_text(tmp_path, container("  image: web\n") + """\
---
apiVersion: reconciler/v1
kind: Image
metadata: {name: web}
spec: {ref: '127.0.0.1:5000/demo/web:2', pull: always, track: true}
""")
    c = desired.containers["web"]
    assert (c.image, c.image_object) == ("127.0.0.1:5000/demo/web:2", "web")


def hash_of(tmp_path: Path, body: str, files: dict[str, str] | None = None, labels: str = "") -> tuple[str, str]:
    for name, content in (files or {}).items():
        (tmp_path / name).write_text(content)
    desired = load_text(tmp_path, container(body, labels=labels) + container("  image: r.local/db:1\n", name="db").join(["---\n", ""]))
    return desired.containers["web"].spec_hash, desired.revision


BASE = "  image: r.local/a:1\n  envFiles: [w.env]\n  volumes: ['./c.toml:/etc/c.toml']\n"


def test_spec_hash_ignores_fields_that_need_no_recreate(tmp_path: Path) -> None:
    files = {"w.env": "A=1\n", "c.toml": "x\n"}
    first, _ = hash_of(tmp_path, BASE, files)
    assert hash_of(tmp_path, BASE + "  dependsOn: [db]\n  update: {order: start-first}\n  drift: report\n", files)[0] == first
    # key order and comments are not content
    reordered = "  volumes: ['./c.toml:/etc/c.toml']   # config\n  envFiles: [w.env]\n  image: r.local/a:1\n"
    assert hash_of(tmp_path, reordered, files)[0] == first


@pytest.mark.parametrize("change", [
    {"body": BASE + "  env: {B: '2'}\n"},
    {"body": BASE.replace("a:1", "a:2")},
    {"body": BASE + "  restart: always\n"},
    {"body": BASE + "  resources: {memory: 64Mi}\n"},
    {"labels": "{tier: front}"},
    {"files": {"w.env": "A=2\n", "c.toml": "x\n"}},
    {"files": {"w.env": "A=1\n", "c.toml": "y\n"}},
])
def test_spec_hash_changes_with_what_runs(tmp_path: Path, change: dict[str, object]) -> None:
    files = {"w.env": "A=1\n", "c.toml": "x\n"}
    first, first_rev = hash_of(tmp_path, BASE, files)
    body = str(change.get("body", BASE))
    changed, rev = hash_of(tmp_path, body, change.get("files", files), str(change.get("labels", "")))  # type: ignore[arg-type]
    assert changed != first
    assert rev != first_rev


def test_directory_loading_skips_dotfiles_temp_files_and_other_extensions(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / ".git").mkdir()
    (tmp_path / "sub" / "a.yml").write_text(MINIMAL)
    broken = "not: [valid"
    for name in (".hidden.yaml", "a.yaml~", ".a.yaml.swp", "#a.yaml#", "notes.txt", "b.yaml.bak", ".git/x.yaml"):
        (tmp_path / name).write_text(broken)
    desired = spec.load(tmp_path)
    assert desired.sources == (str(tmp_path / "sub" / "a.yml"),)
    assert list(desired.containers) == ["web"]


def test_a_single_file_and_an_empty_directory(tmp_path: Path) -> None:
    (tmp_path / "one.yaml").write_text(MINIMAL)
    assert list(spec.load(tmp_path / "one.yaml").containers) == ["web"]
    (tmp_path / "empty").mkdir()
    assert spec.load(tmp_path / "empty").containers == {}


def test_missing_path_is_a_spec_error(tmp_path: Path) -> None:
    with pytest.raises(spec.SpecError) as info:
        spec.load(tmp_path / "nope")
    assert str(info.value.problems[0]) == f"{tmp_path}/nope:0:0: no such file or directory; give a manifest file, a directory or - for stdin"


def test_all_problems_of_all_files_are_reported_sorted(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(container("  image: r.local/a:1\n  restart: never\n"))
    (tmp_path / "b.yaml").write_text(container("  image: r.local/a:1\n  ports: ['1:2:3:4']\n", name="api") + "---\n[1]\n")
    with pytest.raises(spec.SpecError) as info:
        spec.load(tmp_path)
    assert [(Path(p.file).name, p.line, p.field) for p in info.value.problems] == [
        ("a.yaml", 6, "spec.restart"), ("b.yaml", 6, "spec.ports[0]"), ("b.yaml", 8, ""),
    ]
    assert str(info.value).startswith("3 problems in the manifests:\n")


def test_anchors_and_merge_keys_within_budget_work(tmp_path: Path) -> None:
    desired = load_text(tmp_path, """\
apiVersion: reconciler/v1
kind: Container
metadata: {name: web, labels: &labels {tier: front}}
spec:
  image: r.local/a:1
  command: &cmd [/bin/web, --serve]
  args: *cmd
  env: {<<: *labels, B: '2'}
""")
    c = desired.containers["web"]
    assert c.command == c.args == ("/bin/web", "--serve")
    assert dict(c.env) == {"B": "2", "tier": "front"}


def test_a_key_of_its_own_overrides_a_merged_one_and_true_duplicates_are_still_reported(tmp_path: Path) -> None:
    desired = load_text(tmp_path, """\
apiVersion: reconciler/v1
kind: Container
metadata: {name: web, labels: &base {A: '1', B: '1'}}
spec:
  image: r.local/a:1
  env: {<<: *base, B: '2'}
""")
    assert dict(desired.containers["web"].env) == {"A": "1", "B": "2"}
    (tmp_path / "m.yaml").write_text(MINIMAL + "  env: {<<: {A: '1'}, C: '1', C: '2'}\n")
    with pytest.raises(spec.SpecError) as info:
        spec.load(tmp_path)
    assert [p.message for p in info.value.problems] == ["duplicate key 'C'; remove one of them"]


def test_stdin(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "reconciler", "validate", "-"], input=MINIMAL, capture_output=True, text=True,
        check=False, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("valid: 1 container, 0 images, 0 networks, 0 volumes in 1 file (revision ")
    result = subprocess.run(
        [sys.executable, "-m", "reconciler", "validate", "-"], input="kind: Volume\n", capture_output=True, text=True,
        check=False, cwd=tmp_path,
    )
    assert result.returncode == 2
    assert result.stdout.splitlines() == [
        "<stdin>:1:1: Volume/?: apiVersion: required field is missing",
        "<stdin>:1:1: Volume/?: metadata: required field is missing",
    ]


def test_validate_json_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "m.yaml").write_text(MINIMAL)
    assert main(["validate", "-o", "json", str(tmp_path)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["valid"] is True
    assert data["objects"][0]["kind"] == "Container"
    assert data["objects"][0]["name"] == "web"
    assert data["files"] == [str(tmp_path / "m.yaml")]
    (tmp_path / "m.yaml").write_text(MINIMAL.replace("image", "imag"))
    assert main(["validate", "--output", "json", str(tmp_path)]) == 2
    data = json.loads(capsys.readouterr().out)
    assert data["valid"] is False
    assert data["problems"][1] == {
        "file": str(tmp_path / "m.yaml"), "line": 5, "column": 3, "kind": "Container", "name": "web",
        "field": "spec.imag", "message": "unknown field 'imag' (did you mean 'image'?)",
    }


def test_garbage_collector_is_restored_after_loading(tmp_path: Path) -> None:
    import gc

    (tmp_path / "m.yaml").write_text(MINIMAL)
    assert gc.isenabled()
    spec.load(tmp_path)
    assert gc.isenabled()
    (tmp_path / "m.yaml").write_text("kind: Pod\n")
    with pytest.raises(spec.SpecError):
        spec.load(tmp_path)
    assert gc.isenabled()
    gc.disable()
    try:
        (tmp_path / "m.yaml").write_text(MINIMAL)
        spec.load(tmp_path)
        assert not gc.isenabled()       # a caller's choice to keep it off is respected
    finally:
        gc.enable()
