"""aioconnlist: connect to one of many endpoints as fast as the network allows.

It forms every (local source x remote address) pair, ranks the pairs by their chance of
success, races staggered attempts (Happy Eyeballs, RFC 8305) on asyncio, keeps the first
connection and closes the rest.
"""

from typing import TYPE_CHECKING

from .addresses import Endpoint
from .api import connect_by_list, create_connection, open_connection
from .errors import ConnectError, ConnectTimeout, InvalidArgument, NotASocket, OutOfResources
from .events import Attempt, RaceEvent
from .history import DEFAULT_HISTORY, PairHistory
from .pairs import LocalAddress, Pair

__all__ = [
    "DEFAULT_HISTORY",
    "AiodnsResolver",
    "Attempt",
    "ConnectError",
    "ConnectTimeout",
    "Endpoint",
    "InvalidArgument",
    "LocalAddress",
    "NameResolutionError",
    "NotASocket",
    "OutOfResources",
    "Pair",
    "PairHistory",
    "RaceEvent",
    "Resolver",
    "SystemResolver",
    "connect_by_list",
    "connect_by_name",
    "create_connection",
    "open_connection",
]


_LAZY = {
    # the resolver side is imported on first use, to keep start-up small
    "connect_by_name": "resolve",
    "NameResolutionError": "resolve",
    "Resolver": "resolve",
    "SystemResolver": "resolve",
    "AiodnsResolver": "resolve",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'aioconnlist' has no attribute {name!r}")
    from importlib import import_module

    return getattr(import_module(f".{module}", __name__), name)


if TYPE_CHECKING:
    from .resolve import (
        AiodnsResolver,
        NameResolutionError,
        Resolver,
        SystemResolver,
        connect_by_name,
    )
