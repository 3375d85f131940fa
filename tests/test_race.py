"""The race in virtual time: exact expected timings for every rule of SPEC §2.3-2.7."""

from __future__ import annotations

import errno
import math

import pytest

from aioconnlist._core.errors import ConnectError, ConnectTimeout, ExceptionGroup, OutOfResources
from aioconnlist._core.history import PairHistory
from aioconnlist._core.pairs import SourceView
from aioconnlist._core.planner import plan_pairs
from aioconnlist._core.race import Race, failure_kind
from tests.simulation import endpoints, kernel_pairs, simulate

A, B, C, D = "192.0.2.1:80", "192.0.2.2:80", "192.0.2.3:80", "192.0.2.4:80"
V6A, V6B = "[2001:db8::1]:80", "[2001:db8::2]:80"


def test_fall_through_three_slow_addresses_third_wins() -> None:
    r = simulate(kernel_pairs(A, B, C), {A: ("ok", 2.0), B: ("ok", 2.0), C: ("ok", 0.1)})
    assert r.starts == [0.0, 0.25, 0.5]
    assert r.winner == C
    assert r.end == 0.6
    assert r.outcomes == [(A, 0.6, "cancelled"), (B, 0.6, "cancelled"), (C, 0.6, "won")]


def test_early_success_starts_nothing_more() -> None:
    r = simulate(kernel_pairs(A, B, C), {A: ("ok", 0.1), B: ("ok", 0.01), C: ("ok", 0.01)})
    assert r.starts == [0.0]
    assert r.winner == A
    assert r.end == 0.1
    assert len(r.race.untried) == 2


def test_success_just_before_the_delay_wins_alone() -> None:
    r = simulate(kernel_pairs(A, B), {A: ("ok", 0.249), B: ("ok", 0.001)})
    assert (r.starts, r.winner, r.end) == ([0.0], A, 0.249)


def test_custom_attempt_delay() -> None:
    script = {A: ("drop",), B: ("drop",), C: ("ok", 0.05)}
    r = simulate(kernel_pairs(A, B, C), script, attempt_delay=0.1)
    assert r.starts == [0.0, 0.1, 0.2]
    assert (r.winner, r.end) == (C, 0.25)


def test_failure_of_the_newest_attempt_starts_the_next_at_once() -> None:
    script = {A: ("refused", 0.05), B: ("unreachable", 0.02), C: ("ok", 0.1)}
    r = simulate(kernel_pairs(A, B, C), script)
    assert r.starts == [0.0, 0.05, 0.07]
    assert (r.winner, r.end) == (C, 0.17)


def test_failure_of_an_older_attempt_does_not_hurry_the_next() -> None:
    # A fails at 0.3 while B (newer) is still running: C still waits for B's delay.
    script = {A: ("refused", 0.3), B: ("drop",), C: ("ok", 0.01)}
    r = simulate(kernel_pairs(A, B, C), script)
    assert r.starts == [0.0, 0.25, 0.5]
    assert r.outcomes[0] == (A, 0.3, "failed")


def test_all_fail_reports_the_last_errno_and_every_attempt() -> None:
    script = {A: ("refused", 0.4), B: ("refused", 0.05), C: ("unreachable", 0.2)}
    r = simulate(kernel_pairs(A, B, C), script)
    assert r.starts == [0.0, 0.25, 0.3]
    assert r.race.finished and r.race.winner is None
    err = r.race.error()
    assert isinstance(err, ConnectError) and isinstance(err, OSError)
    assert err.errno == errno.EHOSTUNREACH  # C failed last, at 0.5
    assert [
        (str(a.pair.destination), round(a.started, 6), round(a.ended or -1, 6))
        for a in err.attempts
    ] == [(A, 0.0, 0.4), (B, 0.25, 0.3), (C, 0.3, 0.5)]
    for address in (A, B, C):
        assert address in str(err)
    assert isinstance(err.__cause__, ExceptionGroup)
    assert [e.errno for e in err.__cause__.exceptions] == [
        errno.ECONNREFUSED,
        errno.ECONNREFUSED,
        errno.EHOSTUNREACH,
    ]


def test_resource_exhaustion_is_enobufs() -> None:
    r = simulate(kernel_pairs(A), {A: ("emfile", 0.0)})
    err = r.race.error()
    assert isinstance(err, OutOfResources)
    assert err.errno == errno.ENOBUFS


def test_deadline_cancels_everything_and_reports_etimedout() -> None:
    script = {A: ("drop",), B: ("drop",), C: ("drop",), D: ("drop",)}
    r = simulate(kernel_pairs(A, B, C, D), script, timeout=0.6)
    assert r.starts == [0.0, 0.25, 0.5]
    assert r.end == 0.6
    assert [o[2] for o in r.outcomes] == ["timed out"] * 3
    err = r.race.error()
    assert isinstance(err, ConnectTimeout) and isinstance(err, TimeoutError)
    assert err.errno == errno.ETIMEDOUT
    assert "1 pair(s) not tried" in str(err)


def test_zero_timeout_starts_nothing() -> None:
    r = simulate(kernel_pairs(A), {A: ("ok", 0.0)}, timeout=0.0)
    assert r.starts == []
    assert r.race.error().errno == errno.ETIMEDOUT


def test_infinite_delay_is_strictly_one_at_a_time() -> None:
    script = {A: ("refused", 1.0), B: ("refused", 3.0), C: ("ok", 0.5)}
    r = simulate(kernel_pairs(A, B, C), script, attempt_delay=math.inf)
    assert r.starts == [0.0, 1.0, 4.0]
    assert (r.winner, r.end) == (C, 4.5)


def test_family_interleave_orders_the_starts() -> None:
    dests = endpoints(V6A, V6B, A, B)
    pairs = plan_pairs(dests, SourceView("kernel"), history=None, now=0.0, sort=False)
    script = {d: ("drop",) for d in (V6A, V6B, A, B)}
    r = simulate(pairs, script, timeout=0.8)
    assert r.started_destinations == [V6A, A, V6B, B]
    assert r.starts == [0.0, 0.25, 0.5, 0.75]


def test_caller_cancellation_ends_running_attempts_without_evidence() -> None:
    history = PairHistory()
    script = {A: ("drop",), B: ("drop",)}
    r = simulate(kernel_pairs(A, B), script, history=history, cancel_at=0.3)
    assert r.end == 0.3
    assert [o[2] for o in r.outcomes] == ["cancelled", "cancelled"]
    assert history.rank(r.race.attempts[0].pair, 1000.3) == 0  # neutral: not a failure


def test_same_tick_double_success_keeps_one() -> None:
    script = {A: ("ok", 0.3), B: ("ok", 0.05)}
    r = simulate(kernel_pairs(A, B), script)
    assert r.starts == [0.0, 0.25]
    assert r.winner == A  # both at 0.3: the first reported wins, the other is closed
    assert r.outcomes == [(A, 0.3, "won"), (B, 0.3, "cancelled")]
    assert r.race.connected(r.race.attempts[1], 1000.3) is False


def test_history_speed_up_on_broken_ipv6() -> None:
    history = PairHistory()
    dests = endpoints(V6A, A)
    script = {V6A: ("drop",), A: ("ok", 0.02)}
    first = simulate(
        plan_pairs(dests, SourceView("kernel"), history=history, now=1000.0),
        script,
        history=history,
    )
    assert (first.starts, first.winner, first.end) == ([0.0, 0.25], A, 0.27)
    # The IPv6 attempt waited longer than its delay when IPv4 won: evidence against it.
    later = 1010.0
    pairs = plan_pairs(dests, SourceView("kernel"), history=history, now=later)
    second = simulate(pairs, script, history=history, origin=later)
    assert second.started_destinations == [A]
    assert (second.winner, second.end) == (A, 0.02)


def test_known_rtt_shrinks_the_delay_to_the_floor() -> None:
    history = PairHistory()
    [pair] = kernel_pairs(A)
    history.record_success(pair, 0.02, 990.0)  # rto = 0.02 + 4 * 0.01 = 0.06 -> floor 0.1
    r = simulate(kernel_pairs(A, B), {A: ("drop",), B: ("ok", 0.01)}, history=history)
    assert r.starts == [0.0, 0.1]
    assert (r.winner, r.end) == (B, 0.11)


def test_known_rtt_delay_between_floor_and_attempt_delay() -> None:
    history = PairHistory()
    [pair] = kernel_pairs(A)
    history.record_success(pair, 0.1, 990.0)  # rto = 0.1 + 4 * 0.05 = 0.3 -> capped at 0.25
    r = simulate(
        kernel_pairs(A, B), {A: ("drop",), B: ("ok", 0.01)}, history=history, min_attempt_delay=0.01
    )
    assert r.starts == [0.0, 0.25]
    history2 = PairHistory()
    history2.record_success(pair, 0.03, 990.0)  # rto = 0.03 + 0.06 = 0.09 with floor 0.01
    r2 = simulate(
        kernel_pairs(A, B),
        {A: ("drop",), B: ("ok", 0.01)},
        history=history2,
        min_attempt_delay=0.01,
    )
    assert r2.starts == [0.0, 0.09]


def test_late_pairs_join_a_running_race() -> None:
    [pa, pb] = kernel_pairs(A, B)
    race = Race([pa], now=0.0, attempt_delay=0.25, min_attempt_delay=0.1, more_pairs_coming=True)
    first = race.start_due(0.0)
    assert first is not None and race.start_due(0.0) is None
    race.failed(first, OSError(errno.ECONNREFUSED, "refused"), 0.01)
    assert not race.finished  # more pairs may still come
    assert race.start_due(0.01) is None
    race.add_pairs([pa, pb], 0.2)  # the full new plan; pa was already tried
    second = race.start_due(0.2)
    assert second is not None and second.pair == pb and second.started == 0.2
    race.no_more_pairs()
    race.failed(second, OSError(errno.EHOSTUNREACH, "unreachable"), 0.3)
    assert race.finished
    assert race.error().errno == errno.EHOSTUNREACH


def test_events_report_each_transition() -> None:
    r = simulate(kernel_pairs(A, B), {A: ("refused", 0.01), B: ("ok", 0.02)})
    assert [(e.kind, e.index, round(e.time, 6)) for e in r.events] == [
        ("started", 0, 0.0),
        ("failed", 0, 0.01),
        ("started", 1, 0.01),
        ("won", 1, 0.03),
    ]
    assert r.events[1].error is not None and r.events[1].error.errno == errno.ECONNREFUSED


def test_broken_event_callback_does_not_break_the_race() -> None:
    def boom(_event: object) -> None:
        raise RuntimeError("callback bug")

    race = Race(kernel_pairs(A), now=0.0, attempt_delay=0.25, min_attempt_delay=0.1, on_event=boom)
    attempt = race.start_due(0.0)
    assert attempt is not None
    assert race.connected(attempt, 0.01) is True


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        (errno.ECONNREFUSED, "refused"),
        (errno.EHOSTUNREACH, "unreachable"),
        (errno.ENETUNREACH, "unreachable"),
        (errno.EACCES, "unreachable"),
        (errno.ETIMEDOUT, "timeout"),
        (errno.ECONNRESET, "error"),
        (errno.EMFILE, None),
    ],
)
def test_failure_kinds(code: int, kind: str | None) -> None:
    assert failure_kind(OSError(code, "x")) == kind
