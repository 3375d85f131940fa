"""Convergence in virtual time: under steady traffic a repaired IPv6 is found again by the
retry-first rule (a demoted pair or path tried first now and then), well before its evidence
would expire; and the cost of the retries while it stays broken is bounded."""

from __future__ import annotations

import ipaddress

from aioconnlist._core.addresses import parse_address
from aioconnlist._core.history import PairHistory
from aioconnlist._core.pairs import SourceView
from aioconnlist._core.planner import plan_pairs
from tests.simulation import simulate

SRC4 = ipaddress.ip_address("198.51.100.2")
SRC6 = ipaddress.ip_address("2001:db8:a::2")
REPAIR = 200.0  # IPv6 comes back (seconds of virtual time)
END = 1500.0
INTERVAL = 1.0  # one connection per second


def traffic(history: PairHistory, hosts: int) -> tuple[float | None, int, list[float]]:
    """Connect once per INTERVAL, round-robin over ``hosts`` dual-stack hosts whose IPv6 is
    black-holed until REPAIR. Returns (first time IPv6 won after REPAIR, IPv6 attempts
    started first while broken, the cost of each connection)."""
    found: float | None = None
    broken_retries = 0
    costs = []
    now = 0.0
    n = 0
    while now < END and found is None:
        h = n % hosts + 1
        dests = [parse_address(f"[2001:db8:f::{h}]:443"), parse_address(f"192.0.2.{h}:443")]
        view = SourceView("kernel", (), {dests[0].ip: SRC6, dests[1].ip: SRC4})
        pairs = plan_pairs(dests, view, history=history, now=now)
        v6 = "drop" if now < REPAIR else "ok"
        script = {str(dests[0]): (v6, 0.010) if v6 == "ok" else (v6,), str(dests[1]): ("ok", 0.030)}
        result = simulate(pairs, script, history=history, origin=now)
        costs.append(result.end)
        if pairs[0].destination.family == dests[0].family and now < REPAIR:
            broken_retries += 1
        if now >= REPAIR and result.winner == str(dests[0]):
            found = now
        now += INTERVAL
        n += 1
    return found, broken_retries, costs


def test_repaired_ipv6_found_again_under_steady_traffic() -> None:
    found, retries, costs = traffic(PairHistory(), hosts=1)
    assert found is not None
    # demoted after the first black hole; retried first after 60 s, then 120 s: the repair at
    # 200 s is seen at the retry due at 1 + 60 + 120 = 181 s + 240 s at the latest
    assert found - REPAIR <= 240.0 + 2 * INTERVAL
    # while broken, only the first connection and the retries paid the attempt delay
    assert retries <= 4
    slow = [c for c in costs[: int(REPAIR)] if c > 0.2]
    assert len(slow) == retries


def test_without_retries_only_expiry_finds_it() -> None:
    """The same traffic with expiry only: found 600 s after the last failure, i.e. later."""
    with_retry, _, _ = traffic(PairHistory(), hosts=1)
    expiry_only, retries, _ = traffic(PairHistory(retry_after=None), hosts=1)
    assert with_retry is not None and expiry_only is not None
    assert retries == 1  # never retried first before expiry
    assert expiry_only >= 600.0 and with_retry < expiry_only


def test_path_level_retry_finds_a_repaired_network() -> None:
    """Many hosts: after two black holes the path is demoted for new hosts too; it is retried
    first now and then and found again after the repair."""
    found, retries, costs = traffic(PairHistory(), hosts=50)
    assert found is not None and found - REPAIR <= 480.0
    assert retries < 12  # of 200 connections while broken
    assert sum(1 for c in costs[: int(REPAIR)] if c > 0.2) == retries
