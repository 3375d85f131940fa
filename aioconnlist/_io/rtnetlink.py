"""A small rtnetlink client: ask the Linux kernel which route it would use, sending nothing.

`route_get(destination, source=None)` is ``ip route get DST [from SRC]``: one ``RTM_GETROUTE``
request on a ``NETLINK_ROUTE`` socket, answered from the routing tables (policy rules
included) without any packet leaving the machine. It needs no privilege. The answer names
the output interface (index), the gateway and the preferred source.

Why netlink and not the UDP-connect probe: a connected UDP socket tells the source the kernel
picks, but not the interface it would leave through, nor the route of a given (source,
destination) pair, which is what tells a source that stays on its own interface from one that
the weak host model would send out of another.

`interface_kind(index)` reads ``/sys/class/net/NAME`` to tell tunnels (point-to-point, TUN,
WireGuard, PPP, IP-in-IP, GRE, IPsec/xfrm: their ``type`` and ``flags``) and local virtual
segments (bridges, TAP devices) from plain links.

The message codecs (`encode_route_request`, `parse_route_reply`) are pure and tested on bytes;
off Linux, `available()` is False and callers fall back to not knowing.
"""

from __future__ import annotations

import ipaddress
import itertools
import os
import socket
import struct
import sys
from typing import Literal

from .._core.addresses import IPAddress
from .._core.records import FrozenRecord
from .sysfiles import is_dir, read_text

# <linux/netlink.h>, <linux/rtnetlink.h>
NETLINK_ROUTE = 0
NLMSG_ERROR = 2
NLMSG_DONE = 3
RTM_NEWROUTE = 24
RTM_GETROUTE = 26
NLM_F_REQUEST = 0x1
RTA_DST = 1
RTA_SRC = 2
RTA_OIF = 4
RTA_GATEWAY = 5
RTA_PREFSRC = 7
RTA_TABLE = 15
RTM_F_LOOKUP_TABLE = 0x1000

_NLMSGHDR = struct.Struct("=IHHII")  # length, type, flags, sequence, port id
_RTMSG = struct.Struct(
    "=BBBBBBBBI"
)  # family, dst_len, src_len, tos, table, protocol, scope, type, flags
_RTATTR = struct.Struct("=HH")  # length, type
_ERRNO = struct.Struct("=i")

# <linux/if_arp.h> link types that are tunnels, and <linux/if.h> / <linux/if_tun.h> flags
ARPHRD_PPP = 512
ARPHRD_TUNNEL = 768
ARPHRD_TUNNEL6 = 769
ARPHRD_SIT = 776
ARPHRD_IPGRE = 778
ARPHRD_IP6GRE = 823
ARPHRD_NONE = 65534  # TUN, WireGuard, xfrm (IPsec) interfaces
TUNNEL_TYPES = frozenset(
    {
        ARPHRD_PPP,
        ARPHRD_TUNNEL,
        ARPHRD_TUNNEL6,
        ARPHRD_SIT,
        ARPHRD_IPGRE,
        ARPHRD_IP6GRE,
        ARPHRD_NONE,
    }
)
IFF_POINTOPOINT = 0x10
IFF_TUN = 0x0001
IFF_TAP = 0x0002

SYS_CLASS_NET = "/sys/class/net"

InterfaceKind = Literal["tunnel", "virtual", "link"]


class Route(FrozenRecord):
    """The kernel's answer for one destination (and source): where the packet would leave."""

    __slots__ = ("gateway", "oif", "prefsrc", "table")
    _fields = ("oif", "gateway", "prefsrc", "table")

    oif: int  # output interface index, 0 when the answer names none
    gateway: IPAddress | None
    prefsrc: IPAddress | None
    table: int

    def __init__(
        self,
        oif: int,
        gateway: IPAddress | None = None,
        prefsrc: IPAddress | None = None,
        table: int = 0,
    ) -> None:
        object.__setattr__(self, "oif", oif)
        object.__setattr__(self, "gateway", gateway)
        object.__setattr__(self, "prefsrc", prefsrc)
        object.__setattr__(self, "table", table)


_sequence = itertools.count(1)


def _align(n: int) -> int:
    return (n + 3) & ~3


def _attr(kind: int, payload: bytes) -> bytes:
    length = _RTATTR.size + len(payload)
    return _RTATTR.pack(length, kind) + payload + b"\0" * (_align(length) - length)


def encode_route_request(
    destination: IPAddress,
    source: IPAddress | None = None,
    oif: int = 0,
    sequence: int = 1,
) -> bytes:
    """The ``RTM_GETROUTE`` message of ``ip route get DESTINATION [from SOURCE] [oif OIF]``."""
    family = socket.AF_INET if destination.version == 4 else socket.AF_INET6
    bits = destination.max_prefixlen
    attrs = _attr(RTA_DST, destination.packed)
    src_len = 0
    if source is not None:
        if source.version != destination.version:
            raise ValueError("source and destination of different families")
        attrs += _attr(RTA_SRC, source.packed)
        src_len = bits
    if oif:
        attrs += _attr(RTA_OIF, struct.pack("=I", oif))
    body = _RTMSG.pack(family, bits, src_len, 0, 0, 0, 0, 0, RTM_F_LOOKUP_TABLE) + attrs
    header = _NLMSGHDR.pack(_NLMSGHDR.size + len(body), RTM_GETROUTE, NLM_F_REQUEST, sequence, 0)
    return header + body


def parse_route_reply(data: bytes, sequence: int = 1) -> Route:
    """The `Route` in a reply to `encode_route_request`; a kernel error raises ``OSError``."""
    offset = 0
    while offset + _NLMSGHDR.size <= len(data):
        length, kind, _flags, seq, _port = _NLMSGHDR.unpack_from(data, offset)
        if length < _NLMSGHDR.size or offset + length > len(data):
            break
        body = offset + _NLMSGHDR.size
        end = offset + length
        offset += _align(length)
        if seq != sequence:
            continue
        if kind == NLMSG_ERROR:
            (code,) = _ERRNO.unpack_from(data, body)
            if code == 0:
                continue  # an acknowledgement
            raise OSError(-code, os.strerror(-code))
        if kind == NLMSG_DONE:
            break
        if kind != RTM_NEWROUTE:
            continue
        family = data[body]
        table = data[body + 4]
        oif, gateway, prefsrc = 0, None, None
        pos = body + _RTMSG.size
        while pos + _RTATTR.size <= end:
            alen, akind = _RTATTR.unpack_from(data, pos)
            if alen < _RTATTR.size:
                break
            payload = data[pos + _RTATTR.size : pos + alen]
            pos += _align(alen)
            if akind == RTA_OIF and len(payload) >= 4:
                (oif,) = struct.unpack_from("=I", payload)
            elif akind == RTA_TABLE and len(payload) >= 4:
                (table,) = struct.unpack_from("=I", payload)
            elif akind in (RTA_GATEWAY, RTA_PREFSRC):
                ip = _ip(family, payload)
                if akind == RTA_GATEWAY:
                    gateway = ip
                else:
                    prefsrc = ip
        return Route(oif, gateway, prefsrc, table)
    raise OSError(0, "no route in the kernel's netlink reply")


def _ip(family: int, payload: bytes) -> IPAddress | None:
    if family == socket.AF_INET and len(payload) == 4:
        return ipaddress.IPv4Address(payload)
    if family == socket.AF_INET6 and len(payload) == 16:
        return ipaddress.IPv6Address(payload)
    return None


def available() -> bool:
    """Whether this platform has rtnetlink (Linux)."""
    return sys.platform.startswith("linux") and hasattr(socket, "AF_NETLINK")


class RouteSocket:
    """A ``NETLINK_ROUTE`` socket for ``RTM_GETROUTE`` requests; a context manager (closed on
    exit), so no descriptor outlives the questions asked on it."""

    def __init__(self) -> None:
        self._sock = socket.socket(
            socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_ROUTE
        )
        try:
            # non-blocking: the kernel answers a route request before send() returns, so the
            # reply is read at once, and no blocking socket call happens on an event loop
            self._sock.setblocking(False)
            self._sock.bind((0, 0))
        except BaseException:
            self._sock.close()
            raise

    def __enter__(self) -> RouteSocket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def route_get(
        self, destination: IPAddress, source: IPAddress | None = None, oif: int = 0
    ) -> Route:
        """``ip route get``: the route the kernel would use. ``OSError`` when there is none."""
        sequence = next(_sequence) & 0xFFFFFFFF
        self._sock.send(encode_route_request(destination, source, oif, sequence))
        for _ in range(8):  # stale replies of an earlier, interrupted request are skipped
            try:
                data = self._sock.recv(65536)
            except BlockingIOError:
                raise OSError(0, "no netlink reply to the route request") from None
            try:
                return parse_route_reply(data, sequence)
            except OSError as e:
                if e.errno != 0:
                    raise
        raise OSError(0, "no netlink reply to the route request")

    def close(self) -> None:
        self._sock.close()


def route_get(destination: IPAddress, source: IPAddress | None = None, oif: int = 0) -> Route:
    """The route the kernel would use towards ``destination`` (from ``source``, out of
    ``oif``), asked over rtnetlink without sending a packet; ``OSError`` when there is none."""
    with RouteSocket() as sock:
        return sock.route_get(destination, source, oif)


# --- interfaces ----------------------------------------------------------------------------


def classify_interface(
    link_type: int, flags: int, tun_flags: int | None, is_bridge: bool
) -> InterfaceKind:
    """Pure: "tunnel" (point-to-point, TUN, WireGuard, PPP, IP tunnels, xfrm), "virtual" (a
    bridge or a TAP device: a local segment for VMs and containers) or "link"."""
    if flags & IFF_POINTOPOINT or link_type in TUNNEL_TYPES:
        return "tunnel"
    if tun_flags is not None:
        return "tunnel" if tun_flags & IFF_TUN else "virtual"
    return "virtual" if is_bridge else "link"


def _read_int(path: str) -> int | None:
    text = read_text(path)
    try:
        return None if text is None else int(text.strip(), 0)
    except ValueError:
        return None


def interface_kind_by_name(name: str) -> InterfaceKind:
    """`classify_interface` of interface ``name`` from sysfs ("link" when unknown)."""
    if not name or "/" in name or name.startswith("."):
        return "link"
    base = f"{SYS_CLASS_NET}/{name}"
    link_type = _read_int(f"{base}/type")
    if link_type is None:
        return "link"
    return classify_interface(
        link_type,
        _read_int(f"{base}/flags") or 0,
        _read_int(f"{base}/tun_flags"),
        is_dir(f"{base}/bridge"),
    )


def interface_kind(index: int) -> InterfaceKind:
    """`classify_interface` of the interface with ``index`` ("link" when unknown)."""
    try:
        name = socket.if_indextoname(index)
    except (OSError, ValueError):
        return "link"
    return interface_kind_by_name(name)
