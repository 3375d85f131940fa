"""`aioconnlist.urllib3` and `aioconnlist.requests` with the real libraries against real
servers on loopback: HTTP, HTTPS (a trustme certificate), an HTTP proxy (CONNECT and
forwarding), urllib3's and requests' own error classes, descriptors counted."""

from __future__ import annotations

import gc
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import urllib3
from urllib3.exceptions import ConnectTimeoutError, MaxRetryError, NewConnectionError

from aioconnlist import PairHistory
from aioconnlist.requests import HTTPAdapter
from aioconnlist.urllib3 import (
    HTTPConnectionPool,
    HTTPSConnectionPool,
    PoolManager,
    ProxyManager,
)
from tests.support import BlackHole, refused_address
from tests.sync_servers import HTTPServer, ProxyServer, client_sockets, tls_pair

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def http_server() -> Iterator[HTTPServer]:
    server = HTTPServer()
    yield server
    server.close()


@pytest.fixture
def https_server() -> Iterator[tuple[HTTPServer, str]]:
    with tls_pair() as (context, bundle):
        server = HTTPServer(tls=context)
        yield server, bundle
        server.close()


@pytest.fixture
def proxy() -> Iterator[ProxyServer]:
    server = ProxyServer()
    yield server
    server.close()


def recorder() -> tuple[list[Any], dict[str, Any]]:
    events: list[Any] = []
    return events, {"on_event": events.append, "history": PairHistory()}


def kinds(events: list[Any]) -> list[str]:
    return [e.kind for e in events]


# --------------------------------------------------------------------------- urllib3


def test_pool_manager_http_and_reuse(http_server: HTTPServer) -> None:
    events, options = recorder()
    with PoolManager(**options) as http:
        for n in range(3):
            response = http.request("GET", f"http://127.0.0.1:{http_server.port}/{n}")
            assert response.status == 200 and response.data == f"hello /{n}".encode()
        assert kinds(events) == ["started", "won"]  # one connection, kept alive and reused
        assert client_sockets(http_server.port) == 1
    del response  # (it holds its connection's file until it goes)
    gc.collect()
    assert client_sockets(http_server.port) == 0


def test_pool_manager_https_with_a_test_ca(https_server: tuple[HTTPServer, str]) -> None:
    server, bundle = https_server
    events, options = recorder()
    with PoolManager(ca_certs=bundle, **options) as http:
        response = http.request("GET", f"https://localhost:{server.port}/tls")
        assert response.status == 200 and response.data == b"hello /tls"
    assert kinds(events) == ["started", "won"]
    # verification is urllib3's: without the CA, its SSLError
    with PoolManager(retries=False, **options) as http:  # noqa: SIM117
        with pytest.raises(urllib3.exceptions.SSLError):
            http.request("GET", f"https://localhost:{server.port}/tls")


def test_pools_take_urllib3s_arguments_and_ours(
    http_server: HTTPServer, https_server: tuple[HTTPServer, str]
) -> None:
    events, options = recorder()
    pool = HTTPConnectionPool(
        "127.0.0.1", http_server.port, maxsize=2, timeout=urllib3.Timeout(connect=2, read=2),
        attempt_delay=0.1, **options,
    )  # fmt: skip
    with pool:
        assert pool.request("GET", "/p").data == b"hello /p"
    server, bundle = https_server
    with HTTPSConnectionPool("localhost", server.port, ca_certs=bundle, **options) as tls:
        assert tls.request("GET", "/s").data == b"hello /s"
    assert kinds(events) == ["started", "won", "started", "won"]
    with pytest.raises(ValueError, match="attempt_delay"):
        HTTPConnectionPool("127.0.0.1", 80, attempt_delay="soon")  # our option, checked


def test_connect_timeout_is_the_race_deadline() -> None:
    """Two black holes and Timeout(connect=0.3): ConnectTimeoutError at 0.3 s (stock urllib3
    spends 0.3 s on each address), inside MaxRetryError when retries are on."""
    holes = [BlackHole("127.0.0.2"), BlackHole("127.0.0.3")]
    events, options = recorder()
    try:
        pool = HTTPConnectionPool(
            "127.0.0.2", holes[0].address[1], timeout=urllib3.Timeout(connect=0.3),
            retries=False, **options,
        )  # fmt: skip
        start = time.monotonic()
        with pytest.raises(ConnectTimeoutError):
            pool.request("GET", "/")
        assert 0.3 <= time.monotonic() - start < 0.6
        pool.close()
        with PoolManager(timeout=urllib3.Timeout(connect=0.2), retries=1, **options) as http:
            with pytest.raises(MaxRetryError) as caught:
                http.request("GET", f"http://127.0.0.3:{holes[1].address[1]}/")
            assert isinstance(caught.value.reason, ConnectTimeoutError)
        # one attempt per try (and possibly a backup attempt of the first, due at 0.25 s,
        # inside its 0.3 s deadline)
        backups = [e.backup for e in events if e.kind == "started"]
        assert backups.count(False) == 3 and backups.count(True) <= 1, backups
        # the attempts closed: only the holes' own fillers are connected to them
        assert sum(client_sockets(h.address[1]) for h in holes) == sum(
            len(h.fillers) for h in holes
        )
    finally:
        for hole in holes:
            hole.close()


def test_refused_is_new_connection_error() -> None:
    host, port = refused_address()
    with (
        PoolManager(retries=False, history=None) as http,
        pytest.raises(NewConnectionError) as caught,
    ):
        http.request("GET", f"http://{host}:{port}/")
    assert isinstance(caught.value.__cause__, ConnectionRefusedError)
    with PoolManager(retries=2, history=None) as http, pytest.raises(MaxRetryError) as retried:
        http.request("GET", f"http://{host}:{port}/")
    assert isinstance(retried.value.reason, NewConnectionError)


def test_proxy_forwarding_and_tunnel(
    proxy: ProxyServer, http_server: HTTPServer, https_server: tuple[HTTPServer, str]
) -> None:
    events, options = recorder()
    server, bundle = https_server
    with ProxyManager(proxy.url, ca_certs=bundle, **options) as http:
        plain = http.request("GET", f"http://127.0.0.1:{http_server.port}/fwd")
        assert plain.data == f"hello http://127.0.0.1:{http_server.port}/fwd".encode()
        tunneled = http.request("GET", f"https://localhost:{server.port}/tun")
        assert tunneled.data == b"hello /tun"
    assert proxy.requests[0].startswith(f"GET http://127.0.0.1:{http_server.port}/fwd ")
    assert proxy.requests[1].startswith(f"CONNECT localhost:{server.port} HTTP/1.")
    # both connections went to the proxy, through the race
    destinations = {str(e.pair.destination) for e in events if e.kind == "won"}
    assert destinations == {f"127.0.0.1:{proxy.port}"}


def test_missing_extra_names_the_pip_command() -> None:
    code = (
        "import sys; sys.modules['urllib3'] = None; sys.modules['requests'] = None\n"
        "for name in ('aioconnlist.urllib3', 'aioconnlist.requests'):\n"
        "    try:\n"
        "        __import__(name)\n"
        "    except ImportError as e:\n"
        "        print(e)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60
    ).stdout.splitlines()
    assert "pip install 'aioconnlist[urllib3]'" in out[0], out
    assert "pip install 'aioconnlist[" in out[1], out


# --------------------------------------------------------------------------- requests


def session_with(**options: Any) -> requests.Session:
    session = requests.Session()
    session.mount("http://", HTTPAdapter(**options))
    session.mount("https://", HTTPAdapter(**options))
    return session


def test_requests_session_http_https(
    http_server: HTTPServer, https_server: tuple[HTTPServer, str]
) -> None:
    events, options = recorder()
    server, bundle = https_server
    with session_with(**options) as session:
        assert session.get(f"http://127.0.0.1:{http_server.port}/r", timeout=5).text == "hello /r"
        got = session.get(f"https://localhost:{server.port}/rs", verify=bundle, timeout=5)
        assert got.text == "hello /rs"
        assert session.get(f"http://127.0.0.1:{http_server.port}/r2", timeout=5).ok
        assert client_sockets(http_server.port) == client_sockets(server.port) == 1
    assert kinds(events) == ["started", "won", "started", "won"]  # the third reused
    del got  # (it holds its connection's file until it goes)
    gc.collect()
    assert client_sockets(http_server.port) == client_sockets(server.port) == 0


def test_requests_errors_are_stock() -> None:
    host, port = refused_address()
    with session_with(history=None) as session, pytest.raises(requests.ConnectionError):
        session.get(f"http://{host}:{port}/", timeout=5)
    hole = BlackHole("127.0.0.2")
    try:
        with session_with(history=None) as session:
            start = time.monotonic()
            with pytest.raises(requests.ConnectTimeout):
                session.get(f"http://127.0.0.2:{hole.address[1]}/", timeout=(0.2, 5))
            assert time.monotonic() - start < 1.0
    finally:
        hole.close()


def test_requests_through_a_proxy(
    proxy: ProxyServer, http_server: HTTPServer, https_server: tuple[HTTPServer, str]
) -> None:
    events, options = recorder()
    server, bundle = https_server
    proxies = {"http": proxy.url, "https": proxy.url}
    with session_with(**options) as session:
        url = f"http://127.0.0.1:{http_server.port}/via"
        assert session.get(url, proxies=proxies, timeout=5).text == f"hello {url}"
        tls = session.get(
            f"https://localhost:{server.port}/tls", proxies=proxies, verify=bundle, timeout=5
        )
        assert tls.text == "hello /tls"
    assert len(proxy.requests) == 2 and proxy.requests[1].startswith("CONNECT ")
    assert {str(e.pair.destination) for e in events if e.kind == "won"} == {
        f"127.0.0.1:{proxy.port}"
    }


def test_adapter_pickles_with_its_options(http_server: HTTPServer) -> None:
    import pickle

    adapter = HTTPAdapter(attempt_delay=0.1, pool_maxsize=3)
    copy = pickle.loads(pickle.dumps(adapter))
    assert copy.race_options == {"attempt_delay": 0.1}
    assert isinstance(copy.poolmanager, PoolManager)
    adapter.close()
    copy.close()


NAME_ERRORS = """
import json, requests, urllib3
from aioconnlist.urllib3 import PoolManager
from aioconnlist.requests import HTTPAdapter
out = {}
try:
    PoolManager(retries=False).request("GET", "http://nothing.invalid:80/")
except urllib3.exceptions.NameResolutionError as e:
    import socket
    out["urllib3"] = "gaierror" if isinstance(e.__cause__, socket.gaierror) else repr(e)
session = requests.Session()
session.mount("http://", HTTPAdapter())
try:
    session.get("http://nothing.invalid:80/", timeout=5)
except requests.ConnectionError as e:
    out["requests"] = type(e.args[0].reason).__name__
print(json.dumps(out))
"""


def test_name_resolution_errors_are_stock(tmp_path: Path) -> None:
    """An unknown name (private /etc/hosts, no DNS): urllib3's NameResolutionError (caused by
    a socket.gaierror), requests' ConnectionError around it."""
    import json

    from tests.test_sync import private_hosts_command

    prefix = private_hosts_command(tmp_path, "127.0.0.1 localhost\n")
    proc = subprocess.run(
        [*prefix, sys.executable, "-c", NAME_ERRORS],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"urllib3": "gaierror", "requests": "NameResolutionError"}
