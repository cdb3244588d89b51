"""An Image with `build:` and `push:` on `--runtime docker`, on the host's dockerd and on the
session's podman service (`engine`): the engine builds it from the context reconciler sends (as
the docker CLI sends it: what .dockerignore keeps), a change of its inputs (a build arg, a file
kept) rebuilds it and replaces its containers in the same pass, a change of a file left out
does not, and each push target gets each build once, with the credentials reconciler has for
its registry; diff says in sync only when all of that holds."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.cli.main import main
from reconciler.registry_client import Credential, CredentialStore, RegistryClient, references
from tests.docker.conftest import PASSWORD, USER, Engine, Scope, docker_config
from tests.docker.test_registry_passes import apply, manifest, on_engine, push_private
from tests.helpers.registry import RegistryServer

pytestmark = [pytest.mark.docker, pytest.mark.registry, pytest.mark.root]

DOCKERFILE = """\
FROM {base}
ARG V=unset
COPY . /ctx/
RUN echo "$V" > /v
CMD ["sleep", "1000"]
"""


def pushed_digest(registry: RegistryServer, ref: str) -> str:
    """The digest the registry (which wants credentials) has for `ref` now."""
    store = CredentialStore(static={registry.host: Credential(USER, PASSWORD)})
    with RegistryClient(credentials=store) as client:
        return str(client.resolve(references.parse(ref)).digest)


def run(engine: Engine, name: str, *argv: str) -> str:
    done = engine.rt.exec(name, list(argv))
    assert done.exit_code == 0, done
    return done.stdout.decode()


def diff(where: Path, root: Path, owner: str) -> int:
    return main(["diff", str(where), "--root", str(root), "--runtime", "docker", "--owner", owner])


def test_an_image_is_built_by_the_engine_rebuilt_when_its_inputs_change_and_pushed_once_each(
        engine: Engine, auth_registry: RegistryServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    on_engine(engine, monkeypatch)
    monkeypatch.setenv("DOCKER_CONFIG", str(docker_config(tmp_path / "cfg", auth_registry)))
    s: Scope = engine.scope
    ref, dest = f"localhost/{s.prefix}/app:1", f"{auth_registry.host}/{s.prefix}/app:1"
    s.images += [ref, dest]
    name = s.name("containers", "app")
    m, root = tmp_path / "m", tmp_path / "root"
    ctx = m / "ctx"
    ctx.mkdir(parents=True)
    (ctx / "Dockerfile").write_text(DOCKERFILE.format(base=engine.image.ref))
    (ctx / ".dockerignore").write_text("notes.txt\n")
    (ctx / "app.txt").write_text("v1\n")
    (ctx / "notes.txt").write_text("left out\n")

    def image_doc(arg: str) -> str:
        return (f"apiVersion: reconciler/v1\nkind: Image\nmetadata: {{name: app}}\nspec:\n  ref: {ref}\n"
                f"  build: {{context: ./ctx, args: {{V: {arg}}}}}\n  push: ['{dest}']\n---\n")

    manifest(m, name, "app", image_doc=image_doc("one"))
    assert diff(m, root, s.prefix) == 1
    plan = capsys.readouterr().out
    assert f"image:{ref}, build-image, not built yet" in plan
    assert f"image:{ref}, push-image, push to {dest}" in plan
    assert apply(m, root, s.prefix, "--settle", "0") == 0, capsys.readouterr()
    assert run(engine, name, "cat", "/v") == "one\n"
    assert sorted(run(engine, name, "ls", "-a", "/ctx").split()) == [".", "..", ".dockerignore", "Dockerfile", "app.txt"]
    first = pushed_digest(auth_registry, dest)
    image = engine.rt.inspect_container(name).image_id
    s.images.append(image)          # each build: a rebuild leaves the one before untagged

    capsys.readouterr()
    (ctx / "notes.txt").write_text("edited, still left out\n")
    assert diff(m, root, s.prefix) == 0, capsys.readouterr()    # nothing to build, nothing to push
    assert capsys.readouterr().out.strip() == "in sync"

    manifest(m, name, "app", image_doc=image_doc("two"))
    assert diff(m, root, s.prefix) == 1
    plan = capsys.readouterr().out
    assert f"image:{ref}, build-image, build inputs changed" in plan
    assert f"container:{name}, create, image rebuilt" in plan
    assert apply(m, root, s.prefix, "--settle", "0") == 0, capsys.readouterr()
    assert run(engine, name, "cat", "/v") == "two\n"          # replaced in the same pass
    assert engine.rt.inspect_container(name).image_id != image
    s.images.append(engine.rt.inspect_container(name).image_id)
    assert pushed_digest(auth_registry, dest) != first
    capsys.readouterr()
    assert diff(m, root, s.prefix) == 0

    (ctx / "app.txt").write_text("v2\n")                      # a file the build takes
    assert apply(m, root, s.prefix, "--settle", "0") == 0, capsys.readouterr()
    assert run(engine, name, "cat", "/ctx/app.txt") == "v2\n"
    s.images.append(engine.rt.inspect_container(name).image_id)


def test_a_build_the_engine_fails_leaves_the_container_running(
        engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    on_engine(engine, monkeypatch)
    s: Scope = engine.scope
    ref = f"localhost/{s.prefix}/fails:1"
    s.images.append(ref)
    name = s.name("containers", "fails")
    m, root = tmp_path / "m", tmp_path / "root"
    (m / "ctx").mkdir(parents=True)
    dockerfile = m / "ctx" / "Dockerfile"
    dockerfile.write_text(f"FROM {engine.image.ref}\nRUN true\n")
    image_doc = (f"apiVersion: reconciler/v1\nkind: Image\nmetadata: {{name: app}}\n"
                 f"spec: {{ref: '{ref}', build: {{context: ./ctx}}}}\n---\n")
    manifest(m, name, "app", image_doc=image_doc)
    assert apply(m, root, s.prefix, "--settle", "0") == 0, capsys.readouterr()
    running = engine.rt.inspect_container(name)
    s.images.append(running.image_id)
    dockerfile.write_text(f"FROM {engine.image.ref}\nRUN exit 3\n")
    capsys.readouterr()
    assert apply(m, root, s.prefix, "--settle", "0") == 1
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith(f"image:{ref}"))
    assert row.split()[1] == "failed"
    assert "RUN exit 3" in row, out
    assert engine.rt.inspect_container(name).id == running.id
    assert engine.rt.inspect_container(name).status == "running"


def test_a_build_pulls_its_base_from_a_registry_that_wants_credentials_with_the_ones_found(
        engine: Engine, auth_registry: RegistryServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """The engine pulls a FROM image it lacks with the credentials reconciler has for its
    registry (X-Registry-Config), as `docker build` sends the CLI's."""
    on_engine(engine, monkeypatch)
    monkeypatch.setenv("DOCKER_CONFIG", str(docker_config(tmp_path / "cfg", auth_registry)))
    s: Scope = engine.scope
    base = f"{auth_registry.host}/{s.prefix}/base:1"
    push_private(auth_registry, tmp_path / "layout", base)
    ref = f"localhost/{s.prefix}/on-private:1"
    s.images += [base, ref]
    name = s.name("containers", "on-private")
    m = tmp_path / "m"
    (m / "ctx").mkdir(parents=True)
    (m / "ctx" / "Dockerfile").write_text(f"FROM {base} AS base\nFROM base\nCMD [\"sleep\", \"1000\"]\n")
    image_doc = (f"apiVersion: reconciler/v1\nkind: Image\nmetadata: {{name: app}}\n"
                 f"spec: {{ref: '{ref}', build: {{context: ./ctx}}}}\n---\n")
    manifest(m, name, "app", image_doc=image_doc)
    assert apply(m, tmp_path / "root", s.prefix, "--settle", "0") == 0, capsys.readouterr()
    assert run(engine, name, "cat", "/unique") == "layout"
    s.images.append(engine.rt.inspect_container(name).image_id)
