"""Real networks in the lab: a VPN host, lost SYNs, a two-interface host without policy rule.

Each test reshapes a lab of its own (`tests.netlab.hosts`); see tests/test_netlab.py for the
lab itself. Timings have generous bounds: the machine is shared.
"""

from __future__ import annotations

import ipaddress
import json
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from tests.netlab import hosts, require_netlab
from tests.netlab.lab import C0_V4, C0_V6, C1_V4, C1_V6, NetLab

pytestmark = pytest.mark.netlab

SLACK = 0.06


def target(address: str) -> list[Any]:
    host, port = address.rsplit(":", 1)
    return [host.strip("[]"), int(port)]


def started(call: dict[str, Any]) -> list[tuple[str | None, bool]]:
    return [(e["source"], e["backup"]) for e in call["events"] if e["kind"] == "started"]


@pytest.fixture(scope="module")
def vpn_lab() -> Iterator[NetLab]:
    require_netlab()
    with NetLab.build("vpn") as built:
        hosts.vpn_host(built)
        yield built


@pytest.mark.parametrize("family", [4, 6])
def test_never_around_a_black_holed_vpn(vpn_lab: NetLab, family: int) -> None:
    """The kernel's route is the (dead) tunnel. Plain sockets time out; so does "auto", which
    must not connect from the LAN address around the tunnel, nor send the bridge's address
    into it; history of the failure changes nothing. A source the caller lists is used."""
    lab = vpn_lab
    lan = C0_V4 if family == 4 else C0_V6
    destination = lab.endpoint("ok", family=family)
    lab.agent_call("clear")
    auto = {"addresses": [destination], "options": {"timeout": 0.8}}
    calls = [auto, auto, {"addresses": [destination], "options": {"local_addresses": [lan]}}]
    result = lab.run_client(
        {
            "history": "fresh",
            "calls": calls,
            "probes": [{"target": target(destination), "timeout": 0.5}],
        }
    )
    [probe] = result["probes"]
    assert not probe["ok"] and probe["errno_name"] == "ETIMEDOUT", probe
    first, second, listed = result.calls
    for call in (first, second):
        assert not call["ok"] and call["errno_name"] == "ETIMEDOUT", call
        assert {source for source, _ in started(call)} == {None}, call  # the tunnel only
    assert listed["ok"] and listed["sockname"][0] == lan, listed
    peers = [c["peer"][0] for c in lab.server_log()["connections"]]
    assert peers == [lan], peers  # only the listed source's connection reached the server


def test_vpn_host_alternates_are_classified(vpn_lab: NetLab) -> None:
    code = f"""
import ipaddress
import json
import socket
from aioconnlist._core.addresses import parse_address
from aioconnlist._io.sources import gather_sources
view = gather_sources([parse_address("{vpn_lab.endpoint("ok")}")], "auto")
print(json.dumps({{str(s): k for (s, d), k in view.routes.items()}}))
"""
    routes = json.loads(vpn_lab.client_python(code))
    assert routes == {C0_V4: 2, C1_V4: 2, hosts.BRIDGE_V4: 2}, routes


@pytest.fixture(scope="module")
def lossy_lab() -> Iterator[NetLab]:
    require_netlab()
    with NetLab.build("lossy") as built:
        yield built


@pytest.mark.parametrize("api", ["async", "blocking"])
def test_a_lost_first_syn_costs_the_attempt_delay_not_a_second(lossy_lab: NetLab, api: str) -> None:
    """Every connection's first SYN is lost: a plain socket waits for the kernel's 1 s
    retransmission; the race's backup attempt connects after the attempt delay + one RTT."""
    lab = lossy_lab
    destination = lab.endpoint("lossy", port=9000)
    options = {"local_addresses": None, "attempt_delay": 0.1, "history": None}
    calls = [
        {"api": api, "addresses": [destination], "options": options, "echo": True},
        {"api": api, "addresses": [destination], "options": {**options, "backup_attempts": False}},
        # no observer: the drivers' single-pair fast paths hand the silent connect over
        {"api": api, "addresses": [destination], "options": {**options, "on_event": None}},
    ]
    result = lab.run_client(
        {
            "history": "none",
            "calls": calls,
            "probes": [{"target": target(destination), "timeout": 3}],
        }
    )
    [probe] = result["probes"]
    assert probe["ok"] and probe["elapsed"] > 0.9, probe  # the kernel's retransmission
    backed_up, plain, fast_path = result.calls
    assert backed_up["ok"] and backed_up["echo"] == "ping", backed_up
    assert started(backed_up) == [(None, False), (None, True)], backed_up
    assert [e["backup"] for e in backed_up["events"] if e["kind"] == "won"] == [True], backed_up
    assert backed_up["elapsed"] < 0.1 + SLACK, backed_up
    assert plain["ok"] and plain["elapsed"] > 0.9, plain
    assert started(plain) == [(None, False)], plain
    assert fast_path["ok"] and fast_path["elapsed"] < 0.1 + SLACK, fast_path


@pytest.mark.parametrize("rule", [True, False])
def test_two_interfaces_with_and_without_a_policy_rule(rule: bool) -> None:
    """With ``from C1 lookup 101`` c1's pairs leave through c1 (own); without it the weak host
    model sends them out of c0: ranked after the others (route class 1)."""
    require_netlab()
    with NetLab.build(f"rule{int(rule)}") as lab:
        if not rule:
            hosts.no_policy_rule(lab)
        v4, v6 = lab.endpoint("ok"), lab.endpoint("ok", family=6)
        code = f"""
import ipaddress
import json
import socket
from aioconnlist._core.addresses import parse_address
from aioconnlist._io.sources import gather_sources
view = gather_sources([parse_address("{v4}"), parse_address("{v6}")], "auto")
print(json.dumps({{str(s): k for (s, d), k in view.routes.items()}}))
"""
        routes = json.loads(lab.client_python(code))
        assert routes == ({} if rule else {C1_V4: 1, C1_V6: 1}), routes


def test_no_ipv6_connectivity_no_wait_for_aaaa() -> None:
    """The host's IPv6 is link-local and a route-less ULA: a dual-stack name connects over
    IPv4 as soon as A answers, never waiting the resolution delay for an AAAA answer."""
    require_netlab()
    with NetLab.build("v6ll") as lab:
        hosts.link_local_ipv6_only(lab)
        v4 = lab.endpoint("ok", port=9000)
        v6 = lab.endpoint("ok", family=6, port=9000)
        code = f"""
import asyncio, json, socket, time
import aioconnlist
from aioconnlist._core.addresses import parse_address
from aioconnlist._io.connectivity import connected_families

class Resolver:
    async def resolve(self, host, port, family):
        if family == socket.AF_INET6:
            await asyncio.sleep(3.0)  # a slow AAAA answer
            return [("{target(v6)[0]}", port, 0, 0)]
        return [("{target(v4)[0]}", port)]

async def main():
    start = time.monotonic()
    sock = await aioconnlist.connect_by_name("dual.lab", 9000, resolver=Resolver(),
                                             resolution_delay=2.0, history=None)
    took = time.monotonic() - start
    peer = sock.getpeername()[0]
    sock.close()
    events = []
    sock = await aioconnlist.connect_by_list(["{v6}", "{v4}"], history=None,
                                             on_event=events.append)
    sock.close()
    return {{"took": took, "peer": peer,
             "families": sorted(int(f) for f in connected_families()),
             "first": str(events[0].pair.destination)}}

print(json.dumps(asyncio.run(main())))
"""
        out = json.loads(lab.client_python(code))
        assert out["families"] == [int(socket.AF_INET)], out
        assert out["peer"] == target(v4)[0], out
        assert out["took"] < 1.0, out  # not the 2 s resolution delay
        assert out["first"] == v4, out  # the race does not lead with IPv6


def test_ipv4_literal_through_a_real_nat64() -> None:
    """An IPv6-only host behind tayga: a plain socket to the IPv4 literal fails at once
    (ENETUNREACH); the race discovers the NAT64 prefix (RFC 7050, ipv4only.arpa through the
    system resolver) and connects through it, async and blocking; the server sees the
    connection from tayga's IPv4 pool."""
    require_netlab()
    with NetLab.build("nat64") as lab:
        ok = lab.endpoint("ok", port=9000)
        with hosts.ipv6_only_with_nat64(lab):
            code = f"""
import asyncio, json
import aioconnlist
from aioconnlist import blocking

async def main():
    sock = await aioconnlist.connect_by_list(["{ok}"], timeout=5, history=None)
    peer = sock.getpeername()[0]
    sock.close()
    return peer

peer = asyncio.run(main())
sock = blocking.create_connection(["{ok}"], timeout=5, history=None)
print(json.dumps({{"async": peer, "blocking": sock.getpeername()[0]}}))
sock.close()
"""
            out = json.loads(lab.client_python(code))
            probe = lab.run_client({"probes": [{"target": target(ok), "timeout": 1}]})
        synthesized = "2001:db8:64::c000:201"
        assert out == {"async": synthesized, "blocking": synthesized}, out
        [plain] = probe["probes"]
        assert not plain["ok"] and plain["errno_name"] == "ENETUNREACH", plain
        peers = [c["peer"][0] for c in lab.server_log()["connections"]]
        assert len(peers) == 2, peers
        assert all(ipaddress.ip_address(p) in ipaddress.ip_network(hosts.NAT64_POOL) for p in peers)
