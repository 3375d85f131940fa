"""`ConnListConnector`: an ``aiohttp.TCPConnector`` that connects with aioconnlist's race.

    async with aiohttp.ClientSession(connector=ConnListConnector()) as session:
        async with session.get("https://example.org/") as response: ...

It takes every ``TCPConnector`` argument plus aioconnlist's options (``local_addresses``,
``timeout``, ``attempt_delay``, ``min_attempt_delay``, ``interleave``, ``sort``, ``history``,
``on_event``) and ``resolution_delay``. Everything else stays aiohttp's: its resolver and DNS
cache, connection pool and limits, proxies, TLS, fingerprints, traces, and its error contract
(``ClientConnectorError`` whose ``os_error`` is our `ConnectError` with the errno;
certificate and SSL errors mapped as aiohttp maps them).

What changes:

- the TCP connect is our race (RFC 6724 + history ranking, staggered attempts, every loser
  closed), once per connection: aiohttp's own second round over the remaining addresses
  after a failed happy-eyeballs pass is not done on top of it;
- name resolution follows RFC 8305 §3 (AAAA and A asked concurrently through aiohttp's
  resolver, racing starts on AAAA or ``resolution_delay`` after A, late answers join the
  race and the DNS cache); ``resolution_delay=None`` keeps aiohttp's single AF_UNSPEC lookup.
- ``happy_eyeballs_delay`` is the attempt delay (``None``: one address at a time), unless
  ``attempt_delay`` is given (not both).

Supported aiohttp: `SUPPORTED_AIOHTTP` (>=3.10,<3.15). It overrides the private
``TCPConnector._wrap_create_connection(*args, addr_infos, req, timeout, client_error,
**kwargs)`` (unchanged from 3.10 to 3.14), relies on ``_create_direct_connection`` looping
``while addr_infos`` (emptied after our race to stop its second round), wraps ``_resolver``,
and uses ``_family``, ``_loop``, ``_local_addr_infos``, ``_cached_hosts.add``,
``_resolve_host_tasks`` and ``_ssl_shutdown_timeout`` (3.12+). Importing it with another
aiohttp raises ImportError (set ``AIOCONNLIST_AIOHTTP_ANY_VERSION=1`` to try anyway).
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import sys
import warnings
import weakref
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import aiohttp
from aiohappyeyeballs import AddrInfoType
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.client_exceptions import (
    ClientConnectorCertificateError,
    ClientConnectorError,
    ClientConnectorSSLError,
    cert_errors,
    ssl_errors,
)
from aiohttp.client_proto import ResponseHandler
from aiohttp.client_reqrep import ClientRequest
from aiohttp.helpers import ceil_timeout

from ._core.addresses import Endpoint, parse_address
from ._core.errors import InvalidArgument
from ._core.options import DEFAULT, RESOLUTION_DELAY, Options, make_options
from ._core.pairs import Pair
from ._drivers.addrinfo import addr_info_factory, binding_factory, endpoints_of, plain_socket
from ._drivers.asyncio import race
from ._io.resolve import FamilyLookups

SUPPORTED_AIOHTTP = ">=3.10,<3.15"
_OLDEST, _NEWEST = (3, 10), (3, 14)


def _check_version(version: str) -> None:
    match = re.match(r"(\d+)\.(\d+)", version)
    found = (int(match.group(1)), int(match.group(2))) if match else (0, 0)
    if _OLDEST <= found <= _NEWEST:
        return
    message = (
        f"aioconnlist.aiohttp supports aiohttp {SUPPORTED_AIOHTTP}, not {version}: it overrides "
        "the private TCPConnector._wrap_create_connection, whose contract other versions may "
        "not keep. Install a supported aiohttp, or set AIOCONNLIST_AIOHTTP_ANY_VERSION=1 to try."
    )
    if os.environ.get("AIOCONNLIST_AIOHTTP_ANY_VERSION") == "1":
        warnings.warn(message, RuntimeWarning, stacklevel=3)
        return
    raise ImportError(message)


_check_version(aiohttp.__version__)


def _results_to_endpoints(results: Sequence[ResolveResult]) -> list[Endpoint]:
    return list(dict.fromkeys(parse_address((r["host"], r["port"])) for r in results))


class _LateJoin:
    """``more_destinations`` for one race: the late answers of a shared lookup, once."""

    def __init__(self, task: asyncio.Task[list[ResolveResult]]) -> None:
        self._task: asyncio.Task[list[ResolveResult]] | None = task

    def __aiter__(self) -> _LateJoin:
        return self

    async def __anext__(self) -> list[Endpoint]:
        task, self._task = self._task, None
        if task is None:
            raise StopAsyncIteration
        # shielded: the task is shared by every request resolving this name meanwhile
        results = await asyncio.shield(task)
        if not results:
            raise StopAsyncIteration
        return _results_to_endpoints(results)


class Rfc8305Resolver(AbstractResolver):
    """Wraps an aiohttp resolver: an AF_UNSPEC lookup becomes concurrent AF_INET6 and AF_INET
    lookups consumed per RFC 8305 §3. The first answers are returned (and cached by aiohttp);
    the rest are kept per (host, port) for the races running meanwhile and then merged into
    the connector's DNS cache."""

    def __init__(
        self,
        inner: AbstractResolver,
        connector: ConnListConnector,
        resolution_delay: float = RESOLUTION_DELAY,
    ) -> None:
        self.inner = inner
        self.resolution_delay = resolution_delay
        self._connector = weakref.ref(connector)
        self.late: dict[tuple[str, int], asyncio.Task[list[ResolveResult]]] = {}

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        if family != socket.AF_UNSPEC:
            return await self.inner.resolve(host, port, family)

        async def lookup(family: socket.AddressFamily) -> list[ResolveResult]:
            return await self.inner.resolve(host, port, family)

        lookups: FamilyLookups[ResolveResult] = FamilyLookups(lookup)
        try:
            first = await lookups.first(self.resolution_delay)
        except BaseException:
            await lookups.aclose()
            raise
        if not first:
            await lookups.aclose()
            raise lookups.error(host)
        if lookups.pending:
            key = (host, port)
            task = asyncio.ensure_future(self._finish(key, lookups, list(first)))
            self.late[key] = task
            connector = self._connector()
            if connector is not None:  # cancelled with aiohttp's own lookups on close
                connector._resolve_host_tasks.add(task)
                task.add_done_callback(connector._resolve_host_tasks.discard)
        else:
            await lookups.aclose()
        return first

    async def _finish(
        self,
        key: tuple[str, int],
        lookups: FamilyLookups[ResolveResult],
        first: list[ResolveResult],
    ) -> list[ResolveResult]:
        """Wait for the late answers; merge them into the connector's DNS cache."""
        try:
            late: list[ResolveResult] = []
            while (batch := await lookups.next_late()) is not None:
                late.extend(batch)
            connector = self._connector()
            if late and connector is not None and connector.use_dns_cache:
                connector._cached_hosts.add(key, first + late)
            return late
        finally:
            if self.late.get(key) is asyncio.current_task():
                del self.late[key]
            await lookups.aclose()

    async def close(self) -> None:
        for task in list(self.late.values()):
            task.cancel()
        await self.inner.close()


class ConnListConnector(aiohttp.TCPConnector):
    """An ``aiohttp.TCPConnector`` whose connections are won by aioconnlist's race."""

    def __init__(
        self,
        *,
        local_addresses: Any = "auto",
        timeout: float | None = None,
        attempt_delay: float | None = None,
        min_attempt_delay: float | None = None,
        sort: bool = True,
        history: Any = DEFAULT,
        on_event: Any = None,
        resolution_delay: float | None = RESOLUTION_DELAY,
        **tcp_connector_options: Any,
    ) -> None:
        ours: dict[str, Any] = {
            "local_addresses": local_addresses,
            "timeout": timeout,
            "sort": sort,
            "history": history,
            "on_event": on_event,
        }
        if min_attempt_delay is not None:
            ours["min_attempt_delay"] = min_attempt_delay
        if "happy_eyeballs_delay" in tcp_connector_options:
            if attempt_delay is not None:
                raise InvalidArgument("give attempt_delay or happy_eyeballs_delay, not both")
            delay = tcp_connector_options["happy_eyeballs_delay"]
            ours["attempt_delay"] = float("inf") if delay is None else delay
        elif attempt_delay is not None:
            ours["attempt_delay"] = attempt_delay
        interleave = tcp_connector_options.get("interleave")
        if interleave is not None:
            ours["interleave"] = interleave
        local_addr = tcp_connector_options.get("local_addr")
        self._bind_fixed_port = False
        if local_addr is not None:
            if local_addresses != "auto":
                raise InvalidArgument("give local_addresses or local_addr, not both")
            if not isinstance(local_addr, tuple) or len(local_addr) < 2:
                raise InvalidArgument(f"local_addr must be (host, port), not {local_addr!r}")
            if local_addr[1]:
                # a fixed local port: bound in the socket factory, as aiohappyeyeballs does
                self._bind_fixed_port = True
                ours["local_addresses"] = None
            else:
                ours["local_addresses"] = [local_addr[0]]
        if resolution_delay is not None and (
            isinstance(resolution_delay, bool)
            or not isinstance(resolution_delay, (int, float))
            or not 0 <= resolution_delay < float("inf")
        ):
            raise InvalidArgument(
                f"resolution_delay must be None or seconds >= 0, not {resolution_delay!r}"
            )
        self.options: Options = make_options(**ours)
        # ours to apply (aiohttp < 3.12 has no such argument; its own use is replaced)
        self._addr_info_factory = tcp_connector_options.pop("socket_factory", None)
        super().__init__(**tcp_connector_options)
        if resolution_delay is not None and self._family == socket.AF_UNSPEC:
            self._resolver = Rfc8305Resolver(self._resolver, self, resolution_delay)

    def _late_answers(self, req: ClientRequest) -> AsyncIterator[Sequence[Endpoint]] | None:
        resolver = self._resolver
        if not isinstance(resolver, Rfc8305Resolver) or not resolver.late:
            return None
        host = req.url.raw_host or ""
        if host.endswith(".."):  # the same key as TCPConnector._create_direct_connection
            host = host.rstrip(".") + "."
        task = resolver.late.get((host, req.port or 0))
        return None if task is None else _LateJoin(task)

    def _socket_factory_for(
        self, by_endpoint: dict[Endpoint, AddrInfoType]
    ) -> Callable[[Pair], socket.socket] | None:
        make: Callable[[Pair], socket.socket] | None = None
        if self._addr_info_factory is not None:
            make = addr_info_factory(self._addr_info_factory, by_endpoint)
        if self._bind_fixed_port and self._local_addr_infos:
            make = binding_factory(self._local_addr_infos, make or plain_socket)
        return make

    async def _race(self, addr_infos: list[AddrInfoType], req: ClientRequest) -> socket.socket:
        destinations, by_endpoint = endpoints_of(addr_infos)
        sock, _pair = await race(
            destinations,
            self.options,
            more_destinations=self._late_answers(req),
            socket_factory=self._socket_factory_for(by_endpoint),
        )
        return sock

    async def _wrap_create_connection(
        self,
        *args: Any,
        addr_infos: list[AddrInfoType],
        req: ClientRequest,
        timeout: aiohttp.ClientTimeout,
        client_error: type[Exception] = ClientConnectorError,
        **kwargs: Any,
    ) -> tuple[asyncio.Transport, ResponseHandler]:
        try:
            return await self._connect_once(
                *args,
                addr_infos=addr_infos,
                req=req,
                timeout=timeout,
                client_error=client_error,
                **kwargs,
            )
        except BaseException:
            # Our race already tried every address: empty the caller's list so that
            # _create_direct_connection does not start a second round over the rest.
            addr_infos.clear()
            raise

    async def _connect_once(
        self,
        *args: Any,
        addr_infos: list[AddrInfoType],
        req: ClientRequest,
        timeout: aiohttp.ClientTimeout,
        client_error: type[Exception],
        **kwargs: Any,
    ) -> tuple[asyncio.Transport, ResponseHandler]:
        # the body of TCPConnector._wrap_create_connection (3.10-3.14), our race instead of
        # aiohappyeyeballs.start_connection
        try:
            async with ceil_timeout(timeout.sock_connect, ceil_threshold=timeout.ceil_threshold):
                sock = await self._race(addr_infos, req)
                try:
                    shutdown_timeout = getattr(self, "_ssl_shutdown_timeout", None)
                    if kwargs.get("ssl") and shutdown_timeout and sys.version_info >= (3, 11):
                        kwargs["ssl_shutdown_timeout"] = shutdown_timeout
                    transport, protocol = await self._loop.create_connection(
                        *args, **kwargs, sock=sock
                    )
                except BaseException:
                    sock.close()  # a no-op when the transport already closed it
                    raise
                return transport, protocol
        except cert_errors as exc:
            raise ClientConnectorCertificateError(req.connection_key, exc) from exc
        except ssl_errors as exc:
            raise ClientConnectorSSLError(req.connection_key, exc) from exc
        except OSError as exc:
            if exc.errno is None and isinstance(exc, asyncio.TimeoutError):
                raise  # aiohttp's sock_connect timeout: it reports it itself
            raise client_error(req.connection_key, exc) from exc
