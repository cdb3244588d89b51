"""Tiny network peers the tests run inside namespaces (`nsenter --net=...`), stdlib only.

    probe.py serve-tcp PORT NAME     answer every connection with "NAME peer=<client ip>\\n"
    probe.py serve-udp PORT NAME     answer every datagram with "NAME peer=<client ip>"
    probe.py serve-tcp6 PORT NAME    serve-tcp on IPv6 only ([::])
    probe.py tcp HOST PORT           connect (HOST may be a name: /etc/hosts is used), print the answer
    probe.py tcp6 HOST PORT          the same over IPv6 only (a name must resolve to an AAAA record)
    probe.py udp HOST PORT SPORT     send one datagram from source port SPORT, print the answer
    probe.py sink PORT               accept connections and discard what they send (benchmarks)

Clients exit 1 on timeout or refusal, printing the error on stderr.
"""

from __future__ import annotations

import socket
import sys


def serve_tcp(port: int, name: str, family: socket.AddressFamily = socket.AF_INET) -> None:
    srv = socket.socket(family, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family == socket.AF_INET6:
        srv.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    srv.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", port))
    srv.listen(64)
    print("ready", flush=True)
    while True:
        conn, addr = srv.accept()
        with conn:
            conn.sendall(f"{name} peer={addr[0]}\n".encode())


def serve_udp(port: int, name: str) -> None:
    srv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    srv.bind(("0.0.0.0", port))
    print("ready", flush=True)
    while True:
        _, addr = srv.recvfrom(2048)
        srv.sendto(f"{name} peer={addr[0]}".encode(), addr)


def sink(port: int) -> None:
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("0.0.0.0", port))
    srv.listen(64)
    print("ready", flush=True)
    while True:
        conn, _ = srv.accept()
        with conn:
            while conn.recv(1 << 20):
                pass
            conn.sendall(b"done\n")


def tcp(host: str, port: int, family: socket.AddressFamily = socket.AF_UNSPEC) -> int:
    try:
        if family == socket.AF_INET6:
            host = socket.getaddrinfo(host, port, socket.AF_INET6, socket.SOCK_STREAM)[0][4][0]
        with socket.create_connection((host, port), timeout=3) as s:
            data = b""
            while chunk := s.recv(4096):
                data += chunk
    except OSError as exc:
        print(f"tcp {host}:{port}: {exc}", file=sys.stderr)
        return 1
    sys.stdout.write(data.decode())
    return 0


def udp(host: str, port: int, sport: int) -> int:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", sport))
    s.settimeout(2)
    try:
        s.sendto(b"ping", (host, port))
        data, _ = s.recvfrom(2048)
    except OSError as exc:
        print(f"udp {host}:{port}: {exc}", file=sys.stderr)
        return 1
    finally:
        s.close()
    print(data.decode())
    return 0


def main(argv: list[str]) -> int:
    cmd, *rest = argv
    if cmd == "serve-tcp":
        serve_tcp(int(rest[0]), rest[1])
    elif cmd == "serve-tcp6":
        serve_tcp(int(rest[0]), rest[1], socket.AF_INET6)
    elif cmd == "serve-udp":
        serve_udp(int(rest[0]), rest[1])
    elif cmd == "sink":
        sink(int(rest[0]))
    elif cmd == "tcp":
        return tcp(rest[0], int(rest[1]))
    elif cmd == "tcp6":
        return tcp(rest[0], int(rest[1]), socket.AF_INET6)
    elif cmd == "udp":
        return udp(rest[0], int(rest[1]), int(rest[2]))
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
