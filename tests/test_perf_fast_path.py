"""The first-attempt path (a race while its first attempt is the only one; for a single pair
with no deadline and no observer, no `Race` at all) keeps every guarantee of a race."""

from __future__ import annotations

import asyncio
import errno
from typing import Any

import pytest

import aioconnlist
from aioconnlist import ConnectError, PairHistory
from aioconnlist._core.addresses import parse_address
from aioconnlist._core.pairs import Pair
from tests.support import BlackHole, Listener, fd_count, refused_address, task_count

pytestmark = pytest.mark.both_loops


async def test_success_records_the_rtt(listener: Listener) -> None:
    history = PairHistory()
    before = fd_count()
    sock = await aioconnlist.connect_by_list(
        [listener.address], local_addresses=None, history=history
    )
    try:
        assert sock.getpeername() == listener.address
        assert not sock.getblocking()
    finally:
        sock.close()
    [stats] = history.snapshot(asyncio.get_running_loop().time())
    assert stats.samples == 1 and stats.srtt is not None and 0 <= stats.srtt < 1.0
    assert stats.key[1:] == listener.address
    assert fd_count() == before


async def test_refusal_is_the_race_error_and_is_remembered() -> None:
    address = refused_address()
    history = PairHistory()
    before = fd_count()
    with pytest.raises(ConnectError) as info:
        await aioconnlist.connect_by_list([address], local_addresses=None, history=history)
    error = info.value
    assert error.errno == errno.ECONNREFUSED
    [attempt] = error.attempts
    assert attempt.outcome == "failed" and attempt.index == 0
    assert attempt.ended is not None and attempt.ended >= attempt.started >= 0
    assert isinstance(attempt.error, ConnectionRefusedError)
    assert list(error.__cause__.exceptions) == [attempt.error]  # type: ignore[union-attr]
    assert f"{address[0]}:{address[1]}" in str(error)
    [stats] = history.snapshot(asyncio.get_running_loop().time())
    assert stats.failure_kind == "refused" and stats.failures == 1
    assert fd_count() == before


async def test_cancel_closes_the_socket_and_the_writer(black_hole: BlackHole) -> None:
    loop = asyncio.get_running_loop()
    before, tasks = fd_count(), task_count()
    task = asyncio.ensure_future(
        aioconnlist.connect_by_list([black_hole.address], local_addresses=None, history=None)
    )
    for _ in range(100):  # until the attempt's socket exists (bounded)
        await asyncio.sleep(0)
        if fd_count() > before:
            break
    assert fd_count() == before + 1, "the attempt should be in flight"
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert fd_count() == before and task_count() == tasks
    selector = getattr(loop, "_selector", None)
    if selector is not None:  # the default loop: its (reader, writer) handles per fd
        assert all(key.data[1] is None for key in selector.get_map().values())


async def test_same_pair_objects_are_reused_across_calls(listener: Listener) -> None:
    """The plan cache hands out the same Pair; history keys made once stay right."""
    history = PairHistory()
    for _ in range(3):
        sock = await aioconnlist.connect_by_list(
            [listener.address], local_addresses=None, history=history
        )
        sock.close()
    [stats] = history.snapshot(asyncio.get_running_loop().time())
    assert stats.samples == 3
    pair = Pair(None, parse_address(listener.address), parse_address(listener.address).ip)
    assert history.stats(pair, asyncio.get_running_loop().time()) == stats


# -- a list whose first pair connects before the next is due: the same path ----------------


async def test_first_of_several_winning_at_once_sets_no_timer_of_its_own(
    listener: Listener,
) -> None:
    """A race whose first attempt wins before the attempt delay costs a single connect: no
    race machinery, no timer per race (the backup times share one timer for the loop)."""
    loop = asyncio.get_running_loop()
    history = PairHistory()
    both = [listener.address, refused_address()]
    scheduled = 0
    call_at = loop.call_at

    def counting_call_at(*args: Any, **kwargs: Any) -> asyncio.TimerHandle:
        nonlocal scheduled
        scheduled += 1
        return call_at(*args, **kwargs)

    before = fd_count()
    loop.call_at = counting_call_at  # type: ignore[method-assign]
    try:
        for _ in range(20):
            sock = await aioconnlist.connect_by_list(both, local_addresses=None, history=history)
            assert sock.getpeername() == listener.address
            sock.close()
    finally:
        del loop.call_at
    assert scheduled <= 2  # the shared backup timer, armed again at most once
    [stats] = [s for s in history.snapshot(loop.time()) if s.key[1:] == listener.address]
    assert stats.samples == 20 and stats.failures == 0  # the second pair was never tried
    assert len(history.snapshot(loop.time())) == 1
    assert fd_count() == before


async def test_first_of_several_silent_hands_over_to_the_race_at_the_delay(
    black_hole: BlackHole, listener: Listener
) -> None:
    events: list[tuple[str, int, float]] = []
    before, tasks = fd_count(), task_count()
    sock = await aioconnlist.connect_by_list(
        [black_hole.address, listener.address],
        local_addresses=None,
        history=None,
        sort=False,
        attempt_delay=0.05,
        on_event=lambda e: events.append((e.kind, e.index, e.time)),
    )
    try:
        assert sock.getpeername() == listener.address
    finally:
        sock.close()
    kinds = [(kind, index) for kind, index, _ in events]
    assert kinds == [("started", 0), ("started", 1), ("won", 1), ("cancelled", 0)]
    assert events[1][2] >= 0.05 - 0.002  # not before the attempt delay (uvloop: 1 ms clock steps)
    assert fd_count() == before and task_count() == tasks


async def test_first_of_several_failing_at_once_starts_the_next_at_once(
    listener: Listener,
) -> None:
    history = PairHistory()
    refused = refused_address()
    before = fd_count()
    sock = await aioconnlist.connect_by_list(
        [refused, listener.address], local_addresses=None, history=history, sort=False
    )
    try:
        assert sock.getpeername() == listener.address
    finally:
        sock.close()
    by_address = {s.key[1:]: s for s in history.snapshot(asyncio.get_running_loop().time())}
    assert by_address[refused].failure_kind == "refused"
    assert by_address[listener.address].samples == 1
    assert fd_count() == before
