"""httpx clients whose connections are raced by aioconnlist.

    python examples/httpx_client.py        # offline demo: a local server, a black-holed ::1
    python examples/httpx_client.py https://example.org/ [more URLs...]
    python examples/httpx_client.py --sync https://example.org/

Every connection attempt is printed as it happens (``on_event``). The demo serves
"demo.test" on 127.0.0.1 while its ::1 address is a black hole (a loopback listener whose
queue is full), with keep-alive off so that each request opens a new connection: the first
one waits the 250 ms attempt delay before IPv4 starts; the next ones go to IPv4 at once,
because the history remembers that ::1 did not answer.
"""

from __future__ import annotations

import argparse
import asyncio
import http.server
import ipaddress
import socket
import sys
import threading
import time

import httpx

from aioconnlist import Endpoint, PairHistory, RaceEvent
from aioconnlist.httpx import AsyncHTTPTransport, HTTPTransport


def print_event(event: RaceEvent) -> None:
    detail = f" ({event.error.strerror or event.error})" if event.error is not None else ""
    print(f"  {event.time * 1000:7.1f} ms  {event.kind:<9} {event.pair}{detail}")


def report(
    url: str, started: float, response: httpx.Response | None, error: Exception | None
) -> None:
    took = (time.monotonic() - started) * 1000
    if response is None:
        print(f"  failed after {took:.1f} ms: {error!r}")
    else:
        size = len(response.content)
        print(f"  -> {response.status_code} {response.http_version}, {size} bytes in {took:.1f} ms")


async def fetch_async(urls: list[str], transport: AsyncHTTPTransport) -> None:
    async with httpx.AsyncClient(transport=transport, timeout=30) as client:
        for url in urls:
            print(f"GET {url}")
            started = time.monotonic()
            try:
                report(url, started, await client.get(url), None)
            except httpx.HTTPError as error:
                report(url, started, None, error)


def fetch_sync(urls: list[str], transport: HTTPTransport) -> None:
    with httpx.Client(transport=transport, timeout=30) as client:
        for url in urls:
            print(f"GET {url}")
            started = time.monotonic()
            try:
                report(url, started, client.get(url), None)
            except httpx.HTTPError as error:
                report(url, started, None, error)


class DemoResolver:
    """demo.test -> ::1 (the black hole) and 127.0.0.1 (the demo server), per family."""

    async def resolve(self, host: str, port: int, family: socket.AddressFamily) -> list[Endpoint]:
        table = {socket.AF_INET6: "::1", socket.AF_INET: "127.0.0.1"}
        return [Endpoint(ipaddress.ip_address(table[family]), port)] if host == "demo.test" else []


class Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"hello from 127.0.0.1\n"
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def demo() -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hello)
    port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    # the black hole: a listen(0) socket on ::1 whose only queue slot is taken
    hole = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    filler = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    try:
        hole.bind(("::1", port))
        hole.listen(0)
        filler.connect(("::1", port))
        transport = AsyncHTTPTransport(
            limits=httpx.Limits(max_keepalive_connections=0),  # a new connection per request
            resolver=DemoResolver(),
            history=PairHistory(),
            on_event=print_event,
        )
        asyncio.run(fetch_async([f"http://demo.test:{port}/"] * 3, transport))
    finally:
        filler.close()
        hole.close()
        server.shutdown()
        server.server_close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("urls", nargs="*", help="URLs to GET (none: the offline demo)")
    parser.add_argument("--sync", action="store_true", help="httpx.Client instead of AsyncClient")
    parser.add_argument("--http2", action="store_true", help="HTTP/2 (needs the http2 extra)")
    args = parser.parse_args(argv)
    if not args.urls:
        demo()
    elif args.sync:
        fetch_sync(args.urls, HTTPTransport(http2=args.http2, on_event=print_event))
    else:
        asyncio.run(
            fetch_async(args.urls, AsyncHTTPTransport(http2=args.http2, on_event=print_event))
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
