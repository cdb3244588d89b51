"""`reconcile volume create` and `volume prune`, as a user types them, on a native engine of the
test's own (its root, run dir and prefix): docker's words and rules (docker 23+: a prune takes
anonymous volumes only, unless --all), the engine's own rules of drivers and of what is in use."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler import printing
from reconciler.runtime import base
from reconciler.runtime.native.backend import NativeRuntime
from tests.runtime.conftest import cleanup, leftovers, make_native

pytestmark = [pytest.mark.root]

ASK_ANONYMOUS = ("WARNING! This will remove anonymous local volumes not used by at least one container.\n"
                 "Are you sure you want to continue? [y/N] ")
ASK_ALL = ("WARNING! This will remove all local volumes not used by at least one container.\n"
           "Are you sure you want to continue? [y/N] ")


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[NativeRuntime]:
    rt, _ = make_native(tmp_path)
    try:
        yield rt
    finally:
        cleanup(rt)
        for v in rt.list_volumes():
            rt.remove_volume(v.name)
        left = leftovers(rt.config)
        rt.close()
        assert left == [], left


def _volume(engine: NativeRuntime, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
            *args: str, stdin: str = "") -> tuple[int, str, str]:
    """`reconcile volume ARGS` on `engine`'s root in this process: exit code, stdout, stderr."""
    from reconciler.cli.main import main

    cfg = engine.config
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    capsys.readouterr()
    code = main(["volume", *args, "--root", str(cfg.root), "--run-dir", str(cfg.run_dir),
                 "--name-prefix", cfg.name_prefix])
    out, err = capsys.readouterr()
    return code, out, err


def _names(engine: NativeRuntime) -> list[str]:
    return sorted(v.name for v in engine.list_volumes())


def test_create_makes_named_anonymous_and_bound_volumes_and_refuses_other_drivers(
        engine: NativeRuntime, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """`volume create NAME --label K=V` prints the name; without a name, a random one labelled
    anonymous (as dockerd 23+); `-o type=none -o o=bind -o device=DIR` binds that directory; a
    name taken keeps its volume as it is; another driver, or options the local driver does not
    take, are refused (exit 2) naming the flags, nothing made."""
    def volume(*args: str) -> tuple[int, str, str]:
        return _volume(engine, capsys, monkeypatch, *args)

    assert volume("create", "--label", "team=a", "--label", "bare", "data")[:2] == (0, "data\n")
    code, out, _ = volume("inspect", "data")
    assert code == 0
    assert json.loads(out)[0]["Labels"] == {"team": "a", "bare": ""}
    assert volume("create", "--label", "team=b", "data")[:2] == (0, "data\n")      # kept as it is
    assert json.loads(volume("inspect", "data")[1])[0]["Labels"] == {"team": "a", "bare": ""}

    code, out, _ = volume("create")
    name = out.strip()
    assert code == 0
    assert len(name) == 64
    assert int(name, 16) >= 0
    assert json.loads(volume("inspect", name)[1])[0]["Labels"] == {base.ANONYMOUS_VOLUME_LABEL: ""}

    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "kept").write_text("1")
    code, out, err = volume("create", "-d", "local", "-o", "type=none", "-o", "o=bind", "-o", f"device={shared}",
                            "bound")
    assert (code, out) == (0, "bound\n"), err
    mountpoint = Path(json.loads(volume("inspect", "bound")[1])[0]["Mountpoint"])
    assert (mountpoint / "kept").read_text() == "1"

    for args in (("-d", "nfs", "x"), ("-o", "type=tmpfs", "-o", "device=tmpfs", "x")):
        code, out, err = volume("create", *args)
        assert (code, out) == (2, ""), args
        assert err.startswith("error: volume x: "), err
        assert "--driver and --opt" in err, err
        assert "hint: " in err, err
    assert _names(engine) == sorted(["bound", "data", name])


def test_prune_removes_unused_anonymous_volumes_and_with_all_every_unused_one(
        engine: NativeRuntime, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """`volume prune` asks first (another answer: nothing removed, exit 0), then removes the
    anonymous volumes no container mounts and keeps named ones (docker 23+), printing `Deleted
    Volumes:` and `Total reclaimed space:`; `--filter label=...` selects; `-a` takes the named
    ones too (a bound directory's content stays); a volume a container mounts is never taken,
    even a stopped one's; `until` is refused, as dockerd's volume prune refuses it (exit 2)."""
    def volume(*args: str, stdin: str = "") -> tuple[int, str, str]:
        return _volume(engine, capsys, monkeypatch, *args, stdin=stdin)

    anonymous = {base.ANONYMOUS_VOLUME_LABEL: ""}
    engine.ensure_volume(base.VolumeConfig("anon-free", labels=anonymous))
    engine.ensure_volume(base.VolumeConfig("anon-used", labels=anonymous))
    engine.ensure_volume(base.VolumeConfig("named", labels={"tier": "old"}))
    engine.ensure_volume(base.VolumeConfig("used"))
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "kept").write_text("1")
    engine.ensure_volume(base.VolumeConfig("bound", driver_opts={"type": "none", "o": "bind", "device": str(shared)}))
    free = Path(engine.list_volumes({base.ANONYMOUS_VOLUME_LABEL: ""})[0].mountpoint)
    (free / "data").write_bytes(b"x" * 5000)
    # its data's size as the engine counts it (`system df`), in docker's units
    size = printing.human_size(next(n for v, n, _ in engine.disk_usage().volumes if v.name == "anon-free"), 4)
    engine.create_container(base.ContainerConfig(
        name="user", image="test/busybox:latest", command=("true",), networks=("none",),
        mounts=(base.Mount("volume", "/a", "anon-used"), base.Mount("volume", "/u", "used"))))

    assert volume("prune", stdin="n\n") == (0, ASK_ANONYMOUS, "")
    assert _names(engine) == ["anon-free", "anon-used", "bound", "named", "used"]
    code, out, _ = volume("prune", stdin="y\n")
    assert (code, out) == (0, ASK_ANONYMOUS + f"Deleted Volumes:\nanon-free\n\nTotal reclaimed space: {size}\n")
    assert _names(engine) == ["anon-used", "bound", "named", "used"]
    assert volume("prune", "-f") == (0, "Total reclaimed space: 0B\n", "")

    code, out, err = volume("prune", "-f", "--filter", "until=1h")
    assert (code, out) == (2, "")
    assert "invalid filter 'until=1h'" in err
    assert "label=K[=V] or label!=K[=V]" in err
    assert volume("prune", "-a", "-f", "--filter", "label=tier=old")[:2] == (
        0, "Deleted Volumes:\nnamed\n\nTotal reclaimed space: 0B\n")
    assert volume("prune", "--all", stdin="y\n")[:2] == (
        0, ASK_ALL + "Deleted Volumes:\nbound\n\nTotal reclaimed space: 0B\n")
    assert _names(engine) == ["anon-used", "used"]
    assert (shared / "kept").read_text() == "1"
