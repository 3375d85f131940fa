"""The blocking driver: a `Race` run on the calling thread, waiting with poll(2).

The same plan (`plan_race`: sources, RFC 6724 and history ranking), the same sans-I/O `Race`
(stagger, hard deadline, history, ``on_event``, the error of a lost race) and the same attempt
sockets (`open_attempt_socket`: bind, ``IP_BIND_ADDRESS_NO_PORT``) as the asyncio driver; only
the waiting differs: a poll(2) loop waits for the attempts to finish and for the next start
time or the deadline. It needs no event loop, thread or descriptor of its own, so it works the
same from any thread, from inside a running event loop (which it blocks, as any blocking call
does), from an ``on_event`` callback of another race, and in a forked child; ``on_event`` is
called on the calling thread. It does not import asyncio.

Interruption: a ``KeyboardInterrupt`` (or ``SystemExit``) ends the race; every attempt socket
goes back to `AttemptSockets`, the running attempts are recorded as cancelled (no evidence
against their pairs) and the exception propagates.
"""

from __future__ import annotations

import errno
import math
import os
import select
import socket
import time
from collections.abc import Callable, Sequence
from typing import Any

from .._core.addresses import Endpoint
from .._core.events import Attempt
from .._core.options import Options
from .._core.pairs import Pair
from .._core.planner import PlanHead
from .._core.race import Race, delay_after
from .._io.nat64 import through_nat64
from .._io.sources import after_failed_race as invalidate  # kept when changes are notified
from .planning import new_race, no_usable_pair, plan_race
from .sockets import SocketFactory, close_connecting, open_attempt_socket, raw_family

Address = tuple[Any, ...]


# poll(2) where it exists: no descriptor of its own, no limit on descriptor numbers (select's
# FD_SETSIZE). Windows has select only, which reports failed connects as exceptional; the
# stdlib's SelectSelector folds those into "writable" there, so SO_ERROR still tells.
class _Writable:
    """Waits until attempt sockets are writable (connected, or failed): poll(2) where it exists
    (no descriptor and no set-up of its own), select(2) elsewhere (Windows, which reports a
    failed connect as an exceptional condition)."""

    def __init__(self) -> None:
        self._fds: set[int] = set()
        self._poll = select.poll() if hasattr(select, "poll") else None

    def add(self, fd: int) -> None:
        self._fds.add(fd)
        if self._poll is not None:
            self._poll.register(fd, select.POLLOUT)

    def remove(self, fd: int) -> None:
        self._fds.discard(fd)
        if self._poll is not None:
            self._poll.unregister(fd)

    def wait(self, timeout: float | None) -> list[int]:
        """The ready descriptors; ``timeout`` in seconds (``None``: until one is ready)."""
        if self._poll is not None:
            return [fd for fd, _ in self._poll.poll(None if timeout is None else timeout * 1e3)]
        fds = list(self._fds)
        _, writable, failed = select.select([], fds, fds, timeout)
        return list({*writable, *failed})


#: what connect_ex returns for a connect still under way
_WAITING = frozenset({errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EALREADY, errno.EINTR})


def _waiting(code: int) -> bool:
    return code in _WAITING


class AttemptSockets:
    """Where the race's attempt sockets come from and where they go back.

    New sockets come from ``factory`` and are closed when their attempt ends without winning.
    ``own``, the caller's socket (`connect_by_list` only), is lent for the first kernel-choice
    pair of its own family. It is never closed here: `connect_by_list` restores it if the race
    does not end connected on it (``own_connecting``: its attempt was still in flight).
    """

    __slots__ = ("factory", "lent", "own", "own_connecting", "own_family")

    def __init__(
        self, factory: SocketFactory, own: socket.socket | None = None, own_family: int = -1
    ) -> None:
        self.factory = factory
        self.own = own
        self.own_family = own_family
        self.lent = False  # whether an attempt was made on ``own``
        self.own_connecting = False

    def open(self, pair: Pair) -> socket.socket:
        own = self.own
        if (
            own is not None
            and not self.lent
            and pair.source is None
            and pair.destination._family == self.own_family
        ):
            self.lent = True
            own.setblocking(False)
            return own
        return open_attempt_socket(self.factory, pair)

    def family_of(self, sock: socket.socket) -> int:
        return self.own_family if sock is self.own else raw_family(sock)

    def release(self, sock: socket.socket, connecting: bool = False) -> None:
        """``sock``'s attempt ended without winning (``connecting``: abandoned in flight, then
        closed keeping the GIL, as the asyncio driver does)."""
        if sock is not self.own:
            if connecting:
                close_connecting(sock)
            else:
                sock.close()
        else:
            self.own_connecting = connecting


def _start(
    attempt: Attempt, sockets: AttemptSockets, state: Race, now: float
) -> socket.socket | None:
    """Open ``attempt``'s socket and start connecting: the socket if it is in flight (or
    connected already), None if the attempt failed at once (then it is recorded, released)."""
    try:
        sock = sockets.open(attempt.pair)
    except OSError as exc:
        state.failed(attempt, exc, now)
        return None
    try:
        address = attempt.pair.destination.sockaddr(sockets.family_of(sock))
        code = sock.connect_ex(address)
    except BaseException as exc:
        sockets.release(sock, connecting=not isinstance(exc, OSError))
        if not isinstance(exc, OSError):
            raise
        state.failed(attempt, exc, time.monotonic())
        return None
    if code == 0 or _waiting(code):
        return sock
    sockets.release(sock)
    state.failed(attempt, _connect_error(code, address), time.monotonic())
    return None


def _connect_error(code: int, address: Address) -> OSError:
    return OSError(code, f"{os.strerror(code)} connecting to {address}")


_POLL = getattr(select, "poll", None)
#: poll(2) bits after which SO_ERROR must tell what happened: with none of them set, POLLOUT on
#: a connecting TCP socket means it is established (Linux's tcp_poll reports POLLERR whenever
#: the socket has an error to report and POLLHUP once it is closed), so SO_ERROR would read 0
_TROUBLE = select.POLLERR | select.POLLHUP | select.POLLNVAL if _POLL is not None else 0
_POLLOUT = select.POLLOUT if _POLL is not None else 0
_INF = math.inf
_AF_INET6 = int(socket.AF_INET6)


def _first_wait(sock: socket.socket, pair: Pair, options: Options, origin: float) -> int:
    """Wait for the single attempt's connect: 0 (connected), its errno, or -1 when it stayed
    silent for the backup delay (the full race takes over).

    One poll(2) on one descriptor, SO_ERROR read only when it reports trouble. The backup
    delay needs the pair's history (`delay_after`) only if the connect outlasts the shortest
    delay it can be, ``min(min_attempt_delay, attempt_delay)``: the first poll is that long,
    and the history is consulted (as of ``origin``, as the general path does) only for the
    rest of the wait."""
    if _POLL is not None:
        poller = _POLL()
        poller.register(sock, _POLLOUT)
        attempt_delay = options.attempt_delay
        if not options.backup_attempts or attempt_delay == _INF:  # (not backups_possible)
            ready = poller.poll()
        else:
            started = time.monotonic()
            floor = options.min_attempt_delay  # delay_after is never shorter than the smaller
            if attempt_delay < floor:
                floor = attempt_delay
            ready = poller.poll(floor * 1e3)
            if not ready:
                backup_delay = delay_after(
                    pair, origin, attempt_delay, options.min_attempt_delay, options.history
                )
                ready = poller.poll(max(0.0, backup_delay - (time.monotonic() - started)) * 1e3)
        if not ready:
            return -1  # silent for the backup delay: the full race takes over
        if ready[0][1] & _TROUBLE:
            return sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        return 0
    # (Windows: select)
    wait: float | None = None
    if options.backups_possible:
        wait = delay_after(
            pair, origin, options.attempt_delay, options.min_attempt_delay, options.history
        )
    waiter = _Writable()
    waiter.add(sock.fileno())
    if not waiter.wait(wait):
        return -1
    return sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)


def _one_pair(
    pair: Pair, options: Options, sockets: AttemptSockets, origin: float
) -> socket.socket:
    """The race of one pair with no deadline and no observer, the everyday call: nothing to
    stagger or time, so (as in the asyncio driver) a `Race` is built only if the attempt fails
    or stays silent for the backup delay, to file the failure in history and make the error;
    a success just records its RTT."""
    error: OSError
    try:
        sock = sockets.open(pair)
    except OSError as exc:
        error = exc
    else:
        family = sockets.own_family if sock is sockets.own else raw_family(sock)
        destination = pair.destination
        address = destination._sockaddr  # (`Endpoint.sockaddr`'s cache, read inline)
        if address is None or family != destination._family:
            address = destination.sockaddr(family)
        try:
            code = sock.connect_ex(address)
            if code in _WAITING:
                code = _first_wait(sock, pair, options, origin)
        except BaseException as exc:
            sockets.release(sock, connecting=not isinstance(exc, OSError))
            if not isinstance(exc, OSError):
                raise
            error = exc
        else:
            if code == 0:
                history = options.history
                if history is not None:
                    now = time.monotonic()
                    history.record_success(pair, now - origin, now)
                return sock
            if code == -1:
                state = new_race([pair], options, origin)
                attempt = state.start_due(origin)
                assert attempt is not None
                waiter = _Writable()
                waiter.add(sock.fileno())
                return _run(state, sockets, waiter, {sock.fileno(): (attempt, sock)})[0]
            sockets.release(sock)
            error = _connect_error(code, address)
    # raised outside the except blocks: no frame -> error -> traceback -> frame cycle
    state = new_race([pair], options, origin)
    attempt = state.start_due(origin)
    assert attempt is not None
    state.failed(attempt, error, time.monotonic())
    invalidate()  # as the driver does: the network may have changed, re-learn sources
    raise state.error()


def race(
    destinations: list[Endpoint], options: Options, sockets: AttemptSockets
) -> tuple[socket.socket, Pair]:
    """`aioconnlist._drivers.asyncio.race`'s race, driven on the calling thread by poll(2).

    The same plan (`plan_race`: sources, RFC 6724 and history ranking), the same sans-I/O
    `Race` (stagger, deadline, history, events, the error of a lost race) and the same attempt
    sockets (`open_attempt_socket`: bind, IP_BIND_ADDRESS_NO_PORT); only the waiting is done
    with poll(2) instead of asyncio. Every socket but the winner's goes back to ``sockets``
    on every exit.
    """
    clock = time.monotonic  # the event loop's clock too: history keeps one time scale
    listed: Sequence[Endpoint] = destinations
    if sockets.own is None or sockets.own_family == _AF_INET6:
        listed = through_nat64(destinations)  # (an AF_INET socket cannot use it)
    start = clock()
    stop = None
    if options.timeout is not None and len(listed) > 512:  # the deadline covers planning
        end = start + options.timeout

        def stop() -> bool:
            return clock() >= end

    pairs = plan_race(listed, options, start, stop=stop, head=True)
    if not pairs:
        raise no_usable_pair(listed, options)
    if (
        len(pairs) == 1
        and options.timeout is None
        and options.on_event is None
        and not isinstance(pairs, PlanHead)  # more may follow: the race asks for them
    ):
        return _one_pair(pairs[0], options, sockets, start), pairs[0]
    state = new_race(pairs, options, start)

    def tail() -> list[Pair]:  # the full plan, once the head of a long one is started
        return plan_race(listed, options, start, stop=stop)

    return _run(state, sockets, _Writable(), {}, tail)


def _run(
    state: Race,
    sockets: AttemptSockets,
    waiter: _Writable,
    running: dict[int, tuple[Attempt, socket.socket]],
    tail: Callable[[], list[Pair]] | None = None,
) -> tuple[socket.socket, Pair]:
    """Drive ``state`` until it ends; ``running``: attempts in flight (in ``waiter`` already);
    ``tail``: the full plan, when ``state`` was given its head."""
    clock = time.monotonic
    winner: socket.socket | None = None
    try:
        while True:
            now = clock()
            if state.deadline is not None and now >= state.deadline:
                state.time_out(now)
                break
            if tail is not None and state.needs_tail(now):
                state.set_tail(tail())
                now = clock()
            while (attempt := state.start_due(now)) is not None:
                sock = _start(attempt, sockets, state, now)
                if sock is not None:
                    running[sock.fileno()] = (attempt, sock)
                    waiter.add(sock.fileno())
            if state.finished or (not running and state.wake_at() is None):
                break
            wake = state.wake_at()
            ready = waiter.wait(None if wake is None else max(0.0, wake - clock()))
            now = clock()
            for fd in ready:
                # (each socket stays in `running` until it is the winner or released, so an
                # interruption anywhere in here still finds it in the finally block)
                attempt, sock = running[fd]
                waiter.remove(fd)
                code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if code == 0 and state.connected(attempt, now):
                    winner = sock
                    del running[fd]
                    continue
                sockets.release(sock)  # failed, or connected in the same tick as the winner
                del running[fd]
                if code != 0:
                    address = attempt.pair.destination.sockaddr(sockets.family_of(sock))
                    state.failed(attempt, _connect_error(code, address), now)
            if winner is not None:
                break
    except BaseException:
        state.cancel(clock())  # interrupted (e.g. KeyboardInterrupt): no evidence on pairs
        if winner is not None:
            sockets.release(winner)
        raise
    finally:
        for _attempt, sock in running.values():
            sockets.release(sock, connecting=True)
    if winner is not None and state.winner is not None:
        return winner, state.winner.pair
    invalidate()  # as the driver does: the network may have changed, re-learn sources
    raise state.error()
