"""`reconcile lock`: tags resolved once into reconciler.lock; apply runs those digests after the tag moves."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from reconciler import spec
from reconciler.cli.main import main
from reconciler.spec import lock
from tests.execution.helpers import write
from tests.helpers import images
from tests.helpers.host import Host
from tests.helpers.registry import RegistryServer

DIGEST_A = "sha256:" + "a" * 64


def container(m: Path, image: str) -> None:
    write(m, "app.yaml", f"""
        apiVersion: reconciler/v1
        kind: Container
        metadata: {{name: app}}
        spec:
          image: {image}
          command: [sleep, "3600"]
          networks: [none]
        """)


def test_the_lock_file_pins_references_and_counts_in_the_revision(tmp_path: Path) -> None:
    m = tmp_path / "m"
    container(m, "registry.local:5000/shop/web:1")
    before = spec.load(m)
    lock.write(m / lock.LOCK_NAME, {"registry.local:5000/shop/web:1": DIGEST_A})
    after = spec.load(m)
    assert after.containers["app"].image == f"registry.local:5000/shop/web:1@{DIGEST_A}"
    # the pin is the planner's digest comparison, not the spec hash: a lock recreates nothing by itself
    assert after.containers["app"].spec_hash == before.containers["app"].spec_hash
    assert after.revision != before.revision
    assert spec.load(m, use_lock=False).containers["app"].image == "registry.local:5000/shop/web:1"
    assert spec.load(m / "app.yaml").containers["app"].image.endswith(DIGEST_A)   # beside a file too

    (m / lock.LOCK_NAME).write_text("apiVersion: reconciler/v1\nkind: Lock\nimages: {x/y:1: latest}\n")
    with pytest.raises(spec.SpecError, match="sha256:<64 hex>"):
        spec.load(m)


def test_lock_refuses_when_a_reference_does_not_resolve(tmp_path: Path) -> None:
    m = tmp_path / "m"
    container(m, "127.0.0.1:1/nothing/here:1")           # nothing listens on port 1
    assert main(["lock", str(m)]) == 1
    assert not (m / lock.LOCK_NAME).exists()


def push_marker(tmp: Path, ref: str, marker: str) -> str:
    layout = tmp / f"layout-{marker}"
    digest = images.write_layout(layout, [images.busybox_layer([images.Entry("marker", marker.encode())])])
    images.push_layout(layout, ref)
    return digest


@pytest.mark.root
@pytest.mark.registry
def test_apply_uses_the_locked_digest_after_the_tag_moved(
        tmp_path: Path, host: Host, registry: RegistryServer) -> None:
    ref = f"{registry.host}/lock{secrets.token_hex(3)}/app:v1"
    digest_a = push_marker(tmp_path, ref, "A")
    m = tmp_path / "m"
    container(m, ref)
    assert main(["lock", str(m)]) == 0
    assert lock.read(m / lock.LOCK_NAME, []) == {ref: digest_a}
    assert main(["lock", "--check", str(m)]) == 0

    digest_b = push_marker(tmp_path, ref, "B")               # the tag moves
    assert digest_b != digest_a
    assert main(["lock", "--check", str(m)]) == 1            # the lock says so ...
    assert lock.read(m / lock.LOCK_NAME, []) == {ref: digest_a}   # ... and changes nothing

    assert host.cli("apply", str(m)) == 0
    rt = host.runtime()
    try:
        assert rt.exec("app", ["cat", "/marker"]).stdout == b"A"
        first = rt.inspect_container("app").id
    finally:
        rt.close()
    assert host.cli("apply", str(m)) == 0                    # stays on A: nothing to do
    assert host.cli("diff", str(m)) == 0

    assert main(["lock", str(m)]) == 0                       # re-lock: now B
    assert lock.read(m / lock.LOCK_NAME, []) == {ref: digest_b}
    assert host.cli("apply", str(m)) == 0
    rt = host.runtime()
    try:
        assert rt.exec("app", ["cat", "/marker"]).stdout == b"B"
        assert rt.inspect_container("app").id != first
    finally:
        rt.close()


@pytest.mark.root
@pytest.mark.registry
def test_locking_the_digest_that_runs_replaces_nothing(
        tmp_path: Path, host: Host, registry: RegistryServer, capsys: pytest.CaptureFixture[str]) -> None:
    """Writing the lock (or deleting it) is no change on the host while the containers run the
    digests it pins; a lock that pins another digest still replaces them."""
    ref = f"{registry.host}/lock{secrets.token_hex(3)}/app:v1"
    push_marker(tmp_path, ref, "A")
    m = tmp_path / "m"
    container(m, ref)
    assert host.cli("apply", str(m)) == 0
    first = host.ids()["app"]

    assert main(["lock", str(m)]) == 0                       # pins the digest that runs
    capsys.readouterr()
    assert host.cli("diff", str(m)) == 0, capsys.readouterr().out
    assert host.cli("apply", str(m)) == 0
    assert host.ids()["app"] == first

    (m / lock.LOCK_NAME).unlink()                            # follows the tag again: the same digest
    capsys.readouterr()
    assert host.cli("diff", str(m)) == 0, capsys.readouterr().out
    assert host.cli("apply", str(m)) == 0
    assert host.ids()["app"] == first

    digest_b = push_marker(tmp_path, ref, "B")
    lock.write(m / lock.LOCK_NAME, {ref: digest_b})          # pins another digest: replaced
    capsys.readouterr()
    assert host.cli("diff", str(m)) == 1
    out = capsys.readouterr().out
    assert "image digest changed" in out, out
    assert "spec hash changed" not in out, out
    assert host.cli("apply", str(m)) == 0
    assert host.ids()["app"] != first
    rt = host.runtime()
    try:
        assert rt.exec("app", ["cat", "/marker"]).stdout == b"B"
    finally:
        rt.close()
