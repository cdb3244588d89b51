"""Passes of `reconcile apply --runtime docker` that talk to registries, on the host's dockerd and
on the session's podman service (`engine`): the credentials reconciler finds for a registry reach
the engine with its pulls and digest lookups (X-Registry-Auth), as the docker CLI sends them."""

from __future__ import annotations

import contextlib
import sqlite3
import subprocess
from pathlib import Path

import pytest

from reconciler.cli.main import main
from tests.docker.conftest import PASSWORD, USER, Engine, Scope, docker_config, push_busybox
from tests.helpers import images as timg
from tests.helpers.registry import RegistryServer

pytestmark = [pytest.mark.docker, pytest.mark.registry, pytest.mark.root]

def push_private(registry: RegistryServer, layout: Path, ref: str) -> str:
    """Push a one-of-a-kind busybox image to `ref` in the registry that wants credentials; its digest."""
    digest = timg.write_layout(layout, [timg.busybox_layer(), timg.layer_tar([timg.Entry("unique", layout.name.encode())])],
                               config={"Cmd": ["/bin/sh"], "Env": ["PATH=/bin"]})
    subprocess.run(["skopeo", "copy", "--quiet", "--dest-tls-verify=false", "--dest-creds", f"{USER}:{PASSWORD}",
                    f"oci:{layout}:latest", f"docker://{ref}"], check=True, capture_output=True)
    return digest


def on_engine(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """`--runtime docker` talks to `engine` (the host's dockerd, or the podman service)."""
    monkeypatch.setenv("DOCKER_HOST", f"unix://{engine.rt.api.socket_path}")


def manifest(where: Path, name: str, image: str, *, image_doc: str = "") -> Path:
    where.mkdir(exist_ok=True)
    (where / "m.yaml").write_text(image_doc + f"""
apiVersion: reconciler/v1
kind: Container
metadata: {{name: {name}}}
spec:
  image: {image}
  command: ["sleep", "1000"]
  stopSignal: SIGKILL
""")
    return where


def apply(where: Path, root: Path, owner: str, *extra: str) -> int:
    return main(["apply", str(where), "--root", str(root), "--runtime", "docker", "--owner", owner, *extra])


def test_a_pass_pulls_from_a_registry_that_wants_credentials_with_the_ones_found(
        engine: Engine, auth_registry: RegistryServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    on_engine(engine, monkeypatch)
    s: Scope = engine.scope
    ref = f"{auth_registry.host}/{s.prefix}/priv:1"
    push_private(auth_registry, tmp_path / "layout", ref)
    s.images.append(ref)
    name = s.name("containers", "priv")
    where = manifest(tmp_path / "m", name, ref)
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "nobody"))       # no credentials: refused, saying why
    assert apply(where, tmp_path / "root", s.prefix) == 1
    out = capsys.readouterr()
    # the engine's own login, which writes where reconciler reads: `podman login` on Podman
    assert f"reconciler found no credentials for {auth_registry.host}: `{engine.kind} login {auth_registry.host}`" \
        in out.out + out.err

    monkeypatch.setenv("DOCKER_CONFIG", str(docker_config(tmp_path / "cfg", auth_registry)))
    assert apply(where, tmp_path / "root", s.prefix) == 0, capsys.readouterr()
    # the digest asked with the same credentials (Podman has no /distribution: reconciler asks the registry)
    assert "could not resolve" not in capsys.readouterr().err
    running = engine.rt.inspect_container(name)
    assert running.status == "running"
    assert running.image_id == engine.rt.inspect_image(ref).id


def forget_digests(root: Path) -> None:
    """Drop the tag digests a pass cached (trusted 5 minutes): the next pass asks the registry."""
    with contextlib.closing(sqlite3.connect(root / "state.db")) as db, db:
        db.execute("DELETE FROM inv_digests")


@pytest.mark.parametrize("policy", ["", "pull: always, track: true"])
def test_a_tag_moved_in_the_registry_is_noticed_and_run(
        engine: Engine, registry: RegistryServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], policy: str) -> None:
    """The registry's digest of a followed tag (no Image object, or one that follows it) is asked
    each pass: by the engine (dockerd's /distribution), or, where the engine has no such endpoint
    (Podman 4.3), by reconciler's own registry client; a tag moved there is pulled and its
    containers replaced in the same pass."""
    on_engine(engine, monkeypatch)
    s: Scope = engine.scope
    ref, first = push_busybox(registry, tmp_path / "v1", f"{s.prefix}/moving", unique=True)
    s.images.append(ref)
    name = s.name("containers", "moving")
    image_doc = f"apiVersion: reconciler/v1\nkind: Image\nmetadata: {{name: app}}\nspec: {{ref: '{ref}', {policy}}}\n---\n"
    where = manifest(tmp_path / "m", name, "app" if policy else ref, image_doc=image_doc if policy else "")
    root = tmp_path / "root"
    assert apply(where, root, s.prefix, "--settle", "0") == 0, capsys.readouterr()
    assert engine.rt.resolve_digest(ref) == first
    s.images.append(engine.rt.inspect_container(name).image_id)     # untagged once the tag moves here
    _, second = push_busybox(registry, tmp_path / "v2", f"{s.prefix}/moving", unique=True)
    assert engine.rt.resolve_digest(ref) == second
    forget_digests(root)
    capsys.readouterr()
    assert main(["diff", str(where), "--root", str(root), "--runtime", "docker", "--owner", s.prefix]) == 1
    out = capsys.readouterr()
    assert f"pull-image, tag moved: {first[:19]} -> {second[:19]}" in out.out, out
    assert f"container:{name}, create, image digest changed" in out.out
    assert "could not resolve" not in out.err
    assert apply(where, root, s.prefix, "--settle", "0") == 0, capsys.readouterr()
    now = engine.rt.inspect_container(name)
    assert now.image_id == engine.rt.inspect_image(ref).id
    assert now.labels["reconciler.image-digest"] == second
