"""NAT64 for IPv4 literals on an IPv6-only host (RFC 8305 §7, RFC 7050, RFC 6052).

On a host with IPv6 but no IPv4 connectivity, an IPv4 address in a destination list is
reached through the network's NAT64: the IPv6 address that embeds it in the NAT64 prefix.
The prefix is discovered as RFC 7050 says: the AAAA answers for ``ipv4only.arpa`` (asked of
the system's resolver, or of a resolver set with `set_resolver`) embed one of its well-known
IPv4 addresses, 192.0.0.170 and 192.0.0.171, and where they sit gives the prefix and its
length (RFC 6052: /32, /40, /48, /56, /64 or /96). RFC 8781 (the PREF64 router advertisement
option) is not readable unprivileged on Linux (the kernel does not keep it), so it is not used.

Discovery is cached per network: the key is the kernel's route towards global IPv6 (output
interface and gateway, asked without sending), so a host that moves to another network asks
again; a found prefix is kept `PREFIX_TTL` seconds, "no NAT64" `NEGATIVE_TTL`.

Synthesized addresses are ranked as the IPv4 addresses they stand for: `synthesized_map`
tells the planner which destinations they are.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Protocol

from .._core.addresses import Endpoint, IPAddress
from . import connectivity, rtnetlink

WELL_KNOWN_NAME = "ipv4only.arpa"
WELL_KNOWN_IPV4 = (ipaddress.IPv4Address("192.0.0.170"), ipaddress.IPv4Address("192.0.0.171"))
PREFIX_TTL = 600.0
NEGATIVE_TTL = 30.0

#: RFC 6052 §2.2: for each prefix length, where the four IPv4 bytes go (byte 8, "u", stays 0)
POSITIONS: dict[int, tuple[int, int, int, int]] = {
    32: (4, 5, 6, 7),
    40: (5, 6, 7, 9),
    48: (6, 7, 9, 10),
    56: (7, 9, 10, 11),
    64: (9, 10, 11, 12),
    96: (12, 13, 14, 15),
}

Prefix = ipaddress.IPv6Network


# --- pure ----------------------------------------------------------------------------------


def synthesize(prefix: Prefix, ipv4: ipaddress.IPv4Address) -> ipaddress.IPv6Address:
    """The IPv6 address that embeds ``ipv4`` in ``prefix`` (RFC 6052 §2.2)."""
    positions = POSITIONS.get(prefix.prefixlen)
    if positions is None:
        raise ValueError(f"{prefix}: a NAT64 prefix is /32, /40, /48, /56, /64 or /96")
    packed = bytearray(prefix.network_address.packed)
    for position, byte in zip(positions, ipv4.packed, strict=True):
        packed[position] = byte
    return ipaddress.IPv6Address(bytes(packed))


def extract(prefix: Prefix, address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address ``address`` embeds, if it lies in ``prefix`` (else None)."""
    positions = POSITIONS.get(prefix.prefixlen)
    if positions is None or address not in prefix:
        return None
    packed = address.packed
    return ipaddress.IPv4Address(bytes(packed[p] for p in positions))


def prefixes_from_answers(answers: Iterable[ipaddress.IPv6Address]) -> tuple[Prefix, ...]:
    """RFC 7050 §3: the NAT64 prefixes in the AAAA answers for ``ipv4only.arpa`` (first
    seen first). An answer embeds a well-known IPv4 address at one of the RFC 6052 places;
    byte 8 ("u") must be zero for the shorter prefixes."""
    found: dict[Prefix, None] = {}
    for answer in answers:
        packed = answer.packed
        for length in (96, 64, 56, 48, 40, 32):
            positions = POSITIONS[length]
            embedded = ipaddress.IPv4Address(bytes(packed[p] for p in positions))
            if embedded not in WELL_KNOWN_IPV4:
                continue
            if length < 96 and packed[8] != 0:
                continue
            found.setdefault(ipaddress.IPv6Network((answer, length), strict=False), None)
            break
    return tuple(found)


# --- discovery and cache -------------------------------------------------------------------

AAAALookup = Callable[[], Sequence[str]]


if TYPE_CHECKING:

    class _Executor(Protocol):
        def run_in_executor(
            self, executor: None, func: Callable[[], Sequence[str]], /
        ) -> Awaitable[Sequence[str]]: ...


AsyncAAAALookup = Callable[[], Awaitable[Sequence[str]]]


def system_aaaa() -> list[str]:
    """The AAAA answers for ``ipv4only.arpa`` from the system's resolver (getaddrinfo)."""
    try:
        infos = socket.getaddrinfo(WELL_KNOWN_NAME, None, socket.AF_INET6, socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return []
    return [str(info[4][0]).partition("%")[0] for info in infos]


def _parse(texts: Iterable[str]) -> list[ipaddress.IPv6Address]:
    out = []
    for text in texts:
        try:
            ip = ipaddress.ip_address(text)
        except ValueError:
            continue
        if isinstance(ip, ipaddress.IPv6Address):
            out.append(ip)
    return out


def network_key() -> tuple[int, str]:
    """Which network this is, for the cache: the kernel's route towards global IPv6
    (interface index, gateway), asked over rtnetlink without sending."""
    if not rtnetlink.available():
        return (0, "")
    try:
        route = rtnetlink.route_get(connectivity.GLOBAL_V6_PROBE)
    except OSError:
        return (0, "")
    return (route.oif, "" if route.gateway is None else str(route.gateway))


class Nat64Cache:
    """The discovered prefixes per network, with expiry."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._entries: dict[tuple[int, str], tuple[float, tuple[Prefix, ...]]] = {}
        self._lock = threading.Lock()
        self.lookup: AAAALookup = system_aaaa
        self.async_lookup: AsyncAAAALookup | None = None

    def cached(self, key: tuple[int, str]) -> tuple[Prefix, ...] | None:
        entry = self._entries.get(key)
        if entry is not None and self._clock() < entry[0]:
            return entry[1]
        return None

    def store(self, key: tuple[int, str], answers: Sequence[str]) -> tuple[Prefix, ...]:
        prefixes = prefixes_from_answers(_parse(answers))
        ttl = PREFIX_TTL if prefixes else NEGATIVE_TTL
        with self._lock:
            if len(self._entries) > 64:
                self._entries.clear()
            self._entries[key] = (self._clock() + ttl, prefixes)
        return prefixes

    def prefixes(self) -> tuple[Prefix, ...]:
        """This network's NAT64 prefixes (blocking: may ask the resolver)."""
        key = network_key()
        found = self.cached(key)
        if found is None:
            found = self.store(key, self.lookup())
        return found

    async def prefixes_async(self, loop: _Executor) -> tuple[Prefix, ...]:
        """This network's NAT64 prefixes; the resolver is asked off the event ``loop``."""
        key = network_key()
        found = self.cached(key)
        if found is None:
            if self.async_lookup is not None:
                answers = await self.async_lookup()
            else:
                answers = await loop.run_in_executor(None, self.lookup)
            found = self.store(key, answers)
        return found

    def known(self) -> tuple[Prefix, ...]:
        """The prefixes already discovered for this network (never asks the resolver)."""
        return self.cached(network_key()) or ()

    def clear(self) -> None:
        with self._lock:
            self._entries = {}


_cache = Nat64Cache()
_SCAN = 64  # destinations: a list longer than this asks the (cached) connectivity first


def set_resolver(lookup: AAAALookup | None, async_lookup: AsyncAAAALookup | None = None) -> None:
    """Ask ``lookup()`` (and ``async_lookup()`` on asyncio) for the ``ipv4only.arpa`` AAAA
    answers instead of the system's resolver; ``None`` restores it. Clears the cache."""
    _cache.lookup = system_aaaa if lookup is None else lookup
    _cache.async_lookup = async_lookup
    _cache.clear()


def needed(destinations: Sequence[Endpoint]) -> bool:
    """Whether the list has IPv4 destinations and the host has IPv6 but no IPv4 connectivity."""
    known = connectivity.cached_families()
    if known is None and len(destinations) > _SCAN:
        known = connectivity.connected_families()  # cheaper than a scan of a long list
    if known is not None and socket.AF_INET in known:
        return False  # the common case, at no cost per destination
    # IPv4 is kept in its ::ffff:0:0/96 mapped form in `_int128`: one integer test each (a
    # loop, not any() over a generator: most lists here are a few addresses long)
    for d in destinations:
        n = d._int128
        if n >> 32 == 0xFFFF and (n >> 24) & 0xFF != 127:
            break
    else:
        return False  # no IPv4 destination beyond loopback
    families = connectivity.connected_families()
    return socket.AF_INET not in families and socket.AF_INET6 in families


def rewrite(destinations: Sequence[Endpoint], prefixes: Sequence[Prefix]) -> list[Endpoint]:
    """Each IPv4 destination replaced by its synthesized IPv6 address (first prefix)."""
    if not prefixes:
        return list(destinations)
    prefix = prefixes[0]
    out = []
    for d in destinations:
        if isinstance(d.ip, ipaddress.IPv4Address):
            out.append(Endpoint(synthesize(prefix, d.ip), d.port))
        else:
            out.append(d)
    return out


def through_nat64(destinations: Sequence[Endpoint]) -> Sequence[Endpoint]:
    """`rewrite` with this network's prefixes when `needed` (blocking discovery)."""
    if not needed(destinations):
        return destinations
    return rewrite(destinations, _cache.prefixes())


async def through_nat64_async(
    destinations: Sequence[Endpoint], loop: _Executor
) -> Sequence[Endpoint]:
    """`rewrite` with this network's prefixes when `needed` (discovery off the ``loop``)."""
    if not needed(destinations):
        return destinations
    return rewrite(destinations, await _cache.prefixes_async(loop))


def synthesized_map(destinations: Iterable[Endpoint]) -> dict[IPAddress, IPAddress]:
    """{synthesized IPv6 destination: the IPv4 address it stands for}, for known prefixes."""
    prefixes = _cache.known() if _cache._entries else ()
    if not prefixes:
        return {}
    out: dict[IPAddress, IPAddress] = {}
    for d in destinations:
        if isinstance(d.ip, ipaddress.IPv6Address):
            for prefix in prefixes:
                v4 = extract(prefix, d.ip)
                if v4 is not None:
                    out[d.ip] = v4
                    break
    return out
