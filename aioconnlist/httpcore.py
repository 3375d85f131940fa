"""httpcore network backends whose ``connect_tcp`` is aioconnlist's race.

    pool = httpcore.ConnectionPool(network_backend=aioconnlist.httpcore.NetworkBackend())
    pool = httpcore.AsyncConnectionPool(network_backend=aioconnlist.httpcore.AsyncNetworkBackend())

(``aioconnlist.httpx`` puts them under httpx's transports.) ``connect_tcp(host, port,
timeout=None, local_address=None, socket_options=None)`` resolves ``host`` - AAAA and A asked
concurrently, racing as soon as AAAA answers or 50 ms after A did, later answers joining the
running race (RFC 8305 §3); an IP literal is not resolved - and races the addresses:
ranked (source x destination) pairs, staggered attempts, every loser closed, the outcome
remembered in the history. Unlike httpcore's own backends:

- ``timeout`` is the hard deadline of the whole connect, resolution included (httpx's
  ``Timeout(connect=...)``); a ``timeout`` given to the backend itself also applies, the
  smaller of the two wins;
- ``local_address`` binds every attempt (an unspecified address, ``"0.0.0.0"`` or ``"::"``,
  binds none but limits the race to that family, as it does with httpcore's backends);
- ``socket_options`` are set on every attempt socket *before* it connects (``TCP_NODELAY`` is
  set first, as httpcore does, so a caller's option can still turn it off).

The streams are httpcore's own (``SyncStream`` over the connected socket; ``AnyIOStream``
over anyio's ``SocketStream.from_socket``), so reads, writes, ``start_tls`` (also TLS in TLS
through an HTTPS proxy), HTTP/2, ``get_extra_info`` (``ssl_object``, ``client_addr``,
``server_addr``, ``socket``, ``is_readable``), closing and httpcore's exception mapping are
exactly httpcore's. A failed connect raises ``httpcore.ConnectError`` (``ConnectTimeout`` for
the deadline) carrying the text of aioconnlist's `ConnectError` (each attempt and its errno);
httpx turns them into ``httpx.ConnectError`` / ``httpx.ConnectTimeout`` as with its own
backends.

The async backend runs on asyncio, with or without uvloop; under another event loop (trio)
``connect_tcp`` raises a ``RuntimeError`` that says so. Unix sockets (``uds=``) and ``sleep``
are httpcore's own.

Supported httpcore: `SUPPORTED_HTTPCORE` (the 1.0 series; the stream classes come from its
``httpcore._backends`` modules, unchanged through 1.0). Importing this module with another
httpcore raises ImportError (set ``AIOCONNLIST_HTTPCORE_ANY_VERSION=1`` to try anyway); without
httpcore or anyio installed the ImportError names ``pip install 'aioconnlist[httpx]'``.
"""

from __future__ import annotations

import asyncio
import ipaddress
import math
import socket
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

try:
    import anyio
    import httpcore
    from httpcore._backends.anyio import AnyIOStream
    from httpcore._backends.sync import SyncStream
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        f"aioconnlist.httpcore needs httpcore and anyio ({exc}): pip install 'aioconnlist[httpx]'"
    ) from exc

from . import blocking
from ._core.errors import InvalidArgument
from ._core.extras import check_supported
from ._core.options import RESOLUTION_DELAY, Options, RaceOptions, make_options
from ._core.pairs import Pair
from ._drivers.by_name import race_by_name
from ._drivers.sockets import SocketFactory
from ._io.resolve import FAMILIES, Resolver, ip_literal

if TYPE_CHECKING:
    from ._core.options import Unpack

__all__ = ["SUPPORTED_HTTPCORE", "AsyncNetworkBackend", "NetworkBackend"]

SUPPORTED_HTTPCORE = ">=1.0,<1.1"
_OLDEST, _NEWEST = (1, 0), (1, 0)

#: what httpcore's backends accept as ``socket_options``: (level, option, int | bytes) or
#: (level, option, None, optlen)
SocketOption = (
    tuple[int, int, int] | tuple[int, int, bytes | bytearray] | tuple[int, int, None, int]
)


def _check_version(version: str) -> None:
    check_supported(
        version,
        _OLDEST,
        _NEWEST,
        works=hasattr(anyio.abc.SocketStream, "from_socket"),
        message=(
            f"aioconnlist.httpcore supports httpcore {SUPPORTED_HTTPCORE} with anyio>=4.10, not "
            f"httpcore {version} / anyio {getattr(anyio, '__version__', '?')}: it reuses "
            "httpcore's private stream classes (httpcore._backends) and anyio's "
            "SocketStream.from_socket. Install them with pip install 'aioconnlist[httpx]', or "
            "set AIOCONNLIST_HTTPCORE_ANY_VERSION=1 to try."
        ),
        override="AIOCONNLIST_HTTPCORE_ANY_VERSION",
    )


_check_version(httpcore.__version__)


@contextmanager
def _httpcore_errors() -> Iterator[None]:
    """Our errors as httpcore's: the deadline is ``ConnectTimeout``, any other OSError (every
    `ConnectError` is one) ``ConnectError``, with the original's text."""
    try:
        yield
    except TimeoutError as exc:
        raise httpcore.ConnectTimeout(str(exc) or "timed out connecting") from exc
    except OSError as exc:
        raise httpcore.ConnectError(str(exc) or repr(exc)) from exc


def _deadline(backend: float | None, call: float | None) -> float | None:
    if backend is None:
        return call
    if call is None:
        return backend
    return min(backend, call)


def _source(local_address: str | None) -> tuple[str | None, tuple[socket.AddressFamily, ...]]:
    """(the address to bind, or None; the families to race) for httpcore's ``local_address``."""
    if local_address is None:
        return None, FAMILIES
    try:
        ip = ipaddress.ip_address(local_address.split("%", 1)[0])
    except ValueError:
        return local_address, FAMILIES  # a name: the race's validation says what is wrong
    family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
    return (None if ip.is_unspecified else local_address), (family,)


def _options_for(
    options: Options, timeout: float | None, local_address: str | None
) -> tuple[Options, tuple[socket.AddressFamily, ...]]:
    bind, families = _source(local_address)
    changes: dict[str, Any] = {"timeout": _deadline(options.timeout, timeout)}
    if bind is not None:
        changes["local_addresses"] = make_options(local_addresses=[bind]).local_addresses
    return options.replace(**changes), families


def _check_literal_family(host: str, families: tuple[socket.AddressFamily, ...]) -> None:
    """An IP literal of a family ``local_address`` excludes fails as getaddrinfo does."""
    literal = ip_literal(host)
    if literal is not None and len(families) == 1:
        family = socket.AF_INET6 if literal[0].version == 6 else socket.AF_INET
        if family not in families:
            raise socket.gaierror(
                socket.EAI_ADDRFAMILY, "address family of the local address does not match"
            )


def _socket_factory(socket_options: Iterable[SocketOption] | None) -> SocketFactory:
    chosen = list(socket_options or ())

    def factory(pair: Pair) -> socket.socket:
        sock = socket.socket(pair.destination.family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for option in chosen:
                sock.setsockopt(*option)
        except BaseException:
            sock.close()
            raise
        return sock

    return factory


class AsyncNetworkBackend(httpcore.AsyncNetworkBackend):
    """An ``httpcore.AsyncNetworkBackend`` (asyncio, uvloop) whose ``connect_tcp`` races.

    Takes the race options (``local_addresses``, ``timeout``, ``attempt_delay``,
    ``min_attempt_delay``, ``interleave``, ``sort``, ``history``, ``on_event``), a
    ``resolver`` (an object with ``async resolve(host, port, family)``, default: the system's
    getaddrinfo) and ``resolution_delay`` (RFC 8305's 50 ms). ``local_address`` given to
    ``connect_tcp`` (httpx's ``local_address=``) replaces ``local_addresses``.
    """

    def __init__(
        self,
        *,
        resolver: Resolver | None = None,
        resolution_delay: float = RESOLUTION_DELAY,
        **options: Unpack[RaceOptions],
    ) -> None:
        self._options = make_options(**options)
        if isinstance(resolution_delay, bool) or not isinstance(resolution_delay, (int, float)):
            raise InvalidArgument(
                f"resolution_delay must be a number of seconds: {resolution_delay!r}"
            )
        if not 0 <= resolution_delay < math.inf:
            raise InvalidArgument(
                f"resolution_delay must be >= 0 and finite, got {resolution_delay}"
            )
        if resolver is not None and not callable(getattr(resolver, "resolve", None)):
            raise InvalidArgument(
                f"resolver {resolver!r} has no resolve(host, port, family) method"
            )
        self._resolver = resolver
        self._resolution_delay = float(resolution_delay)
        self._unix = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[SocketOption] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        _require_asyncio()
        with _httpcore_errors():
            options, families = _options_for(self._options, timeout, local_address)
            _check_literal_family(host, families)
            sock, _pair = await race_by_name(
                host,
                port,
                options,
                resolver=self._resolver,
                resolution_delay=self._resolution_delay,
                families=families,
                socket_factory=_socket_factory(socket_options),
            )
            try:
                stream = await anyio.abc.SocketStream.from_socket(sock)
            except BaseException:
                sock.close()
                raise
        return AnyIOStream(stream)

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[SocketOption] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        return await self._unix.connect_unix_socket(path, timeout, socket_options)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


def _require_asyncio() -> None:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        library = "this event loop"
        try:
            import sniffio

            library = sniffio.current_async_library()
        except Exception:  # sniffio missing, or it cannot tell either
            pass
        raise RuntimeError(
            f"aioconnlist.httpcore.AsyncNetworkBackend runs on asyncio (or uvloop), not on "
            f"{library}; use httpcore's own backend there (httpx's default transport)"
        ) from None


def _resolve_family(
    host: str, port: int, family: socket.AddressFamily, deadline: float | None
) -> tuple[list[Any], float | None]:
    """``host``'s addresses of ``family`` (one getaddrinfo) and the deadline left after it."""
    start = time.monotonic()
    infos = socket.getaddrinfo(host, port, family, socket.SOCK_STREAM)
    addresses = list(dict.fromkeys(info[4] for info in infos if info[0] == family))
    if not addresses:
        raise socket.gaierror(socket.EAI_NONAME, f"{host!r} has no address of {family.name}")
    if deadline is not None:
        deadline -= time.monotonic() - start
        if deadline <= 0:
            raise TimeoutError(f"timed out resolving {host!r}")
    return addresses, deadline


class NetworkBackend(httpcore.NetworkBackend):
    """An ``httpcore.NetworkBackend`` (threads, blocking) whose ``connect_tcp`` races.

    Takes the race options (``local_addresses``, ``timeout``, ``attempt_delay``,
    ``min_attempt_delay``, ``interleave``, ``sort``, ``history``, ``on_event``); names are
    resolved by the system's getaddrinfo (A and AAAA) and raced with the blocking driver.
    ``local_address`` given to ``connect_tcp`` (httpx's ``local_address=``) binds every
    attempt to it. ``socket_options`` are set on every attempt socket before it connects.
    """

    def __init__(self, **options: Unpack[RaceOptions]) -> None:
        make_options(**options)  # validate now, not at the first request
        self._timeout: float | None = options.pop("timeout", None)
        self._options: dict[str, Any] = dict(options)
        self._unix = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[SocketOption] | None = None,
    ) -> httpcore.NetworkStream:
        deadline = _deadline(self._timeout, timeout)
        bind, families = _source(local_address)
        chosen: list[SocketOption] = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]
        chosen.extend(socket_options or ())
        with _httpcore_errors():
            address: Any = (host, port)
            if local_address is not None and bind is None:
                # "0.0.0.0" / "::": no bind, but only that family (as a bind to it would do)
                address, deadline = _resolve_family(host, port, families[0], deadline)
            sock = blocking.create_connection(
                address,
                deadline,
                None if bind is None else (bind, 0),
                socket_options=chosen,
                **self._options,
            )
        return SyncStream(sock)

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[SocketOption] | None = None,
    ) -> httpcore.NetworkStream:
        return self._unix.connect_unix_socket(path, timeout, socket_options)

    def sleep(self, seconds: float) -> None:
        self._unix.sleep(seconds)
