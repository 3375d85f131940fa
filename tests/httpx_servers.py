"""Servers for the httpx/httpcore tests, run as a subprocess (so the test process counts only
its own, client-side descriptors): hypercorn (HTTP/1.1; HTTP/2 over TLS by ALPN) and a small
HTTP CONNECT proxy (plain and over TLS).

    python tests/httpx_servers.py '{"host": "127.0.0.1", "cert": ..., "key": ...}'

prints one JSON line with the ports (``plain``, ``tls``, ``proxy``, ``proxy_tls``, and
``uds`` when asked) and serves until its standard input closes. ``plain_port`` asks for a
fixed port (the network lab's delay line delays SYNs by port number). The app answers every
path with JSON saying what it saw (HTTP version, client and server address); ``/hang``
never answers (until the client goes away).
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import ssl
import sys
from typing import Any

from hypercorn.asyncio import serve
from hypercorn.config import Config


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    assert scope["type"] == "http"
    while (await receive()).get("more_body"):
        pass
    if scope["path"] == "/hang":
        while (await receive())["type"] != "http.disconnect":
            pass
        return
    body = json.dumps(
        {
            "http_version": scope["http_version"],
            "client": list(scope["client"]) if scope.get("client") else None,
            "server": list(scope["server"]) if scope.get("server") else None,
            "path": scope["path"],
        }
    ).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (OSError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()


async def proxy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """HTTP CONNECT only, to loopback targets only."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
        method, target, _ = head.split(b"\r\n", 1)[0].decode().split(" ", 2)
        host, _, port = target.rpartition(":")
        host = host.strip("[]")
        if method != "CONNECT" or host not in ("localhost", "127.0.0.1", "::1"):
            writer.write(b"HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\n\r\n")
            await writer.drain()
            writer.close()
            return
        up_reader, up_writer = await asyncio.open_connection(host, int(port))
    except (OSError, ValueError, asyncio.IncompleteReadError):
        writer.close()
        return
    writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
    await writer.drain()
    await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


def listening(host: str, port: int = 0) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    return sock


async def main() -> None:
    spec = json.loads(sys.argv[1])
    host = spec.get("host", "127.0.0.1")
    plain = listening(host, spec.get("plain_port", 0))
    ports: dict[str, Any] = {"plain": plain.getsockname()[1]}
    config = Config()
    config.insecure_bind = [f"fd://{plain.fileno()}"]
    config.bind = []
    config.accesslog = None
    config.errorlog = None
    config.keep_alive_timeout = 30
    kept = [plain]
    proxies = []
    if "cert" in spec:
        tls = listening(host)
        kept.append(tls)
        ports["tls"] = tls.getsockname()[1]
        config.bind = [f"fd://{tls.fileno()}"]
        config.certfile, config.keyfile = spec["cert"], spec["key"]
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(spec["cert"], spec["key"])
        proxies.append(await asyncio.start_server(proxy, host, 0))
        proxies.append(await asyncio.start_server(proxy, host, 0, ssl=context))
        ports["proxy"] = proxies[0].sockets[0].getsockname()[1]
        ports["proxy_tls"] = proxies[1].sockets[0].getsockname()[1]
    if "uds" in spec:
        unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        unix.bind(spec["uds"])
        unix.listen(128)
        kept.append(unix)
        config.insecure_bind.append(f"fd://{unix.fileno()}")
        ports["uds"] = spec["uds"]
    if not config.bind:  # without TLS, hypercorn serves `bind` and ignores `insecure_bind`
        config.bind, config.insecure_bind = config.insecure_bind, []
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_reader(sys.stdin.fileno(), lambda: os.read(sys.stdin.fileno(), 1024) or stop.set())
    server = asyncio.ensure_future(serve(app, config, shutdown_trigger=stop.wait))  # type: ignore[arg-type]
    print(json.dumps(ports), flush=True)
    await server
    for p in proxies:
        p.close()


if __name__ == "__main__":
    asyncio.run(main())
