"""requests whose connections race: `HTTPAdapter` (``pip install 'aioconnlist[requests]'``).

::

    import requests
    from aioconnlist.requests import HTTPAdapter

    session = requests.Session()
    session.mount("http://", HTTPAdapter())
    session.mount("https://", HTTPAdapter())

`HTTPAdapter` is a ``requests.adapters.HTTPAdapter`` (every argument of it: pool sizes,
``max_retries``, ``pool_block``) plus the race options (``local_addresses``,
``attempt_delay``, ``history``, ``on_event``...). Its pools are `aioconnlist.urllib3`'s, so
every connection races; so do connections to an HTTP(S) proxy (``proxy_manager_for``; a SOCKS
proxy is PySocks' own connect, as in stock requests). requests' ``timeout=(connect, read)``
makes the connect part the race's hard deadline, and requests' errors
(``requests.ConnectionError``, ``requests.ConnectTimeout``...) are as with stock requests.
"""

from __future__ import annotations

from typing import Any

try:
    import requests.adapters as _adapters
except ImportError as _missing:  # pragma: no cover - exercised without the extra
    raise ImportError(
        "aioconnlist.requests needs requests: pip install 'aioconnlist[requests]'"
    ) from _missing

from .urllib3 import PoolManager, ProxyManager, proxy_from_url, split_race_options

__all__ = ["HTTPAdapter"]


class HTTPAdapter(_adapters.HTTPAdapter):
    """``requests.adapters.HTTPAdapter`` whose connections (and proxy connections) race."""

    __attrs__ = [*_adapters.HTTPAdapter.__attrs__, "race_options"]  # noqa: RUF012 (pickling)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.race_options = split_race_options(kwargs)
        super().__init__(*args, **kwargs)

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.race_options = state.get("race_options", {})
        super().__setstate__(state)

    def init_poolmanager(
        self, connections: int, maxsize: int, block: bool = False, **pool_kwargs: Any
    ) -> None:
        self._pool_connections = connections
        self._pool_maxsize = maxsize
        self._pool_block = block
        self.poolmanager = PoolManager(
            num_pools=connections,
            maxsize=maxsize,
            block=block,
            **pool_kwargs,
            **self.race_options,
        )

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        if proxy in self.proxy_manager or proxy.lower().startswith("socks"):
            return super().proxy_manager_for(proxy, **proxy_kwargs)
        manager: ProxyManager = proxy_from_url(
            proxy,
            proxy_headers=self.proxy_headers(proxy),
            num_pools=self._pool_connections,
            maxsize=self._pool_maxsize,
            block=self._pool_block,
            **proxy_kwargs,
            **self.race_options,
        )
        self.proxy_manager[proxy] = manager
        return manager
