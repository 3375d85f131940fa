"""Async client: race several addresses, use the winning socket, see the race.

    python examples/async_client.py                      # a self-contained local demo
    python examples/async_client.py 192.0.2.1:80 [2001:db8::1]:80 ...

Without arguments it starts an echo server on 127.0.0.1, and races a refused port against it.
"""

from __future__ import annotations

import asyncio
import socket
import sys

import aioconnlist
from aioconnlist._cli.waterfall import attempts_from_events, render_waterfall


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(await reader.readline())
    await writer.drain()
    writer.close()


async def race(addresses: list[str], *, talk: bool) -> int:
    events: list[aioconnlist.RaceEvent] = []
    try:
        sock = await aioconnlist.connect_by_list(addresses, timeout=10.0, on_event=events.append)
    except aioconnlist.ConnectError as e:  # an OSError: errno, message and every attempt
        print(f"failed: {e.strerror}")
        print(render_waterfall(e.attempts))
        return 1
    loop = asyncio.get_running_loop()
    with sock:  # a connected, non-blocking socket.socket: use it with the loop's sock_* calls
        print(f"connected from {sock.getsockname()} to {sock.getpeername()}")
        if talk:
            await loop.sock_sendall(sock, b"hello\n")
            print("echoed:", await loop.sock_recv(sock, 100))
    print(render_waterfall(attempts_from_events(events)))
    return 0


async def main(argv: list[str]) -> int:
    if argv:
        return await race(argv, talk=False)
    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    # a port bound but not listening: connecting to it is refused at once
    async with server:
        with socket.socket() as closed_port:
            closed_port.bind(("127.0.0.1", 0))
            refused = f"127.0.0.1:{closed_port.getsockname()[1]}"
            working = f"127.0.0.1:{server.sockets[0].getsockname()[1]}"
            return await race([refused, working], talk=True)


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
