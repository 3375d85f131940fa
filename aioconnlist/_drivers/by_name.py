"""A race by name: resolve (AAAA and A concurrently, RFC 8305 §3), then race the answers on
asyncio, late answers joining the running race. Shared by every entry point and integration
that starts from a host name (``connect_by_name``, and the HTTP and event-loop integrations).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Sequence

from .._core.addresses import Endpoint
from .._core.errors import ConnectTimeout
from .._core.options import RESOLUTION_DELAY, Options
from .._core.pairs import Pair
from .._io.connectivity import preferred_family
from .._io.resolve import FAMILIES, FamilyLookups, Resolver, SystemResolver, endpoints, ip_literal
from .asyncio import race
from .planning import plan_race
from .sockets import SocketFactory


async def race_by_name(
    host: str,
    port: int,
    options: Options,
    *,
    resolver: Resolver | None = None,
    resolution_delay: float = RESOLUTION_DELAY,
    families: Sequence[socket.AddressFamily] = FAMILIES,
    socket_factory: SocketFactory | None = None,
) -> tuple[socket.socket, Pair]:
    """Resolve ``host`` and race its addresses; return (connected socket, winning pair).

    The arguments are already validated. ``families`` limits the lookups (and so the pairs);
    an IP literal skips resolution. ``options.timeout`` covers resolution and connecting
    together. A name that resolves to nothing raises `NameResolutionError`.
    """
    literal = ip_literal(host)
    if literal is not None:
        ip, scope_id = literal
        return await race([Endpoint(ip, port, 0, scope_id)], options, socket_factory=socket_factory)

    chosen: Resolver = SystemResolver() if resolver is None else resolver
    loop = asyncio.get_running_loop()
    deadline = None if options.timeout is None else loop.time() + options.timeout

    async def lookup(family: socket.AddressFamily) -> list[Endpoint]:
        return endpoints(await chosen.resolve(host, port, family))

    lookups: FamilyLookups[Endpoint] = FamilyLookups(lookup, families)
    try:
        first = await lookups.first(resolution_delay, deadline, prefer=preferred_family())
        if first is None:
            raise ConnectTimeout(f"timed out resolving {host!r} after {options.timeout} s")
        if not first:
            raise lookups.error(host)
        if lookups.pending and _failed_recently(first, options, loop.time()):
            first = first + await _late_within(lookups, resolution_delay, deadline)
        remaining = None if deadline is None else deadline - loop.time()
        if remaining is not None and remaining <= 0:
            raise ConnectTimeout(f"timed out resolving {host!r} after {options.timeout} s")
        return await race(
            first,
            options.replace(timeout=remaining),
            more_destinations=lookups.late() if lookups.pending else None,
            socket_factory=socket_factory,
        )
    finally:
        await lookups.aclose()


def _failed_recently(destinations: list[Endpoint], options: Options, now: float) -> bool:
    """Whether history holds a recent failure for a pair of ``destinations`` (or its path).

    RFC 8305 §3 starts racing on the AAAA answer at once because its addresses are the
    preferred ones; when history says they just failed, the race would rather lead with the
    other family, whose answer is then worth the wait a late AAAA answer is worth.
    """
    history = options.history
    if history is None:
        return False
    pairs = plan_race(destinations, options, now)
    if not pairs:
        return False
    demoted = history.demoted_paths(now)
    ranks = history.ranks(pairs, now)
    return any(
        rank > 0 or (pair.effective_source, pair.destination.family) in demoted
        for pair, rank in zip(pairs, ranks, strict=True)
    )


async def _late_within(
    lookups: FamilyLookups[Endpoint], delay: float, deadline: float | None
) -> list[Endpoint]:
    """The next late answer if it comes within ``delay`` (and the deadline), else nothing."""
    loop = asyncio.get_running_loop()
    timeout = delay if deadline is None else max(0.0, min(delay, deadline - loop.time()))
    waiter = asyncio.ensure_future(lookups.next_late())
    try:
        done, _ = await asyncio.wait({waiter}, timeout=timeout)
    finally:
        if not waiter.done():
            waiter.cancel()
            await asyncio.wait({waiter})  # the lookups themselves go on (late answers)
    if waiter in done and not waiter.cancelled():
        return waiter.result() or []
    return []
