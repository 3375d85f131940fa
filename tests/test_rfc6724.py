"""RFC 6724 building blocks: policy table, scopes, common prefix length."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aioconnlist._core import rfc6724
from aioconnlist._core.rfc6724 import (
    POLICY_TABLE,
    common_prefix_len,
    label,
    policy,
    precedence,
    scope,
)

ip = ipaddress.ip_address

SPEC_TABLE = (
    "::1/128 50/0, ::/0 40/1, ::ffff:0:0/96 35/4, 2002::/16 30/2, 2001::/32 5/5, "
    "fc00::/7 3/13, ::/96 1/3, fec0::/10 1/11, 3ffe::/16 1/12"
)


def _spec_rows() -> list[tuple[ipaddress.IPv6Network, int, int]]:
    rows = []
    for row in SPEC_TABLE.split(", "):
        prefix, values = row.split()
        prec, lab = values.split("/")
        rows.append((ipaddress.IPv6Network(prefix), int(prec), int(lab)))
    return rows


def test_policy_table_is_the_spec_table() -> None:
    # compared as networks, not as text: Python 3.13 prints ::ffff:0:0/96 as ::ffff:0.0.0.0/96
    rows = [(e.prefix, e.precedence, e.label) for e in POLICY_TABLE]
    assert rows == _spec_rows()


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("::1", (50, 0)),
        ("2001:db8::1", (40, 1)),  # 2001:db8 is not inside 2001::/32
        ("fe80::1", (40, 1)),
        ("::ffff:0.0.0.1", (35, 4)),
        ("10.0.0.1", (35, 4)),  # IPv4 looks up as its mapped form
        ("127.0.0.1", (35, 4)),
        ("2002:c000:204::1", (30, 2)),
        ("2001:0:4136:e378::1", (5, 5)),  # Teredo
        ("fc00::1", (3, 13)),
        ("fdff:ffff::1", (3, 13)),
        ("::102:304", (1, 3)),  # IPv4-compatible ::/96
        ("::", (1, 3)),
        ("fec0::1", (1, 11)),
        ("feff::1", (1, 11)),
        ("3ffe::1", (1, 12)),
        ("3fff::1", (40, 1)),
        ("2003::1", (40, 1)),
    ],
)
def test_policy_lookup(address: str, expected: tuple[int, int]) -> None:
    a = ip(address)
    assert policy(a) == expected
    assert (precedence(a), label(a)) == expected


def _brute_policy(a: ipaddress.IPv4Address | ipaddress.IPv6Address) -> tuple[int, int]:
    mapped = ipaddress.IPv6Address(f"::ffff:{a}") if a.version == 4 else a
    best = max((e for e in POLICY_TABLE if mapped in e.prefix), key=lambda e: e.prefix.prefixlen)
    return best.precedence, best.label


@given(st.one_of(st.ip_addresses(v=4), st.ip_addresses(v=6)))
def test_policy_is_longest_match(a: ipaddress.IPv4Address | ipaddress.IPv6Address) -> None:
    assert policy(a) == _brute_policy(a)


@given(st.integers(min_value=0, max_value=2**128 - 1))
def test_policy_longest_match_on_table_neighbourhood(n: int) -> None:
    # bias towards the table's prefixes: keep the top 16 bits of a table entry
    for e in POLICY_TABLE:
        plen = e.prefix.prefixlen
        host_bits = 128 - plen
        a = ipaddress.IPv6Address(int(e.prefix.network_address) | (n & ((1 << host_bits) - 1)))
        assert policy(a) == _brute_policy(a)


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("::1", 2),
        ("fe80::1", 2),
        ("febf:ffff::1", 2),
        ("fec0::1", 5),
        ("feff::1", 5),
        ("2001:db8::1", 14),
        ("fd00::1", 14),  # unique local: global scope
        ("ff01::1", 1),
        ("ff02::1", 2),
        ("ff05::2", 5),
        ("ff0e::1", 14),
        ("ff12::1", 2),
        ("127.0.0.1", 2),
        ("127.255.255.254", 2),
        ("169.254.0.1", 2),
        ("169.253.255.255", 14),
        ("10.1.2.3", 14),  # private IPv4 is global (RFC 6724 §3.2)
        ("192.168.0.1", 14),
        ("8.8.8.8", 14),
        ("::ffff:127.0.0.1", 2),
        ("::ffff:8.8.8.8", 14),
    ],
)
def test_scope(address: str, expected: int) -> None:
    assert scope(ip(address)) == expected


def test_scope_constants() -> None:
    assert (rfc6724.SCOPE_LINK_LOCAL, rfc6724.SCOPE_SITE_LOCAL, rfc6724.SCOPE_GLOBAL) == (2, 5, 14)


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("fe80::1", "fe80::2", 126),  # the RFC 6724 §2.2 example
        ("2001:db8::1", "2001:db8::1", 128),
        ("2001:db8:1::1", "2001:db8:2::1", 46),
        ("::", "8000::", 0),
        ("10.0.0.1", "10.0.0.2", 30),
        ("10.0.0.1", "10.0.0.1", 32),
        ("10.0.0.1", "138.0.0.1", 0),
        ("10.0.0.1", "::ffff:a00:1", 0),  # different families (as objects)
        ("10.0.0.1", "2001:db8::1", 0),
    ],
)
def test_common_prefix_len(a: str, b: str, expected: int) -> None:
    assert common_prefix_len(ip(a), ip(b)) == expected
    assert common_prefix_len(ip(b), ip(a)) == expected


@given(st.ip_addresses(v=6), st.ip_addresses(v=6))
def test_common_prefix_len_matches_networks(
    a: ipaddress.IPv6Address, b: ipaddress.IPv6Address
) -> None:
    n = common_prefix_len(a, b)
    assert ipaddress.IPv6Network((a, n), strict=False) == ipaddress.IPv6Network(
        (b, n), strict=False
    )
    if n < 128:
        assert b not in ipaddress.IPv6Network((a, n + 1), strict=False)


def test_as_int128_maps_ipv4() -> None:
    assert rfc6724.as_int128(ip("1.2.3.4")) == int(ip("::ffff:1.2.3.4"))
    assert rfc6724.as_int128(ip("2001:db8::1")) == int(ip("2001:db8::1"))
