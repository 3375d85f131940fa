"""The error family (SPEC §2.5, §3) and the choice of which error a failed race reports.

`ConnectError` is an `OSError`; the argument, not-a-socket and timeout cases are also
`ValueError`, `TypeError` and `TimeoutError`, so callers may catch what they already know.
"""

from __future__ import annotations

import errno as _errno
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
    "NotASocket",
    "OutOfResources",
    "race_error",
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


def describe_attempts(attempts: Sequence[Attempt]) -> str:
    parts = []
    for a in attempts:
        err = a.error
        what = f"{errno_name(err.errno)} {err.strerror or err}" if err is not None else a.outcome
        parts.append(f"{a.pair}: {what}")
    return "; ".join(parts)


def race_error(attempts: Sequence[Attempt], *, timed_out: bool, untried: int = 0) -> ConnectError:
    """The error a race that connected nothing reports (SPEC §2.5).

    Pure: the caller raises it. ``errno`` is that of the last attempt to fail, ETIMEDOUT when the
    deadline ended the race, ENOBUFS when the last failure was a resource shortage.
    """
    failed = [a for a in attempts if a.error is not None]
    last = max(failed, key=lambda a: (a.ended or 0.0, a.index), default=None)
    detail = describe_attempts(attempts) or "no attempt was started"
    if untried:
        detail += f"; {untried} pair(s) not tried"
    error: ConnectError
    if timed_out:
        error = ConnectTimeout(f"timed out connecting: {detail}", attempts)
    elif last is None:
        error = ConnectError(_errno.EHOSTUNREACH, f"no pair to try: {detail}", attempts)
    elif last.error is not None and last.error.errno in RESOURCE_ERRNOS:
        error = OutOfResources(f"out of resources: {detail}", attempts)
    else:
        code = (last.error.errno if last.error is not None else None) or _errno.ECONNREFUSED
        error = ConnectError(code, f"all {len(attempts)} attempt(s) failed: {detail}", attempts)
    if failed:
        error.__cause__ = ExceptionGroup(
            "connection attempts", [a.error for a in failed if a.error is not None]
        )
    return error
