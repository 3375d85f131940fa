"""Synchronous Python: `blocking.create_connection` as `socket.create_connection`, `install()`,
and the stdlib clients (http.client, urllib.request, smtplib) racing with no code change.

Real sockets and servers on loopback. Names are resolved in a private mount namespace
(``unshare``: our own /etc/hosts and ``hosts: files``), so no DNS query leaves the machine.
"""

from __future__ import annotations

import errno
import http.client
import json
import os
import shutil
import smtplib
import socket
import subprocess
import sys
import textwrap
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aioconnlist import ConnectError, InvalidArgument, blocking
from aioconnlist._core.errors import ExceptionGroup
from tests.support import BlackHole, Listener, fd_count, refused_address
from tests.sync_servers import HTTPServer, SMTPServer

REPO = Path(__file__).resolve().parent.parent
FAST: dict[str, Any] = {"local_addresses": None, "history": None}


@pytest.fixture
def http_server() -> Iterator[HTTPServer]:
    server = HTTPServer()
    yield server
    server.close()


@pytest.fixture
def installed() -> Iterator[list[Any]]:
    """install() for the test with an on_event recorder; uninstalled afterwards."""
    events: list[Any] = []
    original = socket.create_connection
    blocking.install(on_event=events.append, history=None)
    try:
        yield events
    finally:
        blocking.uninstall()
    assert socket.create_connection is original


# --------------------------------------------------------------------------- create_connection


def test_host_port_literal_is_not_resolved(listener: Listener) -> None:
    fds = fd_count()
    with blocking.create_connection(("127.0.0.1", listener.port), **FAST) as sock:
        assert sock.getpeername() == listener.address
        assert sock.gettimeout() is None  # socket.getdefaulttimeout()
    with blocking.create_connection(("localhost", listener.port), 3, **FAST) as sock:
        assert sock.getpeername() == listener.address and sock.gettimeout() == 3
    with blocking.create_connection(("localhost", str(listener.port)), **FAST) as sock:
        assert sock.getpeername() == listener.address
    with blocking.create_connection([("127.0.0.1", listener.port)], **FAST) as sock:
        assert sock.getpeername() == listener.address
    assert fd_count() == fds


def test_timeout_keeps_the_stdlib_meaning(listener: Listener) -> None:
    socket.setdefaulttimeout(7)
    try:
        with blocking.create_connection(listener.address, **FAST) as sock:
            assert sock.gettimeout() == 7
        with blocking.create_connection(listener.address, None, **FAST) as sock:
            assert sock.gettimeout() is None and sock.getblocking()
    finally:
        socket.setdefaulttimeout(None)
    with blocking.create_connection(listener.address, timeout=0.5, **FAST) as sock:
        assert sock.gettimeout() == 0.5
    with pytest.raises(ValueError):
        blocking.create_connection(listener.address, -1)


def test_timeout_is_the_deadline_of_the_whole_call() -> None:
    """Three black-holed addresses and timeout=0.3: the stdlib would wait 0.3 s for each (0.9
    s); the race ends at 0.3 s with a TimeoutError, every socket closed."""
    holes = [BlackHole(f"127.0.0.{n}") for n in (2, 3, 4)]
    fds = fd_count()
    try:
        start = time.monotonic()
        with pytest.raises(TimeoutError) as caught:
            blocking.create_connection([h.address for h in holes], 0.3, attempt_delay=0.1, **FAST)
        elapsed = time.monotonic() - start
        assert isinstance(caught.value, ConnectError) and caught.value.errno == errno.ETIMEDOUT
        assert 0.3 <= elapsed < 0.6, elapsed
        assert len([a for a in caught.value.attempts if not a.backup]) == 3
        assert fd_count() == fds
    finally:
        for hole in holes:
            hole.close()


def test_errors_are_the_stdlib_classes() -> None:
    fds = fd_count()
    with pytest.raises(ConnectionRefusedError) as refused:
        blocking.create_connection(refused_address(), **FAST)
    assert isinstance(refused.value, ConnectError) and refused.value.errno == errno.ECONNREFUSED
    with pytest.raises(ExceptionGroup) as group:
        blocking.create_connection(
            [refused_address("127.0.0.1"), refused_address("127.0.0.5")], all_errors=True, **FAST
        )
    assert len(group.value.exceptions) == 2
    assert all(type(e) is ConnectionRefusedError for e in group.value.exceptions)
    hole = BlackHole("127.0.0.2")
    try:
        with pytest.raises(ExceptionGroup) as timed_out:
            blocking.create_connection(hole.address, 0.1, all_errors=True, **FAST)
        [only] = timed_out.value.exceptions
        assert isinstance(only, TimeoutError)
    finally:
        hole.close()
    assert fd_count() == fds


def test_source_address_binds_every_attempt(listener: Listener) -> None:
    with blocking.create_connection(listener.address, source_address=("127.0.0.7", 0)) as sock:
        assert sock.getsockname()[0] == "127.0.0.7"
    port = refused_address()[1]  # free just now
    with blocking.create_connection(listener.address, source_address=("", port), **FAST) as s:
        assert s.getsockname()[1] == port
    # a fixed port on every attempt: two overlapping attempts still bind it
    hole = BlackHole("127.0.0.2")
    try:
        with blocking.create_connection(
            [hole.address, listener.address],
            5,
            ("127.0.0.1", port),
            attempt_delay=0.05,
            sort=False,
            **FAST,
        ) as sock:
            assert sock.getsockname() == ("127.0.0.1", port)
            assert sock.getpeername() == listener.address
    finally:
        hole.close()
    with pytest.raises(InvalidArgument):  # no IPv6 destination for an IPv6 source
        blocking.create_connection(listener.address, source_address=("::1", 0))


def test_socket_options_are_set_before_connecting(listener: Listener) -> None:
    events: list[Any] = []
    options = [
        (socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),
        (socket.IPPROTO_TCP, socket.TCP_MAXSEG, 1000),  # takes effect only before connect
    ]
    with blocking.create_connection(
        listener.address, socket_options=options, on_event=events.append, **FAST
    ) as sock:
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG) <= 1000
    assert [e.kind for e in events] == ["started", "won"]


# --------------------------------------------------------------------------- CPython's tests

#: test.test_socket's create_connection tests that run against the racing function
CPYTHON_CLASSES = (
    "NetworkConnectionNoServer",
    "NetworkConnectionAttributesTest",
    "NetworkConnectionBehaviourTest",
    "BasicTCPTest2",
)
#: ... and the ones that do not apply, with why
CPYTHON_NOT_APPLICABLE = {
    # replaces socket.socket by a class whose connect() raises TimeoutError; the race makes
    # non-blocking connects with connect_ex(), so the mock's connect() is never called
    "test_create_connection_timeout": "mocks socket.socket.connect, which the race never calls",
}


def test_cpython_create_connection_tests_pass_against_it() -> None:
    """CPython's own socket.create_connection tests, run with install() in effect (the tests
    call socket.create_connection); see CPYTHON_NOT_APPLICABLE for the one left out."""
    import unittest

    from test import test_socket

    suite = unittest.TestSuite()
    for name in CPYTHON_CLASSES:
        case = getattr(test_socket, name, None)
        if case is None:
            continue  # not in this Python's version of the suite
        for test in unittest.defaultTestLoader.loadTestsFromTestCase(case):
            if test._testMethodName not in CPYTHON_NOT_APPLICABLE:
                suite.addTest(test)
    blocking.install()
    try:
        assert socket.create_connection is blocking._patched_create_connection
        result = unittest.TestResult()
        suite.run(result)
    finally:
        blocking.uninstall()
    problems = [f"{test}: {trace}" for test, trace in result.errors + result.failures]
    assert not problems, "\n".join(problems)
    assert result.testsRun >= 15, result.testsRun


# --------------------------------------------------------------------------- install()


def test_install_is_idempotent_and_uninstall_restores() -> None:
    original = socket.create_connection
    assert not blocking.installed()
    blocking.install()
    blocking.install(attempt_delay=0.1)  # again: new options, still one patch
    assert socket.create_connection is blocking._patched_create_connection
    assert blocking.installed()
    blocking.uninstall()
    blocking.uninstall()  # again: nothing to do
    assert socket.create_connection is original and not blocking.installed()
    with pytest.raises(TypeError, match="atempt_delay"):
        blocking.install(atempt_delay=0.1)  # type: ignore[call-arg]
    assert socket.create_connection is original


def test_install_restores_exactly_what_was_there() -> None:
    def someone_elses(*args: Any, **kwargs: Any) -> socket.socket:
        raise AssertionError("not called")

    original = socket.create_connection
    socket.create_connection = someone_elses  # type: ignore[assignment]
    try:
        blocking.install()
        assert socket.create_connection is blocking._patched_create_connection
        blocking.uninstall()
        assert socket.create_connection is someone_elses
    finally:
        socket.create_connection = original


def test_install_from_many_threads() -> None:
    original = socket.create_connection
    barrier = threading.Barrier(8)

    def flip() -> None:
        barrier.wait(5)
        for _ in range(50):
            blocking.install()
            blocking.uninstall()

    threads = [threading.Thread(target=flip) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert socket.create_connection is original and not blocking.installed()


def test_urllib3_is_patched_when_imported_before_and_after() -> None:
    """In fresh interpreters: urllib3 imported before install(), and after it."""
    code = textwrap.dedent(
        """
        import socket, sys
        from aioconnlist import blocking
        before = "{when}" == "before"
        if before:
            import urllib3
        stock_socket = socket.create_connection
        blocking.install()
        import urllib3.util.connection as uc
        import urllib3.connection
        stock = blocking._installed.urllib3_original
        patched = uc.create_connection is blocking._patched_urllib3_create_connection
        blocking.uninstall()
        print(patched, uc.create_connection is stock, socket.create_connection is stock_socket,
              stock.__module__, _finders := sum(type(f).__name__ == "_Urllib3Finder"
                                                  for f in sys.meta_path))
        """
    )
    for when in ("before", "after"):
        out = subprocess.run(
            [sys.executable, "-c", code.replace("{when}", when)],
            capture_output=True,
            text=True,
            cwd=REPO,
            timeout=60,
            check=True,
        ).stdout.split()
        assert out == ["True", "True", "True", "urllib3.util.connection", "0"], (when, out)


def test_http_client_races_with_no_code_change(
    installed: list[Any], http_server: HTTPServer
) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", http_server.port, timeout=5)
    try:
        conn.request("GET", "/a")
        response = conn.getresponse()
        assert response.status == 200 and response.read() == b"hello /a"
        assert conn.sock is not None and conn.sock.gettimeout() == 5
    finally:
        conn.close()
    assert [e.kind for e in installed] == ["started", "won"]


def test_urllib_request_races_with_no_code_change(
    installed: list[Any], http_server: HTTPServer
) -> None:
    url = f"http://127.0.0.1:{http_server.port}/b"
    with urllib.request.urlopen(url, timeout=5) as response:
        assert response.read() == b"hello /b"
    assert [e.kind for e in installed] == ["started", "won"]


def test_smtplib_races_with_no_code_change(installed: list[Any]) -> None:
    server = SMTPServer()
    try:
        with smtplib.SMTP("127.0.0.1", server.port, timeout=5) as smtp:
            smtp.sendmail("a@example.org", ["b@example.org"], "Subject: hi\r\n\r\nbody\r\n")
        assert len(server.messages) == 1 and b"body" in server.messages[0]
    finally:
        server.close()
    assert [e.kind for e in installed] == ["started", "won"]


def test_stdlib_errors_after_install(installed: list[Any]) -> None:
    with pytest.raises(ConnectionRefusedError):
        http.client.HTTPConnection(*refused_address(), timeout=5).connect()
    with pytest.raises(ConnectionRefusedError):  # urllib wraps it: URLError(reason=...)
        try:
            host, port = refused_address()
            urllib.request.urlopen(f"http://{host}:{port}/", timeout=5)
        except urllib.error.URLError as e:
            raise e.reason from None


# --------------------------------------------------------------------------- names


def private_hosts_command(tmp_path: Path, hosts: str) -> list[str]:
    """A command prefix running its program with ``hosts`` as /etc/hosts and no DNS."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("needs root and unshare(1) for a private /etc/hosts")
    (tmp_path / "hosts").write_text(hosts)
    (tmp_path / "nsswitch.conf").write_text("hosts: files\n")
    script = (
        f"mount --bind {tmp_path / 'hosts'} /etc/hosts && "
        f'mount --bind {tmp_path / "nsswitch.conf"} /etc/nsswitch.conf && exec "$@"'
    )
    return ["unshare", "--mount", "sh", "-c", script, "sh"]


NAME_SCENARIO = """
import json, socket, sys, time
from aioconnlist import blocking, PairHistory
from tests.support import BlackHole, Listener
hole = BlackHole("::1")  # the name's AAAA: a black hole
port = hole.address[1]
listener = socket.socket(); listener.bind(("127.0.0.1", port)); listener.listen(16)  # its A
events = []
out = {}
blocking.install(on_event=lambda e: events.append([e.kind, str(e.pair.destination)]),
                 history=PairHistory(), local_addresses=None)
for n in range(2):
    events.clear()
    start = time.monotonic()
    with socket.create_connection(("dual.invalid", port), timeout=10) as sock:
        out[f"call{n}"] = {"elapsed": time.monotonic() - start, "events": list(events),
                           "peer": sock.getpeername()[0]}
try:
    socket.create_connection(("nothing.invalid", port))
except OSError as e:
    out["error"] = [c.__name__ for c in type(e).__mro__]
blocking.uninstall()
print(json.dumps(out))
"""


def test_a_name_with_a_black_holed_aaaa(tmp_path: Path) -> None:
    """``socket.create_connection(("dual.invalid", port))`` after install(): the name's AAAA
    (::1) is black-holed, its A (127.0.0.1) listens. The stdlib would wait out the whole
    timeout on ::1; the race connects to 127.0.0.1 after one attempt delay, and the second
    call (history) starts with IPv4. An unknown name is a socket.gaierror."""
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    prefix = private_hosts_command(tmp_path, "::1 dual.invalid\n127.0.0.1 dual.invalid\n")
    proc = subprocess.run(
        [*prefix, sys.executable, "-c", NAME_SCENARIO],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    first, second = out["call0"], out["call1"]
    assert first["peer"] == "127.0.0.1" and second["peer"] == "127.0.0.1", out
    assert [kind for kind, _ in first["events"]] == ["started", "started", "won", "cancelled"]
    assert first["events"][0][1].startswith("[::1]"), first  # AAAA first (RFC 6724)
    assert first["elapsed"] < 5, first  # the attempt delay (0.25 s), not the timeout (10 s)
    assert second["events"][0][1].startswith("127.0.0.1:"), second  # history: IPv4 first
    assert [kind for kind, _ in second["events"]] == ["started", "won"], second
    assert "gaierror" in out["error"] and "NameResolutionError" in out["error"], out


def test_a_literal_of_the_wrong_family_for_urllib3s_resolver_family() -> None:
    from aioconnlist._io.lookup import resolve_blocking

    assert [str(e) for e in resolve_blocking("[::1]"[1:-1], 80)] == ["[::1]:80"]
    with pytest.raises(InvalidArgument):
        resolve_blocking("127.0.0.1", 80, socket.AF_INET6)


def test_a_literal_met_again_is_the_same_endpoint_and_checked_as_the_first_time() -> None:
    from aioconnlist._io.lookup import resolve_blocking

    first = resolve_blocking("127.0.0.1", 8081)
    again = resolve_blocking("127.0.0.1", 8081)
    assert again == first and again is not first  # a new list each call...
    assert again[0] is first[0]  # ...of the Endpoint met before (no parse: the plan cache's own)
    assert resolve_blocking("127.0.0.1", 8081, socket.AF_INET)[0] is first[0]
    with pytest.raises(InvalidArgument, match="not an address of family"):
        resolve_blocking("127.0.0.1", 8081, socket.AF_INET6)  # (a hit of another family)
    with pytest.raises(InvalidArgument, match="port"):
        resolve_blocking("127.0.0.1", 70000)  # a literal's bad port: ours to report
    assert [str(e) for e in resolve_blocking("::1", 8081)] == ["[::1]:8081"]
    assert resolve_blocking("::1", 8081)[0] is not first[0]  # keyed by host and port


@pytest.mark.parametrize("script", ["requests_client.py", "urllib3_client.py", "install_stdlib.py"])
def test_examples_run_on_their_own(script: str) -> None:
    proc = subprocess.run(
        [sys.executable, str(REPO / "examples" / script)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert ": 200" in proc.stdout and " won " in proc.stdout, proc.stdout


def test_socket_options_take_every_setsockopt_form(listener: Listener) -> None:
    # (level, option, value), and (level, option, None, length) as httpcore passes them on
    options = [
        (socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),
        (socket.SOL_SOCKET, socket.SO_KEEPALIVE, b"\x01\x00\x00\x00"),
        (socket.SOL_SOCKET, socket.SO_BINDTODEVICE, None, 0),
    ]
    with blocking.create_connection(listener.address, timeout=5, socket_options=options) as sock:
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
