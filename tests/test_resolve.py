"""connect_by_name and the resolvers (SPEC §4, RFC 8305 §3), against a real DNS server on
loopback whose answers are delayed per record type (tests/dnsserver.py)."""

from __future__ import annotations

import asyncio
import errno
import os
import socket
import sys
from collections.abc import AsyncIterator, Iterator

import pytest

import aioconnlist
from aioconnlist import AiodnsResolver, NameResolutionError, SystemResolver, connect_by_name
from aioconnlist._core.errors import ConnectError, ConnectTimeout, InvalidArgument
from aioconnlist._core.events import RaceEvent
from aioconnlist._io.resolve import FamilyLookups
from tests.dnsserver import (
    DelayedDNSServer,
    DnspythonResolver,
    black_hole_on,
    free_port_on,
    listeners_on_one_port,
)

if sys.version_info < (3, 11):
    from exceptiongroup import ExceptionGroup

RECORDS = {
    "dual.test": {"AAAA": ["::1"], "A": ["127.0.0.1"]},
    "v4only.test": {"A": ["127.0.0.1"]},
    "v6only.test": {"AAAA": ["::1"]},
    "refusing-v4.test": {"AAAA": ["::1"], "A": ["127.0.0.2"]},
}


def fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.fixture
def dual_port() -> Iterator[int]:
    """Listeners on ::1 and 127.0.0.1 sharing one port."""
    socks = listeners_on_one_port(["::1", "127.0.0.1"])
    try:
        yield socks[0].getsockname()[1]
    finally:
        for s in socks:
            s.close()


async def dns(delays: dict[str, float]) -> DelayedDNSServer:
    return await DelayedDNSServer(RECORDS, delays).__aenter__()


@pytest.fixture
async def aiodns_resolver() -> AsyncIterator[list[AiodnsResolver]]:
    made: list[AiodnsResolver] = []
    yield made
    for r in made:
        await r.close()


def resolver_for(server: DelayedDNSServer, made: list[AiodnsResolver]) -> AiodnsResolver:
    r = AiodnsResolver([server.nameserver], timeout=2, tries=1)
    made.append(r)
    return r


async def timed_connect(host: str, port: int, **kw: object) -> tuple[str, float]:
    """(peer ip, seconds) of a connect_by_name call; the socket is closed."""
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    sock = await connect_by_name(host, port, **kw)  # type: ignore[arg-type]
    elapsed = loop.time() - t0
    try:
        assert not sock.getblocking()
        return sock.getpeername()[0], elapsed
    finally:
        sock.close()


async def connect_through_dns(
    delays: dict[str, float], made: list[AiodnsResolver], host: str, port: int, **kw: object
) -> tuple[str, float, DelayedDNSServer]:
    """`timed_connect` to ``host`` resolved by a delaying DNS server: (peer, seconds, server)."""
    server = await dns(delays)
    try:
        peer, elapsed = await timed_connect(host, port, resolver=resolver_for(server, made), **kw)
    finally:
        server.close()
    return peer, elapsed, server


# --- RFC 8305 §3 timing, through aiodns (c-ares) talking to the delaying server --------------


async def test_aaaa_within_resolution_delay_races_ipv6(dual_port, aiodns_resolver):
    peer, elapsed, server = await connect_through_dns(
        {"AAAA": 0.03}, aiodns_resolver, "dual.test", dual_port
    )
    # A answered first; AAAA came 30 ms later, inside the 50 ms Resolution Delay: IPv6 wins
    assert peer == "::1"
    assert 0.03 <= elapsed < 0.25, elapsed
    kinds = {q.rdtype for q in server.queries if q.name == "dual.test"}
    assert kinds == {"AAAA", "A"}


async def test_slow_aaaa_racing_starts_resolution_delay_after_a(dual_port, aiodns_resolver):
    peer, elapsed, server = await connect_through_dns(
        {"AAAA": 0.3}, aiodns_resolver, "dual.test", dual_port
    )
    assert peer == "127.0.0.1"
    # racing began 50 ms after A, well before AAAA's 300 ms
    assert 0.05 <= elapsed < 0.2, elapsed
    # both queries were sent at once, not one after the other
    times = {q.rdtype: q.time for q in server.queries if q.name == "dual.test"}
    assert abs(times["AAAA"] - times["A"]) < 0.02


async def test_resolution_delay_is_configurable(dual_port, aiodns_resolver):
    peer, elapsed, _server = await connect_through_dns(
        {"AAAA": 0.4}, aiodns_resolver, "dual.test", dual_port, resolution_delay=0.15
    )
    assert peer == "127.0.0.1"
    assert 0.15 <= elapsed < 0.35, elapsed


async def test_positive_aaaa_first_does_not_wait_for_a(dual_port, aiodns_resolver):
    peer, elapsed, _server = await connect_through_dns(
        {"A": 0.3}, aiodns_resolver, "dual.test", dual_port
    )
    assert peer == "::1"
    assert elapsed < 0.1, elapsed


async def test_negative_aaaa_starts_on_a_without_resolution_delay(dual_port, aiodns_resolver):
    peer, elapsed, _server = await connect_through_dns(
        {"A": 0.1}, aiodns_resolver, "v4only.test", dual_port, resolution_delay=0.3
    )
    assert peer == "127.0.0.1"
    # AAAA said "no data" at once; racing starts when A arrives, not resolution_delay after
    assert 0.1 <= elapsed < 0.3, elapsed


async def test_late_aaaa_joins_race_after_a_failed(aiodns_resolver):
    """A is refused at once; the race waits for the late AAAA instead of failing."""
    socks = listeners_on_one_port(["::1"])
    port = socks[0].getsockname()[1]  # nothing listens on 127.0.0.2:port: refused
    server = await dns({"AAAA": 0.15})
    try:
        resolver = resolver_for(server, aiodns_resolver)
        peer, elapsed = await timed_connect(
            "refusing-v4.test", port, resolver=resolver, history=None, timeout=3
        )
    finally:
        server.close()
        socks[0].close()
    assert peer == "::1"
    assert 0.15 <= elapsed < 0.5, elapsed


async def test_late_aaaa_joins_running_stagger(aiodns_resolver):
    """A points at a black hole; AAAA (working) arrives during that attempt and is tried
    when the attempt delay elapses: connected in ~attempt_delay, not the ~130 s of a SYN."""
    socks = listeners_on_one_port(["::1"])
    port = socks[0].getsockname()[1]
    events: list[tuple[float, RaceEvent]] = []
    loop = asyncio.get_running_loop()
    server = DelayedDNSServer({"hole.test": {"AAAA": ["::1"], "A": ["127.0.0.2"]}}, {"AAAA": 0.1})
    await server.__aenter__()
    try:
        with black_hole_on("127.0.0.2", port):
            resolver = resolver_for(server, aiodns_resolver)
            peer, elapsed = await timed_connect(
                "hole.test",
                port,
                resolver=resolver,
                history=None,
                attempt_delay=0.3,
                timeout=3,
                on_event=lambda e: events.append((loop.time(), e)),
            )
    finally:
        server.close()
        socks[0].close()
    assert peer == "::1"
    assert 0.3 <= elapsed < 1.0, elapsed
    started = [e for _, e in events if e.kind == "started"]
    assert [str(e.pair.destination.ip) for e in started] == ["127.0.0.2", "::1"]
    # the joined pair waited for the attempt delay after the first (SPEC §2.3)
    assert started[1].time - started[0].time >= 0.3 - 0.005


# --- failures, deadline, cancellation --------------------------------------------------------


async def test_name_without_address_raises_name_resolution_error(aiodns_resolver):
    server = await dns({})
    try:
        resolver = resolver_for(server, aiodns_resolver)
        with pytest.raises(NameResolutionError) as info:
            await connect_by_name("missing.test", 80, resolver=resolver)
    finally:
        server.close()
    error = info.value
    assert isinstance(error, ConnectError)
    assert isinstance(error, socket.gaierror)
    assert error.errno == socket.EAI_NONAME
    assert "missing.test" in str(error)
    assert "AAAA" in str(error) and "A:" in str(error)
    assert isinstance(error.__cause__, ExceptionGroup)
    assert all(isinstance(e, socket.gaierror) for e in error.__cause__.exceptions)


async def test_timeout_covers_resolution(aiodns_resolver):
    server = await dns({"AAAA": 1.0, "A": 1.0})
    loop = asyncio.get_running_loop()
    try:
        resolver = resolver_for(server, aiodns_resolver)
        t0 = loop.time()
        with pytest.raises(ConnectTimeout) as info:
            await connect_by_name("dual.test", 80, resolver=resolver, timeout=0.15)
        elapsed = loop.time() - t0
    finally:
        server.close()
    assert info.value.errno == errno.ETIMEDOUT
    assert isinstance(info.value, TimeoutError)
    assert 0.15 <= elapsed < 0.15 + 0.03, elapsed


async def test_timeout_is_shared_between_resolution_and_race():
    """0.2 s in all: 0.1 s of resolution leaves the race 0.1 s against a black hole."""
    loop = asyncio.get_running_loop()
    with black_hole_on("127.0.0.2") as port:
        server = await DelayedDNSServer(
            {"slow.test": {"A": ["127.0.0.2"]}}, {"A": 0.1}
        ).__aenter__()
        try:
            resolver = DnspythonResolver("127.0.0.1", server.port)
            t0 = loop.time()
            with pytest.raises(ConnectTimeout):
                await connect_by_name("slow.test", port, resolver=resolver, timeout=0.2)
            elapsed = loop.time() - t0
        finally:
            server.close()
    assert 0.2 <= elapsed < 0.2 + 0.03, elapsed


async def test_cancel_during_resolution_leaves_nothing(dual_port):
    server = await dns({"AAAA": 2.0, "A": 2.0})
    try:
        resolver = DnspythonResolver("127.0.0.1", server.port)
        before_fds = fd_count()
        before_tasks = asyncio.all_tasks()
        task = asyncio.create_task(connect_by_name("dual.test", dual_port, resolver=resolver))
        for _ in range(400):  # bounded: until the server saw both queries
            if len(server.queries) >= 2:
                break
            await asyncio.sleep(0.005)
        assert len(server.queries) == 2
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert asyncio.all_tasks() == before_tasks
        assert fd_count() == before_fds
    finally:
        server.close()


async def test_lookups_are_cancelled_when_race_wins_early(dual_port):
    """AAAA answers at once and wins; the A lookup still in flight is cancelled, not leaked."""
    server = await dns({"A": 2.0})
    try:
        resolver = DnspythonResolver("127.0.0.1", server.port)
        before_tasks = asyncio.all_tasks()
        before_fds = fd_count()
        peer, elapsed = await timed_connect("dual.test", dual_port, resolver=resolver)
        assert peer == "::1" and elapsed < 0.2
        assert asyncio.all_tasks() == before_tasks
        assert fd_count() == before_fds
    finally:
        server.close()


async def test_resolver_bug_is_reported_as_failed_lookup():
    class Broken:
        async def resolve(self, host, port, family):
            raise KeyError("oops")

    with pytest.raises(NameResolutionError) as info:
        await connect_by_name("x.test", 80, resolver=Broken())
    assert info.value.errno == socket.EAI_FAIL
    assert "KeyError" in str(info.value)


async def test_one_family_failing_is_not_fatal(dual_port):
    class HalfBroken:
        async def resolve(self, host, port, family):
            if family == socket.AF_INET6:
                raise socket.gaierror(socket.EAI_AGAIN, "temporary failure")
            return [("127.0.0.1", port)]

    peer, _ = await timed_connect("half.test", dual_port, resolver=HalfBroken())
    assert peer == "127.0.0.1"


# --- literals, system resolver, arguments ----------------------------------------------------


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "[::1]"])
async def test_ip_literal_skips_resolution(host, dual_port):
    class MustNotBeCalled:
        async def resolve(self, host, port, family):
            raise AssertionError("resolver called for an IP literal")

    peer, _ = await timed_connect(host, dual_port, resolver=MustNotBeCalled())
    assert peer == host.strip("[]")


async def test_system_resolver_reads_hosts_file():
    # localhost is in /etc/hosts as 127.0.0.1; the A lookup never leaves the machine
    found = await SystemResolver().resolve("localhost", 8080, socket.AF_INET)
    assert aioconnlist._core.addresses.parse_address(("127.0.0.1", 8080)) in found
    assert all(e.port == 8080 and e.family == socket.AF_INET for e in found)


async def test_default_resolver_is_system_resolver(dual_port, monkeypatch):
    calls: list[int] = []
    original = SystemResolver.resolve

    async def spy(self, host, port, family):
        calls.append(family)
        if family == socket.AF_INET6:  # keep the AAAA query off the network
            raise socket.gaierror(socket.EAI_NONAME, "not asked")
        return await original(self, host, port, family)

    monkeypatch.setattr(SystemResolver, "resolve", spy)
    peer, _ = await timed_connect("localhost", dual_port)
    assert peer == "127.0.0.1"
    assert sorted(calls) == sorted([socket.AF_INET6, socket.AF_INET])


@pytest.mark.parametrize(
    ("host", "port", "kw", "text"),
    [
        ("dual.test", 0, {}, "port 0"),
        ("dual.test", 70000, {}, "out of range"),
        ("dual.test", "http", {}, "not an integer"),
        ("", 80, {}, "empty"),
        (None, 80, {}, "host must be a string"),
        (b"dual.test", 80, {}, "host must be a string"),
        ("dual.test", 80, {"resolution_delay": -1}, "resolution_delay"),
        ("dual.test", 80, {"resolver": object()}, "resolve"),
        ("dual.test", 80, {"attempt_delay": 0.001}, "attempt_delay"),
    ],
)
async def test_bad_arguments(host, port, kw, text):
    with pytest.raises(InvalidArgument, match=text) as info:
        await connect_by_name(host, port, **kw)
    assert isinstance(info.value, ValueError)
    assert info.value.errno == errno.EINVAL


async def test_an_unknown_option_is_a_type_error():
    with pytest.raises(TypeError, match=r"'bogus'.*the options are"):
        await connect_by_name("dual.test", 80, bogus=1)  # type: ignore[call-arg]


async def test_refused_everywhere_reports_race_error(aiodns_resolver):
    port = free_port_on(["::1", "127.0.0.1"])
    server = await dns({})
    try:
        resolver = resolver_for(server, aiodns_resolver)
        with pytest.raises(ConnectError) as info:
            await connect_by_name("dual.test", port, resolver=resolver, history=None)
    finally:
        server.close()
    assert not isinstance(info.value, NameResolutionError)
    assert info.value.errno == errno.ECONNREFUSED
    assert {str(a.pair.destination.ip) for a in info.value.attempts} == {"::1", "127.0.0.1"}


async def test_family_lookups_order_and_late_iteration():
    """The sans-network part: answers in AAAA-then-A order, late answers iterate once."""
    gate = asyncio.Event()

    async def lookup(family):
        if family == socket.AF_INET6:
            await gate.wait()
            return ["v6"]
        return ["v4"]

    lookups = FamilyLookups(lookup)
    first = await lookups.first(resolution_delay=0.01)
    assert first == ["v4"]
    gate.set()
    late = [batch async for batch in lookups.late()]
    assert late == [["v6"]]
    await lookups.aclose()


# --- the default resolver (glibc getaddrinfo) against the delaying server, in a namespace -----

NAMESPACE_SCRIPT = """
import asyncio, json
from tests.dnsserver import DelayedDNSServer, listeners_on_one_port
from aioconnlist import connect_by_name

async def main():
    socks = listeners_on_one_port(["::1", "127.0.0.1"])
    port = socks[0].getsockname()[1]
    records = {"dual.test": {"AAAA": ["::1"], "A": ["127.0.0.1"]}}
    server = DelayedDNSServer(records)
    loop = asyncio.get_running_loop()
    await loop.create_datagram_endpoint(lambda: server, local_addr=("127.0.0.1", 53))
    out = {}
    for delay in (0.03, 0.3):
        server.delays["AAAA"] = delay
        t0 = loop.time()
        sock = await connect_by_name("dual.test", port, history=None)
        out[str(delay)] = [sock.getpeername()[0], loop.time() - t0]
        sock.close()
    print(json.dumps(out))

asyncio.run(main())
"""


@pytest.mark.netlab
def test_system_resolver_resolution_delay_through_glibc():
    """`ip netns exec` puts /etc/netns/NS/resolv.conf in place of /etc/resolv.conf, so glibc
    asks our server on 127.0.0.1:53 inside a namespace that has nothing but loopback."""
    import json
    import shutil
    import subprocess
    from pathlib import Path

    from tests.support import skip_or_fail

    if os.geteuid() != 0 or shutil.which("ip") is None:
        skip_or_fail("needs root and iproute2 for a network namespace")
    namespace = f"aiocl-res-{os.getpid()}"
    netns_etc = Path("/etc/netns") / namespace
    repo = Path(__file__).resolve().parent.parent
    try:
        subprocess.run(["ip", "netns", "add", namespace], check=True, capture_output=True)
        subprocess.run(
            ["ip", "netns", "exec", namespace, "ip", "link", "set", "lo", "up"], check=True
        )
        netns_etc.mkdir(parents=True, exist_ok=True)
        (netns_etc / "resolv.conf").write_text("nameserver 127.0.0.1\noptions attempts:1\n")
        done = subprocess.run(
            ["ip", "netns", "exec", namespace, sys.executable, "-c", NAMESPACE_SCRIPT],
            capture_output=True,
            text=True,
            timeout=30,
            cwd=repo,
            env={**os.environ, "PYTHONPATH": str(repo)},
        )
    finally:
        subprocess.run(["ip", "netns", "del", namespace], capture_output=True)
        shutil.rmtree(netns_etc, ignore_errors=True)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    peer, elapsed = out["0.03"]
    assert peer == "::1" and 0.03 <= elapsed < 0.25, out
    peer, elapsed = out["0.3"]
    assert peer == "127.0.0.1" and 0.05 <= elapsed < 0.25, out


def test_resolution_delay_on_uvloop():
    uvloop = pytest.importorskip("uvloop")
    socks = listeners_on_one_port(["::1", "127.0.0.1"])
    port = socks[0].getsockname()[1]

    async def main() -> list[tuple[str, float]]:
        out = []
        async with DelayedDNSServer(RECORDS) as server:
            resolver = DnspythonResolver("127.0.0.1", server.port)
            for delay in (0.03, 0.3):
                server.delays["AAAA"] = delay
                out.append(await timed_connect("dual.test", port, resolver=resolver))
        return out

    try:
        fast, slow = uvloop.run(main())
    finally:
        for s in socks:
            s.close()
    assert fast[0] == "::1" and 0.03 <= fast[1] < 0.25, fast
    assert slow[0] == "127.0.0.1" and 0.05 <= slow[1] < 0.25, slow


@pytest.mark.parametrize("host", ["localhost", "LOCALHOST.", "app.localhost"])
async def test_localhost_names_are_answered_without_a_lookup(
    host: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # RFC 6761 §6.3: never sent to DNS, whatever /etc/hosts says (Debian's has no ::1 line,
    # so a per-family AAAA lookup of "localhost" would otherwise go out to the name server)
    async def no_lookup(*args: object, **kwargs: object) -> list[object]:
        raise AssertionError(f"getaddrinfo{args} was called")

    loop = asyncio.get_running_loop()
    monkeypatch.setattr(loop, "getaddrinfo", no_lookup)
    resolver = SystemResolver()
    v6 = await resolver.resolve(host, 80, socket.AF_INET6)
    v4 = await resolver.resolve(host, 80, socket.AF_INET)
    assert [str(e) for e in v6 + v4] == ["[::1]:80", "127.0.0.1:80"]
    with pytest.raises(AssertionError, match="getaddrinfo"):  # any other name is looked up
        await resolver.resolve("localhost.example", 80, socket.AF_INET)
