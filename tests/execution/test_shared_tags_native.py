"""A restricted source may not move a local tag another owner runs (the policy rule sharedTags),
on the native engine through `reconcile apply` (root, a real registry, runc + conmon).

The attack: the host's admin (owner `admin`, policy `host`) runs a container from a local tag
with a host directory bound writable; a source under `restricted` (owner `team`) names the same
tag, in an Image it builds, or in a pull by digest (`repo:1@sha256:...` tags `repo:1`), or in a
pull over the admin's image made on this host. Before, the tag moved, and the admin's next pass
recreated its container from the team's image, under the admin's settings: the team's command
wrote to the host directory. Now the team's pass fails that image with the rule's message naming
the admin's owner and container, and the admin's pass leaves its container alone.
"""

from __future__ import annotations

import secrets
import textwrap
import urllib.request
from pathlib import Path

import pytest

from reconciler.cli.main import main
from tests.execution.helpers import write
from tests.helpers import images
from tests.helpers.host import Host
from tests.helpers.registry import RegistryServer

pytestmark = [pytest.mark.root, pytest.mark.registry, pytest.mark.slow]


def admin_manifests(m: Path, image: str, data: Path, *, image_doc: str = "") -> None:
    """The admin's container: `image` (a reference, or the Image object `image_doc` declares),
    the host directory `data` bound writable, its own /who copied there."""
    write(m, "priv.yaml", textwrap.dedent(image_doc).lstrip() + textwrap.dedent(f"""
        apiVersion: reconciler/v1
        kind: Container
        metadata: {{name: priv}}
        spec:
          image: {image}
          command: [sh, -c, "cp /who /hostdata/who; exec sleep 3600"]
          networks: [none]
          volumes: ['{data}:/hostdata']
        """))


def team_container(m: Path, image: str, *, image_doc: str = "") -> None:
    write(m, "t.yaml", textwrap.dedent(image_doc).lstrip() + textwrap.dedent(f"""
        apiVersion: reconciler/v1
        kind: Container
        metadata: {{name: t}}
        spec:
          image: {image}
          command: [sleep, "3600"]
          networks: [none]
        """))


def native(host: Host, *args: str) -> int:
    """`reconcile build` / `tag` (native engine commands: no --runtime) against `host`'s engine."""
    return main([*args, *host.cli_args()[:-2]])


def apply(host: Host, owner: str, m: Path, capsys: pytest.CaptureFixture[str], *policy: str) -> tuple[int, str]:
    capsys.readouterr()
    code = host.cli("apply", "--owner", owner, *policy, str(m))
    out = capsys.readouterr()
    return code, " ".join((out.out + out.err).split())


def test_a_restricted_source_cannot_build_a_tag_another_owner_runs(
    tmp_path: Path, host: Host, busybox_image: str, capsys: pytest.CaptureFixture[str],
) -> None:
    shared = f"localhost/shared{secrets.token_hex(3)}:1"
    write(tmp_path / "admin-ctx", "Dockerfile", f"FROM {busybox_image}\nRUN echo admin > /who\n")
    assert native(host, "build", "-q", "-t", shared, str(tmp_path / "admin-ctx")) == 0
    data = tmp_path / "admin-data"
    data.mkdir()
    admin = tmp_path / "admin"
    admin_manifests(admin, shared, data)
    assert apply(host, "admin", admin, capsys)[0] == 0
    rt = host.runtime()
    try:
        first, built = rt.inspect_container("priv").id, rt.inspect_image(shared).id

        team = tmp_path / "team"
        image_doc = f"""
            apiVersion: reconciler/v1
            kind: Image
            metadata: {{name: app}}
            spec:
              ref: {shared}
              build: {{context: ./app}}
            ---
            """
        team_container(team, "app", image_doc=image_doc)
        write(team / "app", "Dockerfile", f"FROM {busybox_image}\nRUN echo team > /who\n")
        code, out = apply(host, "team", team, capsys, "--policy", "restricted")
        assert code == 1, out
        assert (f"a build would move the local tag {shared}, which another owner holds (owner 'admin' runs it in "
                "Container/priv): refused by policy 'restricted' (rule sharedTags: false)") in out
        assert "give the Image a ref of its own" in out
        assert rt.inspect_image(shared).id == built               # the tag did not move

        assert apply(host, "admin", admin, capsys)[0] == 0         # the admin's next pass: nothing to do
        assert rt.inspect_container("priv").id == first
        assert (data / "who").read_text() == "admin\n"

        # under a tag of its own, the same source builds and runs its image
        own = f"localhost/team{secrets.token_hex(3)}:1"
        team_container(team, "app", image_doc=image_doc.replace(shared, own))
        assert apply(host, "team", team, capsys, "--policy", "restricted")[0] == 0
        assert rt.exec("t", ["cat", "/who"]).stdout.decode() == "team\n"

        # the admin's own sources may move the team's tag (docker build -t does): host shares tags
        write(tmp_path / "admin2", "img.yaml", f"""
            apiVersion: reconciler/v1
            kind: Image
            metadata: {{name: over}}
            spec:
              ref: {own}
              build: {{context: {tmp_path / "admin-ctx"}}}
            """)
        capsys.readouterr()
        assert host.cli("diff", "--owner", "admin2", str(tmp_path / "admin2")) == 1
        out = capsys.readouterr().out
        assert "build-image" in out
        assert "sharedTags" not in out
    finally:
        rt.close()


def registry_digest(registry: RegistryServer, repo: str, tag: str) -> str:
    req = urllib.request.Request(f"{registry.url}/v2/{repo}/manifests/{tag}", method="HEAD",
                                 headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return str(resp.headers["Docker-Content-Digest"])


def push(tmp: Path, registry: RegistryServer, repo: str, tag: str, who: str) -> str:
    """An image whose /who says `who`, pushed as REGISTRY/repo:tag; its manifest digest."""
    layout = tmp / f"layout-{who}-{tag}"
    images.write_layout(layout, [images.busybox_layer([images.Entry("who", f"{who}\n".encode())])])
    images.push_layout(layout, f"{registry.host}/{repo}:{tag}")
    return registry_digest(registry, repo, tag)


def test_a_restricted_source_cannot_pull_over_a_tag_another_owner_runs(
    tmp_path: Path, host: Host, registry: RegistryServer, capsys: pytest.CaptureFixture[str],
) -> None:
    """By digest: `repo:1@sha256:<another image of the repository>` would tag `repo:1` with the
    image the source chose. Over an image made here: a tag the admin made with `reconcile tag`
    that the registry holds other content under."""
    repo = f"s{secrets.token_hex(3)}/app"
    push(tmp_path, registry, repo, "1", "admin")
    evil = push(tmp_path, registry, repo, "evil", "team")
    data = tmp_path / "admin-data"
    data.mkdir()
    admin = tmp_path / "admin"
    pinned = f"""
        apiVersion: reconciler/v1
        kind: Image
        metadata: {{name: app}}
        spec: {{ref: "{registry.host}/{repo}:1", pull: missing}}
        ---
        """
    admin_manifests(admin, "app", data, image_doc=pinned)
    assert apply(host, "admin", admin, capsys)[0] == 0
    rt = host.runtime()
    try:
        first, pulled = rt.inspect_container("priv").id, rt.inspect_image(f"{registry.host}/{repo}:1").id
        team = tmp_path / "team"
        team_container(team, f"{registry.host}/{repo}:1@{evil}")
        code, out = apply(host, "team", team, capsys, "--policy", "restricted")
        assert code == 1, out
        assert (f"a pull by digest would move the local tag {registry.host}/{repo}:1, which another owner holds "
                "(owner 'admin' pulled it here and runs it in Container/priv): refused by policy 'restricted' "
                "(rule sharedTags: false)") in out
        assert "name the image by its digest alone" in out
        assert rt.inspect_image(f"{registry.host}/{repo}:1").id == pulled
        assert apply(host, "admin", admin, capsys)[0] == 0
        assert rt.inspect_container("priv").id == first
        assert (data / "who").read_text() == "admin\n"

        # a tag the admin made here, which the registry holds the team's image under
        made = f"{registry.host}/{repo}:made"
        assert native(host, "tag", f"{registry.host}/{repo}:1", made) == 0
        push(tmp_path, registry, repo, "made", "team")
        admin_manifests(admin, made, data)
        assert apply(host, "admin", admin, capsys)[0] == 0
        first = rt.inspect_container("priv").id
        always = f"""
            apiVersion: reconciler/v1
            kind: Image
            metadata: {{name: app}}
            spec: {{ref: "{made}", pull: always}}
            ---
            """
        team_container(team, "app", image_doc=always)
        code, out = apply(host, "team", team, capsys, "--policy", "restricted")
        assert code == 1, out
        assert (f"a pull over the image made on this host would move the local tag {made}, which another owner "
                "holds (owner 'admin' runs it in Container/priv)") in out
        assert rt.inspect_image(made).id == pulled
        assert apply(host, "admin", admin, capsys)[0] == 0
        assert rt.inspect_container("priv").id == first
        assert (data / "who").read_text() == "admin\n"
    finally:
        rt.close()
