"""Pure parts of the native container engine: user resolution, argv/env rules, capabilities,
signal names, k8s-file log reassembly and --since parsing."""

from __future__ import annotations

import signal
from datetime import UTC, datetime
from pathlib import Path

import pytest

from reconciler.runtime import base
from reconciler.runtime import errors as rterrors
from reconciler.runtime.native import openat2
from reconciler.runtime.native.containers import bundle, logs, records


def rootfs(tmp_path: Path, passwd: str, group: str = "") -> Path:
    (tmp_path / "etc").mkdir(parents=True, exist_ok=True)
    (tmp_path / "etc" / "passwd").write_text(passwd)
    (tmp_path / "etc" / "group").write_text(group)
    return tmp_path


PASSWD = "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1001:app:/home/app:/bin/sh\n"
GROUP = "root:x:0:\napp:x:1001:\nextra:x:2000:app,other\nwheel:x:10:root\n"


def test_user_forms(tmp_path: Path) -> None:
    """The supplementary groups begin with the primary one, as dockerd's (containerd's) do."""
    r = rootfs(tmp_path, PASSWD, GROUP)
    assert bundle.resolve_user(r, None) == bundle.User(0, 0, (0, 10), "/root")
    assert bundle.resolve_user(r, "app") == bundle.User(1000, 1001, (1001, 2000), "/home/app")
    assert bundle.resolve_user(r, "1000") == bundle.User(1000, 1001, (1001, 2000), "/home/app")
    assert bundle.resolve_user(r, "app:extra") == bundle.User(1000, 2000, (2000,), "/home/app")
    assert bundle.resolve_user(r, "app:7") == bundle.User(1000, 7, (7,), "/home/app")
    assert bundle.resolve_user(r, "4242:4343") == bundle.User(4242, 4343, (4343,), "/")
    with pytest.raises(rterrors.InvalidArgument, match="nosuch"):
        bundle.resolve_user(r, "nosuch")
    with pytest.raises(rterrors.InvalidArgument, match="nogroup"):
        bundle.resolve_user(r, "app:nogroup")
    with pytest.raises(rterrors.InvalidArgument, match="out of range"):
        bundle.resolve_user(r, str(2**31))


def test_group_add_adds_named_and_numeric_groups(tmp_path: Path) -> None:
    r = rootfs(tmp_path, PASSWD, GROUP)
    assert bundle.resolve_user(r, "app:7", group_add=("extra", "77", "extra")) == bundle.User(1000, 7, (7, 2000, 77), "/home/app")
    with pytest.raises(rterrors.InvalidArgument, match="unable to find group nogroup"):
        bundle.resolve_user(r, "app", group_add=("nogroup",))


def test_passwd_symlink_cannot_escape_the_rootfs(tmp_path: Path) -> None:
    host = tmp_path / "host"
    host.mkdir()
    (host / "passwd").write_text("evil:x:0:0::/:/bin/sh\n")
    r = tmp_path / "rootfs"
    (r / "etc").mkdir(parents=True)
    (r / "etc" / "passwd").symlink_to("../../host/passwd")     # resolves inside r: r/host/passwd
    with pytest.raises(rterrors.InvalidArgument, match="evil"):
        bundle.resolve_user(r, "evil")
    (r / "etc" / "passwd").unlink()
    (r / "etc" / "passwd").symlink_to(str(host / "passwd"))    # absolute: also inside r
    with pytest.raises(rterrors.InvalidArgument):
        bundle.resolve_user(r, "evil")


def test_missing_passwd_allows_numeric_users_only(tmp_path: Path) -> None:
    assert bundle.resolve_user(tmp_path, "5:6") == bundle.User(5, 6, (6,), "/")
    with pytest.raises(rterrors.InvalidArgument):
        bundle.resolve_user(tmp_path, "app")


def test_secure_join_clamps(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "up").symlink_to("../../../../etc")
    assert openat2.secure_join(tmp_path, "/a/up/passwd") == tmp_path / "etc" / "passwd"
    assert openat2.secure_join(tmp_path, "../../x") == tmp_path / "x"


def _c(**kw: object) -> base.ContainerConfig:
    return base.ContainerConfig(name="c", image="i", **kw)  # type: ignore[arg-type]


def test_entrypoint_and_cmd_rules() -> None:
    img = {"Entrypoint": ["/ep"], "Cmd": ["a", "b"]}
    assert records.process_argv(img, _c()) == ("/ep", "a", "b")
    assert records.process_argv(img, _c(args=("x",))) == ("/ep", "x")
    assert records.process_argv(img, _c(command=("/other",))) == ("/other",)          # drops image Cmd
    assert records.process_argv(img, _c(command=("/other",), args=("y",))) == ("/other", "y")
    assert records.process_argv({"Cmd": ["sh"]}, _c()) == ("sh",)
    assert records.process_argv(img, _c(command=())) == ("a", "b")      # `entrypoint: []`: the image's Cmd alone
    assert records.process_argv(img, _c(command=(), args=("y",))) == ("y",)
    with pytest.raises(rterrors.InvalidArgument, match="no command"):
        records.process_argv({}, _c())


def test_env_merge() -> None:
    env = bundle.merge_env(["PATH=/bin", "A=image", "B=b"], {"A": "mine"}, hostname="h", home="/home/u")
    assert env == ("PATH=/bin", "HOSTNAME=h", "A=mine", "B=b", "HOME=/home/u")
    assert bundle.merge_env(None, {}, hostname="h", home="/")[0] == f"PATH={bundle.DEFAULT_PATH}"


def test_capabilities() -> None:
    assert bundle.capabilities((), ()) == list(bundle.DEFAULT_CAPS)
    caps = bundle.capabilities(("net_admin",), ("CAP_CHOWN",))
    assert "CAP_NET_ADMIN" in caps
    assert "CAP_CHOWN" not in caps
    assert bundle.capabilities((), ("ALL",)) == []
    # ALL is what this process may hand on: its bounding set (here, perhaps without some)
    bounding = int(next(x for x in Path("/proc/self/status").read_text().splitlines()
                        if x.startswith("CapBnd:")).split()[1], 16)
    assert bundle.capabilities(("ALL",), ()) == [c for bit, c in enumerate(bundle.ALL_CAPS) if bounding >> bit & 1]
    with pytest.raises(rterrors.InvalidArgument):
        bundle.capabilities(("FLY",), ())


def test_signals() -> None:
    assert bundle.parse_signal(None) == signal.SIGTERM
    assert bundle.parse_signal("SIGUSR1") == signal.SIGUSR1
    assert bundle.parse_signal("KILL") == 9
    assert bundle.parse_signal("15") == 15
    assert bundle.parse_signal("SIGRTMIN+3") == signal.SIGRTMIN + 3
    with pytest.raises(rterrors.InvalidArgument):
        bundle.parse_signal("SIGNOPE")


def test_log_reassembly(tmp_path: Path) -> None:
    path = tmp_path / "ctr.log"
    path.write_bytes(
        b"2026-01-01T00:00:00.000000001+00:00 stdout P abc\n"
        b"2026-01-01T00:00:00.000000002+00:00 stderr F err one\n"
        b"2026-01-01T00:00:00.000000003+00:00 stdout F def\n"
        b"2026-01-01T00:00:01.000000000+00:00 stdout F \n"
        b"2026-01-01T00:00:02.000000000+00:00 stdout P tail-without-newline\n"
    )
    lines = list(logs.read_logs(path))
    assert [(ln.stream, ln.data) for ln in lines] == [
        ("stderr", b"err one"), ("stdout", b"abcdef"), ("stdout", b""), ("stdout", b"tail-without-newline")]
    assert lines[1].time == "2026-01-01T00:00:00.000000001+00:00"        # time of the first chunk
    assert [ln.data for ln in logs.read_logs(path, tail=2)] == [b"", b"tail-without-newline"]
    assert [ln.data for ln in logs.read_logs(path, since="2026-01-01T00:00:01Z")] == [b"", b"tail-without-newline"]
    assert list(logs.read_logs(tmp_path / "missing.log")) == []


def test_since_forms() -> None:
    now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    assert logs.parse_since("10m", now=now) == datetime(2026, 1, 1, 11, 50, tzinfo=UTC)
    assert logs.parse_since("1h30m", now=now) == datetime(2026, 1, 1, 10, 30, tzinfo=UTC)
    assert logs.parse_since("1767268800") == datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    assert logs.parse_since("2026-01-01T12:00:00Z") == now
    with pytest.raises(rterrors.InvalidArgument):
        logs.parse_since("yesterday")
