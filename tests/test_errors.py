"""The error family: every ConnectError is also the built-in OSError subclass of its errno."""

from __future__ import annotations

import errno
import pickle

import pytest

from aioconnlist import (
    ConnectError,
    ConnectTimeout,
    InvalidArgument,
    NameResolutionError,
    NotASocket,
    OutOfResources,
)


@pytest.mark.parametrize("code", sorted(errno.errorcode))
def test_every_errno_gets_the_builtin_class_oserror_would_pick(code: int) -> None:
    error = ConnectError(code, "message")
    builtin = type(OSError(code, "message"))
    assert isinstance(error, ConnectError)
    assert isinstance(error, builtin)
    assert (error.errno, error.strerror, error.args) == (code, "message", (code, "message"))
    if builtin is OSError:
        assert type(error) is ConnectError


@pytest.mark.parametrize(
    ("code", "builtin"),
    [
        (errno.ECONNREFUSED, ConnectionRefusedError),
        (errno.ECONNRESET, ConnectionResetError),
        (errno.ECONNABORTED, ConnectionAbortedError),
        (errno.EPIPE, BrokenPipeError),
        (errno.EACCES, PermissionError),
        (errno.EPERM, PermissionError),
        (errno.ETIMEDOUT, TimeoutError),
        (errno.EINPROGRESS, BlockingIOError),
    ],
)
def test_ported_except_clauses_keep_matching(code: int, builtin: type[OSError]) -> None:
    with pytest.raises(builtin) as caught:
        raise ConnectError(code, "failed")
    assert caught.value.errno == code


def test_an_attempts_own_timeout_is_a_connect_timeout() -> None:
    assert isinstance(ConnectError(errno.ETIMEDOUT, "SYN unanswered"), ConnectTimeout)


@pytest.mark.parametrize(
    "error",
    [
        ConnectError(errno.ECONNREFUSED, "refused"),
        ConnectError(errno.EHOSTUNREACH, "unreachable"),
        InvalidArgument("bad"),
        NotASocket("not a socket"),
        ConnectTimeout("late"),
        OutOfResources("no fds"),
        NameResolutionError(-2, "no name"),
    ],
)
def test_every_class_pickles_as_itself(error: ConnectError) -> None:
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert (copy.errno, copy.strerror, copy.attempts) == (error.errno, error.strerror, ())
    assert str(copy) == str(error)


def test_the_subclasses_keep_their_errno() -> None:
    assert [e.errno for e in (InvalidArgument("x"), NotASocket("x"), ConnectTimeout("x"))] == [
        errno.EINVAL,
        errno.ENOTSOCK,
        errno.ETIMEDOUT,
    ]
    assert OutOfResources("x").errno == errno.ENOBUFS
    assert isinstance(InvalidArgument("x"), ValueError)
    assert isinstance(NotASocket("x"), TypeError)


def test_the_message_is_all_str_shows() -> None:
    # no file name: OSError would take a third constructor argument (attempts) for one
    error = ConnectError(errno.ECONNREFUSED, "refused", ())
    assert str(error) == f"[Errno {errno.ECONNREFUSED}] refused"
    assert error.filename is None
    assert str(InvalidArgument("bad", ())) == f"[Errno {errno.EINVAL}] bad"
