"""Engines side by side: one engine's start-up recovery never touches another's processes or links."""

from __future__ import annotations

import dataclasses
import os
import subprocess
from pathlib import Path

import pytest

from reconciler.cli.main import main
from reconciler.runtime.native.containers import recovery
from tests.helpers.host import Host, native_host

pytestmark = [pytest.mark.root, pytest.mark.registry]


def test_recovery_leaves_a_run_dir_that_shares_its_prefix_alone(tmp_path: Path, busybox_image: str) -> None:
    with native_host(tmp_path / "a") as a, native_host(tmp_path / "b") as b:
        # b's run dir is a's plus a suffix: ".../a/run" and ".../a/run5"
        b.config = dataclasses.replace(b.config, run_dir=Path(str(a.config.run_dir) + "5"))
        args = [x for x in b.cli_args() if x not in ("--runtime", "native")]
        assert main(["run", "-d", "--name", "neighbour", "--network", "none", *args, busybox_image,
                     "sleep", "3600"]) == 0
        rt_b = b.runtime()
        try:
            before = rt_b.inspect_container("neighbour")
            assert before.status.value == "running"
            rt_a = a.runtime()
            try:
                report = recovery.recover(rt_a)
            finally:
                rt_a.close()
            assert report.processes == ()
            assert report.orphans == ()
            after = rt_b.inspect_container("neighbour")
            assert (after.status.value, after.pid) == ("running", before.pid)
        finally:
            rt_b.close()


def test_host_prefix_match_is_a_path_match() -> None:
    assert recovery._names_dir(b"/x/run/exits", b"/x/run")
    assert recovery._names_dir(b"/x/run", b"/x/run")
    assert recovery._names_dir(b"k8s-file:/x/run/c/ctr.log", b"/x/run")
    assert not recovery._names_dir(b"/x/run5/exits", b"/x/run")
    assert not recovery._names_dir(b"--log=/x/run5/y", b"/x/run")


def _run_mine(h: Host, image: str) -> tuple[list[str], int | None]:
    """`mine` running on `h` (made through the CLI); the CLI's engine arguments and its pid."""
    args = [x for x in h.cli_args() if x not in ("--runtime", "native")]
    assert main(["run", "-d", "--name", "mine", "--network", "none", *args, image, "sleep", "3600"]) == 0
    rt = h.runtime()
    try:
        return args, rt.inspect_container("mine").pid
    finally:
        rt.close()


def _assert_mine_runs(h: Host, pid: int | None) -> None:
    rt = h.runtime()
    try:
        state = rt.inspect_container("mine")
        assert (state.status.value, state.pid) == ("running", pid)
    finally:
        rt.close()


def test_a_run_dir_belongs_to_one_state_root(tmp_path: Path, busybox_image: str,
                                             capfd: pytest.CaptureFixture[str]) -> None:
    with native_host(tmp_path / "a") as a:
        args, pid = _run_mine(a, busybox_image)
        capfd.readouterr()
        other = ["--root", str(tmp_path / "other"), "--run-dir", str(a.config.run_dir),
                 "--name-prefix", a.config.name_prefix]
        assert main(["rm", "-f", "nothing", *other]) == 1      # opens the engine (ps on a root with none does not)
        err = capfd.readouterr().err
        assert f"run dir {a.config.run_dir} belongs to state root {a.config.root}" in err
        assert "--run-dir" in err                                   # says what to do
        assert main(["ps", *args[:4], "--name-prefix", "zz9"]) == 1  # the root keeps its prefix
        assert f"prefix {a.config.name_prefix!r}" in capfd.readouterr().err
        _assert_mine_runs(a, pid)                                   # nothing of a's was touched


def test_a_root_alone_gets_a_run_dir_and_prefix_of_its_own(tmp_path: Path) -> None:
    from reconciler.runtime.native.config import DEFAULT_ROOT, derived_locations

    assert derived_locations(DEFAULT_ROOT) == (Path("/run/reconciler"), "rcl")
    run_a, prefix_a = derived_locations(tmp_path / "a")
    run_b, prefix_b = derived_locations(tmp_path / "b")
    assert run_a != run_b
    assert prefix_a != prefix_b
    assert run_a != Path("/run/reconciler")
    assert run_a.parent == Path("/run")
    assert len(prefix_a) <= 5                                       # interface names stay under 15 chars
    try:
        assert main(["rm", "-f", "nothing", "--root", str(tmp_path / "a")]) == 1    # no such container; opened
        assert (run_a / ".state-root").read_text().strip() == str(tmp_path / "a")
        assert (tmp_path / "a" / "name-prefix").read_text().strip() == prefix_a
    finally:
        import shutil

        shutil.rmtree(run_a, ignore_errors=True)


def test_two_roots_with_the_same_network_name_never_disturb_each_other(tmp_path: Path, busybox_image: str) -> None:
    from tests.execution.helpers import write

    with native_host(tmp_path / "a") as a, native_host(tmp_path / "b") as b:
        for h, m in ((a, tmp_path / "ma"), (b, tmp_path / "mb")):
            write(m, "app.yaml", f"""
                apiVersion: reconciler/v1
                kind: Network
                metadata: {{name: app}}
                spec: {{subnet: {h.subnet}}}
                ---
                apiVersion: reconciler/v1
                kind: Container
                metadata: {{name: web}}
                spec:
                  image: {busybox_image}
                  command: [sleep, "3600"]
                  networks: [app]
                """)
            assert h.cli("apply", str(m)) == 0
        rt_a, rt_b = a.runtime(), b.runtime()
        try:
            bridge_a = next(n.bridge for n in rt_a.list_networks() if n.name == "app")
            bridge_b = next(n.bridge for n in rt_b.list_networks() if n.name == "app")
            assert bridge_a != bridge_b                        # each root's own prefix
            assert [n.name for n in rt_a.list_networks()] == ["app"]    # neither lists the other's
            web_b = rt_b.inspect_container("web")
        finally:
            rt_a.close()
            rt_b.close()
        (tmp_path / "ma" / "app.yaml").unlink()                # a prunes all it made
        assert a.cli("apply", str(tmp_path / "ma"), "--allow-empty") == 0
        rt_a, rt_b = a.runtime(), b.runtime()
        try:
            assert rt_a.list_containers() == []
            assert rt_a.list_networks() == []
            after = rt_b.inspect_container("web")
            assert (after.status.value, after.pid) == ("running", web_b.pid)     # b untouched
            assert [n.bridge for n in rt_b.list_networks()] == [bridge_b]
            assert Path(f"/sys/class/net/{bridge_b}").exists()
            assert not Path(f"/sys/class/net/{bridge_a}").exists()
        finally:
            rt_a.close()
            rt_b.close()


def test_a_name_prefix_belongs_to_one_state_root(tmp_path: Path, busybox_image: str,
                                                capfd: pytest.CaptureFixture[str]) -> None:
    """A second root opened with the prefix of a running engine (its own run dir) is refused
    before it makes anything: its recovery would take the first's cgroups for orphans and kill
    its containers, its network recovery delete the first's bridges. Once the first root is
    gone, its claim is stale and the prefix is free."""
    from reconciler.runtime.native.config import PREFIX_CLAIMS

    prefix = ""
    with native_host(tmp_path / "a") as a:
        prefix = a.config.name_prefix
        _, pid = _run_mine(a, busybox_image)
        assert (PREFIX_CLAIMS / prefix).read_text().strip() == str(a.config.root)
        capfd.readouterr()
        other = ["--root", str(tmp_path / "b"), "--run-dir", str(tmp_path / "b-run"), "--name-prefix", prefix]
        assert main(["run", "-d", "--name", "theirs", "--network", "none", *other, busybox_image, "true"]) == 125
        err = capfd.readouterr().err
        assert f"name prefix {prefix!r} belongs to the engine of state root {a.config.root}" in err
        assert "--name-prefix" in err                               # says what to do
        assert not (tmp_path / "b").exists()                       # made nothing
        assert not (tmp_path / "b-run").exists()
        _assert_mine_runs(a, pid)                                   # a's container lives
    import shutil

    shutil.rmtree(tmp_path / "a")                                   # the first root is gone: a stale claim
    with native_host(tmp_path / "b") as b:
        b.config = dataclasses.replace(b.config, name_prefix=prefix)
        assert main(["rm", "-f", "nothing", *[x for x in b.cli_args() if x not in ("--runtime", "native")]]) == 1
        assert "belongs to" not in capfd.readouterr().err           # opened (no such container)
        assert (PREFIX_CLAIMS / prefix).read_text().strip() == str(b.config.root)


def test_an_engine_opens_where_no_prefix_claim_can_be_written(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a writable /run (a chroot) the engine still opens, with a warning, unguarded."""
    from reconciler.runtime.native import config as config_mod

    (tmp_path / "file").write_text("")
    monkeypatch.setattr(config_mod, "PREFIX_CLAIMS", tmp_path / "file" / "claims")
    config = config_mod.NativeConfig(root=tmp_path / "root", run_dir=tmp_path / "run", name_prefix="zz1")
    config.ensure_dirs()
    assert (tmp_path / "root" / "name-prefix").read_text().strip() == "zz1"


def _accepts(bridge: str) -> list[str]:
    """The iptables rules of DOCKER-USER and FORWARD that name `bridge`."""
    found = []
    for chain in ("DOCKER-USER", "FORWARD"):
        out = subprocess.run(["iptables", "-w", "-S", chain], capture_output=True, text=True, check=False).stdout
        found += [line for line in out.splitlines() if bridge in line.split()]
    return found


def _plumbing(h: Host) -> dict[str, object]:
    """The bridge of `h`'s one network, that bridge's ports and its rules, and its container's pid."""
    rt = h.runtime()
    try:
        (net,) = rt.list_networks()
        pid = rt.inspect_container("web").pid
    finally:
        rt.close()
    return {"bridge": net.bridge, "ports": sorted(os.listdir(f"/sys/class/net/{net.bridge}/brif")),
            "rules": _accepts(net.bridge), "pid": pid}


def test_recovery_leaves_the_network_of_a_prefix_that_begins_with_its_own_alone(tmp_path: Path,
                                                                                  busybox_image: str) -> None:
    """Root b's prefix is root a's plus a digit (`rxc`, `rxc2`). a's start-up recovery (its nft
    table flushed, then a `--once`) deleted b's bridge `rxc2-n2`, b's veths `rxc2v...` and b's
    DOCKER-USER accepts for that bridge, as links and rules with its prefix that its records did
    not name: b's ps still said Up, its traffic was cut. And the other way round."""
    from tests.execution.helpers import write

    with native_host(tmp_path / "a") as a, native_host(tmp_path / "b") as b:
        b.config = dataclasses.replace(b.config, name_prefix=a.config.name_prefix + "2")
        for h, net in ((a, "n1"), (b, "n2")):
            write(tmp_path / f"m-{net}", "app.yaml", f"""
                apiVersion: reconciler/v1
                kind: Network
                metadata: {{name: {net}}}
                spec: {{subnet: {h.subnet}}}
                ---
                apiVersion: reconciler/v1
                kind: Container
                metadata: {{name: web}}
                spec:
                  image: {busybox_image}
                  command: [sleep, "3600"]
                  networks: [{net}]
                """)
            assert h.cli("apply", str(tmp_path / f"m-{net}")) == 0
        before = {"a": _plumbing(a), "b": _plumbing(b)}
        assert before["b"]["bridge"] == f"{a.config.name_prefix}2-n2"
        assert before["b"]["rules"]
        assert before["b"]["ports"]
        for first, net in ((a, "n1"), (b, "n2")):
            subprocess.run(["nft", "delete", "table", "ip", first.config.name_prefix], check=True)
            assert first.cli("apply", str(tmp_path / f"m-{net}")) == 0          # recovers: its table is gone
            subprocess.run(["nft", "list", "table", "ip", first.config.name_prefix], capture_output=True,
                           check=True)                                          # made again
            assert {"a": _plumbing(a), "b": _plumbing(b)} == before, f"{first.config.name_prefix}'s recovery"
