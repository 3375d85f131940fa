"""The benchmark's networks: the test lab (`tests.netlab`) with names for the peers to resolve.

Every library gets the same host name, written into the client namespace's /etc/hosts
(``ip netns exec`` bind-mounts ``/etc/netns/<ns>/hosts``), so name-based peers (asyncio,
trio, socket) and list-based ones (aioconnlist, aiohappyeyeballs, fed by ``getaddrinfo`` of
that name inside the timed region) see the same AAAA + A answers in the same order.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.netlab import hosts as lab_hosts  # noqa: E402
from tests.netlab import netlab_problem  # noqa: E402
from tests.netlab.lab import C1_V4, NetLab, delay_port, service_ip  # noqa: E402

RTT = 0.02  # the working path's SYN delay in the lab scenarios
AAAA_DELAY = 0.3  # the late AAAA answer of the link-local-only host's name
LOOPBACK_PORT = 9555  # the worker's own listener on ::1 and 127.0.0.1 (client namespace)


@dataclass(frozen=True)
class Scenario:
    key: str
    title: str
    host: str
    port: int
    addresses: tuple[str, ...]  # what the name resolves to, in /etc/hosts order
    oracle_target: tuple[str, int]  # the working path: a plain connect here is the oracle
    oracle_source: str | None = None
    loopback: bool = False  # the worker listens itself (loopback is per namespace)
    by_name: bool = False  # aioconnlist resolves with connect_by_name (not getaddrinfo)


SCENARIOS = (
    Scenario(
        "healthy",
        "healthy loopback (::1, 127.0.0.1)",
        "loopback.lab",
        LOOPBACK_PORT,
        ("::1", "127.0.0.1"),
        ("::1", LOOPBACK_PORT),
        loopback=True,
    ),
    Scenario(
        "broken6",
        f"broken IPv6 (AAAA black-holed, A {RTT * 1000:.0f} ms)",
        "broken6.lab",
        delay_port(RTT),
        (service_ip("drop", 6), service_ip("ok", 4)),
        (service_ip("ok", 4), delay_port(RTT)),
    ),
    Scenario(
        "multihomed",
        f"multi-homed (kernel's source black-holed, 2nd interface {RTT * 1000:.0f} ms)",
        "multihomed.lab",
        delay_port(RTT),
        (service_ip("kernel-source-broken", 4),),
        (service_ip("kernel-source-broken", 4), delay_port(RTT)),
        oracle_source=C1_V4,
    ),
    Scenario(
        "lostsyn",
        f"lost SYNs (each connection's first SYN lost; RTT {RTT * 1000:.0f} ms)",
        "lossy.lab",
        delay_port(RTT),
        (service_ip("lossy", 4),),
        (service_ip("ok", 4), delay_port(RTT)),  # the same path without the loss
    ),
)


@contextlib.contextmanager
def bench_lab() -> Iterator[NetLab]:
    problem = netlab_problem()
    if problem is not None:
        raise SystemExit(f"bench_peers: {problem}")
    hosts = {s.host: list(s.addresses) for s in SCENARIOS}
    with NetLab.build("bench", hosts=hosts) as lab:
        for s in SCENARIOS:
            if not s.loopback:
                for ip in s.addresses:
                    role = {"multihomed": "kernel-source-broken", "lostsyn": "lossy"}.get(
                        s.key, "ok"
                    )
                    if ip == service_ip(role, 6 if ":" in ip else 4):
                        lab.endpoint(role, family=6 if ":" in ip else 4, port=s.port)
            if s.oracle_target[0] == service_ip("ok", 4):
                lab.endpoint("ok", port=s.oracle_target[1])
        yield lab


# Networks that need a lab of their own shape (tests.netlab.hosts), one lab each.
SPECIAL_SCENARIOS = (
    Scenario(
        "vpn",
        "VPN host, tunnel black-holed (a LAN route exists for LAN-sourced packets)",
        "vpn.lab",
        delay_port(RTT),
        (service_ip("ok", 4),),
        (service_ip("ok", 4), delay_port(RTT)),  # the tunnel: times out for every library
    ),
    Scenario(
        "nat64",
        f"IPv6-only host, NAT64 (tayga), an IPv4-only name, {RTT * 1000:.0f} ms",
        "nat64.lab",
        delay_port(RTT),
        (service_ip("ok", 4),),
        (str(lab_hosts.nat64_synthesize(service_ip("ok", 4))), delay_port(RTT)),
    ),
    Scenario(
        "v6linklocal",
        f"IPv6 link-local only, dual-stack name, AAAA answer {AAAA_DELAY * 1000:.0f} ms late",
        "dual.lab",
        delay_port(RTT),
        (service_ip("ok", 6), service_ip("ok", 4)),  # served by the lab's DNS server
        (service_ip("ok", 4), delay_port(RTT)),
        by_name=True,
    ),
)


@contextlib.contextmanager
def special_lab(scenario: Scenario) -> Iterator[NetLab]:
    hosts = {} if scenario.by_name else {scenario.host: list(scenario.addresses)}
    with NetLab.build(f"bench-{scenario.key}", hosts=hosts) as lab:
        lab.endpoint("ok", port=scenario.port)
        if scenario.key == "vpn":
            lab_hosts.vpn_host(lab)
            yield lab
        elif scenario.key == "v6linklocal":
            lab_hosts.link_local_ipv6_only(lab)
            v6, v4 = scenario.addresses
            records = {scenario.host: {"AAAA": [v6], "A": [v4]}}
            with lab_hosts.dns_server(lab, records, {"AAAA": AAAA_DELAY}):
                yield lab
        else:
            with lab_hosts.ipv6_only_with_nat64(lab):
                yield lab
