"""A userland TCP proxy for ports published on the IPv6 loopback address (`[::1]:PORT`).

IPv4 reaches a container from 127.0.0.1 through nft DNAT plus `route_localnet`; IPv6 has no
`route_localnet`: a reply DNAT'ed back to ::1 arrives on the bridge and the kernel drops it (a
loopback destination on a non-loopback device). So, as Docker does with docker-proxy, a small
process listens on [::1]:PORT and copies each connection to the container's IPv6 address.

    python -m reconciler.runtime.native.network.portproxy LISTEN_HOST PORT TARGET_HOST TARGET_PORT

It prints "ready" once it listens (the engine waits for that line) and runs until it is killed
(the engine kills it, by the pid it recorded, when the container leaves its networks).
"""

from __future__ import annotations

import asyncio
import os
import sys

__all__ = ["main"]

_CHUNK = 1 << 16


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(_CHUNK):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except OSError:
        writer.close()


async def _serve(listen: str, port: int, target: str, target_port: int) -> None:
    async def handle(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            upstream_r, upstream_w = await asyncio.open_connection(target, target_port)
        except OSError:
            client_w.close()
            return
        try:
            await asyncio.gather(_pipe(client_r, upstream_w), _pipe(upstream_r, client_w))
        finally:
            client_w.close()
            upstream_w.close()

    server = await asyncio.start_server(handle, listen, port, reuse_address=True)
    print("ready", flush=True)
    quiet = os.open(os.devnull, os.O_WRONLY)        # the engine stops reading once it is ready
    os.dup2(quiet, 1)
    os.dup2(quiet, 2)
    async with server:
        await server.serve_forever()


def main(argv: list[str]) -> int:
    if len(argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    listen, port, target, target_port = argv
    try:
        asyncio.run(_serve(listen, int(port), target, int(target_port)))
    except OSError as exc:
        print(f"cannot listen on [{listen}]:{port}: {exc}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
