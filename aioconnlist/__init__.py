"""aioconnlist: connect to one of many endpoints as fast as the network allows."""

from .api import connect_by_list
from .errors import ConnectError, ConnectTimeout, InvalidArgument, NotASocket, OutOfResources
from .history import DEFAULT_HISTORY, PairHistory

__all__ = [
    "DEFAULT_HISTORY",
    "ConnectError",
    "ConnectTimeout",
    "InvalidArgument",
    "NotASocket",
    "OutOfResources",
    "PairHistory",
    "connect_by_list",
]
