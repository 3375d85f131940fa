"""The network's identity and the kernel's evidence, read over netlink: the parsers on the
kernel's own answers (checked against iproute2 where it is installed), the identity rules on
literal data, and the TCP metrics cache of a real loopback connection."""

from __future__ import annotations

import ipaddress
import random
import shutil
import socket
import subprocess
import sys
import time

import pytest

from aioconnlist._io import netlink, network
from aioconnlist._io.netlink import Address, Route

linux = pytest.mark.skipif(sys.platform != "linux", reason="netlink is Linux's")

V4, V6 = socket.AF_INET, socket.AF_INET6


def ip_command(*args: str) -> str:
    if shutil.which("ip") is None:
        pytest.skip("needs iproute2's ip to compare with")
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=True).stdout


@linux
def test_default_routes_match_iproute2() -> None:
    ours = {(r.family, str(r.gateway) if r.gateway else None) for r in netlink.default_routes()}
    theirs = set()
    for family, flag in ((V4, "-4"), (V6, "-6")):
        for line in ip_command(flag, "route", "show", "default").splitlines():
            words = line.split()
            if words[:1] == ["default"] and "table" not in words:
                gw = words[words.index("via") + 1] if "via" in words else None
                theirs.add((family, gw))
    assert ours == theirs


@linux
def test_addresses_match_iproute2() -> None:
    ours = {(str(a.ip), a.prefix_len) for a in netlink.addresses()}
    theirs = set()
    for line in ip_command("-o", "addr", "show").splitlines():
        words = line.split()
        if words[2] in ("inet", "inet6"):
            text, _, plen = words[3].partition("/")
            theirs.add((text, int(plen)))
    assert ours == theirs


def test_identity_rules() -> None:
    routes = [
        Route(V4, ipaddress.ip_address("192.0.2.1"), 2, 100),
        Route(V4, ipaddress.ip_address("198.51.100.1"), 3, 600),  # a worse metric: not it
        Route(V6, ipaddress.ip_address("fe80::1"), 2, 1024),
    ]
    addresses = [
        Address(V4, ipaddress.ip_address("192.0.2.10"), 24, 0, 2, 0),
        Address(V4, ipaddress.ip_address("198.51.100.10"), 24, 0, 3, 0),  # another interface
        Address(V4, ipaddress.ip_address("127.0.0.1"), 8, 254, 1, 0),  # host scope
        Address(V6, ipaddress.ip_address("2001:db8:1:2::10"), 64, 0, 2, 0),
        Address(V6, ipaddress.ip_address("2001:db8:1:2::11"), 64, 0, 2, 0),  # same prefix
        Address(V6, ipaddress.ip_address("fe80::10"), 64, 253, 2, 0),  # link scope
    ]
    names = {2: "wlan0", 3: "eth0"}
    identity = network.identity_from(routes, addresses, names.__getitem__)
    assert identity.ipv4 == network.FamilyNetwork("192.0.2.1", "wlan0", ("192.0.2.0/24",))
    assert identity.ipv6 == network.FamilyNetwork("fe80::1", "wlan0", ("2001:db8:1:2::/64",))
    # a privacy address more or less is the same network; another prefix is another
    same = network.identity_from(routes, addresses[:-2], names.__getitem__)
    assert same.key == identity.key
    moved = [*addresses[:3], Address(V6, ipaddress.ip_address("2001:db8:9::10"), 64, 0, 2, 0)]
    assert network.identity_from(routes, moved, names.__getitem__).key != identity.key
    other_gw = [Route(V4, ipaddress.ip_address("192.0.2.254"), 2, 100), routes[2]]
    assert network.identity_from(other_gw, addresses, names.__getitem__).key != identity.key
    # no default route: the global prefixes of every interface
    bare = network.identity_from([], addresses, names.__getitem__)
    assert bare.ipv4 == network.FamilyNetwork(None, None, ("192.0.2.0/24", "198.51.100.0/24"))


def test_portable_identity_rules() -> None:
    table = {
        "en0": [
            (V4, "192.0.2.10", "255.255.255.0"),
            (V6, "2001:db8:1::10", "ffff:ffff:ffff:ffff::"),
        ],
        "lo0": [(V4, "127.0.0.1", "255.0.0.0")],
        "utun3": [(V4, "10.8.0.2", "255.255.255.0")],
    }
    identity = network.identity_from_interfaces(table, {V4: "en0", V6: "en0"})
    assert identity.ipv4 == network.FamilyNetwork(None, "en0", ("192.0.2.0/24",))
    assert identity.ipv6 == network.FamilyNetwork(None, "en0", ("2001:db8:1::/64",))


def test_parsers_ignore_short_and_foreign_messages() -> None:
    assert list(netlink.iter_messages(b"\x10\x00")) == []
    assert list(netlink.iter_attributes(b"\xff\xff\x01\x00abcd")) == []
    assert netlink.parse_route(b"") is None and netlink.parse_address(b"") is None
    assert netlink.parse_tcp_metrics(b"\x01\x01\x00\x00") is None


@linux
def test_tcp_metrics_of_a_real_connection() -> None:
    """A completed loopback connection leaves an RTT in the kernel's cache; we read it as the
    kernel keeps it (srtt x8, rttvar x4 in microseconds), as ``ip tcp_metrics`` shows it."""
    host = f"127.{random.randrange(1, 250)}.{random.randrange(1, 250)}.{random.randrange(2, 250)}"
    with socket.socket() as listener:
        listener.bind((host, 0))
        listener.listen(1)
        with socket.create_connection(listener.getsockname(), timeout=5) as client:
            conn, _ = listener.accept()
            with conn:
                client.sendall(b"x" * 1000)  # RTT samples need acknowledged data
                assert conn.recv(1000)
                conn.sendall(b"y")
                assert client.recv(1) == b"y"
        # the client closed first: its metrics are saved as it enters TIME_WAIT
    found = None
    for _ in range(100):  # bounded: the kernel saves at close, normally at once
        entries = [e for e in netlink.tcp_metrics() if str(e[0]) == host]
        if entries:
            found = entries[0]
            break
        time.sleep(0.01)
    assert found is not None, "no tcp_metrics entry after a completed connection"
    _dest, source, srtt, rttvar, age = found
    assert (
        source is not None
        and source.is_loopback
        and 0 < srtt < 0.5
        and 0 <= rttvar < 0.5
        and 0 <= age < 60
    )
    if shutil.which("ip"):
        shown = ip_command("tcp_metrics", "show", host)
        words = shown.split()
        rtt_us = float(words[words.index("rtt") + 1].rstrip("us"))
        assert abs(rtt_us / 1e6 - srtt) < 1e-6
