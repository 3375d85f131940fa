"""httpx over aioconnlist on a real broken network: a name whose IPv6 address is black-holed
and whose IPv4 address answers after 20 ms (tests/httpx_lab.py), with a new connection per
request. The first race pays the attempt delay once; from the second connection on, the
history starts IPv4 at once: one attempt, one RTT. Checked with the race's own events;
wall-clock bounds are generous (the machine is shared).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("httpx")
pytest.importorskip("hypercorn")

from tests.httpx_lab import BROKEN_V6, PORT, RTT, WORKING_V4, http_lab, run_client
from tests.netlab import require_netlab
from tests.netlab.lab import NetLab

pytestmark = pytest.mark.netlab

ATTEMPT_DELAY = 0.25
SLACK = 0.1  # generous: CPU is shared; the events say what happened, not the clock
V6 = f"[{BROKEN_V6}]:{PORT}"
V4 = f"{WORKING_V4}:{PORT}"


@pytest.fixture(scope="module")
def lab() -> Iterator[NetLab]:
    require_netlab()
    with http_lab("httpxtest") as built:
        yield built


def started(result: dict[str, Any]) -> list[str]:
    return [e["destination"] for e in result["events"] if e["kind"] == "started"]


def won(result: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for e in result["events"] if e["kind"] == "won"]


@pytest.mark.parametrize("side, loop", [("sync", None), ("async", "asyncio"), ("async", "uvloop")])
def test_broken_ipv6_name_first_request_pays_the_delay_then_one_rtt(
    lab: NetLab, side: str, loop: str | None
) -> None:
    job = {"transport": "ours", "side": side, "loop": loop, "requests": 4}
    results = run_client(lab, job)
    assert [r["status"] for r in results] == [200] * 4, results
    first, *later = results
    # first: IPv6 first (RFC 6724), black-holed; IPv4 started one attempt delay later, won
    assert started(first) == [V6, V4], first
    [win] = won(first)
    assert win["destination"] == V4, first
    assert ATTEMPT_DELAY + RTT - 0.005 <= win["time"] <= ATTEMPT_DELAY + RTT + SLACK, first
    assert first["elapsed"] <= ATTEMPT_DELAY + RTT + 1.0, first
    for n, result in enumerate(later, 2):
        # one attempt, on IPv4, at once: the connect costs one RTT
        assert started(result) == [V4], (n, result)
        [win] = won(result)
        assert RTT - 0.005 <= win["time"] <= RTT + SLACK, (n, result)
        assert result["elapsed"] < first["elapsed"], (n, result)
