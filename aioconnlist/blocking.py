"""The blocking facade: the ``WSAConnectByList`` contract for synchronous code (SPEC §3).

``connect_by_list(sock, addresses, timeout=None, reserved=None, **options) -> (local, remote)``
connects the caller's own, still unconnected socket to one of ``addresses``;
``create_connection(addresses, timeout=None, **options) -> socket.socket`` is the
`socket.create_connection` look-alike. Both run the race the async API runs (see "How the
race is run") and block until it ends, whatever the socket's blocking mode.

How the caller's socket ends up connected (POSIX)
    The race connects sockets of its own: attempts run concurrently, and a failed connect
    changes a socket for good (Linux leaves it bound to its ephemeral port, BSD and macOS
    unusable), so even the first attempt cannot be made on the caller's socket if that must
    stay unchanged on error. Each attempt socket mirrors the caller's family,
    type and protocol, and gets, *before* it is bound or connects, every option of the table
    `COPIED_OPTIONS` whose value on the caller's socket differs from a fresh socket's default
    (only the differences are copied: setting ``SO_RCVBUF`` at all would switch off Linux's
    receive-buffer autotuning, so an option the caller left alone is left alone). Linux reports
    ``SO_RCVBUF``/``SO_SNDBUF`` doubled, so half of the reported value is set, which reads back
    identical. The winner's descriptor is then ``os.dup2``-ed onto the caller's descriptor
    number (keeping its inheritable flag), the winner object is closed, and the caller's
    timeout/blocking mode is re-applied with ``sock.settimeout``. The caller keeps the same
    ``socket.socket`` object and the same fd number. An option outside `COPIED_OPTIONS` set on
    the caller's socket is lost, and so is ``SO_RCVBUF`` set to exactly half its default (the
    value reads the same, only the autotuning lock is gone). ``TCP_FASTOPEN_CONNECT`` is
    deliberately not copied: it makes every connect "succeed" before the handshake, which
    defeats a race. ``SO_RCVBUFFORCE`` values above ``net.core.rmem_max`` come back capped.

Families
    An AF_INET socket skips IPv6 destinations; an AF_INET6 socket with ``IPV6_V6ONLY`` off
    reaches IPv4 destinations as v4-mapped addresses (attempts connect to, and bind explicit
    IPv4 sources as, ``::ffff:a.b.c.d``), with it on it skips IPv4 destinations. An explicit
    ``local_addresses`` list is filtered the same way. When nothing usable is left,
    `InvalidArgument` (EINVAL) is raised before anything is opened.

How the race is run
    Exactly the async API's race: the same plan (sources, RFC 6724 and history ranking), the
    same sans-I/O `aioconnlist.race.Race` (stagger, hard deadline, history, ``on_event``, the
    error a lost race reports), the same attempt sockets (`aioconnlist.driver`'s bind with
    ``IP_BIND_ADDRESS_NO_PORT``). What differs is only how the waiting is done: instead of an
    asyncio loop, a poll(2) loop on the calling thread waits for the attempts to finish and
    for the next start time or the deadline. Why (``benchmarks/bench_blocking.py``, loopback,
    per call, ratio to ``socket.create_connection``): ``asyncio.run`` per call costs ~6.8x;
    the asyncio driver on a persistent per-thread loop (this module's first version) still
    cost ~2.6x for ``create_connection`` and ~3.7x for ``connect_by_list`` (asyncio's
    futures, handles and tasks around one connect cost about as much as the connect); a
    shared background loop thread adds two thread switches per call; uvloop was no faster.
    This loop: ~1.7x and ~2.9x. It also needs no event loop, thread or descriptor of its own,
    so it works the same from any thread, from inside a running event loop (which it blocks
    for the duration, as any blocking call does), from an ``on_event`` callback of another
    race, and in a forked child; ``on_event`` is called on the calling thread.

Interruption
    A ``KeyboardInterrupt`` (or ``SystemExit``; an ``on_event`` callback's ordinary exceptions
    are logged and ignored by the race) ends the race: every attempt socket is closed, the
    running attempts are recorded as cancelled (no evidence against their pairs), and the
    exception propagates.

Errors (SPEC §3): all are `ConnectError` (an ``OSError``). The arguments are checked before
anything is opened, in this order: ``reserved``, ``sock``, the options, the addresses, their
families. On every error the caller's socket is left exactly as it was (it is only read, never
written) and no socket of the race stays open. An unknown option name is a ``TypeError``, as
for any Python call and as in the async API.

============================================  ========================================
cause                                         raised
============================================  ========================================
``reserved`` is not None; empty list; port    `InvalidArgument`: errno EINVAL, also a
0 or > 65535; a host name; ``sock`` bound,    ``ValueError``
connected, listening, not SOCK_STREAM or not
AF_INET/AF_INET6 (or TLS-wrapped); negative
or NaN timeout; an invalid option value; no
usable address for ``sock``'s family
``sock`` is None, not a ``socket.socket``,    `NotASocket`: errno ENOTSOCK, also a
closed, or its fd is not a socket (any more)  ``TypeError``
the deadline passed                           `ConnectTimeout`: errno ETIMEDOUT, also a
                                              ``TimeoutError``
every pair failed                             `ConnectError` with the last attempt's errno
no memory / no descriptors (EMFILE, ENFILE,   `OutOfResources`: errno ENOBUFS, the
ENOBUFS, ENOMEM)                              original error as ``__cause__``
============================================  ========================================

Windows and macOS
    macOS (and the BSDs): as on Linux; ``dup2`` works on sockets; ``SO_RCVBUF`` is not doubled
    there, so it is copied as read; the keepalive idle time is ``TCP_KEEPALIVE``;
    ``IP_BIND_ADDRESS_NO_PORT`` does not exist (the driver's concern). Windows: a SOCKET is
    not a C-runtime descriptor and cannot be ``dup2``-ed onto, so `connect_by_list` raises
    ``NotImplementedError`` there (the native ``WSAConnectByList`` in ws2_32 is the tool for
    that contract); `create_connection` needs no descriptor swap and works everywhere.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import os
import select
import socket
import struct
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any

from .addresses import Endpoint, parse_addresses
from .driver import (
    SocketFactory,
    default_socket_factory,
    new_race,
    no_usable_pair,
    open_attempt_socket,
    plan_race,
)
from .errors import (
    RESOURCE_ERRNOS,
    ConnectError,
    InvalidArgument,
    NotASocket,
    OutOfResources,
)
from .events import Attempt
from .options import Options, options_from
from .pairs import Pair
from .race import Race
from .sources import invalidate

__all__ = ["COPIED_OPTIONS", "connect_by_list", "create_connection"]

Address = tuple[Any, ...]

_LINUX = sys.platform.startswith("linux")


# poll(2) where it exists: no descriptor of its own, no limit on descriptor numbers (select's
# FD_SETSIZE). Windows has select only, which reports failed connects as exceptional; the
# stdlib's SelectSelector folds those into "writable" there, so SO_ERROR still tells.
class _Writable:
    """Waits until attempt sockets are writable (connected, or failed): poll(2) where it exists
    (no descriptor and no set-up of its own), select(2) elsewhere (Windows, which reports a
    failed connect as an exceptional condition)."""

    def __init__(self) -> None:
        self._fds: set[int] = set()
        self._poll = select.poll() if hasattr(select, "poll") else None

    def add(self, fd: int) -> None:
        self._fds.add(fd)
        if self._poll is not None:
            self._poll.register(fd, select.POLLOUT)

    def remove(self, fd: int) -> None:
        self._fds.discard(fd)
        if self._poll is not None:
            self._poll.unregister(fd)

    def wait(self, timeout: float | None) -> list[int]:
        """The ready descriptors; ``timeout`` in seconds (``None``: until one is ready)."""
        if self._poll is not None:
            return [fd for fd, _ in self._poll.poll(None if timeout is None else timeout * 1e3)]
        fds = list(self._fds)
        _, writable, failed = select.select([], fds, fds, timeout)
        return list({*writable, *failed})


# --------------------------------------------------------------------------- socket options

#: The options an attempt socket takes over from the caller's socket, where the platform has
#: them: (name, level, byte size or 0 for an int option). A few the issue does not require are
#: here because they decide where or how the connection goes (device, mark, congestion control,
#: MSS, SYN retries, user timeout). Left out on purpose: receive/send timeouts and low-water
#: marks, SO_REUSEADDR/SO_REUSEPORT (the race binds port 0), TCP_FASTOPEN_CONNECT (see above).
_OPTION_TABLE: tuple[tuple[str, str, int], ...] = (
    ("SO_KEEPALIVE", "SOL_SOCKET", 0),
    ("SO_RCVBUF", "SOL_SOCKET", 0),
    ("SO_SNDBUF", "SOL_SOCKET", 0),
    ("SO_LINGER", "SOL_SOCKET", struct.calcsize("ii")),
    ("SO_MARK", "SOL_SOCKET", 0),
    ("SO_BINDTODEVICE", "SOL_SOCKET", 16),  # IFNAMSIZ
    ("TCP_NODELAY", "IPPROTO_TCP", 0),
    ("TCP_KEEPIDLE", "IPPROTO_TCP", 0),
    ("TCP_KEEPALIVE", "IPPROTO_TCP", 0),  # macOS name of the keepalive idle time
    ("TCP_KEEPINTVL", "IPPROTO_TCP", 0),
    ("TCP_KEEPCNT", "IPPROTO_TCP", 0),
    ("TCP_USER_TIMEOUT", "IPPROTO_TCP", 0),
    ("TCP_MAXSEG", "IPPROTO_TCP", 0),
    ("TCP_SYNCNT", "IPPROTO_TCP", 0),
    ("TCP_NOTSENT_LOWAT", "IPPROTO_TCP", 0),
    ("TCP_CONGESTION", "IPPROTO_TCP", 16),  # TCP_CA_NAME_MAX
    ("IP_TOS", "IPPROTO_IP", 0),  # also marks the v4-mapped traffic of an AF_INET6 socket
    ("IP_TTL", "IPPROTO_IP", 0),
    ("IPV6_V6ONLY", "IPPROTO_IPV6", 0),
    ("IPV6_TCLASS", "IPPROTO_IPV6", 0),
    ("IPV6_UNICAST_HOPS", "IPPROTO_IPV6", 0),
    ("SO_PRIORITY", "SOL_SOCKET", 0),  # after IP_TOS, which resets it on Linux
)
#: (level, option, size) of every option of the table this platform has
_OPTIONS: tuple[tuple[int, int, int], ...] = tuple(
    (getattr(socket, level), getattr(socket, name), size)
    for name, level, size in _OPTION_TABLE
    if hasattr(socket, name) and hasattr(socket, level)
)
#: the names of the options copied to attempt sockets on this platform
COPIED_OPTIONS: tuple[str, ...] = tuple(
    name for name, level, _ in _OPTION_TABLE if hasattr(socket, name) and hasattr(socket, level)
)
_DOUBLED_ON_GET = (
    ((socket.SOL_SOCKET, socket.SO_RCVBUF), (socket.SOL_SOCKET, socket.SO_SNDBUF)) if _LINUX else ()
)
_SO_ACCEPTCONN: int | None = getattr(socket, "SO_ACCEPTCONN", None)
_UNSPECIFIED = ("0.0.0.0", "::")
_BOTH_FAMILIES = (socket.AF_INET, socket.AF_INET6)

OptionValue = int | bytes


@dataclasses.dataclass(frozen=True, slots=True)
class _Defaults:
    """The options a socket of one (family, type, proto) supports, with a fresh one's values."""

    options: tuple[tuple[int, int, int], ...]
    values: tuple[OptionValue, ...]


#: (family, type, proto) -> _Defaults, learned once from a fresh socket
_defaults: dict[tuple[int, int, int], _Defaults] = {}


def _read(sock: socket.socket, level: int, option: int, size: int) -> OptionValue:
    return sock.getsockopt(level, option, size) if size else sock.getsockopt(level, option)


def _learn_defaults(family: int, kind: int, proto: int) -> _Defaults:
    options, values = [], []
    with socket.socket(family, kind, proto) as fresh:
        for spec in _OPTIONS:
            try:
                values.append(_read(fresh, *spec))
            except OSError:
                continue  # not for this family/protocol/kernel: nothing to copy
            options.append(spec)
    found = _defaults[family, kind, proto] = _Defaults(tuple(options), tuple(values))
    return found


def _options_to_copy(
    sock: socket.socket, defaults: _Defaults
) -> tuple[tuple[int, int, OptionValue], ...]:
    """(level, option, value) to set on an attempt socket so it reads back like ``sock``."""
    to_copy = []
    getsockopt = sock.getsockopt
    for (level, option, size), default in zip(defaults.options, defaults.values, strict=True):
        value = getsockopt(level, option, size) if size else getsockopt(level, option)
        if value != default:
            if (level, option) in _DOUBLED_ON_GET:
                value = int(value) // 2  # Linux doubles what is set (bookkeeping): set half
            to_copy.append((level, option, value))
    return tuple(to_copy)


@dataclasses.dataclass(frozen=True, slots=True)
class _CallerSocket:
    """What the attempt sockets must mirror, read (never written) from the caller's socket."""

    fd: int
    family: int
    kind: int
    proto: int
    v6only: bool
    timeout: float | None
    inheritable: bool
    to_copy: tuple[tuple[int, int, OptionValue], ...]  # (level, option, value) for setsockopt

    def make_attempt_socket(self, _pair: Pair) -> socket.socket:
        attempt = socket.socket(self.family, self.kind, self.proto)
        try:
            for level, option, value in self.to_copy:
                attempt.setsockopt(level, option, value)
        except BaseException:
            attempt.close()
            raise
        return attempt


def _inspect(sock: object) -> _CallerSocket:
    """Check ``sock`` is an unbound, unconnected TCP socket; read what attempts must mirror."""
    if not isinstance(sock, socket.socket):
        raise NotASocket(f"sock must be a socket.socket, not {type(sock).__name__} {sock!r}")
    fd = sock.fileno()
    if fd < 0:
        raise NotASocket("sock is closed")
    try:
        kind = sock.getsockopt(socket.SOL_SOCKET, socket.SO_TYPE)
    except OSError as exc:
        if exc.errno in (errno.ENOTSOCK, errno.EBADF):
            raise NotASocket(f"sock (fd {fd}) is not an open socket: {exc.strerror}") from exc
        raise
    family = sock.family
    if family not in _BOTH_FAMILIES:
        raise InvalidArgument(f"sock must be an AF_INET or AF_INET6 socket, not family {family}")
    if kind != socket.SOCK_STREAM:
        raise InvalidArgument(f"sock must be a SOCK_STREAM (TCP) socket, not type {kind}")
    ssl = sys.modules.get("ssl")
    if ssl is not None and isinstance(sock, ssl.SSLSocket):
        raise InvalidArgument("sock is TLS-wrapped; connect a plain socket, then wrap it")
    local = sock.getsockname()
    if local[1] != 0 or local[0] not in _UNSPECIFIED:
        # Listening and connected sockets are bound too: say which it is.
        if _SO_ACCEPTCONN is not None and sock.getsockopt(socket.SOL_SOCKET, _SO_ACCEPTCONN):
            raise InvalidArgument(f"sock is listening on {local}")
        try:
            peer = sock.getpeername()
        except OSError:
            raise InvalidArgument(f"sock is already bound (or connecting) to {local}") from None
        raise InvalidArgument(f"sock is already connected to {peer}")
    proto = sock.proto
    v6only = family == socket.AF_INET6 and bool(
        sock.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY)
    )
    defaults = _defaults.get((family, kind, proto)) or _learn_defaults(family, kind, proto)
    return _CallerSocket(
        fd,
        family,
        kind,
        proto,
        v6only,
        sock.gettimeout(),
        sock.get_inheritable(),
        _options_to_copy(sock, defaults),
    )


# --------------------------------------------------------------------------- arguments


def _make_options(timeout: object, options: dict[str, Any]) -> Options:
    # An unknown option name is a TypeError, as for any Python call (and as in the async API).
    return options_from({"timeout": timeout, **options})


def _usable_by(family: int, v6only: bool, version: int) -> bool:
    if family == socket.AF_INET:
        return version == 4
    return version == 6 or not v6only


def _restrict_to_family(
    destinations: list[Endpoint], options: Options, family: int, v6only: bool
) -> tuple[list[Endpoint], Options]:
    kind = "AF_INET" if family == socket.AF_INET else "AF_INET6"
    if family == socket.AF_INET6:
        kind += " (IPV6_V6ONLY on)" if v6only else " (dual-stack)"
    usable = [d for d in destinations if _usable_by(family, v6only, d.ip.version)]
    if not usable:
        listed = ", ".join(str(d) for d in destinations)
        raise InvalidArgument(f"no address usable by an {kind} socket among {listed}")
    local = options.local_addresses
    if isinstance(local, tuple):
        sources = tuple(s for s in local if _usable_by(family, v6only, s.ip.version))
        if not sources:
            listed = ", ".join(str(s) for s in local)
            raise InvalidArgument(f"no local address usable by an {kind} socket among {listed}")
        if len(sources) != len(local):
            options = dataclasses.replace(options, local_addresses=sources)
    return usable, options


def _as_connect_error(exc: OSError) -> ConnectError:
    """A bare OSError from outside the race (e.g. no descriptor for a probe socket), as the
    error family: ENOBUFS for a shortage of memory or descriptors, its own errno otherwise."""
    if exc.errno in RESOURCE_ERRNOS:
        return OutOfResources(f"out of resources: {exc}")
    return ConnectError(exc.errno or errno.EIO, str(exc))


# --------------------------------------------------------------------------- the race


def _waiting(code: int) -> bool:
    return code in (errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EALREADY, errno.EINTR)


def _start(
    attempt: Attempt, factory: SocketFactory, state: Race, now: float
) -> socket.socket | None:
    """Open ``attempt``'s socket and start connecting: the socket if it is in flight (or
    connected already), None if the attempt failed at once (then it is recorded and closed)."""
    try:
        sock = open_attempt_socket(factory, attempt.pair)
    except OSError as exc:
        state.failed(attempt, exc, now)
        return None
    try:
        address = attempt.pair.destination.sockaddr(sock.family)
        code = sock.connect_ex(address)
    except BaseException as exc:
        sock.close()
        if not isinstance(exc, OSError):
            raise
        state.failed(attempt, exc, time.monotonic())
        return None
    if code == 0 or _waiting(code):
        return sock
    sock.close()
    error = OSError(code, f"{os.strerror(code)} connecting to {address}")
    state.failed(attempt, error, time.monotonic())
    return None


def _race(
    destinations: list[Endpoint], options: Options, factory: SocketFactory
) -> tuple[socket.socket, Pair]:
    """`aioconnlist.driver.race`'s race, driven on the calling thread by poll(2).

    The same plan (`plan_race`: sources, RFC 6724 and history ranking), the same sans-I/O
    `Race` (stagger, deadline, history, events, the error of a lost race) and the same attempt
    sockets (`open_attempt_socket`: bind, IP_BIND_ADDRESS_NO_PORT); only the waiting is done
    with poll(2) instead of asyncio. Every socket but the winner's is closed on every exit.
    """
    clock = time.monotonic  # the event loop's clock too: history keeps one time scale
    start = clock()
    pairs = plan_race(destinations, options, start)
    if not pairs:
        raise no_usable_pair(destinations)
    state = new_race(pairs, options, start)
    waiter = _Writable()
    running: dict[int, tuple[Attempt, socket.socket]] = {}
    winner: socket.socket | None = None
    try:
        while True:
            now = clock()
            if state.deadline is not None and now >= state.deadline:
                state.time_out(now)
                break
            while (attempt := state.start_due(now)) is not None:
                sock = _start(attempt, factory, state, now)
                if sock is not None:
                    running[sock.fileno()] = (attempt, sock)
                    waiter.add(sock.fileno())
            if state.finished or (not running and state.wake_at() is None):
                break
            wake = state.wake_at()
            ready = waiter.wait(None if wake is None else max(0.0, wake - clock()))
            now = clock()
            for fd in ready:
                # (each socket stays in `running` until it is the winner or closed, so an
                # interruption anywhere in here still finds it in the finally block)
                attempt, sock = running[fd]
                waiter.remove(fd)
                code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if code == 0 and state.connected(attempt, now):
                    winner = sock
                    del running[fd]
                    continue
                sock.close()  # failed, or connected in the same tick as the winner
                del running[fd]
                if code != 0:
                    address = attempt.pair.destination.sockaddr(sock.family)
                    error = OSError(code, f"{os.strerror(code)} connecting to {address}")
                    state.failed(attempt, error, now)
            if winner is not None:
                break
    except BaseException:
        state.cancel(clock())  # interrupted (e.g. KeyboardInterrupt): no evidence on pairs
        if winner is not None:
            winner.close()
        raise
    finally:
        for _attempt, sock in running.values():
            sock.close()
    if winner is not None and state.winner is not None:
        return winner, state.winner.pair
    invalidate()  # as the driver does: the network may have changed, re-learn sources
    raise state.error()


# --------------------------------------------------------------------------- the facade


@contextlib.contextmanager
def _as_connect_errors() -> Iterator[None]:
    """Report a bare OSError (e.g. no descriptor for a probe socket) as the error family."""
    try:
        yield
    except ConnectError:
        raise
    except OSError as exc:
        raise _as_connect_error(exc) from exc


def _run_race(
    destinations: list[Endpoint], options: Options, factory: SocketFactory
) -> tuple[socket.socket, Pair]:
    with _as_connect_errors():
        return _race(destinations, options, factory)


def connect_by_list(
    sock: socket.socket,
    addresses: Iterable[object],
    timeout: float | None = None,
    reserved: object = None,
    **options: Any,
) -> tuple[Address, Address]:
    """Connect the caller's unbound, unconnected TCP ``sock`` to one of ``addresses``.

    Races every (source x destination) pair usable by ``sock``'s family like
    `aioconnlist.connect_by_list` and blocks until one connects, every one failed or
    ``timeout`` seconds (a hard deadline; ``None``: no deadline) passed. On success ``sock``
    itself (same object, same fd number, same blocking mode/timeout, same options) is the
    connected socket and ``(sock.getsockname(), sock.getpeername())`` is returned. On error a
    `ConnectError` is raised (see the module docstring for the table) and ``sock`` is unchanged.
    ``**options`` are the race options of SPEC §1 (``local_addresses``, ``attempt_delay``...).
    """
    if os.name != "posix":  # pragma: no cover - exercised on Windows only
        raise NotImplementedError(
            "aioconnlist.blocking.connect_by_list needs os.dup2 on sockets (POSIX); on Windows "
            "use aioconnlist.blocking.create_connection or the native WSAConnectByList"
        )
    if reserved is not None:
        raise InvalidArgument(f"reserved must be None, got {reserved!r}")
    with _as_connect_errors():
        caller = _inspect(sock)
    race_options = _make_options(timeout, options)
    destinations, race_options = _restrict_to_family(
        parse_addresses(addresses), race_options, caller.family, caller.v6only
    )
    winner, pair = _run_race(destinations, race_options, caller.make_attempt_socket)
    with winner:
        try:
            local = winner.getsockname()
            try:
                remote = winner.getpeername()
            except OSError:  # reset already; it did connect, report whom
                remote = pair.destination.sockaddr(caller.family)
            if sock.fileno() != caller.fd:
                raise NotASocket("sock was closed while connecting")
            os.dup2(winner.fileno(), caller.fd, inheritable=caller.inheritable)
        except OSError as exc:
            if isinstance(exc, ConnectError):
                raise
            raise NotASocket(f"sock (fd {caller.fd}) could not take the connection: {exc}") from exc
    # The descriptor now refers to the winner's (non-blocking) file description: re-apply
    # the caller's mode, which also sets or clears O_NONBLOCK on it.
    sock.settimeout(caller.timeout)
    return local, remote


def create_connection(
    addresses: Iterable[object], timeout: float | None = None, **options: Any
) -> socket.socket:
    """Like `socket.create_connection`, over the race: a connected socket to one of ``addresses``.

    ``timeout`` is both the race's hard deadline and the returned socket's timeout (``None``:
    no deadline, a blocking socket), as in `socket.create_connection`. The socket's family is
    the winning destination's. Errors as for `connect_by_list`.
    """
    race_options = _make_options(timeout, options)
    winner, _pair = _run_race(parse_addresses(addresses), race_options, default_socket_factory)
    winner.settimeout(timeout)
    return winner
