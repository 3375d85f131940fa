"""The asyncio driver. TEMPORARY STUB (sequential); the real staggered race is being written."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable, Sequence

from .addresses import Endpoint
from .errors import race_error
from .events import Attempt
from .options import Options
from .pairs import Pair
from .planner import plan_pairs
from .sources import gather_sources

SocketFactory = Callable[[Pair], socket.socket]


def default_socket_factory(pair: Pair) -> socket.socket:
    return socket.socket(pair.destination.family, socket.SOCK_STREAM)


async def race(
    destinations: Sequence[Endpoint],
    options: Options,
    *,
    more_destinations: AsyncIterator[Sequence[Endpoint]] | None = None,
    socket_factory: SocketFactory | None = None,
) -> tuple[socket.socket, Pair]:
    """Race the ranked pairs of ``destinations``; return (connected socket, winning pair).

    The socket is non-blocking. ``more_destinations`` yields late additions (DNS answers);
    the race fails only once it is exhausted. ``socket_factory(pair)`` makes each attempt's
    socket (default: the destination's family, SOCK_STREAM); an AF_INET6 socket reaches IPv4
    pairs through v4-mapped addresses.
    """
    loop = asyncio.get_running_loop()
    factory = socket_factory or default_socket_factory
    pairs = plan_pairs(
        destinations,
        gather_sources(destinations, options.local_addresses),
        history=options.history,
        now=loop.time(),
        interleave=options.interleave,
        sort=options.sort,
    )
    attempts = []
    for i, pair in enumerate(pairs):
        sock = factory(pair)
        sock.setblocking(False)
        a = Attempt(i, pair, 0.0)
        attempts.append(a)
        try:
            if pair.source is not None:
                sock.bind((str(pair.source.ip), 0))
            await loop.sock_connect(sock, pair.destination.sockaddr(sock.family))
            return sock, pair
        except OSError as e:
            sock.close()
            a.error = e
            a.outcome = "failed"
    raise race_error(attempts, timed_out=False)
