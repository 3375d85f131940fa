"""aioconnlist: connect to one of many endpoints as fast as the network allows.

It forms every (local source x remote address) pair, ranks the pairs by their chance of
success, races staggered attempts (Happy Eyeballs, RFC 8305) on asyncio, keeps the first
connection and closes the rest.
"""

from ._core.addresses import Endpoint
from ._core.errors import (
    ConnectError,
    ConnectTimeout,
    InvalidArgument,
    NameResolutionError,
    NotASocket,
    OutOfResources,
)
from ._core.events import Attempt, RaceEvent
from ._core.history import DEFAULT_HISTORY, PairHistory
from ._core.pairs import LocalAddress, Pair
from ._io.resolve import AiodnsResolver, Resolver, SystemResolver
from .api import connect_by_list, connect_by_name, create_connection, open_connection

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
