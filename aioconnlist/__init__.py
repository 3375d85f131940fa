"""aioconnlist: connect to one of many endpoints as fast as the network allows.

It forms every (local source x remote address) pair, ranks the pairs by their chance of
success, races staggered attempts (Happy Eyeballs, RFC 8305) on asyncio, keeps the first
connection and closes the rest.

    sock = await aioconnlist.connect_by_list(["[2001:db8::1]:443", "192.0.2.1:443"], timeout=5)
    reader, writer = await aioconnlist.open_connection("example.org", 443, ssl=True)

The blocking facade is `aioconnlist.blocking`, the aiohttp connector `aioconnlist.aiohttp`,
the aiohappyeyeballs drop-in `aioconnlist.compat`; ``aioconnlist --help`` the command line.
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

#: the installed distribution's version (read when first asked for: it costs an import)
__version__: str


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("aioconnlist")
    except PackageNotFoundError:  # a source tree on sys.path that was never installed
        return "0+unknown"


def __getattr__(name: str) -> object:
    if name == "__version__":
        value = globals()["__version__"] = _version()
        return value
    raise AttributeError(f"module 'aioconnlist' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), "__version__"})
