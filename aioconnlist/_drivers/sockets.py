"""The attempt sockets both drivers open: made by a factory, non-blocking, bound to the pair's
explicit source (with ``IP_BIND_ADDRESS_NO_PORT``, so no ephemeral port is spent before
connect)."""

from __future__ import annotations

import _socket
import contextlib
import errno
import socket
import sys
from collections.abc import Callable

from .._core.addresses import Endpoint
from .._core.pairs import Pair

SocketFactory = Callable[[Pair], socket.socket]

# Bind to an address without reserving a port until connect (Linux >= 4.2): binding many
# sources must not spend ephemeral ports. Python names it on 3.12+ only; 24 is Linux's value.
_IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)
_HAS_BIND_NO_PORT = hasattr(socket, "IP_BIND_ADDRESS_NO_PORT") or sys.platform == "linux"


# Made non-blocking at once where the platform can (Linux, the BSDs): no ioctl after socket().
_SOCK_NONBLOCK: int = getattr(socket, "SOCK_NONBLOCK", 0)
_STREAM = socket.SOCK_STREAM | _SOCK_NONBLOCK
_FAMILIES = (socket.AF_INET, socket.AF_INET6)

#: a socket's family as the C level keeps it, an int (``socket.socket.family`` makes an enum
#: of it, which costs more than the rest of building an attempt's address)
raw_family: Callable[[socket.socket], int] = _socket.socket.family.__get__


def close_connecting(sock: socket.socket) -> None:
    """Close ``sock``, a plain socket whose connect has not completed, keeping the GIL.

    ``socket.close()`` releases the GIL around close(2). While another thread runs Python,
    taking it back waits out that thread's switch interval (5 ms by default), once per socket:
    a race's deadline or win that ends three attempts paid 15 ms for the closes alone, more
    than a plain asyncio connect's whole overshoot. close(2) of a socket that never connected
    has nothing to flush or linger on and returns at once, so it is called through
    ``ctypes.PyDLL``, which keeps the GIL. Where that is not available, ``socket.close()``.
    """
    close = _gil_holding_close()
    if close is None or type(sock) is not socket.socket:
        sock.close()
        return
    fd = sock.detach()
    if fd >= 0:
        close(fd)  # EINTR: closed all the same (Linux); EBADF cannot be: we owned it


_GIL_HOLDING_CLOSE: list[Callable[[int], int] | None] = []  # loaded on first use


def _gil_holding_close() -> Callable[[int], int] | None:
    if not _GIL_HOLDING_CLOSE:
        close = None
        if sys.platform != "win32":  # closesocket() there, and no GIL cost measured
            try:
                import ctypes

                close = ctypes.PyDLL(None).close
                close.argtypes = [ctypes.c_int]
                close.restype = ctypes.c_int
            except (ImportError, OSError, AttributeError):
                close = None
        _GIL_HOLDING_CLOSE.append(close)
    return _GIL_HOLDING_CLOSE[0]


def default_socket_factory(pair: Pair) -> socket.socket:
    """A TCP socket of the destination's family (non-blocking already where it can be)."""
    return socket.socket(pair.destination.family, _STREAM)


def open_attempt_socket(factory: SocketFactory, pair: Pair) -> socket.socket:
    """A non-blocking socket for ``pair`` from ``factory``, bound to its explicit source."""
    if factory is default_socket_factory and _SOCK_NONBLOCK and pair.source is None:
        return socket.socket(pair.destination._family, _STREAM)  # (the everyday attempt)
    sock = factory(pair)
    try:
        if factory is not default_socket_factory or not _SOCK_NONBLOCK:  # (ours: as wanted)
            if sock.family not in _FAMILIES:  # a factory's wrong socket
                raise OSError(
                    errno.EAFNOSUPPORT, f"the attempt socket is of family {sock.family!r}"
                )
            sock.setblocking(False)
        if pair.source is not None:
            if _HAS_BIND_NO_PORT and sock.family in _FAMILIES:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.IPPROTO_IP, _IP_BIND_ADDRESS_NO_PORT, 1)
            source = Endpoint(pair.source.ip, 0, 0, pair.source.scope_id)
            sock.bind(source.sockaddr(sock.family))
    except BaseException:
        sock.close()
        raise
    return sock
