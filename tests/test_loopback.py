"""The async API on real loopback sockets, on the default loop and on uvloop (SPEC §2, §6)."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import gc
import socket
import ssl
import subprocess
import sys
import textwrap
import time

import pytest

import aioconnlist
from aioconnlist import ConnectError, ConnectTimeout, InvalidArgument, PairHistory, RaceEvent
from tests.support import (
    BlackHole,
    Listener,
    fd_count,
    has_ipv6_loopback,
    refused_address,
    task_count,
)

pytestmark = pytest.mark.both_loops


async def test_connects_to_a_listener(listener: Listener) -> None:
    before = fd_count()
    sock = await aioconnlist.connect_by_list([listener.address], history=PairHistory())
    try:
        assert sock.getpeername() == listener.address
        assert sock.type == socket.SOCK_STREAM
        assert fd_count() == before + 1  # only the returned socket
    finally:
        sock.close()


async def test_refused_everywhere_is_econnrefused_and_leaks_nothing() -> None:
    addresses = [refused_address("127.0.0.1"), refused_address("127.0.0.3")]
    before, tasks = fd_count(), task_count()
    with pytest.raises(ConnectError) as info:
        await aioconnlist.connect_by_list(addresses, local_addresses=None, history=None)
    assert info.value.errno == errno.ECONNREFUSED
    assert len(info.value.attempts) == 2
    assert all(a.outcome == "failed" for a in info.value.attempts)
    assert fd_count() == before and task_count() == tasks


async def test_black_hole_then_listener_costs_one_attempt_delay(
    black_hole: BlackHole, listener: Listener
) -> None:
    before = fd_count()
    start = time.monotonic()
    sock = await aioconnlist.connect_by_list(
        [black_hole.address, listener.address],
        local_addresses=None,
        sort=False,
        attempt_delay=0.1,
        history=None,
    )
    elapsed = time.monotonic() - start
    try:
        assert sock.getpeername() == listener.address
        assert 0.1 <= elapsed < 0.15
        assert fd_count() == before + 1  # the black-holed attempt's socket is closed
    finally:
        sock.close()


async def test_history_puts_the_working_pair_first_next_time(
    black_hole: BlackHole, listener: Listener
) -> None:
    history = PairHistory()
    options = {"local_addresses": None, "sort": True, "attempt_delay": 0.1, "history": history}
    addresses = [black_hole.address, listener.address]
    first = await aioconnlist.connect_by_list(addresses, **options)
    first.close()
    events: list[RaceEvent] = []
    start = time.monotonic()
    second = await aioconnlist.connect_by_list(addresses, on_event=events.append, **options)
    elapsed = time.monotonic() - start
    second.close()
    assert [e.kind for e in events] == ["started", "won"]
    assert str(events[0].pair.destination) == f"127.0.0.1:{listener.port}"
    assert elapsed < 0.1  # the attempt delay was not waited for


async def test_deadline_is_hard(black_hole: BlackHole) -> None:
    before, tasks = fd_count(), task_count()
    start = time.monotonic()
    with pytest.raises(ConnectTimeout) as info:
        await aioconnlist.connect_by_list(
            [black_hole.address], timeout=0.2, local_addresses=None, history=None
        )
    elapsed = time.monotonic() - start
    # uvloop's clock has 1 ms steps and is read once per loop turn: allow 1 ms early
    assert 0.199 <= elapsed < 0.21
    assert info.value.errno == errno.ETIMEDOUT
    assert isinstance(info.value, TimeoutError)
    assert [a.outcome for a in info.value.attempts] == ["timed out"]
    assert fd_count() == before and task_count() == tasks


async def test_fifty_cancelled_races_leak_nothing(black_hole: BlackHole) -> None:
    addresses = [black_hole.address, ("127.0.0.2", black_hole.address[1])]
    before, tasks = fd_count(), task_count()
    for i in range(50):
        race = asyncio.ensure_future(
            aioconnlist.connect_by_list(addresses, attempt_delay=0.01, history=None)
        )
        # let the race start one or two attempts (bounded), then cancel it
        for _ in range(1 + i % 3):
            await asyncio.sleep(0)
        race.cancel()
        with pytest.raises(asyncio.CancelledError):
            await race
    assert fd_count() == before
    assert task_count() == tasks


async def test_a_second_connection_in_the_same_tick_is_closed() -> None:
    listeners = [Listener("127.0.0.1"), Listener("127.0.0.4")]
    try:
        before = fd_count()
        for _ in range(20):  # small delay: both usually connect before the winner is chosen
            sock = await aioconnlist.connect_by_list(
                [lst.address for lst in listeners],
                attempt_delay=0.01,
                local_addresses=None,
                history=None,
            )
            sock.close()
            for lst in listeners:
                for s in lst.accept_all():
                    s.close()
        assert fd_count() == before
    finally:
        for lst in listeners:
            lst.close()


async def test_explicit_local_address_is_used(listener: Listener) -> None:
    sock = await aioconnlist.connect_by_list(
        [listener.address], local_addresses=["127.0.0.5"], history=None
    )
    try:
        assert sock.getsockname()[0] == "127.0.0.5"
    finally:
        sock.close()


async def test_auto_sources_connect_through_the_kernel_choice_first(listener: Listener) -> None:
    events: list[RaceEvent] = []
    sock = await aioconnlist.connect_by_list([listener.address], on_event=events.append)
    sock.close()
    assert events[0].pair.source is None  # the kernel's own choice is tried first
    assert events[-1].kind == "won"


@pytest.mark.skipif(not has_ipv6_loopback(), reason="no IPv6 loopback on this machine")
async def test_ipv6_and_ipv4_mixed(listener: Listener) -> None:
    v6 = Listener("::1")
    try:
        sock = await aioconnlist.connect_by_list(
            [f"[::1]:{v6.port}", listener.address], history=PairHistory()
        )
        try:
            assert sock.family == socket.AF_INET6  # RFC 6724: ::1 has the higher precedence
            assert sock.getpeername()[:2] == ("::1", v6.port)
        finally:
            sock.close()
    finally:
        v6.close()


async def test_open_connection_streams() -> None:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(await reader.readline())
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        reader, writer = await aioconnlist.open_connection(
            [refused_address(), ("127.0.0.1", port)], history=None
        )
        writer.write(b"hello\n")
        assert await reader.readline() == b"hello\n"
        writer.close()
        await writer.wait_closed()
    finally:
        server.close()
        await server.wait_closed()


async def test_create_connection_with_tls() -> None:
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("example.test").configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)

    async def greet(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"tls ok\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(greet, "127.0.0.1", 0, ssl=server_ctx)
    port = server.sockets[0].getsockname()[1]
    try:
        reader, writer = await aioconnlist.open_connection(
            [("127.0.0.1", port)], ssl=client_ctx, server_hostname="example.test", timeout=5
        )
        assert await reader.readline() == b"tls ok\n"
        assert writer.get_extra_info("peercert") is not None
        writer.close()
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            await writer.wait_closed()
        # a wrong name fails verification, and the raced socket is closed
        before = fd_count()
        with pytest.raises(ssl.SSLCertVerificationError):
            await aioconnlist.open_connection(
                [("127.0.0.1", port)], ssl=client_ctx, server_hostname="other.test"
            )
        # the in-process server closes its side asynchronously: bounded wait for it
        for _ in range(200):
            if fd_count() == before:
                break
            await asyncio.sleep(0.005)
        assert fd_count() == before
    finally:
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize(
    ("addresses", "options", "message"),
    [
        ([], {}, "empty"),
        ("127.0.0.1:80", {}, "list of addresses"),
        ([("example.com", 80)], {}, "connect_by_name"),
        ([("127.0.0.1", 0)], {}, "out of range"),
        ([("127.0.0.1", 65536)], {}, "out of range"),
        ([("127.0.0.1", 80)], {"attempt_delay": 0.001}, "attempt_delay"),
        ([("127.0.0.1", 80)], {"timeout": -1}, "timeout"),
        ([("127.0.0.1", 80)], {"interleave": -1}, "interleave"),
        ([("127.0.0.1", 80)], {"local_addresses": "eth0"}, "local_addresses"),
        ([("127.0.0.1", 80)], {"history": {}}, "history"),
    ],
)
async def test_bad_input_is_a_clear_valueerror(
    addresses: object, options: dict[str, object], message: str
) -> None:
    before = fd_count()
    with pytest.raises(InvalidArgument, match=message) as info:
        await aioconnlist.connect_by_list(addresses, **options)
    assert info.value.errno == errno.EINVAL
    assert isinstance(info.value, ValueError)
    assert fd_count() == before


async def test_unknown_option_is_a_typeerror() -> None:
    with pytest.raises(TypeError, match=r"unknown option.*'bogus'.*attempt_delay"):
        await aioconnlist.connect_by_list([("127.0.0.1", 80)], bogus=1)
    with pytest.raises(TypeError, match=r"unknown option.*'bogus'"):  # not cacheable: a list
        await aioconnlist.connect_by_list([("127.0.0.1", 80)], bogus=[1])


async def test_failed_race_leaves_no_reference_cycle() -> None:
    address = refused_address()
    gc.collect()
    gc.disable()
    try:
        for _ in range(3):
            with pytest.raises(ConnectError):
                await aioconnlist.connect_by_list([address], local_addresses=None, history=None)
        assert gc.collect() == 0
    finally:
        gc.enable()


def test_out_of_descriptors_is_enobufs() -> None:
    """In a child whose descriptors are all in use, no socket can be made: ENOBUFS, EMFILE."""
    code = textwrap.dedent(
        """
        import asyncio, errno, os, resource
        import aioconnlist
        aioconnlist.connect_by_list, aioconnlist.ConnectError  # loaded (lazily) before the hog
        async def main():
            n = len(os.listdir("/proc/self/fd"))
            resource.setrlimit(resource.RLIMIT_NOFILE, (n + 16, n + 16))
            hog = []
            try:
                while True:
                    hog.append(open(os.devnull))
            except OSError as e:
                assert e.errno == errno.EMFILE
            try:
                await aioconnlist.connect_by_list([("127.0.0.1", 9)], local_addresses=None)
            except aioconnlist.ConnectError as e:
                cause = e.__cause__.exceptions[0]
                print(e.errno == errno.ENOBUFS, cause.errno == errno.EMFILE)
        asyncio.run(main())
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True
    )
    assert out.stdout.split() == ["True", "True"], out.stdout + out.stderr


async def test_no_usable_pair_is_einval() -> None:
    with pytest.raises(InvalidArgument, match="no usable"):
        await aioconnlist.connect_by_list(["[fe80::1]:80"])  # link-local without a zone
    with pytest.raises(InvalidArgument, match="no usable"):
        await aioconnlist.connect_by_list([("192.0.2.1", 80)], local_addresses=["127.0.0.1"])
