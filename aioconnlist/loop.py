"""An asyncio event loop whose ``create_connection`` races: every asyncio library gains it.

asyncpg, redis.asyncio, websockets, aiosmtplib, aio-pika and most other asyncio clients call
``loop.create_connection(factory, host, port)`` (often through ``asyncio.open_connection``),
mostly without ``happy_eyeballs_delay``, so the stock loop tries one address after another,
each until the kernel gives up; uvloop ignores that argument altogether. On these loops such a
call resolves the name (AAAA and A concurrently, racing on the first useful answer, late
answers joining), races the ranked (source x destination) pairs with the process's history,
then gives the winning socket to the loop's own ``create_connection(sock=...)``, so TLS,
``server_hostname``, ``ssl_handshake_timeout`` and the protocol behave as always::

    import asyncio, aioconnlist.loop

    asyncio.run(main(), loop_factory=aioconnlist.loop.new_event_loop)          # 3.12+
    with asyncio.Runner(loop_factory=aioconnlist.loop.new_event_loop) as r:    # 3.11+
        r.run(main())
    loop = aioconnlist.loop.new_event_loop(uvloop=True, timeout=10)            # any version
    asyncio.set_event_loop(loop)
    loop.run_until_complete(main())

    aioconnlist.loop.install()      # on a loop someone else made (the running one)

How asyncio's arguments map (anything else is passed on unchanged):

- ``happy_eyeballs_delay`` is the attempt delay of that call; values below the 10 ms floor
  (asyncio accepts 0) are raised to 10 ms. Omitted (``None``), the loop's ``attempt_delay``.
- ``interleave`` is the First Address Family Count of that call.
- ``family`` (AF_INET / AF_INET6) limits the lookups and so the pairs; ``proto`` and
  ``flags`` (``AI_NUMERICHOST``...) go to every lookup, ``proto`` to every socket.
- ``local_addr=(host, port)`` is resolved with the loop's ``getaddrinfo`` and binds every
  attempt (port 0: the race's own bind, no ephemeral port spent before connect).
- ``all_errors=True`` raises an ``ExceptionGroup`` of every attempt's error, as asyncio's
  does; otherwise a `ConnectError`, an ``OSError`` of the class asyncio would raise.
- ``server_hostname`` defaults to ``host`` when ``ssl`` is set, as in asyncio.
- Calls with ``sock=``, without a host, with a non-numeric port or another family go straight
  to the loop's own implementation.

Names are resolved with the loop's own ``getaddrinfo`` (one call per family), so a loop
whose ``getaddrinfo`` is overridden resolves through the override.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import socket
import sys
import weakref
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, cast

from ._core.addresses import Endpoint
from ._core.errors import ConnectError, ExceptionGroup
from ._core.options import (
    Options,
    RaceOptions,
    make_options,
    options_from,
    peer_attempt_delay,
    takes_options,
)
from ._core.pairs import Pair
from ._drivers.addrinfo import AddrInfo, binding_factory
from ._drivers.by_name import race_by_name
from ._io.resolve import FAMILIES, endpoints, ip_literal, localhost_answer

if TYPE_CHECKING:
    from ._core.options import Unpack

__all__ = ["EventLoopPolicy", "install", "new_event_loop", "uninstall"]

_UVLOOP_MISSING = (
    "aioconnlist.loop.new_event_loop(uvloop=True) needs uvloop: pip install 'aioconnlist[uvloop]'"
)

CreateConnection = Callable[..., Awaitable[Any]]


class _LoopResolver:
    """Resolves with ``loop.getaddrinfo`` (so an overridden one is honoured), one family a call."""

    def __init__(self, loop: asyncio.AbstractEventLoop, proto: int, flags: int) -> None:
        self._loop = loop
        self._proto = proto
        self._flags = flags

    async def resolve(self, host: str, port: int, family: socket.AddressFamily) -> list[Endpoint]:
        local = localhost_answer(host, port, family)  # never sent to DNS (RFC 6761)
        if local is not None:
            return local
        infos = await self._loop.getaddrinfo(
            host, port, family=family, type=socket.SOCK_STREAM, proto=self._proto, flags=self._flags
        )
        return endpoints(info for info in infos if info[0] == family)


def _numeric_port(port: object) -> int | None:
    if isinstance(port, str) and port.isdigit():
        port = int(port)
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        return None
    return port


def _ours_to_race(host: object, port: object, family: int, sock: object) -> bool:
    """Whether a call is one the race serves (a host and port); the rest go to the base."""
    return (
        sock is None
        and isinstance(host, str)
        and bool(host.strip())
        and _numeric_port(port) is not None
        and family in (0, socket.AF_INET, socket.AF_INET6)
    )


async def _create_connection(
    loop: asyncio.AbstractEventLoop,
    base: CreateConnection,
    options: Options,
    protocol_factory: Callable[[], asyncio.BaseProtocol],
    host: Any = None,
    port: Any = None,
    *,
    ssl: Any = None,
    family: int = 0,
    proto: int = 0,
    flags: int = 0,
    sock: Any = None,
    local_addr: Any = None,
    server_hostname: str | None = None,
    ssl_handshake_timeout: float | None = None,
    ssl_shutdown_timeout: float | None = None,
    happy_eyeballs_delay: float | None = None,
    interleave: int | None = None,
    all_errors: bool = False,
) -> tuple[asyncio.Transport, asyncio.BaseProtocol]:
    """``loop.create_connection`` with the race for (host, port) calls; ``base`` for the rest."""
    # forwarded to the base only when given, so that each base sees only what it knows
    given: dict[str, Any] = {
        name: value
        for name, value in (
            ("ssl", ssl),
            ("sock", sock),
            ("local_addr", local_addr),
            ("server_hostname", server_hostname),
            ("ssl_handshake_timeout", ssl_handshake_timeout),
            ("ssl_shutdown_timeout", ssl_shutdown_timeout),
            ("happy_eyeballs_delay", happy_eyeballs_delay),
            ("interleave", interleave),
        )
        if value is not None
    }
    given.update(
        (name, value)
        for name, value in (("family", family), ("proto", proto), ("flags", flags))
        if value != 0
    )
    if all_errors:
        given["all_errors"] = all_errors
    if not _ours_to_race(host, port, family, sock):
        passed: tuple[asyncio.Transport, asyncio.BaseProtocol]
        passed = await base(protocol_factory, host, port, **given)
        return passed

    # the argument errors asyncio raises, before any connection is made
    if server_hostname is not None and not ssl:
        raise ValueError("server_hostname is only meaningful with ssl")
    if ssl_handshake_timeout is not None and not ssl:
        raise ValueError("ssl_handshake_timeout is only meaningful with ssl")
    if ssl_shutdown_timeout is not None and not ssl:
        raise ValueError("ssl_shutdown_timeout is only meaningful with ssl")
    if ssl and server_hostname is None:
        server_hostname = host

    numeric = _numeric_port(port)
    assert numeric is not None
    if happy_eyeballs_delay is not None or interleave is not None:
        options = _per_call(options, happy_eyeballs_delay, interleave)
    families: Sequence[socket.AddressFamily] = (
        FAMILIES if family == 0 else (socket.AddressFamily(family),)
    )
    literal = ip_literal(host)
    wanted_version = 4 if family == socket.AF_INET else 6
    if literal is not None and family != 0 and literal[0].version != wanted_version:
        # the error asyncio's getaddrinfo gives for a literal of the other family
        await loop.getaddrinfo(host, numeric, family=family, type=socket.SOCK_STREAM, flags=flags)

    factory: Callable[[Pair], socket.socket] | None = None
    if proto:
        factory = functools.partial(_proto_socket, proto)
    if local_addr is not None:
        options, factory = await _bind_local(
            loop, options, factory, local_addr, family, proto, flags
        )

    start = loop.time()
    try:
        sock, _pair = await race_by_name(
            host,
            numeric,
            options,
            resolver=_LoopResolver(loop, proto, flags),
            families=families,
            socket_factory=factory,
        )
    except ConnectError as error:
        errors = [a.error for a in error.attempts if a.error is not None]
        if all_errors and errors:
            raise ExceptionGroup("create_connection failed", errors) from None
        raise
    tls: dict[str, Any] = {}
    if ssl:
        tls["ssl"] = ssl
        tls["server_hostname"] = server_hostname
        if ssl_handshake_timeout is None and options.timeout is not None:
            ssl_handshake_timeout = max(0.001, options.timeout - (loop.time() - start))
        if ssl_handshake_timeout is not None:
            tls["ssl_handshake_timeout"] = ssl_handshake_timeout
        if ssl_shutdown_timeout is not None:
            tls["ssl_shutdown_timeout"] = ssl_shutdown_timeout
    try:
        made: tuple[asyncio.Transport, asyncio.BaseProtocol]
        made = await base(protocol_factory, sock=sock, **tls)
    except BaseException:
        sock.close()  # a no-op when the transport already owns and closed it
        raise
    return made


def _per_call(options: Options, happy_eyeballs_delay: Any, interleave: Any) -> Options:
    """The loop's options with asyncio's per-call ``happy_eyeballs_delay`` and ``interleave``."""
    changes: dict[str, Any] = {}
    if happy_eyeballs_delay is not None:
        changes["attempt_delay"] = peer_attempt_delay(happy_eyeballs_delay)
    if interleave is not None:
        changes["interleave"] = interleave
    checked = make_options(**changes)  # validates them
    return options.replace(**{k: getattr(checked, k) for k in changes})


def _proto_socket(proto: int, pair: Pair) -> socket.socket:
    return socket.socket(pair.destination.family, socket.SOCK_STREAM, proto)


async def _bind_local(
    loop: asyncio.AbstractEventLoop,
    options: Options,
    factory: Callable[[Pair], socket.socket] | None,
    local_addr: Any,
    family: int,
    proto: int,
    flags: int,
) -> tuple[Options, Callable[[Pair], socket.socket] | None]:
    """``local_addr`` as asyncio resolves it; port 0 becomes the race's own bind."""
    if not isinstance(local_addr, tuple) or len(local_addr) < 2:
        raise ValueError(f"local_addr must be a (host, port) tuple, not {local_addr!r}")
    infos: list[AddrInfo] = list(
        await loop.getaddrinfo(
            local_addr[0],
            local_addr[1],
            family=family,
            type=socket.SOCK_STREAM,
            proto=proto,
            flags=flags,
        )
    )
    infos = [i for i in infos if i[0] in (socket.AF_INET, socket.AF_INET6)]
    if not infos:
        raise OSError("getaddrinfo() returned empty list")
    if any(info[4][1] for info in infos):  # a fixed local port: bound in the factory
        plain = factory or _plain_socket
        return options.replace(local_addresses=None), binding_factory(infos, plain)
    sources = make_options(local_addresses=[(*info[4][:1], 0, *info[4][2:]) for info in infos])
    return options.replace(local_addresses=sources.local_addresses), factory


def _plain_socket(pair: Pair) -> socket.socket:
    return socket.socket(pair.destination.family, socket.SOCK_STREAM)


# ------------------------------------------------------------------ the loops

if sys.platform == "win32":
    _StockLoop = asyncio.ProactorEventLoop
else:
    _StockLoop = asyncio.SelectorEventLoop


class _Racing:
    """What makes a loop race: ``create_connection(host=..., port=...)`` goes through
    `_create_connection`; the loop's own method is the base for everything else."""

    def __init__(self, options: Options) -> None:
        super().__init__()
        self._aioconnlist_options = options

    async def create_connection(
        self,
        protocol_factory: Callable[[], asyncio.BaseProtocol],
        host: Any = None,
        port: Any = None,
        **kwargs: Any,
    ) -> tuple[asyncio.Transport, asyncio.BaseProtocol]:
        loop = cast(asyncio.AbstractEventLoop, self)
        base = super().create_connection  # type: ignore[misc]
        return await _create_connection(
            loop, base, self._aioconnlist_options, protocol_factory, host, port, **kwargs
        )


class _RacingLoop(_Racing, _StockLoop):  # type: ignore[misc]
    """asyncio's default event loop, but ``create_connection(host=..., port=...)`` races."""


_RacingLoop.__qualname__ = _RacingLoop.__name__ = "RacingEventLoop"


@functools.cache
def _racing_uvloop() -> Callable[[Options], asyncio.AbstractEventLoop]:
    """uvloop's loop with the racing ``create_connection`` (uvloop imported on first use)."""
    try:
        import uvloop
    except ImportError:
        raise ImportError(_UVLOOP_MISSING) from None

    class _RacingUVLoop(_Racing, uvloop.Loop):  # type: ignore[misc]
        """uvloop's event loop, but ``create_connection(host=..., port=...)`` races."""

    _RacingUVLoop.__qualname__ = _RacingUVLoop.__name__ = "RacingUVLoop"
    return _RacingUVLoop


@takes_options()
def new_event_loop(
    *, uvloop: bool = False, **options: Unpack[RaceOptions]
) -> asyncio.AbstractEventLoop:
    """A new event loop whose ``create_connection(factory, host, port)`` races.

    ``uvloop=True``: uvloop's loop (``pip install 'aioconnlist[uvloop]'``), else asyncio's
    default. ``options`` (``timeout``, ``attempt_delay``, ``local_addresses``, ``history``,
    ``on_event``, ...) apply to every connection made on the loop; ``timeout`` is a hard
    deadline for resolving and connecting (and bounds the TLS handshake unless
    ``ssl_handshake_timeout`` is given). As a ``loop_factory``:
    ``asyncio.run(main(), loop_factory=aioconnlist.loop.new_event_loop)``, or with options
    ``functools.partial(aioconnlist.loop.new_event_loop, uvloop=True, timeout=10)``.
    """
    opts = options_from(options)
    if uvloop:
        return _racing_uvloop()(opts)
    return _RacingLoop(opts)


# ------------------------------------------------------------------ install on a running loop


@dataclasses.dataclass
class _Installed:
    function: Callable[..., Any]
    previous: Any  # the instance attribute that was there, or _MISSING
    options: Options


_MISSING: Any = object()
_INSTALLED: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Installed] = (
    weakref.WeakKeyDictionary()
)


def _target_loop(loop: asyncio.AbstractEventLoop | None, what: str) -> asyncio.AbstractEventLoop:
    if loop is not None:
        return loop
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        raise RuntimeError(
            f"aioconnlist.loop.{what}() without a loop must be called while the loop runs "
            f"(from a coroutine or callback); otherwise pass loop=..."
        ) from None


@takes_options()
def install(loop: asyncio.AbstractEventLoop | None = None, **options: Unpack[RaceOptions]) -> None:
    """Make ``loop.create_connection(factory, host, port)`` race on an existing loop.

    For frameworks that make their own loop (uvicorn, pytest-asyncio, Jupyter): ``loop``
    defaults to the running one. Only that loop instance changes (its ``create_connection``
    attribute); installing again replaces the options; `uninstall` restores exactly what was
    there. Works on asyncio's loops and on uvloop's; a loop whose methods cannot be replaced
    raises ``TypeError``: make it with `new_event_loop` instead.
    """
    target = _target_loop(loop, "install")
    opts = options_from(options)
    installed = _INSTALLED.get(target)
    current = getattr(target, "__dict__", {}).get("create_connection", _MISSING)
    if installed is not None and current is installed.function:
        installed.options = opts
        return
    ref = weakref.ref(target)
    unbound = type(target).create_connection
    previous = current

    async def create_connection(
        protocol_factory: Callable[[], asyncio.BaseProtocol],
        host: Any = None,
        port: Any = None,
        **kwargs: Any,
    ) -> tuple[asyncio.Transport, asyncio.BaseProtocol]:
        owner = ref()
        if owner is None:  # pragma: no cover - a method of a loop that is gone
            raise RuntimeError("the event loop was garbage-collected")
        base = previous if previous is not _MISSING else unbound.__get__(owner)
        return await _create_connection(
            owner, base, state.options, protocol_factory, host, port, **kwargs
        )

    state = _Installed(create_connection, previous, opts)
    try:
        target.create_connection = create_connection  # type: ignore[method-assign, assignment]
    except (AttributeError, TypeError):
        raise TypeError(
            f"cannot replace create_connection on a {type(target).__qualname__} instance; "
            "make the loop with aioconnlist.loop.new_event_loop() (uvloop=True for uvloop) "
            "instead, e.g. asyncio.run(main(), loop_factory=aioconnlist.loop.new_event_loop)"
        ) from None
    _INSTALLED[target] = state


def uninstall(loop: asyncio.AbstractEventLoop | None = None) -> None:
    """Undo `install` on ``loop`` (default: the running loop); a no-op when not installed.

    Raises ``RuntimeError`` when something else replaced ``create_connection`` after
    `install` (restoring would drop that replacement).
    """
    target = _target_loop(loop, "uninstall")
    installed = _INSTALLED.get(target)
    if installed is None:
        return
    if getattr(target, "__dict__", {}).get("create_connection") is not installed.function:
        raise RuntimeError(
            "loop.create_connection was replaced after aioconnlist.loop.install(); "
            "undo that replacement first"
        )
    del _INSTALLED[target]
    if installed.previous is _MISSING:
        del target.create_connection
    else:
        target.create_connection = installed.previous  # type: ignore[method-assign]


# ------------------------------------------------------------------ an event loop policy

if TYPE_CHECKING:

    class EventLoopPolicy(asyncio.DefaultEventLoopPolicy):
        """An event loop policy whose loops race (for Python 3.10 and ``asyncio.run``)."""

        def __init__(self, *, uvloop: bool = False, **options: Unpack[RaceOptions]) -> None: ...


@functools.cache
def _policy_class() -> type[asyncio.AbstractEventLoopPolicy]:
    class EventLoopPolicy(asyncio.DefaultEventLoopPolicy):
        """An event loop policy whose new loops are `new_event_loop`'s (with these options).

        For Python 3.10, where ``asyncio.run`` takes no ``loop_factory``:
        ``asyncio.set_event_loop_policy(aioconnlist.loop.EventLoopPolicy())`` then
        ``asyncio.run(main())``. (Policies are deprecated from Python 3.14 on: use
        ``loop_factory`` there.)
        """

        @takes_options()
        def __init__(self, *, uvloop: bool = False, **options: Any) -> None:
            super().__init__()
            if uvloop:
                _racing_uvloop()  # the ImportError now, not at the first loop
            self._uvloop = uvloop
            self._options = options_from(options)

        def new_event_loop(self) -> asyncio.AbstractEventLoop:
            """A new loop whose ``create_connection`` races, with the policy's options."""
            if self._uvloop:
                return _racing_uvloop()(self._options)
            return _RacingLoop(self._options)

    EventLoopPolicy.__module__ = __name__
    return EventLoopPolicy


def __getattr__(name: str) -> Any:
    # the policy class is made on first use: asyncio's policy classes warn from 3.14 on
    if name == "EventLoopPolicy":
        return _policy_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), "EventLoopPolicy"})
