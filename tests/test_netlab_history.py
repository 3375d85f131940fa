"""History across processes and networks, on the lab's real kernel.

A host whose IPv6 is black-holed (AAAA: iptables DROP; A: accepts after 20 ms). Fresh client
processes share one history file (``AIOCONNLIST_HISTORY``) in the client namespace; between
them the test changes the client's default routes or its prefixes, so the network identity
changes. A fresh process on the network that learned the host goes to IPv4 first (about one
RTT); on another network the old evidence is not used (IPv6 first again, the attempt delay);
back on the first network the evidence is back. Path level: after a process met two other
broken-IPv6 hosts, a fresh process's first connection to a third host goes to IPv4 first.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.netlab import require_netlab
from tests.netlab.lab import REPO, S0_V4, S0_V6, S1_V4, S1_V6, NetLab, delay_port, service_ip

pytestmark = pytest.mark.netlab

RTT = 0.02
PORT = delay_port(RTT)
DELAY = 0.25
SLOW = DELAY  # a first attempt on the black hole costs at least the attempt delay
FAST = DELAY - 0.05  # IPv4 first: one RTT (20 ms) plus process noise, well below the delay

RACE = """
    import asyncio, json, sys, time
    import aioconnlist
    from aioconnlist._io import network
    async def race(addresses):
        events = []
        start = time.monotonic()
        sock = await aioconnlist.connect_by_list(
            addresses, timeout=5, attempt_delay=0.25, on_event=events.append
        )
        took = time.monotonic() - start
        sock.close()
        return {
            "first": str(events[0].pair.destination),
            "won": str(sock and [e for e in events if e.kind == "won"][0].pair.destination),
            "took": took,
        }
    def main():
        for line in sys.stdin:
            request = json.loads(line)
            if request.get("wait_change") is not None:
                count = network.wait_for_change(request["wait_change"], 10.0)
                print(json.dumps({"changes": count}), flush=True)
                continue
            if request.get("changes"):
                print(json.dumps({"changes": network.change_count()}), flush=True)
                continue
            result = asyncio.run(race(request["addresses"]))
            result["network"] = aioconnlist.DEFAULT_HISTORY.network
            print(json.dumps(result), flush=True)
    main()
"""


def host(variant: int = 0) -> list[str]:
    return [f"[{service_ip('drop', 6, variant)}]:{PORT}", f"{service_ip('ok', 4, variant)}:{PORT}"]


@pytest.fixture(scope="module")
def lab() -> Iterator[NetLab]:
    require_netlab()
    with NetLab.build("hist") as built:
        for variant in (0, 1, 2):
            built.endpoint("ok", family=4, delay=RTT, variant=variant)
        built.ns_run(built.client_ns, "ip", "route", "add", "default", "via", S0_V4, "dev", "c0")
        built.ns_run(
            built.client_ns, "ip", "-6", "route", "add", "default", "via", S0_V6, "dev", "c0"
        )
        yield built


def set_default_route(lab: NetLab, second: bool) -> None:
    v4, v6, dev = (S1_V4, S1_V6, "c1") if second else (S0_V4, S0_V6, "c0")
    lab.ns_run(lab.client_ns, "ip", "route", "replace", "default", "via", v4, "dev", dev)
    lab.ns_run(lab.client_ns, "ip", "-6", "route", "replace", "default", "via", v6, "dev", dev)


class Client:
    """A client process in the lab's client namespace, racing on request."""

    def __init__(self, lab: NetLab, history: Path) -> None:
        env = {**os.environ, "PYTHONPATH": str(REPO), "AIOCONNLIST_HISTORY": str(history)}
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", lab.client_ns, sys.executable, "-c", textwrap.dedent(RACE)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )

    def ask(self, **request: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        assert line, self.proc.stderr.read() if self.proc.stderr else "client ended"
        answer: dict[str, Any] = json.loads(line)
        return answer

    def close(self) -> None:
        assert self.proc.stdin is not None and self.proc.stderr is not None
        self.proc.stdin.close()  # the client's loop ends at EOF
        self.proc.wait(timeout=30)
        err = self.proc.stderr.read()
        self.proc.stderr.close()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        assert self.proc.returncode == 0, err


def fresh_race(lab: NetLab, history: Path, addresses: list[str]) -> dict[str, Any]:
    client = Client(lab, history)
    try:
        return client.ask(addresses=addresses)
    finally:
        client.close()


def learned_first(result: dict[str, Any]) -> None:
    """IPv4 first: the race costs about one RTT."""
    assert result["first"].startswith("192.0.2.") and result["took"] < FAST, result


def unknown_first(result: dict[str, Any]) -> None:
    """IPv6 first (RFC 6724), black-holed: the race costs the attempt delay and IPv4 wins."""
    assert result["first"].startswith("[2001:db8:f::"), result
    assert result["won"].startswith("192.0.2.") and result["took"] >= SLOW - 0.005, result


def test_fresh_process_after_an_earlier_one_and_network_change(lab: NetLab, tmp_path: Path) -> None:
    history = tmp_path / "history.json"
    set_default_route(lab, second=False)
    first = fresh_race(lab, history, host())
    unknown_first(first)
    again = fresh_race(lab, history, host())
    learned_first(again)  # a fresh process: one RTT, from the file
    assert again["network"] == first["network"]

    set_default_route(lab, second=True)  # another gateway and interface: another network
    elsewhere = fresh_race(lab, history, host())
    unknown_first(elsewhere)  # the first network's evidence is not used here
    assert elsewhere["network"] != first["network"]
    learned_first(fresh_race(lab, history, host()))  # ... but this network learns its own

    set_default_route(lab, second=False)
    back = fresh_race(lab, history, host())
    learned_first(back)  # the first network's evidence is back
    assert back["network"] == first["network"]


def test_fresh_process_after_one_met_two_other_broken_hosts(lab: NetLab, tmp_path: Path) -> None:
    history = tmp_path / "history.json"
    set_default_route(lab, second=False)
    client = Client(lab, history)
    try:
        unknown_first(client.ask(addresses=host(1)))
        unknown_first(client.ask(addresses=host(2)))
    finally:
        client.close()
    learned_first(fresh_race(lab, history, host(0)))  # a host never met: path level


def test_running_process_switches_partition_on_a_prefix_change(lab: NetLab, tmp_path: Path) -> None:
    """The watcher sees the kernel's notification: no new process, no timer."""
    set_default_route(lab, second=False)
    client = Client(lab, tmp_path / "history.json")
    extra = "2001:db8:c::2/64"
    try:
        unknown_first(client.ask(addresses=host()))
        learned_first(client.ask(addresses=host()))
        count = client.ask(changes=True)["changes"]
        lab.ns_run(lab.client_ns, "ip", "-6", "addr", "add", extra, "dev", "c0", "nodad")
        count = client.ask(wait_change=count)["changes"]
        unknown_first(client.ask(addresses=host()))  # a new prefix: a new network
        lab.ns_run(lab.client_ns, "ip", "-6", "addr", "del", extra, "dev", "c0")
        client.ask(wait_change=count)
        learned_first(client.ask(addresses=host()))  # the prefix gone: the first network again
    finally:
        lab.ns_run(lab.client_ns, "ip", "-6", "addr", "del", extra, "dev", "c0", check=False)
        client.close()


KERNEL = """
    import json, socket, time
    import aioconnlist
    from aioconnlist._core.addresses import parse_address
    from aioconnlist._core.pairs import Pair
    from aioconnlist._io.sources import kernel_source
    h = aioconnlist.DEFAULT_HISTORY
    now = time.monotonic()
    out = {}
    for text in json.loads(input()):
        dest = parse_address(text)
        pair = Pair(None, dest, kernel_source(dest))
        out[text] = [h.rank(pair, now), h.rto(pair, now)]
    print(json.dumps(out))
"""


def test_kernel_tcp_metrics_are_positive_evidence_only(lab: NetLab, tmp_path: Path) -> None:
    """A process that only made a plain connection (no aioconnlist, no history file) leaves an
    RTT in the kernel's cache; a fresh process ranks that pair as a success from it, with an
    attempt delay from its RTT, and the black-holed IPv6 pair (no completed connection, so no
    entry) stays neutral: the kernel is never evidence against a pair."""
    v6, v4 = host(0)
    lab.ns_run(lab.client_ns, "ip", "tcp_metrics", "flush", "all", check=False)
    code = f"import socket; socket.create_connection(('{service_ip('ok', 4)}', {PORT})).close()"
    lab.ns_run(lab.client_ns, sys.executable, "-c", code)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("AIOCONNLIST_HISTORY", None)
    proc = subprocess.run(
        ["ip", "netns", "exec", lab.client_ns, sys.executable, "-c", textwrap.dedent(KERNEL)],
        input=json.dumps([v6, v4, f"{service_ip('ok', 4, 1)}:{PORT}"]),
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    ranks = json.loads(proc.stdout)
    rank, rto = ranks[v4]
    assert rank < 0 and rto is not None and RTT * 0.5 < rto < 1.0, ranks
    assert ranks[v6] == [0, None]  # no entry: neutral, never demoted
    assert ranks[f"{service_ip('ok', 4, 1)}:{PORT}"] == [0, None]  # never connected
