"""Streams client: ``aioconnlist.open_connection`` is ``asyncio.open_connection`` for a list.

    python examples/streams_client.py                    # a self-contained local demo
    python examples/streams_client.py 192.0.2.1:80 [2001:db8::1]:80 ...

It returns the usual (StreamReader, StreamWriter) over whichever address connected first.
Without arguments it starts an echo server on 127.0.0.1, and lists a refused port first.
"""

from __future__ import annotations

import asyncio
import socket
import sys
from collections.abc import Sequence

import aioconnlist


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    async for line in reader:
        writer.write(line.upper())
        await writer.drain()
    writer.close()


async def chat(addresses: Sequence[str | tuple[str, int]], lines: list[bytes]) -> int:
    try:
        reader, writer = await aioconnlist.open_connection(addresses, timeout=10.0)
    except aioconnlist.ConnectError as e:
        print(f"failed ({e.errno}): {e.strerror}")
        return 1
    print("connected to", writer.get_extra_info("peername"))
    for line in lines:
        writer.write(line)
        await writer.drain()
        print("sent", line, "got", await reader.readline())
    writer.close()
    await writer.wait_closed()
    return 0


async def main(argv: list[str]) -> int:
    if argv:
        return await chat(argv, [])
    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    async with server:
        with socket.socket() as closed_port:
            closed_port.bind(("127.0.0.1", 0))  # bound, not listening: refused at once
            refused = ("127.0.0.1", closed_port.getsockname()[1])
            working = server.sockets[0].getsockname()
            return await chat([refused, working], [b"hello\n", b"happy eyeballs\n"])


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
