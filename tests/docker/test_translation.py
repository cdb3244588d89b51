"""The docker backend's pure translations: stream framing, log lines, times, references, bodies."""

from __future__ import annotations

import struct
from datetime import UTC, datetime

import pytest

from reconciler.runtime import base, errors
from reconciler.runtime.docker import backend


def frame(kind: int, data: bytes) -> bytes:
    return struct.pack(">BxxxL", kind, len(data)) + data


def test_demux_frames_split_anywhere() -> None:
    stream = frame(1, b"hello\n") + frame(2, b"oops\n") + frame(1, b"x" * 70000)
    for cut in (1, 3, 8, 9, 4096):
        chunks = [stream[i:i + cut] for i in range(0, len(stream), cut)]
        assert list(backend.demux(iter(chunks))) == [(1, b"hello\n"), (2, b"oops\n"), (1, b"x" * 70000)]


def test_log_lines_join_partials_per_stream_and_keep_first_time() -> None:
    frames = [
        (1, b"2026-01-01T00:00:00.5Z part-a"),
        (2, b"2026-01-01T00:00:01.000000001Z err\n"),
        (1, b"2026-01-01T00:00:02.000000000Z part-b\n"),
        (1, b"2026-01-01T00:00:03.000000000Z tail-without-newline"),
    ]
    assert list(backend.log_lines(iter(frames))) == [
        base.LogLine("2026-01-01T00:00:01.000000001Z", "stderr", b"err"),
        base.LogLine("2026-01-01T00:00:00.500000000Z", "stdout", b"part-apart-b"),
        base.LogLine("2026-01-01T00:00:03.000000000Z", "stdout", b"tail-without-newline", newline=False),
    ]


def test_since_param_accepts_rfc3339_unix_and_durations() -> None:
    assert backend.since_param("1700000000") == "1700000000"
    assert backend.since_param("1700000000.25") == "1700000000.25"
    assert backend.since_param("2023-11-14T22:13:20.123Z") == "1700000000.123000000"
    assert backend.since_param("2023-11-14T23:13:20+01:00") == "1700000000.000000000"
    now = datetime.fromtimestamp(1_700_000_600, UTC)
    assert backend.since_param("10m", now=now) == "1700000000.000000000"
    with pytest.raises(errors.InvalidArgument):
        backend.since_param("yesterday")


@pytest.mark.parametrize(("ref", "split"), [
    ("busybox", ("busybox", "latest")),
    ("127.0.0.1:5000/a/b", ("127.0.0.1:5000/a/b", "latest")),
    ("127.0.0.1:5000/a/b:v1", ("127.0.0.1:5000/a/b", "v1")),
    ("reg/a@sha256:" + "0" * 64, ("reg/a", "sha256:" + "0" * 64)),
    ("reg:1/a:v1@sha256:" + "0" * 64, ("reg:1/a", "sha256:" + "0" * 64)),
])
def test_split_reference(ref: str, split: tuple[str, str]) -> None:
    assert backend.split_reference(ref) == split


def test_container_body_maps_every_field() -> None:
    cfg = base.ContainerConfig(
        name="web", image="img", command=("/bin/web",), args=("-v",), env={"A": "1"},
        user="app", workdir="/srv", hostname="h", labels={"l": "v"},
        ports=(base.PortMapping(80, 8080, host_ip="127.0.0.1"), base.PortMapping(53, 0, "udp")),
        networks=("front", "back"), aliases=("www",),
        mounts=(base.Mount("volume", "/data", "vol", options=("nocopy",)),
                base.Mount("bind", "/etc/x", "/host/x", read_only=True, options=("rshared",)),
                base.Mount("tmpfs", "/tmp", options=("size=64m", "mode=1777"))),
        restart=base.RestartPolicy("on-failure", 3),
        healthcheck=base.Healthcheck(("CMD", "true"), interval=1.5, timeout=2, retries=4, start_period=0.25),
        resources=base.Resources(memory=1 << 26, cpus=1.5, pids=100), read_only=True,
        cap_add=("NET_ADMIN",), cap_drop=("ALL",), stop_signal="SIGINT", stop_timeout=5, init=True,
        sysctls={"net.core.somaxconn": "1024"}, ulimits=(base.Ulimit("nofile", 1024, 2048),), shm_size=1 << 27)
    body = backend.container_body(cfg)
    host = body.pop("HostConfig")
    assert body == {
        "Image": "img", "Entrypoint": ["/bin/web"], "Cmd": ["-v"], "Env": ["A=1"], "User": "app",
        "WorkingDir": "/srv", "Hostname": "h", "Labels": {"l": "v"}, "StopSignal": "SIGINT",
        "StopTimeout": 5, "ExposedPorts": {"80/tcp": {}, "53/udp": {}},
        "Healthcheck": {"Test": ["CMD", "true"], "Interval": 1_500_000_000, "Timeout": 2_000_000_000,
                        "Retries": 4, "StartPeriod": 250_000_000},
        "NetworkingConfig": {"EndpointsConfig": {"front": {"Aliases": ["www"]}}},
    }
    assert host == {
        "RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 3}, "ReadonlyRootfs": True,
        "Init": True, "NetworkMode": "front",
        "PortBindings": {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}],
                         "53/udp": [{"HostIp": "", "HostPort": ""}]},
        "Mounts": [
            {"Type": "volume", "Target": "/data", "Source": "vol", "ReadOnly": False,
             "VolumeOptions": {"NoCopy": True}},
            {"Type": "bind", "Target": "/etc/x", "Source": "/host/x", "ReadOnly": True,
             "BindOptions": {"Propagation": "rshared"}},
            {"Type": "tmpfs", "Target": "/tmp", "ReadOnly": False,
             "TmpfsOptions": {"SizeBytes": 64 << 20, "Mode": 0o1777}},
        ],
        "Memory": 1 << 26, "NanoCpus": 1_500_000_000, "PidsLimit": 100,
        "CapAdd": ["NET_ADMIN"], "CapDrop": ["ALL"], "Sysctls": {"net.core.somaxconn": "1024"},
        "Ulimits": [{"Name": "nofile", "Soft": 1024, "Hard": 2048}], "ShmSize": 1 << 27,
    }
    # the image's defaults stay untouched when nothing overrides them
    plain = backend.container_body(base.ContainerConfig(name="p", image="img"))
    assert "Entrypoint" not in plain
    assert "Cmd" not in plain
    assert plain["HostConfig"]["RestartPolicy"]["Name"] == ""
    # a disabled healthcheck is only NONE, as compose sends it: timings of a check that never runs say nothing
    off = backend.container_body(base.ContainerConfig(name="p", image="img", healthcheck=base.Healthcheck(("NONE",))))
    assert off["Healthcheck"] == {"Test": ["NONE"]}
    # no test, as a timing of 0: the image's, which dockerd merges in (moby's daemon merge)
    timings = base.Healthcheck((), interval=0, timeout=0, retries=0, start_period=60, start_interval=0.5)
    inherit = backend.container_body(base.ContainerConfig(name="p", image="img", healthcheck=timings))
    assert inherit["Healthcheck"] == {"Test": [], "Interval": 0, "Timeout": 0, "Retries": 0,
                                      "StartPeriod": 60_000_000_000, "StartInterval": 500_000_000}


def test_container_body_rejects_what_docker_cannot_do() -> None:
    with pytest.raises(errors.InvalidArgument):
        backend.container_body(base.ContainerConfig(name="a", image="i", aliases=("x",)))
    with pytest.raises(errors.InvalidArgument):
        backend.container_body(base.ContainerConfig(
            name="a", image="i", mounts=(base.Mount("tmpfs", "/t", options=("uid=3",)),)))
    with pytest.raises(errors.InvalidArgument):
        backend.container_body(base.ContainerConfig(
            name="a", image="i", mounts=(base.Mount("nfs", "/t"),)))


def test_a_volumes_problem_is_read_from_its_status_map_only_when_there() -> None:
    """reconciler's Engine API puts a volume's problem (its data gone) in `Status`, the driver's
    own map; a real driver's status, or none, is no problem."""
    attrs = {"Name": "v", "Mountpoint": "/m", "Labels": None, "CreatedAt": "t"}
    assert (backend.volume_state(attrs).problem, backend.volume_state(attrs).hint) == (None, None)
    other = backend.volume_state({**attrs, "Status": {"hello": "world"}})
    assert (other.problem, other.hint) == (None, None)
    lost = backend.volume_state({**attrs, "Status": {"Problem": "data directory gone", "Hint": "remove it"}})
    assert (lost.problem, lost.hint) == ("data directory gone", "remove it")
