"""ConnListConnector against real aiohttp.web servers on loopback, plain and TLS (trustme)."""

from __future__ import annotations

import asyncio
import errno
import math
import socket
import ssl
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

aiohttp = pytest.importorskip("aiohttp")
trustme = pytest.importorskip("trustme")

from aiohttp import web  # noqa: E402
from aiohttp.abc import AbstractResolver  # noqa: E402

import aioconnlist  # noqa: E402
from aioconnlist import ConnectError, InvalidArgument, PairHistory, RaceEvent  # noqa: E402
from aioconnlist._core.pairs import LocalAddress  # noqa: E402
from aioconnlist.aiohttp import (  # noqa: E402
    SUPPORTED_AIOHTTP,
    ConnListConnector,
    _check_version,
)
from tests.dnsserver import (  # noqa: E402
    DelayedDNSServer,
    black_hole_on,
    free_port_on,
    listeners_on_one_port,
)
from tests.support import fd_count  # noqa: E402

TIMEOUT = aiohttp.ClientTimeout(total=5)
AIOHTTP_VERSION = tuple(int(x) for x in aiohttp.__version__.split(".")[:2])


class StaticResolver(AbstractResolver):
    """An aiohttp resolver with a fixed table {name: [ip, ...]}, honouring ``family``."""

    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table
        self.calls: list[tuple[str, int]] = []

    async def resolve(self, host: str, port: int = 0, family: int = socket.AF_INET) -> list[Any]:
        self.calls.append((host, family))
        found = []
        for ip in self.table.get(host, []):
            fam = socket.AF_INET6 if ":" in ip else socket.AF_INET
            if family in (socket.AF_UNSPEC, fam):
                found.append(
                    {
                        "hostname": host,
                        "host": ip,
                        "port": port,
                        "family": fam,
                        "proto": 0,
                        "flags": socket.AI_NUMERICHOST,
                    }
                )
        if not found:
            raise OSError(None, f"no address for {host}")
        return found

    async def close(self) -> None:
        pass


class DnsResolver(AbstractResolver):
    """An aiohttp resolver asking a `DelayedDNSServer` (a real DNS exchange per family)."""

    def __init__(self, port: int) -> None:
        import dns.asyncquery
        import dns.message

        self._query, self._message, self.port = dns.asyncquery.udp, dns.message, port

    async def resolve(self, host: str, port: int = 0, family: int = socket.AF_INET) -> list[Any]:
        assert family in (socket.AF_INET, socket.AF_INET6), "asked per family"
        rdtype = "AAAA" if family == socket.AF_INET6 else "A"
        answer = await self._query(
            self._message.make_query(host, rdtype), "127.0.0.1", 2, port=self.port
        )
        found = [
            {
                "hostname": host,
                "host": r.address,
                "port": port,
                "family": family,
                "proto": 0,
                "flags": socket.AI_NUMERICHOST,
            }
            for rrset in answer.answer
            for r in rrset
        ]
        if not found:
            raise OSError(None, f"no {rdtype} for {host}")
        return found

    async def close(self) -> None:
        pass


class Server:
    """An aiohttp.web app on given listening sockets; records each request's peer."""

    def __init__(self) -> None:
        self.peers: list[tuple[str, int]] = []
        self.active = 0
        self.max_active = 0
        self.work = 0.0  # seconds each request takes (simulated server work)
        self.runner: web.AppRunner | None = None

    async def handle(self, request: web.Request) -> web.Response:
        peer = request.transport.get_extra_info("peername")[:2]
        self.peers.append(peer)
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        try:
            if self.work:
                await asyncio.sleep(self.work)
            return web.Response(text=f"hello {peer[0]} {request.path_qs}")
        finally:
            self.active -= 1

    async def start(self, socks: list[socket.socket], ssl_context: ssl.SSLContext | None = None):
        app = web.Application()
        app.router.add_get("/{tail:.*}", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        for sock in socks:
            await web.SockSite(self.runner, sock, ssl_context=ssl_context).start()
        return self

    @property
    def connections(self) -> int:
        assert self.runner is not None and self.runner.server is not None
        return len(self.runner.server.connections)

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    srv = Server()
    yield srv
    await srv.stop()


@pytest.fixture(scope="module")
def tls() -> dict[str, ssl.SSLContext]:
    ca = trustme.CA()
    cert = ca.issue_cert("bh.test", "dual.test", "localhost")
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    return {"server": server_ctx, "client": client_ctx}


def recorder() -> tuple[list[RaceEvent], Callable[[RaceEvent], None]]:
    events: list[RaceEvent] = []
    return events, events.append


def counting_factory(made: list[tuple[Any, ...]]):
    """An aiohappyeyeballs-style socket_factory(addr_info) that counts what it makes."""

    def factory(addr_info):
        made.append(addr_info[4])
        return socket.socket(addr_info[0], addr_info[1], addr_info[2])

    return factory


# --- the version pin --------------------------------------------------------------------------


def test_installed_aiohttp_is_supported():
    assert SUPPORTED_AIOHTTP == ">=3.10,<3.15"
    _check_version(aiohttp.__version__)  # the import itself did this too


@pytest.mark.parametrize("version", ["3.9.5", "3.15.0", "4.0.0a1", "garbage"])
def test_unsupported_aiohttp_is_refused(version, monkeypatch):
    monkeypatch.delenv("AIOCONNLIST_AIOHTTP_ANY_VERSION", raising=False)
    with pytest.raises(ImportError, match=r">=3\.10,<3\.15.*_wrap_create_connection"):
        _check_version(version)
    monkeypatch.setenv("AIOCONNLIST_AIOHTTP_ANY_VERSION", "1")
    with pytest.warns(RuntimeWarning, match=version):
        _check_version(version)


# --- a name whose IPv6 address is black-holed ----------------------------------------------


@pytest.mark.parametrize("scheme", ["http", "https"])
async def test_black_holed_ipv6_costs_the_delay_once(scheme, server, tls):
    """First request: ::1 (ranked first) hangs, IPv4 starts after the attempt delay.
    Later new connections (force_close, and a new connector sharing the history) go to IPv4
    at once."""
    socks = listeners_on_one_port(["127.0.0.1"])
    port = socks[0].getsockname()[1]
    await server.start(socks, tls["server"] if scheme == "https" else None)
    resolver = StaticResolver({"bh.test": ["::1", "127.0.0.1"]})
    history = PairHistory()
    events, on_event = recorder()
    extra = {"ssl": tls["client"]} if scheme == "https" else {}
    url = f"{scheme}://bh.test:{port}/x"
    times = []
    with black_hole_on("::1", port):
        connector = ConnListConnector(
            resolver=resolver, history=history, on_event=on_event, force_close=True, **extra
        )
        async with aiohttp.ClientSession(connector=connector, timeout=TIMEOUT) as session:
            for _ in range(2):
                t0 = time.monotonic()
                async with session.get(url) as response:
                    assert await response.text() == "hello 127.0.0.1 /x"
                times.append(time.monotonic() - t0)
        connector = ConnListConnector(
            resolver=resolver, history=history, on_event=on_event, **extra
        )
        async with aiohttp.ClientSession(connector=connector, timeout=TIMEOUT) as session:
            t0 = time.monotonic()
            async with session.get(url) as response:
                assert response.status == 200
            times.append(time.monotonic() - t0)
    assert times[0] >= 0.25, times
    assert times[0] < 1.0, times
    # Later connections do not pay the attempt delay. (Not "< 0.1": ::1 would start 0.1 s in,
    # the floor of a known pair's delay, so a loop stalled that long by the rest of the
    # process would be allowed to try it; the events below say what the race did.)
    assert max(times[1:]) < 0.25, times
    assert len(set(server.peers)) == 3  # three new connections
    started = [(str(e.pair.destination.ip), e.time) for e in events if e.kind == "started"]
    assert started[:2] == [
        ("::1", pytest.approx(0, abs=0.05)),
        ("127.0.0.1", pytest.approx(0.25, abs=0.05)),
    ]
    # each later race's first attempt (index 0, started at once) is IPv4's, and it wins
    won = [(str(e.pair.destination.ip), e.index) for e in events if e.kind == "won"]
    assert won == [("127.0.0.1", 1), ("127.0.0.1", 0), ("127.0.0.1", 0)]


# --- RFC 8305 §3 inside the connector, through a real DNS server -----------------------------


async def test_connector_resolution_delay_and_late_answer_joins_cache(server):
    socks = listeners_on_one_port(["::1", "127.0.0.1"])
    port = socks[0].getsockname()[1]
    await server.start(socks)
    records = {"dual.test": {"AAAA": ["::1"], "A": ["127.0.0.1"]}}
    async with DelayedDNSServer(records, {"AAAA": 0.3}) as dns_server:
        connector = ConnListConnector(
            resolver=DnsResolver(dns_server.port), history=PairHistory(), force_close=True
        )
        async with aiohttp.ClientSession(connector=connector, timeout=TIMEOUT) as session:
            t0 = time.monotonic()
            async with session.get(f"http://dual.test:{port}/") as response:
                first = await response.text()
            elapsed = time.monotonic() - t0
            late = connector._resolver.late.get(("dual.test", port))
            assert late is not None
            await asyncio.wait_for(asyncio.shield(late), 2)  # the AAAA answer arrives
            async with session.get(f"http://dual.test:{port}/") as response:
                second = await response.text()
        queries = [(q.name, q.rdtype) for q in dns_server.queries]
    # racing started 50 ms after A, not after the 300 ms AAAA
    assert first == "hello 127.0.0.1 /"
    assert 0.05 <= elapsed < 0.25, elapsed
    # the late AAAA went into aiohttp's DNS cache: the second request prefers ::1 without
    # asking the DNS server again
    assert second == "hello ::1 /"
    assert sorted(queries) == [("dual.test", "A"), ("dual.test", "AAAA")]


async def test_connector_late_aaaa_joins_running_race(server):
    socks = listeners_on_one_port(["::1"])
    port = socks[0].getsockname()[1]
    await server.start(socks)
    records = {"hole.test": {"AAAA": ["::1"], "A": ["127.0.0.2"]}}
    events, on_event = recorder()
    with black_hole_on("127.0.0.2", port):
        async with DelayedDNSServer(records, {"AAAA": 0.1}) as dns_server:
            connector = ConnListConnector(
                resolver=DnsResolver(dns_server.port),
                history=PairHistory(),
                attempt_delay=0.3,
                on_event=on_event,
            )
            async with aiohttp.ClientSession(connector=connector, timeout=TIMEOUT) as session:
                t0 = time.monotonic()
                async with session.get(f"http://hole.test:{port}/") as response:
                    text = await response.text()
                elapsed = time.monotonic() - t0
    assert text == "hello ::1 /"
    assert 0.3 <= elapsed < 1.0, elapsed
    started = [str(e.pair.destination.ip) for e in events if e.kind == "started"]
    assert started == ["127.0.0.2", "::1"]


async def test_closing_the_session_mid_race_with_a_late_aaaa_is_no_stray_cancellation():
    # The AAAA answer comes 1 s late; the race on A's black hole is still waiting for it when
    # the session is closed. Closing cancels the late lookup; the request must end with
    # aiohttp's "Connector is closed" (as it does for a connect in flight), not with a
    # CancelledError nobody asked for, and at once, not after the race's own end.
    records = {"late.test": {"AAAA": ["::1"], "A": ["127.0.0.2"]}}
    started = asyncio.Event()
    with black_hole_on("127.0.0.2") as port:
        async with DelayedDNSServer(records, {"AAAA": 1.0}) as dns_server:
            fds = fd_count()
            connector = ConnListConnector(
                resolver=DnsResolver(dns_server.port),
                history=PairHistory(),
                on_event=lambda event: started.set(),
            )
            session = aiohttp.ClientSession(
                connector=connector, timeout=aiohttp.ClientTimeout(total=60)
            )
            request = asyncio.ensure_future(session.get(f"http://late.test:{port}/"))
            try:
                await asyncio.wait_for(started.wait(), 5)  # the attempt on A is in flight
                assert connector._resolver.late, "the AAAA lookup is still pending"
                await session.close()
                done, _ = await asyncio.wait([request], timeout=5)
            finally:
                request.cancel()
                await session.close()
            assert done, "the request did not end when its session was closed"
            assert not request.cancelled(), "a stray CancelledError reached the request"
            with pytest.raises(aiohttp.ClientConnectionError, match="Connector is closed"):
                request.result()
            assert not connector._racing and not connector._resolver.late
            # the attempt and the AAAA query closed (re-read a bounded number of times: the
            # network watcher's thread opens and closes netlink sockets of its own)
            for _ in range(100):
                if fd_count() == fds:
                    break
                await asyncio.sleep(0.01)
            assert fd_count() == fds


async def test_resolution_delay_none_keeps_aiohttps_single_lookup(server):
    socks = listeners_on_one_port(["127.0.0.1"])
    port = socks[0].getsockname()[1]
    await server.start(socks)
    resolver = StaticResolver({"v4.test": ["127.0.0.1"]})
    connector = ConnListConnector(resolver=resolver, resolution_delay=None, history=None)
    async with (
        aiohttp.ClientSession(connector=connector, timeout=TIMEOUT) as session,
        session.get(f"http://v4.test:{port}/") as response,
    ):
        assert response.status == 200
    assert resolver.calls == [("v4.test", socket.AF_UNSPEC)]


async def test_dns_failure_is_aiohttps_dns_error():
    connector = ConnListConnector(resolver=StaticResolver({}), history=None)
    async with aiohttp.ClientSession(connector=connector, timeout=TIMEOUT) as session:
        with pytest.raises(aiohttp.ClientConnectorDNSError) as info:
            await session.get("http://nowhere.test:80/")
    assert "nowhere.test" in str(info.value.os_error)


# --- aiohttp's error contract, without a second round ----------------------------------------


async def test_refused_everywhere_one_round_errno_kept():
    port = free_port_on(["::1", "127.0.0.2", "127.0.0.3", "127.0.0.4"])
    table = {"down.test": ["::1", "127.0.0.2", "127.0.0.3", "127.0.0.4"]}
    ours: list[tuple[Any, ...]] = []
    stock: list[tuple[Any, ...]] = []
    connector = ConnListConnector(
        resolver=StaticResolver(table), history=None, socket_factory=counting_factory(ours)
    )
    async with aiohttp.ClientSession(connector=connector, timeout=TIMEOUT) as session:
        with pytest.raises(aiohttp.ClientConnectorError) as info:
            await session.get(f"http://down.test:{port}/")
    error = info.value
    assert not isinstance(error, aiohttp.ClientConnectorDNSError)
    assert error.errno == errno.ECONNREFUSED
    assert isinstance(error.os_error, ConnectError)
    assert isinstance(error.os_error, ConnectionRefusedError)
    assert len(error.os_error.attempts) == 4
    assert len(ours) == 4  # each address once
    if AIOHTTP_VERSION < (3, 12):
        return  # no socket_factory in the stock connector to count with
    # control: stock aiohttp retries the remaining addresses after its first pass
    stock_connector = aiohttp.TCPConnector(
        resolver=StaticResolver(table), socket_factory=counting_factory(stock)
    )
    async with aiohttp.ClientSession(connector=stock_connector, timeout=TIMEOUT) as session:
        with pytest.raises(aiohttp.ClientConnectorError):
            await session.get(f"http://down.test:{port}/")
    assert len(stock) > 4


async def test_certificate_error_mapped_and_not_retried(server, tls):
    socks = listeners_on_one_port(["::1", "127.0.0.1", "127.0.0.2"])
    port = socks[0].getsockname()[1]
    await server.start(socks, tls["server"])
    made: list[tuple[Any, ...]] = []
    untrusting = ssl.create_default_context()  # does not know our CA
    connector = ConnListConnector(
        resolver=StaticResolver({"dual.test": ["::1", "127.0.0.1", "127.0.0.2"]}),
        history=None,
        ssl=untrusting,
        socket_factory=counting_factory(made),
    )
    async with aiohttp.ClientSession(connector=connector, timeout=TIMEOUT) as session:
        with pytest.raises(aiohttp.ClientConnectorCertificateError) as info:
            await session.get(f"https://dual.test:{port}/")
    assert isinstance(info.value.certificate_error, ssl.SSLCertVerificationError)
    # one race whose first pair won the TCP race; stock aiohttp would try 127.0.0.2 again
    assert len(made) == 1


async def test_ssl_error_mapped(server):
    socks = listeners_on_one_port(["127.0.0.1"])
    port = socks[0].getsockname()[1]
    await server.start(socks)  # plain HTTP
    connector = ConnListConnector(resolver=StaticResolver({"v4.test": ["127.0.0.1"]}))
    async with aiohttp.ClientSession(connector=connector, timeout=TIMEOUT) as session:
        with pytest.raises(aiohttp.ClientConnectorSSLError) as info:
            await session.get(f"https://v4.test:{port}/", ssl=False)
    assert isinstance(info.value.os_error, ssl.SSLError)


async def test_sock_connect_timeout_is_aiohttps_timeout():
    with black_hole_on("127.0.0.2") as port:
        connector = ConnListConnector(
            resolver=StaticResolver({"hole.test": ["127.0.0.2"]}), history=None
        )
        fds = fd_count()
        timeout = aiohttp.ClientTimeout(total=5, sock_connect=0.1)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            t0 = time.monotonic()
            with pytest.raises(aiohttp.ConnectionTimeoutError):
                await session.get(f"http://hole.test:{port}/")
            elapsed = time.monotonic() - t0
        assert fd_count() == fds
    assert 0.1 <= elapsed < 0.3, elapsed


async def test_our_timeout_option_is_a_connector_error():
    with black_hole_on("127.0.0.2") as port:
        connector = ConnListConnector(
            resolver=StaticResolver({"hole.test": ["127.0.0.2"]}), history=None, timeout=0.1
        )
        async with aiohttp.ClientSession(connector=connector, timeout=TIMEOUT) as session:
            with pytest.raises(aiohttp.ClientConnectorError) as info:
                await session.get(f"http://hole.test:{port}/")
    assert info.value.errno == errno.ETIMEDOUT
    assert isinstance(info.value.os_error, aioconnlist.ConnectTimeout)


# --- what aiohttp expects of a connector: reuse, limits, closing -----------------------------


async def test_keep_alive_connection_is_reused(server):
    socks = listeners_on_one_port(["127.0.0.1"])
    port = socks[0].getsockname()[1]
    await server.start(socks)
    events, on_event = recorder()
    connector = ConnListConnector(
        resolver=StaticResolver({"v4.test": ["127.0.0.1"]}), on_event=on_event, history=None
    )
    async with aiohttp.ClientSession(connector=connector, timeout=TIMEOUT) as session:
        for i in range(3):
            async with session.get(f"http://v4.test:{port}/{i}") as response:
                assert await response.text() == f"hello 127.0.0.1 /{i}"
    assert len(server.peers) == 3
    assert len(set(server.peers)) == 1
    assert [e.kind for e in events] == ["won"] or [e.kind for e in events][-1] == "won"
    assert sum(e.kind == "won" for e in events) == 1


@pytest.mark.parametrize(("limits", "expected"), [({"limit": 2}, 2), ({"limit_per_host": 1}, 1)])
async def test_connection_limits(limits, expected, server):
    socks = listeners_on_one_port(["127.0.0.1"])
    port = socks[0].getsockname()[1]
    await server.start(socks)
    server.work = 0.03
    events, on_event = recorder()
    connector = ConnListConnector(
        resolver=StaticResolver({"v4.test": ["127.0.0.1"]}),
        on_event=on_event,
        history=None,
        **limits,
    )

    async def fetch(i: int) -> str:
        async with session.get(f"http://v4.test:{port}/{i}") as response:
            return await response.text()

    async with aiohttp.ClientSession(connector=connector, timeout=TIMEOUT) as session:
        texts = await asyncio.gather(*(fetch(i) for i in range(6)))
    assert texts == [f"hello 127.0.0.1 /{i}" for i in range(6)]
    assert server.max_active == expected
    assert sum(e.kind == "won" for e in events) == expected  # pooled connections reused
    assert len(set(server.peers)) == expected


async def test_close_releases_connections(server):
    socks = listeners_on_one_port(["127.0.0.1"])
    port = socks[0].getsockname()[1]
    await server.start(socks)
    fds = fd_count()
    connector = ConnListConnector(resolver=StaticResolver({"v4.test": ["127.0.0.1"]}))
    session = aiohttp.ClientSession(connector=connector, timeout=TIMEOUT)
    async with session.get(f"http://v4.test:{port}/") as response:
        await response.read()
    for _ in range(200):  # bounded: the server registers the connection
        if server.connections == 1:
            break
        await asyncio.sleep(0.005)
    assert server.connections == 1  # pooled, kept alive
    await session.close()
    assert connector.closed
    for _ in range(200):  # bounded: the server notices the close
        if server.connections == 0:
            break
        await asyncio.sleep(0.005)
    assert server.connections == 0
    assert fd_count() == fds
    with pytest.raises(RuntimeError, match="closed"):
        await session.get(f"http://v4.test:{port}/")


# --- TCPConnector arguments keep their meaning ----------------------------------------------


def test_tcp_connector_arguments_map_to_options():
    async def build() -> None:
        c = ConnListConnector(happy_eyeballs_delay=None)
        assert c.options.attempt_delay == math.inf
        await c.close()
        c = ConnListConnector(happy_eyeballs_delay=0.1, interleave=2)
        assert c.options.attempt_delay == 0.1 and c.options.interleave == 2
        await c.close()
        c = ConnListConnector(local_addr=("127.0.0.3", 0))
        assert c.options.local_addresses == (
            LocalAddress(aioconnlist._core.addresses.parse_ip("127.0.0.3")[0]),
        )
        await c.close()
        with pytest.raises(InvalidArgument, match="not both"):
            ConnListConnector(happy_eyeballs_delay=0.1, attempt_delay=0.2)
        with pytest.raises(InvalidArgument, match="not both"):
            ConnListConnector(local_addr=("127.0.0.3", 0), local_addresses=None)
        with pytest.raises(InvalidArgument, match="attempt_delay"):
            ConnListConnector(attempt_delay=0.001)
        with pytest.raises(InvalidArgument, match="resolution_delay"):
            ConnListConnector(resolution_delay=-1)
        with pytest.raises(TypeError):
            ConnListConnector(no_such_argument=1)

    asyncio.run(build())


@pytest.mark.parametrize("fixed_port", [False, True])
async def test_local_addr_binds_the_source(fixed_port, server):
    socks = listeners_on_one_port(["127.0.0.1"])
    port = socks[0].getsockname()[1]
    await server.start(socks)
    local_port = free_port_on(["127.0.0.3"]) if fixed_port else 0
    connector = ConnListConnector(
        resolver=StaticResolver({"v4.test": ["127.0.0.1"]}), local_addr=("127.0.0.3", local_port)
    )
    async with (
        aiohttp.ClientSession(connector=connector, timeout=TIMEOUT) as session,
        session.get(f"http://v4.test:{port}/") as response,
    ):
        assert await response.text() == "hello 127.0.0.3 /"
    assert server.peers[0][0] == "127.0.0.3"
    if fixed_port:
        assert server.peers[0][1] == local_port


async def test_family_filter_and_socket_factory(server):
    socks = listeners_on_one_port(["::1", "127.0.0.1"])
    port = socks[0].getsockname()[1]
    await server.start(socks)
    made: list[tuple[Any, ...]] = []
    connector = ConnListConnector(
        resolver=StaticResolver({"dual.test": ["::1", "127.0.0.1"]}),
        family=socket.AF_INET,
        socket_factory=counting_factory(made),
        history=None,
    )
    async with (
        aiohttp.ClientSession(connector=connector, timeout=TIMEOUT) as session,
        session.get(f"http://dual.test:{port}/") as response,
    ):
        assert await response.text() == "hello 127.0.0.1 /"
    assert made == [("127.0.0.1", port)]


# --- proxies -------------------------------------------------------------------------------


async def test_http_proxy_is_reached_through_the_race():
    """A minimal forward proxy answers absolute-form requests itself."""
    seen: list[bytes] = []

    async def proxy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        seen.append(head.split(b"\r\n", 1)[0])
        body = b"via proxy"
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
            % (len(body), body)
        )
        await writer.drain()
        writer.close()

    socks = listeners_on_one_port(["127.0.0.1"])
    port = socks[0].getsockname()[1]
    proxy_server = await asyncio.start_server(proxy, sock=socks[0])
    events, on_event = recorder()
    try:
        with black_hole_on("::1", port):
            connector = ConnListConnector(
                resolver=StaticResolver({"proxy.test": ["::1", "127.0.0.1"]}),
                history=None,
                attempt_delay=0.05,
                on_event=on_event,
            )
            async with aiohttp.ClientSession(connector=connector, timeout=TIMEOUT) as session:
                async with session.get(
                    "http://target.test/page", proxy=f"http://proxy.test:{port}"
                ) as response:
                    assert await response.text() == "via proxy"
                refused = free_port_on(["::1", "127.0.0.1"])
                with pytest.raises(aiohttp.ClientProxyConnectionError) as info:
                    await session.get("http://target.test/", proxy=f"http://proxy.test:{refused}")
    finally:
        proxy_server.close()
        await proxy_server.wait_closed()
    assert seen == [b"GET http://target.test/page HTTP/1.1"]
    won = [e for e in events if e.kind == "won"]
    assert str(won[0].pair.destination) == f"127.0.0.1:{port}"
    assert info.value.errno == errno.ECONNREFUSED


async def test_ip_literal_urls_skip_the_resolver(server):
    socks = listeners_on_one_port(["::1", "127.0.0.1"])
    port = socks[0].getsockname()[1]
    await server.start(socks)
    resolver = StaticResolver({})
    connector = ConnListConnector(resolver=resolver, history=None)
    async with aiohttp.ClientSession(connector=connector, timeout=TIMEOUT) as session:
        for host, peer in (("[::1]", "::1"), ("127.0.0.1", "127.0.0.1")):
            async with session.get(f"http://{host}:{port}/") as response:
                assert await response.text() == f"hello {peer} /"
    assert resolver.calls == []


def test_example_demo_runs_offline():
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parent.parent
    done = subprocess.run(
        [sys.executable, str(repo / "examples" / "aiohttp_client.py"), "--demo"],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=repo,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert sum("-> 200" in line for line in lines) == 3
    first_request = lines[: next(i for i, line in enumerate(lines) if "-> 200" in line)]
    assert any("started" in line and "[::1]" in line for line in first_request)
    assert any("won" in line and "127.0.0.1" in line for line in first_request)
