"""The blocking facade: the ``WSAConnectByList`` contract for synchronous code (SPEC §3).

``connect_by_list(sock, addresses, timeout=None, reserved=None, **options) -> (local, remote)``
connects the caller's own, still unconnected socket to one of ``addresses``;
``create_connection(addresses, timeout=None, **options) -> socket.socket`` is the
`socket.create_connection` look-alike. Both run the race the async API runs (see "How the
race is run") and block until it ends, whatever the socket's blocking mode.

How the caller's socket ends up connected (POSIX)
    The caller's own socket makes the first attempt of the race whose pair it can make as it
    is: a kernel-choice pair (nothing to bind) of the socket's own family (not v4-mapped). When
    that attempt wins - the everyday call - the socket simply connected: same object, same
    descriptor, same file, every option the caller set still set, whatever it is. No other
    socket was made and no option was read beyond the few below.

    Every other attempt gets a fresh socket that mirrors the caller's family, type and
    protocol and gets, *before* it is bound or connects, every option of the table
    `COPIED_OPTIONS` whose value on the caller's socket differs from a fresh socket's default
    (only the differences are copied: setting ``SO_RCVBUF`` at all would switch off Linux's
    receive-buffer autotuning, so an option the caller left alone is left alone). Linux reports
    ``SO_RCVBUF``/``SO_SNDBUF`` doubled, so half of the reported value is set, which reads back
    identical. When such an attempt wins, its descriptor is ``os.dup2``-ed onto the caller's
    descriptor number (keeping its inheritable flag; the caller's own attempt, failed or still
    in flight, goes with the file it replaces), the winner object is closed, and the caller's
    timeout/blocking mode is re-applied with ``sock.settimeout``. The caller keeps the same
    ``socket.socket`` object and the same fd number. Just before the ``dup2``, the options of
    `_RESTORED_OPTIONS` (SO_REUSEADDR/SO_REUSEPORT, the receive/send timeouts and low-water
    mark, IP_FREEBIND/IP_TRANSPARENT, IP_RECVERR, TCP_CORK, ...: options that change nothing
    about where or how a connection goes, so attempts do not take them) are read from the
    caller's socket and set on the incoming one where they differ, so the caller's socket keeps
    them. Lost on that path: an option in neither table, and ``SO_RCVBUF`` set to exactly
    half its default (the value reads the same, only the autotuning lock is gone).
    ``SO_RCVBUFFORCE`` values above ``net.core.rmem_max`` come back capped.

    The options are read from the caller's socket only when a fresh socket is first needed, so
    possibly after its own attempt began: Linux then reports the route's MSS and IPv6 hop limit,
    and a route can set the congestion control, so those three (``_READ_BEFORE_CONNECT``) are
    read before the race; a test checks on the running kernel that every other one reads the
    same during and after a failed connect.

    When the race does not end connected on the caller's socket although it made an attempt
    (every pair failed, the deadline, an interruption), the socket is restored: a failed
    connect cannot be undone in place (Linux keeps the port it took, BSD and macOS leave the
    socket unusable), so a fresh socket like it (the same options, both tables, as above) is
    ``dup2``-ed onto its descriptor. The only case it cannot be: no descriptor is left for that
    fresh socket (EMFILE/ENFILE...). Then `OutOfResources` says the socket "could not be
    restored", an attempt still in flight on it is aborted, and it is left unconnected: close
    it.

    ``TCP_FASTOPEN_CONNECT`` makes every connect "succeed" before the handshake, which defeats
    a race: a socket with it set is never lent, and it is not copied.

Families
    An AF_INET socket skips IPv6 destinations; an AF_INET6 socket with ``IPV6_V6ONLY`` off
    reaches IPv4 destinations as v4-mapped addresses (attempts connect to, and bind explicit
    IPv4 sources as, ``::ffff:a.b.c.d``), with it on it skips IPv4 destinations. An explicit
    ``local_addresses`` list is filtered the same way. When nothing usable is left,
    `InvalidArgument` (EINVAL) is raised before anything is opened.

How the race is run
    Exactly the async API's race: the same plan (sources, RFC 6724 and history ranking), the
    same sans-I/O `aioconnlist._core.race.Race` (stagger, hard deadline, history, ``on_event``, the
    error a lost race reports), the same attempt sockets (`aioconnlist._drivers.sockets`' bind with
    ``IP_BIND_ADDRESS_NO_PORT``). What differs is only how the waiting is done: instead of an
    asyncio loop, a poll(2) loop on the calling thread waits for the attempts to finish and
    for the next start time or the deadline (`aioconnlist._drivers.poll`). Why
    (``benchmarks/bench_blocking.py``, loopback,
    per call, ratio to ``socket.create_connection``): ``asyncio.run`` per call costs ~6.8x;
    the asyncio driver on a persistent per-thread loop (this module's first version) still
    cost ~2.6x for ``create_connection`` and ~3.7x for ``connect_by_list`` (asyncio's
    futures, handles and tasks around one connect cost about as much as the connect); a
    shared background loop thread adds two thread switches per call; uvloop was no faster.
    This loop: ~1.4x for ``create_connection``; ~2.6x for ``connect_by_list`` when every
    attempt had a socket of its own, ~1.6x now that the caller's socket makes the first one
    (and a single pair with no deadline or observer runs without a `Race`, as in the driver).
    It also needs no event loop, thread or descriptor of its own, so it works the same from
    any thread, from inside a running event loop (which it blocks for the duration, as any
    blocking call does), from an ``on_event`` callback of another race, and in a forked child;
    ``on_event`` is called on the calling thread.

Interruption
    A ``KeyboardInterrupt`` (or ``SystemExit``; an ``on_event`` callback's ordinary exceptions
    are logged and ignored by the race) ends the race: every attempt socket is closed, the
    caller's socket restored if it made an attempt, the running attempts are recorded as
    cancelled (no evidence against their pairs), and the exception propagates.

Errors (SPEC §3): all are `ConnectError` (an ``OSError``). The arguments are checked before
anything is opened, in this order: ``reserved``, ``sock``, the options, the addresses, their
families. On every error the caller's socket is left as it was (untouched, or restored after
its own attempt, see above) and no socket of the race stays open. An unknown option name is a
``TypeError``, as for any Python call and as in the async API.

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
    ``IP_BIND_ADDRESS_NO_PORT`` does not exist (the driver's concern); an unrestorable socket
    is left failed, not disconnected (see above). None of this is tested here: no such machine.
    Windows: a SOCKET is not a C-runtime descriptor and cannot be ``dup2``-ed onto, so
    `connect_by_list` raises ``NotImplementedError`` there (the native ``WSAConnectByList`` in
    ws2_32 is the tool for that contract); `create_connection` needs no descriptor swap and
    works everywhere.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import os
import socket
import struct
import sys
from collections.abc import Iterable
from typing import Any

from ._core.addresses import Endpoint, parse_addresses
from ._core.errors import (
    RESOURCE_ERRNOS,
    ConnectError,
    InvalidArgument,
    NotASocket,
    OutOfResources,
)
from ._core.options import Options, options_from
from ._core.pairs import Pair
from ._drivers.poll import AttemptSockets, race
from ._drivers.sockets import default_socket_factory

__all__ = ["COPIED_OPTIONS", "connect_by_list", "create_connection"]

Address = tuple[Any, ...]

_LINUX = sys.platform.startswith("linux")


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
#: Options whose value reads differently once the socket has begun to connect (Linux then
#: reports the route's MSS and IPv6 hop limit, and a route may set the congestion control): read
#: before the caller's socket is lent to the race. `test_blocking` checks on the running kernel
#: that every other option reads back the same during and after a failed attempt.
_READ_BEFORE_CONNECT = frozenset({"TCP_MAXSEG", "IPV6_UNICAST_HOPS", "TCP_CONGESTION"})
_DOUBLED_ON_GET = (
    ((socket.SOL_SOCKET, socket.SO_RCVBUF), (socket.SOL_SOCKET, socket.SO_SNDBUF)) if _LINUX else ()
)
_SO_ACCEPTCONN: int | None = getattr(socket, "SO_ACCEPTCONN", None)
_TCP_FASTOPEN_CONNECT: int | None = getattr(socket, "TCP_FASTOPEN_CONNECT", 30 if _LINUX else None)
_UNSPECIFIED = ("0.0.0.0", "::")
_BOTH_FAMILIES = (socket.AF_INET, socket.AF_INET6)

OptionValue = int | bytes
OptionSetting = tuple[int, int, OptionValue]  # (level, option, value) for setsockopt


@dataclasses.dataclass(frozen=True, slots=True)
class _Defaults:
    """The options a socket of one (family, type, proto) supports, with a fresh one's values."""

    options: tuple[tuple[int, int, int], ...]
    values: tuple[OptionValue, ...]
    early: tuple[int, ...]  # the indexes of the options of _READ_BEFORE_CONNECT


#: (family, type, proto) -> _Defaults, learned once from a fresh socket
_defaults: dict[tuple[int, int, int], _Defaults] = {}


def _read(sock: socket.socket, level: int, option: int, size: int) -> OptionValue:
    return sock.getsockopt(level, option, size) if size else sock.getsockopt(level, option)


def _learn_defaults(family: int, kind: int, proto: int) -> _Defaults:
    options: list[tuple[int, int, int]] = []
    values: list[OptionValue] = []
    early: list[int] = []
    with socket.socket(family, kind, proto) as fresh:
        for name, spec in zip(COPIED_OPTIONS, _OPTIONS, strict=True):
            try:
                values.append(_read(fresh, *spec))
            except OSError:
                continue  # not for this family/protocol/kernel: nothing to copy
            if name in _READ_BEFORE_CONNECT:
                early.append(len(options))
            options.append(spec)
    found = _defaults[family, kind, proto] = _Defaults(tuple(options), tuple(values), tuple(early))
    return found


def _options_to_copy(
    sock: socket.socket, defaults: _Defaults, known: dict[int, OptionValue]
) -> tuple[OptionSetting, ...]:
    """What to set on a new socket so it reads back like ``sock`` (``known``: values already
    read, by index)."""
    to_copy = []
    getsockopt = sock.getsockopt
    for i, ((level, option, size), default) in enumerate(
        zip(defaults.options, defaults.values, strict=True)
    ):
        if i in known:
            value = known[i]
        else:
            value = getsockopt(level, option, size) if size else getsockopt(level, option)
        if value != default:
            if (level, option) in _DOUBLED_ON_GET:
                value = int(value) // 2  # Linux doubles what is set (bookkeeping): set half
            to_copy.append((level, option, value))
    return tuple(to_copy)


@dataclasses.dataclass(slots=True)
class _CallerSocket:
    """The caller's socket and what a fresh socket must take from it to be like it (for other
    attempts, and to restore it)."""

    sock: socket.socket
    fd: int
    family: int
    kind: int
    proto: int
    v6only: bool
    timeout: float | None
    lendable: bool  # the race may make an attempt on it (see "How the caller's socket...")
    defaults: _Defaults
    early: dict[int, OptionValue]  # the options of _READ_BEFORE_CONNECT, by index
    _to_copy: tuple[OptionSetting, ...] | None = None

    def options(self) -> tuple[OptionSetting, ...]:
        """The caller's options that differ from a fresh socket's, read when first needed (no
        socket but the caller's own may be needed at all)."""
        if self._to_copy is None:
            self._to_copy = _options_to_copy(self.sock, self.defaults, self.early)
        return self._to_copy

    def fresh(self) -> socket.socket:
        """A new socket like the caller's was: same family, type, protocol and options."""
        new = socket.socket(self.family, self.kind, self.proto)
        try:
            for level, option, value in self.options():
                new.setsockopt(level, option, value)
        except BaseException:
            new.close()
            raise
        return new

    def make_attempt_socket(self, _pair: Pair) -> socket.socket:
        return self.fresh()

    def put(self, new: socket.socket) -> None:
        """Make the caller's descriptor number refer to ``new``'s socket (its inheritable flag
        kept; the socket it referred to is closed with it). The options of `_RESTORED_OPTIONS`
        that the caller's socket has set go over to ``new`` first, so that the caller's socket
        keeps them too when another socket takes its place (a restore, or another attempt's
        win)."""
        _copy_more_options(self.sock, new)
        os.dup2(new.fileno(), self.fd, inheritable=os.get_inheritable(self.fd))


#: Options that attempt sockets do not take (they change nothing about where or how a
#: connection goes) but that the caller's socket must still have when a fresh socket takes its
#: descriptor (after a failed race, or when another attempt's socket won). They are read from
#: the caller's socket at that moment - they read the same before and after a connect attempt -
#: and set where they differ from the fresh socket's, so a race that ends on the caller's own
#: socket reads none of them. (name, level, byte size or 0 for an int, Linux's number)
_RESTORED_TABLE: tuple[tuple[str, str, int, int], ...] = (
    ("SO_REUSEADDR", "SOL_SOCKET", 0, 2),
    ("SO_REUSEPORT", "SOL_SOCKET", 0, 15),
    ("SO_BROADCAST", "SOL_SOCKET", 0, 6),
    ("SO_DONTROUTE", "SOL_SOCKET", 0, 5),
    ("SO_OOBINLINE", "SOL_SOCKET", 0, 10),
    ("SO_RCVLOWAT", "SOL_SOCKET", 0, 18),
    ("SO_RCVTIMEO", "SOL_SOCKET", struct.calcsize("ll"), 20),
    ("SO_SNDTIMEO", "SOL_SOCKET", struct.calcsize("ll"), 21),
    ("SO_TIMESTAMP", "SOL_SOCKET", 0, 29),
    ("SO_TIMESTAMPNS", "SOL_SOCKET", 0, 35),
    ("SO_PASSCRED", "SOL_SOCKET", 0, 16),
    ("SO_BUSY_POLL", "SOL_SOCKET", 0, 46),
    ("SO_INCOMING_CPU", "SOL_SOCKET", 0, 49),
    ("SO_ZEROCOPY", "SOL_SOCKET", 0, 60),
    ("IP_FREEBIND", "IPPROTO_IP", 0, 15),
    ("IP_TRANSPARENT", "IPPROTO_IP", 0, 19),
    ("IP_RECVERR", "IPPROTO_IP", 0, 11),
    ("IP_MTU_DISCOVER", "IPPROTO_IP", 0, 10),
    ("IP_RECVTOS", "IPPROTO_IP", 0, 13),
    ("IPV6_RECVERR", "IPPROTO_IPV6", 0, 25),
    ("IPV6_MTU_DISCOVER", "IPPROTO_IPV6", 0, 23),
    ("IPV6_TRANSPARENT", "IPPROTO_IPV6", 0, 75),
    ("IPV6_FREEBIND", "IPPROTO_IPV6", 0, 78),
    ("IPV6_RECVTCLASS", "IPPROTO_IPV6", 0, 66),
    ("TCP_CORK", "IPPROTO_TCP", 0, 3),
    ("TCP_LINGER2", "IPPROTO_TCP", 0, 8),
    ("TCP_THIN_LINEAR_TIMEOUTS", "IPPROTO_TCP", 0, 16),
    ("TCP_INQ", "IPPROTO_TCP", 0, 36),
    ("TCP_TX_DELAY", "IPPROTO_TCP", 0, 37),
)
#: (level, option, size) of those this platform has (Linux: by number where Python has no name)
_RESTORED_OPTIONS: tuple[tuple[int, int, int], ...] = tuple(
    (getattr(socket, level), getattr(socket, name, number), size)
    for name, level, size, number in _RESTORED_TABLE
    if hasattr(socket, level) and (hasattr(socket, name) or _LINUX)
)


def _copy_more_options(caller: socket.socket, new: socket.socket) -> None:
    """Set on ``new`` each option of `_RESTORED_OPTIONS` whose value on ``caller`` differs
    from ``new``'s (an option either socket cannot read or ``new`` cannot take is skipped)."""
    for level, option, size in _RESTORED_OPTIONS:
        try:
            value = _read(caller, level, option, size)
            if value != _read(new, level, option, size):
                new.setsockopt(level, option, value)
        except OSError:
            continue  # not for this family/protocol/kernel (or not settable again here)


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
        sock,
        fd,
        family,
        kind,
        proto,
        v6only,
        sock.gettimeout(),
        not _fast_open_connect(sock),
        defaults,
        {i: _read(sock, *defaults.options[i]) for i in defaults.early},
    )


def _fast_open_connect(sock: socket.socket) -> bool:
    """Whether ``TCP_FASTOPEN_CONNECT`` is on: such a socket "connects" before any handshake,
    so a race on it would be won by whichever pair went first; it is not lent to the race."""
    if _TCP_FASTOPEN_CONNECT is None:
        return False
    try:
        return bool(sock.getsockopt(socket.IPPROTO_TCP, _TCP_FASTOPEN_CONNECT))
    except OSError:  # an older kernel, or a protocol without it (MPTCP)
        return False


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


def _as_connect_error(exc: OSError, what: str = "") -> ConnectError:
    """A bare OSError from outside the race (e.g. no descriptor for a probe socket), as the
    error family: ENOBUFS for a shortage of memory or descriptors, its own errno otherwise.
    ``what``: what it kept from being done."""
    detail = f"{what}: {exc}" if what else str(exc)
    if exc.errno in RESOURCE_ERRNOS:
        return OutOfResources(f"out of resources: {detail}")
    return ConnectError(exc.errno or errno.EIO, detail)


# --------------------------------------------------------------------------- the facade


def _run_race(
    destinations: list[Endpoint], options: Options, sockets: AttemptSockets
) -> tuple[socket.socket, Pair]:
    try:
        return race(destinations, options, sockets)
    except ConnectError:
        raise
    except OSError as exc:  # e.g. no descriptor for a probe socket
        raise _as_connect_error(exc) from exc


def _take_over(sock: socket.socket, caller: _CallerSocket, winner: socket.socket) -> None:
    """Move ``winner``'s connection onto the caller's descriptor number, then close it."""
    with winner:
        try:
            if sock.fileno() != caller.fd:
                raise NotASocket("sock was closed while connecting")
            caller.put(winner)
        except OSError as exc:
            if isinstance(exc, ConnectError):
                raise
            raise NotASocket(f"sock (fd {caller.fd}) could not take the connection: {exc}") from exc


def _restore(sock: socket.socket, caller: _CallerSocket, connecting: bool) -> None:
    """Undo the race's attempt on the caller's own socket: a failed connect cannot be undone in
    place, so a fresh socket like it was (same options) takes its descriptor number. Without a
    descriptor for one, an attempt still in flight is aborted (on Linux, ``shutdown`` of a
    connecting socket disconnects it) and the error says the socket was used."""
    if sock.fileno() != caller.fd:
        return  # closed meanwhile (the number may be another file's now): nothing to restore
    try:
        fresh = caller.fresh()
    except OSError as exc:
        if connecting:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        sock.settimeout(caller.timeout)
        what = f"sock (fd {caller.fd}) made an attempt and could not be restored (close it)"
        raise _as_connect_error(exc, what) from exc
    with fresh:
        caller.put(fresh)
    sock.settimeout(caller.timeout)


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
    try:
        caller = _inspect(sock)
    except ConnectError:
        raise
    except OSError as exc:  # e.g. no descriptor to learn the option defaults with
        raise _as_connect_error(exc) from exc
    race_options = _make_options(timeout, options)
    destinations, race_options = _restrict_to_family(
        parse_addresses(addresses), race_options, caller.family, caller.v6only
    )
    if caller.lendable:
        sockets = AttemptSockets(caller.make_attempt_socket, sock, caller.family)
    else:
        sockets = AttemptSockets(caller.make_attempt_socket)
    try:
        winner, pair = _run_race(destinations, race_options, sockets)
        if winner is not sock:
            _take_over(sock, caller, winner)
    except BaseException as exc:
        if sockets.lent:
            try:
                _restore(sock, caller, sockets.own_connecting)
            except ConnectError:
                if isinstance(exc, Exception):  # (an interrupt stays an interrupt)
                    raise
        raise
    # The race made the socket non-blocking, or the descriptor is now the winner's
    # non-blocking file description: re-apply the caller's mode (it sets or clears O_NONBLOCK).
    sock.settimeout(caller.timeout)
    local = sock.getsockname()
    try:
        remote = sock.getpeername()
    except OSError:  # reset already; it did connect, report whom
        remote = pair.destination.sockaddr(caller.family)
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
    sockets = AttemptSockets(default_socket_factory)
    winner, _pair = _run_race(parse_addresses(addresses), race_options, sockets)
    winner.settimeout(timeout)
    return winner
