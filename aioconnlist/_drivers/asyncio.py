"""The asyncio driver: runs a `Race` with real sockets.

Design: one function, `race`, owns every socket it creates. Each attempt is one task that
creates nothing but awaits ``sock_connect`` on a socket made *before* the task starts, so the
driver can account for every socket whatever happens to the task. The loop alternates between
asking the `Race` what to start (it knows the schedule, the deadline and history) and waiting for
the first of: an attempt finishing, the next start time or deadline, a late destination
(``more_destinations``). The ``finally`` block is the only exit: it cancels what is still
running, waits for those tasks to finish, and closes every socket that is not the winner's -
including one that connected in the same loop tick as the winner, or just before the cancel.
"""

from __future__ import annotations

import asyncio
import math
import socket
import weakref
from collections.abc import AsyncIterator, Sequence
from typing import Any

from .._core.addresses import Endpoint
from .._core.events import Attempt
from .._core.options import Options
from .._core.pairs import Pair
from .._core.race import Race, delay_after
from .._io.nat64 import needed as nat64_needed
from .._io.nat64 import through_nat64_async
from .._io.sources import invalidate
from .planning import new_race, no_usable_pair, plan_race
from .sockets import SocketFactory, default_socket_factory, open_attempt_socket
from .timeouts import expired, timeout_at


async def _connect(sock: socket.socket, address: tuple[Any, ...], in_flight: bool = False) -> None:
    await _sock_connect(asyncio.get_running_loop(), sock, address, in_flight=in_flight)


async def _sock_connect(
    loop: asyncio.AbstractEventLoop,
    sock: socket.socket,
    address: tuple[Any, ...],
    backup_at: float | None = None,
    *,
    in_flight: bool = False,
) -> bool:
    """``loop.sock_connect`` for an address that is already numeric (as every sockaddr here is).

    The same steps as asyncio's own, less its address resolution: a non-blocking connect, then
    a writer callback reads SO_ERROR. The writer is removed however the wait ends. Loops
    without ``add_writer`` (Windows' proactor) and socket subclasses (an SSLSocket must be
    refused as asyncio refuses it) use ``loop.sock_connect``.

    ``backup_at`` (loop time): return True if the connect is still in flight then (the socket
    keeps connecting); False once connected. ``in_flight``: the connect was started already.
    """
    if type(sock) is not socket.socket:
        await loop.sock_connect(sock, address)
        return False
    if not in_flight:
        try:
            sock.connect(address)
            return False
        except (BlockingIOError, InterruptedError):
            pass
    fut = loop.create_future()
    fd = sock.fileno()
    try:
        loop.add_writer(fd, _connect_done, fut, sock, address)
    except NotImplementedError:
        await loop.sock_connect(sock, address)
        return False
    clock = None if backup_at is None else _backup_clock(loop)
    if clock is not None:
        clock.add(fut, backup_at)  # type: ignore[arg-type]
    try:
        return bool(await fut)
    finally:
        loop.remove_writer(fd)
        if clock is not None:
            clock.pending.pop(fut, None)
        del fut  # no frame -> future -> exception -> traceback -> frame cycle


class _BackupClock:
    """One timer per event loop for the backup times of every single-pair connect in flight.

    A connect registers its future and backup time and removes it when it ends (two dict
    operations); the one timer fires at the earliest registered time, resolves the futures
    that are due (their connects are then raced with a backup) and re-arms itself for the
    next. Cheaper than a timer per connect, whose creation and cancellation would cost as
    much as the rest of a healthy loopback connect.
    """

    __slots__ = ("__weakref__", "pending", "timer", "timer_at")

    def __init__(self) -> None:
        # (no reference to the loop: the clock is the loop's value in a weak mapping)
        self.pending: dict[asyncio.Future[bool], float] = {}
        self.timer: asyncio.TimerHandle | None = None
        self.timer_at = math.inf

    def add(self, fut: asyncio.Future[bool], at: float) -> None:
        self.pending[fut] = at
        if at < self.timer_at:
            if self.timer is not None:
                self.timer.cancel()
            self.timer = fut.get_loop().call_at(at, self._fire)
            self.timer_at = at

    def _fire(self) -> None:
        self.timer, self.timer_at = None, math.inf
        if not self.pending:
            return
        loop = next(iter(self.pending)).get_loop()
        now = loop.time() + 0.001  # asyncio may run a timer up to 1 ms early
        following = math.inf
        for fut, at in list(self.pending.items()):
            if at <= now:
                del self.pending[fut]
                if not fut.done():
                    fut.set_result(True)
            elif at < following:
                following = at
        if following < math.inf:
            self.timer = loop.call_at(following, self._fire)
            self.timer_at = following


_BACKUP_CLOCKS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _BackupClock] = (
    weakref.WeakKeyDictionary()
)


_last_clock: tuple[weakref.ref[asyncio.AbstractEventLoop], _BackupClock] | None = None


def _backup_clock(loop: asyncio.AbstractEventLoop) -> _BackupClock:
    global _last_clock
    last = _last_clock  # the last loop's clock: one weakref call, no dict lookup
    if last is not None and last[0]() is loop:
        return last[1]
    clock = _BACKUP_CLOCKS.get(loop)
    if clock is None:
        clock = _BACKUP_CLOCKS[loop] = _BackupClock()
    _last_clock = (weakref.ref(loop), clock)
    return clock


def _connect_done(fut: asyncio.Future[bool], sock: socket.socket, address: object) -> None:
    if fut.done():  # cancelled meanwhile
        return
    try:
        err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    except (BlockingIOError, InterruptedError):
        return  # still connecting: called again when writable
    except OSError as exc:
        fut.set_exception(exc)
        return
    if err == 0:
        fut.set_result(False)
    else:
        fut.set_exception(OSError(err, f"Connect call failed {address}"))


async def race(
    destinations: Sequence[Endpoint],
    options: Options,
    *,
    more_destinations: AsyncIterator[Sequence[Endpoint]] | None = None,
    socket_factory: SocketFactory | None = None,
) -> tuple[socket.socket, Pair]:
    """Race the ranked pairs of ``destinations``; return (connected socket, winning pair).

    The socket is non-blocking. ``more_destinations`` yields late additions (DNS answers);
    the race fails only once it is exhausted. ``socket_factory(pair)`` makes each attempt's
    socket (default: the destination's family, SOCK_STREAM); an AF_INET6 socket reaches IPv4
    pairs through v4-mapped addresses. Raises the `ConnectError` family.
    """
    loop = asyncio.get_running_loop()
    factory = socket_factory or default_socket_factory
    start = loop.time()
    known = list(destinations)
    if nat64_needed(known):
        known = list(await through_nat64_async(known, loop))
    pairs = plan_race(known, options, start) if known else []
    if not pairs and more_destinations is None:
        raise no_usable_pair(known)
    if len(pairs) == 1 and more_destinations is None:
        return await _one_pair(pairs[0], options, factory, loop, start)
    state = new_race(pairs, options, start, more=more_destinations is not None)
    return await _run(state, options, factory, loop, {}, known, more_destinations)


_Running = dict[asyncio.Future[Any], tuple[Attempt, socket.socket]]


async def _run(
    state: Race,
    options: Options,
    factory: SocketFactory,
    loop: asyncio.AbstractEventLoop,
    running: _Running,
    known: list[Endpoint],
    more_destinations: AsyncIterator[Sequence[Endpoint]] | None,
) -> tuple[socket.socket, Pair]:
    """Drive ``state`` until it ends; ``running``: attempts already in flight."""
    feed: asyncio.Future[Any] | None = None
    if more_destinations is not None:
        feed = asyncio.ensure_future(_next_batch(more_destinations))
    winner: socket.socket | None = None
    try:
        while True:
            now = loop.time()
            if state.deadline is not None and now >= state.deadline:
                state.time_out(now)
                break
            while (attempt := state.start_due(now)) is not None:
                try:
                    sock = open_attempt_socket(factory, attempt.pair)
                except OSError as e:
                    state.failed(attempt, e, loop.time())
                    continue
                address = attempt.pair.destination.sockaddr(sock.family)
                running[asyncio.ensure_future(_connect(sock, address))] = (attempt, sock)
            if state.finished:
                break
            waitables: set[asyncio.Future[Any]] = set(running)
            if feed is not None:
                waitables.add(feed)
            wake = state.wake_at()
            done, _ = await asyncio.wait(
                waitables,
                timeout=None if wake is None else max(0.0, wake - loop.time()),
                return_when=asyncio.FIRST_COMPLETED,
            )
            now = loop.time()
            for fut in done:
                if feed is not None and fut is feed:
                    batch: Sequence[Endpoint] | None = feed.result()
                    if batch is None:
                        feed = None
                        state.no_more_pairs()
                    else:
                        assert more_destinations is not None
                        feed = asyncio.ensure_future(_next_batch(more_destinations))
                        known.extend(d for d in batch if d not in known)
                        state.add_pairs(plan_race(known, options, now), now)
                    continue
                attempt, sock = running.pop(fut)
                error = fut.exception()
                if error is None and state.connected(attempt, now):
                    winner = sock
                elif error is None:
                    sock.close()  # connected in the same tick as the winner
                else:
                    sock.close()
                    state.failed(attempt, _as_oserror(error), now)
    except BaseException:
        state.cancel(loop.time())
        raise
    finally:
        await _cleanup(running, feed)
    if winner is not None and state.winner is not None:
        return winner, state.winner.pair
    invalidate()  # the network may have changed: re-learn sources next time
    raise state.error()


async def _one_pair(
    pair: Pair,
    options: Options,
    factory: SocketFactory,
    loop: asyncio.AbstractEventLoop,
    origin: float,
) -> tuple[socket.socket, Pair]:
    """The race of a single pair: nothing to stagger, so no task; the deadline still holds.

    The most common call has no deadline and no observer: then a `Race` is built only if the
    attempt fails (it files the failure in history and makes the error, as for any race), and
    a success just records its RTT.
    """
    state = None
    if options.timeout is not None or options.on_event is not None:
        state = new_race([pair], options, origin)
    started = loop.time()
    attempt = None if state is None else state.start_due(started)
    deadline = None if options.timeout is None else timeout_at(origin + options.timeout)
    backup_at = None
    if options.backups_possible:
        backup_at = started + delay_after(
            pair, started, options.attempt_delay, options.min_attempt_delay, options.history
        )
    in_flight = False
    try:
        sock = open_attempt_socket(factory, pair)
    except OSError as e:
        state = state or new_race([pair], options, origin)
        state.failed(attempt or _start(state, started), e, loop.time())
    else:
        address = pair.destination.sockaddr(sock.family)
        try:
            if deadline is None:
                in_flight = await _sock_connect(loop, sock, address, backup_at)
            else:
                async with deadline:
                    in_flight = await _sock_connect(loop, sock, address, backup_at)
        except (OSError, asyncio.TimeoutError) as e:  # the deadline's (not an OSError on 3.10)
            sock.close()
            state = state or new_race([pair], options, origin)
            if deadline is not None and expired(deadline):
                state.time_out(loop.time())
            elif isinstance(e, OSError):
                state.failed(attempt or _start(state, started), e, loop.time())
                invalidate()  # the network may have changed: re-learn sources next time
            else:  # a TimeoutError of the caller's own (3.10: not an OSError)
                raise
        except BaseException:
            sock.close()
            if state is not None:
                state.cancel(loop.time())
            raise
        else:
            if in_flight:  # silent for the backup delay: the full race takes over
                state = state or new_race([pair], options, origin)
                attempt = attempt or _start(state, started)
                running: _Running = {
                    asyncio.ensure_future(_connect(sock, address, True)): (attempt, sock)
                }
                return await _run(state, options, factory, loop, running, [], None)
            now = loop.time()
            if attempt is not None and state is not None:
                state.connected(attempt, now)
            elif options.history is not None:
                options.history.record_success(pair, now - started, now)
            return sock, pair
    # raised outside the except blocks: no frame -> error -> traceback -> frame cycle
    raise state.error()


def _start(state: Race, now: float) -> Attempt:
    attempt = state.start_due(now)
    assert attempt is not None
    return attempt


async def _next_batch(
    more: AsyncIterator[Sequence[Endpoint]],
) -> Sequence[Endpoint] | None:
    try:
        return await anext(more)
    except StopAsyncIteration:
        return None


def _as_oserror(error: BaseException) -> OSError:
    if isinstance(error, OSError):
        return error
    wrapped = OSError(str(error))
    wrapped.__cause__ = error
    return wrapped


async def _cleanup(
    running: dict[asyncio.Future[Any], tuple[Attempt, socket.socket]],
    feed: asyncio.Future[Any] | None,
) -> None:
    """Cancel every unfinished attempt (and the destination feed), wait for them, close sockets."""
    pending = list(running)
    if feed is not None:
        pending.append(feed)
    for fut in pending:
        fut.cancel()
    try:
        if pending:
            await asyncio.wait(pending)
    finally:
        for _attempt, sock in running.values():
            sock.close()
        if feed is not None and feed.done() and not feed.cancelled():
            feed.exception()  # retrieved: no "exception never retrieved" warning
