"""The async API (SPEC §1): thin wrappers that parse, validate and hand over to the driver."""

from __future__ import annotations

import asyncio
import socket
import ssl as _ssl
from collections.abc import Callable
from typing import Any, TypeVar

from .addresses import parse_addresses
from .driver import race
from .options import options_from

_Protocol = TypeVar("_Protocol", bound=asyncio.BaseProtocol)


async def connect_by_list(addresses: Any, **options: Any) -> socket.socket:
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
