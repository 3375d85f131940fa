"""httpx with its own transports against httpx with aioconnlist's, side by side in one run.

    python benchmarks/bench_httpx.py              # healthy loopback only (no root needed)
    sudo python benchmarks/bench_httpx.py --lab   # also the lab's broken-IPv6 name (root)

Keep-alive is off (``Limits(max_keepalive_connections=0)``), so every request opens a new
connection: what a connect-heavy program (a CLI, a serverless handler, a crawler) pays.
Stock and ours alternate (on loopback request by request, two clients side by side; in the
lab process by process; the order flips every round) so that the machine's load hits both
alike; the table gives medians over all rounds and the ratio
stock / ours (above 1: ours is faster). Both use their defaults (ours: the system resolver,
the process-wide history, attempt delay 0.25 s).

- **loopback**: hypercorn (tests/httpx_servers.py, a subprocess) on 127.0.0.1,
  ``http://127.0.0.1:PORT/`` (a literal: on a host whose /etc/hosts lacks ``::1 localhost``
  an AAAA lookup of ``localhost`` would go to the DNS server), requests from this process:
  the cost of our race and stream wrapping on a path where there is nothing to win. The
  "later" columns are the median of every request.
- **broken6** (``--lab``): the network lab (tests/netlab), ``broken6.lab`` resolving to a
  black-holed IPv6 address and to IPv4 20 ms away, hypercorn in the server namespace; each
  round is a fresh client process in the client namespace (tests/httpx_lab_client.py)
  making ``--lab-requests`` requests, each on a new connection: "first" is a process's
  first request, "later" the median of the rest. httpx's connect timeout is 2 s (stock
  sync httpx walks getaddrinfo's list with ``socket.create_connection``: it waits that long
  on the black hole every time).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import httpx  # noqa: E402

from aioconnlist import PairHistory  # noqa: E402
from aioconnlist.httpx import AsyncHTTPTransport, HTTPTransport  # noqa: E402
from tests.httpx_support import running_servers  # noqa: E402

CONNECT_TIMEOUT = 2.0


def ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.1f} ms"


def ratio(stock: float | None, ours: float | None) -> str:
    return "-" if stock is None or not ours else f"{stock / ours:.2f}x"


# ----------------------------------------------------------------------------- loopback


NO_KEEPALIVE = httpx.Limits(max_keepalive_connections=0)  # a new connection per request


def sync_round(url: str, history: PairHistory, n: int, ours_first: bool) -> dict[bool, list[float]]:
    """``n`` requests on each of two clients, stock and ours, taking turns."""
    times: dict[bool, list[float]] = {False: [], True: []}
    ours = HTTPTransport(limits=NO_KEEPALIVE, history=history)
    with (
        httpx.Client(transport=httpx.HTTPTransport(limits=NO_KEEPALIVE)) as stock_client,
        httpx.Client(transport=ours) as our_client,
    ):
        clients = {False: stock_client, True: our_client}
        for _ in range(n):
            for which in (ours_first, not ours_first):
                start = time.perf_counter()
                clients[which].get(url).raise_for_status()
                times[which].append(time.perf_counter() - start)
    return times


async def async_round(
    url: str, history: PairHistory, n: int, ours_first: bool
) -> dict[bool, list[float]]:
    times: dict[bool, list[float]] = {False: [], True: []}
    ours = AsyncHTTPTransport(limits=NO_KEEPALIVE, history=history)
    async with (
        httpx.AsyncClient(transport=httpx.AsyncHTTPTransport(limits=NO_KEEPALIVE)) as stock_client,
        httpx.AsyncClient(transport=ours) as our_client,
    ):
        clients = {False: stock_client, True: our_client}
        for _ in range(n):
            for which in (ours_first, not ours_first):
                start = time.perf_counter()
                (await clients[which].get(url)).raise_for_status()
                times[which].append(time.perf_counter() - start)
    return times


def loopback(rounds: int, per_round: int, sides: list[str]) -> list[list[str]]:
    rows = []
    with running_servers(Path(tempfile.mkdtemp())) as servers:
        url = f"http://127.0.0.1:{servers.plain}/"
        history = PairHistory()
        runners: dict[str, Callable[[int, bool], dict[bool, list[float]]]] = {
            "sync": lambda n, first: sync_round(url, history, n, first),
            "async (asyncio)": lambda n, first: asyncio.run(async_round(url, history, n, first)),
        }
        try:
            import uvloop

            runners["async (uvloop)"] = lambda n, first: uvloop.run(
                async_round(url, history, n, first)
            )
        except ImportError:
            pass
        for side, run in runners.items():
            if side.split()[0] not in sides:
                continue
            run(3, True)  # warm-up: imports, the first thread pool, the history
            times: dict[bool, list[float]] = {False: [], True: []}
            for r in range(rounds):
                for which, found in run(per_round, r % 2 == 0).items():
                    times[which].extend(found)
            stock, mine = statistics.median(times[False]), statistics.median(times[True])
            rows.append(["loopback", side, "-", "-", "-", ms(stock), ms(mine), ratio(stock, mine)])
    return rows


# ----------------------------------------------------------------------------- the lab


def lab_rows(rounds: int, requests: int, sides: list[str]) -> list[list[str]]:
    from tests.httpx_lab import http_lab, run_client
    from tests.netlab import netlab_problem

    problem = netlab_problem()
    if problem is not None:
        print(f"(lab skipped: {problem})", file=sys.stderr)
        return []
    rows = []
    clients = [("sync", None), ("async (asyncio)", "asyncio"), ("async (uvloop)", "uvloop")]
    with http_lab("bench") as lab:
        for side, loop in clients:
            if side.split()[0] not in sides:
                continue
            firsts: dict[bool, list[float]] = {False: [], True: []}
            laters: dict[bool, list[float]] = {False: [], True: []}
            for r in range(rounds):
                for ours in (r % 2 == 1, r % 2 == 0):
                    job: dict[str, Any] = {
                        "transport": "ours" if ours else "stock",
                        "side": "sync" if loop is None else "async",
                        "loop": loop,
                        "requests": requests,
                        "connect_timeout": CONNECT_TIMEOUT,
                    }
                    results = run_client(lab, job)
                    failed = [res["error"] for res in results if res["status"] != 200]
                    if failed:
                        raise RuntimeError(f"{side} {job['transport']}: {failed[0]}")
                    firsts[ours].append(results[0]["elapsed"])
                    laters[ours].extend(res["elapsed"] for res in results[1:])
            f_stock, f_ours = statistics.median(firsts[False]), statistics.median(firsts[True])
            l_stock, l_ours = statistics.median(laters[False]), statistics.median(laters[True])
            rows.append(
                [
                    "broken6",
                    side,
                    ms(f_stock),
                    ms(f_ours),
                    ratio(f_stock, f_ours),
                    ms(l_stock),
                    ms(l_ours),
                    ratio(l_stock, l_ours),
                ]
            )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lab", action="store_true", help="also the lab (needs root)")
    parser.add_argument("--rounds", type=int, default=10, help="alternating rounds (loopback)")
    parser.add_argument("--per-round", type=int, default=30, help="requests per loopback round")
    parser.add_argument("--lab-rounds", type=int, default=4, help="processes per library (lab)")
    parser.add_argument("--lab-requests", type=int, default=5, help="requests per process")
    parser.add_argument("--sides", nargs="*", default=["sync", "async"], choices=["sync", "async"])
    args = parser.parse_args()
    rows = loopback(args.rounds, args.per_round, args.sides)
    if args.lab:
        rows += lab_rows(args.lab_rounds, args.lab_requests, args.sides)
    header = [
        "path",
        "client",
        "first: stock",
        "first: ours",
        "ratio",
        "later: stock",
        "later: ours",
        "ratio",
    ]
    print(f"httpx {httpx.__version__}, Python {sys.version.split()[0]}; new connection per request")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(row) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
