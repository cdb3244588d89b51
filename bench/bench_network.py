"""Native networking vs Docker's, same host, same run (issue 6). Needs root and a running dockerd.

1. Set-up: N containers' networking, each with one published port on 127.0.0.1.
   native: NetworkManager.attach (netns, veth, address, DNAT rule, hosts file) + starting
           `busybox httpd` in the namespace (nsenter), N times in a row;
   docker: `docker run -d -p 127.0.0.1:P:80 busybox httpd` N times in a row.
   Docker's number includes creating a container (rootfs, cgroups) besides its network, so
   the ratio overstates the network part's advantage; the attach-only time is printed too.
2. Throughput: download of the same file (--mib MiB, best of --runs) from busybox httpd
   through a published port on 127.0.0.1: native DNAT (route_localnet) vs Docker's default
   userland proxy (docker-proxy).

    sudo .venv/bin/python bench/bench_network.py [--containers 50] [--mib 256] [--runs 3]
"""

from __future__ import annotations

import argparse
import http.client
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from reconciler.runtime import base
from reconciler.runtime.native.config import NativeConfig
from reconciler.runtime.native.network import network
from tests.helpers import images


def wait_http(port: int, path: str = "/", timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("HEAD", path)
            conn.getresponse().read()
            conn.close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def download(port: int, path: str) -> tuple[int, float]:
    t0 = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.request("GET", path)
    resp = conn.getresponse()
    total = 0
    while chunk := resp.read(1 << 20):
        total += len(chunk)
    conn.close()
    return total, time.perf_counter() - t0


def free_ports(n: int) -> list[int]:
    base_port = 21000 + secrets.randbelow(10000)   # below the ephemeral range
    return list(range(base_port, base_port + n))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--containers", type=int, default=50)
    ap.add_argument("--mib", type=int, default=256)
    ap.add_argument("--runs", type=int, default=3)
    opts = ap.parse_args()
    n = opts.containers

    tmp = Path(tempfile.mkdtemp(prefix="bench-net-"))
    config = NativeConfig(root=tmp / "root", run_dir=tmp / "run", name_prefix="rbn" + secrets.token_hex(1),
                          subnet_pool="10.219.0.0/23")
    mgr = network.NetworkManager(config)
    tag = f"bench-net-busybox:{secrets.token_hex(3)}"
    subprocess.run(["docker", "import", "-", tag], input=images.busybox_layer(), capture_output=True, check=True)
    docker_names: list[str] = []
    procs: list[subprocess.Popen[bytes]] = []
    www = tmp / "www"
    www.mkdir()
    with open(www / "big", "wb") as fh:
        fh.truncate(opts.mib << 20)
    try:
        mgr.ensure_network(base.NetworkConfig(name="bench"))
        # warm-up: one of each, not timed
        mgr.attach("warm", name="warm", hostname="warm", networks=["bench"])
        mgr.detach("warm")
        subprocess.run(["docker", "run", "--rm", tag, "true"], capture_output=True, check=True)

        # 1. set-up of N published containers
        ports = free_ports(2 * n)
        t0 = time.perf_counter()
        attach_time = 0.0
        for i in range(n):
            a0 = time.perf_counter()
            att = mgr.attach(f"c{i}", name=f"c{i}", hostname=f"c{i}", networks=["bench"],
                             ports=[base.PortMapping(container_port=80, host_port=ports[i], host_ip="127.0.0.1")])
            attach_time += time.perf_counter() - a0
            procs.append(subprocess.Popen(["nsenter", f"--net={att.netns_path}", "busybox", "httpd", "-f",
                                           "-p", "80", "-h", str(www)]))
        wait_http(ports[n - 1])
        native_setup = time.perf_counter() - t0

        t0 = time.perf_counter()
        for i in range(n):
            name = f"bench-net-{secrets.token_hex(4)}"
            subprocess.run(["docker", "run", "-d", "--name", name, "-p", f"127.0.0.1:{ports[n + i]}:80", tag,
                            "httpd", "-f", "-p", "80", "-h", "/etc"], capture_output=True, check=True)
            docker_names.append(name)
        wait_http(ports[2 * n - 1], "/passwd")
        docker_setup = time.perf_counter() - t0

        # 2. throughput through one published port each
        dport = ports[2 * n - 1] + 1
        dname = f"bench-net-{secrets.token_hex(4)}"
        subprocess.run(["docker", "run", "-d", "--name", dname, "-p", f"127.0.0.1:{dport}:80", tag, "sh", "-c",
                        f"dd if=/dev/zero of=/tmp/big bs=1M count={opts.mib} 2>/dev/null && "
                        "httpd -f -p 80 -h /tmp"], capture_output=True, check=True)
        docker_names.append(dname)
        wait_http(dport, "/big", timeout=60)
        nport = ports[0]
        native_best = docker_best = 0.0
        for _ in range(opts.runs):
            size, secs = download(nport, "/big")
            assert size == opts.mib << 20, size
            native_best = max(native_best, size / secs / (1 << 20))
            size, secs = download(dport, "/big")
            assert size == opts.mib << 20, size
            docker_best = max(docker_best, size / secs / (1 << 20))

        print(f"set-up of {n} containers with a published port (sequential):")
        print(f"  native attach + httpd start : {native_setup:7.2f} s  ({native_setup / n * 1000:6.1f} ms each;"
              f" attach alone {attach_time / n * 1000:.1f} ms)")
        print(f"  docker run -d -p            : {docker_setup:7.2f} s  ({docker_setup / n * 1000:6.1f} ms each)")
        print(f"  ratio docker/native         : {docker_setup / native_setup:7.2f}x (higher = native faster)")
        print(f"throughput of a {opts.mib} MiB download via 127.0.0.1:PORT (best of {opts.runs}):")
        print(f"  native (nft DNAT)           : {native_best:7.0f} MiB/s")
        print(f"  docker (docker-proxy)       : {docker_best:7.0f} MiB/s")
        print(f"  ratio native/docker         : {native_best / docker_best:7.2f}x (higher = native faster)")
    finally:
        for p in procs:
            p.kill()
            p.wait()
        if docker_names:
            subprocess.run(["docker", "rm", "-f", *docker_names], capture_output=True, check=False)
        subprocess.run(["docker", "rmi", "-f", tag], capture_output=True, check=False)
        t0 = time.perf_counter()
        for c in [c.container_id for c in mgr._ipam.containers()]:
            mgr.detach(c)
        detach_time = time.perf_counter() - t0
        for net in mgr.list_networks():
            mgr.remove_network(net.name)
        mgr.recover([])
        network.unmount_all(config.run_dir / "netns")
        subprocess.run(["rm", "-rf", str(tmp)], check=False)
        print(f"(native teardown of {n}: {detach_time:.2f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
