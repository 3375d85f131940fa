"""aioconnlist.loop: event loops whose create_connection races, with real clients on loopback.

A name that resolves to a black-holed ``::1`` and a working ``127.0.0.1`` (one port) is given
to each loop through its own ``getaddrinfo`` (the loop's resolver is what the race uses, so a
loop-level name table is the supported way to add names); the clients are the real ones:
``asyncio.open_connection``, websockets, redis.asyncio against a ``redis-server`` started here.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import glob
import os
import select
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import aioconnlist
import aioconnlist.loop
from aioconnlist import ConnectError, PairHistory, RaceEvent
from tests.dnsserver import listeners_on_one_port
from tests.support import fd_count, has_ipv6_loopback, skip_or_fail

if sys.version_info < (3, 11):  # the backport on 3.10
    from exceptiongroup import BaseExceptionGroup

trustme = pytest.importorskip("trustme")
FLAVOURS = ["asyncio", "uvloop"]
NAME = "dual.test"  # AAAA ::1 (black hole), A 127.0.0.1 (the server)
TIMEOUT = 10.0  # bounds every wait here; nothing should come near it

needs_ipv6 = pytest.mark.skipif(not has_ipv6_loopback(), reason="no IPv6 loopback (::1)")


# ------------------------------------------------------------------ helpers


def name_table(
    loop: asyncio.AbstractEventLoop,
    table: dict[str, list[str]],
    delays: dict[int, float] | None = None,
) -> None:
    """Give ``loop`` names of its own: its ``getaddrinfo`` answers them (a family's answer
    after ``delays[family]`` seconds, as a slow DNS server would), others go on as usual."""
    real = loop.getaddrinfo

    async def getaddrinfo(
        host: Any, port: Any, *, family: int = 0, type: int = 0, proto: int = 0, flags: int = 0
    ) -> list[tuple[Any, ...]]:
        if host not in table or flags & socket.AI_NUMERICHOST:
            return await real(host, port, family=family, type=type, proto=proto, flags=flags)
        out: list[tuple[Any, ...]] = []
        for ip in table[host]:
            fam = socket.AF_INET6 if ":" in ip else socket.AF_INET
            if family in (0, fam):
                addr = (ip, int(port), 0, 0) if fam == socket.AF_INET6 else (ip, int(port))
                out.append((fam, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", addr))
        if not out:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        if delays and family in delays:
            await asyncio.sleep(delays[family])
        return out

    loop.getaddrinfo = getaddrinfo  # type: ignore[method-assign]


class Events:
    """An ``on_event`` that keeps the events of each connection apart."""

    def __init__(self) -> None:
        self.all: list[RaceEvent] = []

    def __call__(self, event: RaceEvent) -> None:
        self.all.append(event)

    def take(self) -> list[tuple[str, str]]:
        out = [(e.kind, e.pair.destination.ip.compressed) for e in self.all]
        self.all.clear()
        return out


def started(events: list[tuple[str, str]]) -> list[str]:
    return [ip for kind, ip in events if kind == "started"]


def winner(events: list[tuple[str, str]]) -> str | None:
    won = [ip for kind, ip in events if kind == "won"]
    assert len(won) <= 1, events
    return won[0] if won else None


def run_on(flavour: str, main: Callable[[], Awaitable[Any]], **options: Any) -> Any:
    """Run ``main()`` on a new racing loop of ``flavour`` with ``options``; close it."""
    loop = aioconnlist.loop.new_event_loop(uvloop=flavour == "uvloop", **options)
    try:
        return loop.run_until_complete(asyncio.wait_for(main(), TIMEOUT))
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


@contextlib.contextmanager
def dual_stack(backlog: int = 64) -> Iterator[tuple[socket.socket, int]]:
    """A port with a black hole on ``::1`` and a listening socket on ``127.0.0.1``."""
    v6, v4 = listeners_on_one_port(["::1", "127.0.0.1"], backlog=backlog)
    port = v4.getsockname()[1]
    v6.close()
    hole = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    filler = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    try:
        hole.bind(("::1", port))
        hole.listen(0)
        filler.settimeout(2)
        filler.connect(("::1", port))  # takes the only queue slot: further SYNs are dropped
        yield v4, port
    finally:
        filler.close()
        hole.close()
        v4.close()


async def echo_server(sock: socket.socket) -> asyncio.AbstractServer:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(1024):
                writer.write(data)
                await writer.drain()
        writer.close()

    return await asyncio.start_server(echo, sock=sock)


async def ping(host: str, port: int, **kwargs: Any) -> tuple[Any, bytes]:
    reader, writer = await asyncio.open_connection(host, port, **kwargs)
    try:
        writer.write(b"ping")
        got = await reader.readexactly(4)
        return writer.get_extra_info("peername"), got
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            await writer.wait_closed()


# ------------------------------------------------------------------ open_connection


@needs_ipv6
@pytest.mark.parametrize("flavour", FLAVOURS)
def test_open_connection_second_connection_starts_with_the_working_family(flavour: str) -> None:
    """First connection: ::1 first (RFC 6724), 127.0.0.1 after the attempt delay, wins; from
    the second on, history puts 127.0.0.1 first: one RTT."""
    events = Events()
    with dual_stack() as (v4, port):

        async def main() -> list[Any]:
            name_table(asyncio.get_running_loop(), {NAME: ["::1", "127.0.0.1"]})
            server = await echo_server(v4)
            try:
                out = []
                for _ in range(3):
                    peer, got = await ping(NAME, port)
                    out.append((peer[:2], got, events.take()))
                return out
            finally:
                server.close()

        calls = run_on(flavour, main, history=PairHistory(), on_event=events)
    (peer, got, first), *later = calls
    assert peer == ("127.0.0.1", port) and got == b"ping"
    assert started(first) == ["::1", "127.0.0.1"] and winner(first) == "127.0.0.1", first
    for peer, got, call in later:
        assert peer == ("127.0.0.1", port) and got == b"ping"
        assert started(call)[0] == "127.0.0.1" and winner(call) == "127.0.0.1", call


@needs_ipv6
@pytest.mark.parametrize("flavour", FLAVOURS)
def test_a_late_a_answer_is_waited_for_when_the_aaaa_addresses_just_failed(flavour: str) -> None:
    """AAAA answers first, A 20 ms later: racing starts on AAAA at once the first time; once
    history holds the black hole, the A answer is waited for (up to the Resolution Delay) and
    the race leads with it."""
    events = Events()
    with dual_stack() as (v4, port):

        async def main() -> list[list[tuple[str, str]]]:
            loop = asyncio.get_running_loop()
            name_table(loop, {NAME: ["::1", "127.0.0.1"]}, delays={socket.AF_INET: 0.02})
            server = await echo_server(v4)
            try:
                out = []
                for _ in range(2):
                    await ping(NAME, port)
                    out.append(events.take())
                return out
            finally:
                server.close()

        first, second = run_on(flavour, main, history=PairHistory(), on_event=events)
    assert started(first)[0] == "::1" and winner(first) == "127.0.0.1", first
    assert started(second)[0] == "127.0.0.1" and winner(second) == "127.0.0.1", second


@needs_ipv6
def test_the_stock_loop_pays_the_attempt_delay_every_time() -> None:
    """The figure beside ours: asyncio's own Happy Eyeballs has no memory."""
    delay = 0.1
    with dual_stack() as (v4, port):

        async def main() -> list[float]:
            name_table(asyncio.get_running_loop(), {NAME: ["::1", "127.0.0.1"]})
            server = await echo_server(v4)
            try:
                times = []
                for _ in range(2):
                    start = time.monotonic()
                    peer, _got = await ping(NAME, port, happy_eyeballs_delay=delay)
                    times.append(time.monotonic() - start)
                    assert peer[0] == "127.0.0.1"
                return times
            finally:
                server.close()

        loop = asyncio.new_event_loop()
        try:
            times = loop.run_until_complete(asyncio.wait_for(main(), TIMEOUT))
        finally:
            loop.close()
    assert all(t >= delay for t in times), times  # a lower bound: load cannot break it


@needs_ipv6
@pytest.mark.parametrize("flavour", FLAVOURS)
def test_happy_eyeballs_delay_is_the_calls_attempt_delay(flavour: str) -> None:
    events = Events()
    seen: list[RaceEvent] = []
    with dual_stack() as (v4, port):

        async def main() -> None:
            name_table(asyncio.get_running_loop(), {NAME: ["::1", "127.0.0.1"]})
            server = await echo_server(v4)
            try:
                await ping(NAME, port, happy_eyeballs_delay=0.4)
            finally:
                server.close()

        run_on(flavour, main, history=None, on_event=lambda e: (seen.append(e), events(e)))
    starts = [e for e in seen if e.kind == "started"]
    assert [e.pair.destination.ip.compressed for e in starts] == ["::1", "127.0.0.1"]
    assert starts[1].time >= 0.4 - 0.005, starts  # not the loop's 0.25


@pytest.mark.parametrize("value", [0, 0.001])
def test_happy_eyeballs_delay_below_the_floor_is_raised_to_it(value: float) -> None:
    from aioconnlist._core.options import make_options
    from aioconnlist.loop import _per_call

    assert _per_call(make_options(), value, None).attempt_delay == 0.01
    assert _per_call(make_options(), 1.5, 2).attempt_delay == 1.5
    assert _per_call(make_options(), None, 2).interleave == 2
    with pytest.raises(ValueError, match="interleave"):
        _per_call(make_options(), None, -1)


@needs_ipv6
@pytest.mark.parametrize("flavour", FLAVOURS)
def test_family_restricts_the_lookups(flavour: str) -> None:
    events = Events()
    with dual_stack() as (v4, port):

        async def main() -> Any:
            name_table(asyncio.get_running_loop(), {NAME: ["::1", "127.0.0.1"]})
            server = await echo_server(v4)
            try:
                return (await ping(NAME, port, family=socket.AF_INET))[0]
            finally:
                server.close()

        peer = run_on(flavour, main, history=None, on_event=events)
    assert peer[:2] == ("127.0.0.1", port)
    assert started(events.take()) == ["127.0.0.1"]


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_family_of_an_ip_literal_is_checked_as_getaddrinfo_does(flavour: str) -> None:
    async def main() -> None:
        await asyncio.open_connection("127.0.0.1", 9, family=socket.AF_INET6)

    with pytest.raises(socket.gaierror):
        run_on(flavour, main)


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_flags_reach_the_lookups(flavour: str) -> None:
    events = Events()

    async def main() -> None:
        name_table(asyncio.get_running_loop(), {NAME: ["127.0.0.1"]})
        await asyncio.open_connection(NAME, 9, flags=socket.AI_NUMERICHOST)

    with pytest.raises(socket.gaierror):
        run_on(flavour, main, on_event=events)
    assert events.take() == []  # nothing was attempted


@pytest.mark.parametrize("flavour", FLAVOURS)
@pytest.mark.parametrize("fixed_port", [False, True])
def test_local_addr_binds_every_attempt(flavour: str, fixed_port: bool, listener: Any) -> None:
    local_port = 0
    if fixed_port:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            local_port = probe.getsockname()[1]

    async def main() -> Any:
        _r, writer = await asyncio.open_connection(
            "localhost",
            listener.port,
            local_addr=("127.0.0.1", local_port),
            proto=socket.IPPROTO_TCP,  # reaches the lookups and every attempt's socket
        )
        try:
            return writer.get_extra_info("sockname")
        finally:
            writer.close()

    events = Events()
    sockname = run_on(flavour, main, history=None, on_event=events)
    assert sockname[0] == "127.0.0.1"
    if fixed_port:
        assert sockname[1] == local_port
    assert winner(events.take()) == "127.0.0.1"


# ------------------------------------------------------------------ TLS


@pytest.fixture(scope="module")
def tls() -> dict[str, ssl.SSLContext]:
    ca = trustme.CA()
    cert = ca.issue_cert(NAME, "localhost")
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    return {"server": server_ctx, "client": client_ctx}


@needs_ipv6
@pytest.mark.parametrize("flavour", FLAVOURS)
def test_tls_server_hostname_defaults_to_the_host(
    flavour: str, tls: dict[str, ssl.SSLContext]
) -> None:
    with dual_stack() as (v4, port):

        async def main() -> tuple[Any, ...]:
            name_table(asyncio.get_running_loop(), {NAME: ["::1", "127.0.0.1"]})

            async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
                writer.write(await reader.readexactly(4))
                await writer.drain()
                writer.close()

            server = await asyncio.start_server(echo, sock=v4, ssl=tls["server"])
            try:
                peer, got = await ping(NAME, port, ssl=tls["client"], ssl_handshake_timeout=5)
                # the certificate is checked against the host: another name fails
                with pytest.raises(ssl.SSLCertVerificationError):
                    await ping(NAME, port, ssl=tls["client"], server_hostname="other.test")
                return peer, got
            finally:
                server.close()

        peer, got = run_on(flavour, main, history=PairHistory())
    assert peer[:2] == ("127.0.0.1", port) and got == b"ping"


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_tls_arguments_without_ssl_are_refused_before_connecting(flavour: str) -> None:
    events = Events()

    async def main() -> None:
        with pytest.raises(ValueError, match="server_hostname is only meaningful with ssl"):
            await asyncio.open_connection("localhost", 9, server_hostname="x")
        with pytest.raises(ValueError, match="ssl_handshake_timeout is only meaningful"):
            await asyncio.open_connection("localhost", 9, ssl_handshake_timeout=1)

    run_on(flavour, main, on_event=events)
    assert events.take() == []


# ------------------------------------------------------------------ errors, pass-through


@pytest.mark.parametrize("flavour", FLAVOURS)
@needs_ipv6
def test_all_errors_raises_a_group_of_every_attempt(flavour: str) -> None:
    v6, v4 = listeners_on_one_port(["::1", "127.0.0.1"])
    port = v4.getsockname()[1]
    v6.close()
    v4.close()  # both refuse now

    async def main() -> tuple[BaseException, BaseException]:
        name_table(asyncio.get_running_loop(), {NAME: ["::1", "127.0.0.1"]})
        with pytest.raises(ConnectionRefusedError) as plain:
            await asyncio.open_connection(NAME, port)
        loop = asyncio.get_running_loop()
        with pytest.raises(BaseExceptionGroup) as group:
            await loop.create_connection(asyncio.Protocol, NAME, port, all_errors=True)
        return plain.value, group.value

    gc.collect()  # (what earlier tests left to the collector is not counted against this one)
    before = fd_count()
    plain, group = run_on(flavour, main, history=None)
    assert isinstance(plain, ConnectError) and plain.errno == 111
    assert isinstance(group, BaseExceptionGroup)
    assert [type(e) for e in group.exceptions] == [ConnectionRefusedError] * 2, group.exceptions
    gc.collect()
    assert fd_count() == before


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_sock_and_hostless_calls_go_to_the_base(flavour: str, listener: Any) -> None:
    events = Events()

    async def main() -> Any:
        loop = asyncio.get_running_loop()
        sock = socket.create_connection(listener.address)
        transport, _ = await loop.create_connection(asyncio.Protocol, sock=sock)
        try:
            peer = transport.get_extra_info("peername")
        finally:
            transport.close()
        with pytest.raises(ValueError):
            await loop.create_connection(asyncio.Protocol)  # neither host nor sock
        return peer

    assert run_on(flavour, main, on_event=events)[:2] == listener.address
    assert events.take() == []


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_no_fd_or_task_left_after_cancellation_and_deadline(flavour: str, black_hole: Any) -> None:
    """Cancelling a connect stuck on a black hole, and the loop's deadline, leave nothing."""
    host, port = black_hole.address

    async def main() -> tuple[int, int]:
        loop = asyncio.get_running_loop()
        baseline = len(asyncio.all_tasks())
        first_attempt = asyncio.Event()

        def on_event(event: RaceEvent) -> None:
            if event.kind == "started":
                first_attempt.set()

        aioconnlist.loop.install(on_event=on_event, history=None)
        try:
            task = asyncio.ensure_future(asyncio.open_connection(host, port))
            await asyncio.wait_for(first_attempt.wait(), TIMEOUT)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        finally:
            aioconnlist.loop.uninstall()
        with pytest.raises(TimeoutError):  # the loop's own option: a hard deadline
            await loop.create_connection(asyncio.Protocol, host, port)
        return baseline, len(asyncio.all_tasks())

    gc.collect()  # (what earlier tests left to the collector is not counted against this one)
    before = fd_count()
    baseline, tasks = run_on(flavour, main, timeout=0.2, history=None)
    assert tasks == baseline  # no attempt task left
    gc.collect()
    assert fd_count() == before  # the loop itself closed: every attempt socket was closed


# ------------------------------------------------------------------ install / uninstall


@pytest.mark.both_loops
async def test_install_patches_the_running_loop_and_uninstall_restores_it(listener: Any) -> None:
    loop = asyncio.get_running_loop()
    assert "create_connection" not in vars(loop)
    events = Events()
    aioconnlist.loop.install(on_event=events, history=None)
    try:
        patched = loop.create_connection
        aioconnlist.loop.install(on_event=events, history=None)  # idempotent
        assert loop.create_connection is patched
        _r, writer = await asyncio.open_connection("localhost", listener.port)
        writer.close()
        assert winner(events.take()) == "127.0.0.1"
    finally:
        aioconnlist.loop.uninstall()
    assert "create_connection" not in vars(loop)
    aioconnlist.loop.uninstall()  # a no-op now
    _r, writer = await asyncio.open_connection("localhost", listener.port)
    writer.close()
    assert events.take() == []  # the stock method again


@pytest.mark.both_loops
async def test_install_again_replaces_the_options(black_hole: Any) -> None:
    host, port = black_hole.address
    aioconnlist.loop.install(timeout=30, history=None)
    aioconnlist.loop.install(timeout=0.05, history=None)
    try:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(asyncio.open_connection(host, port), TIMEOUT)
    finally:
        aioconnlist.loop.uninstall()


async def test_uninstall_restores_an_earlier_instance_attribute(listener: Any) -> None:
    loop = asyncio.get_running_loop()
    calls: list[Any] = []
    stock = loop.create_connection

    async def theirs(*args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        return await stock(*args, **kwargs)

    loop.create_connection = theirs  # type: ignore[method-assign]
    try:
        aioconnlist.loop.install(history=None)
        _r, writer = await asyncio.open_connection("localhost", listener.port)
        writer.close()
        assert len(calls) == 1 and "sock" not in calls[0]  # theirs was given our socket
        aioconnlist.loop.uninstall()
        assert loop.create_connection is theirs
        loop.create_connection = stock  # type: ignore[method-assign]
        aioconnlist.loop.install(history=None)
        loop.create_connection = theirs  # type: ignore[method-assign]  # on top of ours
        with pytest.raises(RuntimeError, match="replaced after"):
            aioconnlist.loop.uninstall()
    finally:
        vars(loop).pop("create_connection", None)


def test_install_without_a_running_loop_says_what_to_do() -> None:
    with pytest.raises(RuntimeError, match="pass loop="):
        aioconnlist.loop.install()
    loop = asyncio.new_event_loop()
    try:
        aioconnlist.loop.install(loop)
        assert "create_connection" in vars(loop)
        aioconnlist.loop.uninstall(loop)
        assert "create_connection" not in vars(loop)
    finally:
        loop.close()


def test_install_on_a_loop_whose_methods_cannot_be_replaced_points_to_new_event_loop() -> None:
    pytest.importorskip("uvloop")
    import uvloop.loop

    bare = uvloop.loop.Loop()  # the compiled base class: no instance dict
    try:
        with pytest.raises(TypeError, match="new_event_loop"):
            aioconnlist.loop.install(bare)
    finally:
        bare.close()


# ------------------------------------------------------------------ loop factories


@pytest.mark.skipif(sys.version_info < (3, 11), reason="asyncio.Runner is 3.11+")
def test_runner_loop_factory(listener: Any) -> None:
    events = Events()
    factory = functools.partial(aioconnlist.loop.new_event_loop, on_event=events, history=None)

    async def main() -> None:
        _r, writer = await asyncio.open_connection("localhost", listener.port)
        writer.close()

    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(main())
    assert winner(events.take()) == "127.0.0.1"
    if sys.version_info >= (3, 12):
        asyncio.run(main(), loop_factory=factory)
        assert winner(events.take()) == "127.0.0.1"


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_event_loop_policy_for_python_3_10(flavour: str, listener: Any) -> None:
    events = Events()

    async def main() -> str:
        _r, writer = await asyncio.open_connection("localhost", listener.port)
        writer.close()
        return type(asyncio.get_running_loop()).__name__

    policy = aioconnlist.loop.EventLoopPolicy(
        uvloop=flavour == "uvloop", on_event=events, history=None
    )
    asyncio.set_event_loop_policy(policy)
    try:
        name = asyncio.run(main())
    finally:
        asyncio.set_event_loop_policy(None)
    assert name == ("RacingUVLoop" if flavour == "uvloop" else "RacingEventLoop")
    assert winner(events.take()) == "127.0.0.1"


def test_uvloop_missing_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)
    aioconnlist.loop._racing_uvloop.cache_clear()
    try:
        with pytest.raises(ImportError, match=r"pip install 'aioconnlist\[uvloop\]'"):
            aioconnlist.loop.new_event_loop(uvloop=True)
    finally:
        aioconnlist.loop._racing_uvloop.cache_clear()


def test_options_are_checked_when_the_loop_is_made() -> None:
    with pytest.raises(TypeError, match="unknown option"):
        aioconnlist.loop.new_event_loop(atempt_delay=1)  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="attempt_delay"):
        aioconnlist.loop.new_event_loop(attempt_delay=0.001)


# ------------------------------------------------------------------ websockets, redis


@needs_ipv6
@pytest.mark.parametrize("flavour", FLAVOURS)
def test_websockets_client(flavour: str) -> None:
    ws_server = pytest.importorskip("websockets.asyncio.server")
    ws_client = pytest.importorskip("websockets.asyncio.client")
    events = Events()
    with dual_stack() as (v4, port):

        async def main() -> list[Any]:
            name_table(asyncio.get_running_loop(), {NAME: ["::1", "127.0.0.1"]})

            async def echo(ws: Any) -> None:
                async for message in ws:
                    await ws.send(message)

            async with ws_server.serve(echo, sock=v4):
                out = []
                for _ in range(3):
                    async with ws_client.connect(f"ws://{NAME}:{port}/") as ws:
                        await ws.send("ping")
                        out.append((await ws.recv(), events.take()))
                return out

        (got, first), *later = run_on(flavour, main, history=PairHistory(), on_event=events)
    assert got == "ping" and started(first) == ["::1", "127.0.0.1"], first
    for got, call in later:
        assert got == "ping" and started(call)[0] == "127.0.0.1", call
        assert winner(call) == "127.0.0.1", call


@pytest.fixture
def redis_server(tmp_path: Any) -> Iterator[int]:
    """A ``redis-server`` on 127.0.0.1 (with a black hole on ::1 at its port); yields the port."""
    binary = shutil.which("redis-server")
    if binary is None:
        skip_or_fail("redis-server is not installed (Debian: apt-get install redis-server)")
    pytest.importorskip("redis.asyncio")
    for _ in range(5):  # bounded: the port is free when chosen, but may be taken meanwhile
        with dual_stack() as (v4, port):
            v4.close()
            proc = subprocess.Popen(
                [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly",
                 "no", "--dir", str(tmp_path), "--protected-mode", "no"],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            )  # fmt: skip
            try:
                if wait_ready(proc, "Ready to accept connections"):
                    yield port
                    return
            finally:
                proc.terminate()  # our own child, by its pid
                proc.wait(timeout=10)
                assert proc.stdout is not None
                proc.stdout.close()
    pytest.fail("redis-server did not start on a free port in 5 tries")


def wait_ready(proc: subprocess.Popen[str], marker: str, limit: float = 15.0) -> bool:
    """Read ``proc``'s output until ``marker`` (True) or its exit / ``limit`` seconds (False).

    Reads the pipe's descriptor itself: a buffered reader may hold the marker's line while
    ``select`` waits for more.
    """
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    seen = b""
    deadline = time.monotonic() + limit
    while (left := deadline - time.monotonic()) > 0:
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            break
        chunk = os.read(fd, 65536)
        if not chunk:
            return False
        seen = seen[-len(marker) :] + chunk  # the marker may straddle two reads
        if marker.encode() in seen:
            return True
    return False


def postgres_bin() -> Path | None:
    """The directory of Debian's PostgreSQL server programs (initdb, postgres), if installed."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


def postgres_cluster(pg: Path, datadir: str, trust: str | None = None) -> bool:
    """A throw-away cluster in ``datadir`` owned by Debian's ``postgres`` user (the server
    refuses to run as root): loopback clients trusted, and the network ``trust`` if given."""
    if shutil.which("runuser") is None:
        return False
    try:
        shutil.chown(datadir, "postgres")
    except (LookupError, OSError):
        return False
    os.chmod(datadir, 0o700)
    proc = subprocess.run(
        ["runuser", "-u", "postgres", "--", str(pg / "initdb"), "-D", datadir, "-U", "postgres",
         "--auth=trust", "--no-sync", "-E", "UTF8"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    if proc.returncode != 0:
        return False
    if trust is not None:
        with open(os.path.join(datadir, "pg_hba.conf"), "a") as hba:
            hba.write(f"host all all {trust} trust\n")
    return True


@pytest.fixture(scope="module")
def postgres_server() -> Iterator[int]:
    """A PostgreSQL server on 127.0.0.1 (a black hole on ::1 at its port); yields the port."""
    pytest.importorskip("asyncpg")
    pg = postgres_bin()
    if pg is None or os.geteuid() != 0:
        skip_or_fail("needs Debian's postgresql (apt-get install postgresql) and root (runuser)")
    datadir = tempfile.mkdtemp(prefix="aioconnlist-pg-")
    try:
        if not postgres_cluster(pg, datadir):
            skip_or_fail("initdb as the postgres user failed")
        for _ in range(5):  # bounded: the port is free when chosen, but may be taken meanwhile
            with dual_stack() as (v4, port):
                v4.close()
                sockets = f"unix_socket_directories={datadir}"
                proc = subprocess.Popen(
                    [str(pg / "postgres"), "-D", datadir, "-p", str(port),
                     "-c", "listen_addresses=127.0.0.1", "-c", sockets],
                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                    user="postgres", group="postgres", extra_groups=[],
                )  # fmt: skip
                try:
                    if wait_ready(proc, "ready to accept connections", limit=60):
                        yield port
                        return
                finally:
                    proc.send_signal(signal.SIGINT)  # our own child: a fast shutdown
                    try:
                        proc.wait(timeout=30)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        proc.wait(timeout=10)
                    assert proc.stdout is not None
                    proc.stdout.close()
        pytest.fail("postgres did not start on a free port in 5 tries")
    finally:
        shutil.rmtree(datadir, ignore_errors=True)


@needs_ipv6
@pytest.mark.parametrize("flavour", FLAVOURS)
def test_asyncpg_client(flavour: str, postgres_server: int) -> None:
    import asyncpg

    events = Events()
    port = postgres_server

    async def main() -> list[Any]:
        name_table(asyncio.get_running_loop(), {NAME: ["::1", "127.0.0.1"]})
        out = []
        for n in range(3):
            conn = await asyncpg.connect(
                host=NAME, port=port, user="postgres", database="postgres", ssl=False
            )
            try:
                out.append((await conn.fetchval("SELECT $1::int", n), events.take()))
            finally:
                await conn.close()
        return out

    (got, first), *later = run_on(flavour, main, history=PairHistory(), on_event=events)
    assert got == 0 and started(first) == ["::1", "127.0.0.1"], first
    for n, (got, call) in enumerate(later, 1):
        assert got == n and started(call)[0] == "127.0.0.1", call
        assert winner(call) == "127.0.0.1", call


@needs_ipv6
@pytest.mark.parametrize("flavour", FLAVOURS)
def test_redis_client(flavour: str, redis_server: int) -> None:
    import redis.asyncio
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    events = Events()
    port = redis_server

    async def main() -> list[Any]:
        name_table(asyncio.get_running_loop(), {NAME: ["::1", "127.0.0.1"]})
        out = []
        for n in range(3):
            client = redis.asyncio.Redis(host=NAME, port=port, retry=Retry(NoBackoff(), 0))
            try:
                await client.set("key", str(n))
                out.append((await client.get("key"), events.take()))
            finally:
                await client.aclose()
        return out

    (got, first), *later = run_on(flavour, main, history=PairHistory(), on_event=events)
    assert got == b"0" and started(first) == ["::1", "127.0.0.1"], first
    for n, (got, call) in enumerate(later, 1):
        assert got == str(n).encode() and started(call)[0] == "127.0.0.1", call
        assert winner(call) == "127.0.0.1", call
