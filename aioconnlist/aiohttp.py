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
import inspect
import socket
import ssl
import sys
import weakref
from collections.abc import AsyncIterator, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypedDict

from ._core.extras import check_supported, missing_extra

try:
    import aiohttp
    from aiohappyeyeballs import AddrInfoType
except ImportError as exc:
    raise missing_extra(exc, "aiohttp", "aioconnlist.aiohttp") from exc
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.client_exceptions import (
    ClientConnectorCertificateError,
    ClientConnectorError,
    ClientConnectorSSLError,
    cert_errors,
    ssl_errors,
)
from aiohttp.client_proto import ResponseHandler
from aiohttp.client_reqrep import ClientRequest, Fingerprint
from aiohttp.helpers import ceil_timeout

from ._core.addresses import Endpoint, parse_address
from ._core.errors import InvalidArgument
from ._core.options import (
    OPTION_NAMES,
    RESOLUTION_DELAY,
    Options,
    RaceOptions,
    make_options,
    takes_options,
    unknown_options_error,
)
from ._core.pairs import Pair
from ._drivers.addrinfo import addr_info_factory, binding_factory, endpoints_of, plain_socket
from ._drivers.asyncio import race
from ._io.resolve import FamilyLookups

if TYPE_CHECKING:
    from ._core.options import Unpack

SUPPORTED_AIOHTTP = ">=3.10,<3.15"
_OLDEST, _NEWEST = (3, 10), (3, 14)


def _check_version(version: str) -> None:
    check_supported(
        version,
        _OLDEST,
        _NEWEST,
        message=(
            f"aioconnlist.aiohttp supports aiohttp {SUPPORTED_AIOHTTP}, not {version}: it "
            "overrides the private TCPConnector._wrap_create_connection, whose contract other "
            "versions may not keep. Install a supported aiohttp, or set "
            "AIOCONNLIST_AIOHTTP_ANY_VERSION=1 to try."
        ),
        override="AIOCONNLIST_AIOHTTP_ANY_VERSION",
    )


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
        # Waited for, not awaited: the task is shared by every request resolving this name
        # meanwhile (so it must not be cancelled with this race), and when the connector
        # closes it is cancelled - that ends the late answers, it must not become a stray
        # CancelledError in a request that nobody cancelled. A late lookup that failed
        # likewise only means that no more addresses come.
        await asyncio.wait([task])
        if task.cancelled() or task.exception() is not None:
            raise StopAsyncIteration
        results = task.result()
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
        """AF_UNSPEC: the first answers by RFC 8305 §3, the late ones kept for the races;
        another family: the wrapped resolver's answer."""
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
        """Cancel the late lookups still pending, then close the wrapped resolver."""
        for task in list(self.late.values()):
            task.cancel()
        await self.inner.close()


class TCPConnectorArguments(TypedDict, total=False):
    """The keyword arguments of ``aiohttp.TCPConnector`` (3.10 to 3.14; some are newer than
    3.10), for type checkers. ``interleave`` is aioconnlist's option (the same meaning)."""

    verify_ssl: bool
    fingerprint: bytes | None
    use_dns_cache: bool
    ttl_dns_cache: int | None
    dns_cache_max_size: int
    family: socket.AddressFamily | int
    ssl_context: ssl.SSLContext | None
    ssl: bool | Fingerprint | ssl.SSLContext
    local_addr: tuple[str, int] | None
    resolver: AbstractResolver | None
    keepalive_timeout: float | object | None
    force_close: bool
    limit: int
    limit_per_host: int
    enable_cleanup_closed: bool
    loop: asyncio.AbstractEventLoop | None
    timeout_ceil_threshold: float
    happy_eyeballs_delay: float | None
    socket_factory: Callable[[AddrInfoType], socket.socket] | None
    ssl_shutdown_timeout: float | object | None


class ConnectorOptions(RaceOptions, TCPConnectorArguments, total=False):
    """What `ConnListConnector` takes: aioconnlist's race options, ``resolution_delay`` and
    every ``aiohttp.TCPConnector`` argument."""

    resolution_delay: float | None


#: ``aiohttp.TCPConnector``'s own parameters (of the aiohttp installed), for the signature
_TCP_PARAMETERS = [
    parameter.replace(kind=inspect.Parameter.KEYWORD_ONLY)
    for parameter in inspect.signature(aiohttp.TCPConnector.__init__).parameters.values()
    if parameter.name != "self"
    and parameter.name not in OPTION_NAMES
    and parameter.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
]
_RESOLUTION_DELAY = inspect.Parameter(
    "resolution_delay",
    inspect.Parameter.KEYWORD_ONLY,
    default=RESOLUTION_DELAY,
    annotation="float | None",
)
if "socket_factory" not in {p.name for p in _TCP_PARAMETERS}:  # aiohttp < 3.12: ours only
    _TCP_PARAMETERS.append(
        inspect.Parameter(
            "socket_factory",
            inspect.Parameter.KEYWORD_ONLY,
            default=None,
            annotation="Callable[[AddrInfoType], socket.socket] | None",
        )
    )
_KNOWN = OPTION_NAMES | {"resolution_delay"} | {p.name for p in _TCP_PARAMETERS}


class ConnListConnector(aiohttp.TCPConnector):
    """An ``aiohttp.TCPConnector`` whose connections are won by aioconnlist's race.

    It takes every ``TCPConnector`` argument, aioconnlist's race options (those of
    `aioconnlist.connect_by_list`: ``local_addresses``, ``timeout``, ``attempt_delay``,
    ``min_attempt_delay``, ``interleave``, ``sort``, ``history``, ``on_event``) and
    ``resolution_delay`` (RFC 8305's Resolution Delay; ``None``: aiohttp's single AF_UNSPEC
    lookup). ``happy_eyeballs_delay`` is the attempt delay (``None``: one address at a time)
    unless ``attempt_delay`` is given (not both); ``local_addr=(ip, 0)`` is
    ``local_addresses=[ip]`` (a fixed port is bound as aiohttp binds it).
    """

    @takes_options(extra=[_RESOLUTION_DELAY, *_TCP_PARAMETERS])
    def __init__(self, **options: Unpack[ConnectorOptions]) -> None:
        unknown = options.keys() - _KNOWN
        if unknown:
            raise unknown_options_error(unknown, _KNOWN)
        tcp_connector_options: dict[str, Any] = dict(options)
        ours: dict[str, Any] = {
            name: tcp_connector_options.pop(name)
            for name in list(tcp_connector_options)
            if name in OPTION_NAMES
        }
        resolution_delay = tcp_connector_options.pop("resolution_delay", RESOLUTION_DELAY)
        if "happy_eyeballs_delay" in tcp_connector_options:
            if "attempt_delay" in ours:
                raise InvalidArgument("give attempt_delay or happy_eyeballs_delay, not both")
            delay = tcp_connector_options["happy_eyeballs_delay"]
            ours["attempt_delay"] = float("inf") if delay is None else delay
        local_addr = tcp_connector_options.get("local_addr")
        self._bind_fixed_port = False
        if local_addr is not None:
            if ours.get("local_addresses", "auto") != "auto":
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
        self._racing: set[asyncio.Future[tuple[socket.socket, Pair]]] = set()
        self._stopped: set[asyncio.Future[tuple[socket.socket, Pair]]] = set()
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
        late = self._late_answers(req)
        factory = self._socket_factory_for(by_endpoint)
        if late is None:
            sock, _pair = await race(destinations, self.options, socket_factory=factory)
            return sock
        # A race that waits for late answers runs as a task of the connector's, so that
        # closing the connector ends it at once (as it ends the lookups it is waiting for):
        # the request then gets aiohttp's "Connector is closed", not a CancelledError.
        inner = asyncio.ensure_future(
            race(destinations, self.options, more_destinations=late, socket_factory=factory)
        )
        self._racing.add(inner)
        try:
            sock, _pair = await inner
        except asyncio.CancelledError:
            current = asyncio.current_task()
            cancelling = getattr(current, "cancelling", None)  # Python >= 3.11
            outer_cancelled = cancelling() > 0 if cancelling is not None else False
            if inner in self._stopped and not outer_cancelled:
                raise aiohttp.ClientConnectionError("Connector is closed") from None
            raise
        finally:
            self._racing.discard(inner)
            self._stopped.discard(inner)
        return sock

    def _close(self, *args: Any, **kwargs: Any) -> Any:
        waiters = super()._close(*args, **kwargs)
        for task in list(self._racing):
            self._stopped.add(task)
            task.cancel()
            if isinstance(waiters, list):  # aiohttp >= 3.12 awaits these in close()
                waiters.append(task)
        return waiters

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
