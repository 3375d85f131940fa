"""How aioconnlist is meant to be called, checked by ``mypy --strict`` (tests/test_typing.py).

Each line with an "E:" comment naming an error code (in brackets) and a text (quoted) must be
reported by mypy with that code and a message containing the text; every other line must
type-check. Never run, only checked.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

from typing_extensions import assert_type

import aioconnlist
import aioconnlist.blocking
import aioconnlist.loop
from aioconnlist import PairHistory, RaceEvent, SystemResolver
from aioconnlist._core.options import RaceOptions
from aioconnlist.aiohttp import ConnListConnector
from aioconnlist.compat import make_start_connection

ADDRESSES = ["[2001:db8::1]:443", "192.0.2.1:443", ("192.0.2.2", 443)]


class Echo(asyncio.Protocol):
    pass


def log(event: RaceEvent) -> None:
    print(event.outcome, event.pair)


def no_event() -> None:
    pass


async def correct() -> None:
    sock = await aioconnlist.connect_by_list(
        ADDRESSES,
        local_addresses="auto",
        timeout=5,
        attempt_delay=0.1,
        min_attempt_delay=0.05,
        interleave=2,
        sort=False,
        history=PairHistory(),
        on_event=log,
        backup_attempts=False,
    )
    assert_type(sock, socket.socket)
    sock = await aioconnlist.connect_by_list(ADDRESSES, local_addresses=["192.0.2.9"], history=None)
    sock = await aioconnlist.connect_by_name(
        "example.org", 443, resolver=SystemResolver(), resolution_delay=0.1, timeout=3.5
    )
    reader, writer = await aioconnlist.open_connection("example.org", 443, ssl=True)
    assert_type(reader, asyncio.StreamReader)
    assert_type(writer, asyncio.StreamWriter)
    reader, writer = await aioconnlist.open_connection(ADDRESSES, limit=1024, timeout=None)
    reader, writer = await aioconnlist.open_connection(host="example.org", port=443, ssl=True)
    reader, writer = await aioconnlist.open_connection(addresses=ADDRESSES, sort=False)
    transport, protocol = await aioconnlist.create_connection(Echo, "example.org", 443)
    assert_type(protocol, Echo)
    assert_type(transport, asyncio.Transport)
    transport, protocol = await aioconnlist.create_connection(Echo, ADDRESSES, attempt_delay=1)
    transport, protocol = await aioconnlist.create_connection(Echo, host="example.org", port=80)
    preset: RaceOptions = {"timeout": 2.0, "history": None}
    sock = await aioconnlist.connect_by_list(ADDRESSES, **preset)
    try:
        await aioconnlist.connect_by_list(ADDRESSES)
    except ConnectionRefusedError as refused:
        assert_type(refused.errno, int | None)
    except aioconnlist.ConnectError as error:
        assert_type(error.attempts[0].pair, aioconnlist.Pair)
    start = make_start_connection(history=None, sort=False)
    sock = await start([(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("192.0.2.1", 80))])
    connector = ConnListConnector(attempt_delay=0.3, limit=10, ttl_dns_cache=None, history=None)
    print(connector, sock, transport)


def correct_loop() -> None:
    loop = aioconnlist.loop.new_event_loop(attempt_delay=0.1, history=None)
    assert_type(loop, asyncio.AbstractEventLoop)
    aioconnlist.loop.install(loop, sort=False)
    loop.close()


def correct_blocking(sock: socket.socket) -> None:
    local, remote = aioconnlist.blocking.connect_by_list(sock, ADDRESSES, 5.0, local_addresses=None)
    assert_type(local, tuple[Any, ...])
    conn = aioconnlist.blocking.connect_by_list(sock, ADDRESSES, timeout=5, sort=False)
    made = aioconnlist.blocking.create_connection(("example.org", 443), 10, attempt_delay=0.1)
    assert_type(made, socket.socket)
    made = aioconnlist.blocking.create_connection(ADDRESSES, timeout=None, all_errors=True)
    aioconnlist.blocking.install(history=None)
    print(local, remote, conn, made)


def blocking_mistakes() -> None:
    aioconnlist.blocking.create_connection(("example.org", 443), timout=3)  # E: [call-arg]
    aioconnlist.blocking.create_connection(ADDRESSES, local_addr=("", 0))  # E: [call-arg]
    aioconnlist.blocking.install(timeout=5)  # E: [call-arg] "timeout"


async def mistakes(sock: socket.socket) -> None:
    await aioconnlist.connect_by_list(ADDRESSES, timout=5)  # E: [call-arg] "timout"
    await aioconnlist.open_connection(ADDRESSES, atempt_delay=0.3)  # E: [call-overload]
    await aioconnlist.connect_by_list(ADDRESSES, attempt_delay="0.25")  # E: [arg-type] "str"
    await aioconnlist.connect_by_name("example.org", 443, timeout="5")  # E: [arg-type] "str"
    await aioconnlist.connect_by_list(ADDRESSES, interleave=1.5)  # E: [arg-type] "float"
    await aioconnlist.connect_by_list(ADDRESSES, sort="yes")  # E: [arg-type] "str"
    await aioconnlist.connect_by_list(ADDRESSES, backup_attempts=None)  # E: [arg-type] "None"
    await aioconnlist.connect_by_list(ADDRESSES, history={})  # E: [arg-type] "history"
    await aioconnlist.connect_by_list(ADDRESSES, on_event=no_event)  # E: [arg-type] "on_event"
    await aioconnlist.connect_by_list(ADDRESSES, happy_eyeballs_delay=0.3)  # E: [call-arg]
    await aioconnlist.connect_by_name("example.org")  # E: [call-arg] "port"
    await aioconnlist.open_connection("example.org", "443")  # E: [call-overload]
    await aioconnlist.open_connection(host="example.org")  # E: [call-overload]
    await aioconnlist.create_connection(Echo, ADDRESSES, 443)  # E: [call-overload]
    aioconnlist.blocking.connect_by_list(sock, ADDRESSES, timout=3)  # E: [call-arg] "timout"
    aioconnlist.blocking.connect_by_list(sock, ADDRESSES, 5, timeout=5)  # E: [misc] "timeout"
    ConnListConnector(atempt_delay=0.3)  # E: [call-arg] "atempt_delay"
    ConnListConnector(limit="10")  # E: [arg-type] "limit"
    make_start_connection(timout=1)  # E: [call-arg] "timout"
    aioconnlist.loop.new_event_loop(happy_eyeballs_delay=0.1)  # E: [call-arg]
    preset: RaceOptions = {"timout": 2.0}  # E: [typeddict-unknown-key] "timout"
    not_awaited = aioconnlist.connect_by_list(ADDRESSES)  # the missing await:
    not_awaited.fileno()  # E: [attr-defined] "fileno"
    print(preset)
