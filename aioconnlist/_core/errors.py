"""The error family and the choice of which error a failed race reports.

`ConnectError` is an `OSError`; the argument, not-a-socket and timeout cases are also
`ValueError`, `TypeError` and `TimeoutError`, so callers may catch what they already know.
"""

from __future__ import annotations

import errno as _errno
import socket
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

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
]

#: errnos that mean the process or kernel is out of memory or descriptors (reported as ENOBUFS)
RESOURCE_ERRNOS = frozenset({_errno.EMFILE, _errno.ENFILE, _errno.ENOBUFS, _errno.ENOMEM})


class ConnectError(OSError):
    """Connecting failed. ``errno`` is that of the last attempt to fail (ETIMEDOUT on deadline).

    ``attempts`` lists every attempt made (pair, start/end times, exception).

    Like ``OSError(errno, message)``, ``ConnectError(errno, message)`` makes an instance of the
    class that is also the built-in subclass for that errno: ``ConnectError(ECONNREFUSED, ...)``
    is a `ConnectionRefused`, so ``except ConnectionRefusedError:`` catches it; an errno with
    no built-in subclass (EHOSTUNREACH, ENETUNREACH, ...) stays a plain `ConnectError`.
    """

    attempts: tuple[Attempt, ...]

    def __new__(cls, *args: Any, **kwargs: Any) -> ConnectError:
        # (OSError.__new__ gets no more than two arguments: from a third it would take a file
        # name, which str() then shows; __init__ sets the fields as OSError(code, message))
        if cls is ConnectError and args and isinstance(args[0], int):
            return super().__new__(_class_of(args[0]), *args[:2])
        return super().__new__(cls, *args[:2])

    def __init__(self, code: int, message: str, attempts: Sequence[Attempt] = ()) -> None:
        super().__init__(code, message)
        # (with a __new__ of its own, OSError takes its fields from the constructor's arguments,
        # which differ in the subclasses: set them as OSError(code, message) would)
        self.args = (code, message)
        self.errno = code
        self.strerror = message
        self.attempts = tuple(attempts)

    def __reduce__(self):  # type: ignore[no-untyped-def]  # keep the subclass when pickled
        return (_rebuild, (type(self), self.errno, self.strerror, self.attempts))


def _rebuild(
    cls: type[ConnectError], code: int, message: str, attempts: Sequence[Attempt]
) -> ConnectError:
    """Unpickle a `ConnectError` of any subclass, whatever its constructor takes."""
    error = ConnectError.__new__(cls, code, message)
    ConnectError.__init__(error, code, message, attempts)
    return error


class InvalidArgument(ConnectError, ValueError):
    """EINVAL: the call's arguments cannot work (``WSAEINVAL``; also a ``ValueError``)."""

    def __init__(self, message: str, attempts: Sequence[Attempt] = ()) -> None:
        super().__init__(_errno.EINVAL, message, attempts)


class NotASocket(ConnectError, TypeError):
    """ENOTSOCK: what was given as a socket is not an open socket (``WSAENOTSOCK``).

    Also a ``TypeError``.
    """

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
    """ECONNREFUSED: both a `ConnectError` and a `ConnectionRefusedError`."""


class ConnectionReset(ConnectError, ConnectionResetError):
    """ECONNRESET: both a `ConnectError` and a `ConnectionResetError`."""


class ConnectionAborted(ConnectError, ConnectionAbortedError):
    """ECONNABORTED: both a `ConnectError` and a `ConnectionAbortedError`."""


class BrokenPipe(ConnectError, BrokenPipeError):
    """EPIPE / ESHUTDOWN: both a `ConnectError` and a `BrokenPipeError`."""


class PermissionDenied(ConnectError, PermissionError):
    """EACCES / EPERM (e.g. a firewall's prohibit route): also a `PermissionError`."""


class TimedOut(ConnectTimeout):
    """ETIMEDOUT reported by an attempt itself (the kernel gave up on the SYN): a
    `ConnectTimeout`, so also a `TimeoutError`."""

    def __init__(self, code: int, message: str, attempts: Sequence[Attempt] = ()) -> None:
        ConnectError.__init__(self, code, message, attempts)


class WouldBlock(ConnectError, BlockingIOError):
    """EAGAIN / EWOULDBLOCK / EINPROGRESS / EALREADY: also a `BlockingIOError`."""


class Interrupted(ConnectError, InterruptedError):
    """EINTR: also an `InterruptedError`."""


# Not what a TCP connect reports, but an errno handed to ConnectError gets its class all the same.
class FileNotFound(ConnectError, FileNotFoundError):
    """ENOENT: also a `FileNotFoundError`."""


class FileExists(ConnectError, FileExistsError):
    """EEXIST: also a `FileExistsError`."""


class NotADirectory(ConnectError, NotADirectoryError):
    """ENOTDIR: also a `NotADirectoryError`."""


class IsADirectory(ConnectError, IsADirectoryError):
    """EISDIR: also an `IsADirectoryError`."""


class ProcessLookup(ConnectError, ProcessLookupError):
    """ESRCH: also a `ProcessLookupError`."""


class ChildProcess(ConnectError, ChildProcessError):
    """ECHILD: also a `ChildProcessError`."""


def _by_errno() -> dict[int, type[ConnectError]]:
    """Each errno ``OSError(errno, ...)`` maps to a built-in subclass, with our class for it."""
    ours: tuple[type[ConnectError], ...] = (
        ConnectionRefused,
        ConnectionReset,
        ConnectionAborted,
        BrokenPipe,
        PermissionDenied,
        TimedOut,
        WouldBlock,
        Interrupted,
        FileNotFound,
        FileExists,
        NotADirectory,
        IsADirectory,
        ProcessLookup,
        ChildProcess,
    )
    mapping: dict[int, type[ConnectError]] = {}
    for code in _errno.errorcode:
        builtin = type(OSError(code, ""))
        for cls in ours:
            if builtin is not OSError and issubclass(cls, builtin):
                mapping[code] = cls
    return mapping


_BY_ERRNO: dict[int, type[ConnectError]] = {}


def _class_of(code: int) -> type[ConnectError]:
    """Our class for ``code`` (the table is made at the first error, not at import)."""
    if not _BY_ERRNO:
        _BY_ERRNO.update(_by_errno())
    return _BY_ERRNO.get(code, ConnectError)
