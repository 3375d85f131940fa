"""The error family (SPEC §2.5, §3) and the choice of which error a failed race reports.

`ConnectError` is an `OSError`; the argument, not-a-socket and timeout cases are also
`ValueError`, `TypeError` and `TimeoutError`, so callers may catch what they already know.
"""

from __future__ import annotations

import errno as _errno
import socket
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .events import Attempt

if sys.version_info >= (3, 11):
    from builtins import ExceptionGroup
else:  # pragma: no cover - exercised on 3.10 only
    from exceptiongroup import ExceptionGroup

__all__ = [
    "ConnectError",
    "ConnectTimeout",
    "ExceptionGroup",
    "InvalidArgument",
    "NameResolutionError",
    "NotASocket",
    "OutOfResources",
    "typed_error",
]

#: errnos that mean the process or kernel is out of memory or descriptors (reported as ENOBUFS)
RESOURCE_ERRNOS = frozenset({_errno.EMFILE, _errno.ENFILE, _errno.ENOBUFS, _errno.ENOMEM})


class ConnectError(OSError):
    """Connecting failed. ``errno`` is that of the last attempt to fail (ETIMEDOUT on deadline).

    ``attempts`` lists every attempt made (pair, start/end times, exception).
    """

    attempts: tuple[Attempt, ...]

    def __init__(self, code: int, message: str, attempts: Sequence[Attempt] = ()) -> None:
        super().__init__(code, message)
        self.attempts = tuple(attempts)

    def __reduce__(self):  # type: ignore[no-untyped-def]  # keep the subclass when pickled
        return (type(self), (self.errno, self.strerror, self.attempts))


class InvalidArgument(ConnectError, ValueError):
    """EINVAL: the call's arguments cannot work (SPEC §3 WSAEINVAL)."""

    def __init__(self, message: str, attempts: Sequence[Attempt] = ()) -> None:
        super().__init__(_errno.EINVAL, message, attempts)


class NotASocket(ConnectError, TypeError):
    """ENOTSOCK: what was given as a socket is not an open socket (SPEC §3 WSAENOTSOCK)."""

    def __init__(self, message: str, attempts: Sequence[Attempt] = ()) -> None:
        super().__init__(_errno.ENOTSOCK, message, attempts)


class ConnectTimeout(ConnectError, TimeoutError):
    """ETIMEDOUT: the deadline passed before any attempt connected."""

    def __init__(self, message: str, attempts: Sequence[Attempt] = ()) -> None:
        super().__init__(_errno.ETIMEDOUT, message, attempts)


class OutOfResources(ConnectError):
    """ENOBUFS: no memory or no file descriptors (EMFILE, ENFILE, ENOBUFS, ENOMEM)."""

    def __init__(self, message: str, attempts: Sequence[Attempt] = ()) -> None:
        super().__init__(_errno.ENOBUFS, message, attempts)


def errno_name(code: int | None) -> str:
    return _errno.errorcode.get(code, str(code)) if code is not None else "?"


class NameResolutionError(ConnectError, socket.gaierror):
    """The name resolved to no address. Also a `socket.gaierror`; ``errno`` is an ``EAI_*``
    code (that of the family whose lookup failed last), ``__cause__`` groups every lookup's
    error."""


class ConnectionRefused(ConnectError, ConnectionRefusedError):
    """ECONNREFUSED as both a `ConnectError` and a `ConnectionRefusedError`."""


class ConnectionReset(ConnectError, ConnectionResetError):
    """ECONNRESET as both a `ConnectError` and a `ConnectionResetError`."""


class ConnectionAborted(ConnectError, ConnectionAbortedError):
    """ECONNABORTED as both a `ConnectError` and a `ConnectionAbortedError`."""


class PermissionDenied(ConnectError, PermissionError):
    """EACCES / EPERM (e.g. a firewall's prohibit route) as both kinds."""


_TYPED: dict[int, type[ConnectError]] = {
    _errno.ECONNREFUSED: ConnectionRefused,
    _errno.ECONNRESET: ConnectionReset,
    _errno.ECONNABORTED: ConnectionAborted,
    _errno.EACCES: PermissionDenied,
    _errno.EPERM: PermissionDenied,
}


def typed_error(error: ConnectError) -> ConnectError:
    """A plain `ConnectError` as the class that is also the builtin subclass of its errno
    (``except ConnectionRefusedError`` keeps working where aiohappyeyeballs re-raised one).
    Subclasses (timeout, out of resources, invalid argument) are returned as they are."""
    cls = _TYPED.get(error.errno or 0)
    if type(error) is not ConnectError or cls is None:
        return error
    typed = cls(error.errno or 0, error.strerror or str(error), error.attempts)
    typed.__cause__ = error.__cause__
    return typed
