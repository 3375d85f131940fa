"""What the peers' own test suites found (benchmarks/peer_suites.py), as tests of ours on real
sockets: nothing blocking runs on the event loop."""

from __future__ import annotations

import errno
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from typing import Any

import psutil
import pytest
from blockbuster import BlockBuster, blockbuster_ctx

import aioconnlist
from aioconnlist.compat import start_connection
from tests.support import Listener, has_ipv6_loopback, refused_address


@pytest.fixture
def blockbuster() -> Iterator[BlockBuster]:
    # what aiohttp's suite does: every blocking call under aioconnlist's frames is an error
    with blockbuster_ctx("aioconnlist") as bb:
        bb.functions["threading.Lock.acquire"].deactivate()  # history's lock: never contended here
        bb.functions["threading.Lock.acquire_lock"].deactivate()
        yield bb


@pytest.mark.parametrize("local_addresses", ["auto", None])
async def test_a_race_makes_no_blocking_call_on_the_loop(
    listener: Listener, blockbuster: BlockBuster, local_addresses: str | None
) -> None:
    # the first call learns sources: the kernel's choice (a UDP probe) and, with "auto", the
    # interfaces (psutil, /proc/net/if_inet6, /sys/class/net) and their routes (rtnetlink)
    destinations: list[tuple[str, int]] = [listener.address]
    if has_ipv6_loopback():
        destinations.insert(0, ("::1", listener.address[1]))
    aioconnlist._io.sources.invalidate()
    sock = await aioconnlist.connect_by_list(
        destinations, local_addresses=local_addresses, history=None
    )
    try:
        assert sock.getpeername()[1] == listener.address[1]
    finally:
        sock.close()


async def test_the_detector_sees_a_blocking_read(
    blockbuster: BlockBuster, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the check above can fail: the interface file read the plain way on the loop, under our
    # frames, is reported (as it was before the reads went through aioconnlist._io.sysfiles)
    from aioconnlist._io import sources

    def plain_read(path: str) -> str:
        with open(path, encoding="ascii") as f:
            return f.read()

    monkeypatch.setattr(sources, "read_text", plain_read)
    with pytest.raises(Exception, match="Blocking call"):
        sources._read_if_inet6()


def host_address() -> str | None:
    """An IPv4 address of this host that is not loopback (None when it has none)."""
    for addrs in psutil.net_if_addrs().values():
        for a in addrs:
            if a.family == socket.AF_INET and not a.address.startswith("127."):
                return str(a.address)
    return None


async def test_an_explicit_host_address_reaches_a_loopback_service(listener: Listener) -> None:
    # aiohttp's local_addr=(host address, 0) to a service on localhost works stock: the
    # sources the caller names are tried whenever the kernel can route them
    source = host_address()
    if source is None:
        pytest.skip("this host has no IPv4 address but loopback")
    sock = await aioconnlist.connect_by_list(
        [listener.address], local_addresses=[source], history=None
    )
    try:
        assert sock.getsockname()[0] == source
    finally:
        sock.close()
    infos = [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (source, 0))]
    target = [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", listener.address)]
    sock = await start_connection(target, local_addr_infos=infos)
    try:
        assert sock.getsockname()[0] == source
    finally:
        sock.close()


async def test_a_loopback_source_towards_another_host_is_still_refused() -> None:
    # ...but not a martian: a loopback source cannot leave the host (no attempt is made)
    with pytest.raises(aioconnlist.InvalidArgument, match="no usable"):
        await aioconnlist.connect_by_list(
            ["192.0.2.1:80"], local_addresses=["127.0.0.1"], history=None
        )


def addr_info(address: tuple[str, int]) -> tuple[Any, ...]:
    return (socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", address)


async def test_the_drop_in_takes_a_delay_below_the_floor(listener: Listener) -> None:
    # aiohappyeyeballs and aiohttp accept happy_eyeballs_delay=0 (raised to our 10 ms floor)
    dead = refused_address("127.0.0.1")
    sock = await start_connection(
        [addr_info(dead), addr_info(listener.address)], happy_eyeballs_delay=0
    )
    try:
        assert sock.getpeername() == listener.address
    finally:
        sock.close()


async def test_the_drop_in_fails_as_aiohappyeyeballs_does() -> None:
    # one failure: that error (its errno, its message); several different ones: "Multiple
    # exceptions: ..." with the errno they share; ours (.attempts) kept inside either way
    one = refused_address("127.0.0.1")
    with pytest.raises(ConnectionRefusedError) as caught:
        await start_connection([addr_info(one)], happy_eyeballs_delay=0.25)
    assert isinstance(caught.value, aioconnlist.ConnectError)
    assert "Multiple exceptions" not in str(caught.value)
    assert len(caught.value.attempts) == 1
    two = refused_address("127.0.0.2")
    with pytest.raises(ConnectionRefusedError) as caught:
        await start_connection([addr_info(one), addr_info(two)], happy_eyeballs_delay=0.25)
    assert str(caught.value).startswith(f"[Errno {errno.ECONNREFUSED}] Multiple exceptions: ")
    assert len(caught.value.attempts) == 2


def test_the_first_race_of_a_process_makes_no_blocking_call() -> None:
    # the first plan starts following the network (its identity, the kernel's TCP metrics over
    # generic netlink, the watcher): in a fresh process, so that this first plan is measured
    code = textwrap.dedent(
        """
        import asyncio, socket
        from blockbuster import blockbuster_ctx
        import aioconnlist

        async def main():
            server = socket.socket()
            server.bind(("127.0.0.1", 0))
            server.listen()
            with blockbuster_ctx("aioconnlist") as bb:
                bb.functions["threading.Lock.acquire"].deactivate()
                bb.functions["threading.Lock.acquire_lock"].deactivate()
                sock = await aioconnlist.connect_by_list([server.getsockname()])
            sock.close()
            server.close()
            print("connected")

        asyncio.run(main())
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "connected"
