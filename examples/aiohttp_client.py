"""An aiohttp client whose connections are raced by aioconnlist.

    python examples/aiohttp_client.py https://example.org/ [more URLs...]
    python examples/aiohttp_client.py --demo     # offline: a local server, a black-holed ::1

Every connection attempt is printed as it happens (on_event), so you see which address won
and how long the race took. The demo serves "demo.test" on 127.0.0.1 while its ::1 address is
a black hole (a loopback listener whose queue is full): the first request waits the 250 ms
attempt delay before IPv4 starts; the next new connections go to IPv4 at once, because the
history remembers that ::1 did not answer.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import sys
import time
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.abc import AbstractResolver

from aioconnlist import PairHistory, RaceEvent
from aioconnlist.aiohttp import ConnListConnector


def print_event(event: RaceEvent) -> None:
    detail = f" ({event.error.strerror or event.error})" if event.error is not None else ""
    print(f"  {event.time * 1000:7.1f} ms  {event.kind:<9} {event.pair}{detail}")


async def fetch_all(urls: list[str], **connector_options: Any) -> None:
    connector = ConnListConnector(on_event=print_event, **connector_options)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        for url in urls:
            print(f"GET {url}")
            started = time.monotonic()
            try:
                async with session.get(url) as response:
                    body = await response.read()
            except aiohttp.ClientError as e:
                print(f"  failed: {e!r}")
                continue
            took = (time.monotonic() - started) * 1000
            print(f"  -> {response.status}, {len(body)} bytes in {took:.1f} ms")


class DemoResolver(AbstractResolver):
    """demo.test -> ::1 (black hole) and 127.0.0.1 (the demo server); per family."""

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[Any]:
        table = {socket.AF_INET6: "::1", socket.AF_INET: "127.0.0.1"}
        return [
            {"hostname": host, "host": ip, "port": port, "family": fam, "proto": 0,
             "flags": socket.AI_NUMERICHOST}
            for fam, ip in table.items()
            if host == "demo.test" and family in (socket.AF_UNSPEC, fam)
        ]  # fmt: skip

    async def close(self) -> None:
        pass


async def hello(request: web.Request) -> web.Response:
    return web.Response(text="hello from 127.0.0.1\n")


async def demo() -> None:
    app = web.Application()
    app.router.add_get("/", hello)
    runner = web.AppRunner(app)
    await runner.setup()
    server_sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server_sock.bind(("127.0.0.1", 0))
    port = server_sock.getsockname()[1]
    await web.SockSite(runner, server_sock).start()
    # the black hole: a listen(0) socket on ::1 whose only queue slot is taken
    hole = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    filler = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    try:
        hole.bind(("::1", port))
        hole.listen(0)
        filler.connect(("::1", port))
        await fetch_all(
            [f"http://demo.test:{port}/"] * 3,
            resolver=DemoResolver(),
            history=PairHistory(),
            force_close=True,  # a new connection per request, to show the history at work
        )
    finally:
        filler.close()
        hole.close()
        await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("urls", nargs="*", help="URLs to GET")
    parser.add_argument("--demo", action="store_true", help="run the offline demo")
    parser.add_argument("--attempt-delay", type=float, default=0.25)
    args = parser.parse_args(argv)
    if args.demo:
        asyncio.run(demo())
    elif args.urls:
        asyncio.run(fetch_all(args.urls, attempt_delay=args.attempt_delay))
    else:
        parser.print_usage()
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
