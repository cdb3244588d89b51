"""One directory of manifests, two labelled single hosts (#17): `reconcile apply|diff
--host-label` on two native engines of the test's own (each its own state root, run dir and name
prefix), each converging only the containers whose spec.placement its labels match."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.cli.main import main
from tests.execution.helpers import container_doc, write
from tests.helpers.host import native_host


def fleet(image: str, *, edge: str = "placement: {labels: {role: edge}}") -> str:
    run = 'command: [sleep, "3600"]\nnetworks: [none]\nstopTimeout: 1s'
    return (container_doc("edge", image=image, extra=f"{run}\n{edge}")
            + container_doc("db", image=image, extra=f"{run}\nplacement: {{labels: {{role: db}}}}")
            + container_doc("every", image=image, extra=run))


@pytest.mark.root
@pytest.mark.registry
@pytest.mark.slow
def test_two_labelled_hosts_on_one_directory_each_converge_their_part(
    tmp_path: Path, busybox_image: str, capsys: pytest.CaptureFixture[str],
) -> None:
    m = tmp_path / "m"
    write(m, "fleet.yaml", fleet(busybox_image))
    edge_flags = ["--host-label", "role=edge", "--host-label", "zone=west"]
    with native_host(tmp_path / "a") as a, native_host(tmp_path / "b") as b:
        assert a.cli("apply", str(m), *edge_flags) == 0
        assert "note: 1 object is placed on other hosts (`reconcile diff` names it)" in capsys.readouterr().out
        assert b.cli("apply", str(m), "--host-label", "role=db") == 0
        assert sorted(a.ids()) == ["edge", "every"]
        assert sorted(b.ids()) == ["db", "every"]

        # in sync, and what is for other hosts is named as such, not as missing
        assert a.cli("diff", str(m), *edge_flags) == 0
        out = capsys.readouterr().out
        assert "note: Container/db is not for this host: placed on hosts with role=db; this host has role=edge, " \
               "zone=west" in out
        assert out.strip().endswith("in sync")

        # a placement edit that still selects the host leaves its container as it is
        before = a.ids()
        write(m, "fleet.yaml", fleet(busybox_image, edge='placement: {labels: {role: edge}, '
                                                          'constraints: ["node.labels.zone==west"]}'))
        assert a.cli("apply", str(m), *edge_flags) == 0
        assert a.ids() == before

        # moved to the db hosts: the edge host removes it, the db host runs it; the rest stays put
        write(m, "fleet.yaml", fleet(busybox_image, edge="placement: {labels: {role: db}}"))
        assert a.cli("diff", str(m), *edge_flags) == 1
        assert "container:edge" in capsys.readouterr().out
        assert a.cli("apply", str(m), *edge_flags) == 0
        assert a.ids() == {"every": before["every"]}
        b_every = b.ids()["every"]
        assert b.cli("apply", str(m), "--host-label", "role=db") == 0
        assert sorted(b.ids()) == ["db", "edge", "every"]
        assert b.ids()["every"] == b_every

        # rolled back on the edge host: the revision before, this host's part of it again
        assert a.cli("rollback", *edge_flags) == 0
        assert sorted(a.ids()) == ["edge", "every"]
        assert a.ids()["every"] == before["every"]


def test_host_labels_are_refused_on_a_swarm_and_when_malformed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    m = tmp_path / "m"
    write(m, "web.yaml", container_doc("web"))
    root = str(tmp_path / "root")
    assert main(["apply", str(m), "--root", root, "--runtime", "swarm", "--host-label", "role=edge"]) == 2
    err = capsys.readouterr().err
    assert "--host-label and --all-hosts are for a single host: a Swarm manager places services by its nodes' " \
           "labels" in err
    assert "docker node update --label-add KEY=VALUE NODE" in err
    assert main(["diff", str(m), "--root", root, "--runtime", "fake", "--host-label", "role"]) == 2
    assert "--host-label 'role' is not KEY=VALUE" in capsys.readouterr().err


def test_a_global_container_is_one_container_on_a_single_host(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    from reconciler.runtime.fake import FakeRuntime
    from tests.execution.helpers import fake_root

    m, root = tmp_path / "m", fake_root(tmp_path)
    write(m, "agent.yaml", container_doc("node-agent", extra="replicas: global"))
    assert main(["apply", str(m), "--root", str(root), "--runtime", "fake"]) == 0
    assert [c.name for c in FakeRuntime.at_root(root).list_containers()] == ["node-agent"]
    assert main(["diff", str(m), "--root", str(root), "--runtime", "fake"]) == 0


def test_an_apply_without_the_labels_the_host_converged_with_is_refused_and_says_how_to_go_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    from reconciler.runtime.fake import FakeRuntime
    from tests.execution.helpers import IMG, fake_root

    m, root = tmp_path / "m", fake_root(tmp_path)
    write(m, "fleet.yaml", fleet(IMG))

    def apply(*flags: str) -> int:
        return main(["apply", str(m), "--root", str(root), "--runtime", "fake", *flags])

    def names() -> list[str]:
        return sorted(c.name for c in FakeRuntime.at_root(root).list_containers())

    assert apply("--host-label", "role=edge") == 0
    write(m, "fleet.yaml", fleet(IMG, edge="placement: {labels: {role: edge}}\nenv: {A: '1'}"))
    assert apply("--host-label", "role=edge") == 0                  # (a revision to roll back from)
    assert names() == ["edge", "every"]
    capsys.readouterr()

    # without its labels (or with others): refused, nothing removed, the ways out named
    for flags in ((), ("--host-label", "role=db"), ("--dry-run",)):
        assert apply(*flags) == 2
        err = capsys.readouterr().err
        assert "this host converged with --host-label role=edge last time" in err
        assert "run again with --host-label role=edge; or --all-hosts" in err
        assert "or --relabel to make these the host's labels from now on" in err
        assert names() == ["edge", "every"]
    assert main(["rollback", "--root", str(root), "--runtime", "fake"]) == 2
    assert "this host converged with --host-label role=edge last time" in capsys.readouterr().err

    # every container whatever its placement; the recorded labels stay
    assert apply("--all-hosts") == 0
    assert names() == ["db", "edge", "every"]
    assert apply("--host-label", "role=edge") == 0
    assert names() == ["edge", "every"]

    # --relabel: the host's labels change (none: the record goes, as for a host never labelled)
    assert apply("--relabel", "--host-label", "role=db") == 0
    assert names() == ["db", "every"]
    assert apply() == 2
    assert apply("--relabel") == 0
    assert names() == ["every"]
    assert apply() == 0
    assert apply("--host-label", "role=edge") == 0                  # a host never labelled takes its first labels
    assert names() == ["edge", "every"]


def test_labels_are_checked_and_recorded_under_the_store_lock(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    """An apply or rollback refused because another pass holds the root neither checks nor
    records labels: the labels a pass checks are the ones it converges with (no window between
    the check and the lock in which another pass could relabel the host)."""
    from reconciler.execution import locking
    from reconciler.state import hostlabels
    from tests.execution.helpers import IMG, fake_root

    m, root = tmp_path / "m", fake_root(tmp_path)
    write(m, "fleet.yaml", fleet(IMG))
    flags = ["--root", str(root), "--runtime", "fake"]
    assert main(["apply", str(m), *flags, "--host-label", "role=edge"]) == 0
    write(m, "fleet.yaml", fleet(IMG, edge="placement: {labels: {role: edge}}\nenv: {A: '1'}"))
    assert main(["apply", str(m), *flags, "--host-label", "role=edge"]) == 0    # (a revision to roll back to)
    assert hostlabels.recorded(root) == {"role": "edge"}
    capsys.readouterr()

    with locking.store_lock(root):                   # another pass (or an agent) holds the root
        assert main(["apply", str(m), *flags, "--relabel", "--host-label", "role=db"]) != 0
        assert "reconcile.lock" in capsys.readouterr().err
        assert hostlabels.recorded(root) == {"role": "edge"}          # the refused run recorded nothing
        assert main(["rollback", *flags, "--relabel", "--host-label", "role=db"]) != 0
        assert "reconcile.lock" in capsys.readouterr().err
        assert hostlabels.recorded(root) == {"role": "edge"}
