"""A named volume whose data directory was deleted outside the native engine (its record kept):
every reading says so, the same way a mount's refusal does (`volumes.lost`): `volume ls` (a
STATUS column, `problem`/`hint` in `-o json`), `volume inspect` and the Engine API (`Status`),
`diff` and `--once` (a failed `volume:NAME` naming what to do, exit 1), `status` after it; and
nothing makes the data directory again, until it is restored (`volume import`, in place) or the
volume is removed, as the hint says."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from reconciler.runtime.docker.backend import DockerRuntime
from tests.api.test_engine_api import docker
from tests.api.test_engine_api import engine_api as engine_api  # the fixture
from tests.execution.helpers import write
from tests.helpers.host import Host

pytestmark = pytest.mark.root

GONE = "data directory gone (deleted outside the engine)"
RESTORE = "restore its data from a backup (`reconcile volume import precious < BACKUP.tar`"
HINT = "remove the volume (`reconcile volume rm precious`)"


def engine(host: Host) -> list[str]:
    """The flags naming the test's engine, for the commands that take no --runtime."""
    return [a for a in host.cli_args() if a not in ("--runtime", "native")]


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    from reconciler.cli.main import main

    capsys.readouterr()
    code = main(argv)
    return code, capsys.readouterr().out


def refused(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    from reconciler.cli.main import main

    capsys.readouterr()
    code = main(argv)
    return code, capsys.readouterr().err


def test_a_volume_whose_data_was_deleted_is_reported_by_every_reading_and_not_made_again(
        host: Host, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(tmp_path / "m", "vol.yaml", """
        apiVersion: reconciler/v1
        kind: Volume
        metadata: {name: precious}
        """)
    m = str(tmp_path / "m")
    assert host.cli("apply", m) == 0
    data = host.config.root / "volumes" / "precious" / "_data"
    (data / "ledger").write_text("1")
    code, out = run(["volume", "ls", *engine(host)], capsys)
    assert (code, out.splitlines()[0].split()) == (0, ["DRIVER", "VOLUME", "NAME"])   # docker's columns alone
    assert run(["diff", m, *host.cli_args()], capsys) == (0, "in sync\n")

    shutil.rmtree(data)                                             # deleted outside the engine

    code, out = run(["volume", "ls", *engine(host)], capsys)
    assert code == 0
    head, row = out.splitlines()
    assert head.split() == ["DRIVER", "VOLUME", "NAME", "STATUS"]
    assert row.split(None, 2) == ["local", "precious", GONE]
    code, out = run(["volume", "ls", "-o", "json", *engine(host)], capsys)
    [doc] = json.loads(out)
    assert (doc["name"], doc["problem"]) == ("precious", GONE)
    assert HINT in doc["hint"]
    code, out = run(["volume", "inspect", "precious", *engine(host)], capsys)
    [doc] = json.loads(out)
    assert doc["Mountpoint"] == str(data)
    assert doc["Status"]["Problem"] == GONE
    assert HINT in doc["Status"]["Hint"]

    code, out = run(["diff", m, *host.cli_args()], capsys)
    assert code == 1                                                # not "in sync"
    assert f"volume:precious, fail, {GONE}: {RESTORE}" in out
    assert HINT in out
    code, out = run(["diff", m, "-o", "json", *host.cli_args()], capsys)
    plan = json.loads(out)
    assert (code, plan["in_sync"]) == (1, False)
    assert [(a["resource"], a["kind"]) for a in plan["actions"]] == [("volume:precious", "fail")]

    code, out = run(["apply", m, *host.cli_args()], capsys)
    assert code == 1                                                # not converged
    assert f"volume:precious   failed    fail      {GONE}: {RESTORE}" in out
    code, out = run(["status", *engine(host)], capsys)
    assert code == 1
    assert "owner default: degraded" in out
    assert f"failed: volume:precious: {GONE}: {RESTORE}" in out
    assert not data.exists()                                        # nothing made it again, empty
    assert data.parent.is_dir()

    # what the hint says: removed, then made empty by the next pass
    assert run(["volume", "rm", "precious", *engine(host)], capsys) == (0, "precious\n")
    assert run(["apply", m, *host.cli_args()], capsys)[0] == 0
    assert data.is_dir()
    assert list(data.iterdir()) == []
    code, out = run(["volume", "ls", *engine(host)], capsys)
    assert out.splitlines()[0].split() == ["DRIVER", "VOLUME", "NAME"]
    assert run(["diff", m, *host.cli_args()], capsys) == (0, "in sync\n")


def test_a_volume_whose_data_was_deleted_is_restored_in_place_from_its_backup(
        host: Host, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The hint's first way: `volume import` puts the backup back as the volume's data, the
    volume and its labels kept, so the manifests' pass finds its own volume in sync (a volume
    imported anew would carry no owner label: a foreign one, refused)."""
    write(tmp_path / "m", "vol.yaml", """
        apiVersion: reconciler/v1
        kind: Volume
        metadata: {name: precious}
        """)
    m = str(tmp_path / "m")
    assert host.cli("apply", m) == 0
    data = host.config.root / "volumes" / "precious" / "_data"
    (data / "ledger").write_text("1")
    backup = tmp_path / "precious.tar"
    assert run(["volume", "export", "precious", "-o", str(backup), *engine(host)], capsys)[0] == 0
    labels = json.loads(run(["volume", "ls", "-o", "json", *engine(host)], capsys)[1])[0]["labels"]
    shutil.rmtree(data.parent)                                      # the volume's whole directory, even

    code, err = refused(["volume", "export", "precious", "-o", str(tmp_path / "again.tar"), *engine(host)], capsys)
    assert (code, err.splitlines()[0]) == (1, f"error: volume precious: {GONE}")
    assert RESTORE in err
    assert run(["volume", "import", "precious", "-i", str(backup), *engine(host)], capsys) == (0, "precious\n")
    assert (data / "ledger").read_text() == "1"
    [doc] = json.loads(run(["volume", "ls", "-o", "json", *engine(host)], capsys)[1])
    assert (doc["labels"], doc["problem"], doc["hint"]) == (labels, None, None)
    assert run(["diff", m, *host.cli_args()], capsys) == (0, "in sync\n")
    code, err = refused(["volume", "import", "precious", "-i", str(backup), *engine(host)], capsys)
    assert (code, err.splitlines()[0]) == (1, "error: volume precious is not empty")    # a second import
    assert not list(data.parent.glob("_import-*"))


@pytest.mark.skipif(shutil.which("docker") is None, reason="needs the docker CLI")
def test_the_engine_api_reports_it_in_the_volumes_status(engine_api: str, host: Host) -> None:
    docker(engine_api, "volume", "create", "precious")
    docker(engine_api, "volume", "create", "fine")
    data = Path(docker(engine_api, "volume", "inspect", "-f", "{{.Mountpoint}}", "precious").stdout.strip())
    shutil.rmtree(data)
    try:
        status = json.loads(docker(engine_api, "volume", "inspect", "-f", "{{json .Status}}", "precious").stdout)
        assert status["Problem"] == GONE
        assert HINT in status["Hint"]
        assert docker(engine_api, "volume", "inspect", "-f", "{{json .Status}}", "fine").stdout.strip() == "null"
        assert sorted(docker(engine_api, "volume", "ls", "-q").stdout.split()) == ["fine", "precious"]
        with DockerRuntime(engine_api) as rt:                        # the reconciler through it sees it too
            seen = {v.name: (v.problem, v.hint) for v in rt.list_volumes()}
        assert seen["fine"] == (None, None)
        assert seen["precious"][0] == GONE
        assert not data.exists()
    finally:
        docker(engine_api, "volume", "rm", "precious", "fine", check=False)


@pytest.mark.registry
def test_a_container_on_a_volume_whose_data_was_deleted_is_left_and_not_replaced(
        host: Host, busybox_image: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The running container keeps running (what it sees is its own); a change of its spec does
    not stop it for a new one that could not mount the volume; the pass fails on the volume."""
    manifest = """
        apiVersion: reconciler/v1
        kind: Volume
        metadata: {{name: precious}}
        ---
        apiVersion: reconciler/v1
        kind: Container
        metadata: {{name: web}}
        spec:
          image: {image}
          command: [sleep, "3600"]
          env: {{V: "{v}"}}
          networks: [none]
          volumes: ["precious:/data"]
        """
    write(tmp_path / "m", "app.yaml", manifest.format(image=busybox_image, v="1"))
    m = str(tmp_path / "m")
    assert host.cli("apply", m) == 0
    before = host.ids()
    data = host.config.root / "volumes" / "precious" / "_data"
    shutil.rmtree(data)

    write(tmp_path / "m", "app.yaml", manifest.format(image=busybox_image, v="2"))
    code, out = run(["diff", m, *host.cli_args()], capsys)
    assert code == 1
    assert f"volume:precious, fail, {GONE}: {RESTORE}" in out
    code, out = run(["apply", m, *host.cli_args()], capsys)
    assert code == 1
    [web] = [line.split()[:2] for line in out.splitlines() if line.startswith("container:web ")]
    assert web == ["container:web", "skipped"], out
    assert host.ids() == before                                    # the same container, not replaced
    code, out = run(["ps", "-o", "json", *engine(host)], capsys)
    assert [(c["name"], c["status"]) for c in json.loads(out)] == [("web", "running")]
    assert not data.exists()
