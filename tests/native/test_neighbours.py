"""Engines side by side: one engine's start-up recovery never touches another's processes."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from reconciler.cli.main import main
from reconciler.runtime.native import recovery
from tests.helpers.host import native_host

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
