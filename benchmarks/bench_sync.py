"""Synchronous HTTP: stock requests / urllib3 / urllib against aioconnlist's, side by side.

    sudo python benchmarks/bench_sync.py [--rounds 3] [--count 5] [--loopback-count 200]

Two networks:

- **broken IPv6** (the lab of `tests.netlab`, root): ``broken6.lab`` has an AAAA that drops
  every packet and an A 20 ms away (SYNs held by the delay line); an HTTP responder answers
  one request per connection, so every request connects. Each (library, variant) runs in a
  fresh process in the client namespace, ``--count`` requests with a 1 s timeout (stock
  libraries wait that long on the IPv6 address, then try IPv4); "first" is the process's
  first request, "later" the median of the others. Rounds alternate stock and ours.
- **loopback** (no root): ``http://127.0.0.1:PORT/`` served by ``python -m http.server`` in a
  child process (HTTP/1.0: one request per connection); ``--loopback-count`` requests per
  round with a new client object in this process, rounds alternating stock and ours; "first"
  is a new client's first request (the process is warm), "later" the median of the others.

Ours: ``requests.Session()`` with `aioconnlist.requests.HTTPAdapter`, `aioconnlist.urllib3
.PoolManager()`, ``urllib.request.urlopen`` after `aioconnlist.blocking.install()`; all
defaults. Ratios are stock ÷ ours (above 1: ours is faster).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

LIBRARIES = ("requests", "urllib3", "urllib")
RTT = 0.02


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


def lab_rows(rounds: int, count: int) -> list[list[str]]:
    from tests.netlab import netlab_problem
    from tests.netlab.lab import NetLab, delay_port, service_ip

    problem = netlab_problem()
    if problem is not None:
        print(f"(lab skipped: {problem})", file=sys.stderr)
        return []
    port = delay_port(RTT)
    v6, v4 = service_ip("drop", 6), service_ip("ok", 4)
    url = f"http://broken6.lab:{port}/"
    firsts: dict[str, list[float]] = {}
    laters: dict[str, list[float]] = {}
    with NetLab.build("bsync", hosts={"broken6.lab": [v6, v4]}) as lab:
        lab.agent_call("listen", endpoints=[[v4, port]], http=True)
        for _ in range(rounds):
            for library in LIBRARIES:
                for variant in (f"{library}-stock", library):
                    spec = {"library": variant, "url": url, "count": count, "timeout": 1.0}
                    result = lab.run_client({"history": "none", "sync": spec}, timeout=120)
                    times = [r["elapsed"] for r in result["sync"] if r["error"] is None]
                    failed = [r["error"] for r in result["sync"] if r["error"] is not None]
                    if failed:
                        raise SystemExit(f"{variant}: {failed[0]}")
                    firsts.setdefault(variant, []).append(times[0])
                    laters.setdefault(variant, []).extend(times[1:])
    rows = []
    for library in LIBRARIES:
        stock, ours = f"{library}-stock", library
        f_s, f_o = statistics.median(firsts[stock]), statistics.median(firsts[ours])
        l_s, l_o = statistics.median(laters[stock]), statistics.median(laters[ours])
        rows.append(
            [
                f"broken IPv6 (AAAA black-holed, A {RTT * 1000:.0f} ms)",
                library,
                ms(f_s),
                ms(f_o),
                f"{f_s / f_o:.1f}x",
                ms(l_s),
                ms(l_o),
                f"{l_s / l_o:.1f}x",
            ]
        )
    return rows


def _fetcher(variant: str) -> Any:
    """A fresh client of ``variant`` (``urllib`` ours needs install(), done by the caller)."""
    from tests.netlab.sync_client import _fetcher as make

    return make(variant, None, 5.0)


def loopback_rows(rounds: int, count: int) -> list[list[str]]:
    from aioconnlist import blocking

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(port)],
        cwd=REPO / "benchmarks",
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        for _ in range(100):  # bounded: until the server listens
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        firsts: dict[str, list[float]] = {}
        laters: dict[str, list[float]] = {}
        for _ in range(rounds):
            for library in LIBRARIES:
                for variant in (f"{library}-stock", library):
                    try:
                        fetch = _fetcher(variant)  # (ours of urllib: install()s)
                        times = []
                        for _ in range(count):
                            start = time.perf_counter()
                            fetch(url)
                            times.append(time.perf_counter() - start)
                    finally:
                        blocking.uninstall()
                    firsts.setdefault(variant, []).append(times[0])
                    laters.setdefault(variant, []).append(statistics.median(times[1:]))
    finally:
        server.terminate()
        server.wait(10)
    rows = []
    for library in LIBRARIES:
        stock, ours = f"{library}-stock", library
        f_s, f_o = statistics.median(firsts[stock]), statistics.median(firsts[ours])
        l_s, l_o = statistics.median(laters[stock]), statistics.median(laters[ours])
        rows.append(
            [
                "healthy loopback (127.0.0.1)",
                library,
                ms(f_s),
                ms(f_o),
                f"{f_s / f_o:.2f}x",
                ms(l_s),
                ms(l_o),
                f"{l_s / l_o:.2f}x",
            ]
        )
    return rows


def resolve_costs(count: int = 500, rounds: int = 5) -> list[str]:
    """What resolving a name costs a blocking caller, per call: one AF_UNSPEC getaddrinfo
    (what create_connection does) against one lookup per family on two threads (RFC 8305 §3
    style: start on the first answer), new threads or a pool's. The name (``dual.bench``: ::1
    and 127.0.0.1) is in a private /etc/hosts with ``hosts: files`` (see `_private_hosts`), so
    no query leaves the machine."""
    import concurrent.futures
    import threading

    host = "dual.bench"

    def unspec() -> None:
        socket.getaddrinfo(host, 80, socket.AF_UNSPEC, socket.SOCK_STREAM)

    def threads() -> None:
        done = threading.Event()

        def one(family: int) -> None:
            with contextlib.suppress(OSError):
                socket.getaddrinfo(host, 80, family, socket.SOCK_STREAM)
            done.set()

        workers = [
            threading.Thread(target=one, args=(f,)) for f in (socket.AF_INET6, socket.AF_INET)
        ]
        for w in workers:
            w.start()
        done.wait()
        for w in workers:
            w.join()

    pool = concurrent.futures.ThreadPoolExecutor(2)

    def pooled() -> None:
        futures = [
            pool.submit(socket.getaddrinfo, host, 80, f, socket.SOCK_STREAM)
            for f in (socket.AF_INET6, socket.AF_INET)
        ]
        concurrent.futures.wait(futures, return_when=concurrent.futures.FIRST_COMPLETED)
        concurrent.futures.wait(futures)

    variants = {
        "one getaddrinfo(AF_UNSPEC), calling thread": unspec,
        "one lookup per family, two new threads": threads,
        "one lookup per family, a 2-thread pool": pooled,
    }
    medians: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(rounds):
        for name, run in variants.items():
            start = time.perf_counter()
            for _ in range(count):
                run()
            medians[name].append((time.perf_counter() - start) / count)
    pool.shutdown()
    base = statistics.median(medians["one getaddrinfo(AF_UNSPEC), calling thread"])
    lines = []
    for name, values in medians.items():
        value = statistics.median(values)
        lines.append(f"{name:<46} {value * 1e6:8.1f} us/call  {value / base:5.2f}x")
    return lines


def _private_hosts() -> None:
    """Re-run this command in a private mount namespace (root, ``unshare``) whose /etc/hosts
    names ``dual.bench`` and whose nsswitch asks files only: no DNS query is sent."""
    import shutil
    import tempfile

    if os.geteuid() != 0 or shutil.which("unshare") is None:
        raise SystemExit("--resolve-only needs root and unshare(1) (a private /etc/hosts)")
    with tempfile.TemporaryDirectory() as tmp:
        hosts, nsswitch = Path(tmp, "hosts"), Path(tmp, "nsswitch.conf")
        hosts.write_text("127.0.0.1 localhost\n::1 dual.bench\n127.0.0.1 dual.bench\n")
        nsswitch.write_text("hosts: files\n")
        script = (
            f"mount --bind {hosts} /etc/hosts && mount --bind {nsswitch} /etc/nsswitch.conf"
            ' && exec "$@"'
        )
        command = ["unshare", "--mount", "sh", "-c", script, "sh", sys.executable, *sys.argv]
        env = {**os.environ, "BENCH_SYNC_PRIVATE_HOSTS": "1"}
        raise SystemExit(subprocess.run(command, env=env, check=False).returncode)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--count", type=int, default=5, help="requests per lab process")
    parser.add_argument("--loopback-count", type=int, default=200)
    parser.add_argument("--no-lab", action="store_true")
    parser.add_argument("--resolve-only", action="store_true", help="only the resolver costs")
    args = parser.parse_args()
    if args.resolve_only:
        if os.environ.get("BENCH_SYNC_PRIVATE_HOSTS") != "1":
            _private_hosts()  # re-runs this script there
        print("\n".join(resolve_costs()))
        return
    print(f"python {platform.python_version()} on {sys.platform}, {os.cpu_count()} CPUs")
    header = [
        "network",
        "library",
        "stock first",
        "ours first",
        "first stock ÷ ours",
        "stock later (median)",
        "ours later (median)",
        "later stock ÷ ours",
    ]
    rows = [] if args.no_lab else lab_rows(args.rounds, args.count)
    rows += loopback_rows(args.rounds, args.loopback_count)
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print("times in ms; stock libraries capped at a 1 s timeout on the lab")


if __name__ == "__main__":
    main()
