"""What dockerd 20.10 answers, the native engine answers, driven by the real docker CLI: inspect's
and the container list's fields (what a CLI template or docker-py reads of them is the
container's setting, never a missing key or a zero the engine does not apply), an endpoint not
served, a tmpfs mount's options, a user's groups."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.api.test_engine_api import REPO, docker, engine_api, engine_args, pytestmark, request  # noqa: F401 - fixture, marks
from tests.helpers.host import Host

# the HostConfig keys dockerd 20.10 gives every container (API 1.41), in its order: the others
# (Tmpfs, Sysctls, Init, Mounts, StorageOpt) only when set
DOCKERD_HOST_CONFIG = (
    "Binds", "ContainerIDFile", "LogConfig", "NetworkMode", "PortBindings", "RestartPolicy", "AutoRemove",
    "VolumeDriver", "VolumesFrom", "CapAdd", "CapDrop", "CgroupnsMode", "Dns", "DnsOptions", "DnsSearch",
    "ExtraHosts", "GroupAdd", "IpcMode", "Cgroup", "Links", "OomScoreAdj", "PidMode", "Privileged",
    "PublishAllPorts", "ReadonlyRootfs", "SecurityOpt", "UTSMode", "UsernsMode", "ShmSize", "ConsoleSize",
    "Isolation", "CpuShares", "Memory", "NanoCpus", "CgroupParent", "BlkioWeight", "BlkioWeightDevice",
    "BlkioDeviceReadBps", "BlkioDeviceWriteBps", "BlkioDeviceReadIOps", "BlkioDeviceWriteIOps", "CpuPeriod",
    "CpuQuota", "CpuRealtimePeriod", "CpuRealtimeRuntime", "CpusetCpus", "CpusetMems", "Devices",
    "DeviceCgroupRules", "DeviceRequests", "KernelMemory", "KernelMemoryTCP", "MemoryReservation", "MemorySwap",
    "MemorySwappiness", "OomKillDisable", "PidsLimit", "Ulimits", "CpuCount", "CpuPercent", "IOMaximumIOps",
    "IOMaximumBandwidth", "MaskedPaths", "ReadonlyPaths",
)


def _inspect(sock: str, name: str) -> Any:
    return json.loads(docker(sock, "inspect", name).stdout)[0]


def test_inspect_has_every_host_config_key_of_dockerd_with_the_containers_settings(
        engine_api: str, host: Host, busybox_image: str, tmp_path: Path) -> None:  # noqa: F811
    bind = tmp_path / "b"
    bind.mkdir()
    docker(engine_api, "pull", busybox_image)
    docker(engine_api, "create", "--name", "h", "--privileged", "--shm-size", "32m", "--cpu-shares", "512",
           "--memory-swap", "128m", "-m", "64m", "--memory-reservation", "32m", "--cpuset-cpus", "0",
           "-v", f"{bind}:/b:ro", "-v", "named:/v", "-v", "/anon", "--tmpfs", "/x", "--tmpfs", "/y:size=1m",
           "--security-opt", "no-new-privileges", "--group-add", "10", "--oom-score-adj", "100",
           "--ulimit", "nofile=100:200", "--init", "--sysctl", "net.core.somaxconn=100",
           "--device", "/dev/null:/dev/xnull", "--domainname", "example.org", busybox_image, "true")
    template = "{{.HostConfig.Privileged}} {{.HostConfig.ShmSize}} {{.HostConfig.CpuShares}}"
    assert docker(engine_api, "container", "inspect", "-f", template, "h").stdout.split() == ["true", "33554432", "512"]
    doc = _inspect(engine_api, "h")
    hc = doc["HostConfig"]
    assert [k for k in DOCKERD_HOST_CONFIG if k not in hc] == []
    assert sorted(hc["Binds"]) == sorted([f"{bind}:/b:ro", "named:/v"])      # (the CLI sends them in any order)
    assert {k: hc[k] for k in ("ShmSize", "CpuShares", "Memory", "MemorySwap", "MemoryReservation",
                               "CpusetCpus", "SecurityOpt", "GroupAdd", "OomScoreAdj", "Ulimits", "Devices",
                               "Tmpfs", "Init", "Sysctls", "MaskedPaths", "Privileged")} == {
        "ShmSize": 32 << 20, "CpuShares": 512, "Memory": 64 << 20,
        "MemorySwap": 128 << 20, "MemoryReservation": 32 << 20, "CpusetCpus": "0",
        "SecurityOpt": ["no-new-privileges"], "GroupAdd": ["10"], "OomScoreAdj": 100,
        "Ulimits": [{"Name": "nofile", "Hard": 200, "Soft": 100}],
        "Devices": [{"PathOnHost": "/dev/null", "PathInContainer": "/dev/xnull", "CgroupPermissions": "rwm"}],
        "Tmpfs": {"/x": "", "/y": "size=1m"}, "Init": True, "Sysctls": {"net.core.somaxconn": "100"},
        "MaskedPaths": None, "Privileged": True}
    cfg = doc["Config"]
    assert (cfg["Domainname"], cfg["Volumes"]) == ("example.org", {"/anon": {}})
    by_target = {m["Destination"]: m for m in doc["Mounts"]}
    assert by_target["/v"] == {"Type": "volume", "Name": "named", "Source": by_target["/v"]["Source"],
                               "Destination": "/v", "Driver": "local", "Mode": "", "RW": True, "Propagation": ""}
    assert by_target["/anon"]["Driver"] == "local"
    assert by_target["/b"] == {"Type": "bind", "Source": str(bind), "Destination": "/b", "Mode": "ro", "RW": False,
                               "Propagation": "rprivate"}

    docker(engine_api, "update", "--memory-swap", "256m", "h")
    assert docker(engine_api, "inspect", "-f", "{{.HostConfig.MemorySwap}}", "h").stdout.strip() == str(256 << 20)
    # `reconcile inspect` prints the same document
    own = json.loads(subprocess.run([sys.executable, "-m", "reconciler", "inspect", "h", *engine_args(host)],
                                    cwd=REPO, capture_output=True, text=True, check=True, timeout=60).stdout)
    own = own[0] if isinstance(own, list) else own
    assert own["HostConfig"] == _inspect(engine_api, "h")["HostConfig"]
    assert own["Mounts"] == doc["Mounts"]

    # a plain container: dockerd's zero values
    docker(engine_api, "create", "--name", "plain", busybox_image, "true")
    plain = _inspect(engine_api, "plain")
    assert {k: plain["HostConfig"][k] for k in ("Binds", "ShmSize", "MemorySwap", "GroupAdd", "SecurityOpt",
                                                "Privileged", "PidsLimit", "CgroupnsMode", "IpcMode")} == {
        "Binds": None, "ShmSize": 64 << 20, "MemorySwap": 0, "GroupAdd": None, "SecurityOpt": None,
        "Privileged": False, "PidsLimit": None, "CgroupnsMode": "host", "IpcMode": "private"}
    assert "/proc/kcore" in plain["HostConfig"]["MaskedPaths"]
    assert not {"Tmpfs", "Sysctls", "Init"} & set(plain["HostConfig"])
    assert (plain["Config"]["Domainname"], plain["Config"]["Volumes"]) == ("", None)
    docker(engine_api, "rm", "-v", "h", "plain")
    docker(engine_api, "volume", "rm", "named")


def test_the_list_shows_each_containers_command_and_mounts_as_dockerd(
        engine_api: str, busybox_image: str, tmp_path: Path) -> None:  # noqa: F811
    docker(engine_api, "pull", busybox_image)
    docker(engine_api, "create", "--name", "listed", "-v", f"{tmp_path}:/b:ro", "-v", "data:/v", "--tmpfs", "/x",
           busybox_image, "sh", "-c", "sleep 100")
    docker(engine_api, "create", "--name", "bare", "--entrypoint", "echo", busybox_image, "it's", "a b")
    rows = docker(engine_api, "ps", "-a", "--no-trunc", "--format", "{{.Names}}|{{.Command}}|{{.Mounts}}").stdout
    bare, listed_row = sorted(rows.splitlines())
    assert bare == 'bare|"echo it\'s \'a b\'"|'
    name, command, mounts = listed_row.split("|")
    assert (name, command) == ("listed", '"sh -c \'sleep 100\'"')
    assert sorted(mounts.split(",")) == sorted([str(tmp_path), "data"])   # dockerd's order is its map's: any
    code, _, body = request(engine_api, "GET", "/v1.41/containers/json?all=1&filters=%7B%22name%22%3A%5B%22listed%22%5D%7D")
    listed = json.loads(body)
    assert code == 200
    inspected = json.loads(docker(engine_api, "inspect", "listed").stdout)[0]
    assert listed[0]["Mounts"] == inspected["Mounts"]          # dockerd's MountPoints, as inspect has them
    # --tmpfs: HostConfig.Tmpfs; the order is the Binds the docker CLI sent, which it makes from a
    # Go map (any order, as dockerd's list shows them)
    assert sorted(m["Type"] for m in listed[0]["Mounts"]) == ["bind", "volume"]
    docker(engine_api, "rm", "listed", "bare")
    docker(engine_api, "volume", "rm", "data")



def test_the_list_shows_the_image_id_once_the_tag_names_another_image(
        engine_api: str, busybox_image: str, tmp_path: Path) -> None:  # noqa: F811
    """dockerd's list: the reference a container was made from while it still names the
    container's image, else the image's id (`docker ps` shows its 12 digits): a pull or build
    moved the tag, or it was removed."""
    docker(engine_api, "pull", busybox_image)
    docker(engine_api, "tag", busybox_image, "moving:1")
    docker(engine_api, "create", "--name", "old", "moving:1", "true")
    image_id = docker(engine_api, "inspect", "-f", "{{.Image}}", "old").stdout.strip()
    assert docker(engine_api, "ps", "-a", "--filter", "name=old", "--format", "{{.Image}}").stdout == "moving:1\n"
    (tmp_path / "Dockerfile").write_text("FROM moving:1\nLABEL moved=yes\n")
    docker(engine_api, "build", "-q", "-t", "moving:1", str(tmp_path))          # the tag names a new image
    shown = docker(engine_api, "ps", "-a", "--filter", "name=old", "--format", "{{.Image}}").stdout.strip()
    assert shown == image_id.removeprefix("sha256:")[:12]
    docker(engine_api, "rm", "old")
    docker(engine_api, "rmi", "moving:1")

# the top-level keys of dockerd 20.10's container inspect (API 1.41), read off the host's dockerd
DOCKERD_INSPECT = (
    "Id", "Created", "Path", "Args", "State", "Image", "ResolvConfPath", "HostnamePath", "HostsPath", "LogPath",
    "Name", "RestartCount", "Driver", "Platform", "MountLabel", "ProcessLabel", "AppArmorProfile", "ExecIDs",
    "HostConfig", "GraphDriver", "Mounts", "Config", "NetworkSettings",
)


def test_inspect_has_dockerds_top_level_keys_and_the_running_execs(
        engine_api: str, busybox_image: str) -> None:  # noqa: F811
    docker(engine_api, "pull", busybox_image)
    docker(engine_api, "run", "-d", "--name", "execd", "--network", "none", busybox_image, "sleep", "100")
    try:
        doc = json.loads(docker(engine_api, "inspect", "execd").stdout)[0]
        assert [k for k in DOCKERD_INSPECT if k not in doc] == []
        assert (doc["ExecIDs"], doc["Driver"], doc["GraphDriver"]["Name"]) == (None, "overlay2", "overlay2")
        docker(engine_api, "exec", "-d", "execd", "sleep", "30")
        running = json.loads(docker(engine_api, "inspect", "execd").stdout)[0]["ExecIDs"]
        assert isinstance(running, list)
        assert len(running) == 1
        code, _, body = request(engine_api, "GET", f"/v1.41/exec/{running[0]}/json")
        assert code == 200
        assert json.loads(body)["Running"] is True
    finally:
        docker(engine_api, "rm", "-f", "execd")

def test_a_refused_import_is_answered_after_its_body_is_read(engine_api: str) -> None:  # noqa: F811
    """An answer before the whole request body was read (a refused `docker import` of a stream
    that is no tar: dockerd's 500 and words; any early answer) leaves the connection usable: the
    rest of the body is read first, so the next request on it is not taken for body bytes."""
    import http.client
    import socket

    class Conn(http.client.HTTPConnection):
        def connect(self) -> None:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.connect(engine_api)

    conn = Conn("localhost", timeout=30)
    try:
        # a chunked body, as the docker CLI sends `docker import - IMG < FILE`; then the same connection goes on
        conn.request("POST", "/v1.41/images/create?fromSrc=-&repo=imported", body=iter([b"x" * 65536] * 4),
                     encode_chunked=True, headers={"Content-Type": "application/x-tar", "Transfer-Encoding": "chunked"})
        answer = conn.getresponse()
        assert answer.status == 500                                     # dockerd's for a stream that is no tar
        assert "not a valid tar stream" in json.loads(answer.read())["message"]
        conn.request("GET", "/_ping")
        ping = conn.getresponse()
        assert (ping.status, ping.read()) == (200, b"OK")
        conn.request("POST", "/v1.41/nope", body=b"{}" * 1000)           # any early answer: a 404 here
        nope = conn.getresponse()
        assert (nope.status, json.loads(nope.read())) == (404, {"message": "page not found"})
        conn.request("GET", "/_ping")
        assert conn.getresponse().read() == b"OK"
    finally:
        conn.close()


def test_a_tmpfs_without_options_has_dockers_defaults_and_keeps_its_own(
        engine_api: str, busybox_image: str) -> None:  # noqa: F811
    docker(engine_api, "pull", busybox_image)
    seen = docker(engine_api, "run", "--rm", "--network", "none", "--tmpfs", "/x", "--tmpfs", "/y:exec,size=1m",
                  busybox_image, "grep", "-E", " /(x|y) ", "/proc/mounts").stdout
    options = {line.split()[1]: set(line.split()[3].split(",")) for line in seen.splitlines()}
    assert {"rw", "nosuid", "nodev", "noexec"} <= options["/x"]         # dockerd's: rw,nosuid,nodev,noexec
    assert {"rw", "nosuid", "nodev"} <= options["/y"]
    assert "noexec" not in options["/y"]
    assert "size=1024k" in options["/y"]


def test_a_users_supplementary_groups_begin_with_its_primary_group_as_dockerds(
        engine_api: str, busybox_image: str) -> None:  # noqa: F811
    docker(engine_api, "pull", busybox_image)

    def ids(*args: str) -> str:
        return docker(engine_api, "run", "--rm", "--network", "none", *args, busybox_image, "id").stdout.strip()

    # what dockerd 20.10 prints for each, on the same image
    assert ids("-u", "app") == "uid=1000(app) gid=1000(app) groups=1000(app)"
    assert ids("-u", "app", "--group-add", "10") == "uid=1000(app) gid=1000(app) groups=10,1000(app)"
    assert ids("-u", "app:65534") == "uid=1000(app) gid=65534(nogroup) groups=65534(nogroup)"
    assert ids() == "uid=0(root) gid=0(root) groups=0(root)"
    docker(engine_api, "run", "-d", "--name", "grouped", "--network", "none", busybox_image, "sleep", "3600")
    assert docker(engine_api, "exec", "-u", "app", "grouped", "id").stdout.strip() == \
        "uid=1000(app) gid=1000(app) groups=1000(app)"
    docker(engine_api, "rm", "-f", "grouped")
