"""A drop-in for ``aiohappyeyeballs.start_connection`` (the function aiohttp >= 3.10 calls).

Same signature and contract: ``addr_infos`` (getaddrinfo 5-tuples) in, a connected
non-blocking socket out; ``happy_eyeballs_delay=None`` means one address at a time;
``interleave`` is RFC 8305's First Address Family Count (``None``: 1 with a delay, the given
order without); ``local_addr_infos`` are the addresses to bind, the first of the right family
that binds; ``socket_factory(addr_info)`` makes the sockets; an empty ``addr_infos`` is a
`ValueError`; failures are an `OSError` whose ``errno`` is set. Only better: pairs are ranked
with RFC 6724 and the shared history, so a path that black-holed is tried after the others
next time, and errors carry every attempt.

Put it under aiohttp (or anything else that calls aiohappyeyeballs)::

    import aiohappyeyeballs, aioconnlist.compat
    aiohappyeyeballs.start_connection = aioconnlist.compat.start_connection

Differences, all within the contract: a failure is a `ConnectError` (also the builtin
subclass of its errno, e.g. `ConnectionRefusedError`) instead of the first exception or an
``OSError("Multiple exceptions: ...")``; ``loop`` must be the running loop (asyncio requires
it anyway); the addresses are sorted (RFC 6724 and history) - pass ``sort=False`` to
`make_start_connection` for the exact given order.
"""

from __future__ import annotations

import asyncio
import errno as _errno
import math
import socket
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from .addresses import Endpoint, parse_address
from .driver import race
from .errors import ConnectError, InvalidArgument
from .options import Options, make_options, split_options
from .pairs import Pair

#: aiohappyeyeballs.AddrInfoType: (family, type, proto, canonname, sockaddr)
AddrInfo = tuple[Any, Any, int, str, tuple[Any, ...]]
AddrInfoSocketFactory = Callable[[AddrInfo], socket.socket]


class ConnectionRefused(ConnectError, ConnectionRefusedError):
    """ECONNREFUSED as both a `ConnectError` and a `ConnectionRefusedError`."""


class ConnectionReset(ConnectError, ConnectionResetError):
    """ECONNRESET as both a `ConnectError` and a `ConnectionResetError`."""


class ConnectionAborted(ConnectError, ConnectionAbortedError):
    """ECONNABORTED as both a `ConnectError` and a `ConnectionAbortedError`."""


class PermissionDenied(ConnectError, PermissionError):
    """EACCES / EPERM (e.g. a firewall's prohibit route) as both kinds."""


_TYPED: dict[int, type[ConnectError]] = {
    _errno.ECONNREFUSED: ConnectionRefused,
    _errno.ECONNRESET: ConnectionReset,
    _errno.ECONNABORTED: ConnectionAborted,
    _errno.EACCES: PermissionDenied,
    _errno.EPERM: PermissionDenied,
}


def typed_error(error: ConnectError) -> ConnectError:
    """A plain `ConnectError` as the class that is also the builtin subclass of its errno
    (``except ConnectionRefusedError`` keeps working where aiohappyeyeballs re-raised one).
    Subclasses (timeout, out of resources, invalid argument) are returned as they are."""
    cls = _TYPED.get(error.errno or 0)
    if type(error) is not ConnectError or cls is None:
        return error
    typed = cls(error.errno or 0, error.strerror or str(error), error.attempts)
    typed.__cause__ = error.__cause__
    return typed


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


def _local_sources(local_addr_infos: Sequence[AddrInfo]) -> tuple[list[str], bool]:
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


def _options(
    happy_eyeballs_delay: float | None,
    interleave: int | None,
    local_ips: list[str] | None,
    options: dict[str, Any],
) -> Options:
    kwargs = dict(options)
    kwargs.setdefault(
        "attempt_delay", math.inf if happy_eyeballs_delay is None else happy_eyeballs_delay
    )
    if interleave is None:
        # aiohappyeyeballs: interleave by family (1) with a delay, the given order without
        interleave = 1 if happy_eyeballs_delay is not None else 0
    kwargs.setdefault("interleave", interleave)
    if local_ips is not None:
        kwargs["local_addresses"] = local_ips
    else:
        kwargs.setdefault("local_addresses", None)  # aiohappyeyeballs: the kernel's choice
    return make_options(**kwargs)


class StartConnection(Protocol):
    """The signature of ``aiohappyeyeballs.start_connection``."""

    async def __call__(
        self,
        addr_infos: Sequence[AddrInfo],
        *,
        local_addr_infos: Sequence[AddrInfo] | None = None,
        happy_eyeballs_delay: float | None = None,
        interleave: int | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
        socket_factory: AddrInfoSocketFactory | None = None,
    ) -> socket.socket: ...


def make_start_connection(**options: Any) -> StartConnection:
    """A `start_connection` with our options preset (history, on_event, sort, timeout, ...).

    ``attempt_delay`` / ``interleave`` / ``local_addresses`` given here win over the
    per-call ``happy_eyeballs_delay`` / ``interleave`` / ``local_addr_infos``.
    """
    ours, unknown = split_options(options)
    if unknown:
        raise InvalidArgument(f"unknown option(s): {', '.join(sorted(unknown))}")
    make_options(**ours)  # validate now, not at the first connection

    async def start_connection(
        addr_infos: Sequence[AddrInfo],
        *,
        local_addr_infos: Sequence[AddrInfo] | None = None,
        happy_eyeballs_delay: float | None = None,
        interleave: int | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
        socket_factory: AddrInfoSocketFactory | None = None,
    ) -> socket.socket:
        if not addr_infos:
            raise InvalidArgument("addr_infos must not be empty")
        running = asyncio.get_running_loop()
        if loop is not None and loop is not running:
            raise InvalidArgument("loop must be the running event loop")
        destinations, by_endpoint = endpoints_of(addr_infos)
        make: Callable[[Pair], socket.socket] | None = None
        if socket_factory is not None:
            make = addr_info_factory(socket_factory, by_endpoint)
        local_ips: list[str] | None = None
        if local_addr_infos is not None and "local_addresses" not in ours:
            local_ips, fixed_port = _local_sources(local_addr_infos)
            if fixed_port:  # our sources bind port 0: bind in the factory instead
                make = binding_factory(local_addr_infos, make or plain_socket)
                local_ips = None
        opts = _options(happy_eyeballs_delay, interleave, local_ips, ours)
        failure: ConnectError | None = None
        try:
            sock, _pair = await race(destinations, opts, socket_factory=make)
        except ConnectError as e:
            failure = typed_error(e)
        if failure is not None:
            raise failure  # outside the except block: no __context__ chain to the original
        return sock

    start_connection.__doc__ = __doc__
    return start_connection


def plain_socket(pair: Pair) -> socket.socket:
    return socket.socket(pair.destination.family, socket.SOCK_STREAM)


#: ``aiohappyeyeballs.start_connection`` with the default options (shared history)
start_connection = make_start_connection()
