"""An httpx client run inside the network lab's client namespace (also by
benchmarks/bench_httpx.py): reads a JSON job on stdin, prints JSON results.

Job: ``{"url": ..., "requests": N, "transport": "ours" | "stock", "side": "async" | "sync",
"loop": "asyncio" | "uvloop", "connect_timeout": seconds (default 5)}``. One client; no
keep-alive, so each request opens a new connection (with our transport: a new race, all
sharing the process-wide history). Per request: ``elapsed`` (seconds, the whole request),
``status``, and with our transport the race ``events`` (kind, destination, time since the
race started).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

import httpx

from aioconnlist import RaceEvent
from aioconnlist.httpx import AsyncHTTPTransport, HTTPTransport


def record(events: list[RaceEvent]) -> list[dict[str, Any]]:
    return [
        {"kind": e.kind, "destination": str(e.pair.destination), "time": e.time} for e in events
    ]


def outcome(
    start: float, response: httpx.Response | None, error: BaseException | None
) -> dict[str, Any]:
    return {
        "elapsed": time.perf_counter() - start,
        "status": None if response is None else response.status_code,
        "error": None if error is None else f"{type(error).__name__}: {error}",
    }


def timeout_of(job: dict[str, Any]) -> httpx.Timeout:
    return httpx.Timeout(5.0, connect=job.get("connect_timeout", 5.0))


NO_KEEPALIVE = httpx.Limits(max_keepalive_connections=0)  # a new connection per request


def run_sync(job: dict[str, Any]) -> list[dict[str, Any]]:
    results = []
    events: list[RaceEvent] = []
    transport: httpx.BaseTransport = (
        HTTPTransport(limits=NO_KEEPALIVE, on_event=events.append)
        if job["transport"] == "ours"
        else httpx.HTTPTransport(limits=NO_KEEPALIVE)
    )
    with httpx.Client(transport=transport, timeout=timeout_of(job)) as client:
        for _ in range(job["requests"]):
            events.clear()
            start = time.perf_counter()
            response, error = None, None
            try:
                response = client.get(job["url"])
            except httpx.HTTPError as exc:
                error = exc
            results.append({**outcome(start, response, error), "events": record(events)})
    return results


async def run_async(job: dict[str, Any]) -> list[dict[str, Any]]:
    results = []
    events: list[RaceEvent] = []
    transport: httpx.AsyncBaseTransport = (
        AsyncHTTPTransport(
            limits=NO_KEEPALIVE,
            on_event=events.append,
        )
        if job["transport"] == "ours"
        else httpx.AsyncHTTPTransport(limits=NO_KEEPALIVE)
    )
    async with httpx.AsyncClient(transport=transport, timeout=timeout_of(job)) as client:
        for _ in range(job["requests"]):
            events.clear()
            start = time.perf_counter()
            response, error = None, None
            try:
                response = await client.get(job["url"])
            except httpx.HTTPError as exc:
                error = exc
            results.append({**outcome(start, response, error), "events": record(events)})
    return results


def main() -> None:
    job = json.loads(sys.stdin.read())
    if job["side"] == "sync":
        results = run_sync(job)
    elif job.get("loop") == "uvloop":
        import uvloop

        results = uvloop.run(run_async(job))
    else:
        results = asyncio.run(run_async(job))
    print(json.dumps({"results": results}))


if __name__ == "__main__":
    main()
