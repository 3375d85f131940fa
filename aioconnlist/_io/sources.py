"""Local sources (I/O side): the machine's addresses and the kernel's choice of source.

Caches (on ``time.monotonic()``) keep this off the hot path: the enumerated interface
addresses, the kernel's source per destination IP and the routes of alternate pairs. Where the
kernel reports address and route changes (`set_change_notifications`: the netlink watcher),
they are kept ``NOTIFIED_TTL`` seconds and dropped on each notification (`invalidate()`);
elsewhere they are kept ``CACHE_TTL`` seconds and also dropped after a race in which every
pair failed (`after_failed_race()`), so a changed network is seen at the next call.

The pure parts — `/proc/net/if_inet6` parsing and the selection of usable interface addresses —
do no I/O and are tested on literal data; the pair suitability rules are the core's
(`aioconnlist._core.pairs`).
"""

from __future__ import annotations

import contextlib
import ipaddress
import itertools
import math
import socket
import threading
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

from .._core.addresses import Endpoint, IPAddress, socket_name_ip
from .._core.errors import RESOURCE_ERRNOS
from .._core.pairs import (
    LINK_LOCAL,
    ROUTE_NEVER,
    ROUTE_OTHER,
    ROUTE_OWN,
    LocalAddress,
    SourceView,
    destination_usable,
    locality,
    source_usable,
)
from .._core.records import FrozenRecord
from . import rtnetlink
from .sysfiles import read_text

if TYPE_CHECKING:
    from . import netlink

_GENERATIONS = itertools.count()

#: seconds a cached enumeration or kernel choice stays valid without change notifications
CACHE_TTL = 2.0
#: the same while the kernel's change notifications are followed (a safety net: they refresh)
NOTIFIED_TTL = 60.0
#: bound on the kernel-choice and route caches (entries, one per destination IP and zone):
#: when full, the expired entries go, then the oldest half
KERNEL_CACHE_SIZE = 32768


def _never() -> bool:
    return False


_notified: Callable[[], bool] = _never


def set_change_notifications(live: Callable[[], bool]) -> None:
    """``live()`` tells whether the kernel's address and route changes are being followed (then
    each change calls `invalidate()`, and the caches may be kept longer)."""
    global _notified
    _notified = live


def cache_ttl() -> float:
    """How long the caches keep an answer now (``NOTIFIED_TTL`` while changes are notified)."""
    return NOTIFIED_TTL if _notified() else CACHE_TTL


_default_ttl = cache_ttl


#: IPv6 address flags from <linux/if_addr.h>, as printed in /proc/net/if_inet6
IFA_F_DADFAILED = 0x08
IFA_F_DEPRECATED = 0x20
IFA_F_TENTATIVE = 0x40

IF_INET6_PATH = "/proc/net/if_inet6"


# --- pure: interface addresses -------------------------------------------------------------


class Inet6Entry(FrozenRecord):
    """One line of /proc/net/if_inet6."""

    __slots__ = ("flags", "ifindex", "interface", "ip", "prefix_len", "scope")
    _fields = ("ip", "ifindex", "prefix_len", "scope", "flags", "interface")

    ip: ipaddress.IPv6Address
    ifindex: int
    prefix_len: int
    scope: int
    flags: int
    interface: str

    def __init__(
        self,
        ip: ipaddress.IPv6Address,
        ifindex: int,
        prefix_len: int,
        scope: int,
        flags: int,
        interface: str,
    ) -> None:
        object.__setattr__(self, "ip", ip)
        object.__setattr__(self, "ifindex", ifindex)
        object.__setattr__(self, "prefix_len", prefix_len)
        object.__setattr__(self, "scope", scope)
        object.__setattr__(self, "flags", flags)
        object.__setattr__(self, "interface", interface)

    @property
    def usable(self) -> bool:
        return not self.flags & (IFA_F_TENTATIVE | IFA_F_DADFAILED)

    @property
    def deprecated(self) -> bool:
        return bool(self.flags & IFA_F_DEPRECATED)


def parse_if_inet6(text: str) -> dict[tuple[ipaddress.IPv6Address, str], Inet6Entry]:
    """Parse /proc/net/if_inet6 into {(address, interface): entry}; malformed lines are skipped.

    Line format: ``<32 hex digits> <ifindex> <prefix len> <scope> <flags> <name>``, numbers hex.
    """
    entries: dict[tuple[ipaddress.IPv6Address, str], Inet6Entry] = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) != 6 or len(fields[0]) != 32:
            continue
        try:
            ip = ipaddress.IPv6Address(int(fields[0], 16))
            ifindex, prefix_len, scope, flags = (int(f, 16) for f in fields[1:5])
        except ValueError:
            continue
        entries[ip, fields[5]] = Inet6Entry(ip, ifindex, prefix_len, scope, flags, fields[5])
    return entries


def select_local_addresses(
    interface_addresses: Mapping[str, Iterable[tuple[int, str]]],
    up: Collection[str],
    inet6: Mapping[tuple[ipaddress.IPv6Address, str], Inet6Entry],
    if_index: Mapping[str, int],
) -> tuple[LocalAddress, ...]:
    """The usable sources among interface addresses, non-deprecated first (order otherwise kept).

    ``interface_addresses``: interface name -> (family, address text) as from getifaddrs
    (psutil); ``up``: names of the interfaces that are up; ``inet6``: parsed /proc/net/if_inet6
    (empty off Linux: no flags known); ``if_index``: interface name -> index, for the zone of
    IPv6 link-local sources when /proc does not give it. Skipped: interfaces down, IPv6
    tentative or DAD-failed, IPv4-mapped, multicast and unspecified addresses.
    """
    found: dict[tuple[IPAddress, int], LocalAddress] = {}
    for name, addrs in interface_addresses.items():
        # getifaddrs reports IPv4 alias labels ("eth0:1"); their link state is the device's
        device = name if name in up else name.partition(":")[0]
        if device not in up:
            continue
        for family, text in addrs:
            if family not in (socket.AF_INET, socket.AF_INET6):
                continue
            try:
                ip = ipaddress.ip_address(text.partition("%")[0])
            except ValueError:
                continue
            if ip.is_multicast or ip.is_unspecified:
                continue
            scope_id, deprecated = 0, False
            if ip.version == 6:
                if ip.ipv4_mapped is not None:
                    continue
                entry = inet6.get((ip, device))
                if entry is not None:
                    if not entry.usable:
                        continue
                    deprecated = entry.deprecated
                if locality(ip) == LINK_LOCAL:
                    scope_id = entry.ifindex if entry is not None else if_index.get(device, 0)
            found.setdefault((ip, scope_id), LocalAddress(ip, scope_id, device, deprecated))
    ordered = sorted(found.values(), key=lambda a: a.deprecated)  # stable: order kept
    return tuple(ordered)


# --- I/O: enumeration and kernel probes ----------------------------------------------------


def _read_if_inet6() -> str:
    return read_text(IF_INET6_PATH) or ""  # "": not Linux, or IPv6 disabled


IFF_RUNNING = 0x40  # <linux/if.h>: what psutil's ``isup`` reads


InterfaceTable = tuple[dict[str, list[tuple[int, str]]], set[str], dict[str, int]]


def interfaces_from_netlink(
    links: Iterable[netlink.Link], addresses: Iterable[netlink.Address]
) -> InterfaceTable:
    """Pure: the (addresses per interface name, names of the interfaces up, name -> index)
    that getifaddrs and SIOCGIFFLAGS would give (psutil's ``net_if_addrs``/``net_if_stats``),
    from netlink's link and address dumps: names in link order, then IPv4 alias labels as
    they appear; an IPv4 address under its label, an IPv6 one under its interface's name."""
    names = {link.index: link.name for link in links}
    table: dict[str, list[tuple[int, str]]] = {name: [] for name in names.values()}
    for a in addresses:
        name = names.get(a.ifindex)
        if name is None:
            continue
        if a.family == socket.AF_INET and a.label:
            name = a.label
        table.setdefault(name, []).append((a.family, str(a.ip)))
    up = {link.name for link in links if link.flags & IFF_RUNNING}
    return table, up, {name: index for index, name in names.items()}


def _interfaces() -> InterfaceTable:
    if hasattr(socket, "AF_NETLINK"):
        from . import netlink  # (not at import: the first connect enumerates nothing)

        try:  # two netlink dumps: no psutil import (~10 ms) on the first connect
            return interfaces_from_netlink(netlink.links(), netlink.addresses())
        except OSError as e:
            if e.errno in RESOURCE_ERRNOS:
                raise  # out of descriptors or memory: psutil could not do better

    return _interfaces_psutil()


def _interfaces_psutil() -> InterfaceTable:
    import psutil  # here, not at import: only where there is no netlink

    stats = psutil.net_if_stats()
    up = {name for name, st in stats.items() if st.isup}
    addrs = {
        name: [(int(a.family), a.address) for a in lst]
        for name, lst in psutil.net_if_addrs().items()
    }
    try:
        if_index = {name: index for index, name in socket.if_nameindex()}
    except OSError:
        if_index = {}
    return addrs, up, if_index


def enumerate_local_addresses() -> tuple[LocalAddress, ...]:
    """The machine's usable local addresses, read now (no cache)."""
    addrs, up, if_index = _interfaces()
    return select_local_addresses(addrs, up, parse_if_inet6(_read_if_inet6()), if_index)


def probe_kernel_source(destination: Endpoint) -> IPAddress:
    """The source the kernel picks towards ``destination``: connect a UDP socket (which sends no
    packet) and read its name. Raises OSError when there is no route.

    The socket is non-blocking: a UDP connect never waits, but on an event loop a blocking
    socket call is what loop-blocking detectors (blockbuster, as in aiohttp's own tests) flag.
    """
    with socket.socket(destination.family, socket.SOCK_DGRAM) as s:
        s.setblocking(False)
        s.connect(destination.sockaddr())
        host: str = s.getsockname()[0]
    return socket_name_ip(host)


Clock = Callable[[], float]


class LocalAddressCache:
    """The enumerated local addresses, re-read after ``ttl`` seconds or `invalidate()`
    (``ttl`` None: ``NOTIFIED_TTL`` while change notifications are followed, else
    ``CACHE_TTL``)."""

    def __init__(
        self,
        enumerate_addresses: Callable[[], tuple[LocalAddress, ...]] = enumerate_local_addresses,
        ttl: float | None = None,
    ) -> None:
        self._enumerate = enumerate_addresses
        self._ttl = ttl
        self._cached: tuple[float, tuple[LocalAddress, ...]] | None = None  # (expiry, value)
        self.generation = next(_GENERATIONS)  # changes on `invalidate`
        self.read = False  # the addresses were read at least once

    def get(self, now: float | None = None) -> tuple[LocalAddress, ...]:
        return self.get_entry(now)[1]

    def get_entry(self, now: float | None = None) -> tuple[float, tuple[LocalAddress, ...]]:
        """(expiry, addresses): the addresses stay what they are until the expiry."""
        if now is None:
            now = time.monotonic()
        cached = self._cached  # read once: another thread may replace it
        if cached is not None and now < cached[0]:
            return cached
        ttl = self._ttl if self._ttl is not None else _default_ttl()
        cached = (now + ttl, self._enumerate())
        self._cached = cached
        self.read = True
        return cached

    def invalidate(self) -> None:
        self._cached = None
        self.generation = next(_GENERATIONS)

    def refresh(self, now: float | None = None) -> None:
        """Enumerate now (in the caller's thread: the network watcher's) and keep the answer for
        the current TTL; cached plans are dropped only when the addresses differ."""
        if now is None:
            now = time.monotonic()
        ttl = self._ttl if self._ttl is not None else _default_ttl()
        old = self._cached
        addresses = self._enumerate()
        self._cached = (now + ttl, addresses)
        self.read = True
        if old is None or old[1] != addresses:
            self.generation = next(_GENERATIONS)


class KernelSourceCache:
    """The kernel's source per destination (IP, zone), each kept ``ttl`` seconds.

    Probe failures for lack of route are cached as ``None``; resource errors (EMFILE...) are not
    cached, so the attempt itself reports them.
    """

    def __init__(
        self,
        probe: Callable[[Endpoint], IPAddress] = probe_kernel_source,
        ttl: float | None = None,
        max_entries: int = KERNEL_CACHE_SIZE,
    ) -> None:
        self._probe = probe
        self._ttl = ttl
        self._max_entries = max_entries
        self._entries: dict[tuple[IPAddress, int], tuple[float, IPAddress | None]] = {}
        self.generation = next(_GENERATIONS)  # changes when entries are dropped before their expiry
        self._lock = threading.Lock()  # for eviction only; lookups are single dict reads

    def get(self, destination: Endpoint, now: float | None = None) -> IPAddress | None:
        if now is None:
            now = time.monotonic()
        return self.get_entry(destination, now)[1]

    def get_entry(self, destination: Endpoint, now: float) -> tuple[float, IPAddress | None]:
        """(expiry, kernel source): the answer stays what it is until the expiry, unless
        `generation` changes first. An uncached answer has expiry ``now``."""
        key = (destination.ip, destination.scope_id)
        entry = self._entries.get(key)
        if entry is not None and now < entry[0]:
            return entry
        result: IPAddress | None
        if not destination_usable(destination):
            result = None
        else:
            try:
                result = self._probe(destination)
            except OSError as e:
                if e.errno in RESOURCE_ERRNOS:
                    return (now, None)
                result = None
        return self._keep(key, destination, result, now)

    def cached(self, destination: Endpoint, now: float) -> IPAddress | None:
        """The kernel's source towards ``destination`` if the cache holds it now (no probe)."""
        entry = self._entries.get((destination.ip, destination.scope_id))
        return entry[1] if entry is not None and now < entry[0] else None

    def learn(self, destination: Endpoint, host: str, now: float) -> IPAddress | None:
        """Keep ``host``, the name's address of an unbound socket connected to
        ``destination``, as the kernel's source towards it: what a probe would have found
        (no probe needed then), kept as a probe's answer is. Returns the answer kept."""
        key = (destination.ip, destination.scope_id)
        return self._keep(key, destination, socket_name_ip(host), now)[1]

    def _keep(
        self,
        key: tuple[IPAddress, int],
        destination: Endpoint,
        result: IPAddress | None,
        now: float,
    ) -> tuple[float, IPAddress | None]:
        if result is not None and locality(result) < locality(destination.ip):
            result = None  # a link-local (or loopback) source cannot reach beyond it
        entry = (now + (self._ttl if self._ttl is not None else _default_ttl()), result)
        with self._lock:
            if len(self._entries) >= self._max_entries:
                self._evict(now)
            self._entries[key] = entry
        return entry

    def _evict(self, now: float) -> None:
        self._entries = _evicted(self._entries, now, self._max_entries)

    def invalidate(self) -> None:
        with self._lock:
            self._entries = {}
            self.generation = next(_GENERATIONS)

    def __len__(self) -> int:
        return len(self._entries)


# --- routes of alternate-source pairs -------------------------------------------------------


def route_class(
    kernel_kind: rtnetlink.InterfaceKind,
    kernel_oif: int,
    source_kind: rtnetlink.InterfaceKind,
    source_oif: int,
    pair_oif: int | None,
) -> int:
    """Pure: how an alternate pair would be routed (`ROUTE_OWN`, `ROUTE_OTHER`, `ROUTE_NEVER`).

    ``kernel_*``: the interface of the kernel's own route to the destination (``kernel_oif``
    0: unknown); ``source_*``: the interface that owns the alternate source (0: unknown);
    ``pair_oif``: the interface the kernel would send the pair's packets out of (``ip route
    get DST from SRC``), ``None`` when it has no route for it.

    - The kernel's route goes through a tunnel (a VPN): a source of another interface would
      take the connection off the tunnel (or leak a foreign address into it): never.
    - The source belongs to a bridge or TAP segment (containers, VMs) and the pair would not
      stay on that segment (the destination lies outside it): never.
    - Otherwise a pair that leaves through another interface than its source's (weak host
      model, no policy rule), or has no route at all, comes after the others.
    """
    if kernel_kind == "tunnel" and kernel_oif and source_oif != kernel_oif:
        return ROUTE_NEVER
    if source_kind == "virtual" and pair_oif != source_oif:
        return ROUTE_NEVER
    if pair_oif is None or not source_oif or pair_oif != source_oif:
        return ROUTE_OTHER
    return ROUTE_OWN


_KernelRoute = tuple[int, rtnetlink.InterfaceKind]  # (output interface, its kind); 0: unknown


def _evicted(table: dict[Any, Any], now: float, max_entries: int) -> dict[Any, Any]:
    """``table`` (values ``(expiry, ...)``) less its expired entries and, when that is not
    room enough, less its oldest half (insertion order). Dropping an entry early changes no
    answer: it is asked of the kernel again when next needed."""
    live = {k: v for k, v in table.items() if now < v[0]}
    if len(live) >= max_entries:
        keep = max_entries // 2
        live = dict(itertools.islice(live.items(), len(live) - keep, None))
    return live


class RouteCache:
    """Routes asked of the kernel over rtnetlink (no packet sent), each kept ``ttl`` seconds:
    the kernel's route per destination and the route of each (source, destination) pair."""

    def __init__(self, ttl: float | None = None, max_entries: int = KERNEL_CACHE_SIZE) -> None:
        self._ttl = ttl
        self._max_entries = max_entries
        self._kernel: dict[tuple[IPAddress, int], tuple[float, _KernelRoute]] = {}
        self._pairs: dict[tuple[IPAddress, IPAddress, int], tuple[float, int | None]] = {}
        self._kinds: dict[str, tuple[float, tuple[int, rtnetlink.InterfaceKind]]] = {}
        self.generation = next(_GENERATIONS)
        self._lock = threading.Lock()
        self.enabled = rtnetlink.available()

    def _ttl_now(self) -> float:
        return self._ttl if self._ttl is not None else _default_ttl()

    def _room(self, table: dict[Any, Any], now: float) -> None:
        if len(table) >= self._max_entries:
            with self._lock:
                kept = _evicted(table, now, self._max_entries)
                table.clear()
                table.update(kept)

    def kernel_route(self, destination: Endpoint, now: float) -> tuple[float, _KernelRoute]:
        key = (destination.ip, destination.scope_id)
        entry = self._kernel.get(key)
        if entry is not None and now < entry[0]:
            return entry
        try:
            oif = rtnetlink.route_get(destination.ip, None, destination.scope_id).oif
        except OSError:
            oif = 0
        value: _KernelRoute = (oif, rtnetlink.interface_kind(oif) if oif else "link")
        self._room(self._kernel, now)
        entry = self._kernel[key] = (now + self._ttl_now(), value)
        return entry

    def pair_oif(
        self, source: IPAddress, destination: Endpoint, now: float
    ) -> tuple[float, int | None]:
        key = (source, destination.ip, destination.scope_id)
        entry = self._pairs.get(key)
        if entry is not None and now < entry[0]:
            return entry
        oif: int | None
        try:
            oif = rtnetlink.route_get(destination.ip, source, destination.scope_id).oif
        except OSError:
            oif = None
        self._room(self._pairs, now)
        entry = self._pairs[key] = (now + self._ttl_now(), oif)
        return entry

    def interface(self, name: str, now: float) -> tuple[int, rtnetlink.InterfaceKind]:
        """(index, kind) of the interface ``name`` ((0, "link") when unknown)."""
        entry = self._kinds.get(name)
        if entry is not None and now < entry[0]:
            return entry[1]
        try:
            index = socket.if_nametoindex(name) if name else 0
        except OSError:
            index = 0
        value = (index, rtnetlink.interface_kind_by_name(name) if index else "link")
        self._room(self._kinds, now)
        self._kinds[name] = (now + self._ttl_now(), value)
        return value

    def classify(
        self,
        destination: Endpoint,
        alternates: Sequence[LocalAddress],
        routes: dict[tuple[IPAddress, IPAddress], int],
        now: float,
    ) -> float:
        """Put the class of every (alternate, ``destination``) pair that is not `ROUTE_OWN`
        into ``routes``; return the time until which the answers hold."""
        until, (kernel_oif, kernel_kind) = self.kernel_route(destination, now)
        for source in alternates:
            source_oif, source_kind = self.interface(source.interface, now)
            if kernel_kind == "tunnel" and kernel_oif and source_oif != kernel_oif:
                pair_oif = None  # decided without asking
            else:
                expiry, pair_oif = self.pair_oif(source.ip, destination, now)
                until = min(until, expiry)
            kind = route_class(kernel_kind, kernel_oif, source_kind, source_oif, pair_oif)
            if kind != ROUTE_OWN:
                routes[source.ip, destination.ip] = kind
        return until

    def invalidate(self) -> None:
        with self._lock:
            self._kernel = {}
            self._pairs = {}
            self._kinds = {}
            self.generation = next(_GENERATIONS)


_local_cache = LocalAddressCache()
_kernel_cache = KernelSourceCache()
_route_cache = RouteCache()


def machine_addresses(now: float | None = None) -> tuple[LocalAddress, ...]:
    """The machine's usable local addresses (cached), non-deprecated first."""
    return _local_cache.get(now)


def refresh_local_addresses() -> None:
    """Read the machine's addresses into the cache now (from the network watcher's thread, so
    that a plan on the event loop finds them there instead of enumerating the interfaces); on an
    error (out of descriptors...) the cache stays as it was."""
    with contextlib.suppress(OSError):
        _local_cache.refresh()


def local_addresses_read() -> bool:
    """Whether the machine's addresses were read at least once in this process."""
    return _local_cache.read


def kernel_source(destination: Endpoint, now: float | None = None) -> IPAddress | None:
    """The source the kernel picks towards ``destination`` (UDP connect + getsockname, no
    packet sent); ``None`` when there is no route. Cached per IP and zone."""
    return _kernel_cache.get(destination, now)


def kernel_source_entry(destination: Endpoint, now: float) -> tuple[float, IPAddress | None]:
    """(expiry, `kernel_source`): the cached answer and until when it holds (``now``:
    ``time.monotonic()`` scale)."""
    return _kernel_cache.get_entry(destination, now)


def cached_kernel_source(destination: Endpoint, now: float) -> IPAddress | None:
    """`kernel_source` if cached (``now``: ``time.monotonic()`` scale), else None: no probe."""
    return _kernel_cache.cached(destination, now)


def learn_kernel_source(destination: Endpoint, host: str, now: float) -> IPAddress | None:
    """`KernelSourceCache.learn` on the process's cache: the kernel's source towards
    ``destination`` told by an unbound socket connected to it (``host``: its name's address)."""
    return _kernel_cache.learn(destination, host, now)


def machine_addresses_entry(now: float) -> tuple[float, tuple[LocalAddress, ...]]:
    """(expiry, `machine_addresses`)."""
    return _local_cache.get_entry(now)


def gather_sources(
    destinations: Sequence[Endpoint],
    local_addresses: Literal["auto"] | tuple[LocalAddress, ...] | None,
    *,
    now: float | None = None,
) -> SourceView:
    """What the planner needs to know of sources for ``destinations``.

    ``None`` -> mode "kernel" (no enumeration); ``"auto"`` -> mode "auto" with the machine's
    addresses; a tuple -> mode "explicit" with exactly those. ``kernel_choice`` is filled for
    every destination in every mode (it ranks pairs by RFC 6724).
    """
    return gather_sources_until(destinations, local_addresses, now=now)[0]


def gather_sources_until(
    destinations: Sequence[Endpoint],
    local_addresses: Literal["auto"] | tuple[LocalAddress, ...] | None,
    *,
    now: float | None = None,
) -> tuple[SourceView, float]:
    """`gather_sources` and the time (``time.monotonic()`` scale) until which it would give the
    same view, as long as `sources_generation()` stays the same."""
    if now is None:
        now = time.monotonic()
    get = _kernel_cache.get_entry
    until = math.inf
    kernel_choice: dict[IPAddress, IPAddress | None] = {}
    for destination in destinations:
        if destination.ip not in kernel_choice:
            expiry, kernel_choice[destination.ip] = get(destination, now)
            if expiry < until:
                until = expiry
    if local_addresses is None:
        return SourceView("kernel", (), kernel_choice), until
    if local_addresses == "auto":
        expiry, local = _local_cache.get_entry(now)
        until = min(until, expiry)
        routes: dict[tuple[IPAddress, IPAddress], int] = {}
        if _route_cache.enabled and len(local) > 1:
            seen: set[Endpoint] = set()
            for destination in destinations:
                if destination in seen:
                    continue
                seen.add(destination)
                ks = kernel_choice.get(destination.ip)
                alternates = [s for s in local if s.ip != ks and source_usable(s, destination)]
                if alternates:
                    until = min(until, _route_cache.classify(destination, alternates, routes, now))
        return SourceView("auto", local, kernel_choice, routes), until
    return SourceView("explicit", tuple(local_addresses), kernel_choice), until


def sources_generation() -> tuple[int, int, int]:
    """Changes whenever cached sources are dropped before their expiry (`invalidate`), or a
    cache is replaced (generations are unique across caches)."""
    return (_kernel_cache.generation, _local_cache.generation, _route_cache.generation)


def invalidate() -> None:
    """Forget cached interface addresses, kernel choices and routes (the network changed)."""
    _local_cache.invalidate()
    _kernel_cache.invalidate()
    _route_cache.invalidate()


def after_failed_race() -> None:
    """A race in which every pair failed: the network may have changed. Without change
    notifications the caches are dropped (re-learnt at the next call); with them a change
    has dropped them already, and a failure alone says nothing new about the sources."""
    if not _notified():
        invalidate()
