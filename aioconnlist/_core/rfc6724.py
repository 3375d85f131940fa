"""RFC 6724 building blocks: the default policy table, address scopes, common prefix length.

Pure functions. IPv4 addresses are looked up in the policy table as their ``::ffff:a.b.c.d``
mapped form (RFC 6724 §3.2); internally every address is one 128-bit integer in that form,
which also identifies the family (parse_ip never yields an IPv6 ``::ffff:`` address).

Decisions where the RFC leaves room:

- Scopes: IPv6 link-local ``fe80::/10`` and loopback ``::1`` are link-local (2,
  RFC 6724 §3.1 treats the loopback as link-local), deprecated site-local ``fec0::/10`` is
  site-local (5), multicast takes the scope nibble of the address, everything else is global
  (14), unique-local ``fc00::/7`` included. IPv4 ``127/8`` and ``169.254/16`` are link-local,
  the rest (private ranges included, RFC 6724 §3.2) global.
- `common_prefix_len` compares within one family only (0 across families); the planner uses it
  for rule 9 with IPv6 only and caps it at 64 bits (the interface identifier carries no routing
  information). IPv4 is left out of rule 9 as in draft-ietf-6man-rfc6724-update and most
  stacks other than glibc: applying it to IPv4 defeats DNS round-robin without making a
  connection likelier to succeed.
"""

from __future__ import annotations

import ipaddress
import socket
from functools import lru_cache
from typing import TYPE_CHECKING, NamedTuple

from .addresses import IPAddress

SCOPE_INTERFACE_LOCAL = 1
SCOPE_LINK_LOCAL = 2
SCOPE_SITE_LOCAL = 5
SCOPE_GLOBAL = 14

#: rule 9 ignores bits past this prefix length (IPv6 /64 subnets)
RULE9_MAX_PREFIX = 64


#: RFC 6724 §2.1 default policy table, in the RFC's order: (prefix, precedence, label)
_POLICY: tuple[tuple[str, int, int], ...] = (
    ("::1/128", 50, 0),
    ("::/0", 40, 1),
    ("::ffff:0:0/96", 35, 4),
    ("2002::/16", 30, 2),
    ("2001::/32", 5, 5),
    ("fc00::/7", 3, 13),
    ("::/96", 1, 3),
    ("fec0::/10", 1, 11),
    ("3ffe::/16", 1, 12),
)


def _network_int(prefix: str) -> tuple[int, int]:
    """(prefix length, network as int) of ``prefix`` (cheaper than an `IPv6Network` at import)."""
    address, _, length = prefix.partition("/")
    return int(length), int.from_bytes(socket.inet_pton(socket.AF_INET6, address), "big")


# (prefix length, network as int, precedence, label), longest prefix first
_TABLE_BY_LENGTH: tuple[tuple[int, int, int, int], ...] = tuple(
    sorted(
        ((*_network_int(prefix), precedence, label) for prefix, precedence, label in _POLICY),
        key=lambda row: -row[0],
    )
)


if TYPE_CHECKING:

    class PolicyEntry(NamedTuple):
        prefix: ipaddress.IPv6Network
        precedence: int
        label: int

    #: RFC 6724 §2.1 default policy table, in the RFC's order
    POLICY_TABLE: tuple[PolicyEntry, ...]


def __getattr__(name: str) -> object:
    """``PolicyEntry`` and ``POLICY_TABLE`` (with `IPv6Network` prefixes), made when first
    asked for: the ranking itself reads ``_TABLE_BY_LENGTH``."""
    if name not in ("PolicyEntry", "POLICY_TABLE"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

    class PolicyEntry(NamedTuple):
        prefix: ipaddress.IPv6Network
        precedence: int
        label: int

    PolicyEntry.__qualname__ = "PolicyEntry"
    table = tuple(PolicyEntry(ipaddress.IPv6Network(p), prec, lab) for p, prec, lab in _POLICY)
    globals().update(PolicyEntry=PolicyEntry, POLICY_TABLE=table)
    return globals()[name]


V4_MAPPED = 0xFFFF << 32


def as_int128(ip: IPAddress) -> int:
    """The address as a 128-bit integer, IPv4 as its ``::ffff:`` mapped form."""
    return int(ip) | V4_MAPPED if ip.version == 4 else int(ip)


def _is_v4(n: int) -> bool:
    return n >> 32 == 0xFFFF


@lru_cache(maxsize=8192)
def policy128(n: int) -> tuple[int, int]:
    """(precedence, label) of a 128-bit address: longest matching policy table prefix."""
    for length, network, prec, lab in _TABLE_BY_LENGTH:
        if n >> (128 - length) == network >> (128 - length):
            return prec, lab
    raise AssertionError("::/0 matches every address")  # pragma: no cover


@lru_cache(maxsize=8192)
def scope128(n: int) -> int:
    """The RFC 6724 scope of a 128-bit address (IPv4 in mapped form)."""
    if _is_v4(n):
        v4 = n & 0xFFFFFFFF
        if v4 >> 24 == 127 or v4 >> 16 == 0xA9FE:  # 127/8, 169.254/16
            return SCOPE_LINK_LOCAL
        return SCOPE_GLOBAL
    if n >> 120 == 0xFF:  # multicast: the scope is the low nibble of the second byte
        return (n >> 112) & 0xF
    if n == 1 or n >> 118 == 0x3FA:  # ::1, fe80::/10
        return SCOPE_LINK_LOCAL
    if n >> 118 == 0x3FB:  # fec0::/10
        return SCOPE_SITE_LOCAL
    return SCOPE_GLOBAL


def policy(ip: IPAddress) -> tuple[int, int]:
    """(precedence, label) of ``ip`` from the default policy table."""
    return policy128(as_int128(ip))


def precedence(ip: IPAddress) -> int:
    return policy128(as_int128(ip))[0]


def label(ip: IPAddress) -> int:
    return policy128(as_int128(ip))[1]


def scope(ip: IPAddress) -> int:
    """RFC 6724 §3.1 scope: 2 link-local, 5 site-local, 14 global (multicast: its own)."""
    return scope128(as_int128(ip))


def common_prefix_len(a: IPAddress, b: IPAddress) -> int:
    """Length of the longest common prefix of ``a`` and ``b`` in bits; 0 across families."""
    if a.version != b.version:
        return 0
    bits = 32 if a.version == 4 else 128
    return bits - (int(a) ^ int(b)).bit_length()


def common_prefix_len128(a: int, b: int) -> int:
    """`common_prefix_len` of two IPv6 addresses given as 128-bit integers."""
    return 128 - (a ^ b).bit_length()
