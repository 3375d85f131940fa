"""Synchronous HTTP on a dual-stack name whose IPv6 is black-holed (the network lab).

``broken6.lab`` resolves (the client namespace's /etc/hosts) to an AAAA that drops every
packet and an A whose SYNs the delay line holds 20 ms; an HTTP responder listens on the A
(one request per connection, so every request races). ``requests.Session()`` with our
adapter, `aioconnlist.urllib3.PoolManager()` and ``urllib.request.urlopen`` after
``blocking.install()``, each in a fresh process with the default history: the first request
tries IPv6, then IPv4 after the attempt delay; every later one starts with IPv4 and connects in
one round trip. Checked by the race's events (which pair started, which won, when), with wall
clock bounds only far above the expected times (the machine is shared).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.netlab import require_netlab
from tests.netlab.lab import NetLab, delay_port, endpoint_text, service_ip

pytestmark = pytest.mark.netlab

RTT = 0.02
ATTEMPT_DELAY = 0.25
PORT = delay_port(RTT)
V6 = service_ip("drop", 6)
V4 = service_ip("ok", 4)
NAME = "broken6.lab"
SLACK = 0.5  # generous: CPU is shared; the events carry the exact story


@pytest.fixture(scope="module")
def lab() -> Iterator[NetLab]:
    require_netlab()
    with NetLab.build("sync", hosts={NAME: [V6, V4]}) as built:
        built.agent_call("listen", endpoints=[[V4, PORT]], http=True)
        yield built


def started(request: dict[str, Any]) -> list[str]:
    """The destinations of the attempts started (not counting lost-SYN backup attempts, which a
    stalled machine may add)."""
    return [
        e["destination"] for e in request["events"] if e["kind"] == "started" and not e["backup"]
    ]


def won(request: dict[str, Any]) -> dict[str, Any]:
    [event] = [e for e in request["events"] if e["kind"] == "won"]
    return event


@pytest.mark.parametrize("library", ["requests", "urllib3", "urllib"])
def test_first_request_pays_the_delay_later_ones_one_rtt(lab: NetLab, library: str) -> None:
    url = f"http://{NAME}:{PORT}/"
    result = lab.run_client(
        {"history": "none", "sync": {"library": library, "url": url, "count": 4}}
    )
    first, *later = result["sync"]
    v6, v4 = endpoint_text(V6, PORT), endpoint_text(V4, PORT)
    assert first["error"] is None and first["body"] == "ok", first
    assert started(first) == [v6, v4], first  # IPv6 first (RFC 6724), IPv4 after the delay
    assert won(first)["destination"] == v4, first
    v4_start = [e["time"] for e in first["events"] if e["kind"] == "started"][1]  # (no backup yet)
    assert ATTEMPT_DELAY - 0.01 <= v4_start <= ATTEMPT_DELAY + SLACK, first
    assert won(first)["time"] - v4_start >= RTT - 0.005, first  # the A path's round trip
    assert first["elapsed"] <= ATTEMPT_DELAY + RTT + SLACK, first
    for n, request in enumerate(later, 2):
        assert request["error"] is None and request["body"] == "ok", (n, request)
        assert started(request) == [v4], (n, request)  # history: IPv4 only, at once
        assert RTT - 0.005 <= won(request)["time"] <= RTT + SLACK, (n, request)
        assert request["elapsed"] < ATTEMPT_DELAY + SLACK, (n, request)
    assert result["fds_end"] == result["fds_start"], result.data
    log = lab.server_log()
    served = [c for c in log["connections"] if c["local"] == [V4, PORT] and c["how"] == "served"]
    assert len(served) >= 4
