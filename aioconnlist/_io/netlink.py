"""A small Linux netlink reader: default routes, addresses, the TCP metrics cache.

Everything here is unprivileged and sends no packet on any network: the kernel is asked over
``AF_NETLINK`` (``RTM_GETROUTE`` and ``RTM_GETADDR`` dumps on ``NETLINK_ROUTE``; a dump of the
generic netlink family ``tcp_metrics``), and change notifications are received by binding a
``NETLINK_ROUTE`` socket to the address and route multicast groups.

Written here rather than taken from pyroute2: the four messages needed fit in ~200 lines of
`struct`, import in well under a millisecond, and are a stable kernel ABI; pyroute2 is a
large package (several MB, tens of milliseconds to import) that would become a dependency
of every user for what is a side feature. The parsers are pure (bytes in, tuples out) and are
tested on the kernel's own answers.
"""

from __future__ import annotations

import ipaddress
import os
import select
import socket
import struct
from collections.abc import Iterator

from .._core.addresses import IPAddress
from .._core.records import FrozenRecord

NETLINK_ROUTE = 0
NETLINK_GENERIC = 16

NLMSG_ERROR = 2
NLMSG_DONE = 3
NLM_F_REQUEST = 0x1
NLM_F_DUMP = 0x300

RTM_NEWLINK, RTM_GETLINK = 16, 18
RTM_NEWADDR, RTM_DELADDR, RTM_GETADDR = 20, 21, 22
RTM_NEWROUTE, RTM_DELROUTE, RTM_GETROUTE = 24, 25, 26

RTMGRP_LINK = 0x1
RTMGRP_IPV4_IFADDR = 0x10
RTMGRP_IPV4_ROUTE = 0x40
RTMGRP_IPV6_IFADDR = 0x100
RTMGRP_IPV6_ROUTE = 0x400
#: the groups whose messages may change sources or the network's identity (links: an
#: interface going down takes its addresses out of the usable sources)
CHANGE_GROUPS = (
    RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV4_ROUTE | RTMGRP_IPV6_IFADDR | RTMGRP_IPV6_ROUTE
)

RTA_DST, RTA_OIF, RTA_GATEWAY, RTA_PRIORITY, RTA_TABLE = 1, 4, 5, 6, 15
IFA_ADDRESS, IFA_LOCAL, IFA_LABEL, IFA_FLAGS = 1, 2, 3, 8
IFLA_IFNAME = 3
RT_TABLE_MAIN = 254
RTN_UNICAST = 1
RT_SCOPE_UNIVERSE = 0

GENL_ID_CTRL = 0x10
CTRL_CMD_GETFAMILY = 3
CTRL_ATTR_FAMILY_ID = 1
CTRL_ATTR_FAMILY_NAME = 2
TCP_METRICS_CMD_GET = 1
TCP_METRICS_ATTR_ADDR_IPV4 = 1
TCP_METRICS_ATTR_ADDR_IPV6 = 2
TCP_METRICS_ATTR_AGE = 3
TCP_METRICS_ATTR_VALS = 6
TCP_METRICS_ATTR_SADDR_IPV4 = 11
TCP_METRICS_ATTR_SADDR_IPV6 = 12
# nested in VALS: TCP_METRIC_x + 1
TCP_METRIC_RTT_US = 5 + 1  # srtt in microseconds, scaled by 8 (as the kernel keeps it)
TCP_METRIC_RTTVAR_US = 6 + 1  # rttvar in microseconds, scaled by 4

_NLMSGHDR = struct.Struct("=IHHII")
_RTATTR = struct.Struct("=HH")
_IFADDRMSG = struct.Struct("=BBBBI")
_IFINFOMSG = struct.Struct("=BxHiII")  # family, type, index, flags, change
_RTMSG = struct.Struct("=BBBBBBBBI")
_GENLMSGHDR = struct.Struct("=BBH")

_RECV = 65536
_TIMEOUT = 1.0  # the kernel answers a dump at once; never block a caller longer than this


class Route(FrozenRecord):
    """A default route of the main table."""

    __slots__ = ("family", "gateway", "ifindex", "priority")
    _fields = ("family", "gateway", "ifindex", "priority")

    family: int
    gateway: IPAddress | None
    ifindex: int
    priority: int

    def __init__(
        self,
        family: int,
        gateway: IPAddress | None,
        ifindex: int,
        priority: int,
    ) -> None:
        object.__setattr__(self, "family", family)
        object.__setattr__(self, "gateway", gateway)
        object.__setattr__(self, "ifindex", ifindex)
        object.__setattr__(self, "priority", priority)


class Address(FrozenRecord):
    """An address assigned to an interface, with its prefix length and kernel scope."""

    __slots__ = ("family", "flags", "ifindex", "ip", "label", "prefix_len", "scope")
    _fields = ("family", "ip", "prefix_len", "scope", "ifindex", "flags", "label")

    family: int
    ip: IPAddress
    prefix_len: int
    scope: int
    ifindex: int
    flags: int
    #: the IPv4 address's label (``eth0:1`` for an alias; "" when none was given)
    label: str

    def __init__(
        self,
        family: int,
        ip: IPAddress,
        prefix_len: int,
        scope: int,
        ifindex: int,
        flags: int,
        label: str = "",
    ) -> None:
        object.__setattr__(self, "family", family)
        object.__setattr__(self, "ip", ip)
        object.__setattr__(self, "prefix_len", prefix_len)
        object.__setattr__(self, "scope", scope)
        object.__setattr__(self, "ifindex", ifindex)
        object.__setattr__(self, "flags", flags)
        object.__setattr__(self, "label", label)


class Link(FrozenRecord):
    """An interface: its index, name and ``IFF_*`` flags (as SIOCGIFFLAGS reports them)."""

    __slots__ = ("flags", "index", "name")
    _fields = ("index", "name", "flags")

    index: int
    name: str
    flags: int

    def __init__(self, index: int, name: str, flags: int) -> None:
        object.__setattr__(self, "index", index)
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "flags", flags)


# --- pure: message parsing -----------------------------------------------------------------


def _align(n: int) -> int:
    return (n + 3) & ~3


def iter_messages(data: bytes) -> Iterator[tuple[int, int, bytes]]:
    """(type, seq, payload) of each netlink message in ``data``; stops at a short one."""
    offset = 0
    while offset + _NLMSGHDR.size <= len(data):
        length, kind, _flags, seq, _pid = _NLMSGHDR.unpack_from(data, offset)
        if length < _NLMSGHDR.size or offset + length > len(data):
            return
        yield kind, seq, data[offset + _NLMSGHDR.size : offset + length]
        offset += _align(length)


def iter_attributes(data: bytes, offset: int = 0) -> Iterator[tuple[int, bytes]]:
    """(type, value) of each route attribute in ``data`` from ``offset``."""
    while offset + _RTATTR.size <= len(data):
        length, kind = _RTATTR.unpack_from(data, offset)
        if length < _RTATTR.size or offset + length > len(data):
            return
        yield kind & 0x3FFF, data[offset + _RTATTR.size : offset + length]  # no NLA_F_ flags
        offset += _align(length)


def _ip(family: int, raw: bytes) -> IPAddress | None:
    if family == socket.AF_INET and len(raw) == 4:
        return ipaddress.IPv4Address(raw)
    if family == socket.AF_INET6 and len(raw) == 16:
        return ipaddress.IPv6Address(raw)
    return None


def parse_route(payload: bytes) -> Route | None:
    """The default route in an RTM_NEWROUTE payload, or None if it is another route."""
    if len(payload) < _RTMSG.size:
        return None
    family, dst_len, _src_len, _tos, table, _proto, _scope, kind, _flags = _RTMSG.unpack_from(
        payload
    )
    if dst_len != 0 or kind != RTN_UNICAST:
        return None
    gateway: IPAddress | None = None
    ifindex = priority = 0
    for attr, value in iter_attributes(payload, _RTMSG.size):
        if attr == RTA_TABLE and len(value) == 4:
            table = struct.unpack("=I", value)[0]
        elif attr == RTA_GATEWAY:
            gateway = _ip(family, value)
        elif attr == RTA_OIF and len(value) == 4:
            ifindex = struct.unpack("=I", value)[0]
        elif attr == RTA_PRIORITY and len(value) == 4:
            priority = struct.unpack("=I", value)[0]
    if table != RT_TABLE_MAIN:
        return None
    return Route(family, gateway, ifindex, priority)


def parse_address(payload: bytes) -> Address | None:
    """The address in an RTM_NEWADDR payload."""
    if len(payload) < _IFADDRMSG.size:
        return None
    family, prefix_len, flags, scope, ifindex = _IFADDRMSG.unpack_from(payload)
    ip = local = None
    label = ""
    for attr, value in iter_attributes(payload, _IFADDRMSG.size):
        if attr == IFA_ADDRESS:
            ip = _ip(family, value)
        elif attr == IFA_LOCAL:
            local = _ip(family, value)
        elif attr == IFA_LABEL:
            label = value.split(b"\0", 1)[0].decode(errors="replace")
        elif attr == IFA_FLAGS and len(value) == 4:
            flags = struct.unpack("=I", value)[0]
    chosen = local or ip  # IFA_LOCAL is the own address on point-to-point links
    if chosen is None:
        return None
    return Address(family, chosen, prefix_len, scope, ifindex, flags, label)


def parse_link(payload: bytes) -> Link | None:
    """The interface in an RTM_NEWLINK payload."""
    if len(payload) < _IFINFOMSG.size:
        return None
    _family, _kind, index, flags, _change = _IFINFOMSG.unpack_from(payload)
    for attr, value in iter_attributes(payload, _IFINFOMSG.size):
        if attr == IFLA_IFNAME:
            return Link(index, value.split(b"\0", 1)[0].decode(errors="replace"), flags)
    return None


def parse_tcp_metrics(
    payload: bytes,
) -> tuple[IPAddress, IPAddress | None, float, float, float] | None:
    """(destination, source or None, srtt s, rttvar s, age s) of one tcp_metrics entry with
    an RTT, else None. The kernel keeps srtt scaled by 8 and rttvar by 4, in microseconds."""
    dest: IPAddress | None = None
    source: IPAddress | None = None
    age = 0.0
    srtt = rttvar = None
    for attr, value in iter_attributes(payload, _GENLMSGHDR.size):
        if attr == TCP_METRICS_ATTR_ADDR_IPV4:
            dest = _ip(socket.AF_INET, value)
        elif attr == TCP_METRICS_ATTR_ADDR_IPV6:
            dest = _ip(socket.AF_INET6, value)
        elif attr == TCP_METRICS_ATTR_SADDR_IPV4:
            source = _ip(socket.AF_INET, value)
        elif attr == TCP_METRICS_ATTR_SADDR_IPV6:
            source = _ip(socket.AF_INET6, value)
        elif attr == TCP_METRICS_ATTR_AGE and len(value) == 8:
            age = struct.unpack("=Q", value)[0] / 1000.0
        elif attr == TCP_METRICS_ATTR_VALS:
            for metric, raw in iter_attributes(value):
                if len(raw) != 4:
                    continue
                if metric == TCP_METRIC_RTT_US:
                    srtt = struct.unpack("=I", raw)[0] / 8 / 1e6
                elif metric == TCP_METRIC_RTTVAR_US:
                    rttvar = struct.unpack("=I", raw)[0] / 4 / 1e6
    if dest is None or srtt is None or srtt <= 0:
        return None
    return dest, source, srtt, rttvar if rttvar is not None else srtt / 2, age


# --- I/O -----------------------------------------------------------------------------------


def _request(kind: int, flags: int, seq: int, body: bytes) -> bytes:
    return _NLMSGHDR.pack(_NLMSGHDR.size + len(body), kind, flags, seq, 0) + body


def _recv(s: socket.socket) -> bytes:
    """One read of a non-blocking netlink socket: the kernel has its answer ready at once (for
    a dump, each part as the previous one is read); if not, wait for it, bounded."""
    while True:
        try:
            return s.recv(_RECV)
        except BlockingIOError:  # not seen in practice
            if not select.select([s], [], [], _TIMEOUT)[0]:
                raise TimeoutError("no netlink answer") from None


def _dump(protocol: int, kind: int, body: bytes) -> list[tuple[int, bytes]]:
    """Send one dump request, return (type, payload) of every answer until NLMSG_DONE."""
    seq = int.from_bytes(os.urandom(4), "big") or 1
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, protocol) as s:
        # non-blocking: the kernel makes each part of a dump as the previous one is read, so
        # every read has its data at once and no blocking socket call happens on an event loop
        s.setblocking(False)
        s.bind((0, 0))
        s.send(_request(kind, NLM_F_REQUEST | NLM_F_DUMP, seq, body))
        answers: list[tuple[int, bytes]] = []
        while True:
            data = _recv(s)
            for msg_kind, msg_seq, payload in iter_messages(data):
                if msg_seq != seq:
                    continue
                if msg_kind == NLMSG_DONE:
                    return answers
                if msg_kind == NLMSG_ERROR:
                    code = struct.unpack_from("=i", payload)[0] if len(payload) >= 4 else 0
                    if code == 0:
                        return answers
                    raise OSError(-code, os.strerror(-code))
                answers.append((msg_kind, payload))
            if not data:
                return answers


def default_routes() -> list[Route]:
    """The main table's default routes of both families (raises OSError without netlink)."""
    body = _RTMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0, 0, 0, 0, 0)
    routes = []
    for kind, payload in _dump(NETLINK_ROUTE, RTM_GETROUTE, body):
        if kind == RTM_NEWROUTE and (route := parse_route(payload)) is not None:
            routes.append(route)
    return routes


def links() -> list[Link]:
    """Every interface, in the kernel's order (raises OSError without netlink)."""
    body = _IFINFOMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0)
    found = []
    for kind, payload in _dump(NETLINK_ROUTE, RTM_GETLINK, body):
        if kind == RTM_NEWLINK and (link := parse_link(payload)) is not None:
            found.append(link)
    return found


def addresses() -> list[Address]:
    """Every address of every interface (raises OSError without netlink)."""
    body = _IFADDRMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0)
    found = []
    for kind, payload in _dump(NETLINK_ROUTE, RTM_GETADDR, body):
        if kind == RTM_NEWADDR and (address := parse_address(payload)) is not None:
            found.append(address)
    return found


def _genl_family(name: str) -> int:
    attr_value = name.encode() + b"\0"
    attr = _RTATTR.pack(_RTATTR.size + len(attr_value), CTRL_ATTR_FAMILY_NAME) + attr_value
    body = (
        _GENLMSGHDR.pack(CTRL_CMD_GETFAMILY, 1, 0) + attr + b"\0" * (_align(len(attr)) - len(attr))
    )
    seq = int.from_bytes(os.urandom(4), "big") or 1
    with socket.socket(
        socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_GENERIC
    ) as s:
        s.setblocking(False)  # as in _dump: no blocking socket call on an event loop
        s.bind((0, 0))
        s.send(_request(GENL_ID_CTRL, NLM_F_REQUEST, seq, body))
        for kind, msg_seq, payload in iter_messages(_recv(s)):
            if msg_seq != seq:
                continue
            if kind == NLMSG_ERROR:
                code = struct.unpack_from("=i", payload)[0] if len(payload) >= 4 else 0
                raise OSError(-code, os.strerror(-code))
            for attr_kind, value in iter_attributes(payload, _GENLMSGHDR.size):
                if attr_kind == CTRL_ATTR_FAMILY_ID and len(value) >= 2:
                    return int(struct.unpack_from("=H", value)[0])
    raise OSError(f"no generic netlink family {name!r}")


def tcp_metrics() -> list[tuple[IPAddress, IPAddress | None, float, float, float]]:
    """The kernel's TCP metrics cache: (destination, source, srtt, rttvar, age) per entry with
    an RTT (raises OSError where there is none)."""
    family = _genl_family("tcp_metrics")
    body = _GENLMSGHDR.pack(TCP_METRICS_CMD_GET, 1, 0)
    entries = []
    for _kind, payload in _dump(NETLINK_GENERIC, family, body):
        if (entry := parse_tcp_metrics(payload)) is not None:
            entries.append(entry)
    return entries


def change_socket() -> socket.socket:
    """A NETLINK_ROUTE socket subscribed to link changes and to address and route changes of
    both families."""
    s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_ROUTE)
    try:
        s.bind((0, CHANGE_GROUPS))
    except OSError:
        s.close()
        raise
    return s
