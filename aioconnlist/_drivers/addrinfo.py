"""asyncio's address-info conventions (getaddrinfo 5-tuples, ``socket_factory(addr_info)``,
``local_addr_infos``) in the drivers' terms: destinations, and ``socket_factory(pair)``. Shared
by the aiohappyeyeballs drop-in and the aiohttp connector."""

from __future__ import annotations

import errno as _errno
import socket
from collections.abc import Callable, Sequence
from typing import Any

from .._core.addresses import Endpoint, parse_address
from .._core.errors import InvalidArgument
from .._core.pairs import Pair

#: aiohappyeyeballs.AddrInfoType: (family, type, proto, canonname, sockaddr)
AddrInfo = tuple[Any, Any, int, str, tuple[Any, ...]]
AddrInfoSocketFactory = Callable[[AddrInfo], socket.socket]


def endpoints_of(addr_infos: Sequence[AddrInfo]) -> tuple[list[Endpoint], dict[Endpoint, AddrInfo]]:
    """The destinations of ``addr_infos`` in order, and each one's original addr_info."""
    by_endpoint: dict[Endpoint, AddrInfo] = {}
    for info in addr_infos:
        if not isinstance(info, tuple) or len(info) != 5:
            raise InvalidArgument(f"addr_info {info!r} is not a getaddrinfo 5-tuple")
        by_endpoint.setdefault(parse_address(info), info)
    return list(by_endpoint), by_endpoint


def addr_info_factory(
    factory: AddrInfoSocketFactory, by_endpoint: dict[Endpoint, AddrInfo]
) -> Callable[[Pair], socket.socket]:
    """An aiohappyeyeballs-style ``socket_factory(addr_info)`` as the driver's ``(pair)``."""

    def make(pair: Pair) -> socket.socket:
        info = by_endpoint.get(pair.destination)
        if info is None:  # a late destination, not from addr_infos
            info = (
                pair.destination.family,
                socket.SOCK_STREAM,
                socket.IPPROTO_TCP,
                "",
                pair.destination.sockaddr(),
            )
        return factory(info)

    return make


def local_sources(local_addr_infos: Sequence[AddrInfo]) -> tuple[list[str], bool]:
    """(local IPs in order, whether any asks for a fixed port)."""
    ips: list[str] = []
    fixed_port = False
    for info in local_addr_infos:
        if not isinstance(info, tuple) or len(info) != 5 or not isinstance(info[4], tuple):
            raise InvalidArgument(f"local addr_info {info!r} is not a getaddrinfo 5-tuple")
        ips.append(str(info[4][0]))
        fixed_port = fixed_port or bool(info[4][1])
    return ips, fixed_port


def binding_factory(
    local_addr_infos: Sequence[AddrInfo], make: Callable[[Pair], socket.socket]
) -> Callable[[Pair], socket.socket]:
    """Bind each socket to the first local addr_info of its family that binds (with its port),
    as aiohappyeyeballs does; used only when a local port is fixed."""

    def bound(pair: Pair) -> socket.socket:
        sock = make(pair)
        last: OSError | None = None
        for family, *_rest, laddr in local_addr_infos:
            if family != sock.family:
                continue
            try:
                sock.bind(laddr)
                return sock
            except OSError as e:
                last = OSError(e.errno, f"error while attempting to bind on address {laddr!r}")
        sock.close()
        raise last or OSError(
            _errno.EADDRNOTAVAIL, f"no matching local address with family={sock.family!r} found"
        )

    return bound


def addr_info_socket(info: AddrInfo) -> socket.socket:
    """A socket for ``info`` made as aiohappyeyeballs makes it: the family, type and protocol
    of the addr_info, by keyword."""
    return socket.socket(family=info[0], type=info[1], proto=info[2])


def plain_socket(pair: Pair) -> socket.socket:
    return socket.socket(pair.destination.family, socket.SOCK_STREAM)
