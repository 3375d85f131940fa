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
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from ._core.errors import ConnectError, ConnectTimeout, InvalidArgument, OutOfResources
from ._core.options import (
    Options,
    RaceOptions,
    check_option_names,
    make_options,
    peer_attempt_delay,
    takes_options,
)
from ._drivers.addrinfo import (
    AddrInfo,
    AddrInfoSocketFactory,
    addr_info_factory,
    addr_info_socket,
    binding_factory,
    endpoints_of,
    local_sources,
)
from ._drivers.asyncio import race

if TYPE_CHECKING:
    from ._core.options import Unpack


def _options(
    happy_eyeballs_delay: float | None,
    interleave: int | None,
    local_ips: list[str] | None,
    options: dict[str, Any],
) -> Options:
    kwargs = dict(options)
    kwargs.setdefault(
        "attempt_delay",
        math.inf if happy_eyeballs_delay is None else peer_attempt_delay(happy_eyeballs_delay),
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


@takes_options()
def make_start_connection(**options: Unpack[RaceOptions]) -> StartConnection:
    """A `start_connection` with aioconnlist's options preset (``history``, ``on_event``,
    ``sort``, ``timeout``...; those of `aioconnlist.connect_by_list`).

    ``attempt_delay`` / ``interleave`` / ``local_addresses`` given here win over the
    per-call ``happy_eyeballs_delay`` / ``interleave`` / ``local_addr_infos``. An unknown
    option is a ``TypeError``, an invalid value `InvalidArgument`, both raised here.
    """
    check_option_names(options)
    ours: dict[str, Any] = dict(options)
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
        # sockets made from each addr_info as aiohappyeyeballs makes them (or by the caller's)
        make = addr_info_factory(socket_factory or addr_info_socket, by_endpoint)
        local_ips: list[str] | None = None
        if local_addr_infos is not None and "local_addresses" not in ours:
            local_ips, fixed_port = local_sources(local_addr_infos)
            if fixed_port:  # our sources bind port 0: bind in the factory instead
                make = binding_factory(local_addr_infos, make)
                local_ips = None
        opts = _options(happy_eyeballs_delay, interleave, local_ips, ours)
        failure: BaseException | None = None
        try:
            sock, _pair = await race(destinations, opts, socket_factory=make)
        except ConnectError as error:
            failure = peer_error(error)
        if failure is not None:
            raise failure  # outside the except block: no context chain to our own error
        return sock

    start_connection.__doc__ = __doc__
    return start_connection


def peer_error(error: ConnectError) -> BaseException:
    """The error aiohappyeyeballs raises for the same failed attempts, keeping ours inside.

    One failure, or failures that all read the same: that error (a `ConnectError` of its
    errno with its message, or the exception itself when it has no errno, such as uvloop's
    ``RuntimeError``). Different ones: ``"Multiple exceptions: a, b, ..."``, a `ConnectError`
    of the errno they share (else of the last one's), or a ``RuntimeError`` when every one
    was. Deadlines, invalid arguments and resource shortages stay as they are. ``attempts``
    and the ``ExceptionGroup`` cause are kept on every `ConnectError`.
    """
    if isinstance(error, (ConnectTimeout, InvalidArgument, OutOfResources)):
        return error
    failed = [_original(a.error) for a in error.attempts if a.error is not None]
    if not failed:
        return error
    first = failed[0]
    message: str
    code: int | None
    if all(str(e) == str(first) for e in failed):
        if not isinstance(first, OSError) or first.errno is None:
            return first
        code, message = first.errno, first.strerror or str(first)
    else:
        message = "Multiple exceptions: " + ", ".join(str(e) for e in failed)
        if all(isinstance(e, RuntimeError) for e in failed):
            return RuntimeError(message)
        codes = {e.errno for e in failed if isinstance(e, OSError)}
        code = codes.pop() if len(codes) == 1 and None not in codes else error.errno
    if code is None:
        code = error.errno if error.errno is not None else _errno.EIO
    shaped = ConnectError(code, message, error.attempts)
    shaped.__cause__ = error.__cause__
    return shaped


def _original(error: OSError) -> BaseException:
    """What an attempt really raised: the driver files a non-OSError (uvloop's RuntimeError)
    as an errno-less OSError caused by it."""
    if type(error) is OSError and error.errno is None and error.__cause__ is not None:
        return error.__cause__
    return error


#: ``aiohappyeyeballs.start_connection`` with the default options (shared history)
start_connection = make_start_connection()
