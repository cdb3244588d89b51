"""`--runtime` on the container commands (#15): they open the engine through runtime.opening and
act through the Runtime protocol; here on the fake engine (no root), whose state is a file under
--root that the commands read and write back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reconciler.cli.main import main
from reconciler.runtime import base
from reconciler.runtime.fake import FakeRuntime


@pytest.fixture
def fake_root(tmp_path: Path) -> Path:
    """A fake engine's root holding `web` (running, labelled) and `job` (created)."""
    rt = FakeRuntime.at_root(tmp_path)
    rt.publish("example.test/app:1")
    rt.pull_image("example.test/app:1")
    rt.start_container(rt.create_container(base.ContainerConfig(name="web", image="example.test/app:1",
                                                                labels={"tier": "front"})))
    rt.create_container(base.ContainerConfig(name="job", image="example.test/app:1"))
    rt.close()
    return tmp_path


def reconcile(root: Path, *argv: str) -> int:
    return main([argv[0], "--runtime", "fake", "--root", str(root), *argv[1:]])


def test_ps_start_stop_and_rm_act_on_the_engine_runtime_names(
        fake_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert reconcile(fake_root, "ps", "-a", "-o", "json") == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["name"], r["status"]) for r in sorted(rows, key=lambda r: r["name"])] == \
        [("job", "created"), ("web", "running")]
    assert sorted(rows[0]) == ["command", "created", "exit_code", "finished_at", "health", "health_probed_at",
                               "health_stale", "id", "image", "labels", "mounts", "name", "networks", "ports",
                               "restart_count", "started_at", "status", "status_text"]
    assert reconcile(fake_root, "ps", "--filter", "label=tier=front") == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["CONTAINER", "ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"]
    assert [line.split()[-1] for line in table[1:]] == ["web"]

    assert reconcile(fake_root, "start", "job") == 0
    assert reconcile(fake_root, "stop", "web") == 0
    assert reconcile(fake_root, "rm", "web", "nosuch") == 1          # web goes, nosuch is said
    out, err = capsys.readouterr()
    assert out.split() == ["job", "web", "web"]
    assert "nosuch" in err
    states = {c.name: str(c.status) for c in FakeRuntime.at_root(fake_root).list_containers()}
    assert states == {"job": "running"}                               # written back to the engine's file
    assert not (fake_root / "state.db").exists()                      # no native engine made


def test_logs_and_images_read_the_engine_runtime_names(fake_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert reconcile(fake_root, "logs", "web") == 0                   # the fake keeps no output
    assert capsys.readouterr().out == ""
    assert reconcile(fake_root, "logs", "nosuch") == 1
    assert "nosuch" in capsys.readouterr().err
    assert reconcile(fake_root, "images", "-o", "json") == 0
    assert [f"{i['repository']}:{i['tag']}" for i in json.loads(capsys.readouterr().out)] == ["example.test/app:1"]


def test_restart_kill_wait_rename_and_port_on_the_fake_engine(fake_root: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    """The fake engine has no one-step restart (base.Restarting): `restart` stops and starts it."""
    assert reconcile(fake_root, "restart", "web", "job") == 0
    assert reconcile(fake_root, "kill", "web") == 0
    assert reconcile(fake_root, "wait", "web") == 0
    assert reconcile(fake_root, "rename", "web", "front") == 0
    assert reconcile(fake_root, "port", "front") == 0
    assert capsys.readouterr().out.split() == ["web", "job", "web", "137"]
    states = {c.name: (str(c.status), c.exit_code) for c in FakeRuntime.at_root(fake_root).list_containers()}
    assert states == {"front": ("exited", 137), "job": ("running", None)}


@pytest.mark.parametrize(("argv", "hint"), [
    (("run", "example.test/app:1", "true"), "runs no process"),
    (("exec", "web", "true"), "runs no process"),
    (("attach", "web"), "runs no process"),
    (("inspect", "web"), "reconcile ps -o json"),
    (("top", "web"), "runs no process"),
    (("stats", "--no-stream", "web"), "runs no process"),
    (("cp", "web:/etc/hosts", "."), "keeps no files"),
])
def test_what_the_fake_cannot_do_is_refused_naming_command_and_engine(
        fake_root: Path, capsys: pytest.CaptureFixture[str], argv: tuple[str, ...], hint: str) -> None:
    assert reconcile(fake_root, *argv) == (125 if argv[0] == "run" else 2)      # run's own failure: docker run's
    err = capsys.readouterr().err
    assert f"reconcile {argv[0]} does not work with --runtime fake" in err
    assert hint in err


@pytest.mark.parametrize(("argv", "said", "hint"), [
    (("attach", "--runtime", "docker", "web"), "reconcile attach does not work with --runtime docker",
     "`docker attach`"),
    (("start", "-a", "--runtime", "docker", "web"), "reconcile start -a does not work with --runtime docker",
     "`docker start -a`"),
    (("start", "-ai", "--runtime", "fake", "web"), "reconcile start -a does not work with --runtime fake",
     "runs no process"),
])
def test_attach_on_another_engine_is_refused_naming_its_client(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: tuple[str, ...], said: str, hint: str) -> None:
    """The docker engine's own client attaches to its containers (as `run -it` names it): refused,
    exit 2, before any engine is opened."""
    assert main([*argv, "--root", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert said in err
    assert hint in err


def test_ps_size_on_the_fake_engine_is_what_it_keeps(fake_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`ps -s` (and .Size) on the fake engine: no files of a container's own (0B), its image's
    size as the virtual one, as docker prints them; it was refused ("does not measure")."""
    assert reconcile(fake_root, "ps", "-a", "-s") == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[-2:] == ["NAMES", "SIZE"]
    assert sorted(line.split("  ")[-1].strip() for line in table[1:]) == ["0B (virtual 1.02kB)"] * 2
    assert reconcile(fake_root, "ps", "-s", "-o", "json") == 0
    assert [(r["name"], r["size_rw"], r["size_root_fs"]) for r in json.loads(capsys.readouterr().out)] == \
        [("web", 0, 1024)]
    assert reconcile(fake_root, "ps", "--format", "{{.Names}} {{.Size}}") == 0
    assert capsys.readouterr().out == "web 0B (virtual 1.02kB)\n"


def test_image_history_on_the_fake_engine_is_refused_saying_where(
        fake_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["image", "history", "--runtime", "fake", "--root", str(fake_root), "example.test/app:1"]) == 2
    err = capsys.readouterr().err
    assert "reconcile image history does not work with --runtime fake" in err
    assert "use --runtime native or docker" in err
