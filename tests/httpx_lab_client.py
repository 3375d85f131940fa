"""An httpx client run inside the network lab's client namespace (also by
benchmarks/bench_httpx.py): reads a JSON job on stdin, prints JSON results.

Job: ``{"url": ..., "requests": N, "transport": "ours" | "stock", "side": "async" | "sync",
"loop": "asyncio" | "uvloop"}``. Each request gets a new client, so a new connection (and,
with our transport, a new race sharing the process-wide history). Per request: ``elapsed``
(seconds, the whole request), ``status``, and with our transport the race ``events``
(kind, destination, time since the race started).
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

TIMEOUT = httpx.Timeout(5.0)


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


def run_sync(job: dict[str, Any]) -> list[dict[str, Any]]:
    results = []
    for _ in range(job["requests"]):
        events: list[RaceEvent] = []
        transport: httpx.BaseTransport = (
            HTTPTransport(on_event=events.append)
            if job["transport"] == "ours"
            else httpx.HTTPTransport()
        )
        start = time.perf_counter()
        response, error = None, None
        with httpx.Client(transport=transport, timeout=TIMEOUT) as client:
            try:
                response = client.get(job["url"])
            except httpx.HTTPError as exc:
                error = exc
            results.append({**outcome(start, response, error), "events": record(events)})
    return results


async def run_async(job: dict[str, Any]) -> list[dict[str, Any]]:
    results = []
    for _ in range(job["requests"]):
        events: list[RaceEvent] = []
        transport: httpx.AsyncBaseTransport = (
            AsyncHTTPTransport(on_event=events.append)
            if job["transport"] == "ours"
            else httpx.AsyncHTTPTransport()
        )
        start = time.perf_counter()
        response, error = None, None
        async with httpx.AsyncClient(transport=transport, timeout=TIMEOUT) as client:
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
