"""Any asyncio library races: ``aioconnlist.loop.new_event_loop`` under ``asyncio.open_connection``.

    python examples/loop_client.py                 # a self-contained local demo
    python examples/loop_client.py HOST PORT [--uvloop] [-n 3]

The client code is plain asyncio (``asyncio.open_connection(host, port)``, as redis.asyncio,
websockets, asyncpg... call it); only the loop is ours. Each connection prints its time and
the race's attempts. Without arguments it makes a local name, ``demo.test``, whose IPv6
address (::1) is a black hole and whose IPv4 address (127.0.0.1) answers: the first
connection waits out the attempt delay, the later ones go straight to IPv4.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import socket
import sys
import time
from typing import Any

import aioconnlist
import aioconnlist.loop

DEMO = "demo.test"


def describe(event: aioconnlist.RaceEvent) -> None:
    print(f"    {event.time * 1000:7.1f} ms  {event.kind:9} {event.pair.destination}")


async def connect_n_times(host: str, port: int, count: int) -> None:
    for n in range(1, count + 1):
        start = time.monotonic()
        try:
            _reader, writer = await asyncio.open_connection(host, port)
        except OSError as e:
            print(f"connection {n}: failed: {e}")
            continue
        print(f"connection {n}: {writer.get_extra_info('peername')[:2]} "
              f"in {(time.monotonic() - start) * 1000:.1f} ms")  # fmt: skip
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def demo(count: int) -> None:
    """A name with a black-holed ::1 and a listening 127.0.0.1 on one port."""
    loop = asyncio.get_running_loop()
    v4 = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    v4.bind(("127.0.0.1", 0))
    port = v4.getsockname()[1]
    hole = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    filler = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    try:
        hole.bind(("::1", port))
        hole.listen(0)
        filler.settimeout(2)
        filler.connect(("::1", port))  # fills the queue: the next SYNs to ::1 are dropped
        v4.listen(16)
        server = await asyncio.start_server(lambda r, w: w.close(), sock=v4)
        real = loop.getaddrinfo

        async def getaddrinfo(host: Any, port: Any, **kwargs: Any) -> Any:
            """The demo name (any other goes to the system): the loop's resolver is ours."""
            if host != DEMO:
                return await real(host, port, **kwargs)
            infos = [
                (socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("::1", port, 0, 0)),
                (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port)),
            ]
            family = kwargs.get("family", 0)
            return [i for i in infos if family in (0, i[0])]

        loop.getaddrinfo = getaddrinfo  # type: ignore[method-assign]
        async with server:
            await connect_n_times(DEMO, port, count)
    finally:
        filler.close()
        hole.close()
        v4.close()


def main() -> int:
    parser = argparse.ArgumentParser(description="asyncio.open_connection on a racing loop")
    parser.add_argument("host", nargs="?")
    parser.add_argument("port", nargs="?", type=int)
    parser.add_argument("--uvloop", action="store_true", help="uvloop's loop (the extra)")
    parser.add_argument("-n", type=int, default=3, help="connections (default 3)")
    args = parser.parse_args()
    factory = functools.partial(
        aioconnlist.loop.new_event_loop, uvloop=args.uvloop, timeout=10, on_event=describe
    )
    work = demo(args.n) if args.host is None else connect_n_times(args.host, args.port, args.n)
    if sys.version_info >= (3, 12):
        asyncio.run(work, loop_factory=factory)
    else:  # 3.10 and 3.11: run the loop by hand (3.11 also has asyncio.Runner(loop_factory=))
        loop = factory()
        try:
            asyncio.set_event_loop(loop)
            loop.run_until_complete(work)
        finally:
            asyncio.set_event_loop(None)
            loop.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
