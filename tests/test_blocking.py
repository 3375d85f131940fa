"""The blocking facade (SPEC §3): real loopback sockets, every row of the error table.

Black hole: a listener with ``listen(0)`` whose one-slot accept queue is already full drops
new SYNs (SPEC §6). Tests that wait on one also set ``TCP_SYNCNT=1`` on the caller's socket
(copied to the attempts), so even a broken deadline ends them after ~3 s instead of ~130 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import json
import math
import os
import select
import signal
import socket
import ssl
import struct
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from aioconnlist import ConnectError, ConnectTimeout, InvalidArgument, NotASocket, blocking
from aioconnlist._core.pairs import LocalAddress
from tests.support import has_ipv6_loopback

FAST = {"local_addresses": None, "history": None}  # kernel's source, no cross-test memory


HAVE_IPV6 = has_ipv6_loopback()
needs_ipv6 = pytest.mark.skipif(not HAVE_IPV6, reason="no ::1 on this machine")


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def try_(f: Callable[[], Any]) -> Any:
    try:
        return f()
    except OSError as e:
        return ("error", e.errno)


def snapshot(sock: Any) -> tuple[Any, ...]:
    """Everything the facade must leave alone on error."""
    if not isinstance(sock, socket.socket) or sock.fileno() < 0:
        return (repr(sock),)
    fd = sock.fileno()
    return (
        fd,
        try_(sock.getsockname),
        try_(sock.getpeername),
        sock.gettimeout(),
        fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_NONBLOCK,
        sock.get_inheritable(),
        try_(lambda: sock.getsockopt(socket.SOL_SOCKET, socket.SO_TYPE)),
    )


class Listener:
    def __init__(self, host: str = "127.0.0.1", backlog: int = 64) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family)
        self.sock.bind((host, 0))
        self.sock.listen(backlog)
        self.sock.settimeout(5)
        self.address = self.sock.getsockname()[:2]

    def accept(self) -> socket.socket:
        conn, _ = self.sock.accept()
        return conn

    def close(self) -> None:
        self.sock.close()


def accepted_peer(server: Listener) -> Any:
    """Accept the next connection; return its peer (the client's local address)."""
    with server.accept() as conn:
        return conn.getpeername()


@pytest.fixture
def listener() -> Iterator[Listener]:
    server = Listener()
    yield server
    server.close()


@pytest.fixture
def listener6() -> Iterator[Listener]:
    if not HAVE_IPV6:
        pytest.skip("no ::1 on this machine")
    server = Listener("::1")
    yield server
    server.close()


def refused_address(host: str = "127.0.0.1") -> tuple[str, int]:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as s:
        s.bind((host, 0))
        return s.getsockname()[:2]


@contextlib.contextmanager
def black_hole_at(host: str = "127.0.0.1") -> Iterator[tuple[str, int]]:
    """A listener whose accept queue is full: further SYNs are dropped."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    server = socket.socket(family)
    server.bind((host, 0))
    server.listen(0)
    address = server.getsockname()[:2]
    filler = socket.create_connection(address, timeout=2)  # fills the queue
    probe = socket.socket(family)
    probe.setblocking(False)
    probe.connect_ex(address)
    # Check it really is a black hole on this kernel: the probe's SYN is not answered.
    assert probe.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0
    assert try_(probe.getpeername) == ("error", errno.ENOTCONN)
    probe.close()
    try:
        yield address
    finally:
        filler.close()
        server.close()


@pytest.fixture
def black_hole() -> Iterator[tuple[str, int]]:
    with black_hole_at() as address:
        yield address


@pytest.fixture(autouse=True)
def warm() -> None:
    """The option defaults are learned (a probe socket) before fds are counted."""
    server = Listener()
    try:
        for family in (socket.AF_INET, socket.AF_INET6):
            with socket.socket(family) as s:
                blocking.connect_by_list(s, [server.address], **FAST)
    finally:
        server.close()


def nonblocking_flag(sock: socket.socket) -> bool:
    return bool(fcntl.fcntl(sock.fileno(), fcntl.F_GETFL) & os.O_NONBLOCK)


def check_connection(
    sock: socket.socket, local: Any, remote: Any, server: Listener, seen_as: Any = None
) -> None:
    """``sock`` is really connected to ``server``: the server's peer is ``local`` (or, for
    a v4-mapped ``local``, ``seen_as``) and bytes flow."""
    conn = server.accept()
    try:
        assert conn.getpeername()[:2] == (seen_as or local)[:2]
        assert sock.getpeername() == remote
        assert sock.getsockname() == local
        conn.sendall(b"ping")
        got = b""
        for _ in range(4):  # a non-blocking caller socket: wait for readability first
            select.select([sock], [], [], 2)
            got += sock.recv(4 - len(got))
            if len(got) == 4:
                break
        assert got == b"ping"
    finally:
        conn.close()


# --------------------------------------------------------------------------- success


def test_connects_the_callers_own_socket(listener: Listener) -> None:
    sock = socket.socket()
    fd = sock.fileno()
    before = open_fds()
    local, remote = blocking.connect_by_list(sock, [listener.address], **FAST)
    assert sock.fileno() == fd
    assert remote == listener.address
    assert local[0] == "127.0.0.1" and local[1] != 0
    assert open_fds() == before  # the winner's descriptor replaced ours, nothing else left
    check_connection(sock, local, remote, listener)
    sock.close()


def test_connects_with_default_options(listener: Listener) -> None:
    # local_addresses="auto" and the shared history: the everyday call.
    with socket.socket() as sock:
        local, remote = blocking.connect_by_list(sock, [listener.address])
        assert remote == listener.address
        check_connection(sock, local, remote, listener)


@needs_ipv6
def test_ipv6_socket_to_ipv6(listener6: Listener) -> None:
    with socket.socket(socket.AF_INET6) as sock:
        local, remote = blocking.connect_by_list(sock, [f"[::1]:{listener6.address[1]}"], **FAST)
        assert remote[:2] == ("::1", listener6.address[1])
        check_connection(sock, local, remote, listener6)


def test_dual_stack_socket_reaches_ipv4_as_v4_mapped(listener: Listener) -> None:
    with socket.socket(socket.AF_INET6) as sock:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        local, remote = blocking.connect_by_list(sock, [listener.address], **FAST)
        assert remote == ("::ffff:127.0.0.1", listener.address[1], 0, 0)
        assert local[0] == "::ffff:127.0.0.1"
        check_connection(sock, local, remote, listener, seen_as=("127.0.0.1", local[1]))


@needs_ipv6
def test_v6only_socket_skips_ipv4(listener: Listener, listener6: Listener) -> None:
    with socket.socket(socket.AF_INET6) as sock:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        # The IPv4 listener comes first and would win if it were not skipped.
        _, remote = blocking.connect_by_list(
            sock, [listener.address, listener6.address], sort=False, **FAST
        )
        assert remote[:2] == listener6.address
        assert sock.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY) == 1


@needs_ipv6
def test_ipv4_socket_skips_ipv6(listener: Listener, listener6: Listener) -> None:
    with socket.socket(socket.AF_INET) as sock:
        _, remote = blocking.connect_by_list(
            sock, [listener6.address, listener.address], sort=False, **FAST
        )
        assert remote == listener.address


def test_explicit_ipv4_source_on_an_ipv4_socket(listener: Listener) -> None:
    with socket.socket() as sock:
        local, _ = blocking.connect_by_list(
            sock, [listener.address], local_addresses=["127.0.0.2"], history=None
        )
        assert local[0] == "127.0.0.2"
        check_connection(sock, local, sock.getpeername(), listener)


def test_explicit_ipv4_source_on_a_dual_stack_socket(listener: Listener) -> None:
    # The driver must bind an IPv4 source on an AF_INET6 socket as ::ffff:a.b.c.d.
    with socket.socket(socket.AF_INET6) as sock:
        local, _ = blocking.connect_by_list(
            sock, [listener.address], local_addresses=["127.0.0.2"], history=None
        )
        assert local[0] == "::ffff:127.0.0.2"
        check_connection(sock, local, sock.getpeername(), listener, seen_as=("127.0.0.2", local[1]))


def test_sources_of_the_wrong_family_are_dropped(listener: Listener) -> None:
    with socket.socket() as sock:
        local, _ = blocking.connect_by_list(
            sock, [listener.address], local_addresses=["::1", "127.0.0.3"], history=None
        )
        assert local[0] == "127.0.0.3"


def test_skips_refused_addresses(listener: Listener) -> None:
    with socket.socket() as sock:
        dead = refused_address("127.0.0.1")
        _, remote = blocking.connect_by_list(sock, [dead, listener.address], sort=False, **FAST)
        assert remote == listener.address


@pytest.mark.parametrize("timeout", [None, 0.0, 2.5])
def test_keeps_blocking_mode_and_timeout(listener: Listener, timeout: float | None) -> None:
    with socket.socket() as sock:
        sock.settimeout(timeout)
        was_nonblocking = nonblocking_flag(sock)
        local, remote = blocking.connect_by_list(sock, [listener.address], **FAST)
        # It blocked until connected even on a non-blocking socket.
        assert sock.getpeername() == remote
        assert sock.gettimeout() == timeout
        assert nonblocking_flag(sock) == was_nonblocking == (timeout is not None)
        check_connection(sock, local, remote, listener)


@pytest.mark.parametrize("inheritable", [False, True])
def test_keeps_inheritable_flag(listener: Listener, inheritable: bool) -> None:
    with socket.socket() as sock:
        sock.set_inheritable(inheritable)
        blocking.connect_by_list(sock, [listener.address], **FAST)
        assert sock.get_inheritable() is inheritable


def read_option(sock: socket.socket, level: int, option: int, size: int) -> Any:
    return sock.getsockopt(level, option, size) if size else sock.getsockopt(level, option)


def _set_options(sock: socket.socket) -> dict[str, tuple[int, int, int, Any]]:
    """Set non-default values; return name -> (level, option, buflen, value read back)."""
    tcp, sol = socket.IPPROTO_TCP, socket.SOL_SOCKET
    required: list[tuple[str, int, int | bytes]] = [  # SPEC §3's minimum
        ("TCP_NODELAY", tcp, 1),
        ("SO_KEEPALIVE", sol, 1),
        ("TCP_KEEPIDLE", tcp, 33),
        ("TCP_KEEPINTVL", tcp, 7),
        ("TCP_KEEPCNT", tcp, 4),
        ("SO_RCVBUF", sol, 50_000),
        ("SO_SNDBUF", sol, 70_000),
        ("SO_LINGER", sol, struct.pack("ii", 1, 7)),
        ("IP_TOS", socket.IPPROTO_IP, 0x28),
    ]
    if sock.family == socket.AF_INET6:
        required += [("IPV6_TCLASS", socket.IPPROTO_IPV6, 0x48)]
        required += [("IPV6_V6ONLY", socket.IPPROTO_IPV6, 1)]
    extra: list[tuple[str, int, int | bytes]] = [  # also copied, where allowed
        ("TCP_USER_TIMEOUT", tcp, 12_345),
        ("TCP_SYNCNT", tcp, 3),
        ("TCP_NOTSENT_LOWAT", tcp, 4096),
        ("TCP_CONGESTION", tcp, b"reno"),
        ("SO_PRIORITY", sol, 3),
        ("SO_MARK", sol, 7),  # needs CAP_NET_ADMIN
        ("SO_BINDTODEVICE", sol, b"lo"),  # needs CAP_NET_RAW on older kernels
        ("IP_TTL", socket.IPPROTO_IP, 33),
    ]
    read: dict[str, tuple[int, int, int, Any]] = {}
    with socket.socket(sock.family) as fresh:
        for name, level, value in required + extra:
            option = getattr(socket, name, None)
            if option is None:
                continue
            size = 16 if isinstance(value, bytes) else 0
            default = read_option(fresh, level, option, size)
            try:
                sock.setsockopt(level, option, value)
            except OSError:
                if (name, level, value) in required:
                    raise
                continue  # not allowed or not available here
            now = read_option(sock, level, option, size)
            assert now != default, name  # so the check below can fail
            read[name] = (level, option, size, now)
    return read


@pytest.mark.parametrize("family", [socket.AF_INET, socket.AF_INET6])
def test_keeps_socket_options(family: int, listener: Listener, listener6: Listener) -> None:
    with socket.socket(family) as sock:
        expected = _set_options(sock)
        target = listener6 if family == socket.AF_INET6 else listener
        local, remote = blocking.connect_by_list(sock, [target.address], **FAST)
        assert len(expected) >= 12
        for name, (level, option, size, value) in expected.items():
            assert read_option(sock, level, option, size) == value, name
        check_connection(sock, local, remote, target)


def test_options_are_set_before_connect(listener: Listener) -> None:
    # TCP_MAXSEG only matters in the SYN: the server sees it only if set before connect.
    with socket.socket() as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, 1000)
        blocking.connect_by_list(sock, [listener.address], **FAST)
        conn = listener.accept()
        try:
            assert conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG) <= 1000
        finally:
            conn.close()


def test_untouched_buffers_stay_default(listener: Listener) -> None:
    with socket.socket() as fresh, socket.socket() as sock:
        default = fresh.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        blocking.connect_by_list(sock, [listener.address], **FAST)
        # Not copied (copying would lock autotuning): right after connect it is the default.
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) == default


def test_mirrors_protocol(listener: Listener) -> None:
    mptcp = getattr(socket, "IPPROTO_MPTCP", 262)
    try:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, mptcp)
    except OSError:
        pytest.skip("no MPTCP in this kernel")
    with sock:
        blocking.connect_by_list(sock, [listener.address], **FAST)
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_PROTOCOL) == mptcp
        assert sock.getpeername() == listener.address


# --------------------------------------------------------------------------- the caller's socket
# The first kernel-choice pair of the socket's own family is tried on the caller's socket
# itself; other attempts get fresh sockets, and the caller's socket is restored when the race
# does not end connected on it. Which socket (file) is behind the fd tells which happened.


def socket_file(sock: socket.socket) -> int:
    """The identity of the socket behind ``sock``'s descriptor (its sockfs inode)."""
    return os.fstat(sock.fileno()).st_ino


def test_the_callers_socket_itself_connects(listener: Listener) -> None:
    with socket.socket() as sock:
        # an option the attempts would not copy: kept only if this very socket connected
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_OOBINLINE, 1)
        assert "SO_OOBINLINE" not in blocking.COPIED_OPTIONS
        before, fds = socket_file(sock), open_fds()
        local, remote = blocking.connect_by_list(sock, [listener.address], **FAST)
        assert socket_file(sock) == before
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_OOBINLINE) == 1
        assert open_fds() == fds
        check_connection(sock, local, remote, listener)


def test_another_pair_wins_after_the_callers_socket_failed(listener: Listener) -> None:
    seen, on_event = _events()
    with socket.socket() as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        before, fds = socket_file(sock), open_fds()
        dead = refused_address()
        local, remote = blocking.connect_by_list(
            sock, [dead, listener.address], sort=False, on_event=on_event, **FAST
        )
        assert remote == listener.address
        assert socket_file(sock) != before  # the winner's socket took the descriptor
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
        assert open_fds() == fds
        check_connection(sock, local, remote, listener)
    assert [(e.kind, e.index) for e in seen] == [
        ("started", 0),
        ("failed", 0),
        ("started", 1),
        ("won", 1),
    ]


@pytest.mark.parametrize("ending", ["refused", "deadline"])
@pytest.mark.parametrize("family", [socket.AF_INET, socket.AF_INET6])
def test_the_callers_socket_is_restored_after_a_lost_race(family: int, ending: str) -> None:
    if family == socket.AF_INET6 and not HAVE_IPV6:
        pytest.skip("no ::1 on this machine")
    host = "::1" if family == socket.AF_INET6 else "127.0.0.1"
    server = Listener(host)
    with contextlib.ExitStack() as stack, socket.socket(family) as sock:
        stack.callback(server.close)
        if ending == "refused":
            address, error = refused_address(host), ConnectError
        else:
            address, error = stack.enter_context(black_hole_at(host)), ConnectTimeout
        expected = _set_options(sock)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, 1000)  # reads differently...
        expected["TCP_MAXSEG"] = (socket.IPPROTO_TCP, socket.TCP_MAXSEG, 0, 1000)  # ...once used
        before, fds, file = snapshot(sock), open_fds(), socket_file(sock)
        with pytest.raises(error):
            blocking.connect_by_list(sock, [address], timeout=0.1, **FAST)
        assert snapshot(sock) == before
        assert socket_file(sock) != file  # the used socket was replaced by a fresh one
        for name, (level, option, size, value) in expected.items():
            assert read_option(sock, level, option, size) == value, name
        assert open_fds() == fds
        # It is as good as new: it connects like a socket that was never used.
        sock.connect(server.address)
        assert sock.getpeername()[:2] == server.address


def test_a_dual_stack_socket_is_not_lent_to_ipv4(listener: Listener) -> None:
    # (an IPv4 destination takes a v4-mapped connect on an AF_INET6 socket: a fresh one makes it)
    with socket.socket(socket.AF_INET6) as sock:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        file = socket_file(sock)
        blocking.connect_by_list(sock, [listener.address], **FAST)
        assert socket_file(sock) != file
        assert sock.getpeername()[0] == "::ffff:127.0.0.1"


def test_a_fast_open_socket_is_not_lent(listener: Listener) -> None:
    # TCP_FASTOPEN_CONNECT "connects" before any handshake: it would win every race.
    option = getattr(socket, "TCP_FASTOPEN_CONNECT", 30)
    with socket.socket() as sock:
        try:
            sock.setsockopt(socket.IPPROTO_TCP, option, 1)
        except OSError:
            pytest.skip("no TCP_FASTOPEN_CONNECT in this kernel")
        file = socket_file(sock)
        local, remote = blocking.connect_by_list(sock, [listener.address], **FAST)
        assert socket_file(sock) != file
        check_connection(sock, local, remote, listener)


@pytest.mark.parametrize("family", [socket.AF_INET, socket.AF_INET6])
@pytest.mark.parametrize("customised", [False, True])
def test_options_read_the_same_once_a_socket_connects(family: int, customised: bool) -> None:
    """What lets the caller's socket be lent before its options are read: on this kernel, every
    copied option but those read beforehand reads back the same while a connect is in flight
    and after one failed (so reading them then gives what reading them before would have)."""
    if family == socket.AF_INET6 and not HAVE_IPV6:
        pytest.skip("no ::1 on this machine")
    host = "::1" if family == socket.AF_INET6 else "127.0.0.1"
    early = blocking._READ_BEFORE_CONNECT
    names = [n for n in blocking.COPIED_OPTIONS if n not in early]
    specs = dict(zip(blocking.COPIED_OPTIONS, blocking._OPTIONS, strict=True))

    def read_all(sock: socket.socket) -> dict[str, Any]:
        return {n: try_(lambda n=n: read_option(sock, *specs[n])) for n in names + sorted(early)}

    with black_hole_at(host) as hole:
        for target in (hole, refused_address(host)):
            with socket.socket(family) as sock:
                if customised:
                    _set_options(sock)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_SYNCNT, 1)
                before = read_all(sock)
                sock.setblocking(False)
                sock.connect_ex(target)
                if target != hole:
                    select.select([], [sock], [], 2)
                    assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                after = read_all(sock)
                changed = {n for n in before if before[n] != after[n]}
                assert changed <= early, changed
                if target == hole and not customised:
                    # the check sees a connect's effect: the MSS is the route's once connecting
                    assert "TCP_MAXSEG" in changed


# --------------------------------------------------------------------------- errors


class Env:
    def __init__(self, server: Listener) -> None:
        self.server = server
        self.cleanup: list[Any] = []

    def sock(self, family: int = socket.AF_INET, kind: int = socket.SOCK_STREAM) -> socket.socket:
        s = socket.socket(family, kind)
        self.cleanup.append(s)
        return s


def _bound(env: Env) -> socket.socket:
    s = env.sock()
    s.bind(("127.0.0.1", 0))
    return s


def _connected(env: Env) -> socket.socket:
    s = env.sock()
    s.connect(env.server.address)
    env.cleanup.append(env.server.accept())
    return s


def _listening(env: Env) -> socket.socket:
    s = env.sock()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    return s


def _closed(env: Env) -> socket.socket:
    s = env.sock()
    s.close()
    return s


def _pipe_fd(env: Env) -> socket.socket:
    # socket.socket(fileno=<a pipe>) refuses at construction, so replace a socket's fd.
    s = env.sock()
    r, w = os.pipe()
    os.dup2(r, s.fileno())
    os.close(r)
    os.close(w)
    return s


def _unix_stream(env: Env) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    env.cleanup.append(s)
    return s


def _tls_wrapped(env: Env) -> socket.socket:
    s = ssl.create_default_context().wrap_socket(env.sock(), server_hostname="example.test")
    env.cleanup.append(s)
    return s


def _v6only(env: Env) -> socket.socket:
    s = env.sock(socket.AF_INET6)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    return s


A = "127.0.0.1:1"  # a well-formed address (never reached: these calls fail before connecting)
EINVAL, ENOTSOCK = InvalidArgument, NotASocket
ERROR_CASES: list[tuple[str, Callable[[Env], Any], dict[str, Any], type[ConnectError], str]] = [
    # (id, the socket, the call's arguments, the error, what its message must name)
    ("reserved", Env.sock, {"addresses": [A], "reserved": 0}, EINVAL, "reserved"),
    ("empty list", Env.sock, {"addresses": []}, EINVAL, "empty"),
    ("port 0", Env.sock, {"addresses": [("127.0.0.1", 0)]}, EINVAL, "port 0"),
    ("port 65536", Env.sock, {"addresses": [("127.0.0.1", 65536)]}, EINVAL, "port 65536"),
    ("host name", Env.sock, {"addresses": ["localhost:80"]}, EINVAL, "connect_by_name"),
    ("bound", _bound, {"addresses": [A]}, EINVAL, "bound"),
    ("connected", _connected, {"addresses": [A]}, EINVAL, "connected"),
    ("listening", _listening, {"addresses": [A]}, EINVAL, "listening"),
    ("udp", lambda env: env.sock(kind=socket.SOCK_DGRAM), {"addresses": [A]}, EINVAL, "STREAM"),
    ("unix stream", _unix_stream, {"addresses": [A]}, EINVAL, "AF_INET"),
    ("tls-wrapped", _tls_wrapped, {"addresses": [A]}, EINVAL, "TLS"),
    ("negative timeout", Env.sock, {"addresses": [A], "timeout": -1}, EINVAL, "timeout"),
    ("nan timeout", Env.sock, {"addresses": [A], "timeout": float("nan")}, EINVAL, "timeout"),
    ("bad option", Env.sock, {"addresses": [A], "attempt_delay": 0.001}, EINVAL, "attempt_delay"),
    ("ipv4 socket, ipv6 only", Env.sock, {"addresses": ["[::1]:80"]}, EINVAL, "AF_INET socket"),
    ("v6only socket, ipv4 only", _v6only, {"addresses": [A]}, EINVAL, "IPV6_V6ONLY"),
    (
        "ipv4 socket, ipv6 sources only",
        Env.sock,
        {"addresses": [A], "local_addresses": ["::1"]},
        EINVAL,
        "local address",
    ),
    ("None", lambda env: None, {"addresses": [A]}, ENOTSOCK, "socket.socket"),
    ("an int", lambda env: 3, {"addresses": [A]}, ENOTSOCK, "socket.socket"),
    ("closed", _closed, {"addresses": [A]}, ENOTSOCK, "closed"),
    ("fd is a pipe", _pipe_fd, {"addresses": [A]}, ENOTSOCK, "not an open socket"),
]


@pytest.mark.parametrize(
    ("make_sock", "kwargs", "expected", "named"),
    [case[1:] for case in ERROR_CASES],
    ids=[case[0] for case in ERROR_CASES],
)
def test_error_table(
    listener: Listener,
    make_sock: Callable[[Env], Any],
    kwargs: dict[str, Any],
    expected: type[ConnectError],
    named: str,
) -> None:
    env = Env(listener)
    try:
        sock = make_sock(env)
        before, fds = snapshot(sock), open_fds()
        with pytest.raises(expected) as caught:
            blocking.connect_by_list(sock, **kwargs)
        err = caught.value
        assert isinstance(err, ConnectError) and isinstance(err, OSError)
        if expected is InvalidArgument:
            assert err.errno == errno.EINVAL and isinstance(err, ValueError)
        else:
            assert err.errno == errno.ENOTSOCK and isinstance(err, TypeError)
        assert named in str(err)  # names the problem
        assert snapshot(sock) == before
        assert open_fds() == fds
    finally:
        for s in env.cleanup:
            s.close()


def test_unknown_option_is_a_type_error() -> None:
    # As for any Python call, and as in the async API.
    with socket.socket() as sock:
        before = snapshot(sock)
        with pytest.raises(TypeError, match="attempt_dealy"):
            blocking.connect_by_list(sock, [A], attempt_dealy=1)
        assert snapshot(sock) == before


def test_host_name_error_points_to_connect_by_name() -> None:
    with socket.socket() as sock, pytest.raises(InvalidArgument, match="connect_by_name"):
        blocking.connect_by_list(sock, ["localhost:80"])


def test_all_refused() -> None:
    with socket.socket() as sock:
        before, fds = snapshot(sock), open_fds()
        dead = [refused_address("127.0.0.1"), refused_address("127.0.0.1")]
        with pytest.raises(ConnectError) as caught:
            blocking.connect_by_list(sock, dead, **FAST)
        assert caught.value.errno == errno.ECONNREFUSED
        assert isinstance(caught.value, ConnectionRefusedError)  # what socket.connect raises
        for address in dead:
            assert f"{address[0]}:{address[1]}" in str(caught.value)
        assert snapshot(sock) == before
        assert open_fds() == fds


def test_deadline(black_hole: tuple[str, int]) -> None:
    with socket.socket() as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_SYNCNT, 1)
        before, fds = snapshot(sock), open_fds()
        start = time.monotonic()
        with pytest.raises(ConnectTimeout) as caught:
            blocking.connect_by_list(sock, [black_hole], timeout=0.2, **FAST)
        elapsed = time.monotonic() - start
        assert caught.value.errno == errno.ETIMEDOUT
        assert isinstance(caught.value, TimeoutError)
        assert 0.2 <= elapsed <= 0.3, elapsed
        assert snapshot(sock) == before
        assert open_fds() == fds


def test_zero_timeout_is_an_immediate_deadline(black_hole: tuple[str, int]) -> None:
    with socket.socket() as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_SYNCNT, 1)
        start = time.monotonic()
        with pytest.raises(ConnectTimeout):
            blocking.connect_by_list(sock, [black_hole], timeout=0, **FAST)
        assert time.monotonic() - start < 0.1


EMFILE_CHILD = textwrap.dedent(
    """
    import errno, json, os, resource, socket, sys
    from aioconnlist import blocking, OutOfResources

    state, case = sys.argv[1:]
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    if state == "warm":  # the option defaults are already learned
        with socket.socket() as s:
            blocking.connect_by_list(s, [listener.getsockname()], local_addresses=None)
    dead = socket.socket()
    dead.bind(("127.0.0.1", 0))  # bound, never listening: connects to it are refused
    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(0)
    filler = socket.create_connection(hole.getsockname())  # its queue is full: a black hole
    addresses = {
        "one": [listener.getsockname()],
        "refused first": [dead.getsockname(), listener.getsockname()],
        "deadline": [hole.getsockname()],
    }[case]
    sock = socket.socket()
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_SYNCNT, 1)
    fd = sock.fileno()
    fds = len(os.listdir("/proc/self/fd"))
    # No descriptor can be created any more: the limit just above the open ones, holes filled.
    top = max(int(n) for n in os.listdir("/proc/self/fd"))
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (top + 1, hard))
    fillers = []
    while True:
        try:
            fillers.append(os.open("/dev/null", os.O_RDONLY))
        except OSError as e:
            assert e.errno == errno.EMFILE
            break
    result = {}
    try:
        blocking.connect_by_list(
            sock, addresses, local_addresses=None, sort=False, history=None, timeout=0.2
        )
    except OutOfResources as e:
        causes, todo = [], [e.__cause__]
        while todo:
            c = todo.pop()
            if c is None:
                continue
            causes.append(getattr(c, "errno", None))
            todo.extend(getattr(c, "exceptions", ()))
            todo.append(c.__cause__)
        result = {"errno": e.errno, "causes": causes, "message": str(e)}
    except BaseException as e:
        result = {"unexpected": repr(e)}
    # (the TCP state, 2 = SYN_SENT: an attempt still in flight)
    result["tcp_state"] = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1)[0]
    for f in fillers:
        os.close(f)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    result["fd_leak"] = len(os.listdir("/proc/self/fd")) - fds
    result["same_fd"] = sock.fileno() == fd
    try:
        sock.getpeername()
        result["connected"] = True
    except OSError:
        result["connected"] = False
    result["bound"] = sock.getsockname()
    print(json.dumps(result))
    """
)


def out_of_descriptors(state: str, case: str) -> dict[str, Any]:
    """Run EMFILE_CHILD: a call made when no descriptor can be created; what it left."""
    run = subprocess.run(
        [sys.executable, "-c", EMFILE_CHILD, state, case],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    )
    assert run.returncode == 0, run.stderr
    result: dict[str, Any] = json.loads(run.stdout.strip().splitlines()[-1])
    assert "unexpected" not in result, result
    assert result["fd_leak"] == 0 and result["same_fd"], result
    return result


def test_out_of_descriptors_before_the_race() -> None:
    # The option defaults are learned from a probe socket on first use: none can be made.
    result = out_of_descriptors("cold", "one")
    assert result["errno"] == errno.ENOBUFS
    assert errno.EMFILE in result["causes"], result
    assert not result["connected"] and result["bound"] == ["0.0.0.0", 0]


def test_out_of_descriptors_the_callers_socket_still_connects() -> None:
    # The first kernel-choice pair is tried on the caller's own socket: no descriptor needed.
    result = out_of_descriptors("warm", "one")
    assert "errno" not in result, result
    assert result["connected"]


@pytest.mark.parametrize("case", ["refused first", "deadline"])
def test_out_of_descriptors_after_the_callers_socket_was_used(case: str) -> None:
    """The caller's socket made the first attempt; then neither another attempt socket nor a
    fresh socket to restore it with can be made. The error says so; the socket is unconnected
    and no attempt on it is left in flight."""
    result = out_of_descriptors("warm", case)
    assert result["errno"] == errno.ENOBUFS
    assert errno.EMFILE in result["causes"], result
    assert "could not be restored" in result["message"]
    assert not result["connected"]
    assert result["tcp_state"] != 2  # not SYN_SENT: the black-holed attempt was aborted


# --------------------------------------------------------------------------- threads and loops


def test_sixteen_threads_at_once(listener: Listener) -> None:
    fds = open_fds()
    barrier = threading.Barrier(16, timeout=10)
    results: dict[int, Any] = {}
    socks = [socket.socket() for _ in range(16)]

    def one(i: int) -> None:
        barrier.wait()
        try:
            results[i] = blocking.connect_by_list(socks[i], [listener.address], **FAST)
        except BaseException as e:
            results[i] = e

    threads = [threading.Thread(target=one, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    try:
        assert not any(t.is_alive() for t in threads)
        assert all(isinstance(r, tuple) for r in results.values()), results
        assert len(results) == 16
        accepted = {accepted_peer(listener) for _ in range(16)}
        assert accepted == {results[i][0] for i in range(16)}
        for i, s in enumerate(socks):
            assert s.getsockname() == results[i][0]
        # Each thread's private loop was closed with its thread; only our 16 sockets remain.
        assert open_fds() == fds + 16
    finally:
        for s in socks:
            s.close()


async def test_from_inside_a_running_loop(listener: Listener) -> None:
    loop_thread = threading.get_ident()
    with socket.socket() as sock:
        local, remote = blocking.connect_by_list(sock, [listener.address], **FAST)
        assert threading.get_ident() == loop_thread
        check_connection(sock, local, remote, listener)
    with socket.socket() as sock, pytest.raises(ConnectError) as caught:
        blocking.connect_by_list(sock, [refused_address()], **FAST)
    assert caught.value.errno == errno.ECONNREFUSED
    conn = blocking.create_connection([listener.address], **FAST)
    conn.close()
    await asyncio.sleep(0)  # the caller's loop still works


async def test_deadline_from_inside_a_running_loop(black_hole: tuple[str, int]) -> None:
    with socket.socket() as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_SYNCNT, 1)
        fds = open_fds()
        start = time.monotonic()
        with pytest.raises(ConnectTimeout):
            blocking.connect_by_list(sock, [black_hole], timeout=0.2, **FAST)
        assert 0.2 <= time.monotonic() - start <= 0.3
        assert open_fds() == fds


def test_from_an_on_event_callback(listener: Listener) -> None:
    """A blocking call made from inside a race (its on_event) must not deadlock."""
    nested: list[Any] = []

    def on_event(event: Any) -> None:
        if not nested:
            nested.append("entered")
            with socket.socket() as inner:
                nested.append(blocking.connect_by_list(inner, [listener.address], **FAST))

    with socket.socket() as sock:
        local, _ = blocking.connect_by_list(sock, [listener.address], on_event=on_event, **FAST)
    assert nested[0] == "entered" and isinstance(nested[1], tuple)
    assert {accepted_peer(listener), accepted_peer(listener)} == {
        local,
        nested[1][0],
    }


async def test_nested_on_event_calls_inside_a_running_loop(listener: Listener) -> None:
    """Two levels of blocking calls from on_event callbacks, all inside a running loop."""
    nested: list[Any] = []
    depth = 0

    def on_event(event: Any) -> None:
        nonlocal depth
        if depth < 2:
            depth += 1
            with socket.socket() as inner:
                nested.append(
                    blocking.connect_by_list(inner, [listener.address], on_event=on_event, **FAST)
                )

    with socket.socket() as sock:
        blocking.connect_by_list(sock, [listener.address], on_event=on_event, **FAST)
    assert len(nested) == 2 and all(isinstance(r, tuple) for r in nested)


SYN_SENT = 2  # the first byte of TCP_INFO: the connection's state


def _interrupted_call(black_hole: tuple[str, int], observed: bool) -> tuple[Any, Any, int, bool]:
    """Interrupt (SIGINT) a call while its attempt on the caller's own socket is in flight:
    (before, after, fds leaked, whether the descriptor is another socket's now). ``observed``:
    with an ``on_event`` callback (a `Race` runs even for one pair)."""
    main = threading.main_thread().ident
    assert main is not None
    seen: list[int] = []

    def interrupt_once_connecting(sock: socket.socket) -> None:
        for _ in range(5000):  # bounded: at most ~5 s
            seen.append(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1)[0])
            if seen[-1] == SYN_SENT:
                break
            time.sleep(0.001)
        signal.pthread_kill(main, signal.SIGINT)

    fds = open_fds()
    with socket.socket() as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_SYNCNT, 1)  # bounded even if it failed
        before, file = snapshot(sock), socket_file(sock)
        watcher = threading.Thread(target=interrupt_once_connecting, args=(sock,))
        start = time.monotonic()
        with pytest.raises(KeyboardInterrupt):
            watcher.start()
            blocking.connect_by_list(
                sock,
                [black_hole],
                on_event=(lambda _event: None) if observed else None,
                timeout=5,
                **FAST,
            )
        watcher.join(5)
        assert time.monotonic() - start < 1
        assert seen[-1] == SYN_SENT  # interrupted while connecting
        after, replaced = snapshot(sock), socket_file(sock) != file
    return before, after, open_fds() - fds, replaced


@pytest.mark.skipif(
    threading.current_thread() is not threading.main_thread(), reason="signals need main"
)
@pytest.mark.parametrize("observed", [False, True])
def test_keyboard_interrupt_cancels_the_race(black_hole: tuple[str, int], observed: bool) -> None:
    before, after, leaked, replaced = _interrupted_call(black_hole, observed)
    assert after == before
    assert replaced  # the used socket was restored (a fresh one took its descriptor)
    assert leaked == 0


@pytest.mark.skipif(
    threading.current_thread() is not threading.main_thread(), reason="signals need main"
)
def test_keyboard_interrupt_inside_a_running_loop(
    black_hole: tuple[str, int],
) -> None:
    loop = asyncio.new_event_loop()  # a plain loop: no SIGINT handler of asyncio.Runner

    async def inside() -> tuple[Any, Any, int, bool]:
        return _interrupted_call(black_hole, observed=False)

    try:
        before, after, leaked, replaced = loop.run_until_complete(inside())
    finally:
        loop.close()
    assert after == before and replaced
    assert leaked == 0


# --------------------------------------------------------------------------- create_connection


@pytest.mark.parametrize("timeout", [None, 3.0])
def test_create_connection(listener: Listener, timeout: float | None) -> None:
    fds = open_fds()
    sock = blocking.create_connection([refused_address(), listener.address], timeout, **FAST)
    try:
        assert sock.family == socket.AF_INET
        assert sock.gettimeout() == timeout
        assert nonblocking_flag(sock) == (timeout is not None)
        check_connection(sock, sock.getsockname(), listener.address, listener)
        assert open_fds() == fds + 1
    finally:
        sock.close()


@needs_ipv6
def test_create_connection_family_is_the_winners(listener6: Listener) -> None:
    with blocking.create_connection([listener6.address], **FAST) as sock:
        assert sock.family == socket.AF_INET6
        assert sock.getpeername()[:2] == listener6.address


def test_create_connection_errors(black_hole: tuple[str, int]) -> None:
    fds = open_fds()
    with pytest.raises(InvalidArgument):
        blocking.create_connection([])
    with pytest.raises(InvalidArgument):
        blocking.create_connection([A], timeout=-1)
    with pytest.raises(ConnectError) as refused:
        blocking.create_connection([refused_address()], **FAST)
    assert refused.value.errno == errno.ECONNREFUSED
    start = time.monotonic()
    with pytest.raises(ConnectTimeout):
        blocking.create_connection([black_hole], 0.2, **FAST)
    assert 0.2 <= time.monotonic() - start <= 0.3
    assert open_fds() == fds


def test_local_address_objects_are_accepted(listener: Listener) -> None:
    import ipaddress

    source = LocalAddress(ipaddress.ip_address("127.0.0.4"))
    with socket.socket() as sock:
        local, _ = blocking.connect_by_list(
            sock, [listener.address], local_addresses=[source], history=None
        )
        assert local[0] == "127.0.0.4"


# --------------------------------------------------------------------------- the race itself


def _events() -> tuple[list[Any], Callable[[Any], None]]:
    seen: list[Any] = []
    return seen, seen.append


def test_stagger_starts_the_next_pair_after_the_attempt_delay(
    listener: Listener, black_hole: tuple[str, int]
) -> None:
    seen, on_event = _events()
    with socket.socket() as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_SYNCNT, 1)
        fds = open_fds()
        start = time.monotonic()
        _, remote = blocking.connect_by_list(
            sock,
            [black_hole, listener.address],
            sort=False,
            attempt_delay=0.05,
            on_event=on_event,
            **FAST,
        )
        elapsed = time.monotonic() - start
        assert remote == listener.address
        assert 0.05 <= elapsed < 0.15, elapsed
        assert open_fds() == fds  # the black hole's attempt socket was closed
    kinds = [(e.kind, e.index) for e in seen]
    assert kinds == [("started", 0), ("started", 1), ("won", 1), ("cancelled", 0)]
    assert 0.05 <= seen[1].time < 0.1


def test_a_refusal_starts_the_next_pair_at_once(listener: Listener) -> None:
    with socket.socket() as sock:
        start = time.monotonic()
        blocking.connect_by_list(
            sock, [refused_address(), listener.address], sort=False, attempt_delay=2.0, **FAST
        )
        assert time.monotonic() - start < 0.5


def test_one_at_a_time_with_an_infinite_delay(
    listener: Listener, black_hole: tuple[str, int]
) -> None:
    seen, on_event = _events()
    with socket.socket() as sock, pytest.raises(ConnectTimeout) as caught:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_SYNCNT, 1)
        blocking.connect_by_list(
            sock,
            [black_hole, listener.address],
            sort=False,
            attempt_delay=math.inf,
            timeout=0.2,
            on_event=on_event,
            **FAST,
        )
    assert [e.kind for e in seen] == ["started", "cancelled"]
    assert len(caught.value.attempts) == 1 and caught.value.attempts[0].outcome == "timed out"


def test_deadline_with_several_attempts_in_flight() -> None:
    with (
        black_hole_at("127.0.0.1") as one,
        black_hole_at("127.0.0.2") as two,
        socket.socket() as sock,
    ):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_SYNCNT, 1)
        fds = open_fds()
        start = time.monotonic()
        with pytest.raises(ConnectTimeout) as caught:
            blocking.connect_by_list(
                sock,
                [one, two],
                sort=False,
                attempt_delay=0.05,
                timeout=0.2,
                backup_attempts=False,
                **FAST,
            )
        assert 0.2 <= time.monotonic() - start <= 0.3
        assert [a.outcome for a in caught.value.attempts] == ["timed out", "timed out"]
        assert open_fds() == fds


def test_history_learns_from_the_blocking_race(
    listener: Listener, black_hole: tuple[str, int]
) -> None:
    from aioconnlist import PairHistory

    history = PairHistory()
    options = {"local_addresses": None, "history": history, "attempt_delay": 0.05}
    with socket.socket() as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_SYNCNT, 1)
        blocking.connect_by_list(sock, [black_hole, listener.address], sort=False, **options)
    listener.accept().close()
    # The black hole stayed unanswered past its delay: a soft failure. The next race (sorted)
    # tries the listener first and connects without waiting for the delay.
    seen, on_event = _events()
    with socket.socket() as sock:
        start = time.monotonic()
        _, remote = blocking.connect_by_list(
            sock, [black_hole, listener.address], on_event=on_event, **options
        )
        assert time.monotonic() - start < 0.05
    assert remote == listener.address
    assert seen[0].pair.destination.port == listener.address[1]
