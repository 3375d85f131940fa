"""aioconnlist: connect to one of many endpoints as fast as the network allows.

It forms every (local source x remote address) pair, ranks the pairs by their chance of
success, races staggered attempts (Happy Eyeballs, RFC 8305) on asyncio, keeps the first
connection and closes the rest.
"""

from .addresses import Endpoint
from .api import connect_by_list, create_connection, open_connection
from .errors import ConnectError, ConnectTimeout, InvalidArgument, NotASocket, OutOfResources
from .events import Attempt, RaceEvent
from .history import DEFAULT_HISTORY, PairHistory
from .pairs import LocalAddress, Pair

__all__ = [
    "DEFAULT_HISTORY",
    "Attempt",
    "ConnectError",
    "ConnectTimeout",
    "Endpoint",
    "InvalidArgument",
    "LocalAddress",
    "NotASocket",
    "OutOfResources",
    "Pair",
    "PairHistory",
    "RaceEvent",
    "connect_by_list",
    "create_connection",
    "open_connection",
]


def __getattr__(name: str) -> object:
    # connect_by_name lives with the resolver; imported lazily to keep start-up small.
    if name == "connect_by_name":
        from .resolve import connect_by_name

        return connect_by_name
    raise AttributeError(f"module 'aioconnlist' has no attribute {name!r}")
