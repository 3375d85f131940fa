"""The async API: thin wrappers that check their arguments and hand over to the asyncio driver.

`connect_by_list` races a list of addresses; `connect_by_name` resolves a host name first
(AAAA and A concurrently, RFC 8305 §3) and races its answers; `open_connection` and
`create_connection` are asyncio's functions of the same names over the winning socket, and
take either a list of addresses or asyncio's ``host, port``.
"""

from __future__ import annotations

import asyncio
import math
import socket
import ssl as _ssl
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar, overload

from ._core.addresses import parse_destinations
from ._core.errors import ConnectTimeout, InvalidArgument
from ._core.options import (
    RESOLUTION_DELAY,
    Options,
    RaceOptions,
    options_from,
    takes_options,
)
from ._core.pairs import Pair
from ._drivers.asyncio import race

if TYPE_CHECKING:
    from ._core.options import Unpack
    from ._io.resolve import Resolver

__all__ = ["connect_by_list", "connect_by_name", "create_connection", "open_connection"]

_Protocol = TypeVar("_Protocol", bound=asyncio.BaseProtocol)

#: what the ``ssl`` argument of asyncio's connection functions takes
SSLArgument = _ssl.SSLContext | bool | None


@takes_options()
async def connect_by_list(
    addresses: Iterable[object], **options: Unpack[RaceOptions]
) -> socket.socket:
    """Connect to the best of ``addresses``; return the connected, non-blocking socket.

    ``addresses`` mixes IPv4 and IPv6 freely: ``(ip, port)``, ``(ip6, port, flowinfo,
    scope_id)``, ``"192.0.2.1:80"``, ``"[2001:db8::1]:443"``, ``"[fe80::1%eth0]:80"`` or
    getaddrinfo 5-tuples (a host name is refused: use `connect_by_name`). Every (local source x
    destination) pair is ranked (RFC 6724, then what past races taught ``history``) and
    attempts are started one after another, the next when the previous one fails or after
    ``attempt_delay`` (Happy Eyeballs, RFC 8305); the first to connect wins, every other
    attempt is cancelled and its socket closed.

    Options:
        local_addresses: ``"auto"``: per destination the kernel's own choice of source first,
            then every other suitable local address, bound explicitly; ``None``: the kernel's
            choice only; a list of IPs: exactly those sources.
        timeout: seconds for the whole call, a hard deadline (``ConnectTimeout``, also a
            ``TimeoutError``); ``None``: until one connects or every pair failed.
        attempt_delay: seconds before the next attempt starts (>= 0.01; ``math.inf``: one
            attempt at a time).
        min_attempt_delay: the floor of the delay when history knows a pair's round trip.
        interleave: how many addresses of the first family before the other's (0: as ordered).
        sort: ``False`` keeps the caller's order (then ``interleave``).
        history: a `PairHistory` to learn from and teach; ``None``: no memory.
        on_event: called with each `RaceEvent` (attempt started, failed, won, cancelled).
        backup_attempts: once every pair has started and the newest attempt is silent for its
            delay, one more attempt of that pair on a fresh socket (a lost SYN costs the
            delay, not the kernel's 1 s retransmission); ``False``: never.

    Raises `ConnectError` (an ``OSError``) when nothing connects: it is also the built-in
    class of its errno (``ConnectionRefusedError``, ``TimeoutError``...), names every pair and
    its error, and lists them in ``.attempts``. An invalid argument is `InvalidArgument` (also
    a ``ValueError``); an unknown option a ``TypeError``.
    """
    opts = options_from(options)
    sock, _pair = await race(parse_destinations(addresses), opts)
    return sock


def _resolution_args(resolver: Resolver | None, resolution_delay: float) -> tuple[Resolver, float]:
    if isinstance(resolution_delay, bool) or not isinstance(resolution_delay, (int, float)):
        raise InvalidArgument(f"resolution_delay must be a number of seconds: {resolution_delay!r}")
    if not 0 <= resolution_delay < math.inf:
        raise InvalidArgument(f"resolution_delay must be >= 0 and finite, got {resolution_delay}")
    from ._io.resolve import SystemResolver

    chosen: Resolver = SystemResolver() if resolver is None else resolver
    if not callable(getattr(chosen, "resolve", None)):
        raise InvalidArgument(f"resolver {chosen!r} has no resolve(host, port, family) method")
    return chosen, resolution_delay


async def _connect(
    target: object,
    port: int | None,
    opts: Options,
    resolver: Resolver | None,
    resolution_delay: float,
) -> tuple[socket.socket, Pair]:
    """The race for a list of addresses (``port`` None) or for asyncio's ``host, port``."""
    if port is None:
        if resolver is not None:
            raise TypeError("resolver= applies to a host name and port, not to a list")
        return await race(parse_destinations(target), opts)
    if not isinstance(target, str):
        raise InvalidArgument(
            f"with a port, the first argument is a host name or IP, not {type(target).__name__}"
        )
    from ._drivers.by_name import race_by_name  # by name: imported when first needed
    from ._io.resolve import check_host, check_port

    host, port = check_host(target), check_port(port)
    chosen, delay = _resolution_args(resolver, resolution_delay)
    return await race_by_name(host, port, opts, resolver=chosen, resolution_delay=delay)


@takes_options()
async def connect_by_name(
    host: str,
    port: int,
    *,
    resolver: Resolver | None = None,
    resolution_delay: float = RESOLUTION_DELAY,
    **options: Unpack[RaceOptions],
) -> socket.socket:
    """Resolve ``host`` and race its addresses; return the connected, non-blocking socket.

    AAAA and A are asked at once (RFC 8305 §3): racing starts as soon as AAAA answers, or
    ``resolution_delay`` seconds after A if A answered first, and an answer that comes later
    joins the running race. An IP literal skips resolution. ``resolver``: any object with
    ``async resolve(host, port, family) -> [Endpoint]`` (default: the system's getaddrinfo,
    one call per family; `AiodnsResolver` uses c-ares). The options are `connect_by_list`'s;
    ``timeout`` covers resolution and connecting together. A name that resolves to nothing
    raises `NameResolutionError` (a `ConnectError` and a ``socket.gaierror``, errno
    ``EAI_*``).
    """
    opts = options_from(options)
    from ._drivers.by_name import race_by_name
    from ._io.resolve import check_host, check_port

    host = check_host(host)
    port = check_port(port)
    chosen, delay = _resolution_args(resolver, resolution_delay)
    sock, _pair = await race_by_name(host, port, opts, resolver=chosen, resolution_delay=delay)
    return sock


@overload
async def create_connection(
    protocol_factory: Callable[[], _Protocol],
    host: str,
    /,
    port: int,
    *,
    ssl: _ssl.SSLContext | bool | None = None,
    server_hostname: str | None = None,
    resolver: Resolver | None = None,
    resolution_delay: float = RESOLUTION_DELAY,
    **options: Unpack[RaceOptions],
) -> tuple[asyncio.Transport, _Protocol]: ...


@overload
async def create_connection(
    protocol_factory: Callable[[], _Protocol],
    *,
    host: str,
    port: int,
    ssl: _ssl.SSLContext | bool | None = None,
    server_hostname: str | None = None,
    resolver: Resolver | None = None,
    resolution_delay: float = RESOLUTION_DELAY,
    **options: Unpack[RaceOptions],
) -> tuple[asyncio.Transport, _Protocol]: ...


@overload
async def create_connection(
    protocol_factory: Callable[[], _Protocol],
    addresses: Iterable[object],
    *,
    ssl: _ssl.SSLContext | bool | None = None,
    server_hostname: str | None = None,
    **options: Unpack[RaceOptions],
) -> tuple[asyncio.Transport, _Protocol]: ...


@takes_options()
async def create_connection(
    protocol_factory: Callable[[], _Protocol],
    addresses: str | Iterable[object] | None = None,
    port: int | None = None,
    *,
    host: str | None = None,
    ssl: _ssl.SSLContext | bool | None = None,
    server_hostname: str | None = None,
    resolver: Resolver | None = None,
    resolution_delay: float = RESOLUTION_DELAY,
    **options: Unpack[RaceOptions],
) -> tuple[asyncio.Transport, _Protocol]:
    """Like ``loop.create_connection``, over the race's winning socket.

    ``create_connection(factory, addresses)`` races a list of addresses (as
    `connect_by_list`); ``create_connection(factory, host, port)`` (or ``host=``, ``port=``,
    asyncio's way) resolves ``host`` first (as `connect_by_name`, with ``resolver`` and
    ``resolution_delay``). ``ssl`` and ``server_hostname`` mean what they mean to asyncio;
    with a host, ``server_hostname`` defaults to it. ``timeout`` covers the race (and
    resolution) and the TLS handshake together. The options are `connect_by_list`'s; errors
    too.
    """
    target = _target(addresses, host, port)
    return await _create_connection(
        protocol_factory, target, port, ssl, server_hostname, resolver, resolution_delay, options
    )


def _target(addresses: object, host: str | None, port: int | None) -> object:
    """What to connect to: ``addresses`` (a list, or a host given positionally) or ``host``."""
    if host is None:
        if addresses is None:
            raise TypeError("a list of addresses, or a host and port, is required")
        return addresses
    if addresses is not None:
        raise TypeError("give a list of addresses or host=, not both")
    if port is None:
        raise TypeError("host= needs port=")
    return host


async def _create_connection(
    protocol_factory: Callable[[], _Protocol],
    target: object,
    port: int | None,
    ssl: SSLArgument,
    server_hostname: str | None,
    resolver: Resolver | None,
    resolution_delay: float,
    options: RaceOptions,
) -> tuple[asyncio.Transport, _Protocol]:
    opts = options_from(options)
    loop = asyncio.get_running_loop()
    start = loop.time()
    if ssl and server_hostname is None and port is not None and isinstance(target, str):
        server_hostname = target  # as asyncio does with a host
    sock, _pair = await _connect(target, port, opts, resolver, resolution_delay)
    try:
        handshake: dict[str, Any] = {}
        if ssl and opts.timeout is not None:
            handshake["ssl_handshake_timeout"] = max(0.001, opts.timeout - (loop.time() - start))
        transport, protocol = await loop.create_connection(
            protocol_factory, sock=sock, ssl=ssl, server_hostname=server_hostname, **handshake
        )
    except ConnectionAbortedError as exc:  # asyncio's error for a handshake outliving its time
        sock.close()
        if handshake and loop.time() - start >= 0.999 * (opts.timeout or 0.0):
            raise ConnectTimeout(f"timed out in the TLS handshake after {opts.timeout} s") from exc
        raise
    except BaseException:
        sock.close()
        raise
    return transport, protocol


@overload
async def open_connection(
    host: str,
    /,
    port: int,
    *,
    limit: int = 2**16,
    ssl: _ssl.SSLContext | bool | None = None,
    server_hostname: str | None = None,
    resolver: Resolver | None = None,
    resolution_delay: float = RESOLUTION_DELAY,
    **options: Unpack[RaceOptions],
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]: ...


@overload
async def open_connection(
    *,
    host: str,
    port: int,
    limit: int = 2**16,
    ssl: _ssl.SSLContext | bool | None = None,
    server_hostname: str | None = None,
    resolver: Resolver | None = None,
    resolution_delay: float = RESOLUTION_DELAY,
    **options: Unpack[RaceOptions],
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]: ...


@overload
async def open_connection(
    addresses: Iterable[object],
    *,
    limit: int = 2**16,
    ssl: _ssl.SSLContext | bool | None = None,
    server_hostname: str | None = None,
    **options: Unpack[RaceOptions],
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]: ...


@takes_options()
async def open_connection(
    addresses: str | Iterable[object] | None = None,
    port: int | None = None,
    *,
    host: str | None = None,
    limit: int = 2**16,
    ssl: _ssl.SSLContext | bool | None = None,
    server_hostname: str | None = None,
    resolver: Resolver | None = None,
    resolution_delay: float = RESOLUTION_DELAY,
    **options: Unpack[RaceOptions],
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Like ``asyncio.open_connection``, over the race's winning socket: ``(reader, writer)``.

    ``open_connection(addresses)`` races a list of addresses (as `connect_by_list`);
    ``open_connection(host, port)`` (or ``host=``, ``port=``, asyncio's way) resolves
    ``host`` first (as `connect_by_name`). ``limit``, ``ssl`` and ``server_hostname`` are
    asyncio's; the rest as `create_connection`.
    """
    target = _target(addresses, host, port)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=limit, loop=loop)
    transport, protocol = await _create_connection(
        lambda: asyncio.StreamReaderProtocol(reader, loop=loop),
        target,
        port,
        ssl,
        server_hostname,
        resolver,
        resolution_delay,
        options,
    )
    writer = asyncio.StreamWriter(transport, protocol, reader, loop)
    return reader, writer
