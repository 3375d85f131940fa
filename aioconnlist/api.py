"""The async API (SPEC §1): thin wrappers that parse, validate and hand over to the asyncio driver;
`connect_by_name` resolves first (RFC 8305 §3)."""

from __future__ import annotations

import asyncio
import math
import socket
import ssl as _ssl
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from ._core.addresses import parse_addresses
from ._core.errors import InvalidArgument
from ._core.options import (
    RESOLUTION_DELAY,
    RaceOptions,
    make_options,
    options_from,
    split_options,
)
from ._drivers.asyncio import race
from ._drivers.by_name import race_by_name
from ._io.resolve import Resolver, SystemResolver, check_host, check_port

if TYPE_CHECKING:
    from ._core.options import Unpack

_Protocol = TypeVar("_Protocol", bound=asyncio.BaseProtocol)


async def connect_by_list(addresses: Any, **options: Unpack[RaceOptions]) -> socket.socket:
    """Connect to the best of ``addresses``; return the connected (non-blocking) socket.

    Options: local_addresses, timeout, attempt_delay, min_attempt_delay, interleave, sort,
    history, on_event (SPEC §1). Raises `ConnectError` (an OSError) when nothing connects.
    """
    opts = options_from(options)
    sock, _pair = await race(parse_addresses(addresses), opts)
    return sock


async def create_connection(
    protocol_factory: Callable[[], _Protocol],
    addresses: Any,
    *,
    ssl: _ssl.SSLContext | bool | None = None,
    server_hostname: str | None = None,
    **options: Any,
) -> tuple[asyncio.Transport, _Protocol]:
    """Like ``loop.create_connection`` over the race's winning socket.

    ``timeout`` covers the race and the TLS handshake together.
    """
    opts = options_from(options)
    loop = asyncio.get_running_loop()
    start = loop.time()
    sock, _pair = await race(parse_addresses(addresses), opts)
    try:
        handshake: dict[str, Any] = {}
        if ssl and opts.timeout is not None:
            handshake["ssl_handshake_timeout"] = max(0.001, opts.timeout - (loop.time() - start))
        transport, protocol = await loop.create_connection(
            protocol_factory, sock=sock, ssl=ssl, server_hostname=server_hostname, **handshake
        )
    except BaseException:
        sock.close()
        raise
    return transport, protocol


async def open_connection(
    addresses: Any,
    *,
    limit: int = 2**16,
    ssl: _ssl.SSLContext | bool | None = None,
    server_hostname: str | None = None,
    **options: Any,
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Like ``asyncio.open_connection`` over the race's winning socket."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=limit, loop=loop)
    transport, protocol = await create_connection(
        lambda: asyncio.StreamReaderProtocol(reader, loop=loop),
        addresses,
        ssl=ssl,
        server_hostname=server_hostname,
        **options,
    )
    writer = asyncio.StreamWriter(transport, protocol, reader, loop)
    return reader, writer


async def connect_by_name(
    host: str,
    port: int,
    *,
    resolver: Resolver | None = None,
    resolution_delay: float = RESOLUTION_DELAY,
    **options: Unpack[RaceOptions],
) -> socket.socket:
    """Resolve ``host`` (AAAA and A concurrently, RFC 8305 §3) and race its addresses.

    Returns a connected, non-blocking socket. ``options`` are those of `connect_by_list`;
    ``timeout`` covers resolution and connecting together. An IP literal skips resolution.
    A name that resolves to nothing raises `NameResolutionError` (a `ConnectError` and a
    `socket.gaierror`, errno ``EAI_*``).
    """
    ours, unknown = split_options(options)
    if unknown:
        raise InvalidArgument(
            f"unknown option(s) for connect_by_name: {', '.join(sorted(unknown))}"
        )
    opts = make_options(**ours)
    host = check_host(host)
    port = check_port(port)
    if isinstance(resolution_delay, bool) or not isinstance(resolution_delay, (int, float)):
        raise InvalidArgument(f"resolution_delay must be a number of seconds: {resolution_delay!r}")
    if not 0 <= resolution_delay < math.inf:
        raise InvalidArgument(f"resolution_delay must be >= 0 and finite, got {resolution_delay}")
    chosen: Resolver = SystemResolver() if resolver is None else resolver
    if not callable(getattr(chosen, "resolve", None)):
        raise InvalidArgument(f"resolver {chosen!r} has no resolve(host, port, family) method")

    sock, _pair = await race_by_name(
        host, port, opts, resolver=chosen, resolution_delay=resolution_delay
    )
    return sock
