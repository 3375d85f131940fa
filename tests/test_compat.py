"""aioconnlist.compat.start_connection: the aiohappyeyeballs.start_connection contract.

The contract tests run against both implementations (aiohappyeyeballs' own and ours), so
"drop-in" is checked, not assumed; then ours is patched under a stock aiohttp.TCPConnector.
"""

from __future__ import annotations

import asyncio
import errno
import socket
import time
from typing import Any
from unittest import mock

import pytest

aiohappyeyeballs = pytest.importorskip("aiohappyeyeballs")
aiohttp = pytest.importorskip("aiohttp")

from aioconnlist import ConnectError, InvalidArgument, PairHistory, RaceEvent  # noqa: E402
from aioconnlist.compat import make_start_connection, start_connection  # noqa: E402
from tests.dnsserver import black_hole_on, free_port_on, listeners_on_one_port  # noqa: E402
from tests.support import fd_count  # noqa: E402
from tests.test_aiohttp import TIMEOUT, Server, StaticResolver  # noqa: E402

IMPLEMENTATIONS = {
    "aiohappyeyeballs": aiohappyeyeballs.start_connection,
    "aioconnlist": start_connection,
}


@pytest.fixture(params=list(IMPLEMENTATIONS))
def impl(request):
    return IMPLEMENTATIONS[request.param]


def info(ip: str, port: int) -> tuple[Any, ...]:
    if ":" in ip:
        return (socket.AF_INET6, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (ip, port, 0, 0))
    return (socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (ip, port))


# --- the shared contract ----------------------------------------------------------------------


async def test_connects_and_returns_non_blocking_socket(impl):
    socks = listeners_on_one_port(["::1", "127.0.0.1"])
    port = socks[0].getsockname()[1]
    try:
        sock = await impl([info("::1", port), info("127.0.0.1", port)], happy_eyeballs_delay=0.25)
        try:
            assert sock.getpeername()[:2] == ("::1", port)
            assert not sock.getblocking()
        finally:
            sock.close()
    finally:
        for s in socks:
            s.close()


async def test_empty_addr_infos_is_value_error(impl):
    with pytest.raises(ValueError, match="addr_infos must not be empty"):
        await impl([])


async def test_single_refused_address_is_connection_refused(impl):
    port = free_port_on(["127.0.0.2"])
    with pytest.raises(ConnectionRefusedError) as raised:
        await impl([info("127.0.0.2", port)])
    assert raised.value.errno == errno.ECONNREFUSED


async def test_all_refused_is_oserror_with_errno(impl):
    port = free_port_on(["::1", "127.0.0.2", "127.0.0.3"])
    addrs = [info("::1", port), info("127.0.0.2", port), info("127.0.0.3", port)]
    with pytest.raises(OSError) as raised:
        await impl(addrs, happy_eyeballs_delay=0.25)
    assert raised.value.errno == errno.ECONNREFUSED
    assert str(port) in str(raised.value)


async def test_no_delay_means_one_address_at_a_time(impl):
    """happy_eyeballs_delay=None: the black hole first blocks the working address behind it."""
    socks = listeners_on_one_port(["127.0.0.1"])
    port = socks[0].getsockname()[1]
    try:
        with black_hole_on("127.0.0.2", port):
            addrs = [info("127.0.0.2", port), info("127.0.0.1", port)]
            with pytest.raises(asyncio.TimeoutError):  # 3.10: not the builtin one
                await asyncio.wait_for(impl(addrs, happy_eyeballs_delay=None), 0.3)
            t0 = time.monotonic()
            sock = await impl(addrs, happy_eyeballs_delay=0.05)
            elapsed = time.monotonic() - t0
            sock.close()
    finally:
        socks[0].close()
    assert 0.05 <= elapsed < 0.2, elapsed


async def test_local_addr_infos_bind_the_source(impl):
    socks = listeners_on_one_port(["127.0.0.1"])
    port = socks[0].getsockname()[1]
    try:
        for local_port in (0, free_port_on(["127.0.0.3"])):
            local = [info("127.0.0.3", local_port)]
            sock = await impl([info("127.0.0.1", port)], local_addr_infos=local)
            try:
                assert sock.getsockname()[0] == "127.0.0.3"
                if local_port:
                    assert sock.getsockname()[1] == local_port
            finally:
                sock.close()
    finally:
        socks[0].close()


async def test_local_addr_infos_of_other_family_fail(impl):
    socks = listeners_on_one_port(["127.0.0.1"])
    port = socks[0].getsockname()[1]
    try:
        with pytest.raises(OSError):
            await impl([info("127.0.0.1", port)], local_addr_infos=[info("::1", 0)])
    finally:
        socks[0].close()


async def test_socket_factory_gets_the_addr_info(impl):
    socks = listeners_on_one_port(["127.0.0.1"])
    port = socks[0].getsockname()[1]
    given: list[Any] = []

    def factory(addr_info):
        given.append(addr_info)
        sock = socket.socket(addr_info[0], addr_info[1], addr_info[2])
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    try:
        sock = await impl([info("127.0.0.1", port)], socket_factory=factory)
        try:
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        finally:
            sock.close()
    finally:
        socks[0].close()
    assert given == [info("127.0.0.1", port)]


async def test_loop_argument_accepted(impl):
    socks = listeners_on_one_port(["127.0.0.1"])
    port = socks[0].getsockname()[1]
    try:
        sock = await impl([info("127.0.0.1", port)], loop=asyncio.get_running_loop())
        with sock:
            assert sock.getpeername() == ("127.0.0.1", port)
    finally:
        socks[0].close()


async def test_cancel_leaves_no_socket(impl):
    with black_hole_on("127.0.0.2") as port, black_hole_on("127.0.0.3", port):
        fds = fd_count()
        task = asyncio.create_task(
            impl([info("127.0.0.2", port), info("127.0.0.3", port)], happy_eyeballs_delay=0.01)
        )
        for _ in range(100):  # bounded: until both attempts are in flight
            if fd_count() >= fds + 2:
                break
            await asyncio.sleep(0.005)
        assert fd_count() == fds + 2
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert fd_count() == fds


# --- ours: the interleave order and the errors in detail ------------------------------------


@pytest.mark.parametrize(
    ("delay", "interleave", "order"),
    [
        (0.25, None, ["127.0.0.2", "::1", "127.0.0.3"]),  # delay: interleave 1 by default
        (None, None, ["127.0.0.2", "127.0.0.3", "::1"]),  # no delay: the given order
        (0.25, 2, ["127.0.0.2", "127.0.0.3", "::1"]),
    ],
)
async def test_interleave_like_aiohappyeyeballs(delay, interleave, order):
    port = free_port_on(["::1", "127.0.0.2", "127.0.0.3"])
    events: list[RaceEvent] = []
    ours = make_start_connection(sort=False, history=None, on_event=events.append)
    addrs = [info("127.0.0.2", port), info("127.0.0.3", port), info("::1", port)]
    with pytest.raises(ConnectError):
        await ours(addrs, happy_eyeballs_delay=delay, interleave=interleave)
    assert [str(e.pair.destination.ip) for e in events if e.kind == "started"] == order


async def test_errors_are_connect_errors_listing_attempts():
    port = free_port_on(["::1", "127.0.0.2"])
    with pytest.raises(ConnectError) as raised:
        await start_connection(
            [info("::1", port), info("127.0.0.2", port)], happy_eyeballs_delay=0.25
        )
    assert isinstance(raised.value, ConnectionRefusedError)
    assert {str(a.pair.destination.ip) for a in raised.value.attempts} == {"::1", "127.0.0.2"}
    assert raised.value.__context__ is None  # no chain back through our frames


async def test_bad_arguments_are_invalid_argument():
    with pytest.raises(InvalidArgument, match="5-tuple"):
        await start_connection([("127.0.0.1", 80)])
    other_loop = asyncio.new_event_loop()
    try:
        with pytest.raises(InvalidArgument, match="running event loop"):
            await start_connection([info("127.0.0.1", 80)], loop=other_loop)
    finally:
        other_loop.close()
    with pytest.raises(TypeError, match="bogus"):  # an unknown option, as for any call
        make_start_connection(bogus=1)
    with pytest.raises(InvalidArgument, match="attempt_delay"):
        make_start_connection(attempt_delay=0)


# --- patched under aiohttp ------------------------------------------------------------------


async def test_patched_into_aiohttp_races_with_our_history():
    """A stock aiohttp.TCPConnector with ours patched in for aiohappyeyeballs': the first
    request pays the attempt delay for the black-holed ::1, the next new connection does not
    (our history), and every attempt shows in our on_event."""
    socks = listeners_on_one_port(["127.0.0.1"])
    port = socks[0].getsockname()[1]
    server = await Server().start(socks)
    history = PairHistory()
    events: list[RaceEvent] = []
    ours = make_start_connection(history=history, on_event=events.append)
    times = []
    try:
        with (
            black_hole_on("::1", port),
            mock.patch("aiohappyeyeballs.start_connection", ours),
        ):
            connector = aiohttp.TCPConnector(
                resolver=StaticResolver({"bh.test": ["::1", "127.0.0.1"]}), force_close=True
            )
            async with aiohttp.ClientSession(connector=connector, timeout=TIMEOUT) as session:
                for _ in range(2):
                    t0 = time.monotonic()
                    async with session.get(f"http://bh.test:{port}/") as response:
                        assert await response.text() == "hello 127.0.0.1 /"
                    times.append(time.monotonic() - t0)
    finally:
        await server.stop()
    # (the second call is checked by its events, not by "< 0.1 s": ::1 may start 0.1 s in, the
    # floor of a known pair's delay, should the loop stall that long; see test_aiohttp)
    assert times[0] >= 0.25 and times[1] < 0.25, times
    started = [str(e.pair.destination.ip) for e in events if e.kind == "started"]
    assert started[:3] == ["::1", "127.0.0.1", "127.0.0.1"]
    won = [(str(e.pair.destination.ip), e.index) for e in events if e.kind == "won"]
    assert won == [("127.0.0.1", 1), ("127.0.0.1", 0)]  # the second race: IPv4 first, it wins
    assert len(history) >= 2


async def test_patched_default_start_connection_errors_under_aiohttp():
    port = free_port_on(["127.0.0.2"])
    with mock.patch("aiohappyeyeballs.start_connection", start_connection):
        connector = aiohttp.TCPConnector(resolver=StaticResolver({"down.test": ["127.0.0.2"]}))
        async with aiohttp.ClientSession(connector=connector, timeout=TIMEOUT) as session:
            with pytest.raises(aiohttp.ClientConnectorError) as raised:
                await session.get(f"http://down.test:{port}/")
    assert raised.value.errno == errno.ECONNREFUSED
    assert isinstance(raised.value.os_error, ConnectError)
