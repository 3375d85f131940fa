"""aioconnlist.httpx / aioconnlist.httpcore with real httpx clients against real servers on
loopback (hypercorn for HTTP/1.1 and HTTP/2 over TLS, a CONNECT proxy; see
tests/httpx_servers.py), on asyncio and uvloop, and the synchronous twin."""

from __future__ import annotations

import asyncio
import importlib
import re
import socket
import ssl
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

httpx = pytest.importorskip("httpx")
httpcore = pytest.importorskip("httpcore")
pytest.importorskip("hypercorn")
pytest.importorskip("trustme")

import aioconnlist.httpcore as ours_httpcore  # noqa: E402
import aioconnlist.httpx as ours_httpx  # noqa: E402
from aioconnlist import PairHistory, RaceEvent  # noqa: E402
from aioconnlist.httpx import AsyncHTTPTransport, HTTPTransport  # noqa: E402
from tests.httpx_support import Servers, TableResolver, running_servers, wscale_of  # noqa: E402
from tests.support import BlackHole, fd_count, refused_address  # noqa: E402

TIMEOUT = httpx.Timeout(10.0)
# The async tests use IP literals, or names from their own resolver: the system resolver's
# separate AAAA lookup of "localhost" goes to the DNS server where /etc/hosts has no ::1 line.


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    with running_servers(tmp_path_factory.mktemp("httpx")) as running:
        yield running


def won(events: list[RaceEvent]) -> list[RaceEvent]:
    return [e for e in events if e.kind == "won"]


def started(events: list[RaceEvent]) -> list[str]:
    return [str(e.pair.destination) for e in events if e.kind == "started"]


def private() -> dict[str, Any]:
    """Race options that keep a test's history (and so its plans) to itself."""
    events: list[RaceEvent] = []
    return {"history": PairHistory(), "on_event": events.append, "_events": events}


def split(opts: dict[str, Any]) -> tuple[dict[str, Any], list[RaceEvent]]:
    events = opts.pop("_events")
    return opts, events


async def closed_down_to(count: int) -> None:
    """uvloop closes a transport's descriptor a few loop iterations after ``close()``: let
    them run (bounded), then the count must be back."""
    for _ in range(100):
        if fd_count() <= count:
            break
        await asyncio.sleep(0)
    assert fd_count() == count


# ---------------------------------------------------------------- async: asyncio and uvloop


@pytest.mark.both_loops
async def test_async_http1_fetch_is_raced_and_stream_is_httpcores(servers: Servers) -> None:
    opts, events = split(private())
    async with httpx.AsyncClient(transport=AsyncHTTPTransport(**opts), timeout=TIMEOUT) as c:
        r = await c.get(f"http://127.0.0.1:{servers.plain}/one")
        assert r.status_code == 200 and r.json()["http_version"] == "1.1"
        stream = r.extensions["network_stream"]
        assert stream.get_extra_info("server_addr")[:2] == ("127.0.0.1", servers.plain)
        assert stream.get_extra_info("client_addr")[:2] == tuple(r.json()["client"])
        assert stream.get_extra_info("socket").getsockopt(socket.SOL_SOCKET, socket.SO_TYPE) == 1
        assert stream.get_extra_info("is_readable") is False
        assert stream.get_extra_info("ssl_object") is None
        for _ in range(3):  # keep-alive: the connection is reused, no new race
            assert (await c.get(f"http://127.0.0.1:{servers.plain}/again")).status_code == 200
    assert [str(e.pair.destination) for e in won(events)] == [f"127.0.0.1:{servers.plain}"]


@pytest.mark.both_loops
async def test_async_http2_over_tls(servers: Servers) -> None:
    opts, events = split(private())
    transport = AsyncHTTPTransport(verify=servers.client_context, http2=True, **opts)
    async with httpx.AsyncClient(transport=transport, timeout=TIMEOUT) as c:
        url = f"https://127.0.0.1:{servers.tls}/h2"
        responses = await asyncio.gather(*(c.get(url) for _ in range(5)))
        for r in responses:
            assert r.status_code == 200 and r.http_version == "HTTP/2", r
            assert r.json()["http_version"] == "2"
        ssl_object = responses[0].extensions["network_stream"].get_extra_info("ssl_object")
        assert ssl_object is not None and ssl_object.selected_alpn_protocol() == "h2"
    assert len(won(events)) == 1  # five streams over one connection


@pytest.mark.both_loops
async def test_async_tls_certificate_is_checked_as_httpx_does(servers: Servers) -> None:
    """An unknown CA fails as with httpx's own backend (``httpx.ConnectError``; with
    httpcore 1.0.0, whose stream did not map it yet, the ``ssl`` error itself)."""
    raised = []
    for transport in (httpx.AsyncHTTPTransport(), AsyncHTTPTransport(**split(private())[0])):
        async with httpx.AsyncClient(transport=transport) as c:
            with pytest.raises((httpx.ConnectError, ssl.SSLError)) as info:
                await c.get(f"https://127.0.0.1:{servers.tls}/")
        raised.append(type(info.value))
    assert raised[0] is raised[1]


@pytest.mark.both_loops
@pytest.mark.parametrize("proxy_tls", [False, True], ids=["http-proxy", "https-proxy"])
async def test_async_https_through_connect_proxy(servers: Servers, proxy_tls: bool) -> None:
    opts, events = split(private())
    if proxy_tls:  # TLS in TLS: start_tls on a stream that is TLS already
        proxy = httpx.Proxy(
            f"https://127.0.0.1:{servers.proxy_tls}", ssl_context=servers.client_context
        )
    else:
        proxy = httpx.Proxy(f"http://127.0.0.1:{servers.proxy}")
    transport = AsyncHTTPTransport(verify=servers.client_context, proxy=proxy, http2=True, **opts)
    async with httpx.AsyncClient(transport=transport, timeout=TIMEOUT) as c:
        r = await c.get(f"https://127.0.0.1:{servers.tls}/via-proxy")
        assert r.status_code == 200 and r.http_version == "HTTP/2"
        assert r.json()["path"] == "/via-proxy"
    port = servers.proxy_tls if proxy_tls else servers.proxy
    assert [e.pair.destination.port for e in won(events)] == [port]  # the race reached the proxy


@pytest.mark.both_loops
async def test_async_pool_limits(servers: Servers) -> None:
    url = f"http://127.0.0.1:{servers.plain}/"
    opts, events = split(private())
    one = httpx.Limits(max_connections=1)
    async with httpx.AsyncClient(transport=AsyncHTTPTransport(limits=one, **opts)) as c:
        responses = await asyncio.gather(*(c.get(url) for _ in range(4)))
    assert [r.status_code for r in responses] == [200] * 4
    assert len(won(events)) == 1
    opts, events = split(private())
    no_keepalive = httpx.Limits(max_keepalive_connections=0)
    async with httpx.AsyncClient(transport=AsyncHTTPTransport(limits=no_keepalive, **opts)) as c:
        for _ in range(3):
            assert (await c.get(url)).status_code == 200
    assert len(won(events)) == 3  # a new connection, so a new race, for each request


@pytest.mark.both_loops
async def test_async_names_race_both_families_and_local_address_binds(servers: Servers) -> None:
    """A name with AAAA and A: both families are asked and raced (no IPv6 listener: refused,
    then IPv4); ``local_address`` binds every attempt, ``0.0.0.0`` keeps the race to IPv4."""
    resolver = TableResolver({"dual.test": ["::1", "127.0.0.1"]})
    opts, events = split(private())
    async with httpx.AsyncClient(
        transport=AsyncHTTPTransport(resolver=resolver, **opts), timeout=TIMEOUT
    ) as c:
        r = await c.get(f"http://dual.test:{servers.plain}/", headers={"host": "localhost"})
    assert r.status_code == 200
    assert {family for _, family in resolver.asked} == {socket.AF_INET, socket.AF_INET6}
    assert set(started(events)) == {f"[::1]:{servers.plain}", f"127.0.0.1:{servers.plain}"}

    opts, events = split(private())
    transport = AsyncHTTPTransport(resolver=resolver, local_address="0.0.0.0", **opts)
    async with httpx.AsyncClient(transport=transport, timeout=TIMEOUT) as c:
        assert (await c.get(f"http://dual.test:{servers.plain}/")).status_code == 200
    assert started(events) == [f"127.0.0.1:{servers.plain}"]
    async with httpx.AsyncClient(transport=transport, timeout=TIMEOUT) as c:
        with pytest.raises(httpx.ConnectError):  # an IPv6 literal: as httpx's own backend
            await c.get(f"http://[::1]:{servers.plain}/")

    opts, events = split(private())
    transport = AsyncHTTPTransport(local_address="127.0.0.3", **opts)
    async with httpx.AsyncClient(transport=transport, timeout=TIMEOUT) as c:
        r = await c.get(f"http://127.0.0.1:{servers.plain}/")
    assert r.json()["client"][0] == "127.0.0.3"
    assert [str(e.pair.source) for e in won(events)] == ["127.0.0.3"]


@pytest.mark.both_loops
async def test_async_socket_options_are_set_before_connect(servers: Servers) -> None:
    small = [(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)]
    transport = AsyncHTTPTransport(socket_options=small, **split(private())[0])
    async with httpx.AsyncClient(transport=transport, timeout=TIMEOUT) as c:
        r = await c.get(f"http://127.0.0.1:{servers.plain}/")
        sock = r.extensions["network_stream"].get_extra_info("socket")
        # the SYN announced the small buffer: window scale 0 (set after connect: not 0)
        assert wscale_of(sock) == 0
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0


@pytest.mark.both_loops
async def test_async_uds_is_httpcores(servers: Servers) -> None:
    opts, events = split(private())
    async with httpx.AsyncClient(transport=AsyncHTTPTransport(uds=servers.uds, **opts)) as c:
        r = await c.get("http://localhost/unix")
    assert r.status_code == 200 and r.json()["path"] == "/unix"
    assert events == []  # no TCP race for a Unix socket


@pytest.mark.both_loops
async def test_async_errors_are_httpx_own() -> None:
    before = fd_count()
    opts, _ = split(private())
    async with httpx.AsyncClient(transport=AsyncHTTPTransport(**opts)) as c:
        host, port = refused_address()
        with pytest.raises(httpx.ConnectError) as refused:
            await c.get(f"http://{host}:{port}/")
        cause = refused.value.__cause__
        assert isinstance(cause, httpcore.ConnectError)
        assert "ECONNREFUSED" in str(refused.value)  # our error's text, errno named
        empty = AsyncHTTPTransport(resolver=TableResolver({}), **split(private())[0])
        async with httpx.AsyncClient(transport=empty) as nameless:
            with pytest.raises(httpx.ConnectError) as unresolved:
                await nameless.get("http://nowhere.test/")
        assert "nowhere.test" in str(unresolved.value)
    assert fd_count() == before


@pytest.mark.both_loops
@pytest.mark.parametrize("where", ["httpx", "ours"])
async def test_async_connect_timeout(black_hole: BlackHole, where: str) -> None:
    """httpx's connect timeout, or ours, is the race's hard deadline: httpx.ConnectTimeout."""
    before = fd_count()
    host, port = black_hole.address
    if where == "httpx":
        transport, timeout = AsyncHTTPTransport(), httpx.Timeout(10.0, connect=0.3)
    else:
        transport, timeout = AsyncHTTPTransport(timeout=0.3), httpx.Timeout(10.0)
    async with httpx.AsyncClient(transport=transport, timeout=timeout) as c:
        start = time.monotonic()
        with pytest.raises(httpx.ConnectTimeout) as info:
            await c.get(f"http://{host}:{port}/")
        elapsed = time.monotonic() - start
    assert isinstance(info.value.__cause__, httpcore.ConnectTimeout)
    assert "timed out" in str(info.value)
    assert 0.25 <= elapsed < 5.0  # the deadline, not the kernel's ~130 s
    assert fd_count() == before


@pytest.mark.both_loops
async def test_async_cancelled_mid_race_leaves_nothing(black_hole: BlackHole) -> None:
    before = fd_count()
    began = asyncio.Event()

    def on_event(event: RaceEvent) -> None:
        if event.kind == "started":
            began.set()

    host, port = black_hole.address
    async with httpx.AsyncClient(
        transport=AsyncHTTPTransport(on_event=on_event, history=PairHistory())
    ) as c:
        task = asyncio.ensure_future(c.get(f"http://{host}:{port}/"))
        await asyncio.wait_for(began.wait(), 10)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert fd_count() == before


@pytest.mark.both_loops
async def test_async_read_timeout_and_cancel_after_connect(servers: Servers) -> None:
    transport = AsyncHTTPTransport(**split(private())[0])
    timeout = httpx.Timeout(10.0, read=0.2)
    async with httpx.AsyncClient(transport=transport, timeout=timeout) as c:
        with pytest.raises(httpx.ReadTimeout):
            await c.get(f"http://127.0.0.1:{servers.plain}/hang")
    # (counted from here: a fresh uvloop keeps one descriptor, /dev/null, for its whole life
    # after its first such request, with httpx's own backend too)
    before = fd_count()
    connected = asyncio.Event()

    def on_event(event: RaceEvent) -> None:
        if event.kind == "won":
            connected.set()

    transport = AsyncHTTPTransport(on_event=on_event, history=PairHistory())
    async with httpx.AsyncClient(transport=transport, timeout=timeout) as c:
        task = asyncio.ensure_future(c.get(f"http://127.0.0.1:{servers.plain}/hang"))
        await asyncio.wait_for(connected.wait(), 10)  # cancelled after connecting
        for _ in range(3):  # and after the request went out (a few loop iterations)
            await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    await closed_down_to(before)


def test_async_backend_under_trio_says_so(servers: Servers) -> None:
    trio = pytest.importorskip("trio")

    async def main() -> None:
        async with httpx.AsyncClient(transport=AsyncHTTPTransport()) as c:
            await c.get(f"http://127.0.0.1:{servers.plain}/")

    with pytest.raises(RuntimeError, match=r"runs on asyncio.*not on trio"):
        trio.run(main)


async def test_httpcore_backend_directly(servers: Servers) -> None:
    """The backend under a bare httpcore pool, as its docs show network backends used."""
    backend = ours_httpcore.AsyncNetworkBackend(history=PairHistory())
    async with httpcore.AsyncConnectionPool(network_backend=backend) as pool:
        r = await pool.request("GET", f"http://127.0.0.1:{servers.plain}/core")
        assert r.status == 200 and b'"/core"' in r.content
    stream = await backend.connect_tcp("127.0.0.1", servers.tls, timeout=5)
    try:
        tls = await stream.start_tls(servers.client_context, server_hostname="localhost", timeout=5)
        assert tls.get_extra_info("ssl_object").version().startswith("TLS")
    finally:
        await tls.aclose()


# ---------------------------------------------------------------- sync


def test_sync_http1_and_reuse(servers: Servers) -> None:
    opts, events = split(private())
    with httpx.Client(transport=HTTPTransport(**opts), timeout=TIMEOUT) as c:
        r = c.get(f"http://localhost:{servers.plain}/one")
        assert r.status_code == 200 and r.json()["http_version"] == "1.1"
        stream = r.extensions["network_stream"]
        assert stream.get_extra_info("server_addr")[:2] == ("127.0.0.1", servers.plain)
        assert stream.get_extra_info("client_addr")[:2] == tuple(r.json()["client"])
        assert stream.get_extra_info("is_readable") is False
        for _ in range(3):
            assert c.get(f"http://localhost:{servers.plain}/again").status_code == 200
    assert [str(e.pair.destination) for e in won(events)] == [f"127.0.0.1:{servers.plain}"]


def test_sync_http2_over_tls_and_socket_options(servers: Servers) -> None:
    opts, events = split(private())
    small = [(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)]
    transport = HTTPTransport(
        verify=servers.client_context, http2=True, socket_options=small, **opts
    )
    with httpx.Client(transport=transport, timeout=TIMEOUT) as c:
        for _ in range(3):
            r = c.get(f"https://localhost:{servers.tls}/h2")
            assert r.status_code == 200 and r.http_version == "HTTP/2"
        stream = r.extensions["network_stream"]
        assert stream.get_extra_info("ssl_object").selected_alpn_protocol() == "h2"
        assert wscale_of(stream.get_extra_info("socket")) == 0  # set before connect
    assert len(won(events)) == 1


@pytest.mark.parametrize("proxy_tls", [False, True], ids=["http-proxy", "https-proxy"])
def test_sync_https_through_connect_proxy(servers: Servers, proxy_tls: bool) -> None:
    opts, events = split(private())
    if proxy_tls:
        proxy = httpx.Proxy(
            f"https://localhost:{servers.proxy_tls}", ssl_context=servers.client_context
        )
    else:
        proxy = httpx.Proxy(f"http://localhost:{servers.proxy}")
    url = f"https://localhost:{servers.tls}/via-proxy"
    stock = httpx.HTTPTransport(verify=servers.client_context, proxy=proxy)
    try:
        with httpx.Client(transport=stock, timeout=TIMEOUT) as c:
            c.get(url)
    except RuntimeError as unsupported:  # early httpcore 1.0: no TLS in TLS in its sync stream
        ours = HTTPTransport(verify=servers.client_context, proxy=proxy)
        same = pytest.raises(RuntimeError, match=re.escape(str(unsupported)))
        with httpx.Client(transport=ours, timeout=TIMEOUT) as c, same:
            c.get(url)  # the same stream class, so the same limit
        return
    transport = HTTPTransport(verify=servers.client_context, proxy=proxy, **opts)
    with httpx.Client(transport=transport, timeout=TIMEOUT) as c:
        r = c.get(url)
    assert r.status_code == 200 and r.json()["path"] == "/via-proxy"
    port = servers.proxy_tls if proxy_tls else servers.proxy
    assert [e.pair.destination.port for e in won(events)] == [port]


def test_sync_pool_limits_and_local_address(servers: Servers) -> None:
    opts, events = split(private())
    no_keepalive = httpx.Limits(max_keepalive_connections=0)
    transport = HTTPTransport(limits=no_keepalive, local_address="127.0.0.3", **opts)
    with httpx.Client(transport=transport, timeout=TIMEOUT) as c:
        clients = [
            c.get(f"http://127.0.0.1:{servers.plain}/").json()["client"][0] for _ in range(3)
        ]
    assert clients == ["127.0.0.3"] * 3
    assert len(won(events)) == 3


def test_sync_unspecified_local_address_keeps_its_family(servers: Servers) -> None:
    """``local_address="0.0.0.0"`` (httpx's way to ask for IPv4): no bind, IPv4 only, as
    with httpx's own backend, whose socket cannot bind it for an IPv6 destination."""
    for transport in (httpx.HTTPTransport, HTTPTransport):
        with httpx.Client(transport=transport(local_address="0.0.0.0"), timeout=TIMEOUT) as c:
            assert c.get(f"http://127.0.0.1:{servers.plain}/").status_code == 200
            with pytest.raises(httpx.ConnectError):
                c.get(f"http://[::1]:{servers.plain}/")
        v6_only = transport(local_address="::")
        with (
            httpx.Client(transport=v6_only, timeout=TIMEOUT) as c,
            pytest.raises(httpx.ConnectError),
        ):
            c.get(f"http://127.0.0.1:{servers.plain}/")


def test_sync_socket_option_without_value_is_set_too(servers: Servers) -> None:
    # httpcore's (level, option, None, length) form reaches setsockopt as it is: a device
    # binding of length 0 (none) works, a NULL buffer of length 4 is the kernel's EFAULT
    opts, events = split(private())
    unbind = [(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, None, 0)]
    with httpx.Client(transport=HTTPTransport(socket_options=unbind, **opts)) as c:
        assert c.get(f"http://127.0.0.1:{servers.plain}/").status_code == 200
    assert [e.kind for e in events][-1] == "won"
    events.clear()
    bad = [(socket.SOL_SOCKET, socket.SO_RCVBUF, None, 4)]
    failed = pytest.raises(httpx.ConnectError, match="EFAULT")
    with httpx.Client(transport=HTTPTransport(socket_options=bad, **opts)) as c, failed:
        c.get(f"http://127.0.0.1:{servers.plain}/")


def test_sync_uds(servers: Servers) -> None:
    opts, events = split(private())
    with httpx.Client(transport=HTTPTransport(uds=servers.uds, **opts)) as c:
        assert c.get("http://localhost/unix").json()["path"] == "/unix"
    assert events == []


def test_sync_errors_timeouts_no_fd_left(black_hole: BlackHole, servers: Servers) -> None:
    before = fd_count()
    with httpx.Client(transport=HTTPTransport(**split(private())[0])) as c:
        host, port = refused_address()
        with pytest.raises(httpx.ConnectError) as refused:
            c.get(f"http://{host}:{port}/")
        assert "ECONNREFUSED" in str(refused.value)
        bh_host, bh_port = black_hole.address
        start = time.monotonic()
        with pytest.raises(httpx.ConnectTimeout) as timed_out:
            c.get(f"http://{bh_host}:{bh_port}/", timeout=httpx.Timeout(10.0, connect=0.3))
        assert 0.25 <= time.monotonic() - start < 5.0
        assert "timed out" in str(timed_out.value)
        with pytest.raises(httpx.ReadTimeout):
            c.get(f"http://localhost:{servers.plain}/hang", timeout=httpx.Timeout(10.0, read=0.2))
    with (
        httpx.Client(transport=HTTPTransport(timeout=0.3)) as c,
        pytest.raises(httpx.ConnectTimeout),
    ):
        c.get(f"http://{bh_host}:{bh_port}/", timeout=TIMEOUT)
    assert fd_count() == before


# ---------------------------------------------------------------- versions and packaging


def test_unsupported_versions_fail_at_import_unless_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ImportError, match=r"supports httpx >=0\.27,<0\.29, not 0\.29\.0"):
        ours_httpx._check_version("0.29.0")
    with pytest.raises(ImportError, match=r"supports httpx .* not 0\.26\.0"):
        ours_httpx._check_version("0.26.0")
    with pytest.raises(ImportError, match=r"supports httpcore >=1\.0,<1\.1.*not\s+httpcore 1\.1"):
        ours_httpcore._check_version("1.1.0")
    ours_httpx._check_version(httpx.__version__)
    ours_httpcore._check_version(httpcore.__version__)
    monkeypatch.setenv("AIOCONNLIST_HTTPX_ANY_VERSION", "1")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ours_httpx._check_version("0.29.0")
    assert any("AIOCONNLIST_HTTPX_ANY_VERSION" in str(w.message) for w in caught)


@pytest.mark.parametrize("missing", ["httpx", "httpcore", "anyio"])
def test_missing_extra_names_the_pip_command(monkeypatch: pytest.MonkeyPatch, missing: str) -> None:
    for name in ("aioconnlist.httpx", "aioconnlist.httpcore"):
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, missing, None)  # an import of it raises ImportError
    with pytest.raises(ImportError, match=r"pip install 'aioconnlist\[httpx\]'"):
        importlib.import_module("aioconnlist.httpx")


def test_transports_are_httpx_subclasses_and_options_are_checked() -> None:
    assert issubclass(HTTPTransport, httpx.HTTPTransport)
    assert issubclass(AsyncHTTPTransport, httpx.AsyncHTTPTransport)
    assert issubclass(ours_httpcore.NetworkBackend, httpcore.NetworkBackend)
    assert issubclass(ours_httpcore.AsyncNetworkBackend, httpcore.AsyncNetworkBackend)
    with pytest.raises(ValueError, match="attempt_delay"):
        HTTPTransport(attempt_delay=0.001)
    with pytest.raises(ValueError, match="attempt_delay"):
        AsyncHTTPTransport(attempt_delay=0.001)
    with pytest.raises(ValueError, match="resolution_delay"):
        AsyncHTTPTransport(resolution_delay=-1)
    transport = HTTPTransport(verify=ssl.create_default_context(), retries=2)
    assert transport._pool._retries == 2  # httpx's own arguments still reach its pool
    assert isinstance(transport._pool._network_backend, ours_httpcore.NetworkBackend)
    proxied = AsyncHTTPTransport(proxy="http://localhost:1")
    assert isinstance(proxied._pool._network_backend, ours_httpcore.AsyncNetworkBackend)
    assert Path(ours_httpx.__file__).name == "httpx.py"


def test_example_demo_runs_offline() -> None:
    import subprocess

    repo = Path(__file__).resolve().parent.parent
    done = subprocess.run(
        [sys.executable, str(repo / "examples" / "httpx_client.py")],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=repo,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    blocks = done.stdout.split("GET ")[1:]
    assert len(blocks) == 3 and all("-> 200" in block for block in blocks), done.stdout
    assert "started   kernel(::1)" in blocks[0] and "won       kernel(127.0.0.1)" in blocks[0]
    for later in blocks[1:]:  # the history: IPv4 at once, ::1 not tried again
        assert "[::1]" not in later and "won       kernel(127.0.0.1)" in later, later
