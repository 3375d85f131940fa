"""The blocking facade: the ``WSAConnectByList`` contract for synchronous code.

``connect_by_list(sock, addresses, timeout=None, reserved=None, **options) -> (local, remote)``
connects the caller's own, still unconnected socket to one of ``addresses``;
``create_connection(address, timeout, source_address=None, *, all_errors=False,
socket_options=None, **options) -> socket.socket`` is a drop-in for `socket.create_connection`
(a ``(host, port)`` or a list of addresses), and `install` / `uninstall` put it in place of
`socket.create_connection` (and urllib3's) process-wide. All run the race the async API runs
(see "How the race is run") and block until it ends, whatever the socket's blocking mode.

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
    attempt had a socket of its own, ~1.6x once the caller's socket made the first one (and a
    single pair with no deadline or observer runs without a `Race`, as in the driver). That
    single pair now makes no system call its result does not need: one poll(2) on one
    descriptor, SO_ERROR read only when poll reports an error or hang-up; attempt sockets of
    `create_connection` made non-blocking by socket(2) itself; the caller's socket checked
    with ``TCP_FASTOPEN_CONNECT``, which only a TCP socket answers (``SO_TYPE`` is read only
    when it does not); no ``getpeername`` for an IPv4 peer (it reports the address connected
    to); the history's backup delay computed only if the connect outlasts the shortest one it
    can be; validated options kept per keyword set. The README has the figures.
    It also needs no event loop, thread or descriptor of its own, so it works the same from
    any thread, from inside a running event loop (which it blocks for the duration, as any
    blocking call does), from an ``on_event`` callback of another race, and in a forked child;
    ``on_event`` is called on the calling thread.

Interruption
    A ``KeyboardInterrupt`` (or ``SystemExit``; an ``on_event`` callback's ordinary exceptions
    are logged and ignored by the race) ends the race: every attempt socket is closed, the
    caller's socket restored if it made an attempt, the running attempts are recorded as
    cancelled (no evidence against their pairs), and the exception propagates.

Errors: all are `ConnectError` (an ``OSError``). The arguments are checked before
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
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ._core.addresses import Endpoint, parse_addresses, parse_ip
from ._core.errors import (
    RESOURCE_ERRNOS,
    ConnectError,
    ConnectTimeout,
    ExceptionGroup,
    InvalidArgument,
    NotASocket,
    OutOfResources,
)
from ._core.options import ConnectOptions, Options, options_from, takes_options
from ._core.pairs import Pair
from ._drivers.poll import AttemptSockets, race
from ._drivers.sockets import SocketFactory, default_socket_factory, raw_family
from ._io.lookup import resolve_blocking

if TYPE_CHECKING:
    import importlib.abc
    import importlib.machinery
    import types

    from ._core.options import Unpack

__all__ = [
    "COPIED_OPTIONS",
    "connect_by_list",
    "create_connection",
    "install",
    "installed",
    "uninstall",
]

#: the standard library's "no timeout given" (socket.getdefaulttimeout() applies)
_GLOBAL_DEFAULT_TIMEOUT: Any = socket._GLOBAL_DEFAULT_TIMEOUT  # type: ignore[attr-defined]

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
_IPPROTO_TCP = int(socket.IPPROTO_TCP)
_SOCK_STREAM = int(socket.SOCK_STREAM)
_UNSPECIFIED = ("0.0.0.0", "::")
_AF_INET = int(socket.AF_INET)
_AF_INET6 = int(socket.AF_INET6)
_BOTH_FAMILIES = (_AF_INET, _AF_INET6)
_POSIX = os.name == "posix"

OptionValue = int | bytes
OptionSetting = tuple[int, int, OptionValue]  # (level, option, value) for setsockopt
#: what ``socket_options`` takes: anything ``sock.setsockopt(*option)`` takes
SocketOption = tuple[int, int, int | bytes | bytearray] | tuple[int, int, None, int]


@dataclasses.dataclass(frozen=True, slots=True)
class _Defaults:
    """The options a socket of one (family, type, proto) supports, with a fresh one's values."""

    options: tuple[tuple[int, int, int], ...]
    values: tuple[OptionValue, ...]
    early: tuple[int, ...]  # the indexes of the options of _READ_BEFORE_CONNECT
    early_specs: tuple[tuple[int, int, int, int], ...] = ()  # (index, level, option, size)


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
    specs = tuple((i, *options[i]) for i in early)
    found = _defaults[family, kind, proto] = _Defaults(
        tuple(options), tuple(values), tuple(early), specs
    )
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


_NOT_OPEN = (errno.ENOTSOCK, errno.EBADF)


def _not_a_socket(fd: int, exc: OSError) -> NotASocket:
    return NotASocket(f"sock (fd {fd}) is not an open socket: {exc.strerror}")


def _socket_type(sock: socket.socket, fd: int) -> int:
    """``SO_TYPE`` (`NotASocket` when ``fd`` is not an open socket)."""
    try:
        kind: int = sock.getsockopt(socket.SOL_SOCKET, socket.SO_TYPE)
    except OSError as exc:
        if exc.errno in _NOT_OPEN:
            raise _not_a_socket(fd, exc) from exc
        raise
    return kind


def _inspect(sock: object) -> _CallerSocket:
    """Check ``sock`` is an unbound, unconnected TCP socket; read what attempts must mirror."""
    if not isinstance(sock, socket.socket):
        raise NotASocket(f"sock must be a socket.socket, not {type(sock).__name__} {sock!r}")
    fd = sock.fileno()
    if fd < 0:
        raise NotASocket("sock is closed")
    # ``TCP_FASTOPEN_CONNECT`` first: a socket that answers a TCP-level option is a TCP (or
    # MPTCP) stream socket, so its type need not be read as well; any other (an older kernel,
    # MPTCP without the option, not TCP at all) answers ``SO_TYPE``.
    fast_open = 0
    if _TCP_FASTOPEN_CONNECT is None:
        kind = _socket_type(sock, fd)
    else:
        try:
            fast_open = sock.getsockopt(_IPPROTO_TCP, _TCP_FASTOPEN_CONNECT)
            kind = _SOCK_STREAM
        except OSError as exc:
            if exc.errno in _NOT_OPEN:
                raise _not_a_socket(fd, exc) from exc
            kind = _socket_type(sock, fd)
    family = raw_family(sock)
    if family not in _BOTH_FAMILIES:
        raise InvalidArgument(
            f"sock must be an AF_INET or AF_INET6 socket, not family {sock.family}"
        )
    if kind != _SOCK_STREAM:
        raise InvalidArgument(f"sock must be a SOCK_STREAM (TCP) socket, not type {kind}")
    if type(sock) is not socket.socket:  # (a subclass: an ssl.SSLSocket, maybe)
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
    v6only = family == _AF_INET6 and bool(sock.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY))
    defaults = _defaults.get((family, kind, proto)) or _learn_defaults(family, kind, proto)
    getsockopt = sock.getsockopt
    early: dict[int, OptionValue] = {}
    for i, level, option, size in defaults.early_specs:
        early[i] = getsockopt(level, option, size)  # (size 0: an int option, as when left out)
    return _CallerSocket(
        sock,
        fd,
        family,
        kind,
        proto,
        v6only,
        sock.gettimeout(),
        not fast_open,
        defaults,
        early,
    )


# --------------------------------------------------------------------------- arguments


_plain_options: list[Options] = []  # options_from({"timeout": None}), once made
#: Validated options per distinct keyword set of plain scalars: the same few options are
#: passed on every call. The key holds each value's exact type (``sort=1`` is an error,
#: ``sort=True`` is not, though ``1 == True``); other values (lists, callables, histories) are
#: validated every time by `options_from` and never kept alive here.
_made: dict[tuple[object, ...], Options] = {}
_MADE_SIZE = 64
_SCALARS = frozenset({type(None), bool, int, float, str})


def _make_options(timeout: object, options: Mapping[str, object]) -> Options:
    # An unknown option name is a TypeError, as for any Python call (and as in the async API).
    if not options:
        if timeout is None:  # the everyday call: no deadline, no options
            if not _plain_options:
                _plain_options.append(options_from({"timeout": None}))
            return _plain_options[0]
        return options_from({"timeout": timeout})
    # (built item by item: a starred map of type() over the values costs twice as much)
    key: tuple[object, ...] = (type(timeout), timeout)
    if key[0] not in _SCALARS:
        return options_from({"timeout": timeout, **options})
    for item in options.items():
        kind = type(item[1])
        if kind not in _SCALARS:
            return options_from({"timeout": timeout, **options})
        key += (kind, item)
    made = _made.get(key)
    if made is None:
        made = options_from({"timeout": timeout, **options})
        if len(_made) >= _MADE_SIZE:
            _made.clear()
        _made[key] = made
    return made


def _usable_by(family: int, v6only: bool, version: int) -> bool:
    if family == socket.AF_INET:
        return version == 4
    return version == 6 or not v6only


def _family_name(family: int, v6only: bool) -> str:
    if family == socket.AF_INET:
        return "AF_INET"
    return "AF_INET6 (IPV6_V6ONLY on)" if v6only else "AF_INET6 (dual-stack)"


def _restrict_to_family(
    destinations: list[Endpoint], options: Options, family: int, v6only: bool
) -> tuple[list[Endpoint], Options]:
    usable = destinations  # a dual-stack socket: every address; else those of its family
    if family == _AF_INET or v6only:
        wanted = family
        for d in destinations:
            if d._family != wanted:  # (only then a list is made)
                usable = [d for d in destinations if d._family == wanted]
                break
    if not usable:
        listed = ", ".join(str(d) for d in destinations)
        kind = _family_name(family, v6only)
        raise InvalidArgument(f"no address usable by an {kind} socket among {listed}")
    local = options.local_addresses
    if isinstance(local, tuple):
        sources = tuple(s for s in local if _usable_by(family, v6only, s.ip.version))
        if not sources:
            listed = ", ".join(str(s) for s in local)
            kind = _family_name(family, v6only)
            raise InvalidArgument(f"no local address usable by an {kind} socket among {listed}")
        if len(sources) != len(local):
            options = options.replace(local_addresses=sources)
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


@takes_options(ConnectOptions)
def connect_by_list(
    sock: socket.socket,
    addresses: Iterable[object],
    timeout: float | None = None,
    reserved: object = None,
    **options: Unpack[ConnectOptions],
) -> tuple[Address, Address]:
    """Connect the caller's unbound, unconnected TCP ``sock`` to one of ``addresses``.

    Races every (source x destination) pair usable by ``sock``'s family like
    `aioconnlist.connect_by_list` and blocks until one connects, every one failed or
    ``timeout`` seconds (a hard deadline; ``None``: no deadline) passed. On success ``sock``
    itself (same object, same fd number, same blocking mode/timeout, same options) is the
    connected socket and ``(sock.getsockname(), sock.getpeername())`` is returned. On error a
    `ConnectError` is raised (see the module docstring for the table) and ``sock`` is unchanged.
    ``**options`` are the race options of `aioconnlist.connect_by_list` (``local_addresses``,
    ``attempt_delay``, ``min_attempt_delay``, ``interleave``, ``sort``, ``history``, ``on_event``).
    """
    if not _POSIX:  # pragma: no cover - exercised on Windows only
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
        winner, pair = race(destinations, race_options, sockets)
        if winner is not sock:
            _take_over(sock, caller, winner)
    except BaseException as exc:
        if sockets.lent:
            try:
                _restore(sock, caller, sockets.own_connecting)
            except ConnectError:
                if isinstance(exc, Exception):  # (an interrupt stays an interrupt)
                    raise
        if isinstance(exc, OSError) and not isinstance(exc, ConnectError):
            raise _as_connect_error(exc) from exc  # (the race's: `_take_over` makes its own)
        raise
    # The race made the socket non-blocking, or the descriptor is now the winner's
    # non-blocking file description: re-apply the caller's mode (it sets or clears O_NONBLOCK).
    sock.settimeout(caller.timeout)
    local = sock.getsockname()
    if caller.family == _AF_INET:
        # what getpeername() reports for an IPv4 peer: the address connected to, as connected
        destination = pair.destination  # (its cached sockaddr, read inline, as the driver does)
        remote = destination._sockaddr
        if remote is None or destination._family != _AF_INET:
            remote = destination.sockaddr(_AF_INET)
        return local, remote
    try:
        remote = sock.getpeername()
    except OSError:  # reset already; it did connect, report whom
        remote = pair.destination.sockaddr(caller.family)
    return local, remote


@takes_options(ConnectOptions)
def create_connection(
    address: tuple[Any, ...] | Iterable[object],
    timeout: float | object | None = _GLOBAL_DEFAULT_TIMEOUT,
    source_address: tuple[Any, ...] | None = None,
    *,
    all_errors: bool = False,
    socket_options: Iterable[SocketOption] | None = None,
    **options: Unpack[ConnectOptions],
) -> socket.socket:
    """`socket.create_connection` over the race: a new connected socket.

    ``address`` is what `socket.create_connection` takes, ``(host, port)``: a name is resolved
    (A and AAAA, one ``getaddrinfo``), an IP literal is not; or a list of addresses of any
    accepted form (``[("192.0.2.1", 80), "[2001:db8::1]:80"]``). Every destination is raced
    (ranked, staggered, remembered), not tried one after another.

    ``timeout`` keeps its standard meaning for the returned socket (omitted:
    `socket.getdefaulttimeout()`; ``None``: blocking) and is also the hard deadline of the
    whole call, resolution included (never ``timeout`` per address). ``source_address=(ip,
    port)`` binds every attempt to it (``""`` or ``"0.0.0.0"``: any address; port 0: any port;
    with a port, attempts bind it with ``SO_REUSEADDR`` so that they can overlap).
    ``socket_options``, ``(level, option, value)`` (or ``(level, option, None, length)``) as
    for ``setsockopt``, are set on every attempt socket
    before it binds or connects. The socket's family is the winning destination's.

    Errors are `OSError` of the classes the standard library raises for the same cause:
    a `ConnectError` that is also ``ConnectionRefusedError``, ``TimeoutError`` (the deadline),
    ``socket.gaierror`` (the name, `NameResolutionError`)... with the errno of the last attempt
    to fail. ``all_errors=True``: an ``ExceptionGroup`` of every attempt's error instead, as
    ``socket.create_connection(all_errors=True)`` raises. ``**options`` are the race options
    (``local_addresses``, ``attempt_delay``, ``history``, ``on_event``...).
    """
    return _create_connection(
        address, timeout, source_address, all_errors, socket_options, socket.AF_UNSPEC, options
    )


def _is_host_port(address: object) -> bool:
    """Whether ``address`` is one ``(host, port[, flowinfo, scope_id])``, not a list."""
    if type(address) is not tuple or len(address) not in (2, 4):
        return False
    host, port = address[0], address[1]
    if not (host is None or isinstance(host, (str, bytes))):
        return False
    if isinstance(port, str):
        return ":" not in port  # a service name ("http"), not an "ip:port" address
    return isinstance(port, int) or port is None


def _deadline(timeout: object) -> float | None:
    if timeout is _GLOBAL_DEFAULT_TIMEOUT:
        return socket.getdefaulttimeout()
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float))):
        raise TypeError(f"timeout must be a number or None, not {type(timeout).__name__}")
    if timeout is not None and not timeout >= 0:  # (NaN too)
        raise InvalidArgument(f"timeout must be >= 0 seconds, got {timeout}")
    return timeout


def _attempt_factory(
    settings: tuple[SocketOption, ...], bind: tuple[str, int] | None
) -> SocketFactory:
    """The attempt sockets of `create_connection`: the destination's family, the caller's
    ``socket_options`` set, bound to a fixed ``source_address`` port if one was given."""

    def make(pair: Pair) -> socket.socket:
        family = pair.destination.family
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            for setting in settings:
                sock.setsockopt(*setting)
            if bind is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                host = bind[0] or ("::" if family == socket.AF_INET6 else "0.0.0.0")
                sock.bind((host, bind[1]))
        except BaseException:
            sock.close()
            raise
        return sock

    return make


def _source(
    source_address: object, destinations: list[Endpoint], options: dict[str, Any]
) -> tuple[list[Endpoint], tuple[str, int] | None]:
    """Apply ``source_address``: an address with port 0 becomes ``local_addresses``; a fixed
    port is bound by the attempt factory (then the kernel's choice only)."""
    if source_address is None:
        return destinations, None
    if not isinstance(source_address, tuple) or len(source_address) < 2:
        raise InvalidArgument(f"source_address must be (host, port), not {source_address!r}")
    if options.get("local_addresses", "auto") not in ("auto", None):
        raise InvalidArgument("give source_address or a local_addresses list, not both")
    host, port = source_address[0], source_address[1]
    if isinstance(host, bytes):
        host = host.decode("ascii")
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port < 65536:
        raise InvalidArgument(f"source_address port {port!r} is not in 0..65535")
    if not host or host in _UNSPECIFIED:
        if port == 0:
            return destinations, None  # any address, any port: what a plain connect does
        version = 0 if not host else (4 if host == "0.0.0.0" else 6)
    else:
        if not isinstance(host, str):
            raise InvalidArgument(f"source_address host must be a string, not {host!r}")
        ip, _scope = parse_ip(host, what="source address")
        version = ip.version
        if port == 0:
            options["local_addresses"] = [source_address if len(source_address) == 4 else host]
    if version:
        usable = [d for d in destinations if d.ip.version == version]
        if not usable:
            raise InvalidArgument(f"no destination of the source address's family (IPv{version})")
        destinations = usable
    if port == 0:
        return destinations, None
    options["local_addresses"] = None  # the factory binds; the planner must not bind again
    return destinations, (host or "", port)


#: the attempt sockets of a `create_connection` with no socket options or fixed port: shared
#: by every call and thread (with no socket of the caller's to lend, it keeps no state)
_FRESH_SOCKETS = AttemptSockets(default_socket_factory)


def _create_connection(
    address: object,
    timeout: object,
    source_address: object,
    all_errors: bool,
    socket_options: Iterable[SocketOption] | None,
    family: int,
    options: Mapping[str, Any],
) -> socket.socket:
    """`create_connection` with a resolver family (urllib3's ``allowed_gai_family``)."""
    timeout = _deadline(timeout)
    start = time.monotonic() if timeout is not None else 0.0
    race_options: Mapping[str, Any] = options
    if _is_host_port(address):
        host, port = address[0], address[1]  # type: ignore[index]
        if len(address) == 4:  # type: ignore[arg-type]
            destinations = parse_addresses([address])
        else:
            destinations = resolve_blocking(host, port, family)
    else:
        destinations = parse_addresses(address)
    bind = None
    if source_address is not None:  # (it may set local_addresses: on a copy)
        copied = dict(options)
        destinations, bind = _source(source_address, destinations, copied)
        race_options = copied
    settings = tuple(socket_options) if socket_options is not None else ()
    remaining = timeout
    if timeout is not None:
        remaining = timeout - (time.monotonic() - start)
        if remaining <= 0 < timeout:
            raise ConnectTimeout(f"timed out resolving the address after {timeout} s")
        remaining = max(remaining, 0.0)
    opts = _make_options(remaining, race_options)
    if settings or bind is not None:
        sockets = AttemptSockets(_attempt_factory(settings, bind))
    else:
        sockets = _FRESH_SOCKETS
    try:
        winner, _pair = race(destinations, opts, sockets)
    except ConnectError as exc:
        if all_errors and exc.attempts:
            raise _every_error(exc) from None
        raise
    except OSError as exc:  # e.g. no descriptor for a probe socket
        raise _as_connect_error(exc) from exc
    try:
        winner.settimeout(timeout)
    except BaseException:
        winner.close()
        raise
    return winner


def _every_error(error: ConnectError) -> ExceptionGroup[OSError]:
    """Every attempt's error, as ``socket.create_connection(all_errors=True)`` groups them (an
    attempt the deadline ended is a ``TimeoutError``)."""
    errors: list[OSError] = []
    for attempt in error.attempts:
        if attempt.error is not None:
            errors.append(attempt.error)
        elif attempt.outcome == "timed out":
            errors.append(TimeoutError(errno.ETIMEDOUT, f"timed out connecting to {attempt.pair}"))
    if not errors:
        errors.append(error)
    return ExceptionGroup("create_connection failed", errors)


# --------------------------------------------------------------------------- install()


def _urllib3_create_connection(
    address: tuple[str, int],
    timeout: object,
    source_address: tuple[str, int] | None,
    socket_options: Iterable[SocketOption] | None,
    options: Mapping[str, Any],
) -> socket.socket:
    """``urllib3.util.connection.create_connection`` over the race: the same arguments and
    checks (brackets stripped, IDNA-encodable host, ``allowed_gai_family()``), urllib3's
    timeout sentinel meaning the socket module's default."""
    from urllib3.exceptions import LocationParseError
    from urllib3.util import connection as urllib3_connection
    from urllib3.util.timeout import _DEFAULT_TIMEOUT

    host, port = address
    if host.startswith("["):
        host = host.strip("[]")
    try:
        host.encode("idna")
    except UnicodeError:
        raise LocationParseError(f"'{host}', label empty or too long") from None
    if timeout is _DEFAULT_TIMEOUT:
        timeout = _GLOBAL_DEFAULT_TIMEOUT
    family = urllib3_connection.allowed_gai_family()
    return _create_connection(
        (host, port), timeout, source_address, False, socket_options, family, options
    )


class _Installed:
    """What `install` replaced, and its options."""

    __slots__ = ("options", "socket_original", "urllib3_module", "urllib3_original")

    def __init__(self, options: dict[str, Any], socket_original: Any) -> None:
        self.options = options
        self.socket_original = socket_original
        self.urllib3_module: Any = None  # urllib3.util.connection, once patched
        self.urllib3_original: Any = None


_install_lock = threading.RLock()
_installed: _Installed | None = None
_URLLIB3_MODULE = "urllib3.util.connection"


def _patched_create_connection(
    address: tuple[Any, ...],
    timeout: object = _GLOBAL_DEFAULT_TIMEOUT,
    source_address: tuple[Any, ...] | None = None,
    *,
    all_errors: bool = False,
) -> socket.socket:
    """`socket.create_connection`, racing (installed by `aioconnlist.blocking.install`)."""
    state = _installed
    options = state.options if state is not None else {}
    return _create_connection(
        address, timeout, source_address, all_errors, None, socket.AF_UNSPEC, options
    )


def _patched_urllib3_create_connection(
    address: tuple[str, int],
    timeout: object = _GLOBAL_DEFAULT_TIMEOUT,
    source_address: tuple[str, int] | None = None,
    socket_options: Iterable[SocketOption] | None = None,
) -> socket.socket:
    """``urllib3.util.connection.create_connection``, racing (installed by `install`)."""
    state = _installed
    options = state.options if state is not None else {}
    return _urllib3_create_connection(address, timeout, source_address, socket_options, options)


def _patch_urllib3(module: Any) -> None:
    """Patch a freshly imported (or already imported) ``urllib3.util.connection``."""
    with _install_lock:
        state = _installed
        if state is None or state.urllib3_module is not None:
            return
        state.urllib3_module = module
        state.urllib3_original = module.create_connection
        module.create_connection = _patched_urllib3_create_connection


class _Urllib3Loader:
    """Runs urllib3's own loader for ``urllib3.util.connection``, then patches the module (an
    `importlib.abc.Loader` by its methods: importing importlib.abc costs milliseconds)."""

    def __init__(self, loader: importlib.abc.Loader) -> None:
        self.loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType | None:
        return self.loader.create_module(spec)

    def exec_module(self, module: types.ModuleType) -> None:
        self.loader.exec_module(module)
        _patch_urllib3(module)


class _Urllib3Finder:
    """Catches the import of ``urllib3.util.connection`` after `install` (a ``sys.meta_path``
    finder)."""

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: types.ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != _URLLIB3_MODULE:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _Urllib3Loader(spec.loader)  # type: ignore[assignment]
                return spec
        return None


_finder = _Urllib3Finder()


@takes_options(ConnectOptions)
def install(**options: Unpack[ConnectOptions]) -> None:
    """Make `socket.create_connection` race, process-wide (opt-in).

    Afterwards `socket.create_connection` is this module's `create_connection` with
    ``options`` (the race options but ``timeout``: each call's own ``timeout`` is its
    deadline), and so are ``http.client``, ``urllib.request``, ``smtplib``, ``ftplib``,
    ``xmlrpc.client`` and everything else that looks it up when it connects (code that saved
    the old function before `install` keeps it). urllib3's
    ``urllib3.util.connection.create_connection`` races too, whether urllib3 is imported
    already or later (its resolver family and error behaviour kept). Calling `install` again
    replaces the options; `uninstall` restores exactly the functions that were there.
    Thread-safe. The options are checked here: a bad one raises before anything is patched.
    """
    global _installed
    chosen = dict(options)
    _make_options(None, chosen)  # validate now: an unknown or bad option raises here
    with _install_lock:
        if _installed is not None:
            _installed.options = chosen
            return
        _installed = _Installed(chosen, socket.create_connection)
        socket.create_connection = _patched_create_connection  # type: ignore[assignment]
        module = sys.modules.get(_URLLIB3_MODULE)
        if module is not None:
            _patch_urllib3(module)
        elif _finder not in sys.meta_path:
            sys.meta_path.insert(0, _finder)


def uninstall() -> None:
    """Undo `install`: restore the functions that were there before it (a no-op when not
    installed). Thread-safe."""
    global _installed
    with _install_lock:
        state = _installed
        if state is None:
            return
        with contextlib.suppress(ValueError):
            sys.meta_path.remove(_finder)
        socket.create_connection = state.socket_original
        if state.urllib3_module is not None:
            state.urllib3_module.create_connection = state.urllib3_original
        _installed = None


def installed() -> bool:
    """Whether `install` is in effect."""
    return _installed is not None
