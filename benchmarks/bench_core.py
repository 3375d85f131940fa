"""Per-connect cost of aioconnlist against aiohappyeyeballs on a healthy loopback path.

    python benchmarks/bench_core.py [--quick]

Scenarios (each measured in alternating rounds in one run, median of rounds):
  single      one address, sequential connect+close
  list1000    a 1,000-address list whose first address works
  concurrent  1,000 concurrent connects
Prints seconds per connect and the ratio aioconnlist / aiohappyeyeballs.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohappyeyeballs

import aioconnlist

HERE = Path(__file__).resolve().parent
Connect = Callable[[], Awaitable[socket.socket]]


def start_server(host: str) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "loopback_server.py"), host],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    return proc, int(proc.stdout.readline())


def addrinfos(addresses: list[tuple[str, int]]) -> list[Any]:
    return [
        (socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", address)
        for address in addresses
    ]


def contenders(addresses: list[tuple[str, int]]) -> dict[str, Connect]:
    """The same connects for each library: aiohappyeyeballs, and aioconnlist two ways."""
    infos = addrinfos(addresses)
    return {
        "aiohappyeyeballs": lambda: aiohappyeyeballs.start_connection(
            infos, happy_eyeballs_delay=0.25
        ),
        "aioconnlist local_addresses=None": lambda: aioconnlist.connect_by_list(
            addresses, local_addresses=None
        ),
        "aioconnlist defaults": lambda: aioconnlist.connect_by_list(addresses),
    }


async def sequential(connect: Connect, n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        (await connect()).close()
    return (time.perf_counter() - start) / n


async def concurrent(connect: Connect, n: int) -> float:
    start = time.perf_counter()
    socks = await asyncio.gather(*(connect() for _ in range(n)))
    elapsed = time.perf_counter() - start
    for s in socks:
        s.close()
    return elapsed / n


async def measure(
    runner: Callable[[Connect, int], Awaitable[float]],
    contenders: dict[str, Connect],
    n: int,
    rounds: int,
) -> dict[str, float]:
    samples: dict[str, list[float]] = {name: [] for name in contenders}
    for connect in contenders.values():  # warm-up: caches, imports
        await runner(connect, max(1, n // 10))
    for _ in range(rounds):
        for name, connect in contenders.items():
            samples[name].append(await runner(connect, n))
    return {name: statistics.median(values) for name, values in samples.items()}


async def main(quick: bool) -> None:
    proc, port = start_server("127.0.0.1")
    try:
        target = ("127.0.0.1", port)
        many = [target] + [(f"127.0.{i // 250 + 1}.{i % 250 + 1}", 9) for i in range(999)]
        n, rounds = (200, 3) if quick else (1000, 5)
        single = contenders([target])
        scenarios: list[tuple[str, Any, dict[str, Connect], int]] = [
            ("single address", sequential, single, n),
            ("1,000 addresses, first works", sequential, contenders(many), n // 5),
            ("1,000 concurrent connects", concurrent, single, 1000),
        ]
        print(f"{'scenario':32} {'contender':34} {'µs/connect':>11} {'ratio':>7}")
        for title, runner, racers, count in scenarios:
            results = await measure(runner, racers, count, rounds)
            base = results["aiohappyeyeballs"]
            for name, value in results.items():
                print(f"{title:32} {name:34} {value * 1e6:11.1f} {value / base:7.2f}")
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(timeout=10)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer connects, for a smoke run")
    asyncio.run(main(parser.parse_args().quick))
