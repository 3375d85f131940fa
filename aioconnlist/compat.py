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
import math
import socket
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from ._core.errors import InvalidArgument
from ._core.options import Options, make_options, split_options
from ._core.pairs import Pair
from ._drivers.addrinfo import (
    AddrInfo,
    AddrInfoSocketFactory,
    addr_info_factory,
    binding_factory,
    endpoints_of,
    local_sources,
    plain_socket,
)
from ._drivers.asyncio import race


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
            local_ips, fixed_port = local_sources(local_addr_infos)
            if fixed_port:  # our sources bind port 0: bind in the factory instead
                make = binding_factory(local_addr_infos, make or plain_socket)
                local_ips = None
        opts = _options(happy_eyeballs_delay, interleave, local_ips, ours)
        sock, _pair = await race(destinations, opts, socket_factory=make)
        return sock

    start_connection.__doc__ = __doc__
    return start_connection


#: ``aiohappyeyeballs.start_connection`` with the default options (shared history)
start_connection = make_start_connection()
