"""Cost of the blocking facade on a healthy loopback path, against socket.create_connection.

    python benchmarks/bench_blocking.py [-n 500] [--rounds 21] [--instructions 300]

Each variant makes N connections to a loopback listener whose accept queue a child process
keeps draining (accept + close), and closes each with a reset (``SO_LINGER`` 0: no TIME_WAIT
entry, see `ABORT`). The variants are measured in alternating rounds (one round
of each in turn, so a burst of load on the shared machine hits all of them), and for each the
median over rounds of the wall time and of the CPU time (user + system of this process) per
connection is printed with its ratio to ``socket.create_connection``'s median, followed by
the range of the per-round wall ratios (each round against the baseline's round next to it).
Then, unless ``--instructions 0``, each variant runs in a fresh interpreter under valgrind's
callgrind, and its instructions per connection are ``(Ir(warm-up + K calls) - Ir(warm-up)) / K``
(user space only: the kernel's work in the system calls is not counted; both counts make
their calls in one round, so a round's fixed cost cancels out). The variants:

- ``socket.create_connection``: the baseline.
- ``blocking.create_connection([address], local_addresses=None)`` and with default options,
  and ``blocking.create_connection(address)``: the very call the baseline makes (an IP
  literal's ``(host, port)``, the form requests and urllib3 pass).
- ``blocking.connect_by_list(sock, ...)`` (a fresh socket per call, as the baseline makes
  one) with ``local_addresses=None`` and with default options ("auto": the kernel's source
  first, the machine's other addresses behind it).
- ``blocking.connect_by_list`` called from inside a running event loop (it must cost the
  same there: the facade runs its race on the calling thread either way).
- ``asyncio.run(aioconnlist.connect_by_list(...))`` per call: what the facade would cost if
  it paid an event loop's fixed cost on every call (N/4 calls per round).

Target (issue 17): ``connect_by_list`` <= 1.3x and ``create_connection`` <= 1.15x
``socket.create_connection``. On a shared machine the wall and CPU ratios move with the
load (the facade's Python work slows down more than the kernel's connect when the other CPU
is busy); the instruction counts do not.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import statistics
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import aioconnlist  # noqa: E402
from aioconnlist import blocking  # noqa: E402
from benchmarks import callgrind  # noqa: E402

CHILD_ENV = {
    **{k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"},
    "PYTHONHASHSEED": "0",
}


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
                    conn.close()
            finally:
                os._exit(0)

    def close(self) -> None:
        os.kill(self.pid, signal.SIGTERM)
        os.waitpid(self.pid, 0)
        self.sock.close()


#: SO_LINGER on, 0 s: close() resets the connection and leaves no TIME_WAIT entry. The client
#: closes first (before the child has accepted, mostly), so a plain close would leave one per
#: connection on the client's side: a run of tens of thousands of connections fills the
#: ephemeral port range with them (28,000 ports: a minute of this benchmark), and from then on
#: every connect searches it for a port to reuse, so every variant's time grows as the run
#: goes on (+40% seen) and the ratios are diluted by that search. Every variant closes so.
ABORT = struct.pack("ii", 1, 0)


def abort(sock: socket.socket) -> None:
    """Close ``sock`` with a reset (see `ABORT`)."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, ABORT)
    sock.close()


def variants(address: tuple[str, int]) -> dict[str, tuple[Callable[[], None], int]]:
    """name -> (one call, how many calls per N in a round: 1, or 4 for the slow one)."""
    kernel = {"local_addresses": None}

    def plain() -> None:
        abort(socket.create_connection(address))

    def facade_create(**options: object) -> Callable[[], None]:
        return lambda: abort(blocking.create_connection([address], **options))  # type: ignore[arg-type]

    def facade_connect(**options: object) -> Callable[[], None]:
        def call() -> None:
            sock = socket.socket()
            try:
                blocking.connect_by_list(sock, [address], **options)  # type: ignore[arg-type]
            finally:
                abort(sock)

        return call

    def fresh_loop() -> None:
        abort(asyncio.run(aioconnlist.connect_by_list([address], **kernel)))  # type: ignore[arg-type]

    return {
        "socket.create_connection": (plain, 1),
        "blocking.create_connection, local_addresses=None": (facade_create(**kernel), 1),
        "blocking.create_connection, defaults": (facade_create(), 1),
        "blocking.create_connection(address), defaults": (
            lambda: abort(blocking.create_connection(address)),
            1,
        ),
        "blocking.connect_by_list, local_addresses=None": (facade_connect(**kernel), 1),
        "blocking.connect_by_list, defaults": (facade_connect(), 1),
        "blocking.connect_by_list inside a running loop": (facade_connect(**kernel), 1),
        "asyncio.run(connect_by_list) per call": (fresh_loop, 4),
    }


IN_LOOP = "blocking.connect_by_list inside a running loop"


def one_round(name: str, fn: Callable[[], None], n: int) -> tuple[float, float]:
    """(wall, cpu) seconds per call over ``n`` calls."""

    def measure() -> tuple[float, float]:
        cpu = time.process_time()
        wall = time.perf_counter()
        for _ in range(n):
            fn()
        calls = max(n, 1)  # (0 calls: the count of a warm-up alone)
        return (time.perf_counter() - wall) / calls, (time.process_time() - cpu) / calls

    if name != IN_LOOP:
        return measure()

    async def inside() -> tuple[float, float]:
        return measure()

    return asyncio.run(inside())


def timings(address: tuple[str, int], n: int, rounds: int) -> None:
    chosen = variants(address)
    for name, (fn, slow) in chosen.items():  # warm-up: caches, the first plan
        one_round(name, fn, min(100, n // slow))
    walls: dict[str, list[float]] = {name: [] for name in chosen}
    cpus: dict[str, list[float]] = {name: [] for name in chosen}
    for _ in range(rounds):
        for name, (fn, slow) in chosen.items():
            wall, cpu = one_round(name, fn, max(1, n // slow))
            walls[name].append(wall)
            cpus[name].append(cpu)
    base = "socket.create_connection"
    base_wall = statistics.median(walls[base])
    base_cpu = statistics.median(cpus[base])
    print(f"{n} loopback connections per round, {rounds} alternating rounds, medians")
    print(f"python {sys.version.split()[0]} on {sys.platform}")
    print(f"{'':50s} {'wall':>8s} {'ratio':>6s} {'cpu':>8s} {'ratio':>6s}  per-round wall ratios")
    for name in chosen:
        wall = statistics.median(walls[name])
        cpu = statistics.median(cpus[name])
        ratios = [w / b for w, b in zip(walls[name], walls[base], strict=True)]
        print(
            f"{name:50s} {wall * 1e6:5.1f} us {wall / base_wall:5.2f}x "
            f"{cpu * 1e6:5.1f} us {cpu / base_cpu:5.2f}x  {min(ratios):.2f}-{max(ratios):.2f}x",
            flush=True,
        )


COUNT = """
import asyncio, socket, sys
sys.path.insert(0, {root!r})
sys.argv = ["bench_blocking", *sys.argv[1:]]
from benchmarks.bench_blocking import variants, one_round
name, k, host, port = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
fn, _ = variants((host, port))[name]
from aioconnlist._drivers import planning
# 50 calls of warm-up (imports, caches, the first plan), then the network follower's first go
# (a thread that starts 20 ms after the first plan: in both counts, never in one only), then
# k more calls (the in-loop variant pays its asyncio.run twice in both counts)
one_round(name, fn, 50)
planning.wait_followed(30.0)
one_round(name, fn, k)
"""


def callgrind_instructions(name: str, k: int, address: tuple[str, int]) -> int:
    """Instructions (callgrind's Ir) of a fresh interpreter making 50 + ``k`` calls."""
    code = COUNT.format(root=str(ROOT))
    args = ["-c", code, name, str(k), address[0], str(address[1])]
    return callgrind.instructions(args, cwd=ROOT, env=CHILD_ENV)


def instructions(address: tuple[str, int], k: int, only: str = "") -> None:
    print(f"\ninstructions per call (callgrind, user space, ({k} + 50 calls) - (50 calls)) / {k}")
    subprocess.run(  # byte-compiled beforehand: no run pays for compiling
        [
            sys.executable,
            "-m",
            "compileall",
            "-q",
            str(ROOT / "aioconnlist"),
            str(ROOT / "benchmarks"),
        ],
        check=True,
        env=CHILD_ENV,
    )
    base = None
    for name, (_fn, slow) in variants(address).items():
        if only not in name and name != "socket.create_connection":
            continue
        calls = max(1, k // slow)
        warm = callgrind_instructions(name, 0, address)
        per = (callgrind_instructions(name, calls, address) - warm) / calls
        base = base or per
        print(f"{name:50s} {per / 1e3:7.1f}k instr. {per / base:5.2f}x", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=500, help="connections per round")
    parser.add_argument("--rounds", "--repeat", type=int, default=21, help="rounds per variant")
    parser.add_argument(
        "--instructions", type=int, default=300, help="calls counted under callgrind (0: none)"
    )
    parser.add_argument("--rounds-only", action="store_true", help="no callgrind counts")
    parser.add_argument("--instructions-only", action="store_true", help="callgrind counts only")
    parser.add_argument("--only", default="", help="the variants whose name contains this")
    args = parser.parse_args(argv)
    server = DrainingListener()
    try:
        pin(0)
        if not args.instructions_only:
            timings(server.address, args.n, args.rounds)
        if args.instructions and not args.rounds_only:
            instructions(server.address, args.instructions, args.only)
    finally:
        server.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
