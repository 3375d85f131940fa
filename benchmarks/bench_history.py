"""A fresh process's first connection to a host whose IPv6 is black-holed, after an earlier
process met it: aioconnlist with a history file against its peers, side by side in one run.

    sudo python benchmarks/bench_history.py [--rounds N]     # root: builds network namespaces

Builds the lab of `tests.netlab` (its own namespaces, removed at the end): ``broken6.lab``
resolves to a black-holed AAAA and an A that accepts after 20 ms (``broken6-b.lab`` and
``broken6-c.lab`` are two more such hosts). Every number is the first connection of a fresh
process in the client namespace (``getaddrinfo`` inside the timed region, as bench_peers),
median over alternating rounds; each round uses a new history file:

- cold: nothing learned (an empty history file)
- host learned: an earlier process of the same library connected once to broken6.lab
- path learned: an earlier process met broken6-b.lab and broken6-c.lab, not broken6.lab
- other network: as "host learned", but the client's default routes changed in between (the
  earlier process's evidence is for another network and must not be used)

Then the cost of history on a healthy loopback connect, in one process, alternating rounds:
the process-wide history in memory against the same history file-backed
(``AIOCONNLIST_HISTORY``), 2000 sequential connect+close per round.
Prints Markdown tables, then the issue's checks; exits 1 when a check fails.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

SELF = Path(__file__).resolve()
HERE = SELF.parent
NETNS_EXEC = ["ip", "netns", "exec"]
NICE = ["nice", "-n", "-10"]
LIBRARIES = ("aioconnlist", "aiohappyeyeballs", "asyncio", "trio")
CASES = ("cold", "host learned", "path learned", "other network")
RTT = 0.02
HOSTS = {"broken6.lab": 0, "broken6-b.lab": 1, "broken6-c.lab": 2}


def worker(job: dict[str, Any]) -> None:
    """One fresh process: connect to each of ``job["hosts"]`` once, print the times."""
    sys.path.insert(0, str(HERE))
    import bench_peers

    bench_peers.preload(job["library"])
    times = []
    for host in job["hosts"]:
        result = bench_peers.timed_runs({**job, "host": host, "runs": 1})
        times.append(result["times"][0])
    print(json.dumps(times))


def run_worker(lab: Any, library: str, hosts: list[str], port: int, history: Path) -> list[Any]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(HERE.parent), env.get("PYTHONPATH")) if p)
    env["AIOCONNLIST_HISTORY"] = str(history)
    job = {"library": library, "hosts": hosts, "port": port}
    proc = subprocess.run(
        [*NETNS_EXEC, lab.client_ns, *NICE, sys.executable, str(SELF), "--worker", json.dumps(job)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"worker {library} failed:\n{proc.stderr}")
    times: list[Any] = json.loads(proc.stdout)
    return times


def set_routes(lab: Any, second: bool) -> None:
    from tests.netlab.lab import S0_V4, S0_V6, S1_V4, S1_V6

    v4, v6, dev = (S1_V4, S1_V6, "c1") if second else (S0_V4, S0_V6, "c0")
    lab.ns_run(lab.client_ns, "ip", "route", "replace", "default", "via", v4, "dev", dev)
    lab.ns_run(lab.client_ns, "ip", "-6", "route", "replace", "default", "via", v6, "dev", dev)


def first_connections(rounds: int) -> dict[tuple[str, str], list[float | None]]:
    sys.path.insert(0, str(HERE.parent))
    from tests.netlab import netlab_problem
    from tests.netlab.lab import NetLab, delay_port, service_ip

    problem = netlab_problem()
    if problem is not None:
        raise SystemExit(f"bench_history: {problem}")
    port = delay_port(RTT)
    hosts = {
        name: [service_ip("drop", 6, variant), service_ip("ok", 4, variant)]
        for name, variant in HOSTS.items()
    }
    results: dict[tuple[str, str], list[float | None]] = {}
    with NetLab.build("bhist", hosts=hosts) as lab, tempfile.TemporaryDirectory() as tmp:
        for variant in HOSTS.values():
            lab.endpoint("ok", family=4, port=port, variant=variant)
        set_routes(lab, second=False)
        n = 0
        for _ in range(rounds):
            for library in LIBRARIES:
                for case in CASES:
                    n += 1
                    history = Path(tmp) / f"history-{n}.json"
                    if case == "host learned":
                        run_worker(lab, library, ["broken6.lab"], port, history)
                    elif case == "path learned":
                        run_worker(lab, library, ["broken6-b.lab", "broken6-c.lab"], port, history)
                    elif case == "other network":
                        run_worker(lab, library, ["broken6.lab"], port, history)
                        set_routes(lab, second=True)
                    try:
                        (took,) = run_worker(lab, library, ["broken6.lab"], port, history)
                    finally:
                        set_routes(lab, second=False)
                    results.setdefault((library, case), []).append(took)
    return results


# --- healthy loopback ------------------------------------------------------------------------


def healthy(rounds: int, per_round: int = 2000) -> dict[str, float]:
    """Seconds per connect+close on loopback: history in memory vs file-backed (one process)."""
    import aioconnlist
    from aioconnlist._io import history_file

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4096)
    address = listener.getsockname()
    memory = aioconnlist.PairHistory()
    with tempfile.TemporaryDirectory() as tmp:
        backed = aioconnlist.PairHistory.open(Path(tmp) / "history.json")

        async def run(history: aioconnlist.PairHistory) -> float:
            start = time.perf_counter()
            for _ in range(per_round):
                sock = await aioconnlist.connect_by_list([address], history=history)
                sock.close()
                conn, _ = listener.accept()
                conn.close()
            return (time.perf_counter() - start) / per_round

        samples: dict[str, list[float]] = {"in memory": [], "file-backed": []}

        async def main() -> None:
            await run(memory)  # warm-up: plan caches, imports
            await run(backed)
            for _ in range(rounds):
                samples["in memory"].append(await run(memory))
                samples["file-backed"].append(await run(backed))

        asyncio.run(main())
        store = history_file.file_of(backed)
        writes = store.writes if store is not None else -1
        if store is not None:
            store.close()
    listener.close()
    result = {k: statistics.median(v) for k, v in samples.items()}
    result["writes"] = writes
    return result


LOOP = """
import asyncio, json, os, socket, sys, time
import aioconnlist
listener = socket.socket()
listener.bind(("127.0.0.1", 0))
listener.listen(4096)
address = listener.getsockname()
async def main():
    for _ in range(200):  # warm-up
        sock = await aioconnlist.connect_by_list([address])
        sock.close()
        listener.accept()[0].close()
    start = time.perf_counter()
    for _ in range(int(sys.argv[1])):
        sock = await aioconnlist.connect_by_list([address])
        sock.close()
        listener.accept()[0].close()
    print((time.perf_counter() - start) / int(sys.argv[1]))
asyncio.run(main())
"""


def healthy_against(tree: str, rounds: int, per_round: int = 3000) -> int:
    """Healthy loopback connect (all defaults) of this tree (in memory, file-backed) against
    another checkout's (e.g. the main branch): fresh processes, alternating, medians."""
    samples: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        configs = {
            "other tree": (tree, None),
            "this tree, in memory": (str(HERE.parent), None),
            "this tree, AIOCONNLIST_HISTORY": (str(HERE.parent), str(Path(tmp) / "h.json")),
        }
        for _ in range(rounds):
            for name, (path, history) in configs.items():
                env = {k: v for k, v in os.environ.items() if k != "AIOCONNLIST_HISTORY"}
                env["PYTHONPATH"] = path
                if history:
                    env["AIOCONNLIST_HISTORY"] = history
                out = subprocess.run(
                    [sys.executable, "-c", LOOP, str(per_round)],
                    capture_output=True,
                    text=True,
                    env=env,
                    cwd=tmp,
                    check=True,
                    timeout=300,
                ).stdout
                samples.setdefault(name, []).append(float(out))
    base = statistics.median(samples["other tree"])
    print(f"Healthy loopback connect+close (defaults), median of {rounds} alternating processes:")
    for name, values in samples.items():
        value = statistics.median(values)
        spread = f"{min(values) * 1e6:.1f}-{max(values) * 1e6:.1f}"
        print(f"  {name:32} {value * 1e6:7.1f} µs  ({value / base:.3f}x; range {spread})")
    return 0


def ms(value: float | None) -> str:
    return ">= 2000 (timeout)" if value is None else f"{value * 1000:.1f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--healthy-against",
        metavar="TREE",
        help="only the healthy loopback cost, against another checkout (no lab, no root)",
    )
    args = parser.parse_args()
    if args.worker:
        worker(json.loads(args.worker))
        return 0
    if args.healthy_against:
        return healthy_against(args.healthy_against, max(args.rounds, 8))
    began = time.monotonic()
    results = first_connections(args.rounds)
    cost = healthy(max(5, args.rounds))
    elapsed = time.monotonic() - began

    def median(values: list[float | None]) -> float | None:
        if any(v is None for v in values):
            return None
        return statistics.median([v for v in values if v is not None])

    print(
        f"A fresh process's first connection to broken6.lab (AAAA black-holed, A {RTT * 1000:.0f}"
        f" ms), lab (Linux {platform.release()}, Python {platform.python_version()}); ms, median"
        f" of {args.rounds} alternating rounds; attempt delay 0.25 s everywhere.\n"
    )
    print("| library | " + " | ".join(CASES) + " |")
    print("|---|" + "---|" * len(CASES))
    for library in LIBRARIES:
        cells = [ms(median(results[library, case])) for case in CASES]
        print(f"| {library} | " + " | ".join(cells) + " |")
    print(
        f"\nHealthy loopback connect+close, one process, median of rounds: history in memory "
        f"{cost['in memory'] * 1e6:.1f} µs, file-backed {cost['file-backed'] * 1e6:.1f} µs "
        f"({cost['file-backed'] / cost['in memory']:.3f}x; {cost['writes']:.0f} file writes)."
    )
    print(f"\n(whole run: {elapsed:.0f} s)")

    failures = 0
    print("\nChecks (issue 13):")
    ours = {case: median(results["aioconnlist", case]) for case in CASES}
    for case in ("host learned", "path learned"):
        value = ours[case]
        ok = value is not None and value < 2 * RTT + 0.015
        print(f"  {'PASS' if ok else 'FAIL'} aioconnlist {case}: {ms(value)} ms ~ one RTT")
        failures += not ok
    for case in ("cold", "other network"):
        value = ours[case]
        ok = value is None or value >= 0.25
        print(f"  {'PASS' if ok else 'FAIL'} aioconnlist {case}: {ms(value)} ms >= attempt delay")
        failures += not ok
    ratio = cost["file-backed"] / cost["in memory"]
    ok = ratio < 1.10
    print(f"  {'PASS' if ok else 'FAIL'} file-backed healthy connect within noise: {ratio:.3f}x")
    failures += not ok
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
