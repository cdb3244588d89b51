"""A container whose image is a tag built here (no Image object): the local image runs, as docker
and compose run it, and no registry is asked for the tag until it is pushed (native engine,
real builds, a real registry, a loopback server counting connections)."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from reconciler.cli.main import main
from tests.execution.helpers import container_doc, write
from tests.helpers import images as timg
from tests.helpers.host import Host
from tests.helpers.registry import Hangup, RegistryServer
from tests.helpers.registry import hangup as hangup  # the fixture

pytestmark = [pytest.mark.root, pytest.mark.registry]


def native(host: Host, *args: str) -> int:
    """`reconcile build` / `push` (native engine commands: no --runtime) against `host`'s engine."""
    return main([*args, *host.cli_args()[:-2]])


def container(m: Path, ref: str) -> None:
    write(m, "app.yaml", container_doc("app", image=ref, extra="networks: [none]\nstopTimeout: 1s"))


def context(ctx: Path, base: str, msg: str) -> None:
    write(ctx, "Dockerfile", f"""
        FROM {base}
        COPY msg /msg
        CMD ["sh", "-c", "exec sleep 3600"]
        """)
    write(ctx, "msg", msg)


def test_a_tag_built_here_is_not_asked_for_and_a_rebuild_replaces_its_container(
    tmp_path: Path, host: Host, busybox_image: str, hangup: Hangup, capsys: pytest.CaptureFixture[str],
) -> None:
    ref = f"{hangup.host}/app/web:1"         # its registry accepts connections and hangs up
    m, ctx = tmp_path / "m", tmp_path / "ctx"
    context(ctx, busybox_image, "one\n")
    assert native(host, "build", "-t", ref, str(ctx)) == 0
    container(m, ref)
    capsys.readouterr()
    assert host.cli("--once", str(m)) == 0
    err = capsys.readouterr().err
    assert "could not resolve" not in err
    assert hangup.accepted == 0
    rt = host.runtime()
    first = rt.inspect_container("app")
    assert first.status == "running"
    assert first.image_id == rt.inspect_image(ref).id
    assert rt.made_here(ref)

    assert host.cli("--once", str(m)) == 0              # nothing to do, still nothing asked
    assert rt.inspect_container("app").id == first.id

    context(ctx, busybox_image, "two\n")                 # rebuilt under the same tag
    assert native(host, "build", "-t", ref, str(ctx)) == 0
    assert host.cli("--once", str(m)) == 0
    second = rt.inspect_container("app")
    assert second.id != first.id
    assert second.image_id == rt.inspect_image(ref).id != first.image_id
    assert rt.exec("app", ["cat", "/msg"]).stdout == b"two\n"
    assert hangup.accepted == 0
    assert "could not resolve" not in capsys.readouterr().err


def test_once_pushed_the_tag_is_followed_at_its_registry(
    tmp_path: Path, host: Host, busybox_image: str, registry: RegistryServer,
) -> None:
    ref = f"{registry.host}/local{secrets.token_hex(3)}/app:1"
    m, ctx = tmp_path / "m", tmp_path / "ctx"
    context(ctx, busybox_image, "built\n")
    assert native(host, "build", "-t", ref, str(ctx)) == 0
    container(m, ref)
    assert host.cli("--once", str(m)) == 0
    rt = host.runtime()
    built = rt.inspect_container("app")

    # another image is pushed as the tag: the local build is what the manifests mean, it stays
    other = tmp_path / "other"
    timg.write_layout(other, [timg.busybox_layer(), timg.layer_tar([timg.Entry("msg", b"registry\n")])],
                      config={"Cmd": ["sh", "-c", "exec sleep 3600"], "Env": ["PATH=/bin"]})
    timg.push_layout(other, ref)
    assert host.cli("--once", str(m)) == 0
    assert rt.inspect_container("app").id == built.id
    assert rt.exec("app", ["cat", "/msg"]).stdout == b"built\n"

    # pushed from here, the tag is the registry's: when it moves there, the container follows
    assert native(host, "push", ref) == 0
    assert not rt.made_here(ref)
    timg.push_layout(other, ref)
    assert host.cli("--once", str(m)) == 0
    moved = rt.inspect_container("app")
    assert moved.id != built.id
    assert rt.exec("app", ["cat", "/msg"]).stdout == b"registry\n"
