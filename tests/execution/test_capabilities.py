"""What an engine can do beyond the Runtime protocol is asked with isinstance against the small
protocols of runtime.base; a pass uses what is there and says what is missing.

The fake engine renames (start-first updates: test_executor.py) but does not build; the native
engine runs supervision loops, which a session drives (boot at engine start, healthchecks).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from reconciler.execution import backends
from reconciler.runtime import base
from reconciler.runtime.native.backend import NativeRuntime
from tests.execution.helpers import container_doc, fake_cli, fake_root, write
from tests.runtime.conftest import cleanup, leftovers, make_native


def test_an_engine_that_cannot_build_fails_the_build_and_skips_its_users(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    m = tmp_path / "m"
    write(m / "ctx", "Dockerfile", "FROM scratch\n")
    write(m, "app.yaml", "apiVersion: reconciler/v1\nkind: Image\nmetadata: {name: app}\n"
          "spec: {ref: '127.0.0.1:5000/app:1', build: {context: ./ctx}}\n" + container_doc("web", image="app"))
    root = fake_root(tmp_path)
    assert fake_cli(root, "apply", str(m)) == 1
    out = capsys.readouterr().out
    assert "this runtime cannot build images; build and push it" in out
    assert "dependency #1 failed" in out                    # web is skipped, not created


def _down_and_checked(rt: NativeRuntime, image: str) -> None:
    """`always`: restart always, stopped as a reboot leaves it; `checked`: running, with a
    healthcheck that only a loop runs."""
    rt.create_container(base.ContainerConfig(
        name="always", image=image, command=("sleep", "1000"), networks=("none",),
        restart=base.RestartPolicy("always")))
    rt.start_container("always")
    rt.stop_container("always", timeout=0)                 # down, as after a reboot
    rt.start_container(rt.create_container(base.ContainerConfig(
        name="checked", image=image, command=("sleep", "1000"), networks=("none",),
        healthcheck=base.Healthcheck(test=("CMD", "true"), interval=0.1, timeout=5))))


@pytest.mark.root
def test_a_session_on_a_supervised_engine_boots_it_and_runs_its_loops(tmp_path: Path) -> None:
    rt, image = make_native(tmp_path)
    try:
        _down_and_checked(rt, image)
        with backends.session(NativeRuntime(rt.config, images=rt.images), poll=0.05) as session:
            assert session.inspect_container("always").status == base.ContainerStatus.RUNNING
            deadline = time.monotonic() + 30
            while session.inspect_container("checked").health != "healthy":   # only the loop checks
                assert time.monotonic() < deadline, "the healthcheck loop did not run"
                time.sleep(0.05)
    finally:
        cleanup(rt)
        left = leftovers(rt.config)
        rt.close()
    assert left == []


def _loops() -> set[str]:
    return {t.name for t in threading.enumerate() if t.name.startswith("reconcile-")}


@pytest.mark.root
def test_a_lazy_session_boots_at_once_and_supervises_from_its_first_action(tmp_path: Path) -> None:
    """`reconcile --once` opens a lazy session: a pass with nothing to do runs no loop (#21),
    the executor's on_start starts them before the first action, and they stop with it."""
    rt, image = make_native(tmp_path)
    try:
        _down_and_checked(rt, image)
        assert _loops() == set()
        lazy = backends.session(NativeRuntime(rt.config, images=rt.images), poll=0.05, lazy=True)
        with lazy as session:
            assert session.inspect_container("always").status == base.ContainerStatus.RUNNING   # booted
            time.sleep(0.5)
            assert _loops() == set()
            assert session.inspect_container("checked").health != "healthy"    # no loop probed it
            lazy.supervise()
            lazy.supervise()                                   # once: a second call starts nothing
            assert _loops() == {"reconcile-health_checker", "reconcile-restart_manager"}
            assert len([t for t in threading.enumerate() if t.name.startswith("reconcile-")]) == 2
            deadline = time.monotonic() + 30
            while session.inspect_container("checked").health != "healthy":
                assert time.monotonic() < deadline, "the healthcheck loop did not run"
                time.sleep(0.05)
        assert _loops() == set()
    finally:
        cleanup(rt)
        left = leftovers(rt.config)
        rt.close()
    assert left == []


def test_what_a_docker_engine_cannot_build_is_refused_when_loading_naming_the_field(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """`--runtime docker` builds through the Engine API's build endpoint, which has no build
    session: secrets, SSH agents and insecure steps are refused by validate (and apply, diff,
    the agent) before anything runs, each naming its field; the same manifest is valid for the
    native engine, and a build without them for both."""
    from reconciler.cli.main import main

    monkeypatch.setenv("TOKEN", "t")
    monkeypatch.delenv("RECONCILER_RUNTIME", raising=False)
    m = tmp_path / "m"
    write(m / "ctx", "Dockerfile", "FROM scratch\n")
    write(m, "app.yaml", "apiVersion: reconciler/v1\nkind: Image\nmetadata: {name: app}\n"
          "spec:\n  ref: '127.0.0.1:5000/app:1'\n  build:\n    context: ./ctx\n"
          "    secrets: [{id: token, env: TOKEN}]\n    allow: [security.insecure]\n")
    assert main(["validate", str(m), "--runtime", "docker"]) == 2
    out = capsys.readouterr().out.splitlines()
    assert [line.split(": ", 3)[1:3] for line in out] == [["Image/app", "spec.build.secrets"],
                                                          ["Image/app", "spec.build.allow"]]
    assert "--runtime docker builds through the engine's build endpoint, which has no build session" in out[0]
    assert main(["validate", str(m), "--runtime", "native"]) == 0
    write(m, "app.yaml", "apiVersion: reconciler/v1\nkind: Image\nmetadata: {name: app}\n"
          "spec: {ref: '127.0.0.1:5000/app:1', build: {context: ./ctx, args: {A: b}}}\n")
    assert main(["validate", str(m), "--runtime", "docker"]) == 0
