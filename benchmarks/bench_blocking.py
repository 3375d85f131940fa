"""Cost of the blocking facade on a healthy loopback path, against socket.create_connection.

    python benchmarks/bench_blocking.py [-n 2000] [--repeat 5]

Each variant makes N connections to a loopback listener whose accept queue a child process
keeps draining (accept + close), and the median of ``--repeat`` rounds per connection
is printed with its ratio to ``socket.create_connection``. The variants:

- ``socket.create_connection``: the baseline.
- ``blocking.create_connection(local_addresses=None)`` and with default options.
- ``blocking.connect_by_list(sock, ...)`` (a fresh socket per call, as the baseline makes
  one) with ``local_addresses=None`` and with default options ("auto": the kernel's source
  first, the machine's other addresses behind it).
- ``asyncio.run(aioconnlist.connect_by_list(...))`` per call: what the facade would cost if
  it paid an event loop's fixed cost on every call.
- ``blocking.connect_by_list`` called from inside a running event loop (it must cost the
  same there: the facade runs its race on the calling thread either way).

Target (the issue): the facade costs <= 2x ``socket.create_connection`` (aim: 1.5x).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aioconnlist
from aioconnlist import blocking


def pin(which: int) -> None:
    """Run on one CPU (the first or the last): with the server process on another, timings do
    not depend on where the scheduler happens to put the two (bimodal on a 2-CPU machine)."""
    if hasattr(os, "sched_setaffinity"):
        cpus = sorted(os.sched_getaffinity(0))
        if len(cpus) > 1:
            os.sched_setaffinity(0, {cpus[which]})


class DrainingListener:
    """A loopback listener whose accept queue never fills: a child process accepts and closes.

    A process, not a thread: an accepting thread of this interpreter would take the GIL
    whenever the measured code released it (in every connect, close, dup2...) and bill its
    own work to whichever variant makes the most system calls.
    """

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4096)
        self.address = self.sock.getsockname()
        self.pid = os.fork()
        if self.pid == 0:  # the child: accept and close until told to stop
            try:
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                pin(-1)
                while True:
                    conn, _ = self.sock.accept()
                    # The server closes first, so TIME_WAIT entries are left on its side. On
                    # the client's side, tens of thousands of them (a few rounds of thousands
                    # of connections) would make finding a free ephemeral port slow and every
                    # variant's timing erratic (whole rounds 5-10x slower).
                    conn.close()
            finally:
                os._exit(0)

    def close(self) -> None:
        os.kill(self.pid, signal.SIGTERM)
        os.waitpid(self.pid, 0)
        self.sock.close()


def per_call(fn: Callable[[], None], n: int, repeat: int) -> float:
    """Median seconds per call over ``repeat`` rounds of ``n`` calls (after a warm-up)."""
    for _ in range(min(100, n)):
        fn()
    rounds = []
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(n):
            fn()
        rounds.append((time.perf_counter() - start) / n)
    return statistics.median(rounds)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=2000, help="connections per round")
    parser.add_argument("--repeat", type=int, default=5, help="rounds per variant (median)")
    args = parser.parse_args(argv)
    server = DrainingListener()
    pin(0)
    address = server.address
    kernel = {"local_addresses": None}

    def plain() -> None:
        socket.create_connection(address).close()

    def facade_create(**options: object) -> Callable[[], None]:
        return lambda: blocking.create_connection([address], **options).close()

    def facade_connect(**options: object) -> Callable[[], None]:
        def call() -> None:
            with socket.socket() as sock:
                blocking.connect_by_list(sock, [address], **options)

        return call

    def fresh_loop() -> None:
        asyncio.run(aioconnlist.connect_by_list([address], **kernel)).close()  # type: ignore[arg-type]

    variants: list[tuple[str, Callable[[], None], int]] = [
        ("socket.create_connection", plain, args.n),
        ("blocking.create_connection, local_addresses=None", facade_create(**kernel), args.n),
        ("blocking.create_connection, defaults", facade_create(), args.n),
        ("blocking.connect_by_list, local_addresses=None", facade_connect(**kernel), args.n),
        ("blocking.connect_by_list, defaults", facade_connect(), args.n),
        ("asyncio.run(connect_by_list) per call", fresh_loop, max(1, args.n // 4)),
    ]
    in_loop = ("blocking.connect_by_list inside a running loop", facade_connect(**kernel))
    print(f"{args.n} loopback connections per round, median of {args.repeat} rounds")
    print(f"python {sys.version.split()[0]} on {sys.platform}")
    baseline = None
    try:
        for name, fn, n in variants:
            seconds = per_call(fn, n, args.repeat)
            baseline = baseline or seconds
            print(f"{name:50s} {seconds * 1e6:8.1f} us/call  {seconds / baseline:5.2f}x")
        name, fn = in_loop

        async def measure() -> float:
            return per_call(fn, args.n, args.repeat)

        seconds = asyncio.run(measure())
        assert baseline is not None
        print(f"{name:50s} {seconds * 1e6:8.1f} us/call  {seconds / baseline:5.2f}x")
    finally:
        server.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
