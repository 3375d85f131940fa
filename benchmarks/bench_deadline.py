"""How far past its deadline a race ends: aioconnlist against plain asyncio, idle and with a
busy Python thread, measured in one run.

    python benchmarks/bench_deadline.py [--rounds 200] [--timeout 0.05]

ours:  ``aioconnlist.connect_by_list`` over three black holes (``listen(0)`` listeners with a
       full accept queue), ``attempt_delay=0.01``, ``timeout``: three attempts in flight when
       the deadline ends them, and the backups of those still silent after the delay (a
       second SYN on a fresh socket: up to six sockets in flight).
ours, no backups: the same with ``backup_attempts=False``: the three attempts alone.
ours, one attempt: ``connect_by_list`` over the first black hole alone.
plain: ``asyncio.wait_for(asyncio.open_connection(black hole), timeout)``: one attempt.
aiohappyeyeballs: ``asyncio.wait_for(aiohappyeyeballs.start_connection(the three), timeout)``
       with ``happy_eyeballs_delay=0.01``: the same three attempts in flight as ours.
The API is imported before the first call (``aioconnlist`` loads it on first use), so the
figures are the race's, not the import's; the first call of each still pays the process's
first race. The contenders alternate call by call (so all see the same load); "busy" runs a
thread that spins in pure Python (it takes the GIL for the whole switch interval, 5 ms,
whenever it can). Prints the overshoot (end - start - timeout) in ms: p50, p99 and max.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import socket
import statistics
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aioconnlist
from aioconnlist import ConnectTimeout
from tests.support import BlackHole

connect_by_list = aioconnlist.connect_by_list  # the lazy import, outside the timing


def _spin(stop: threading.Event) -> None:
    while not stop.is_set():
        total = 0
        for i in range(10_000):
            total += i


async def _ours(holes: list[tuple[str, int]], timeout: float, backups: bool = True) -> float:
    loop = asyncio.get_running_loop()
    start = loop.time()
    try:
        sock = await connect_by_list(
            holes,
            timeout=timeout,
            attempt_delay=0.01,
            local_addresses=None,
            history=None,
            backup_attempts=backups,
        )
    except ConnectTimeout:
        pass
    else:
        sock.close()
        raise RuntimeError("a black hole answered")
    return loop.time() - start - timeout


async def _ours_no_backups(holes: list[tuple[str, int]], timeout: float) -> float:
    return await _ours(holes, timeout, backups=False)


async def _ours_one(holes: list[tuple[str, int]], timeout: float) -> float:
    return await _ours(holes[:1], timeout)


async def _plain(holes: list[tuple[str, int]], timeout: float) -> float:
    loop = asyncio.get_running_loop()
    start = loop.time()
    try:
        _reader, writer = await asyncio.wait_for(asyncio.open_connection(*holes[0]), timeout)
    except (asyncio.TimeoutError, TimeoutError):
        pass
    else:
        writer.close()
        raise RuntimeError("a black hole answered")
    return loop.time() - start - timeout


async def _aiohappyeyeballs(holes: list[tuple[str, int]], timeout: float) -> float:
    import aiohappyeyeballs

    infos = [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", h) for h in holes]
    loop = asyncio.get_running_loop()
    start = loop.time()
    try:
        sock = await asyncio.wait_for(
            aiohappyeyeballs.start_connection(infos, happy_eyeballs_delay=0.01), timeout
        )
    except (asyncio.TimeoutError, TimeoutError):
        pass
    else:
        sock.close()
        raise RuntimeError("a black hole answered")
    return loop.time() - start - timeout


def _row(name: str, values: list[float]) -> str:
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return (
        f"| {name} | {statistics.median(ordered) * 1e3:.1f} | {p99 * 1e3:.1f} "
        f"| {ordered[-1] * 1e3:.1f} |"
    )


async def main(rounds: int, timeout: float) -> None:
    holes = [BlackHole(f"127.0.0.{i}") for i in (2, 3, 4)]
    addresses = [h.address for h in holes]
    results: dict[str, list[float]] = {}
    try:
        for load in ("idle", "busy"):
            stop = threading.Event()
            thread = None
            if load == "busy":
                thread = threading.Thread(target=_spin, args=(stop,), daemon=True)
                thread.start()
            try:
                for _ in range(rounds):
                    results.setdefault(f"ours, {load}", []).append(await _ours(addresses, timeout))
                    results.setdefault(f"ours, no backups, {load}", []).append(
                        await _ours_no_backups(addresses, timeout)
                    )
                    results.setdefault(f"ours, one attempt, {load}", []).append(
                        await _ours_one(addresses, timeout)
                    )
                    results.setdefault(f"plain asyncio, {load}", []).append(
                        await _plain(addresses, timeout)
                    )
                    results.setdefault(f"aiohappyeyeballs, {load}", []).append(
                        await _aiohappyeyeballs(addresses, timeout)
                    )
            finally:
                stop.set()
                if thread is not None:
                    thread.join()
    finally:
        for h in holes:
            with contextlib.suppress(OSError):
                h.close()
    print(f"deadline overshoot, timeout={timeout} s, {rounds} calls each (ms)")
    print("| case | p50 | p99 | max |")
    print("|---|---|---|---|")
    for load in ("idle", "busy"):
        for contender in (
            "ours",
            "ours, no backups",
            "aiohappyeyeballs",
            "ours, one attempt",
            "plain asyncio",
        ):
            print(_row(f"{contender}, {load}", results[f"{contender}, {load}"]))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--timeout", type=float, default=0.05)
    args = parser.parse_args()
    asyncio.run(main(args.rounds, args.timeout))
