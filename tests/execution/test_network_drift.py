"""A container's place on its networks is observed: one found off a network its spec names (not
attached, attached without one of its aliases) is drift that `diff` shows with its cause, that a
pass connects again (or replaces, where the engine cannot connect it), and that the verdict does
not call converged while it lasts. On the fake engine here; on dockerd in
tests/docker/test_network_drift.py, on the native engine in tests/native/network/test_network_drift.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reconciler import spec
from reconciler.runtime import base
from reconciler.runtime.fake import FakeRuntime
from reconciler.state import labels
from tests.execution.helpers import IMG, fake_cli, fake_root, write

MANIFESTS = f"""
    apiVersion: reconciler/v1
    kind: Network
    metadata: {{name: shop}}
    spec: {{}}
    ---
    apiVersion: reconciler/v1
    kind: Container
    metadata: {{name: api}}
    spec: {{image: {IMG}, networks: [shop], aliases: [api-alias], restart: always}}
    ---
    apiVersion: reconciler/v1
    kind: Container
    metadata: {{name: client}}
    spec: {{image: {IMG}, networks: [shop], restart: always}}
    """


def state(networks: dict[str, str] | None, aliases: dict[str, tuple[str, ...]] | None = None,
          status: str = "running") -> base.ContainerState:
    return base.ContainerState(id="c1", name="api", image=IMG, image_id="sha256:x",
                               labels={labels.NAME: "api", labels.OWNER: "default"},
                               status=base.ContainerStatus(status), created="", started_at="2026-12-01T00:00:00Z",
                               exit_code=None if status == "running" else 0, networks=networks, aliases=aliases or {})


@pytest.mark.parametrize(("observed", "reason"), [
    (state({"shop": "n1"}, {"shop": ("api-alias", "c1")}), None),
    (state({}), "running but not attached to network shop"),
    (state({"shop": "n1"}, {"shop": ("c1",)}), "running but on network shop without alias api-alias"),
    (state(None), None),                            # the engine cannot tell (Swarm): not judged by it
    (state({}, status="exited"), None),             # stopped as its policy says: it reaches no one anyway
])
def test_converged_is_not_claimed_for_a_container_off_its_network(
        tmp_path: Path, observed: base.ContainerState, reason: str | None) -> None:
    from reconciler.execution import passes

    write(tmp_path / "m", "m.yaml", MANIFESTS.replace("restart: always}", "restart: on-failure}", 1))
    d = spec.load(tmp_path / "m")
    down = passes.unready(d, [observed])
    assert down.get("api") == reason


def test_diff_shows_a_disconnected_container_and_a_pass_connects_it_again(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = fake_root(tmp_path)
    m = tmp_path / "m"
    write(m, "m.yaml", MANIFESTS)
    assert fake_cli(root, "apply", str(m)) == 0
    fake = FakeRuntime.at_root(root)
    before = {c.name: c.id for c in fake.list_containers()}
    fake.disconnect_container("api", "shop")
    capsys.readouterr()

    assert fake_cli(root, "diff", str(m)) == 1
    assert "container:api, connect, not attached to network shop" in capsys.readouterr().out

    assert fake_cli(root, "apply", str(m), "-o", "json") == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["result"], out["counts"]) == ("converged", {"connected": 1})
    fake = FakeRuntime.at_root(root)
    after = {c.name: c for c in fake.list_containers()}
    assert {n: c.id for n, c in after.items()} == before                 # the same containers
    assert (after["api"].networks, after["api"].aliases) == ({"shop": ""}, {"shop": ("api-alias",)})
    assert fake_cli(root, "diff", str(m)) == 0


def test_a_network_removed_under_its_containers_is_made_again_and_they_are_connected_to_it(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = fake_root(tmp_path)
    m = tmp_path / "m"
    write(m, "m.yaml", MANIFESTS)
    assert fake_cli(root, "apply", str(m)) == 0
    fake = FakeRuntime.at_root(root)
    for name in ("api", "client"):
        fake.disconnect_container(name, "shop")
    fake.remove_network("shop")
    capsys.readouterr()
    assert fake_cli(root, "apply", str(m), "-o", "json") == 0
    out = json.loads(capsys.readouterr().out)
    assert out["counts"] == {"connected": 2, "created": 1}
    assert [a["cause"] for c in out["changes"] for a in c["actions"]] == [
        "not found", "not attached to network shop", "not attached to network shop"]
    fake = FakeRuntime.at_root(root)
    assert {c.name: c.networks for c in fake.list_containers()} == {"api": {"shop": ""}, "client": {"shop": ""}}


def test_an_alias_lost_by_a_connect_without_it_is_given_back(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = fake_root(tmp_path)
    m = tmp_path / "m"
    write(m, "m.yaml", MANIFESTS)
    assert fake_cli(root, "apply", str(m)) == 0
    fake = FakeRuntime.at_root(root)
    fake.disconnect_container("api", "shop")
    fake.connect_container("api", "shop", base.ContainerConfig(name="api", image=IMG))     # `docker network connect` bare
    capsys.readouterr()
    assert fake_cli(root, "diff", str(m)) == 1
    assert "container:api, reconnect, on network shop without alias api-alias" in capsys.readouterr().out
    assert fake_cli(root, "apply", str(m)) == 0
    assert FakeRuntime.at_root(root).inspect_container("api").aliases == {"shop": ("api-alias",)}


def test_an_engine_that_cannot_connect_replaces_the_container(tmp_path: Path) -> None:
    """Without base.Connecting the container off its network is made again, on it."""
    from reconciler._sqlite import Database
    from reconciler.execution import passes

    class NoConnect(FakeRuntime):
        connects = frozenset[str]()

    rt = NoConnect(tmp_path / "fake.json")
    rt.publish(IMG)
    write(tmp_path / "m", "m.yaml", MANIFESTS)
    d = spec.load(tmp_path / "m")
    db = Database(tmp_path / "state.db")
    try:
        assert passes.run_pass(d, rt, db, passes.PassOptions()).result == "converged"
        old = rt.inspect_container("api").id
        rt.disconnect_container("api", "shop")
        again = passes.run_pass(d, rt, db, passes.PassOptions())
        assert [(str(a.kind), a.cause) for a in again.plan.actions] == [
            (kind, "not attached to network shop") for kind in ("stop", "remove", "create", "start")]
        assert again.result == "converged"
        now = rt.inspect_container("api")
        assert (now.id != old, now.networks) == (True, {"shop": ""})
    finally:
        db.close()


def test_the_state_says_where_a_fake_container_is(tmp_path: Path) -> None:
    """The fake reports the networks its containers are on, as the engines do."""
    rt = FakeRuntime()
    rt.publish(IMG)
    rt.pull_image(IMG)
    rt.ensure_network(base.NetworkConfig(name="shop"))
    rt.create_container(base.ContainerConfig(name="api", image=IMG, networks=("shop",), aliases=("a",)))
    st = rt.inspect_container("api")
    assert (st.networks, st.aliases) == ({"shop": ""}, {"shop": ("a",)})
    rt.disconnect_container("api", "shop")
    st = rt.inspect_container("api")
    assert (st.networks, st.aliases) == ({}, {})
