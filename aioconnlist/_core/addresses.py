"""Remote and local addresses: parsing every accepted form into one `Endpoint` type.

Accepted forms: ``(ip, port)``, ``(ip6, port, flowinfo, scope_id)``,
``"192.0.2.1:80"``, ``"[2001:db8::1]:443"``, ``"[fe80::1%eth0]:80"``, getaddrinfo 5-tuples and
`Endpoint` itself. ``::ffff:a.b.c.d`` is IPv4. Host names are refused: they need
`connect_by_name`. Everything malformed raises `InvalidArgument` naming the problem.
"""

from __future__ import annotations

import ipaddress
import itertools
import socket
import struct
from collections.abc import Iterable, Iterator, Mapping, Sequence
from functools import lru_cache
from operator import is_, itemgetter
from typing import Any, overload

from .errors import InvalidArgument
from .records import FrozenRecord

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class Endpoint(FrozenRecord):
    """One IP address and port. IPv4-mapped IPv6 addresses are stored as IPv4."""

    __slots__ = ("_family", "_hash", "_int128", "_sockaddr", "flowinfo", "ip", "port", "scope_id")
    _fields = ("ip", "port", "flowinfo", "scope_id")

    ip: IPAddress
    port: int
    flowinfo: int
    scope_id: int
    # ipaddress objects hash slowly (via hex()); endpoints are dict keys on every connect
    _hash: int
    # the address as one 128-bit integer, IPv4 in its ::ffff: mapped form (RFC 6724 §3.2)
    _int128: int
    _family: socket.AddressFamily
    _sockaddr: tuple[Any, ...] | None

    def __init__(self, ip: IPAddress, port: int, flowinfo: int = 0, scope_id: int = 0) -> None:
        setattr_ = object.__setattr__
        setattr_(self, "ip", ip)
        setattr_(self, "port", port)
        setattr_(self, "flowinfo", flowinfo)
        setattr_(self, "scope_id", scope_id)
        n = int(ip)
        if ip.version == 4:
            setattr_(self, "_hash", hash((n, 4, port, scope_id)))
            setattr_(self, "_int128", n | 0xFFFF00000000)
            setattr_(self, "_family", socket.AF_INET)
        else:
            setattr_(self, "_hash", hash((n, 6, port, scope_id)))
            setattr_(self, "_int128", n)
            setattr_(self, "_family", socket.AF_INET6)
        setattr_(self, "_sockaddr", None)  # made on first use

    def __hash__(self) -> int:  # type: ignore[override]
        return self._hash

    @property
    def family(self) -> socket.AddressFamily:
        """AF_INET6 or AF_INET (an ``::ffff:a.b.c.d`` address is IPv4)."""
        return self._family

    def sockaddr(self, family: int | None = None) -> tuple[Any, ...]:
        """The address tuple for a socket of `family` (default: this endpoint's own).

        An IPv4 endpoint on an AF_INET6 socket becomes its v4-mapped form.
        """
        if family is None or family == self._family:
            cached = self._sockaddr
            if cached is None:
                cached = self._make_sockaddr(self._family)
                object.__setattr__(self, "_sockaddr", cached)
            return cached
        return self._make_sockaddr(family)

    def _make_sockaddr(self, family: int) -> tuple[Any, ...]:
        if family == socket.AF_INET:
            if self.ip.version != 4:
                raise InvalidArgument(f"{self} cannot be reached from an AF_INET socket")
            return (str(self.ip), self.port)
        if self.ip.version == 4:
            return (f"::ffff:{self.ip}", self.port, 0, 0)
        return (str(self.ip), self.port, self.flowinfo, self.scope_id)

    def __str__(self) -> str:
        if self._family == socket.AF_INET:  # the socket address's text, made once
            host, port = self.sockaddr()
            return f"{host}:{port}"
        zone = f"%{_zone_name(self.scope_id)}" if self.scope_id else ""
        return f"[{self.ip}{zone}]:{self.port}"


_SLOTS = tuple(
    Endpoint.__dict__[name].__set__
    for name in ("ip", "port", "flowinfo", "scope_id", "_hash", "_int128", "_family", "_sockaddr")
)


def _ipv4_of_int() -> Any:
    """``IPv4Address(n)`` for an ``n`` known to be in range: its ``_ip`` slot set directly
    (a third of the cost of ``__init__``'s checks) where ipaddress has that slot."""
    slot: Any = ipaddress.IPv4Address.__dict__.get("_ip")
    if (
        type(slot).__name__ != "member_descriptor"
        or getattr(ipaddress.IPv4Address(1), "_ip", None) != 1
    ):
        return ipaddress.IPv4Address  # pragma: no cover - another ipaddress

    def ipv4(
        n: int, new: Any = object.__new__, cls: Any = ipaddress.IPv4Address, put: Any = slot.__set__
    ) -> ipaddress.IPv4Address:
        ip: ipaddress.IPv4Address = new(cls)
        put(ip, n)
        return ip

    return ipv4


_ipv4 = _ipv4_of_int()


def socket_name_ip(host: str) -> IPAddress:
    """The address of a socket name's host as the kernel writes it (``getsockname()[0]``:
    ``fe80::1%eth0`` with its zone, dropped here), read by ``inet_pton`` rather than by
    ipaddress's string parser (a third of its cost or less)."""
    if ":" not in host:
        ip: ipaddress.IPv4Address = _ipv4(
            int.from_bytes(socket.inet_pton(socket.AF_INET, host), "big")
        )
        return ip
    return ipaddress.IPv6Address(socket.inet_pton(socket.AF_INET6, host.partition("%")[0]))


def _endpoint_v4(
    n: int,
    port: int,
    new: Any = object.__new__,
    slots: tuple[Any, ...] = _SLOTS,
    ipv4: Any = _ipv4,
    af_inet: socket.AddressFamily = socket.AF_INET,
) -> Endpoint:
    """``Endpoint(IPv4Address(n), port)`` with the same fields, made through the slots
    directly (half the cost of the dataclass ``__init__``): the fast path of a fresh list.
    ``n`` must be a valid IPv4 address (0 <= n < 2**32) and ``port`` in 1..65535."""
    self: Endpoint = new(Endpoint)
    slots[0](self, ipv4(n))
    slots[1](self, port)
    slots[2](self, 0)
    slots[3](self, 0)
    slots[4](self, hash((n, 4, port, 0)))
    slots[5](self, n | 0xFFFF00000000)
    slots[6](self, af_inet)
    slots[7](self, None)
    return self


def shown(value: object, limit: int = 60) -> str:
    """``repr(value)`` cut to about ``limit`` characters: error messages name a bad input
    without echoing all of it (a megabyte string, a list of thousands)."""
    try:
        text = repr(value)
    except Exception:  # a broken __repr__ of a foreign object
        text = f"<{type(value).__name__}>"
    if len(text) > limit:
        text = f"{text[: limit - 15]}...({len(text)} chars)"
    return text


def _zone_name(scope_id: int) -> str:
    try:
        return socket.if_indextoname(scope_id)
    except OSError:
        return str(scope_id)


def _decimal(text: str) -> int | None:
    """``text`` as a plain ASCII decimal of at most 10 digits, else None (no '²', no '٣')."""
    if text.isascii() and text.isdigit() and len(text) <= 10:
        return int(text)
    return None


def _zone_index(zone: str, text: object) -> int:
    index = _decimal(zone)
    if index is None:
        try:
            index = socket.if_nametoindex(zone)
        except (OSError, ValueError):  # ValueError: NUL byte or unencodable name
            raise InvalidArgument(
                f"unknown interface {shown(zone)} in address {shown(text)}"
            ) from None
    if not 0 <= index < 2**32:
        raise InvalidArgument(f"zone index {shown(index)} in address {shown(text)} is out of range")
    return index


def parse_ip(text: object, *, what: str = "address") -> tuple[IPAddress, int]:
    """Parse an IP literal (with an optional ``%zone``) into (address, scope_id)."""
    if isinstance(text, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
        ip: IPAddress = text
        scope = 0
    elif isinstance(text, str):
        literal, percent, zone = text.partition("%")
        try:
            ip = ipaddress.ip_address(literal)
        except ValueError:
            raise InvalidArgument(
                f"{what} {shown(text)} is not an IP address; "
                "host names need aioconnlist.connect_by_name(host, port)"
            ) from None
        if percent and ip.version == 4:
            raise InvalidArgument(f"{what} {shown(text)}: a zone (%...) is only valid for IPv6")
        if percent and not zone:
            raise InvalidArgument(f"{what} {shown(text)}: empty zone after '%'")
        scope = _zone_index(zone, text) if zone else 0
    else:
        raise InvalidArgument(f"{what} {shown(text)} is not an IP address string")
    if ip.version == 6:
        if ip.ipv4_mapped is not None:
            return ip.ipv4_mapped, 0
        if getattr(ip, "scope_id", None):
            # ipaddress (3.9+) keeps a textual zone itself; move it to scope_id
            scope = _zone_index(str(ip.scope_id), text)
            ip = ipaddress.IPv6Address(str(ip).split("%", 1)[0])
    return ip, scope


def _port(value: object, text: object) -> int:
    if isinstance(value, str):
        number = _decimal(value)
        if number is not None:
            value = number
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgument(f"port {shown(value)} in {shown(text)} is not an integer")
    if not 0 < value < 65536:
        raise InvalidArgument(f"port {shown(value)} in {shown(text)} is out of range 1..65535")
    return value


def _from_string(text: str) -> Endpoint:
    if text.startswith("["):
        host, sep, port = text[1:].partition("]:")
        if not sep:
            raise InvalidArgument(f"address {shown(text)} must look like '[2001:db8::1]:443'")
        ip, scope = parse_ip(host)
        if ip.version == 4 and not host.lower().startswith("::ffff:"):
            raise InvalidArgument(f"address {shown(text)}: brackets are for IPv6 addresses")
    else:
        host, sep, port = text.rpartition(":")
        if not sep:
            raise InvalidArgument(f"address {shown(text)} has no port; write it as 'ip:port'")
        if ":" in host:
            raise InvalidArgument(f"IPv6 address {shown(text)} needs brackets: '[ip]:port'")
        ip, scope = parse_ip(host)
    return Endpoint(ip, _port(port, text), 0, scope)


def _from_tuple(value: tuple[Any, ...], text: object) -> Endpoint:
    if len(value) == 5 and isinstance(value[4], tuple):  # getaddrinfo 5-tuple: its sockaddr
        value = value[4]
    if len(value) not in (2, 4):
        raise InvalidArgument(
            f"address {shown(text)} must be (ip, port), (ip, port, flowinfo, scope_id) "
            "or a getaddrinfo 5-tuple"
        )
    ip, scope = parse_ip(value[0])
    port = _port(value[1], text)
    flowinfo = 0
    if len(value) == 4:
        if ip.version == 4 and not str(value[0]).lower().startswith("::ffff:"):
            raise InvalidArgument(f"address {shown(text)}: a 4-tuple is for IPv6 only")
        flowinfo, scope_id = value[2], value[3]
        if not _is_int(flowinfo) or not 0 <= flowinfo < 2**20:
            raise InvalidArgument(
                f"flowinfo {shown(flowinfo)} in {shown(text)} is not a 20-bit integer"
            )
        if not _is_int(scope_id) or not 0 <= scope_id < 2**32:
            raise InvalidArgument(f"scope_id {shown(scope_id)} in {shown(text)} is not an integer")
        scope = scope_id or scope
        if ip.version == 4:
            flowinfo, scope = 0, 0
    return Endpoint(ip, port, flowinfo, scope)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _cacheable(value: object) -> bool:
    """Whether ``value`` may go through the parse cache.

    The cache compares keys with ``==``, under which ``80 == 80.0 == True + 79``; so only exact
    ``str``/``int`` leaves are cached, where equal keys are sure to parse alike.
    """
    if type(value) is str:
        return True
    if type(value) is not tuple:
        return False
    if len(value) == 5 and type(value[4]) is tuple:  # getaddrinfo 5-tuple: only [4] is read
        value = value[4]
    return all(type(x) is str or type(x) is int for x in value)


@lru_cache(maxsize=4096)
def _parse_cached(value: object) -> Endpoint:
    return _parse(value)


def _parse(value: object) -> Endpoint:
    if isinstance(value, Endpoint):
        return value
    if isinstance(value, str):
        return _from_string(value)
    if isinstance(value, tuple):
        return _from_tuple(value, value)
    if isinstance(value, list):
        return _from_tuple(tuple(value), value)
    raise InvalidArgument(f"address {shown(value)} is neither a tuple nor an 'ip:port' string")


def parse_address(value: object) -> Endpoint:
    """Parse one address of any accepted form."""
    if _cacheable(value):
        try:
            return _parse_cached(value)
        except TypeError:  # unhashable parts (a 5-tuple's other fields): parse uncached
            pass
    return _parse(value)


# Parsed lists, for a caller that passes the same list again (the usual case: a configured
# list of servers). A hit needs every element to be the very object parsed before, and only
# lists whose elements are deeply immutable (see `_cacheable`, or Endpoints) are kept, so the
# same objects cannot parse differently. The cache holds its elements: their ids stay theirs.
# Bounded by what it holds: at most `LIST_CACHE_ENDPOINTS` endpoints in all (one list may take
# it all: the same list of 100,000 addresses is then a list comparison, not 100,000 parses),
# and at most `_LIST_CACHE_SIZE` lists.
# A list longer than a quarter of the bound evicts only lists never passed again or unused for
# `_RECENT` misses (and is not kept when that does not make room): a stream of fresh long
# lists, each parsed once, does not push out the long list a caller passes again and again.
# Entries: (the items, their endpoints, `_list_misses` when last used, passed again since).
_LIST_CACHE: dict[
    tuple[int, int, int], tuple[tuple[object, ...], Sequence[Endpoint], int, bool]
] = {}
_RECENT = 8
_list_misses = 0
# A list longer than `LONG_LIST` is kept only when it is seen a second time (its length and
# three of its items, by value, noted the first time in `_SEEN_ONCE`): fresh long lists, each
# parsed once, are never kept (they would cost memory and the garbage collector's time).
LONG_LIST = 2048
_SEEN_ONCE: dict[tuple[object, ...], None] = {}
_SEEN_ONCE_SIZE = 64


def seen_before(fingerprint: tuple[object, ...], seen: dict[tuple[object, ...], None]) -> bool:
    """Whether ``fingerprint`` is in ``seen`` (a bounded record of what was seen once); notes
    it when not (the oldest noted dropped beyond `_SEEN_ONCE_SIZE`)."""
    if seen.pop(fingerprint, 0) is None:
        return True
    seen[fingerprint] = None
    while len(seen) > _SEEN_ONCE_SIZE:
        try:
            seen.pop(next(iter(seen)), None)
        except (RuntimeError, StopIteration):  # changed by another thread meanwhile
            break
    return False


_LIST_CACHE_SIZE = 256
LIST_CACHE_ENDPOINTS = 131_072
_list_cache_endpoints = 0


def parse_addresses(values: Iterable[object] | object) -> list[Endpoint]:
    """Parse a list of addresses; an empty list is an error. Duplicates are dropped."""
    parsed = parse_destinations(values)
    return parsed if type(parsed) is list else list(parsed)


def parse_destinations(values: Iterable[object] | object) -> Sequence[Endpoint]:
    """`parse_addresses`, where a long list of plain IPv4 tuples may come back as
    `EndpointColumns` (its endpoints made when read); any other result is the caller's own
    list."""
    kind = type(values)
    if kind is list or kind is tuple:
        items: list[object] | tuple[object, ...] = values  # type: ignore[assignment]
        if items:
            key = (len(items), id(items[0]), id(items[-1]))
            hit = _LIST_CACHE.get(key)
            if hit is not None and all(map(is_, items, hit[0])):
                if _LIST_CACHE.pop(key, None) is not None:
                    _LIST_CACHE[key] = (hit[0], hit[1], _list_misses, True)  # most recent last
                return own_copy(hit[1])
            if len(items) <= _SHORT_LIST:
                return _parse_short(items, key)
            return _parse_list(items, key)
    elif isinstance(values, (str, bytes, bytearray, Endpoint, Mapping)) or not isinstance(
        values, Iterable
    ):
        raise InvalidArgument(
            f"addresses must be a list of addresses, not {type(values).__name__} {shown(values)}"
        )
    seen: dict[Endpoint, None] = {}
    for value in values:  # type: ignore[union-attr]
        seen.setdefault(parse_address(value), None)
    if not seen:
        raise InvalidArgument("the address list is empty")
    return list(seen)


# Parsed a column at a time a list pays a fixed cost (sets, zip, join: ~10 µs) and less per
# address than item by item: it pays off from about 64 fresh addresses on (4: 17 against 7 µs;
# 64: even; 1,000: 1.5 against 2.1 ms).
_COLUMN_MIN = 64
_V4_MASK = 0xFFFFFFFF


class EndpointColumns(Sequence[Endpoint]):
    """A parsed list of distinct IPv4 endpoints, kept as two columns (``int128s``: each
    address as `Endpoint._int128`, ``ports``); an `Endpoint` is made when first read.

    A long fresh list costs its validation, not one `Endpoint` (and ``IPv4Address``) per
    address: the head of its plan reads a few of them (`plan_head`), the rest are made only if
    the race needs its full plan (iteration makes them all, once). Immutable, and equal to any
    list or tuple of the same endpoints."""

    __slots__ = ("_all", "_made", "int128s", "ports")

    def __init__(self, int128s: tuple[int, ...], ports: tuple[int, ...]) -> None:
        self.int128s = int128s
        self.ports = ports
        self._made: dict[int, Endpoint] = {}
        self._all: list[Endpoint] | None = None

    def __len__(self) -> int:
        return len(self.ports)

    @overload
    def __getitem__(self, index: int) -> Endpoint: ...

    @overload
    def __getitem__(self, index: slice) -> list[Endpoint]: ...

    def __getitem__(self, index: int | slice) -> Endpoint | list[Endpoint]:
        made = self._all
        if made is not None:
            return made[index]
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self.ports)))]
        if index < 0:
            index += len(self.ports)
        endpoint = self._made.get(index)
        if endpoint is None:
            if not 0 <= index < len(self.ports):
                raise IndexError("EndpointColumns index out of range")
            endpoint = _endpoint_v4(self.int128s[index] & _V4_MASK, self.ports[index])
            endpoint = self._made.setdefault(index, endpoint)
        return endpoint

    def endpoints(self) -> list[Endpoint]:
        """Every endpoint (made now if not yet; those already read are kept: the same
        objects)."""
        made = self._all
        if made is None:
            made = list(map(_endpoint_v4, map(_V4_MASK.__and__, self.int128s), self.ports))
            for i, endpoint in list(self._made.items()):
                made[i] = endpoint
            self._all = made
        return made

    def __iter__(self) -> Iterator[Endpoint]:
        return iter(self.endpoints())

    def __eq__(self, other: object) -> bool:
        if other is self:
            return True
        if isinstance(other, EndpointColumns):
            return self.ports == other.ports and self.int128s == other.int128s
        if isinstance(other, (list, tuple)):
            return len(other) == len(self.ports) and self.endpoints() == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"EndpointColumns({len(self.ports)} endpoints: {shown(self[:3])}...)"


def own_copy(endpoints: Sequence[Endpoint]) -> Sequence[Endpoint]:
    """A copy of ``endpoints`` that no one else changes: a new list, or an `EndpointColumns`
    itself (immutable)."""
    return endpoints if type(endpoints) is EndpointColumns else list(endpoints)


def int128s(destinations: Sequence[Endpoint]) -> Iterable[int]:
    """Each destination's `Endpoint._int128`, without making the endpoints of a column list."""
    if type(destinations) is EndpointColumns:
        return destinations.int128s
    return (d._int128 for d in destinations)


def _plain_v4(items: list[object] | tuple[object, ...]) -> EndpointColumns | None:
    """The endpoints of a list made only of (IPv4 dotted quad, port) tuples of exact types
    (deduplicated, first kept), checked and converted a column at a time; None for any other
    list. ``inet_pton`` accepts exactly the dotted quads ``ipaddress`` does (four decimal
    octets, no leading zeros): each address has one accepted spelling, so the items are
    deduplicated as they are, and the endpoints are those the general parse gives."""
    rows: Any = items
    if set(map(type, rows)) != {tuple} or set(map(len, rows)) != {2}:
        return None
    try:
        distinct = dict.fromkeys(rows)
    except TypeError:  # unhashable parts: not plain
        return None
    hosts = tuple(map(_FIRST, distinct))
    ports = tuple(map(_SECOND, distinct))
    if set(map(type, hosts)) != {str} or set(map(type, ports)) != {int}:
        return None
    if min(ports) <= 0 or max(ports) >= 65536:
        return None
    try:
        packed = list(map(socket.inet_pton, itertools.repeat(socket.AF_INET), hosts))
    except (OSError, ValueError):  # not all IPv4 (or one malformed): the general parse
        return None
    # each address behind b"\0\0\xff\xff": 8 bytes that read as its `Endpoint._int128`
    int128s = struct.unpack(f">{len(hosts)}Q", _MAPPED_PREFIX + _MAPPED_PREFIX.join(packed))
    return EndpointColumns(int128s, ports)


_FIRST, _SECOND = itemgetter(0), itemgetter(1)
_MAPPED_PREFIX = b"\0\0\xff\xff"


def _parse_list(
    items: list[object] | tuple[object, ...], key: tuple[int, int, int]
) -> Sequence[Endpoint]:
    plain = _plain_v4(items) if len(items) > _COLUMN_MIN else None
    if plain is not None:
        return _keep_list(items, key, plain)
    seen: dict[Endpoint, None] = {}
    immutable = True
    pton, from_bytes, v4 = socket.inet_pton, int.from_bytes, _endpoint_v4
    for value in items:
        if (
            type(value) is tuple
            and len(value) == 2
            and type(value[0]) is str
            and type(value[1]) is int
            and 0 < value[1] < 65536
        ):  # the fast path: inet_pton accepts exactly the dotted quads ipaddress does
            try:
                packed = pton(socket.AF_INET, value[0])
            except (OSError, ValueError):  # not IPv4 (or malformed): the general parse
                pass
            else:
                seen.setdefault(v4(from_bytes(packed, "big"), value[1]), None)
                continue
        if type(value) is Endpoint:
            seen.setdefault(value, None)
        elif _cacheable(value):
            try:
                seen.setdefault(_parse_cached(value), None)
            except TypeError:  # unhashable parts (a 5-tuple's other fields): parse uncached
                seen.setdefault(_parse(value), None)
        else:
            immutable = False
            seen.setdefault(_parse(value), None)
    result = list(seen)
    if immutable:
        return _keep_list(items, key, result)
    return result


# Short lists of plain ``(str, int)`` pairs, by value: a caller that builds its list afresh
# each call (a literal in a loop, a list made from a config) meets the endpoints parsed
# before, the very objects the plan cache holds. Exact types only, so ``80.0`` or ``True``
# never meets ``80``; cleared when full.
_SHORT_LIST = 4
_SHORT_LISTS: dict[tuple[object, ...], list[Endpoint]] = {}
_SHORT_LISTS_SIZE = 256


def _parse_short(
    items: list[object] | tuple[object, ...], key: tuple[int, int, int]
) -> Sequence[Endpoint]:
    for value in items:
        if not (
            type(value) is tuple
            and len(value) == 2
            and type(value[0]) is str
            and type(value[1]) is int
        ):
            return _parse_list(items, key)
    by_value = tuple(items)
    hit = _SHORT_LISTS.get(by_value)
    if hit is not None:
        return list(hit)
    result = _parse_list(items, key)
    if len(_SHORT_LISTS) >= _SHORT_LISTS_SIZE:
        _SHORT_LISTS.clear()
    _SHORT_LISTS[by_value] = list(result)
    return result


def _keep_list(
    items: list[object] | tuple[object, ...],
    key: tuple[int, int, int],
    result: Sequence[Endpoint],
) -> Sequence[Endpoint]:
    """Cache ``result``, the endpoints of the deeply immutable ``items``; a copy of it (or
    itself: `EndpointColumns` cannot be changed)."""
    global _list_cache_endpoints, _list_misses
    _list_misses += 1
    if len(items) > LIST_CACHE_ENDPOINTS:
        return result
    if len(items) > LONG_LIST:
        try:
            fingerprint = (len(items), items[0], items[len(items) // 2], items[-1])
            if not seen_before(fingerprint, _SEEN_ONCE):
                return result
        except TypeError:  # unhashable parts (a 5-tuple's other fields): not kept
            return result
    old = _LIST_CACHE.pop(key, None)
    if old is not None:
        _list_cache_endpoints -= len(old[0])

    def full() -> bool:
        return (
            len(_LIST_CACHE) >= _LIST_CACHE_SIZE
            or _list_cache_endpoints + len(items) > LIST_CACHE_ENDPOINTS
        )

    if len(items) > LIST_CACHE_ENDPOINTS // 4:  # only what was not used lately makes room
        for stale in [
            k for k, v in _LIST_CACHE.items() if not v[3] or v[2] < _list_misses - _RECENT
        ]:
            if not full():
                break
            _list_cache_endpoints -= len(_LIST_CACHE.pop(stale)[0])
        if full():
            return result
    while _LIST_CACHE and full():  # the least recently used go first, not the whole cache
        _list_cache_endpoints -= len(_LIST_CACHE.pop(next(iter(_LIST_CACHE)))[0])
    _LIST_CACHE[key] = (tuple(items), result, _list_misses, False)
    _list_cache_endpoints += len(items)
    return own_copy(result)
