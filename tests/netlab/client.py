"""The lab's client side: run one scenario inside the client namespace, print JSON results.

Started by path as ``ip netns exec CLI python client.py`` with the scenario as JSON on stdin::

    {"history": "fresh" | "default" | "none",      # shared by every call of the scenario
     "loop": "asyncio" | "uvloop",
     "probes": [{"target": [ip, port], "source": ip | null, "timeout": s}],  # plain sockets
     "calls": [{"addresses": [...], "options": {...}, "echo": bool,        # connect_by_list
                "api": "async" | "blocking"}],  # blocking: on a socket of the first's family
     "races": {"count": n, "concurrency": k, "addresses": [...], "options": {...}},
     "sync": {"library": "requests" | "urllib3" | "urllib" (+ "-stock"), "url": ..., "count": n},
     "after": [probes, run last]}

Times are ``time.monotonic()`` (one clock for every namespace) or seconds since a call began.
Option values "inf" become ``math.inf``.
"""

from __future__ import annotations

import asyncio
import errno
import gc
import json
import math
import os
import socket
import sys
import time
from typing import Any


def fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


def errno_name(code: int | None) -> str | None:
    return None if code is None else errno.errorcode.get(code, str(code))


def probe(spec: dict[str, Any]) -> dict[str, Any]:
    """One blocking ``socket.connect`` (the lab's self-test, no aioconnlist involved)."""
    ip, port = spec["target"]
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    out: dict[str, Any] = {"target": [ip, port]}
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(spec.get("timeout", 2.0))
        if spec.get("source"):
            sock.bind((spec["source"], 0))
        start = time.monotonic()
        try:
            sock.connect((ip, port))
            out.update(ok=True, sockname=list(sock.getsockname()[:2]))
        except TimeoutError:
            out.update(ok=False, errno=errno.ETIMEDOUT, errno_name="ETIMEDOUT")
        except OSError as e:
            out.update(ok=False, errno=e.errno, errno_name=errno_name(e.errno))
        out["elapsed"] = time.monotonic() - start
    return out


def options_from(spec: dict[str, Any], history: Any) -> dict[str, Any]:
    options = dict(spec)
    for key in ("attempt_delay", "timeout"):
        if options.get(key) == "inf":
            options[key] = math.inf
    if history != "unset":
        options.setdefault("history", history)
    return options


def describe_attempts(attempts: Any) -> list[dict[str, Any]]:
    return [
        {
            "pair": str(a.pair),
            "destination": str(a.pair.destination),
            "started": a.started,
            "ended": a.ended,
            "outcome": a.outcome,
            "errno": None if a.error is None else a.error.errno,
            "errno_name": None if a.error is None else errno_name(a.error.errno),
        }
        for a in attempts
    ]


async def one_call(spec: dict[str, Any], history: Any) -> dict[str, Any]:
    import aioconnlist

    events: list[dict[str, Any]] = []

    def on_event(event: Any) -> None:
        events.append(
            {
                "kind": event.kind,
                "index": event.index,
                "destination": str(event.pair.destination),
                "source": None if event.pair.source is None else str(event.pair.source.ip),
                "time": event.time,
                "outcome": event.outcome,
                "errno_name": None if event.error is None else errno_name(event.error.errno),
                "backup": getattr(event, "backup", False),
            }
        )

    options = options_from(spec.get("options", {}), history)
    options.setdefault("on_event", on_event)
    out: dict[str, Any] = {"events": events}
    out["t_start"] = start = time.monotonic()
    try:
        if spec.get("api") == "blocking":
            sock = blocking_call(spec["addresses"], options, out)
        else:
            sock = await aioconnlist.connect_by_list(spec["addresses"], **options)
    except OSError as e:
        out["t_end"] = end = time.monotonic()
        out.update(
            ok=False,
            elapsed=end - start,
            errno=e.errno,
            errno_name=errno_name(e.errno),
            error=str(e),
            error_type=type(e).__name__,
            error_mro=[c.__name__ for c in type(e).__mro__],
            attempts=describe_attempts(getattr(e, "attempts", ())),
        )
        return out
    out["t_end"] = end = time.monotonic()
    try:
        out.update(
            ok=True,
            elapsed=end - start,
            sockname=list(sock.getsockname()[:2]),
            peername=list(sock.getpeername()[:2]),
            blocking=sock.getblocking(),
        )
        if spec.get("echo"):
            loop = asyncio.get_running_loop()
            sock.setblocking(False)
            await loop.sock_sendall(sock, b"ping")

            async def read_echo() -> bytes:
                got = b""
                while len(got) < 4:
                    chunk = await loop.sock_recv(sock, 4 - len(got))
                    if not chunk:
                        break
                    got += chunk
                return got

            out["echo"] = (await asyncio.wait_for(read_echo(), 5)).decode(errors="replace")
            out["t_echo"] = time.monotonic()
    finally:
        sock.close()
    return out


def blocking_call(addresses: list[str], options: dict[str, Any], out: dict[str, Any]) -> Any:
    """`aioconnlist.blocking.connect_by_list` on a new socket of the first address's family.

    Notes in ``out`` whether the socket behind the caller's descriptor is still the one it
    had ("same_file": the caller's socket itself connected) and, on error, what the caller's
    socket looks like afterwards ("caller": fd kept, address, connected or not)."""
    from aioconnlist import blocking

    family = socket.AF_INET6 if addresses[0].startswith("[") else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    fd, file = sock.fileno(), os.fstat(sock.fileno()).st_ino
    try:
        blocking.connect_by_list(sock, addresses, **options)
    except BaseException:
        out["caller"] = {
            "same_fd": sock.fileno() == fd,
            "sockname": list(sock.getsockname()[:2]),
            "connected": _connected(sock),
        }
        sock.close()
        raise
    out["same_file"] = os.fstat(sock.fileno()).st_ino == file
    return sock


def _connected(sock: socket.socket) -> bool:
    try:
        sock.getpeername()
    except OSError:
        return False
    return True


async def races(spec: dict[str, Any], history: Any) -> dict[str, Any]:
    """Many races; the fd count before and after shows whether any socket leaked."""
    import aioconnlist

    options = options_from(spec.get("options", {}), history)
    addresses = spec["addresses"]
    results: dict[str, Any] = {"ok": 0, "failed": 0, "errors": []}

    async def one() -> None:
        try:
            sock = await aioconnlist.connect_by_list(addresses, **options)
        except OSError as e:
            results["failed"] += 1
            if len(results["errors"]) < 5:
                results["errors"].append(f"{type(e).__name__}: {e}")
            return
        results["ok"] += 1
        sock.close()

    await one()  # warm-up: caches, loop internals
    results.update(ok=0, failed=0, errors=[])
    gc.collect()
    before = fd_count()
    start = time.monotonic()
    count, concurrency = spec["count"], spec.get("concurrency", 1)
    done = 0
    while done < count:
        batch = min(concurrency, count - done)
        await asyncio.gather(*(one() for _ in range(batch)))
        done += batch
    elapsed = time.monotonic() - start
    gc.collect()
    await asyncio.sleep(0)  # let closed transports' callbacks run
    after = fd_count()
    tasks = len(asyncio.all_tasks()) - 1
    return {**results, "fds_before": before, "fds_after": after, "tasks": tasks, "elapsed": elapsed}


async def run(scenario: dict[str, Any]) -> dict[str, Any]:
    import aioconnlist
    from aioconnlist._drivers import planning

    aioconnlist.connect_by_list  # noqa: B018 (the package root is lazy: load the API untimed)
    if scenario.get("follow_first", True):  # (False: the first race is the process's first)
        planning._start()  # the process's network watcher (its socket): before fds are counted
        planning.wait_followed(30.0)  # it reads the network in its own thread
    kind = scenario.get("history", "fresh")
    history: Any
    if kind == "fresh":
        history = aioconnlist.PairHistory()
    elif kind == "none":
        history = None
    else:
        history = "unset"  # the library's default, shared history
    out: dict[str, Any] = {"fds_start": fd_count()}
    out["probes"] = [probe(p) for p in scenario.get("probes", [])]
    out["calls"] = [await one_call(c, history) for c in scenario.get("calls", [])]
    if "races" in scenario:
        out["races"] = await races(scenario["races"], history)
    if "sync" in scenario:  # synchronous HTTP libraries (tests/netlab/sync_client.py)
        from tests.netlab.sync_client import run_sync

        out["sync"] = run_sync(scenario["sync"])
    out["after"] = [probe(p) for p in scenario.get("after", [])]  # keeps the process alive
    gc.collect()
    out["fds_end"] = fd_count()
    return out


def main() -> None:
    scenario = json.load(sys.stdin)
    if scenario.get("loop") == "uvloop":
        import uvloop

        result = uvloop.run(run(scenario))
    else:
        result = asyncio.run(run(scenario))
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
