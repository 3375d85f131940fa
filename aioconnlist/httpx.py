"""httpx transports that connect with aioconnlist's race.

    client = httpx.Client(transport=aioconnlist.httpx.HTTPTransport())
    client = httpx.AsyncClient(transport=aioconnlist.httpx.AsyncHTTPTransport(http2=True))

`HTTPTransport` and `AsyncHTTPTransport` are httpx's own ``HTTPTransport`` /
``AsyncHTTPTransport`` (subclasses, every argument of theirs: ``verify``, ``cert``,
``trust_env``, ``http1``, ``http2``, ``limits``, ``proxy``, ``uds``, ``local_address``,
``retries``, ``socket_options``) plus aioconnlist's race options (``local_addresses``,
``timeout``, ``attempt_delay``, ``min_attempt_delay``, ``interleave``, ``sort``, ``history``,
``on_event``; the async one also ``resolver`` and ``resolution_delay``). Everything stays
httpx's and httpcore's - the pool and its limits, keep-alive, HTTP/1.1 and HTTP/2, TLS,
HTTP and SOCKS proxies, retries, and the error classes (``httpx.ConnectError``,
``httpx.ConnectTimeout``) - except the TCP connect, which is the race of
`aioconnlist.httpcore.NetworkBackend` / `AsyncNetworkBackend`: names resolved AAAA and A
concurrently (RFC 8305 §3), ranked pairs raced with staggered attempts and remembered,
httpx's connect timeout the hard deadline, ``local_address`` binding and ``socket_options``
set on every attempt before it connects.

How the backend is wired in: httpx builds its httpcore pool (``ConnectionPool``,
``HTTPProxy`` or ``SOCKSProxy``) in ``__init__`` with no backend argument. These classes let
httpx build it exactly as it does, then set the pool's ``_network_backend`` (the attribute
httpcore's ``ConnectionPool.__init__`` stores its ``network_backend=`` argument in, and the
only place its pools and proxies read it from, through httpcore 1.0) to ours. That touches
one private attribute instead of re-creating httpx's argument-to-pool mapping, which changes
between httpx versions. Supported: `SUPPORTED_HTTPX` with `SUPPORTED_HTTPCORE` (tested on
httpx 0.27 and 0.28); importing with other versions raises ImportError (set
``AIOCONNLIST_HTTPX_ANY_VERSION=1`` to try anyway). Without httpx installed the ImportError
names ``pip install 'aioconnlist[httpx]'``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

try:
    import httpx
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        f"aioconnlist.httpx needs httpx ({exc}): pip install 'aioconnlist[httpx]'"
    ) from exc

from ._core.extras import check_supported
from ._core.options import RESOLUTION_DELAY, RaceOptions
from ._io.resolve import Resolver
from .httpcore import SUPPORTED_HTTPCORE, AsyncNetworkBackend, NetworkBackend, SocketOption

if TYPE_CHECKING:
    from ._core.options import Unpack

__all__ = ["SUPPORTED_HTTPCORE", "SUPPORTED_HTTPX", "AsyncHTTPTransport", "HTTPTransport"]

SUPPORTED_HTTPX = ">=0.27,<0.29"
_OLDEST, _NEWEST = (0, 27), (0, 28)


def _check_version(version: str) -> None:
    check_supported(
        version,
        _OLDEST,
        _NEWEST,
        message=(
            f"aioconnlist.httpx supports httpx {SUPPORTED_HTTPX}, not {version}: it sets the "
            "network backend of the httpcore pool httpx builds, whose construction other "
            "versions may change. Install a supported httpx (pip install 'aioconnlist[httpx]'), "
            "or set AIOCONNLIST_HTTPX_ANY_VERSION=1 to try."
        ),
        override="AIOCONNLIST_HTTPX_ANY_VERSION",
    )


_check_version(httpx.__version__)


def _install(pool: object, backend: object) -> None:
    if not hasattr(pool, "_network_backend"):  # guards the one private attribute used
        raise RuntimeError(
            f"aioconnlist.httpx: httpx built a {type(pool).__name__} without the "
            "_network_backend attribute of httpcore 1.0 pools; this httpx/httpcore pair is "
            "not supported"
        )
    pool._network_backend = backend


class HTTPTransport(httpx.HTTPTransport):
    """``httpx.HTTPTransport`` whose connections are made by aioconnlist's race.

    Every ``httpx.HTTPTransport`` argument keeps its meaning; the keyword arguments after them
    are the race options. ``local_address`` (httpx's) binds every attempt and, when given,
    replaces ``local_addresses``; a connect timeout (``httpx.Timeout(connect=...)``) is the
    race's hard deadline, as is ``timeout`` here (the smaller wins).
    """

    def __init__(
        self,
        verify: Any = True,
        cert: Any = None,
        trust_env: bool = True,
        http1: bool = True,
        http2: bool = False,
        limits: httpx.Limits | None = None,
        proxy: Any = None,
        uds: str | None = None,
        local_address: str | None = None,
        retries: int = 0,
        socket_options: Iterable[SocketOption] | None = None,
        **options: Unpack[RaceOptions],
    ) -> None:
        backend = NetworkBackend(**options)
        kwargs: dict[str, Any] = {}
        if limits is not None:  # else httpx's own default
            kwargs["limits"] = limits
        super().__init__(
            verify=verify,
            cert=cert,
            trust_env=trust_env,
            http1=http1,
            http2=http2,
            proxy=proxy,
            uds=uds,
            local_address=local_address,
            retries=retries,
            socket_options=socket_options,
            **kwargs,
        )
        _install(self._pool, backend)
        self.network_backend = backend


class AsyncHTTPTransport(httpx.AsyncHTTPTransport):
    """``httpx.AsyncHTTPTransport`` whose connections are made by aioconnlist's race.

    Runs on asyncio, with or without uvloop (under trio a request raises ``RuntimeError``).
    Every ``httpx.AsyncHTTPTransport`` argument keeps its meaning; the keyword arguments after
    them are ``resolver`` (``async resolve(host, port, family)``; default the system's),
    ``resolution_delay`` and the race options. ``local_address`` (httpx's) binds every
    attempt and, when given, replaces ``local_addresses``; a connect timeout is the race's
    hard deadline, as is ``timeout`` here (the smaller wins).
    """

    def __init__(
        self,
        verify: Any = True,
        cert: Any = None,
        trust_env: bool = True,
        http1: bool = True,
        http2: bool = False,
        limits: httpx.Limits | None = None,
        proxy: Any = None,
        uds: str | None = None,
        local_address: str | None = None,
        retries: int = 0,
        socket_options: Iterable[SocketOption] | None = None,
        *,
        resolver: Resolver | None = None,
        resolution_delay: float = RESOLUTION_DELAY,
        **options: Unpack[RaceOptions],
    ) -> None:
        backend = AsyncNetworkBackend(
            resolver=resolver, resolution_delay=resolution_delay, **options
        )
        kwargs: dict[str, Any] = {}
        if limits is not None:  # else httpx's own default
            kwargs["limits"] = limits
        super().__init__(
            verify=verify,
            cert=cert,
            trust_env=trust_env,
            http1=http1,
            http2=http2,
            proxy=proxy,
            uds=uds,
            local_address=local_address,
            retries=retries,
            socket_options=socket_options,
            **kwargs,
        )
        _install(self._pool, backend)
        self.network_backend = backend
