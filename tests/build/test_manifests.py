"""Images with build: in manifests: built when their context changes, used by the containers
that name them, pushed to their push: targets (reconcile apply/diff on the native engine)."""

from __future__ import annotations

import secrets
import urllib.request
from pathlib import Path

import pytest

from tests.execution.helpers import write
from tests.helpers.host import Host
from tests.helpers.registry import RegistryServer

pytestmark = [pytest.mark.root, pytest.mark.registry]


def manifests(m: Path, base: str, pushed: str) -> None:
    write(m, "app.yaml", f"""
        apiVersion: reconciler/v1
        kind: Image
        metadata: {{name: app}}
        spec:
          build:
            context: ./app
            args: {{WHO: manifests}}
          push: ["{pushed}"]
        ---
        apiVersion: reconciler/v1
        kind: Container
        metadata: {{name: app}}
        spec:
          image: app
          networks: [none]
        """)
    write(m / "app", "Dockerfile", f"""
        FROM {base}
        ARG WHO
        RUN echo "built by $WHO" > /who
        COPY msg /msg
        CMD ["sh", "-c", "exec sleep 3600"]
        """)
    write(m / "app", ".dockerignore", "*.tmp\n")


def registry_digest(registry: RegistryServer, ref: str) -> str:
    name, _, tag = ref.partition("/")[2].rpartition(":")
    req = urllib.request.Request(f"{registry.url}/v2/{name}/manifests/{tag}", method="HEAD",
                                 headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return str(resp.headers["Docker-Content-Digest"])


def test_build_in_manifests_rebuilds_on_context_change_and_pushes(
    tmp_path: Path, host: Host, busybox_image: str, registry: RegistryServer, capsys: pytest.CaptureFixture[str],
) -> None:
    m = tmp_path / "m"
    pushed = f"{registry.host}/m{secrets.token_hex(3)}/app:v1"
    manifests(m, busybox_image, pushed)
    write(m / "app", "msg", "one\n")
    assert host.cli("apply", str(m)) == 0
    rt = host.runtime()
    first = rt.inspect_container("app")
    assert first.status == "running"
    assert rt.exec("app", ["cat", "/who", "/msg"]).stdout.decode().split("\n")[:2] == ["built by manifests", "one"]
    image = rt.inspect_image("localhost/app:latest")
    assert first.image_id == image.id
    assert registry_digest(registry, pushed) == image.digest

    capsys.readouterr()
    assert host.cli("diff", str(m)) == 0                 # nothing changed: no build is due
    (m / "app" / "scratch.tmp").write_text("ignored")    # .dockerignore'd: still nothing
    assert host.cli("diff", str(m)) == 0
    assert host.cli("apply", str(m)) == 0
    assert rt.inspect_container("app").id == first.id

    write(m / "app", "msg", "two\n")                     # the context changed
    assert host.cli("diff", str(m)) == 1
    out = capsys.readouterr().out
    assert "build-image" in out
    assert "build inputs changed" in out
    assert host.cli("apply", str(m)) == 0
    second = rt.inspect_container("app")
    assert second.id != first.id
    assert second.status == "running"
    assert rt.exec("app", ["cat", "/msg"]).stdout.decode().strip() == "two"
    rebuilt = rt.inspect_image("localhost/app:latest")
    assert rebuilt.id != image.id
    assert registry_digest(registry, pushed) == rebuilt.digest
    assert host.cli("diff", str(m)) == 0


def test_a_failing_build_leaves_the_running_container(
    tmp_path: Path, host: Host, busybox_image: str, registry: RegistryServer,
) -> None:
    m = tmp_path / "m"
    manifests(m, busybox_image, f"{registry.host}/m{secrets.token_hex(3)}/app:v1")
    write(m / "app", "msg", "one\n")
    assert host.cli("apply", str(m)) == 0
    before = host.runtime().inspect_container("app")
    dockerfile = m / "app" / "Dockerfile"
    dockerfile.write_text(dockerfile.read_text() + "RUN exit 9\n")
    assert host.cli("apply", str(m)) == 1
    after = host.runtime().inspect_container("app")
    assert (after.id, after.status) == (before.id, "running")
    assert after.labels["reconciler.spec-hash"] == before.labels["reconciler.spec-hash"]
    # the failed RUN's container is not kept (docker build's --force-rm): an agent retrying a
    # broken build every pass would pile one up each time
    assert host.cli("apply", str(m)) == 1
    assert [c.name for c in host.runtime().list_containers()] == ["app"]


def test_a_rebuild_that_makes_the_same_image_keeps_the_container(
    tmp_path: Path, host: Host, busybox_image: str, registry: RegistryServer, capsys: pytest.CaptureFixture[str],
) -> None:
    """A context edit the image does not take (a file no step copies: in a compose project, the
    compose file itself or .env) is a build input: the build runs (from its cache) and makes the
    image the container runs, which is then kept, as compose recreates only for a new image id.
    A converged pass, no settle owed for it."""
    m = tmp_path / "m"
    manifests(m, busybox_image, f"{registry.host}/m{secrets.token_hex(3)}/app:v1")
    write(m / "app", "msg", "one\n")
    assert host.cli("apply", str(m)) == 0
    rt = host.runtime()
    first = rt.inspect_container("app")

    write(m / "app", "notes.txt", "no step copies me\n")
    capsys.readouterr()
    assert host.cli("apply", str(m)) == 0
    out = capsys.readouterr().out
    assert "build inputs changed" in out
    assert "kept" in out
    assert rt.inspect_container("app").id == first.id
    assert host.cli("diff", str(m)) == 0                 # the build recorded: nothing due

    write(m / "app", "msg", "two\n")                     # an input the image takes: replaced
    assert host.cli("apply", str(m)) == 0
    assert rt.inspect_container("app").id != first.id
    assert rt.exec("app", ["cat", "/msg"]).stdout.decode().strip() == "two"
