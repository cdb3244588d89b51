"""What `--once` calls converged, on the native engine (root, a real registry, runc + conmon):
a failed job, an image's HEALTHCHECK, a renamed container (named back). Each seen as a user sees it, through
the CLI and the engine's own records."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from reconciler import spec
from reconciler.cli.main import main
from reconciler.execution import passes
from tests.execution.helpers import write
from tests.helpers import images
from tests.helpers.host import Host
from tests.helpers.registry import RegistryServer
from tests.runtime.test_conformance import eventually

pytestmark = [pytest.mark.root, pytest.mark.registry, pytest.mark.slow]


def job_and_app(m: Path, image: str, shared: Path, *, fix: str = "") -> None:
    """`migrate`, a job that exits 3 until /shared/fixed exists; `app`, which depends on it."""
    write(m, "c.yaml", f"""
        apiVersion: reconciler/v1
        kind: Container
        metadata: {{name: migrate}}
        spec:
          image: "{image}"
          command: [sh, -c, "{fix}test -f /shared/fixed || exit 3"]
          volumes: ["{shared}:/shared"]
          job: true
          restart: "no"
          networks: [none]
        ---
        apiVersion: reconciler/v1
        kind: Container
        metadata: {{name: app}}
        spec: {{image: "{image}", command: [sleep, "600"], dependsOn: [migrate], networks: [none]}}
        """)


def test_a_failed_job_is_a_failure_until_it_runs_again_and_exits_0(
        host: Host, busybox_image: str, tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    m, shared = tmp_path / "m", tmp_path / "shared"
    shared.mkdir()
    job_and_app(m, busybox_image, shared)
    assert host.cli("apply", str(m)) == 1
    capfd.readouterr()
    assert host.cli("apply", str(m)) == 1                  # the next pass: still failed, app not started
    out = capfd.readouterr()
    assert "container:migrate   failed    fail           job failed: exited (code 3)" in out.out, out
    assert set(host.ids()) == {"migrate"}
    assert host.cli("diff", str(m)) == 1
    assert "in sync" not in capfd.readouterr().out
    assert main(["status", "--root", str(host.config.root)]) == 1      # no agent: the last pass
    assert "degraded" in capfd.readouterr().out

    (shared / "fixed").touch()                             # the database put right, the job run again
    assert host.cli("start", "migrate") == 0
    rt = host.runtime()
    try:
        eventually(lambda: str(rt.inspect_container("migrate").status) == "exited")
        assert rt.inspect_container("migrate").exit_code == 0
    finally:
        rt.close()
    assert host.cli("apply", str(m)) == 0
    assert set(host.ids()) == {"migrate", "app"}

    (shared / "fixed").unlink()                            # a change of its spec runs it again
    job_and_app(m, busybox_image, shared, fix="true; ")
    assert host.cli("apply", str(m)) == 1
    assert host.cli("apply", str(m)) == 1
    job_and_app(m, busybox_image, shared, fix="touch /shared/fixed; ")
    assert host.cli("apply", str(m)) == 0
    rt = host.runtime()
    try:
        assert rt.inspect_container("migrate").exit_code == 0
        assert str(rt.inspect_container("app").status) == "running"
    finally:
        rt.close()


def healthchecked_image(registry: RegistryServer, tmp_path: Path, name: str, test: list[str], retries: int) -> str:
    """busybox with `HEALTHCHECK` `test`, every 0.2 s, unhealthy after `retries` failures."""
    layout = tmp_path / f"{name}-layout"
    images.write_layout(layout, [images.busybox_layer()], config={
        "Cmd": ["/bin/sh"], "Env": ["PATH=/bin"],
        "Healthcheck": {"Test": test, "Interval": 200_000_000, "Timeout": 2_000_000_000, "Retries": retries}})
    ref = f"{registry.host}/converged/{name}:1"
    images.push_layout(layout, ref)
    return ref


def test_an_images_healthcheck_counts_for_the_verdict_and_for_dependsOn(
        host: Host, busybox_image: str, registry: RegistryServer, tmp_path: Path,
        capfd: pytest.CaptureFixture[str]) -> None:
    sick = healthchecked_image(registry, tmp_path, "sick", ["CMD", "false"], 1)
    m = tmp_path / "m"
    write(m, "c.yaml", f"""
        apiVersion: reconciler/v1
        kind: Container
        metadata: {{name: sick}}
        spec: {{image: "{sick}", command: [sleep, "600"], restart: always, networks: [none]}}
        """)
    capfd.readouterr()
    assert host.cli("apply", str(m)) == 1
    assert "sick is unhealthy" in capfd.readouterr().out
    assert host.cli("apply", str(m)) == 1                  # nothing to do, and still not converged
    assert "container sick is not running as desired: running but unhealthy" in capfd.readouterr().err
    # diff says the same: not in sync, though no action would change it (it said "in sync", exit 0)
    assert host.cli("diff", str(m)) == 1
    out = capfd.readouterr().out
    assert "container sick is not running as desired: running but unhealthy" in out
    assert out.splitlines()[-1] == "drift: 0 actions, 1 container not running as desired"
    assert host.cli("diff", str(m), "-o", "json") == 1
    doc = json.loads(capfd.readouterr().out)
    assert (doc["in_sync"], doc["actions"], doc["unready"]) == (False, [], {"sick": "running but unhealthy"})
    (m / "c.yaml").unlink()
    assert host.cli("apply", str(m), "--allow-empty") == 0

    ready = healthchecked_image(registry, tmp_path, "ready", ["CMD", "test", "-f", "/tmp/ready"], 50)
    shared = tmp_path / "shared"
    shared.mkdir()
    write(m, "c.yaml", f"""
        apiVersion: reconciler/v1
        kind: Container
        metadata: {{name: db}}
        spec:
          image: "{ready}"
          command: [sh, -c, "sleep 1; touch /tmp/ready /shared/ready; sleep 600"]
          volumes: ["{shared}:/shared"]
          networks: [none]
        ---
        apiVersion: reconciler/v1
        kind: Container
        metadata: {{name: web}}
        spec:
          image: "{busybox_image}"
          command: [sh, -c, "if test -f /shared/ready; then echo ok; else echo early; fi > /shared/seen; sleep 600"]
          volumes: ["{shared}:/shared"]
          dependsOn: [db]
          networks: [none]
        """)
    assert host.cli("apply", str(m)) == 0
    assert (shared / "seen").read_text() == "ok\n"         # web started once db was healthy


def test_a_container_a_failed_pass_made_is_the_owners_and_pruned_with_its_manifest(
        host: Host, registry: RegistryServer, tmp_path: Path) -> None:
    """A pass that made a container and then failed (it never became healthy) keeps it in the
    owner's inventory: removing its manifest, the natural undo, removes it (it was left running,
    "carries our owner label but is not in the inventory", while the pass said converged)."""
    sick = healthchecked_image(registry, tmp_path, "sick", ["CMD", "false"], 1)
    m = tmp_path / "m"
    write(m, "c.yaml", f"""
        apiVersion: reconciler/v1
        kind: Container
        metadata: {{name: sick}}
        spec: {{image: "{sick}", command: [sleep, "600"], networks: [none]}}
        """)
    assert host.cli("apply", str(m)) == 1
    assert "sick" in host.ids()
    (m / "c.yaml").unlink()
    assert host.cli("apply", str(m), "--allow-empty") == 0
    assert "sick" not in host.ids()


@pytest.mark.parametrize("restart", ["on-failure:3", "always"])
def test_a_crash_loop_is_never_converged_and_on_failure_gives_up_across_passes(
        host: Host, busybox_image: str, tmp_path: Path, restart: str, capfd: pytest.CaptureFixture[str]) -> None:
    """A container that exits a moment after each start is not converged, in whichever pass:
    the one that made it (restarted by its policy during the settle, and caught running between
    two exits), and each later `--once` (its engine start ran it again; the pass waits the settle
    for it as for its own starts: it reported "nothing to do", exit 0). Each of those engine
    starts counts a restart: `on-failure:3` gives up after three (it retried without end)."""
    m = tmp_path / "m"
    write(m, "c.yaml", f"""
        apiVersion: reconciler/v1
        kind: Container
        metadata: {{name: loop}}
        spec: {{image: "{busybox_image}", command: [sh, -c, "sleep 0.3; exit 1"], restart: "{restart}",
                networks: [none]}}
        """)
    capfd.readouterr()
    for _ in range(5):
        assert host.cli("apply", str(m)) == 1
        time.sleep(0.5)                                     # it exits meanwhile, with no engine watching
    assert "not running as desired" in capfd.readouterr().err
    if restart == "on-failure:3":
        rt = host.runtime()
        try:
            eventually(lambda: str(rt.inspect_container("loop").status) == "exited")
            assert rt.inspect_container("loop").restart_count == 3
        finally:
            rt.close()


def test_an_images_volume_keeps_its_data_through_a_replacement(
        host: Host, registry: RegistryServer, tmp_path: Path) -> None:
    """A VOLUME of the image that the manifest mounts nothing at gets a volume named from the
    container and the target, as a manifest's anonymous volume: the replacement (an env change)
    mounts the same data, as compose's recreate keeps it (the engine's own would be new and empty
    each time; before, the data was in the writable layer and went with the container)."""
    import tarfile

    from reconciler.spec.building import anonymous_name

    layout = tmp_path / "vol-layout"
    images.write_layout(layout, [images.busybox_layer([images.Entry("data", type=tarfile.DIRTYPE, mode=0o755)])],
                        config={"Cmd": ["/bin/sh"], "Env": ["PATH=/bin"], "Volumes": {"/data": {}}})
    ref = f"{registry.host}/converged/db:1"
    images.push_layout(layout, ref)
    m = tmp_path / "m"
    for run in ("1", "2"):
        write(m, "c.yaml", f"""
            apiVersion: reconciler/v1
            kind: Container
            metadata: {{name: db}}
            spec:
              image: "{ref}"
              command: [sh, -c, "echo run $RUN >> /data/runs; sleep 600"]
              env: {{RUN: "{run}"}}
              networks: [none]
            """)
        assert host.cli("apply", str(m)) == 0
    rt = host.runtime()
    try:
        volume = anonymous_name("db", "/data")
        assert (rt.containers.volumes.data_dir(volume) / "runs").read_text() == "run 1\nrun 2\n"
        assert [mt.source for mt in rt.containers.get("db").config.mounts] == [volume]
    finally:
        rt.close()


def test_a_container_renamed_by_hand_is_named_back_not_run_twice(
        host: Host, busybox_image: str, tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    """Renamed through the Engine API (`web` -> `web-x`, its labels kept), the container is still
    the object `web`: the next pass names it back (the same container, not a second copy beside
    it), and the verdict is about it: a crash of it is down."""
    m = tmp_path / "m"
    write(m, "c.yaml", f"""
        apiVersion: reconciler/v1
        kind: Container
        metadata: {{name: web}}
        spec: {{image: "{busybox_image}", command: [sleep, "600"], restart: always, networks: [none]}}
        """)
    assert host.cli("apply", str(m)) == 0
    first = host.ids()["web"]
    rt = host.runtime()
    try:
        rt.rename_container("web", "web-x")                 # keeps its labels, `web` among them
    finally:
        rt.close()
    capfd.readouterr()
    assert host.cli("apply", str(m)) == 0
    assert "container:web   configured   rename" in capfd.readouterr().out
    assert host.ids() == {"web": first}                     # named back: one container, the same
    rt = host.runtime()
    try:
        pid = rt.inspect_container("web").pid
        assert pid
        os.kill(pid, signal.SIGKILL)                        # it crashed (not a stop by hand)
        eventually(lambda: str(rt.inspect_container("web").status) == "exited")
        down = passes.unready(spec.load(m), rt.list_containers({"reconciler.owner": "default"}))
        assert down == {"web": "exited (exit code 137) but its restart policy is always"}
    finally:
        rt.close()
    assert host.cli("apply", str(m)) == 0                  # started again
