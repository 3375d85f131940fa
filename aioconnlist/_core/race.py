"""Race: the sans-I/O state of one Happy Eyeballs race (RFC 8305 §5).

It decides *when* each ranked pair starts, which attempt wins, what history learns and which
error a lost race reports. It never touches a socket or a clock: the driver feeds it the time
(``now``, seconds on the event loop's monotonic clock) and the outcome of each attempt, and asks
what to start next and when to wake up. That is what lets tests replay a race in virtual time
with exact timings.

Rules (staggering, first success wins, all fail, history):
- the first attempt starts at once; the next one when the newest attempt fails (at once) or
  when its attempt delay has elapsed, whichever comes first;
- the delay after a pair whose RTT history knows shrinks to srtt + 4*rttvar, clamped to
  [min_attempt_delay, attempt_delay]; ``attempt_delay=inf`` means strictly one at a time;
- the first attempt to connect wins; every other running attempt is cancelled; one that was
  left unanswered for longer than the delay it was given counts against its pair ("soft"
  failure), the others are neutral;
- when all fail, the error carries the errno of the last attempt to fail;
- a race over the head of a plan (``tail``: the number of pairs at least that follow it) asks
  for the rest (`needs_tail`) when the next attempt is due and the head has been started,
  and is given the full plan (`set_tail`): the same attempts at the same times as a race
  over the full plan;
- backup attempts (``backup_attempts``, as Chrome and Firefox do against lost SYNs): once every
  pair has been started, when the newest attempt has been silent for its delay (the attempt
  delay, or the shorter one history gives a pair of known RTT), one more attempt of the
  newest silent pair starts on a fresh socket, at most one per pair; never with
  ``attempt_delay=inf``. Attempts of the pair that won are no evidence against it.
"""

from __future__ import annotations

import errno
import logging
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

from .errors import (
    RESOURCE_ERRNOS,
    ConnectError,
    ConnectTimeout,
    ExceptionGroup,
    OutOfResources,
    errno_name,
)
from .events import Attempt, EventKind, Outcome, RaceEvent
from .pairs import Pair

if TYPE_CHECKING:
    from .history import FailureKind, PairHistory
    from .options import EventCallback

logger = logging.getLogger("aioconnlist")

_UNREACHABLE = frozenset(
    {
        errno.EHOSTUNREACH,
        errno.ENETUNREACH,
        errno.EACCES,
        errno.EPERM,
        errno.EADDRNOTAVAIL,
        errno.EINVAL,  # `ip route add blackhole` answers EINVAL
        errno.ENETDOWN,
        errno.EHOSTDOWN,
    }
)


def failure_kind(error: OSError) -> FailureKind | None:
    """How history files an attempt's error; ``None``: not the path's fault (out of fds...)."""
    code = error.errno
    if code in RESOURCE_ERRNOS:
        return None
    if code == errno.ECONNREFUSED:
        return "refused"
    if code == errno.ETIMEDOUT or isinstance(error, TimeoutError):
        return "timeout"
    if code in _UNREACHABLE:
        return "unreachable"
    return "error"


class Race:
    """One race over a ranked list of pairs. See the module docstring for the rules."""

    def __init__(
        self,
        pairs: Sequence[Pair],
        *,
        now: float,
        attempt_delay: float,
        min_attempt_delay: float,
        history: PairHistory | None = None,
        timeout: float | None = None,
        more_pairs_coming: bool = False,
        on_event: EventCallback | None = None,
        backup_attempts: bool = True,
        tail: int | None = None,
    ) -> None:
        self.origin = now
        self.deadline = None if timeout is None else now + timeout
        self.attempt_delay = attempt_delay
        self.min_attempt_delay = min(min_attempt_delay, attempt_delay)
        self.history = history
        self.on_event = on_event
        self.more_pairs_coming = more_pairs_coming
        self.untried: list[Pair] = list(pairs)
        self.untried.reverse()  # pop() from the end takes the best-ranked
        self.attempts: list[Attempt] = []
        self.running: dict[int, Attempt] = {}
        self._delays: dict[int, float] = {}
        self.next_start = now
        self.winner: Attempt | None = None
        self.timed_out = False
        self._callback_failed = False  # the first exception of on_event is logged in full
        self.backup_attempts = backup_attempts and not math.isinf(attempt_delay)
        self._backed_up: set[Pair] = set()
        #: pairs (at least) of the plan that follow ``pairs``, not planned yet (None: none)
        self.tail = tail

    # -- what the driver asks -----------------------------------------------------------------

    @property
    def finished(self) -> bool:
        if self.winner is not None or self.timed_out:
            return True
        return (
            not self.untried
            and not self.running
            and not self.more_pairs_coming
            and self.tail is None
        )

    def needs_tail(self, now: float) -> bool:
        """Whether the driver must give the full plan now (`set_tail`): the head has been
        started and the next attempt is due."""
        return (
            self.tail is not None
            and not self.untried
            and self.winner is None
            and not self.timed_out
            and now >= self.next_start
        )

    def set_tail(self, pairs: Sequence[Pair]) -> None:
        """The full plan whose head this race was given; the pairs not started yet follow."""
        started = {a.pair for a in self.attempts}
        self.untried = [p for p in reversed(pairs) if p not in started]
        self.tail = None

    def start_due(self, now: float) -> Attempt | None:
        """The attempt to start now, if one is due (call again until it returns None)."""
        if self.winner is not None or self.timed_out:
            return None
        if not self.untried:
            return None if self.tail is not None else self._backup_due(now)
        if now < self.next_start:
            return None
        return self._start(self.untried.pop(), now, backup=False)

    def _backup_candidate(self) -> tuple[Attempt, float] | None:
        """(the newest silent attempt whose pair has no backup yet, when its backup is due)."""
        if (
            not self.backup_attempts
            or self.more_pairs_coming
            or self.tail is not None
            or not self.running
        ):
            return None
        for attempt in sorted(self.running.values(), key=_newest_first):
            if attempt.backup or attempt.pair in self._backed_up:
                continue
            due = max(self.next_start, self.origin + attempt.started + self._delays[attempt.index])
            return attempt, due
        return None

    def _backup_due(self, now: float) -> Attempt | None:
        candidate = self._backup_candidate()
        if candidate is None or now < candidate[1]:
            return None
        pair = candidate[0].pair
        self._backed_up.add(pair)
        return self._start(pair, now, backup=True)

    def _start(self, pair: Pair, now: float, *, backup: bool) -> Attempt:
        attempt = Attempt(len(self.attempts), pair, now - self.origin, backup=backup)
        self.attempts.append(attempt)
        self.running[attempt.index] = attempt
        delay = self.delay_after(pair, now)
        self._delays[attempt.index] = delay
        self.next_start = now + delay
        self._emit("started", attempt, now)
        return attempt

    def wake_at(self) -> float | None:
        """When the driver must call again even if no attempt finishes (None: never)."""
        times = []
        if self.untried and self.winner is None and not math.isinf(self.next_start):
            times.append(self.next_start)
        elif (
            self.tail is not None
            and self.winner is None
            and not self.timed_out
            and not math.isinf(self.next_start)
        ):
            times.append(self.next_start)  # when the rest of the plan is needed
        elif not self.untried and self.winner is None and not self.timed_out:
            candidate = self._backup_candidate()
            if candidate is not None:
                times.append(candidate[1])
        if self.deadline is not None:
            times.append(self.deadline)
        return min(times, default=None)

    def delay_after(self, pair: Pair, now: float) -> float:
        """How long to wait after starting ``pair`` before starting the next one."""
        return delay_after(pair, now, self.attempt_delay, self.min_attempt_delay, self.history)

    # -- what the driver tells ----------------------------------------------------------------

    def add_pairs(self, pairs: Sequence[Pair], now: float) -> None:
        """Replace the untried pairs by a new ranking (late DNS answers, RFC 8305 §5).

        ``pairs`` is the full new plan; pairs already started are skipped.
        """
        started = {a.pair for a in self.attempts}
        self.untried = [p for p in reversed(pairs) if p not in started]
        if not self.running:
            self.next_start = min(self.next_start, now)

    def no_more_pairs(self) -> None:
        self.more_pairs_coming = False

    def failed(self, attempt: Attempt, error: OSError, now: float) -> None:
        """``attempt`` failed with ``error``; if it was the newest, the next one starts now."""
        self._end(attempt, "failed", now, error)
        if self.history is not None:
            kind = failure_kind(error)
            if kind is not None:
                self.history.record_failure(attempt.pair, kind, now)
        if attempt.index == len(self.attempts) - 1 or not self.running:
            self.next_start = now
        self._emit("failed", attempt, now)

    def connected(self, attempt: Attempt, now: float) -> bool:
        """``attempt`` connected. True: it won (the driver keeps its socket); False: another
        already won, close this one."""
        if self.winner is not None or self.timed_out:
            self._end(attempt, "cancelled", now)
            self._emit("cancelled", attempt, now)
            return False
        self.winner = attempt
        self._end(attempt, "won", now)
        if self.history is not None:
            self.history.record_success(attempt.pair, now - self.origin - attempt.started, now)
        self._emit("won", attempt, now)
        for other in list(self.running.values()):
            self._abandon(other, "cancelled", now, evidence=other.pair != attempt.pair)
        return True

    def time_out(self, now: float) -> None:
        """The deadline passed: every running attempt is abandoned."""
        self.timed_out = True
        for other in list(self.running.values()):
            self._abandon(other, "timed out", now)

    def cancel(self, now: float) -> None:
        """The caller cancelled: running attempts end without evidence against their pairs."""
        for other in list(self.running.values()):
            self._end(other, "cancelled", now)
            self._emit("cancelled", other, now)

    def error(self) -> ConnectError:
        """The error to raise when the race ended without a winner."""
        untried = len(self.untried) + (self.tail or 0)
        return race_error(self.attempts, timed_out=self.timed_out, untried=untried)

    # -- internals ----------------------------------------------------------------------------

    def _abandon(
        self, attempt: Attempt, outcome: Outcome, now: float, *, evidence: bool = True
    ) -> None:
        # Unanswered for longer than the delay it was given: evidence of a black hole (filed
        # by a pair's first attempt only: a backup is the same path, not more evidence).
        waited = now - self.origin - attempt.started
        if (
            evidence
            and not attempt.backup
            and self.history is not None
            and waited >= self._delays[attempt.index] - _CLOCK_STEP
        ):
            self.history.record_failure(attempt.pair, "soft", now)
        self._end(attempt, outcome, now)
        self._emit("cancelled", attempt, now)

    def _end(
        self, attempt: Attempt, outcome: Outcome, now: float, error: OSError | None = None
    ) -> None:
        attempt.ended = now - self.origin
        attempt.outcome = outcome
        # Kept without its traceback: that would pin the driver's frame, which holds this race
        # (a reference cycle keeping sockets' errors alive until the next gc run).
        attempt.error = None if error is None else error.with_traceback(None)
        self.running.pop(attempt.index, None)

    def _emit(self, kind: EventKind, attempt: Attempt, now: float) -> None:
        if self.on_event is None:
            return
        try:
            self.on_event(RaceEvent.of(kind, attempt, now - self.origin))
        except Exception as exc:  # a broken callback must not leak sockets
            # One traceback per race is enough to find the bug; the rest, briefly, at debug.
            if not self._callback_failed:
                self._callback_failed = True
                logger.exception("aioconnlist on_event callback raised (once per race)")
            else:
                logger.debug("aioconnlist on_event callback raised again: %r", exc)


#: The coarsest loop clock (uvloop's: 1 ms steps): an attempt beaten by the one its delay
#: started, within the same step, was silent for the whole delay all the same.
_CLOCK_STEP = 0.001

#: at most this many destinations are named in an error message (the rest: "+N more")
_SHOWN_DESTINATIONS = 4


def delay_after(
    pair: Pair,
    now: float,
    attempt_delay: float,
    min_attempt_delay: float,
    history: PairHistory | None,
) -> float:
    """How long to wait after starting ``pair`` before the next attempt (or its backup): the
    attempt delay, shrunk to srtt + 4*rttvar (not below ``min_attempt_delay``) for a pair of
    known RTT."""
    if math.isinf(attempt_delay) or history is None:
        return attempt_delay
    rto = history.rto(pair, now)
    if rto is None:
        return attempt_delay
    return min(max(rto, min(min_attempt_delay, attempt_delay)), attempt_delay)


def _newest_first(attempt: Attempt) -> int:
    return -attempt.index


def describe_attempts(attempts: Sequence[Attempt]) -> str:
    """A short summary for an error message: the outcomes counted by kind and the destinations
    (at most a few). Local source addresses are never named (a VPN, LAN or container address is
    not for an application to show its users by accident); every pair, source and error is in
    the error's ``.attempts``."""
    if not attempts:
        return ""
    if len(attempts) == 1:  # (the everyday failure: one address refused)
        return f"1 {_outcome(attempts[0])}; to {attempts[0].pair.destination} {_SEE_ATTEMPTS}"
    counts: dict[str, int] = {}
    destinations: dict[str, None] = {}
    for a in attempts:
        what = _outcome(a)
        counts[what] = counts.get(what, 0) + 1
        destinations.setdefault(str(a.pair.destination), None)
    outcome = ", ".join(f"{n} {what}" for what, n in counts.items())
    named = list(destinations)
    shown = ", ".join(named[:_SHOWN_DESTINATIONS])
    if len(named) > _SHOWN_DESTINATIONS:
        shown += f" (+{len(named) - _SHOWN_DESTINATIONS} more)"
    return f"{outcome}; to {shown} {_SEE_ATTEMPTS}"


_SEE_ATTEMPTS = "(each attempt in .attempts)"


def _outcome(attempt: Attempt) -> str:
    """The attempt's outcome as an error message counts it: its errno's name, else its
    exception's class, else how it ended (cancelled...)."""
    err = attempt.error
    if err is None:
        return attempt.outcome
    return errno_name(err.errno) if err.errno else type(err).__name__


def _last_to_fail(attempt: Attempt) -> tuple[float, int]:
    return (attempt.ended or 0.0, attempt.index)


def race_error(attempts: Sequence[Attempt], *, timed_out: bool, untried: int = 0) -> ConnectError:
    """The error a race that connected nothing reports.

    Pure: the caller raises it. ``errno`` is that of the last attempt to fail, ETIMEDOUT when the
    deadline ended the race, ENOBUFS when the last failure was a resource shortage.
    """
    failed = [a for a in attempts if a.error is not None]
    last = failed[0] if len(failed) == 1 else max(failed, key=_last_to_fail, default=None)
    detail = describe_attempts(attempts) or "no attempt was started"
    if untried:
        detail += f"; {untried} pair(s) not tried"
    error: ConnectError
    if timed_out:
        error = ConnectTimeout(f"timed out connecting: {detail}", attempts)
    elif last is None:
        error = ConnectError(errno.EHOSTUNREACH, f"no pair to try: {detail}", attempts)
    elif last.error is not None and last.error.errno in RESOURCE_ERRNOS:
        error = OutOfResources(f"out of resources: {detail}", attempts)
    else:
        code = (last.error.errno if last.error is not None else None) or errno.ECONNREFUSED
        error = ConnectError(code, f"all {len(attempts)} attempt(s) failed: {detail}", attempts)
    if failed:
        error.__cause__ = ExceptionGroup(
            "connection attempts", [a.error for a in failed if a.error is not None]
        )
    return error
