"""The lab's client for `aioconnlist.loop`: real asyncio clients, by name, on a chosen loop.

Started as ``ip netns exec CLI python loop_client.py`` with a scenario as JSON on stdin::

    {"flavour": "asyncio" | "uvloop",
     "mode": "ours" (new_event_loop) | "install" (install() on a stock loop) | "stock",
     "client": "open_connection" | "websockets" | "redis" | "asyncpg",
     "host": name, "port": n, "count": connections, "connect_timeout": s,
     "happy_eyeballs_delay": s | null,   # passed where the client lets it through
     "serve_loopback": bool}             # an echo server on ::1 and 127.0.0.1 at "port" first

Prints {"calls": [{"ok", "elapsed", "error", "events": [[kind, ip, time], ...], "fds"}],
"fds_before", "fds_after", "tasks", "restored"} ("fds": open after that call; the loop may
open some of its own on first use). Every connection is made, used (one round trip) and
closed in turn; one process history (a fresh `PairHistory`) is shared by its connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import sys
import time
from typing import Any


def fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


async def use_open_connection(host: str, port: int, spec: dict[str, Any]) -> None:
    kwargs: dict[str, Any] = {}
    if spec.get("happy_eyeballs_delay") is not None:
        kwargs["happy_eyeballs_delay"] = spec["happy_eyeballs_delay"]
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(host, port, **kwargs), spec["connect_timeout"]
    )
    try:
        writer.write(b"ping")
        assert await asyncio.wait_for(reader.readexactly(4), 5) == b"ping"
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def use_websockets(host: str, port: int, spec: dict[str, Any]) -> None:
    from websockets.asyncio.client import connect

    kwargs: dict[str, Any] = {"open_timeout": spec["connect_timeout"]}
    if spec.get("happy_eyeballs_delay") is not None:
        kwargs["happy_eyeballs_delay"] = spec["happy_eyeballs_delay"]
    async with connect(f"ws://{host}:{port}/", **kwargs) as ws:
        await ws.send("ping")
        assert await asyncio.wait_for(ws.recv(), 5) == "ping"


async def use_redis(host: str, port: int, spec: dict[str, Any]) -> None:
    import redis.asyncio
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    client = redis.asyncio.Redis(
        host=host,
        port=port,
        socket_connect_timeout=spec["connect_timeout"],
        retry=Retry(NoBackoff(), 0),  # one connect per call, for every loop alike
    )
    try:
        assert await client.ping()
    finally:
        await client.aclose()


async def use_asyncpg(host: str, port: int, spec: dict[str, Any]) -> None:
    import asyncpg

    conn = await asyncpg.connect(
        host=host, port=port, user="postgres", database="postgres", timeout=spec["connect_timeout"]
    )
    try:
        assert await conn.fetchval("SELECT 1") == 1
    finally:
        await conn.close()


CLIENTS = {
    "open_connection": use_open_connection,
    "websockets": use_websockets,
    "redis": use_redis,
    "asyncpg": use_asyncpg,
}


def preload(client: str) -> None:
    modules = {
        "websockets": ["websockets.asyncio.client"],
        "redis": ["redis.asyncio", "redis.backoff", "redis.retry"],
        "asyncpg": ["asyncpg"],
    }
    for name in modules.get(client, []):
        __import__(name)


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError):
        while data := await reader.read(1024):
            writer.write(data)
            await writer.drain()
    writer.close()


async def run(spec: dict[str, Any], events: list[Any]) -> dict[str, Any]:
    import aioconnlist.loop

    loop = asyncio.get_running_loop()
    servers = []
    if spec.get("serve_loopback"):
        for ip in ("::1", "127.0.0.1"):
            servers.append(await asyncio.start_server(echo, ip, spec["port"]))
    if spec["mode"] == "install":
        aioconnlist.loop.install(on_event=events.append, history=aioconnlist.PairHistory())
    use = CLIENTS[spec["client"]]
    preload(spec["client"])  # imports are not part of the first connection's time
    out: dict[str, Any] = {"calls": []}
    gc.collect()
    out["fds_before"] = fd_count()
    for _ in range(spec["count"]):
        start = time.monotonic()
        call: dict[str, Any] = {}
        try:
            await use(spec["host"], spec["port"], spec)
            call["ok"] = True
        except Exception as e:  # every failure is a result here
            call.update(ok=False, error=f"{type(e).__name__}: {e}")
        call["elapsed"] = time.monotonic() - start
        call["events"] = [
            [e.kind, e.pair.destination.ip.compressed, round(e.time, 4)] for e in events
        ]
        events.clear()
        gc.collect()
        await asyncio.sleep(0)
        call["fds"] = fd_count()
        out["calls"].append(call)
    gc.collect()
    await asyncio.sleep(0)  # closed transports' callbacks
    out["fds_after"] = fd_count()
    out["tasks"] = len(asyncio.all_tasks()) - 1
    if spec["mode"] == "install":
        aioconnlist.loop.uninstall()
        out["restored"] = "create_connection" not in vars(loop)
    for server in servers:
        server.close()
        await server.wait_closed()
    return out


def main() -> None:
    spec = json.load(sys.stdin)
    events: list[Any] = []
    uv = spec["flavour"] == "uvloop"
    if spec["mode"] == "ours":
        import aioconnlist.loop

        loop = aioconnlist.loop.new_event_loop(
            uvloop=uv, on_event=events.append, history=aioconnlist.PairHistory()
        )
    elif uv:
        import uvloop

        loop = uvloop.new_event_loop()
    else:
        loop = asyncio.new_event_loop()
    try:
        result = loop.run_until_complete(run(spec, events))
    finally:
        loop.close()
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
