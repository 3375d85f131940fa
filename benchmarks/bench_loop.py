"""The stock event loops against `aioconnlist.loop`'s, side by side, by name, in the lab.

    sudo python benchmarks/bench_loop.py [--rounds 3]    # root: builds network namespaces

Builds the lab of `tests.netlab` (its own namespaces, removed at the end) with two names in
the client namespace's /etc/hosts, then times ``asyncio.open_connection(name, port)`` plus one
echo round trip, the way every asyncio library connects, on four loops:

- asyncio's stock loop, with ``happy_eyeballs_delay=0.25`` (its Happy Eyeballs; most libraries
  do not even pass it, and then a black-holed first address costs the whole timeout);
- uvloop's stock loop (it has no Happy Eyeballs at all);
- ``aioconnlist.loop.new_event_loop()`` and ``new_event_loop(uvloop=True)``, all defaults.

Each round runs every loop in a fresh process (``tests/netlab/loop_client.py``), in an order
that rotates from round to round; "first" is the median over rounds of a process's first
connection, "later" the median of all the following ones. Connections are capped at 1 s (a
black hole would otherwise hang ~130 s). Scenarios: ``broken6.lab`` (AAAA black-holed, A
20 ms away) and ``loopback.lab`` (::1 and 127.0.0.1, both healthy, served by the process).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.netlab import netlab_problem  # noqa: E402
from tests.netlab.lab import NICE, NetLab, delay_port, service_ip  # noqa: E402

LOOP_CLIENT = REPO / "tests" / "netlab" / "loop_client.py"
RTT = 0.02
TIMEOUT = 1.0
LOOPS = (  # (label, flavour, mode, happy_eyeballs_delay)
    ("asyncio stock, happy_eyeballs_delay=0.25", "asyncio", "stock", 0.25),
    ("uvloop stock", "uvloop", "stock", None),
    ("aioconnlist.loop (asyncio)", "asyncio", "ours", None),
    ("aioconnlist.loop (uvloop)", "uvloop", "ours", None),
)
SCENARIOS = (  # (key, title, name, addresses, port, count, serve_loopback)
    (
        "broken6",
        f"broken IPv6 (AAAA black-holed, A {RTT * 1000:.0f} ms)",
        "broken6.lab",
        [service_ip("drop", 6), service_ip("ok", 4)],
        delay_port(RTT),
        5,
        False,
    ),
    ("healthy", "healthy loopback (::1, 127.0.0.1)", "loopback.lab", ["::1", "127.0.0.1"],
     9555, 20, True),
)  # fmt: skip


def run(lab: NetLab, spec: dict[str, Any]) -> dict[str, Any]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    proc = subprocess.run(
        ["ip", "netns", "exec", lab.client_ns, *NICE, sys.executable, str(LOOP_CLIENT)],
        input=json.dumps(spec),
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"bench_loop: the client failed:\n{proc.stderr}")
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def ms(values: list[float], failed: int) -> str:
    if not values:
        return f">= {TIMEOUT * 1000:.0f} (timeout)"
    text = f"{statistics.median(values) * 1000:.1f}"
    return text + (f" ({failed} timed out)" if failed else "")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    problem = netlab_problem()
    if problem is not None:
        raise SystemExit(f"bench_loop: {problem}")
    hosts = {name: addresses for _k, _t, name, addresses, *_ in SCENARIOS}
    rows = []
    with NetLab.build("bench-loop", hosts=hosts) as lab:
        lab.endpoint("ok", port=delay_port(RTT))  # the agent's echo listener on the A address
        for key, title, name, _addresses, port, count, serve in SCENARIOS:
            firsts: dict[str, list[float]] = {label: [] for label, *_ in LOOPS}
            laters: dict[str, list[float]] = {label: [] for label, *_ in LOOPS}
            failures: dict[str, int] = {label: 0 for label, *_ in LOOPS}
            for r in range(args.rounds):
                order = LOOPS[r % len(LOOPS) :] + LOOPS[: r % len(LOOPS)]
                for label, flavour, mode, delay in order:
                    spec = {"flavour": flavour, "mode": mode, "client": "open_connection",
                            "host": name, "port": port, "count": count, "connect_timeout": TIMEOUT,
                            "happy_eyeballs_delay": delay, "serve_loopback": serve}  # fmt: skip
                    calls = run(lab, spec)["calls"]
                    for n, call in enumerate(calls):
                        if not call["ok"]:
                            failures[label] += n > 0
                            continue
                        (firsts if n == 0 else laters)[label].append(call["elapsed"])
            ours = statistics.median(laters["aioconnlist.loop (asyncio)"] or [TIMEOUT])
            for label, *_ in LOOPS:
                later = laters[label]
                ratio = (statistics.median(later) if later else TIMEOUT) / ours
                rows.append(
                    (title, label, ms(firsts[label], 0), ms(later, failures[label]), ratio, key)
                )
    print(f"python {platform.python_version()} on {sys.platform}, {args.rounds} rounds")
    print("| scenario | loop | first | later (median) | later ÷ aioconnlist.loop (asyncio) |")
    print("|---|---|---|---|---|")
    for title, label, first, later, ratio, _key in rows:
        prefix = ">= " if "timeout" in later else ""
        print(f"| {title} | {label} | {first} | {later} | {prefix}{ratio:.1f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
