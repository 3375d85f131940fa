"""urllib3 whose connections race: `PoolManager`, `ProxyManager`, `HTTPConnectionPool`,
`HTTPSConnectionPool` (urllib3 2.x; ``pip install 'aioconnlist[urllib3]'``).

Each class is a subclass of urllib3's own and takes every argument of it, plus the race
options (``local_addresses``, ``attempt_delay``, ``min_attempt_delay``, ``interleave``,
``sort``, ``history``, ``on_event``)::

    from aioconnlist.urllib3 import PoolManager

    http = PoolManager(attempt_delay=0.25)
    response = http.request("GET", "https://example.org/")

What changes is only how a connection's socket is made: instead of trying ``getaddrinfo``'s
addresses one after another, each until its own timeout, every address is raced (ranked,
staggered, remembered: a host whose IPv6 is black-holed costs one attempt delay once, then one
round trip). urllib3's ``Timeout(connect=...)`` is the race's hard deadline; retries,
redirects, proxies (the connection to the proxy races), TLS and urllib3's errors
(``NewConnectionError``, ``ConnectTimeoutError``, ``NameResolutionError``, ``MaxRetryError``
around them) are urllib3's own. ``socket_options`` and ``source_address`` keep their meaning
(set on, and bound by, every attempt socket).
"""

from __future__ import annotations

import socket
import sys
from collections.abc import Mapping
from typing import Any

try:
    import urllib3
    from urllib3 import connection as _connection
    from urllib3 import connectionpool as _connectionpool
    from urllib3 import poolmanager as _poolmanager
    from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError
except ImportError as _missing:  # pragma: no cover - exercised without the extra
    raise ImportError(
        "aioconnlist.urllib3 needs urllib3 2.x: pip install 'aioconnlist[urllib3]'"
    ) from _missing

from ._core.options import ConnectOptions, options_from
from .blocking import _urllib3_create_connection

_VERSION: str = getattr(urllib3, "__version__", "")
if not _VERSION.startswith("2."):  # pragma: no cover - another major version
    raise ImportError(
        f"aioconnlist.urllib3 needs urllib3 2.x, not {_VERSION}: pip install 'aioconnlist[urllib3]'"
    )

__all__ = [
    "HTTPConnection",
    "HTTPConnectionPool",
    "HTTPSConnection",
    "HTTPSConnectionPool",
    "PoolManager",
    "ProxyManager",
    "proxy_from_url",
]

#: the race options these classes take (``timeout`` is urllib3's own, the deadline)
OPTION_NAMES: frozenset[str] = ConnectOptions.__optional_keys__
_KEY = "aioconnlist_options"  # how a pool hands the options to its connections


def split_race_options(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Take the race options out of ``kwargs`` (in place) and check them."""
    ours = {name: kwargs.pop(name) for name in list(kwargs) if name in OPTION_NAMES}
    options_from(ours)  # an invalid value raises now, not at the first request
    return ours


class _Racing:
    """The connect of `HTTPConnection` and `HTTPSConnection`: urllib3's ``_new_conn`` with the
    race in place of ``urllib3.util.connection.create_connection``."""

    host: str
    port: int
    timeout: Any
    source_address: tuple[str, int] | None
    socket_options: Any
    _dns_host: str
    race_options: Mapping[str, Any]

    def _new_conn(self) -> socket.socket:
        try:
            sock = _urllib3_create_connection(
                (self._dns_host, self.port),
                self.timeout,
                self.source_address,
                self.socket_options,
                self.race_options,
            )
        except socket.gaierror as e:
            raise NameResolutionError(self.host, self, e) from e  # type: ignore[arg-type]
        except TimeoutError as e:
            raise ConnectTimeoutError(
                self,
                f"Connection to {self.host} timed out. (connect timeout={self.timeout})",
            ) from e
        except OSError as e:
            raise NewConnectionError(
                self,  # type: ignore[arg-type]
                f"Failed to establish a new connection: {e}",
            ) from e
        sys.audit("http.client.connect", self, self.host, self.port)
        return sock


class HTTPConnection(_Racing, _connection.HTTPConnection):
    """urllib3's ``HTTPConnection`` whose connect races; ``aioconnlist_options``: the race
    options (the pools pass them)."""

    def __init__(self, *args: Any, aioconnlist_options: Mapping[str, Any] | None = None,
                 **kwargs: Any) -> None:  # fmt: skip
        self.race_options = dict(aioconnlist_options or {})
        super().__init__(*args, **kwargs)


class HTTPSConnection(_Racing, _connection.HTTPSConnection):
    """urllib3's ``HTTPSConnection`` whose connect races (the TLS handshake is urllib3's)."""

    def __init__(self, *args: Any, aioconnlist_options: Mapping[str, Any] | None = None,
                 **kwargs: Any) -> None:  # fmt: skip
        self.race_options = dict(aioconnlist_options or {})
        super().__init__(*args, **kwargs)


class HTTPConnectionPool(_connectionpool.HTTPConnectionPool):
    """urllib3's ``HTTPConnectionPool`` (every argument of it) plus the race options."""

    ConnectionCls = HTTPConnection

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs[_KEY] = split_race_options(kwargs)
        super().__init__(*args, **kwargs)


class HTTPSConnectionPool(_connectionpool.HTTPSConnectionPool):
    """urllib3's ``HTTPSConnectionPool`` (every argument of it) plus the race options."""

    ConnectionCls = HTTPSConnection

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs[_KEY] = split_race_options(kwargs)
        super().__init__(*args, **kwargs)


_POOLS = {"http": HTTPConnectionPool, "https": HTTPSConnectionPool}


class _RacingPools:
    """Pool managers whose pools race: the race options are taken out of the keyword
    arguments and given to every pool made (not through ``connection_pool_kw``: urllib3's pool
    key has a field per argument it knows only)."""

    race_options: dict[str, Any]
    connection_pool_kw: dict[str, Any]
    pool_classes_by_scheme: dict[str, type[_connectionpool.HTTPConnectionPool]]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.race_options = split_race_options(kwargs)
        super().__init__(*args, **kwargs)
        self.pool_classes_by_scheme = dict(_POOLS)

    def _new_pool(
        self,
        scheme: str,
        host: str,
        port: int,
        request_context: dict[str, Any] | None = None,
    ) -> _connectionpool.HTTPConnectionPool:
        if request_context is None:
            request_context = self.connection_pool_kw.copy()
        new_pool = super()._new_pool  # type: ignore[misc]
        pool: _connectionpool.HTTPConnectionPool = new_pool(
            scheme, host, port, {**request_context, **self.race_options}
        )
        return pool


class PoolManager(_RacingPools, _poolmanager.PoolManager):
    """urllib3's ``PoolManager`` (every argument of it) plus the race options, which every
    pool it makes gets."""


class ProxyManager(_RacingPools, _poolmanager.ProxyManager):
    """urllib3's ``ProxyManager`` (every argument of it) plus the race options: the
    connections to the proxy race."""


def proxy_from_url(url: str, **kwargs: Any) -> ProxyManager:
    """urllib3's ``proxy_from_url``, giving a racing `ProxyManager`."""
    return ProxyManager(proxy_url=url, **kwargs)
