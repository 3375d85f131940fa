"""The asyncio driver: runs a `Race` with real sockets.

Design: one function, `race`, owns every socket it creates. While the first attempt is the only
one (most races: it connects before the next is due) it is a plain awaited connect
(`_first_attempt`); a process's first races to one address do not even plan it first
(`quick_plan`: its socket names the kernel's source once connected). The full race (`_run`)
takes over when the next attempt is due or the first fails with pairs left. An attempt is no
task: it is a non-blocking connect on a socket made by the driver and a writer callback that
queues the outcome and wakes the race (`_Attempts`), so the driver accounts for every socket
whatever happens. The loop alternates between asking the `Race` what to start (it knows the
schedule, the deadline and history) and waiting for the first of: an attempt finishing, the
next start time or deadline, a late destination (``more_destinations``). The ``finally`` block
is the only exit: it removes the writers and closes every socket that is not the winner's -
including one that connected in the same loop tick as the winner - in the same loop turn, with
no task to wait for, and closes those still connecting without releasing the GIL (a busy thread
would stretch every extra turn and every release). Whatever ends the race (an interrupt from
``on_event``, a cancellation during the cleanup) the winner is returned or closed.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import errno
import functools
import math
import socket
import threading
import time
import weakref
from collections.abc import AsyncIterator, Sequence
from typing import Any

from .._core.addresses import Endpoint, own_copy
from .._core.errors import ConnectTimeout, InvalidArgument
from .._core.events import Attempt
from .._core.options import Options
from .._core.pairs import Pair
from .._core.planner import PlanHead
from .._core.race import Race, delay_after
from .._io.nat64 import needed as nat64_needed
from .._io.nat64 import through_nat64_async
from .._io.sources import after_failed_race as invalidate  # kept when changes are notified
from .planning import (
    cached_plan,
    full_plan,
    head_of_plan,
    learned_pair,
    new_race,
    no_usable_pair,
    plan_race,
    quick_plan,
)
from .sockets import (
    SocketFactory,
    close_connecting,
    default_socket_factory,
    open_attempt_socket,
)
from .timeouts import expired, timeout_at


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


class _Attempts:
    """The attempts in flight: non-blocking connects watched by writer callbacks, no tasks.

    A finished attempt is queued in `done` and wakes the race. Closing an attempt is
    synchronous (remove the writer, close the socket), so the cleanup after a win or at the
    deadline takes no loop turn. Loops without ``add_writer`` (Windows' proactor) and socket
    subclasses (an SSLSocket must be refused as asyncio refuses it) use a task running
    ``loop.sock_connect``; only those are waited for when closed.
    """

    __slots__ = ("done", "loop", "running", "tasks", "wake")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.running: dict[int, tuple[Attempt, socket.socket]] = {}  # by attempt index
        self.tasks: dict[int, asyncio.Future[None]] = {}
        self.done: collections.deque[tuple[Attempt, socket.socket, BaseException | None]]
        self.done = collections.deque()
        self.wake: asyncio.Future[None] | None = None

    def start(self, attempt: Attempt, sock: socket.socket, address: tuple[Any, ...]) -> None:
        if type(sock) is socket.socket:
            try:
                sock.connect(address)
            except (BlockingIOError, InterruptedError):
                pass
            except OSError as e:
                self.finish(attempt, sock, e)
                return
            else:
                self.finish(attempt, sock, None)
                return
            fd = sock.fileno()
            try:
                self.loop.add_writer(fd, self._writable, attempt, sock, fd, address)
            except NotImplementedError:
                pass
            else:
                self.running[attempt.index] = (attempt, sock)
                return
        task = asyncio.ensure_future(self.loop.sock_connect(sock, address))
        self.running[attempt.index] = (attempt, sock)
        self.tasks[attempt.index] = task
        task.add_done_callback(functools.partial(self._task_done, attempt, sock))

    def watch(self, attempt: Attempt, sock: socket.socket, address: tuple[Any, ...]) -> None:
        """Watch a connect that is already in flight on the plain socket ``sock``."""
        self.running[attempt.index] = (attempt, sock)
        self.loop.add_writer(sock.fileno(), self._writable, attempt, sock, sock.fileno(), address)

    def _writable(
        self, attempt: Attempt, sock: socket.socket, fd: int, address: tuple[Any, ...]
    ) -> None:
        try:
            err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        except (BlockingIOError, InterruptedError):
            return  # still connecting: called again when writable
        except OSError as exc:
            self.loop.remove_writer(fd)
            self.running.pop(attempt.index, None)
            self.finish(attempt, sock, exc)
            return
        self.loop.remove_writer(fd)
        self.running.pop(attempt.index, None)
        self.finish(
            attempt, sock, None if err == 0 else OSError(err, f"Connect call failed {address}")
        )

    def _task_done(self, attempt: Attempt, sock: socket.socket, task: asyncio.Future[None]) -> None:
        if self.tasks.pop(attempt.index, None) is None:
            return  # closed meanwhile
        self.running.pop(attempt.index, None)
        error = asyncio.CancelledError() if task.cancelled() else task.exception()
        self.finish(attempt, sock, error)

    def finish(self, attempt: Attempt, sock: socket.socket, error: BaseException | None) -> None:
        self.done.append((attempt, sock, error))
        self.notify()

    def notify(self, _arg: object = None) -> None:
        wake = self.wake
        if wake is not None and not wake.done():
            wake.set_result(None)

    def close(self) -> list[asyncio.Future[None]]:
        """Close every attempt (running or finished but not taken); return the tasks that
        must still be awaited (the ``sock_connect`` fallback only)."""
        pending = []
        for index, (_attempt, sock) in self.running.items():
            task = self.tasks.pop(index, None)
            if task is not None:
                task.cancel()
                pending.append((task, sock))
                continue
            with contextlib.suppress(OSError, ValueError):
                self.loop.remove_writer(sock.fileno())
            close_connecting(sock)
        self.running.clear()
        while self.done:
            self.done.popleft()[1].close()
        tasks = []
        for task, sock in pending:
            # closed once the task is done: its writer is removed by then, so the descriptor
            # number cannot be reused while asyncio still watches it
            task.add_done_callback(functools.partial(_close_after, sock))
            tasks.append(task)
        return tasks


def _close_after(sock: socket.socket, _task: object) -> None:
    sock.close()


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
    # (a list to extend when destinations follow; else an `EndpointColumns` stays as it is)
    known = list(destinations) if more_destinations is not None else own_copy(destinations)
    if nat64_needed(known):
        known = list(await through_nat64_async(known, loop))
    head = more_destinations is None  # a long list: its head first (`Race.needs_tail`)
    if head and socket_factory is None and options.timeout is None and options.on_event is None:
        quick = quick_plan(known, options, time.monotonic())  # a process's first races
        if quick is not None:
            return await _first_attempt(quick, options, factory, loop, start, known, quick=True)
    pairs = await _plan(known, options, start, loop, head=head) if known else []
    if not pairs and more_destinations is None:
        raise no_usable_pair(known, options)
    if pairs and more_destinations is None:
        return await _first_attempt(pairs, options, factory, loop, start, known)
    state = new_race(pairs, options, start, more=more_destinations is not None)
    return await _run(state, options, factory, loop, None, known, more_destinations)


async def _run(
    state: Race,
    options: Options,
    factory: SocketFactory,
    loop: asyncio.AbstractEventLoop,
    in_flight: tuple[Attempt, socket.socket, tuple[Any, ...]] | None,
    known: Sequence[Endpoint],
    more_destinations: AsyncIterator[Sequence[Endpoint]] | None,
) -> tuple[socket.socket, Pair]:
    """Drive ``state`` until it ends; ``in_flight``: an attempt whose connect already began."""
    attempts = _Attempts(loop)
    if in_flight is not None:
        attempts.watch(*in_flight)
    feed: asyncio.Future[Any] | None = None
    if more_destinations is not None:
        feed = asyncio.ensure_future(_next_batch(more_destinations))
        feed.add_done_callback(attempts.notify)
    winner: socket.socket | None = None
    in_hand: socket.socket | None = None  # a finished attempt's socket, between queue and verdict
    try:
        while True:
            now = loop.time()
            while attempts.done:
                attempt, in_hand, error = attempts.done.popleft()
                if error is None and state.connected(attempt, now):
                    winner, in_hand = in_hand, None
                    break
                in_hand.close()  # failed, or connected in the same tick as the winner
                in_hand = None
                if error is not None:
                    state.failed(attempt, _as_oserror(error), now)
            if state.finished:
                break
            if feed is not None and feed.done():
                batch: Sequence[Endpoint] | None = feed.result()
                if batch is None:
                    feed = None
                    state.no_more_pairs()
                else:
                    assert more_destinations is not None
                    feed = asyncio.ensure_future(_next_batch(more_destinations))
                    feed.add_done_callback(attempts.notify)
                    seen = set(known)
                    assert isinstance(known, list)  # (`race` copied it)
                    known.extend(d for d in batch if d not in seen)
                    state.add_pairs(await _plan(known, options, now, loop), now)
                    now = loop.time()
            if state.deadline is not None and now >= state.deadline:
                state.time_out(now)
                break
            if state.needs_tail(now):  # the head of a long plan is started: the full plan
                state.set_tail(await _plan(known, options, state.origin, loop))
                now = loop.time()
            while not attempts.done and (due := state.start_due(now)) is not None:
                try:
                    sock, address = _open(factory, due.pair)
                except OSError as e:
                    state.failed(due, e, now)  # the same `now`: the next one starts at once
                    continue
                attempts.start(due, sock, address)
            if state.finished:
                break
            if state.deadline is not None and not attempts.done:
                now = loop.time()
                if now >= state.deadline:  # starting attempts took us past it: no extra turn
                    state.time_out(now)
                    break
            if attempts.done:
                continue
            wake = state.wake_at()
            attempts.wake = loop.create_future()
            timer = None if wake is None else loop.call_at(wake, attempts.notify)
            try:
                await attempts.wake
            finally:
                attempts.wake = None
                if timer is not None:
                    timer.cancel()
    except BaseException:
        if in_hand is not None:
            in_hand.close()
        if winner is not None:
            winner.close()
            winner = None
        with contextlib.suppress(BaseException):  # (an on_event interrupt: the first one counts)
            state.cancel(loop.time())
        raise
    finally:
        tasks = attempts.close()
        if feed is not None:
            feed.remove_done_callback(attempts.notify)
            feed.cancel()
            tasks.append(feed)
        if tasks:
            try:
                await _wait_all(tasks)
            except BaseException:  # cancelled while the losers were being cleaned up
                if winner is not None:
                    winner.close()
                raise
    if winner is not None and state.winner is not None:
        return winner, state.winner.pair
    invalidate()  # the network may have changed: re-learn sources next time
    raise state.error()


async def _wait_all(tasks: list[asyncio.Future[Any]]) -> None:
    await asyncio.wait(tasks)
    for task in tasks:
        if task.done() and not task.cancelled():
            task.exception()  # retrieved: no "exception never retrieved" warning


def _open(factory: SocketFactory, pair: Pair) -> tuple[socket.socket, tuple[Any, ...]]:
    """The attempt socket of ``pair`` and the address it connects to. A socket that cannot
    reach the destination (a ``socket_factory`` of the wrong family) is closed and fails the
    attempt."""
    sock = open_attempt_socket(factory, pair)
    if factory is default_socket_factory:  # of the destination's own family (no enum made)
        return sock, pair.destination.sockaddr()
    try:  # (a factory's socket may be any object with a family: a subclass, a test double)
        return sock, pair.destination.sockaddr(sock.family)
    except InvalidArgument:
        sock.close()
        raise OSError(
            errno.EAFNOSUPPORT, f"the attempt socket (family {sock.family!r}) cannot reach it"
        ) from None


# Destination lists longer than this are planned in a worker thread, in chunks, so that the
# deadline holds and the loop keeps running while thousands of kernel choices are probed.
_LARGE_PLAN = 2048


async def _plan(
    destinations: Sequence[Endpoint],
    options: Options,
    now: float,
    loop: asyncio.AbstractEventLoop,
    *,
    head: bool = False,
) -> list[Pair]:
    """`plan_race`, on the loop for usual lists, in a worker thread for very long ones: the
    deadline (``options.timeout`` from ``now``) covers planning, and planning stops at it.
    ``head``: the head of a long plan (a few lookups) when it can be had."""
    if len(destinations) <= _LARGE_PLAN:
        return plan_race(destinations, options, now, head=head)
    # the same long list again: no thread
    hit: list[Pair] | None = None
    if head:
        hit = head_of_plan(destinations, options, now, cached_only=True)
    if hit is None:
        hit = cached_plan(destinations, options, now)
    if hit is not None:
        return hit
    stop = threading.Event()
    planned = loop.run_in_executor(
        None,
        functools.partial(plan_race, destinations, options, now, stop=stop.is_set, head=head),
    )
    try:
        if options.timeout is None:
            return await planned
        remaining = options.timeout - (loop.time() - now)
        done, _ = await asyncio.wait([planned], timeout=max(0.0, remaining))
        if not done:
            raise ConnectTimeout(
                f"timed out planning {len(destinations)} destinations; no attempt was started"
            )
        return planned.result()
    finally:
        stop.set()
        if not planned.done():
            planned.add_done_callback(_retrieve)


def _retrieve(fut: asyncio.Future[Any]) -> None:
    if not fut.cancelled():
        fut.exception()


async def _first_attempt(
    pairs: list[Pair],
    options: Options,
    factory: SocketFactory,
    loop: asyncio.AbstractEventLoop,
    origin: float,
    known: Sequence[Endpoint],
    *,
    quick: bool = False,
) -> tuple[socket.socket, Pair]:
    """The race while its first attempt is the only one: no task, no `_Attempts`; the
    deadline still holds. (``known``: the destinations, whose full plan the race may need;
    ``quick``: ``pairs`` is a `quick_plan`, planned in full only if needed.)

    Most races end here: the first pair connects before the next one (or its backup) is due.
    Its connect waits on one writer callback; the time the next attempt is due is a shared
    timer's entry (`_BackupClock`). Only if that time comes with the connect still in flight,
    or the connect fails with pairs left, does the full race take over (`_run`), with this
    attempt in it as started at its real time. With no deadline and no observer a `Race` is
    built only then (it files failures in history and makes the error); a success just
    records its RTT, as the `Race` would.
    """
    pair = pairs[0]
    state = None
    if options.timeout is not None or options.on_event is not None:
        state = new_race(pairs, options, origin)
    started = loop.time()
    attempt = None if state is None else state.start_due(started)
    deadline = None if options.timeout is None else timeout_at(origin + options.timeout)
    next_at = None
    more = len(pairs) > 1 or isinstance(pairs, PlanHead)  # (a head: the race asks for more)
    if (more and not math.isinf(options.attempt_delay)) or options.backups_possible:
        next_at = started + delay_after(
            pair, started, options.attempt_delay, options.min_attempt_delay, options.history
        )
    in_flight = False
    try:
        sock, address = _open(factory, pair)
    except OSError as e:
        state = state or _race_of(pairs, quick, known, options, origin)
        state.failed(attempt or _start(state, started), e, loop.time())
    else:
        try:
            if deadline is None:
                in_flight = await _sock_connect(loop, sock, address, next_at)
            else:
                async with deadline:
                    in_flight = await _sock_connect(loop, sock, address, next_at)
        except (OSError, asyncio.TimeoutError) as e:  # the deadline's (not an OSError on 3.10)
            close_connecting(sock)
            state = state or _race_of(pairs, quick, known, options, origin)
            if deadline is not None and expired(deadline):
                state.time_out(loop.time())
            elif isinstance(e, OSError):
                state.failed(attempt or _start(state, started), e, loop.time())
                if len(pairs) == 1:
                    invalidate()  # the network may have changed: re-learn sources next time
            else:  # a TimeoutError of the caller's own (3.10: not an OSError)
                raise
        except BaseException:
            close_connecting(sock)
            if state is not None:
                state.cancel(loop.time())
            raise
        else:
            if in_flight:  # silent until the next attempt is due: the full race takes over
                try:
                    state = state or _race_of(pairs, quick, known, options, origin)
                except BaseException:
                    close_connecting(sock)
                    raise
                attempt = attempt or _start(state, started)
                in_flight_attempt = (attempt, sock, address)
                return await _run(state, options, factory, loop, in_flight_attempt, known, None)
            now = loop.time()
            if attempt is not None and state is not None:
                state.connected(attempt, now)
            else:
                if quick and pair.kernel_source is None:
                    pair = learned_pair(pair, _name_address(sock))
                if options.history is not None:
                    options.history.record_success(pair, now - started, now)
            return sock, pair
    if not state.finished:  # the first attempt failed at once: the rest race
        return await _run(state, options, factory, loop, None, known, None)
    # raised outside the except blocks: no frame -> error -> traceback -> frame cycle
    raise state.error()


def _race_of(
    pairs: list[Pair], quick: bool, known: Sequence[Endpoint], options: Options, origin: float
) -> Race:
    """The `Race` the first attempt joins as started (a `quick_plan` made in full first)."""
    if quick:
        pairs = full_plan(pairs[0], known, options, origin)
    return new_race(pairs, options, origin)


def _name_address(sock: socket.socket) -> str | None:
    try:
        host: str = sock.getsockname()[0]
    except OSError:
        return None
    return host


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
