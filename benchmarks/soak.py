"""Soak: N races on loopback with random faults; fails when anything grows.

    python benchmarks/soak.py [--races 20000] [--every 10000] [--concurrency 64] [--uvloop]

Each race draws one scenario: a healthy listener; a refusal then the listener; every pair
refused; a black hole (a full-backlog ``listen(0)`` listener) then the listener after the
attempt delay; a black hole until the deadline (``ConnectTimeout``); a caller that cancels
mid-race; an ``on_event`` that raises an Exception (logged, ignored) or a CancelledError (the
race ends cancelled, nothing leaks). Refused destinations are spread over 127.0.0.3-254 and
24 ports, so the shared history sees more distinct pairs than it may keep (4096). Every
outcome is checked (a connected socket, a ConnectError, a cancellation) and the socket closed.

Every ``--every`` races it prints: races, open fds, asyncio tasks, RSS (MB), history size and
the p50/p99 of the race time (ms) of that block. It exits 1 (with the reason) when, at the end,
fds or tasks are above their value at the start, the history is above its bound, RSS grew more
than ``--rss-growth`` MB from the first block to the last, or an outcome was wrong.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import logging
import os
import random
import socket
import statistics
import sys
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aioconnlist
from aioconnlist import ConnectError, ConnectTimeout, PairHistory, RaceEvent
from tests.support import BlackHole

SCENARIOS = (
    "ok",
    "refused_then_ok",
    "all_refused",
    "hole_then_ok",
    "timeout",
    "cancel",
    "raising_callback",
    "cancelling_callback",
)


class AcceptingListener:
    """A loopback listener whose connections the loop accepts and closes at once."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1024)
        self.sock.setblocking(False)
        self.address = self.sock.getsockname()
        self.loop = loop
        loop.add_reader(self.sock.fileno(), self._accept)

    def _accept(self) -> None:
        for _ in range(64):
            try:
                conn, _ = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            conn.close()

    def close(self) -> None:
        self.loop.remove_reader(self.sock.fileno())
        self.sock.close()


def _refused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def _raise_runtime(_event: RaceEvent) -> None:
    raise RuntimeError("soak: a broken on_event callback")


def _raise_cancelled(event: RaceEvent) -> None:
    if event.kind == "started" and event.index == 1:
        raise asyncio.CancelledError


class Soak:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.rng = random.Random(args.seed)
        self.history = PairHistory(max_pairs=args.history_pairs)
        self.durations: list[float] = []
        self.errors: list[str] = []
        self.done = 0
        self.outcomes: dict[str, int] = {}
        self.by_scenario: dict[str, list[float]] = {}

    def _refused(self) -> tuple[str, int]:
        return (f"127.0.0.{self.rng.randrange(3, 255)}", self.rng.choice(self.refused_ports))

    async def one(self) -> None:
        loop = asyncio.get_running_loop()
        scenario = self.rng.choice(SCENARIOS)
        ok = self.listener.address
        hole = self.hole.address
        options: dict[str, object] = {
            "history": self.history,
            "local_addresses": None,
            "attempt_delay": 0.01,
            "sort": False,
        }
        expect: tuple[type[BaseException], ...] = ()
        cancel_after: float | None = None
        if scenario == "ok":
            addresses = [ok]
        elif scenario == "refused_then_ok":
            addresses = [self._refused(), ok]
        elif scenario == "all_refused":
            addresses = [self._refused(), self._refused()]
            expect = (ConnectError,)
        elif scenario == "hole_then_ok":
            addresses = [hole, ok]
        elif scenario == "timeout":
            addresses = [hole, self._refused()] if self.rng.random() < 0.5 else [hole]
            options["timeout"] = self.rng.uniform(0.005, 0.03)
            expect = (ConnectTimeout, ConnectError)
        elif scenario == "cancel":
            addresses = [hole, hole]
            cancel_after = self.rng.uniform(0.0, 0.02)
            expect = (asyncio.CancelledError,)
        elif scenario == "raising_callback":
            addresses = [self._refused(), hole, ok]
            options["on_event"] = _raise_runtime
        else:  # cancelling_callback: the second attempt's "started" raises CancelledError
            addresses = [hole, ok]
            options["on_event"] = _raise_cancelled
            expect = (asyncio.CancelledError,)
        start = loop.time()
        task = asyncio.ensure_future(aioconnlist.connect_by_list(addresses, **options))
        timer = None if cancel_after is None else loop.call_later(cancel_after, task.cancel)
        try:
            sock = await asyncio.shield(task)
        except (Exception, asyncio.CancelledError) as exc:
            if not task.done():  # we were cancelled ourselves: not a scenario outcome
                raise
            if not isinstance(exc, expect or (Exception,)) or not expect:
                self.errors.append(f"{scenario}: unexpected {exc!r}")
            outcome = type(exc).__name__
        else:
            if expect and scenario != "cancel":
                self.errors.append(f"{scenario}: connected, expected {expect}")
            try:
                sock.getpeername()
            except OSError as exc:
                self.errors.append(f"{scenario}: the socket is not connected: {exc!r}")
            sock.close()
            outcome = "connected"
        finally:
            if timer is not None:
                timer.cancel()
        self.durations.append(loop.time() - start)
        self.by_scenario.setdefault(scenario, []).append(loop.time() - start)
        key = f"{scenario}:{outcome}"
        self.outcomes[key] = self.outcomes.get(key, 0) + 1

    async def worker(self, count: int) -> None:
        for _ in range(count):
            await self.one()
            self.done += 1
            if self.done % self.args.every == 0:
                self.report()

    def report(self) -> None:
        block = sorted(self.durations)
        self.durations = []
        rss = self.process.memory_info().rss / 2**20
        row = {
            "races": self.done,
            "fds": len(os.listdir("/proc/self/fd")),
            "tasks": len(asyncio.all_tasks()),
            "rss": rss,
            "history": len(self.history),
        }
        self.rows.append(row)
        p50 = statistics.median(block) * 1e3 if block else 0.0
        p99 = block[int(len(block) * 0.99)] * 1e3 if block else 0.0
        print(
            f"{row['races']:>9} {row['fds']:>5} {row['tasks']:>6} {rss:>8.1f} "
            f"{row['history']:>8} {p50:>8.2f} {p99:>8.2f}",
            flush=True,
        )

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        self.process = psutil.Process()
        self.rows: list[dict[str, float]] = []
        self.listener = AcceptingListener(loop)
        self.hole = BlackHole("127.0.0.2")
        self.refused_ports = [_refused_port() for _ in range(24)]  # 252 x 24 distinct pairs
        # the broken callbacks log (once per race); the soak counts, it does not print them
        logging.getLogger("aioconnlist").setLevel(logging.CRITICAL)
        # warm-up, then the baseline
        for _ in range(50):
            with contextlib.suppress(Exception, asyncio.CancelledError):
                (await aioconnlist.connect_by_list([self.listener.address])).close()
        await asyncio.sleep(0)
        fds0 = len(os.listdir("/proc/self/fd"))
        tasks0 = len(asyncio.all_tasks())
        print(
            f"soak: {self.args.races} races, {self.args.concurrency} at a time, "
            f"{type(loop).__module__}.{type(loop).__name__}, python {sys.version.split()[0]}"
        )
        print(
            f"{'races':>9} {'fds':>5} {'tasks':>6} {'rss MB':>8} {'history':>8} "
            f"{'p50 ms':>8} {'p99 ms':>8}"
        )
        wall = time.perf_counter()
        share, rest = divmod(self.args.races, self.args.concurrency)
        await asyncio.gather(
            *(self.worker(share + (i < rest)) for i in range(self.args.concurrency))
        )
        wall = time.perf_counter() - wall
        if self.durations:
            self.report()
        await asyncio.sleep(0)
        fds = len(os.listdir("/proc/self/fd"))
        tasks = len(asyncio.all_tasks())
        self.listener.close()
        self.hole.close()
        print(
            f"{self.done} races in {wall:.1f} s; outcomes: "
            + ", ".join(f"{k} {v}" for k, v in sorted(self.outcomes.items()))
        )
        if self.args.verbose:
            for name, times in sorted(self.by_scenario.items()):
                times.sort()
                print(
                    f"  {name:>20}: p50 {statistics.median(times) * 1e3:.2f} ms, "
                    f"p99 {times[int(len(times) * 0.99)] * 1e3:.2f} ms"
                )
        failures = list(self.errors[:10])
        if len(self.errors) > 10:
            failures.append(f"... {len(self.errors) - 10} more wrong outcomes")
        if fds > fds0:
            failures.append(f"fds grew: {fds0} -> {fds}")
        if tasks > tasks0:
            failures.append(f"tasks grew: {tasks0} -> {tasks}")
        if len(self.history) > self.history.max_pairs:
            failures.append(f"history above its bound: {len(self.history)}")
        if len(self.rows) >= 2:
            growth = self.rows[-1]["rss"] - self.rows[0]["rss"]
            if growth > self.args.rss_growth:
                failures.append(f"RSS grew {growth:.1f} MB from the first block to the last")
        for failure in failures:
            print(f"FAIL: {failure}")
        if not failures:
            print("OK: nothing grew")
        return 1 if failures else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--races", type=int, default=20_000)
    parser.add_argument("--every", type=int, default=10_000, help="report every N races")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--history-pairs", type=int, default=4096)
    parser.add_argument("--rss-growth", type=float, default=16.0, help="MB allowed")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--uvloop", action="store_true")
    parser.add_argument("--verbose", action="store_true", help="times per scenario")
    args = parser.parse_args()
    soak = Soak(args)
    if args.uvloop:
        import uvloop

        return uvloop.run(soak.run())
    return asyncio.run(soak.run())


if __name__ == "__main__":
    ipaddress.ip_address("127.0.0.1")  # (loopback only: every address above is 127.0.0.x)
    sys.exit(main())
