"""Connectivity per address family (Happy Eyeballs v3 §4.1), learned without sending.

A family "has connectivity" when the machine holds an address of it that can reach beyond
the link: for IPv4 any address outside 127/8 and 169.254/16; for IPv6 a global address, or a
unique local address (fc00::/7) while the kernel has a route towards global unicast space
(``2000::/3``, asked over rtnetlink or by a UDP connect: no packet leaves). A host whose only
IPv6 is link-local, or a ULA with no route, has no IPv6 connectivity: the resolver does not
wait for its AAAA answers and the race does not lead with it.

`family_connectivity` is pure (tested on literal data); `connected_families` reads the
machine through the cached `sources` enumeration and is itself cached briefly.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Callable, Iterable

from .._core.pairs import LINK_LOCAL, LOOPBACK, LocalAddress, locality
from . import sources

#: a global unicast address whose route stands for "a route to the IPv6 internet"
GLOBAL_V6_PROBE = ipaddress.IPv6Address("2000::")
_ULA = ipaddress.IPv6Network("fc00::/7")
CACHE_TTL = sources.CACHE_TTL


def family_connectivity(
    local: Iterable[LocalAddress], has_global_v6_route: Callable[[], bool]
) -> frozenset[socket.AddressFamily]:
    """The families of ``local`` that reach beyond the link (see the module docstring)."""
    families: set[socket.AddressFamily] = set()
    ula = False
    for address in local:
        ip = address.ip
        if locality(ip) in (LOOPBACK, LINK_LOCAL):
            continue
        if ip.version == 4:
            families.add(socket.AF_INET)
        elif ip in _ULA:
            ula = True
        else:
            families.add(socket.AF_INET6)
    if ula and socket.AF_INET6 not in families and has_global_v6_route():
        families.add(socket.AF_INET6)
    return frozenset(families)


def _global_v6_route() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.setblocking(False)  # (never waits; no blocking call on an event loop)
            s.connect((str(GLOBAL_V6_PROBE), 9))  # UDP connect: a route lookup, nothing sent
    except OSError:
        return False
    return True


_cached: tuple[float, frozenset[socket.AddressFamily]] | None = None


def connected_families(now: float | None = None) -> frozenset[socket.AddressFamily]:
    """The address families this machine has connectivity in (cached ``CACHE_TTL`` s)."""
    global _cached
    if now is None:
        now = time.monotonic()
    cached = _cached
    if cached is not None and now < cached[0]:
        return cached[1]
    try:
        local = sources.machine_addresses(now)
    except OSError:  # out of descriptors, say: assume both families, decide nothing
        return frozenset((socket.AF_INET, socket.AF_INET6))
    families = family_connectivity(local, _global_v6_route)
    _cached = (now + CACHE_TTL, families)
    return families


def preferred_family(now: float | None = None) -> socket.AddressFamily:
    """The family whose answers a resolver waits for first: IPv6 (RFC 8305 §3) unless only
    IPv4 has connectivity."""
    families = connected_families(now)
    if socket.AF_INET6 not in families and socket.AF_INET in families:
        return socket.AF_INET
    return socket.AF_INET6
